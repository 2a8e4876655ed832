"""Numba options for every fastmlp kernel, kept in one place.

Environment overrides (read once, at import):

``FASTMLP_CACHE``
    ``"1"`` (default) caches compiled kernels on disk; ``"0"`` compiles afresh in each process.
    When the cache directory is not writable, caching is switched off with a warning instead of failing.
``FASTMLP_FASTMATH``
    Comma-separated LLVM fast-math flags. Default ``"nsz,arcp,contract,afn,reassoc"``: never
    ``nnan`` or ``ninf`` (so NaN and inf checks keep working) and never ``fast``.
``FASTMLP_BLAS_MIN_FLOPS``
    Layers whose matrix product has fewer multiply-adds than this use compiled loops;
    larger ones call BLAS (see ``fastmlp._kernels``). Default 256 (measured, see README).

fastmlp never sets environment variables; ``OPENBLAS_CORETYPE`` is the user's (see :mod:`fastmlp._blas`).
"""

from __future__ import annotations

import os
import tempfile
import warnings

_FORBIDDEN_FLAGS = {"nnan", "ninf", "fast"}


def _fastmath_flags() -> frozenset[str]:
    raw = os.environ.get("FASTMLP_FASTMATH", "nsz,arcp,contract,afn,reassoc")
    flags = {f.strip() for f in raw.split(",") if f.strip()}
    bad = flags & _FORBIDDEN_FLAGS
    if bad:
        raise ValueError(f"FASTMLP_FASTMATH may not contain {sorted(bad)}: NaN/inf must stay detectable")
    return frozenset(flags)


def _cache_dir_writable() -> bool:
    """True when Numba can write its cache (NUMBA_CACHE_DIR or the package's __pycache__)."""
    target = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.dirname(__file__), "__pycache__")
    try:
        os.makedirs(target, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
        return True
    except OSError:
        return False


def _use_cache() -> bool:
    if os.environ.get("FASTMLP_CACHE", "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    if not _cache_dir_writable():
        warnings.warn(
            "fastmlp: the Numba cache directory is not writable; kernels will be compiled in every "
            "process (set NUMBA_CACHE_DIR to a writable folder to cache them)",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True


FASTMATH: frozenset[str] = _fastmath_flags()
CACHE: bool = _use_cache()
BLAS_MIN_FLOPS: int = int(os.environ.get("FASTMLP_BLAS_MIN_FLOPS", "256"))

#: keyword arguments for every ``@njit`` in fastmlp
JIT_OPTIONS = {"cache": CACHE, "fastmath": set(FASTMATH), "nogil": True, "error_model": "numpy"}
#: the same without any fast-math flag, for the few expressions whose order of operations is the point
#: (LLVM keeps an instruction's own flags when it inlines it into a fast-math caller)
EXACT_JIT_OPTIONS = {**JIT_OPTIONS, "fastmath": False}
