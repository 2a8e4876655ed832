"""The environment report of ``fastmlp info``: versions, Numba settings, compile cache, BLAS kernels."""

from __future__ import annotations

import os
import platform
import sys

__all__ = ["rows"]

_DISTRIBUTIONS = ("numba", "scipy", "scikit-learn", "tqdm", "matplotlib", "threadpoolctl")


def _cached_kernels() -> str:
    """What the on-disk cache holds fresh machine code of, for this CPU: the training kernels (one per optimiser
    and loss, and for the general one's usual activation sets, activations; by dtype; the general one and the tiny
    networks' one) and the prediction kernel (by dtype). A ``fit`` or ``predict`` with one of these loads it
    instead of compiling (for seconds)."""
    try:
        from fastmlp import _kernels as K

        def cached_dtypes(dispatcher, params_arg: int) -> list[str]:
            index = dispatcher._cache._cache_file._load_index()  # {} when missing or stale (source changed)
            magic = dispatcher.targetctx.codegen().magic_tuple()  # this CPU's code-generation target
            return sorted({key[0][params_arg].dtype.name for key in index if key[1] == magic})

        from fastmlp import _kernels_tiny as KT

        names = {code: name for name, code in K.ACTIVATION_CODES.items()}

        def training(make, activation_sets) -> list[str]:
            found = []
            for opt, opt_name in K.OPTIMIZER_NAMES.items():
                for loss, loss_name in K.LOSS_NAMES.items():
                    for acts in activation_sets:
                        dtypes = cached_dtypes(make(opt, loss, acts), 2)
                        if dtypes:
                            which = ""
                            if acts != K.ALL_ACTIVATIONS:  # a kernel specialised to these activations
                                which = f" ({'+'.join(sorted(names[a] for a in acts))})"
                            found.append(f"{opt_name}/{loss_name}{which} {', '.join(dtypes)}")
            return found

        train = training(K.train_epochs_kernel, (*K.SPECIALISED_ACTIVATIONS, K.ALL_ACTIVATIONS))
        tiny = training(lambda opt, loss, acts: KT.train_epochs_tiny_kernel(opt, loss), (K.ALL_ACTIVATIONS,))
        rows = training(lambda opt, loss, acts: KT.train_epochs_tiny_kernel(opt, loss, KT.ROWS_MIN_BATCH),
                        (K.ALL_ACTIVATIONS,))  # the tiny kernels for batches of 8 or more (_kernels_tiny.uses_rows)
        tiny += [f"{name} (batches of {KT.ROWS_MIN_BATCH}+) {dtypes}"
                 for name, dtypes in (found.split(" ", 1) for found in rows)]
        predict = cached_dtypes(K._forward_rows, 1)
        none = "none (first use compiles)"
        return (f"train_epochs: {'; '.join(train) or none}; tiny networks: {'; '.join(tiny) or none}; "
                f"forward_rows: {', '.join(predict) or none}")
    except Exception as exc:  # a private Numba interface: report, never fail ``info``
        return f"unknown ({type(exc).__name__})"


def _version_of(distribution: str) -> str:
    try:
        from importlib.metadata import version

        return version(distribution)
    except Exception:
        return "not installed"


def _threading_layer(numba) -> str:
    configured = numba.config.THREADING_LAYER
    try:
        active = numba.threading_layer()  # only known once a parallel kernel has run
    except ValueError:
        active = None
    if active:
        return f"{active} (configured: {configured})"
    return f"configured: {configured} (no parallel kernel run yet)"


def rows() -> list[tuple[str, str]]:
    """``(label, value)`` pairs, in display order."""
    import numpy as np

    from fastmlp import _blas, _config
    from fastmlp._version import __version__

    out = [
        ("fastmlp", __version__),
        ("python", f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})"),
        ("platform", platform.platform()),
        ("numpy", np.__version__),
    ]
    out.extend((dist, _version_of(dist)) for dist in _DISTRIBUTIONS)
    try:
        import numba

        out.append(("numba threading layer", _threading_layer(numba)))
        out.append(("numba threads", str(numba.config.NUMBA_NUM_THREADS)))
    except ImportError:
        pass
    cache_dir = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.dirname(_config.__file__), "__pycache__")
    out.append(("compile cache", f"{'enabled' if _config.CACHE else 'disabled'} ({cache_dir})"))
    if _config.CACHE:
        out.append(("cached kernels (hit next time)", _cached_kernels()))
    out.append(("fastmath flags", ",".join(sorted(_config.FASTMATH))))
    out.append(("BLAS crossover", f"{_config.BLAS_MIN_FLOPS} multiply-adds (FASTMLP_BLAS_MIN_FLOPS)"))
    out.extend(_blas.report())
    return out
