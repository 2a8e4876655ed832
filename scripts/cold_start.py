"""Cold-start latency: ``import fastmlp`` + the first ``fit`` in a fresh interpreter, cold and warm cache.

Runs two fresh processes that share an empty ``NUMBA_CACHE_DIR``: the first compiles every kernel it
needs (cold cache), the second loads them from that cache (warm cache). Besides the wall-clock times each
prints its CPU time, which other processes on a busy machine inflate much less. The asv suite tracks the same
thing as ``training.ColdStart``.

``--repeat N`` runs the pair N times and prints every run and the medians. ``--breakdown`` adds one more
cold process that reports where its compilation went: per compiled function (and signature) the CPU time
including the functions it compiled on the way, its own share, and the part of that spent in LLVM
(optimisation and machine code, Numba's ``numba:llvm_lock`` event); then the process's floor, the CPU
time of ``import numba`` and of Numba's first compilation of a trivial function (its one-time set-up).

``--warm-breakdown`` fills a cache and then, in as many fresh processes as ``--repeat`` says, splits a warm
process's CPU time: the imports (NumPy, Numba, SciPy's BLAS), Numba's registries, fastmlp's modules, and the
first fit's cache load (index, kernel file, LLVM object code, linking) and the rest of the fit.

``--numba-floor`` times what a warm start of any Numba program costs: a fresh process that imports NumPy and
Numba and calls one disk-cached ``@njit`` function, next to fastmlp's warm first fit in the same run.

usage: python scripts/cold_start.py [--repeat N] [--breakdown] [--warm-breakdown] [--numba-floor]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import time
t0, c0 = time.perf_counter(), time.process_time()
import numpy as np
import fastmlp
t1 = time.perf_counter()
rng = np.random.RandomState(0)
X = rng.randn(30, 569)
Y = (rng.rand(1, 569) < 0.5).astype(float)
fastmlp.MLP([30, 64, 32, 1], seed=1).fit(X, Y, epochs=1, learning_rate=0.05, batch_size=32)
t2, c2 = time.perf_counter(), time.process_time()
print(f"import {t1 - t0:.2f} s, first fit (W3 network) {t2 - t1:.2f} s, total {t2 - t0:.2f} s "
      f"(CPU time {c2 - c0:.2f} s)")
"""

BREAKDOWN = r"""
import collections, time
from numba.core import event

class Recorder(event.Listener):
    def __init__(self):
        self.events = []
    def on_start(self, ev):
        self.events.append((time.process_time(), ev))
    def on_end(self, ev):
        self.events.append((time.process_time(), ev))

recorder = Recorder()
event.register("numba:compile", recorder)
event.register("numba:llvm_lock", recorder)
c0 = time.process_time()
import numpy as np
import fastmlp
rng = np.random.RandomState(0)
X = rng.randn(30, 569)
Y = (rng.rand(1, 569) < 0.5).astype(float)
fastmlp.MLP([30, 64, 32, 1], seed=1).fit(X, Y, epochs=1, learning_rate=0.05, batch_size=32)
total = time.process_time() - c0
stack, rows = [], []
for stamp, ev in recorder.events:
    if ev.is_start:
        stack.append([stamp, ev, 0.0, 0.0])  # start, event, time in nested compilations, own LLVM time
        continue
    start, _, nested, llvm = stack.pop()
    spent = stamp - start
    if ev.kind == "numba:llvm_lock":
        if stack:
            stack[-1][3] += spent
        continue
    if stack:
        stack[-1][2] += spent
    depth = sum(1 for entry in stack if entry[1].kind == "numba:compile")
    name = ev.data["dispatcher"].py_func.__qualname__.split(".<locals>")[0]
    rows.append((name, str(ev.data["args"]), spent, spent - nested, llvm, depth))
print(f"import + first fit: CPU {total:.2f} s; in compilation {sum(r[3] for r in rows):.2f} s, "
      f"of which LLVM {sum(r[4] for r in rows):.2f} s")
print("  incl.   own  LLVM  function (signature), nested under its caller")
for name, args, spent, own, llvm, depth in rows:
    if spent >= 0.02:
        print(f"  {spent:5.2f} {own:5.2f} {llvm:5.2f}  {'  ' * depth}{name} {args[:70]}")
"""

WARM = r"""
import collections, sys, time
spent = collections.Counter()
c0 = time.process_time()
def step(label, since):
    now = time.process_time()
    spent[label] += now - since
    return now
t = step("interpreter start to here", c0)
import numpy as np
t = step("import numpy", t)
import numba
t = step("import numba", t)
import numba.np.linalg  # noqa: F401
t = step("import numba.np.linalg (fastmlp's kernels need it)", t)
import scipy.linalg  # noqa: F401
t = step("import scipy.linalg (Numba's BLAS check imports it; its BLAS is what kernels call)", t)
from numba.core import caching, codegen
from numba.core.registry import cpu_target

def timed(owner, name, label):
    inner = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[label] += time.process_time() - start
    setattr(owner, name, wrapper)

cpu_target.typing_context.refresh()
cpu_target.target_context.refresh()
t = step("Numba's typing and lowering registries (refresh: imports and installs them)", t)
import fastmlp.model  # noqa: F401
t = step("import fastmlp's modules (model, engine, kernels: dispatchers made)", t)
timed(caching.IndexDataCacheFile, "_load_index", "  cache: index read and unpickled")
timed(caching.IndexDataCacheFile, "_load_data", "  cache: kernel file read and unpickled")
timed(codegen.JITCPUCodegen, "unserialize_library", "  cache: LLVM object code loaded (llvmlite)")
timed(type(cpu_target.target_context), "get_executable", "  cache: linked, symbols resolved, entry point")
rng = np.random.RandomState(0)
X = rng.randn(30, 569)
Y = (rng.rand(1, 569) < 0.5).astype(float)
model = fastmlp.model.MLP([30, 64, 32, 1], seed=1)
t0 = time.process_time()
model.fit(X, Y, epochs=1, learning_rate=0.05, batch_size=32)
fit = time.process_time() - t0
cache = sum(v for k, v in spent.items() if k.startswith("  cache"))
spent["first fit: loading the kernel from the cache"] = cache
spent["first fit: the rest (validation, workspaces, the epoch itself)"] = fit - cache
total = time.process_time() - c0
print(f"warm start breakdown (CPU s, total {total:.3f}):")
order = ["interpreter start to here", "import numpy", "import numba",
         "import numba.np.linalg (fastmlp's kernels need it)",
         "import scipy.linalg (Numba's BLAS check imports it; its BLAS is what kernels call)",
         "Numba's typing and lowering registries (refresh: imports and installs them)",
         "import fastmlp's modules (model, engine, kernels: dispatchers made)",
         "first fit: loading the kernel from the cache", "  cache: index read and unpickled",
         "  cache: kernel file read and unpickled", "  cache: LLVM object code loaded (llvmlite)",
         "  cache: linked, symbols resolved, entry point",
         "first fit: the rest (validation, workspaces, the epoch itself)"]
for label in order:
    print(f"  {spent[label]:6.3f}  {label}")
"""

FLOOR = r"""
import time
c0 = time.process_time()
import numba
c1 = time.process_time()
@numba.njit
def one(x):
    return x + 1
one(1.0)
c2 = time.process_time()
print(f"floor: import numba {c1 - c0:.2f} s CPU, Numba's first compilation (set-up) {c2 - c1:.2f} s CPU")
"""


#: the least a warm start of any Numba program costs: a fresh interpreter that imports NumPy and Numba and calls
#: one disk-cached ``@njit`` function (run twice in one cache directory: the second is warm)
NUMBA_FLOOR = r"""
import time
w0, c0 = time.perf_counter(), time.process_time()
import numpy as np
import numba
import numba.np.linalg  # (as fastmlp's kernels: Numba's BLAS helpers)
@numba.njit(cache=True)
def total(x):
    return x.sum()
total(np.ones(3))
print(f"one cached @njit call in a fresh process: {time.perf_counter() - w0:.2f} s wall, "
      f"{time.process_time() - c0:.2f} s CPU (the interpreter's own start-up not counted)")
"""


def _run(code, env):
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def _cpu(line):
    return float(line.rsplit("CPU time ", 1)[1].split()[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="cold/warm pairs to run (medians printed)")
    parser.add_argument("--breakdown", action="store_true", help="per-function compile times of a cold fit")
    parser.add_argument("--warm-breakdown", action="store_true",
                        help="where a warm-cache process's CPU time goes (imports, Numba's set-up, cache load)")
    parser.add_argument("--numba-floor", action="store_true",
                        help="what a warm start of any Numba program costs (one cached @njit call, fresh process)")
    args = parser.parse_args(argv)
    runs = {"cold cache": [], "warm cache": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache, FASTMLP_CACHE="1")
            for label in runs:
                line = _run(CHILD, env)
                runs[label].append(line)
                print(f"{label}: {line}")
    if args.repeat > 1:
        for label, lines in runs.items():
            print(f"{label}: median CPU time {statistics.median(map(_cpu, lines)):.2f} s over {args.repeat} runs")
    if args.breakdown:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache, FASTMLP_CACHE="1")
            print(_run(BREAKDOWN, env))
            print(_run(FLOOR, env))
    if args.warm_breakdown:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache, FASTMLP_CACHE="1")
            _run(CHILD, env)  # fills the cache
            for _ in range(max(1, args.repeat)):
                print(_run(WARM, env))
    if args.numba_floor:
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as src:
            script = os.path.join(src, "floor.py")  # (a file: Numba caches functions of files, not of -c code)
            with open(script, "w") as f:
                f.write(NUMBA_FLOOR)
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            run = [sys.executable, script]
            subprocess.run(run, env=env, capture_output=True, check=True)  # fills the cache
            for _ in range(max(1, args.repeat)):
                print("warm Numba floor:", subprocess.run(run, env=env, capture_output=True, text=True,
                                                         check=True).stdout.strip())
    with open("/proc/loadavg") if os.path.exists("/proc/loadavg") else open(os.devnull) as f:
        load = f.read().split()[:3]
    if load:
        print(f"load average {' '.join(load)}")


if __name__ == "__main__":
    main()
