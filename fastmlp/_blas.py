"""Make sure the BLAS that Numba calls runs the machine's fastest matrix-multiply kernels.

Numba's ``np.dot`` (and fastmlp's GEMM calls) go through SciPy's bundled OpenBLAS. OpenBLAS picks its
kernel family once, when the library is loaded, from the CPU model it recognises; on some AVX-512
machines it does not recognise the model and falls back to its Haswell (AVX2) kernels, which run at
about two thirds of the SkylakeX ones. ``OPENBLAS_CORETYPE`` overrides that choice, but only if it is set
before the library loads -- which is why this module runs at ``import fastmlp``, before NumPy or SciPy
is imported by fastmlp itself.

Controlled by ``FASTMLP_OPENBLAS_CORETYPE`` (see :mod:`fastmlp._config`); a user's own
``OPENBLAS_CORETYPE`` always wins.
"""

from __future__ import annotations

import os
import sys


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _scipy_blas_loaded() -> bool:
    return any(name.startswith("scipy.linalg") for name in sys.modules)


def choose_coretype() -> str | None:
    """Set ``OPENBLAS_CORETYPE`` for the not-yet-loaded OpenBLAS; return what was chosen (or None)."""
    wanted = os.environ.get("FASTMLP_OPENBLAS_CORETYPE", "auto").strip()
    if wanted.lower() in {"off", "none", ""} or "OPENBLAS_CORETYPE" in os.environ:
        return os.environ.get("OPENBLAS_CORETYPE")
    if wanted.lower() == "auto":
        flags = _cpu_flags()
        if not {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= flags:
            return None
        wanted = "SkylakeX"
    if _scipy_blas_loaded():
        # too late for this process: the library already chose; `fastmlp info` reports what it chose
        return None
    os.environ["OPENBLAS_CORETYPE"] = wanted
    return wanted


CHOSEN_CORETYPE = choose_coretype()
