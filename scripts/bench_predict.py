"""Inference latency of fastmlp.MLPClassifier vs scikit-learn's MLPClassifier, side by side in one run.

For each registered scikit-learn workload (``fastmlp.workloads.ESTIMATOR_WORKLOADS``: S1 breast cancer,
S2 digits) both estimators are fitted for one epoch with the same arguments, then ``predict`` and
``predict_proba`` are timed on all the workload's rows and on one row (the latency of a single request).
With all rows, the bare matrix products of the forward pass (SciPy's BLAS, which fastmlp's kernels call,
into preallocated outputs) are timed in the same interleaving: the "GEMM floor" row, and the largest
speedup over scikit-learn that any forward pass on that BLAS could reach.
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

import numpy as np


def _batched(run, calls):
    def many():
        for _ in range(calls):
            run()

    return many


def _gemm_floor(estimator, X):
    """The bare matrix products of a forward pass over ``X`` (rows), through the BLAS that fastmlp's kernels
    call (SciPy's), into preallocated outputs: what no implementation of the forward pass can beat."""
    from scipy.linalg import blas

    gemm = blas.dgemm if X.dtype == "float64" else blas.sgemm
    weights = estimator._net.weights  # (n_out, n_in), C order: as Fortran (n_in, n_out), transposed by a flag
    outs = [np.zeros((W.shape[0], X.shape[0]), X.dtype, order="F") for W in weights]  # (n_out, m): rows as C

    def run():
        src = X
        for W, out in zip(weights, outs, strict=True):
            gemm(1.0, W.T, src.T, trans_a=1, beta=0.0, c=out, overwrite_c=1)
            src = out.T

    return run


def bench(names, dtypes, reps):
    from fastmlp import _timing, workloads

    for name in names:
        w = workloads.get(name)
        for dtype in dtypes:
            for method in ("predict", "predict_proba"):
                for rows in ("all", "one"):
                    runs = {impl: w.build_predict(impl, dtype, method, rows) for impl in ("sklearn", "fastmlp")}
                    floor = rows == "all" and method == "predict"
                    if floor:
                        runs["floor"] = _gemm_floor(runs["fastmlp"].estimator, w.make_data(dtype)[0])
                    one = _timing.median_time(runs["fastmlp"], reps=3)
                    calls = max(1, int(2e-3 / max(one, 1e-7)))  # about 2 ms per timed sample
                    t = _timing.interleaved_medians({k: _batched(r, calls) for k, r in runs.items()}, reps=reps)
                    sk, fm = t["sklearn"] / calls, t["fastmlp"] / calls
                    m = w.m if rows == "all" else 1
                    print(f"| {w.name} | {dtype} | {method} | {m} | {_timing.format_seconds(sk)} | "
                          f"{_timing.format_seconds(fm)} | {sk / fm:.1f}x |", flush=True)
                    if floor:
                        gf = t["floor"] / calls
                        print(f"| {w.name} | {dtype} | GEMM floor (the products alone) | {m} | | "
                              f"{_timing.format_seconds(gf)} | at most {sk / gf:.1f}x |", flush=True)


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
