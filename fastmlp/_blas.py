"""Which BLAS kernels run fastmlp's matrix products, and whether they are the fastest this CPU allows.

Numba's ``np.dot`` and fastmlp's direct ``gemm`` calls go through SciPy's bundled OpenBLAS. OpenBLAS picks
its kernel family (``Haswell``, ``SkylakeX``, ...) when it is loaded: from the CPU, unless the environment
variable ``OPENBLAS_CORETYPE`` names one. fastmlp never sets or changes that variable -- it is a
process-wide choice that belongs to the user (some machines set it on purpose, e.g. to avoid a kernel
family that an older OpenBLAS gets wrong on their CPU). ``fastmlp info`` reports the family in use and says
when it is below what the CPU supports: :func:`report` here.

Nothing in this module runs at ``import fastmlp``.
"""

from __future__ import annotations

import os

__all__ = ["cpu_flags", "cpu_tier", "kernel_tier", "verdict", "report"]

#: instruction-set tiers, slowest first
TIERS = ("SSE", "AVX", "AVX2", "AVX-512")

#: OpenBLAS x86-64 kernel families (as threadpoolctl reports them, lower case) -> the tier they use
_FAMILY_TIER = {
    **dict.fromkeys(("prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "opteron", "opteron_sse3",
                     "barcelona", "bobcat", "katmai", "coppermine", "northwood", "banias"), 0),
    **dict.fromkeys(("sandybridge", "bulldozer", "piledriver", "steamroller"), 1),
    **dict.fromkeys(("haswell", "zen", "excavator"), 2),
    **dict.fromkeys(("skylakex", "cooperlake", "sapphirerapids"), 3),
}


def cpu_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where that file does not exist)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_tier(flags) -> int | None:
    """Index in :data:`TIERS` of the widest vector instructions ``flags`` allow (None: no x86 flags)."""
    flags = set(flags)
    if not flags or not ({"sse2", "avx", "avx2"} & flags):
        return None
    if {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= flags:
        return 3
    if {"avx2", "fma"} <= flags:
        return 2
    if "avx" in flags:
        return 1
    return 0


def kernel_tier(family) -> int | None:
    """Index in :data:`TIERS` of an OpenBLAS kernel family (None when unknown, e.g. not x86)."""
    if not family:
        return None
    return _FAMILY_TIER.get(str(family).strip().lower())


def verdict(family, flags, coretype=None) -> str | None:
    """A warning when kernel ``family`` uses narrower vectors than the CPU's ``flags`` allow, else None.

    ``coretype`` is the value of ``OPENBLAS_CORETYPE`` (when set, the warning says that it made the choice).
    """
    have, use = cpu_tier(flags), kernel_tier(family)
    if have is None or use is None or use >= have:
        return None
    why = (f"OPENBLAS_CORETYPE={coretype} is set in the environment; unset it to let OpenBLAS choose"
           if coretype else "this OpenBLAS does not recognise the CPU")
    return (f"slower than this CPU allows: {family} kernels ({TIERS[use]}) on a CPU with {TIERS[have]} "
            f"({why})")


def _scipy_openblas():
    """threadpoolctl's record of the BLAS that Numba calls (SciPy's), or None; loads SciPy's BLAS."""
    import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS, the one Numba calls)
    from threadpoolctl import threadpool_info

    libs = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    for lib in libs:
        if os.path.basename(os.path.dirname(lib.get("filepath", ""))).lower().startswith("scipy"):
            return lib, libs
    return (libs[0] if libs else None), libs


def report() -> list[tuple[str, str]]:
    """``(label, text)`` rows for ``fastmlp info``: each BLAS library, its kernel family, and the verdict."""
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    rows = [("OPENBLAS_CORETYPE", f"{coretype} (set in the environment, not by fastmlp)" if coretype
             else "unset (OpenBLAS chooses its kernels from the CPU)")]
    try:
        import scipy  # noqa: F401
    except ImportError:
        return rows + [("BLAS", "scipy not installed")]
    try:
        ours, libs = _scipy_openblas()
    except ImportError:
        return rows + [("BLAS", "install threadpoolctl to see which BLAS library and kernels are in use")]
    if not libs:
        return rows + [("BLAS", "no BLAS library found by threadpoolctl")]
    for lib in libs:
        folder = os.path.basename(os.path.dirname(lib.get("filepath", ""))).lower()
        label = "BLAS (SciPy, used by fastmlp)" if lib is ours else "BLAS (NumPy)" if folder.startswith("numpy") \
            else "BLAS"
        rows.append((label, f"{lib.get('internal_api')} {lib.get('version')}, kernels {lib.get('architecture')}, "
                            f"{lib.get('num_threads')} threads, {lib.get('threading_layer')} threading"))
        rows.append((f"{label} file", lib.get("filepath", "?")))
    family = ours.get("architecture") if ours else None
    warning = verdict(family, cpu_flags(), coretype)
    if warning:
        rows.append(("BLAS kernels", warning))
    elif kernel_tier(family) is not None and cpu_tier(cpu_flags()) is not None:
        rows.append(("BLAS kernels", f"{family}: the widest vector instructions this CPU has"))
    else:
        rows.append(("BLAS kernels", f"{family or 'unknown'} (not compared with the CPU)"))
    return rows
