"""Numba options for every fastmlp kernel, kept in one place.

Environment overrides (read once, at import):

``FASTMLP_CACHE``
    ``"1"`` (default) caches compiled kernels on disk; ``"0"`` compiles afresh in each process.
    When the cache directory is not writable, caching is switched off with a warning instead of failing.
``FASTMLP_FASTMATH``
    Comma-separated LLVM fast-math flags (any case), a subset of the default
    ``"nsz,arcp,contract,afn,reassoc"``: never ``nnan`` or ``ninf`` (so NaN and inf checks keep working)
    and never ``fast``. Numba's disk cache does not tell flags apart, so with flags other than the default
    the kernels are compiled afresh in every process (the flags always take effect, never a stale kernel).
``FASTMLP_BLAS_MIN_FLOPS``
    Layers whose matrix product has fewer multiply-adds than this use compiled loops;
    larger ones call BLAS (see ``fastmlp._kernels``). Default 256 (measured, see README). An integer in
    ``[0, 2**63 - 1]``.

A malformed value raises ``ValueError`` naming the variable when fastmlp's kernels are first imported.

fastmlp never sets environment variables; ``OPENBLAS_CORETYPE`` is the user's (see :mod:`fastmlp._blas`).
"""

from __future__ import annotations

import os
import tempfile
import warnings

from fastmlp._checks import parse_int

#: LLVM fast-math flags that keep NaN and inf detectable (the default: all of them)
DEFAULT_FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
_FORBIDDEN_FLAGS = {"nnan", "ninf", "fast"}
_NO = {"0", "false", "no", "off"}
_YES = {"1", "true", "yes", "on"}


def _fastmath_flags() -> frozenset[str]:
    raw = os.environ.get("FASTMLP_FASTMATH")
    if raw is None:
        return DEFAULT_FASTMATH
    flags = {f.strip().lower() for f in raw.split(",") if f.strip()}
    bad = flags & _FORBIDDEN_FLAGS
    if bad:
        raise ValueError(f"FASTMLP_FASTMATH may not contain {sorted(bad)} (got {raw!r}): NaN and inf must stay "
                         f"detectable; allowed flags are {', '.join(sorted(DEFAULT_FASTMATH))}")
    unknown = flags - DEFAULT_FASTMATH
    if unknown:
        raise ValueError(f"FASTMLP_FASTMATH holds unknown flags {sorted(unknown)} (got {raw!r}); allowed flags are "
                         f"{', '.join(sorted(DEFAULT_FASTMATH))}, comma separated")
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


def _use_cache(fastmath: frozenset[str]) -> bool:
    raw = os.environ.get("FASTMLP_CACHE", "1")
    if raw.strip().lower() in _NO:
        return False
    if raw.strip().lower() not in _YES:
        raise ValueError(f"FASTMLP_CACHE must be 1 or 0 (or true/false, yes/no, on/off), got {raw!r}")
    if fastmath != DEFAULT_FASTMATH:
        # Numba's cache index is keyed on the code and the signature, not on the fast-math flags: a kernel
        # cached under other flags would be loaded as it is, silently ignoring these
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
CACHE: bool = _use_cache(FASTMATH)
#: kernels take it as an int64: larger values could not reach them
BLAS_MIN_FLOPS: int = parse_int(os.environ.get("FASTMLP_BLAS_MIN_FLOPS", "256"), "FASTMLP_BLAS_MIN_FLOPS",
                                minimum=0, maximum=2**63 - 1)

#: keyword arguments for every ``@njit`` in fastmlp
JIT_OPTIONS = {"cache": CACHE, "fastmath": set(FASTMATH), "nogil": True, "error_model": "numpy"}
#: the same without any fast-math flag, for the few expressions whose order of operations is the point
#: (LLVM keeps an instruction's own flags when it inlines it into a fast-math caller)
EXACT_JIT_OPTIONS = {**JIT_OPTIONS, "fastmath": False}
#: the tiny networks' training kernel (fastmlp._kernels_tiny): without "reassoc", so that LLVM leaves its short
#: reductions (two to a few dozen terms) as plain loops instead of adding vector versions with run-time trip-count
#: checks, which cost a 2-2-1 network more than the arithmetic (sums then also run in their written order)
TINY_JIT_OPTIONS = {**JIT_OPTIONS, "fastmath": set(FASTMATH - {"reassoc"})}
#: for kernels only other kernels call: no wrappers for calls from Python (less to compile)
INTERNAL_JIT_OPTIONS = {**JIT_OPTIONS, "no_cpython_wrapper": True, "no_cfunc_wrapper": True}
EXACT_INTERNAL_JIT_OPTIONS = {**EXACT_JIT_OPTIONS, "no_cpython_wrapper": True, "no_cfunc_wrapper": True}
