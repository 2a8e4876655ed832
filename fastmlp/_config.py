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
``FASTMLP_SUBNORMALS``
    ``"flush"`` (default) or ``"keep"``. With ``flush``, the training kernels run with the CPU's flush-to-zero
    mode on (x86: MXCSR's FTZ bit, set when a kernel starts and restored before it returns; elsewhere
    nothing changes): a result below the dtype's smallest normal number (2.2e-308 float64, 1.2e-38 float32)
    is stored as 0 instead of as a subnormal. Arithmetic on subnormals takes the CPU a slow path: with Adam and
    ``alpha > 0`` the weights of inputs that are always 0 (the blank pixels of digits) decay into that range
    and made a float32 digits epoch about 15% slower from the first epochs on, a float64 one after about 120
    epochs. Values differ from IEEE arithmetic's only below that bound (the tests' ``atol`` is far above it).
    ``keep`` computes with subnormals as NumPy does; like other non-default settings it turns the disk cache off.
``FASTMLP_BLAS_MIN_FLOPS``
    Layers whose matrix product has fewer multiply-adds than this use compiled loops;
    larger ones call BLAS (see ``fastmlp._kernels``). Default 256 (measured, see README). An integer in
    ``[0, 2**63 - 1]``.

A malformed value raises ``ValueError`` naming the variable when fastmlp's kernels are first imported.

fastmlp never sets environment variables; ``OPENBLAS_CORETYPE`` is the user's (see :mod:`fastmlp._blas`).
"""

from __future__ import annotations

import hashlib
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


def _flush_subnormals() -> bool:
    raw = os.environ.get("FASTMLP_SUBNORMALS", "flush").strip().lower()
    if raw not in ("flush", "keep"):
        raise ValueError(f"FASTMLP_SUBNORMALS must be 'flush' or 'keep', got {raw!r}")
    return raw == "flush"


def _use_cache(fastmath: frozenset[str], flush_subnormals: bool = True) -> bool:
    raw = os.environ.get("FASTMLP_CACHE", "1")
    if raw.strip().lower() in _NO:
        return False
    if raw.strip().lower() not in _YES:
        raise ValueError(f"FASTMLP_CACHE must be 1 or 0 (or true/false, yes/no, on/off), got {raw!r}")
    if fastmath != DEFAULT_FASTMATH or not flush_subnormals:
        # Numba's cache index is keyed on the code and the signature, not on the fast-math flags (nor on the
        # subnormal mode): a kernel cached under other settings would be loaded as it is, silently ignoring these
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


#: the modules whose code is compiled into fastmlp's kernels (a kernel defined in one inlines or calls code of the
#: others, and reads this module's options); tests/test_compile_cache.py checks that every module with Numba
#: code is listed
KERNEL_MODULES = ("_config.py", "_kernels.py", "_kernels_tiny.py", "_kernels_general.py", "_small_products.py",
                  "_elementary.py")
_SOURCE_DIGEST: list = []


def source_digest() -> bytes:
    """SHA-256 of the sources of :data:`KERNEL_MODULES`, read once per process."""
    if not _SOURCE_DIGEST:
        digest = hashlib.sha256()
        for name in KERNEL_MODULES:
            # through the package's loader, which also reads a package imported from a zip archive; a source it
            # cannot read (a build shipping bytecode only) counts by name, as Numba's own stamp would not see it
            try:
                source = __loader__.get_data(os.path.join(_PACKAGE_DIR, name))
            except OSError:
                source = b"unreadable"
            digest.update(f"{name}:{len(source)}:".encode())
            digest.update(source)
        _SOURCE_DIGEST.append(digest.digest())
    return _SOURCE_DIGEST[0]


def _install_cache_stamp() -> None:
    """Make Numba's disk cache of fastmlp's kernels depend on the sources of every kernel module.

    Numba keys a cached function on the source stamp of the one file that defines it, but a kernel defined in
    ``_kernels.py`` also holds code of ``_kernels_tiny.py`` and ``_small_products.py``: after an upgrade or an
    edit of those alone, the old machine code would be loaded, silently wrong. For functions defined in this
    package, each of Numba's source-file cache locators is given a subclass whose stamp is
    :func:`source_digest` (together with Numba's own stamp for a file outside :data:`KERNEL_MODULES`); other
    packages' functions keep Numba's locators. Works with the locator classes of Numba 0.59 to 0.68 (private
    ``_CacheImpl`` and ``_InTreeCacheLocator`` in older versions, public names in newer ones).
    """
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    mixin = caching._SourceFileBackedLocatorMixin
    if any(getattr(cls, "_fastmlp_stamp", False) for cls in impl._locator_classes):
        return

    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != _PACKAGE_DIR:
            return None
        return cls._fastmlp_base.from_function.__func__(cls, py_func, py_file)

    def get_source_stamp(self):
        if os.path.basename(self._py_file) in KERNEL_MODULES:
            return ("fastmlp", source_digest())
        return ("fastmlp", source_digest(), self._fastmlp_base.get_source_stamp(self))

    ours = [type(f"FastMLP{base.__name__.lstrip('_')}", (base,),
                 {"__module__": __name__, "_fastmlp_stamp": True, "_fastmlp_base": base,
                  "from_function": classmethod(from_function), "get_source_stamp": get_source_stamp})
            for base in impl._locator_classes if issubclass(base, mixin)]
    impl._locator_classes = ours + list(impl._locator_classes)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
FASTMATH: frozenset[str] = _fastmath_flags()
#: the training kernels run with flush-to-zero on (``FASTMLP_SUBNORMALS``, see above)
FLUSH_SUBNORMALS: bool = _flush_subnormals()
CACHE: bool = _use_cache(FASTMATH, FLUSH_SUBNORMALS)
if CACHE:
    _install_cache_stamp()
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
#: the per-step kernels (``_kernels.jit_step``): without Numba's reference counting (NRT). Their call from Python
#: then unboxes each argument array as a plain view (no memory-info block allocated, no reference taken and
#: dropped under the GIL) and nothing in them counts references: on a tiny network that halves the cost of a
#: call. Such a kernel cannot allocate (it does not compile), so every array in it is an argument, an element
#: of an argument tuple or a view of one, which the Python caller holds for the whole call (docs/DESIGN.md, §5)
STEP_JIT_OPTIONS = {**JIT_OPTIONS, "_nrt": False}
INTERNAL_JIT_OPTIONS = {**JIT_OPTIONS, "no_cpython_wrapper": True, "no_cfunc_wrapper": True}
EXACT_INTERNAL_JIT_OPTIONS = {**EXACT_JIT_OPTIONS, "no_cpython_wrapper": True, "no_cfunc_wrapper": True}
