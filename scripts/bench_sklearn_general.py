"""fastmlp vs scikit-learn on the estimator paths beyond unweighted dense sgd/adam, side by side in one run.

Rows: L-BFGS (the whole-data loss and gradient in one compiled call per evaluation), Adam with sample
weights, Adam and L-BFGS on a sparse CSR ``X``, and the Poisson loss. Each timed call is a complete ``fit``
from the same ``random_state`` (same iterations for both: ``tol=0`` with a fixed ``max_iter``). The time is
the process's CPU time with BLAS held to one thread for both (``threadpoolctl``), the best of ``--repeat``
interleaved fits: on a shared, loaded machine wall-clock times mostly measure the other processes. The last
column is the largest difference of the fitted weights relative to the largest weight of their array (after
100 L-BFGS iterations that have not converged, rounding differences have been amplified; see
``scripts/lbfgs_agreement.py``).

Usage::

    python scripts/bench_sklearn_general.py [--repeat 3] [--dtype float64 float32]
"""

from __future__ import annotations

import argparse
import platform
import warnings

import numpy as np

from fastmlp._timing import cpu_seconds


def _cases():
    import scipy.sparse as sp
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
    from sklearn.preprocessing import StandardScaler

    Xc, yc = load_breast_cancer(return_X_y=True)
    Xc = StandardScaler().fit_transform(Xc)
    Xd, yd = load_digits(return_X_y=True)
    Xd = Xd / 16.0  # about half zeros: a natural sparse input
    Xr, yr = load_diabetes(return_X_y=True)
    Xr = StandardScaler().fit_transform(Xr)
    weights = np.random.RandomState(0).randint(1, 4, len(yd)).astype(float)
    return [
        ("cancer, (64, 32), L-BFGS, 100 it", "MLPClassifier", Xc, yc, None,
         dict(solver="lbfgs", hidden_layer_sizes=(64, 32), max_iter=100, tol=0.0)),
        ("digits, (128,), L-BFGS, 100 it", "MLPClassifier", Xd, yd, None,
         dict(solver="lbfgs", hidden_layer_sizes=(128,), max_iter=100, tol=0.0)),
        ("digits CSR, (128,), L-BFGS, 100 it", "MLPClassifier", sp.csr_matrix(Xd), yd, None,
         dict(solver="lbfgs", hidden_layer_sizes=(128,), max_iter=100, tol=0.0)),
        ("digits, (128,), Adam, weights, 10 ep", "MLPClassifier", Xd, yd, weights,
         dict(solver="adam", hidden_layer_sizes=(128,), max_iter=10, tol=0.0, batch_size=32)),
        ("digits CSR, (128,), Adam, 10 ep", "MLPClassifier", sp.csr_matrix(Xd), yd, None,
         dict(solver="adam", hidden_layer_sizes=(128,), max_iter=10, tol=0.0, batch_size=32)),
        ("diabetes, (32,), Poisson, L-BFGS, 100 it", "MLPRegressor", Xr, np.round(yr / 25), None,
         dict(loss="poisson", solver="lbfgs", hidden_layer_sizes=(32,), max_iter=100, tol=0.0)),
    ]


def _fit(cls, X, y, w, params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(random_state=0, **params).fit(X, y, sample_weight=w)


def _cpu_seconds(cls, X, y, w, params):
    return cpu_seconds(lambda: _fit(cls, X, y, w, params))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed fits per implementation (default 3)")
    parser.add_argument("--dtype", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    args = parser.parse_args(argv)

    import numba
    import sklearn
    from sklearn import neural_network as sk
    from threadpoolctl import threadpool_limits

    import fastmlp

    print(f"fastmlp {fastmlp.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
          f"numba {numba.__version__}, Python {platform.python_version()}, {platform.machine()}")
    print("CPU time of one complete fit, BLAS on one thread, best of interleaved runs (ms)\n")
    print("| workload | dtype | scikit-learn | fastmlp | speedup | max weight difference |")
    print("|---|---|--:|--:|--:|--:|")
    for name, cls_name, X, y, w, params in _cases():
        for dtype in args.dtype:
            Xt = X.astype(dtype)
            classes = {"sklearn": getattr(sk, cls_name), "fastmlp": getattr(fastmlp, cls_name)}
            with threadpool_limits(1):
                ref, ours = (_fit(classes[impl], Xt, y, w, params) for impl in ("sklearn", "fastmlp"))  # warm
                times = {impl: [] for impl in classes}
                for _ in range(args.repeat):
                    for impl, cls in classes.items():
                        times[impl].append(_cpu_seconds(cls, Xt, y, w, params))
            times = {impl: min(ts) for impl, ts in times.items()}
            diff = max(float(np.abs(a - b).max() / np.abs(b).max())
                       for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_, strict=True))
            sk_ms, fm_ms = 1e3 * times["sklearn"], 1e3 * times["fastmlp"]
            print(f"| {name} | {dtype} | {sk_ms:.1f} ms | {fm_ms:.1f} ms | {sk_ms / fm_ms:.1f}x | {diff:.1e} |",
                  flush=True)


if __name__ == "__main__":
    main()
