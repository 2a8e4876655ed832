"""First fit on each worker of a Dask LocalCluster, with a cold and then a warm shared compile cache.

Usage::

    python scripts/dask_first_fit.py [--workers 2]

Starts a LocalCluster (worker processes on 127.0.0.1) whose workers all use one fresh, empty
``NUMBA_CACHE_DIR``, runs one small ``MLPClassifier`` fit as the first task of every worker and prints its
time and how many kernels were compiled or loaded; then closes the cluster and starts a new one on the same
(now warm) cache folder and does it again. Also shows the BLAS threads per worker before and after
:class:`fastmlp.dask.FastmlpWorkerPlugin`.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import numpy as np


def first_fit():
    import time
    import warnings

    from sklearn.datasets import load_breast_cancer

    import fastmlp
    from fastmlp.dask import compile_stats

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fastmlp.MLPClassifier((64, 32), max_iter=5, random_state=0).fit(X, y).predict_proba(X)
    seconds = time.perf_counter() - started
    return seconds, compile_stats()


def blas_threads():
    from threadpoolctl import threadpool_info

    return sorted({info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"})


def run(cache_dir: str, n_workers: int, label: str) -> None:
    from distributed import Client, LocalCluster

    from fastmlp.dask import FastmlpWorkerPlugin

    started = time.perf_counter()
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR,
                      env={"NUMBA_CACHE_DIR": cache_dir}) as cluster, Client(cluster) as client:
        client.wait_for_workers(n_workers, timeout=300)
        up = time.perf_counter() - started
        workers = sorted(client.scheduler_info()["workers"])
        results = client.gather([client.submit(first_fit, workers=[w], pure=False) for w in workers])
        print(f"{label} cache ({cache_dir}), cluster up in {up:.1f} s:")
        for w, (seconds, stats) in zip(workers, results, strict=True):
            print(f"  worker {w} (pid {stats['pid']}): first fit {seconds:6.2f} s, kernels compiled "
                  f"{stats['compiled']}, loaded from cache {stats['loaded']}")
        before = client.run(blas_threads)
        client.register_plugin(FastmlpWorkerPlugin(blas_threads=1))
        after = client.run(blas_threads)
        print(f"  BLAS threads per worker: {sorted(before.values())} -> with FastmlpWorkerPlugin "
              f"{sorted(after.values())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    np.seterr(all="ignore")
    with tempfile.TemporaryDirectory(prefix="fastmlp-numba-cache-") as cache_dir:
        run(cache_dir, args.workers, "cold (empty)")
        run(cache_dir, args.workers, "warm (shared)")


if __name__ == "__main__":
    main()
