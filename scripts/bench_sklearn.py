"""Per-epoch training time of fastmlp.MLPClassifier vs scikit-learn's MLPClassifier, side by side in one run.

The workloads are the registry's scikit-learn ones (``fastmlp.workloads.ESTIMATOR_WORKLOADS``):
S1-cancer-sgd (breast cancer, hidden (64, 32), batch 32, SGD with Nesterov momentum) and
S2-digits-adam (digits, hidden (128,), batch 32, Adam). Both estimators get the same constructor
arguments; each timed call is a warm-started ``fit`` of the workload's epochs, so the time per epoch
includes the per-``fit`` input validation a user pays. Repetitions of the two implementations are
interleaved and the median is reported (``fastmlp._timing``). The last column checks that the two
trained the same weights (largest relative difference after the same epochs from the same ``random_state``).

Usage::

    python scripts/bench_sklearn.py [--repeat 15] [--dtype float64 float32] [--workloads S1 S2]
"""

from __future__ import annotations

import argparse
import platform
import warnings

import numpy as np


def _same_weights(workload, dtype) -> float:
    """Largest relative difference of the weights of both estimators after the workload's epochs."""
    X, y = workload.make_data(dtype)
    fitted = []
    for impl in ("sklearn", "fastmlp"):
        est = workload.estimator_class(impl)(**workload.sklearn_params())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
        fitted.append(est.coefs_ + est.intercepts_)
    return max(
        float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-3)))
        for a, b in zip(fitted[0], fitted[1], strict=True)
    )


def bench(names, dtypes, repeat):
    from fastmlp import _timing, workloads

    rows = []
    for name in names:
        w = workloads.get(name)
        for dtype in dtypes:
            runs = {impl: w.build(impl, dtype) for impl in ("sklearn", "fastmlp")}  # built warm
            t = _timing.interleaved_medians(runs, repeat, warmup=False)
            sk_ms, fm_ms = (1e3 * t[impl] / w.epochs for impl in ("sklearn", "fastmlp"))
            rows.append((w.name, dtype, sk_ms, fm_ms, sk_ms / fm_ms, _same_weights(w, dtype)))
            print(_format_row(rows[-1]), flush=True)
    return rows


def _format_row(row):
    name, dtype, sk_ms, fm_ms, ratio, diff = row
    return f"| {name:<15} | {dtype:<7} | {sk_ms:>12.3f} | {fm_ms:>12.3f} | {ratio:>6.1f}x | {diff:>9.1e} |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed calls per implementation (default 15)")
    parser.add_argument("--dtype", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    parser.add_argument("--workloads", nargs="+", default=["S1-cancer-sgd", "S2-digits-adam"])
    args = parser.parse_args(argv)

    import numba
    import sklearn

    import fastmlp

    print(f"fastmlp {fastmlp.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
          f"numba {numba.__version__}, Python {platform.python_version()}, {platform.machine()}")
    print("per-epoch training time, median of interleaved warm-started fits (ms)\n")
    print("| workload        | dtype   | scikit-learn |      fastmlp | speedup |  max diff |")
    print("|-----------------|---------|-------------:|-------------:|--------:|----------:|")
    bench(args.workloads, args.dtype, args.repeat)


if __name__ == "__main__":
    main()
