"""The timing harness: every time fastmlp reports (benchmarks, asv, the demo, scripts) is measured here.

Rules it implements (docs/DESIGN.md, "Workloads"): warm up before timing (compilation, caches, lazy
imports); report the median of repeated calls, or the best of a few for the demo's short runs; a speedup
is a ratio of two times measured in the same run, interleaved so that the machine's load hits both alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

__all__ = ["median_time", "call_times", "interleaved_medians", "speedup", "per_call", "time_within_budget",
           "cpu_seconds", "format_seconds"]


def median_time(f: Callable[[], object], reps: int = 5, *, warmup: bool = True) -> float:
    """Median wall time in seconds of ``reps`` calls of ``f`` (after one untimed warm-up call)."""
    if warmup:
        f()
    times = []
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def call_times(f: Callable[[], object], reps: int = 5, min_seconds: float = 0.0, *, warmup: bool = True,
               running: bool = False) -> list[float]:
    """Seconds of each timed call of ``f``: at least ``reps`` calls, and more until the timed calls add up to
    ``min_seconds`` (so a fast call is timed many times, not over a few milliseconds of the machine's life),
    after one untimed warm-up call.

    A call's time is its wall time or, with ``running``, the smaller of its wall time and this process's CPU
    time during it: the time the call ran, without the time other processes held the CPU. On a busy machine a
    long call is almost always preempted and a short one mostly not, so that wall-clock medians would favour
    the implementation with the shorter calls; the CPU time of a call that runs on one thread is its wall time
    on a quiet machine, preemption left out. A call that keeps several threads busy has more CPU time than wall
    time, and its wall time counts (preemption included, which can only count against it).
    """
    if warmup:
        f()
    times: list[float] = []
    total = 0.0
    while len(times) < max(1, reps) or total < min_seconds:
        c0 = time.process_time()
        t0 = time.perf_counter()
        f()
        wall = time.perf_counter() - t0
        times.append(min(wall, time.process_time() - c0) if running else wall)
        total += wall
    return times


def interleaved_medians(fs: Mapping[str, Callable[[], object]], reps: int = 5, *, warmup: bool = True
                        ) -> dict[str, float]:
    """Median seconds per call of each of ``fs``, their calls interleaved (``a, b, a, b, ...``)."""
    if warmup:
        for f in fs.values():
            f()
    times: dict[str, list[float]] = {name: [] for name in fs}
    for _ in range(max(1, reps)):
        for name, f in fs.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def speedup(slow: Callable[[], object], fast: Callable[[], object], reps: int = 5) -> float:
    """``time(slow) / time(fast)``, both measured here, interleaved, median of ``reps`` calls each."""
    t = interleaved_medians({"slow": slow, "fast": fast}, reps)
    return t["slow"] / t["fast"]


def per_call(run: Callable[[int], object], target: float, *, best_of: int = 3) -> float:
    """Seconds per unit of ``run(n)`` (e.g. per epoch): ``n`` grows until one call lasts ``target``
    seconds, then the best of ``best_of`` calls of that ``n`` is divided by ``n``."""
    n = 1
    while True:
        t0 = time.perf_counter()
        run(n)
        t = time.perf_counter() - t0
        if t >= target or n >= 1 << 20:
            break
        n *= max(2, min(16, int(target / max(t, 1e-7)) + 1))
    best = t / n
    for _ in range(best_of - 1):
        t0 = time.perf_counter()
        run(n)
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def time_within_budget(f: Callable[[], object], budget: float) -> float:
    """Seconds per call of ``f``: as many calls as fit in ``budget`` seconds of wall time (at least one)."""
    calls, started = 0, time.perf_counter()
    while True:
        f()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= budget:
            return elapsed / calls


def cpu_seconds(f: Callable[[], object]) -> float:
    """CPU seconds of this process spent in one call of ``f`` (what a loaded, shared machine distorts least
    when BLAS runs on one thread)."""
    start = time.process_time()
    f()
    return time.process_time() - start


def format_seconds(seconds: float) -> str:
    """``1.2 us``, ``3.45 ms`` or ``1.23 s``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"
