"""Where an epoch's time goes, by function: BLAS kernels, fastmlp's compiled kernels, libm, Python (Linux ``perf``).

A child process builds the workload's fastmlp runner (``fastmlp.workloads``; a ``fastmlp bench`` timing call),
compiles its kernels afresh (``FASTMLP_CACHE=0``, so that Numba still holds their names), writes the address of
every compiled function of the training kernel, then trains for ``--seconds``; ``perf record`` samples it
meanwhile. Samples in JIT code are given to the compiled function they fall in (the layer kernels are separate
functions: ``_affine_activation``, ``_backprop_delta``, ``_cost_and_delta``, ``_layer_update`` -- which holds the
weight-gradient products' set-up and the optimiser step --, ``_train_epochs``), the others to ``perf``'s symbol.
Each share is turned into microseconds per epoch with the child's own CPU time per epoch.

The child runs with ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` unset and ``OPENBLAS_NUM_THREADS=1`` (as
``fastmlp bench``'s BLAS on a user's machine, one thread, so that every sample is the training's)::

    python scripts/epoch_profile.py [--workload S2] [--dtype float64] [--seconds 4] [--warm-fits 5] [--top 25]

``--warm-fits`` sets how many timing calls run before sampling starts (a warm-started estimator's later epochs
can differ: with Adam and ``alpha > 0``, weights of inputs that are always 0 decay into float64's subnormal range
after about 150 epochs, and arithmetic on subnormals is slower).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import gc, json, os, sys, time
from fastmlp import _kernels, _kernels_tiny, workloads
name, dtype, seconds, warm, ready, out = sys.argv[1:7]
w = workloads.get(name)
run = w.build("fastmlp", dtype)
for _ in range(int(warm)):
    run()
funcs = []
for table in (_kernels._TRAIN_KERNELS, getattr(_kernels_tiny, "_TINY_KERNELS", {})):
    for kernel in table.values():
        for cres in kernel.overloads.values():
            library = cres.library
            for chunk in library.get_llvm_str().split("\ndefine ")[1:]:
                symbol = chunk.split("@", 1)[1].split("(", 1)[0].strip('"')
                try:
                    address = library.get_pointer_to_function(symbol)
                except Exception:
                    continue
                if address:
                    funcs.append((address, symbol))
# compiling in this process (no disk cache) leaves objects whose collections during training are not the
# training's own (with the disk cache, warm-started fits trigger none): no collections while sampling
gc.collect()
gc.disable()
open(ready, "w").write("1")
t0, c0, n = time.perf_counter(), time.process_time(), 0
while time.perf_counter() - t0 < float(seconds):
    run()
    n += 1
cpu = time.process_time() - c0
json.dump({"funcs": funcs, "ms_per_epoch": 1e3 * cpu / (n * w.epochs), "calls": n}, open(out, "w"))
"""

#: the compiled kernels a JIT sample is named after (the first that its function's symbol contains)
KERNELS = ("_affine_activation", "_backprop_delta", "_cost_and_delta", "_layer_update", "_apply_derivative",
           "_apply_activation", "_optimizer_step", "_train_epochs_tiny", "_train_epochs", "NRT_")


def _label(symbol: str) -> str:
    for name in KERNELS:
        if name in symbol:
            return "jit " + name.strip("_")
    return "jit (other)"


def profile(workload: str, dtype: str, seconds: float, warm: int, top: int) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(OPENBLAS_NUM_THREADS="1", FASTMLP_CACHE="0")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as tmp:
        ready, out, data = (os.path.join(tmp, n) for n in ("ready", "out.json", "perf.data"))
        child = subprocess.Popen([sys.executable, "-c", CHILD, workload, dtype, str(seconds), str(warm), ready, out],
                                 env=env)
        while not os.path.exists(ready):
            if child.poll() is not None:
                raise SystemExit("the workload's process ended before sampling began")
            time.sleep(0.05)
        subprocess.run(["perf", "record", "-q", "-F", "4000", "-o", data, "-p", str(child.pid), "--", "sleep",
                        str(max(1.0, seconds - 0.5))], check=True, capture_output=True)
        child.wait()
        result = json.load(open(out))
        script = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"], capture_output=True, text=True,
                                check=True).stdout
    funcs = sorted((int(a), s) for a, s in result["funcs"])
    starts = [a for a, _ in funcs]
    counts = collections.Counter()
    for line in script.splitlines():
        parts = line.split(None, 1)
        if not parts:
            continue
        ip, symbol = int(parts[0], 16), (parts[1].strip() if len(parts) > 1 else "[unknown]")
        if symbol.startswith("[unknown]"):
            i = bisect.bisect_right(starts, ip) - 1
            symbol = _label(funcs[i][1]) if i >= 0 and ip - starts[i] < 1 << 20 else "[unknown]"
        counts[symbol.split("+")[0]] += 1
    total = sum(counts.values())
    ms = result["ms_per_epoch"]
    print(f"{workload} {dtype}: {ms:.4f} ms CPU per epoch over {result['calls']} timing calls after {warm} "
          f"(load {os.getloadavg()[0]:.1f}); {total} samples")
    for symbol, n in counts.most_common(top):
        print(f"{100 * n / total:6.2f}%  {1e3 * ms * n / total:8.1f} us/epoch  {symbol}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="S2")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warm-fits", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    profile(args.workload, args.dtype, args.seconds, args.warm_fits, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
