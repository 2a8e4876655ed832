"""Inference latency of fastmlp.MLPClassifier vs scikit-learn's MLPClassifier, side by side in one run.

For each registered scikit-learn workload (``fastmlp.workloads.ESTIMATOR_WORKLOADS``: S1 breast cancer,
S2 digits) both estimators are fitted for one epoch with the same arguments, then ``predict`` and
``predict_proba`` are timed on all the workload's rows and on one row (the latency of a single request).
Calls are batched so that each timing lasts a few milliseconds; repetitions of the two implementations are
interleaved and the medians are reported, with their ratio. Run it with the OpenBLAS variables unset, as on
a user's machine::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_predict.py [--reps 15] [--dtype float64 float32]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys


def _batched(run, calls):
    def many():
        for _ in range(calls):
            run()

    return many


def bench(names, dtypes, reps):
    from fastmlp import _timing, workloads

    for name in names:
        w = workloads.get(name)
        for dtype in dtypes:
            for method in ("predict", "predict_proba"):
                for rows in ("all", "one"):
                    runs = {impl: w.build_predict(impl, dtype, method, rows) for impl in ("sklearn", "fastmlp")}
                    one = _timing.median_time(runs["fastmlp"], reps=3)
                    calls = max(1, int(2e-3 / max(one, 1e-7)))  # about 2 ms per timed sample
                    t = _timing.interleaved_medians({k: _batched(r, calls) for k, r in runs.items()}, reps=reps)
                    sk, fm = t["sklearn"] / calls, t["fastmlp"] / calls
                    m = w.m if rows == "all" else 1
                    print(f"| {w.name} | {dtype} | {method} | {m} | {_timing.format_seconds(sk)} | "
                          f"{_timing.format_seconds(fm)} | {sk / fm:.1f}x |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--dtype", nargs="+", default=["float64"])
    parser.add_argument("--workloads", nargs="+", default=["S1", "S2"])
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    from fastmlp import workloads

    names = [n for n in workloads.names("estimator") if any(n.startswith(p) for p in args.workloads)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    print(f"commit {commit or '?'}, {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print("| workload | dtype | method | rows | scikit-learn | fastmlp | speedup |")
    print("|---|---|---|--:|--:|--:|--:|")
    bench(names, args.dtype, args.reps)


if __name__ == "__main__":
    main()
