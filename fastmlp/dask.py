"""fastmlp on a Dask cluster: set up the workers, see whether they compiled.

Needs the ``dask`` extra (``pip install "fastmlp[dask]"``: dask, distributed, dask-ml). fastmlp's estimators
need nothing special to run on Dask: ``joblib.parallel_backend("dask")`` runs ``GridSearchCV`` /
``RandomizedSearchCV`` / ``cross_validate`` on the cluster, and dask-ml's ``Incremental`` trains with
``partial_fit`` over the blocks of a ``dask.array``. Two things make it run well:

1. **Compiled kernels from a shared cache.** Numba caches compiled kernels on disk (``cache=True``), by
   default in the installed package's ``fastmlp/__pycache__``; every worker process on a machine reads the
   same files, so only the first process ever to run a kernel compiles it (15-20 s), later ones load it
   (well under a second). Where the package folder is read-only, or to share one cache between installs,
   start every worker with the same ``NUMBA_CACHE_DIR`` (an environment variable: it must be set before the
   worker imports Numba, e.g. ``LocalCluster(env={"NUMBA_CACHE_DIR": path})`` or ``NUMBA_CACHE_DIR=path
   dask worker ...``). Warm the cache once, e.g. by one small fit in the client process on the same
   machine, or by :class:`FastmlpWorkerPlugin` with ``warm_up=True``. :func:`compile_stats` tells, per
   worker (``client.run(compile_stats)``), how many kernels were loaded from the cache and how many compiled.
2. **One BLAS thread per worker thread.** fastmlp calls BLAS for large layers; N workers each running
   BLAS with all cores oversubscribe the machine. Dask's nanny already starts workers with
   ``OPENBLAS_NUM_THREADS=1`` (and OMP/MKL) unless configured otherwise; :class:`FastmlpWorkerPlugin`
   enforces the cap with threadpoolctl on the libraries fastmlp uses, whatever the environment says.

Everything fastmlp pickles (fitted estimators, ``MLP``, the optimiser state) holds NumPy arrays and plain
Python values only, never a compiled dispatcher, so models move between workers cheaply.
"""

from __future__ import annotations

import time

__all__ = ["FastmlpWorkerPlugin", "compile_stats", "warm_up"]


def _dispatchers():
    """fastmlp's compiled kernels (Numba dispatchers), by name."""
    import importlib
    import os
    import pkgutil

    found = {}
    here = [os.path.dirname(os.path.abspath(__file__))]
    names = [f"fastmlp.{m.name}" for m in pkgutil.iter_modules(here) if m.name.startswith("_kernels")]
    for module_name in names:
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if hasattr(obj, "stats") and hasattr(obj, "py_func"):
                found[f"{module_name}.{name}"] = obj
        # kernels specialised on first use (one training kernel per optimiser, loss and, for the general kernel, the
        # usual activation sets; general and tiny)
        for table in ("_TRAIN_KERNELS", "_TINY_KERNELS"):
            for obj in getattr(module, table, {}).values():
                found[f"{module_name}.{obj.py_func.__name__}"] = obj
    return found


def compile_stats() -> dict:
    """How this process got fastmlp's kernels: ``{"loaded": n, "compiled": n, "cache_dir": str, "pid": int}``.

    ``loaded`` counts kernel signatures read from the on-disk cache, ``compiled`` those compiled in this
    process (a cache miss). Run it on every worker with ``client.run(compile_stats)``.
    """
    import os

    loaded = compiled = 0
    cache_dir = None
    for dispatcher in _dispatchers().values():
        stats = dispatcher.stats
        loaded += sum(stats.cache_hits.values())
        compiled += sum(stats.cache_misses.values())
        cache_dir = cache_dir or stats.cache_path
    return {"loaded": loaded, "compiled": compiled, "cache_dir": cache_dir, "pid": os.getpid()}


def warm_up(dtypes=("float64", "float32")) -> float:
    """Load (or, with a cold cache, compile) the kernels that estimators use; returns the seconds it took.

    One small ``MLPClassifier`` and ``MLPRegressor`` fit and predict per dtype, on a problem just large enough
    for the general training kernel (a smaller one would load the tiny networks' kernel instead).
    """
    import warnings

    import numpy as np

    from fastmlp.estimators import MLPClassifier, MLPRegressor

    started = time.perf_counter()
    rng = np.random.RandomState(0)
    for dtype in dtypes:
        X = rng.randn(24, 20).astype(dtype)  # 20 x 4 weights in a layer: not a tiny network (_engine.is_tiny)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            MLPClassifier((4,), max_iter=2, random_state=0).fit(X, np.arange(24) % 3).predict_proba(X)
            MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, X[:, 0]).predict(X)
    return time.perf_counter() - started


def _limit_blas(threads: int) -> None:
    import numpy  # noqa: F401  (load NumPy's BLAS, and SciPy's, which the kernels call, before limiting)
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


def _plugin_base():
    try:
        from distributed.diagnostics.plugin import WorkerPlugin
    except ImportError:  # pragma: no cover - without distributed the plugin is a plain object
        return object
    return WorkerPlugin


class FastmlpWorkerPlugin(_plugin_base()):
    """A Dask worker plugin: caps BLAS threads, and optionally loads the compiled kernels at start-up.

    ``client.register_plugin(FastmlpWorkerPlugin())`` applies it to every current and future worker.

    Parameters
    ----------
    blas_threads : int, default 1
        Threads per BLAS library (NumPy's and SciPy's OpenBLAS) in each worker process (threadpoolctl).
        With ``threads_per_worker > 1`` workers, keep ``threads_per_worker * blas_threads`` at most the
        cores of the machine.
    warm_up : bool, default False
        Load the estimators' kernels (:func:`warm_up`) when the worker starts, so that its first task does
        not pay for it; with a cold cache this compiles them (once per machine and cache folder).
    """

    name = "fastmlp"

    def __init__(self, blas_threads: int = 1, warm_up: bool = False):
        if isinstance(blas_threads, bool) or not isinstance(blas_threads, int) or blas_threads < 1:
            raise ValueError(f"blas_threads must be a positive integer, got {blas_threads!r}")
        self.blas_threads = blas_threads
        self.warm_up = bool(warm_up)

    def setup(self, worker=None):
        _limit_blas(self.blas_threads)
        if self.warm_up:
            warm_up()
