"""fastmlp on a real Dask cluster (distributed.LocalCluster: 2 worker processes on 127.0.0.1).

Searches under the dask joblib backend equal serial ones, dask-ml's Incremental equals partial_fit over the
same blocks in one process, workers load the compiled kernels from the shared cache instead of compiling,
BLAS threads are capped per worker, and pickled models carry no compiled code.
"""

from __future__ import annotations

import logging
import os
import pickle
import pickletools
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

pytest.importorskip("sklearn")

import fastmlp  # noqa: E402
from fastmlp import _config  # noqa: E402

#: seconds any single cluster operation may take before the test fails (bounded, never hangs)
TIMEOUT = 240


def _data():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def _block(i: int, rows: int = 40, n: int = 6):
    """Block ``i`` of a data set that no process ever holds whole: made from its index alone."""
    rng = np.random.RandomState(1000 + i)
    X = rng.randn(rows, n)
    y = (X[:, 0] - 0.5 * X[:, 1] + 0.3 * rng.randn(rows) > 0).astype(np.int64)
    return X, y


def _first_fit(X, y, params):
    """The first fit (and prediction) in a fresh worker: (pid, seconds, kernels loaded from the cache, kernels
    compiled)."""
    import time

    from fastmlp.dask import compile_stats

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fastmlp.MLPClassifier(**params).fit(X, y).predict_proba(X)  # a training and a prediction kernel
    elapsed = time.perf_counter() - started
    stats = compile_stats()
    return stats["pid"], elapsed, stats["loaded"], stats["compiled"]


def _blas_threads():
    """(library, threads) of every BLAS library loaded in this process (after loading NumPy's and SciPy's)."""
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_info

    return [(info["filepath"], info["num_threads"]) for info in threadpool_info() if info["user_api"] == "blas"]


FIRST_FIT = {"hidden_layer_sizes": (16,), "max_iter": 5, "random_state": 0}


@pytest.fixture(scope="module")
def cluster():
    """A client of a 2-process LocalCluster on 127.0.0.1, with the first fit on each worker measured.

    The client process fits first, so the compile cache the workers share (the package's ``__pycache__``
    or ``NUMBA_CACHE_DIR``, inherited) holds every kernel the workers need.
    """
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    from fastmlp.dask import FastmlpWorkerPlugin

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this test file
    X, y = _data()
    _first_fit(X, y, FIRST_FIT)  # warm the shared cache in this process
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        silence_logs=logging.ERROR,
        # the nanny would start workers with 1 BLAS thread anyway: start them with 2, the plugin must cap them
        env={"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"},
    )
    client = distributed.Client(cluster, timeout=TIMEOUT)
    try:
        client.wait_for_workers(2, timeout=TIMEOUT)
        workers = sorted(client.scheduler_info()["workers"])
        futures = [client.submit(_first_fit, X, y, FIRST_FIT, workers=[w], pure=False) for w in workers]
        first_fits = client.gather(futures)
        blas_before = client.run(_blas_threads)
        client.register_plugin(FastmlpWorkerPlugin(blas_threads=1))
        yield client, first_fits, blas_before
    finally:
        client.close()
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_workers_load_kernels_from_the_shared_cache(cluster):
    if not _config.CACHE:
        pytest.skip("the compile cache is off (FASTMLP_CACHE=0 or not writable)")
    _, first_fits, _ = cluster
    assert len({pid for pid, *_ in first_fits}) == 2  # two processes
    for pid, seconds, loaded, compiled in first_fits:
        print(f"worker pid {pid}: first fit {seconds:.2f} s, {loaded} kernels loaded from cache, {compiled} compiled")
        assert compiled == 0, f"worker {pid} compiled {compiled} kernels instead of loading them"
        assert loaded >= 2  # training and prediction kernels came from the cache


def test_blas_threads_capped_per_worker(cluster):
    client, _, before = cluster
    after = client.run(_blas_threads)
    assert len(after) == 2
    print(f"BLAS threads per worker: {before} -> with the plugin {after}")
    if os.cpu_count() >= 2:  # the workers started with OPENBLAS_NUM_THREADS=2: the plugin did the capping
        assert any(threads == 2 for libraries in before.values() for _, threads in libraries), before
    for libraries in after.values():
        assert libraries, "no BLAS library loaded in the worker"
        assert all(threads == 1 for _, threads in libraries), libraries


def test_grid_search_dask_backend_equals_serial(cluster):
    import joblib
    from sklearn.model_selection import GridSearchCV

    X, y = _data()
    grid = {"hidden_layer_sizes": [(8,), (12, 6)], "activation": ["relu", "tanh"], "alpha": [1e-4, 1e-1]}
    est = fastmlp.MLPClassifier(max_iter=8, batch_size=64, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = GridSearchCV(est, grid, cv=3, n_jobs=1).fit(X, y)
        with joblib.parallel_backend("dask"):
            on_dask = GridSearchCV(est, grid, cv=3, n_jobs=-1).fit(X, y)
    keys = [k for k in serial.cv_results_ if k.endswith("_test_score") or k == "rank_test_score"]
    assert len(keys) >= 5
    for key in keys:
        assert_array_equal(on_dask.cv_results_[key], serial.cv_results_[key], err_msg=key)
    assert on_dask.best_params_ == serial.best_params_
    for a, b in zip(on_dask.best_estimator_.coefs_, serial.best_estimator_.coefs_, strict=True):
        assert_array_equal(a, b)


def _partial_fit_blocks(params, n_blocks):
    """``partial_fit`` over blocks 0 .. n_blocks - 1 in order, in one process."""
    model = fastmlp.MLPClassifier(**params)
    for i in range(n_blocks):
        model.partial_fit(*_block(i), classes=[0, 1])
    return model


def _assert_same_weights(a, b, **tol):
    assert a.t_ == b.t_
    for x, y in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        if tol:
            np.testing.assert_allclose(x, y, **tol)
        else:
            assert_array_equal(x, y)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_incremental_over_dask_blocks_equals_partial_fit(cluster, solver):
    import dask
    import dask.array as da

    dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")
    client = cluster[0]
    n_blocks, rows, n = 12, 40, 6
    # the array is built lazily block by block on the workers: no process holds it whole
    X = da.concatenate([da.from_delayed(dask.delayed(lambda i: _block(i)[0])(i), (rows, n), dtype=np.float64)
                        for i in range(n_blocks)])
    y = da.concatenate([da.from_delayed(dask.delayed(lambda i: _block(i)[1])(i), (rows,), dtype=np.int64)
                        for i in range(n_blocks)])
    assert X.numblocks == (n_blocks, 1)
    params = {"hidden_layer_sizes": (10, 5), "solver": solver, "learning_rate_init": 0.01, "random_state": 0}
    inc = dask_ml_wrappers.Incremental(fastmlp.MLPClassifier(**params), shuffle_blocks=False)
    inc.fit(X, y, classes=[0, 1])
    assert inc.estimator_.t_ == n_blocks * rows

    # one worker process, the same blocks in order: bit for bit the same weights
    one_process = client.submit(_partial_fit_blocks, params, n_blocks, pure=False).result(timeout=TIMEOUT)
    _assert_same_weights(inc.estimator_, one_process)
    # and this process: the same to rounding (a kernel compiled here rather than loaded from the cache may
    # round differently in the last bit)
    local = _partial_fit_blocks(params, n_blocks)
    _assert_same_weights(inc.estimator_, local, rtol=1e-12, atol=1e-15)
    Xt, _ = _block(99)
    assert_array_equal(inc.predict(da.from_array(Xt, chunks=20)).compute(), local.predict(Xt))


# ------------------------------------------------------------------------------------------ pickling


def _pickled_globals(obj) -> set[str]:
    """Every ``module.name`` a pickle of ``obj`` refers to (classes and functions it would import)."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    found, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            found.add(".".join(strings[-2:]))
        elif op.name in ("GLOBAL", "INST"):
            found.add(arg.replace(" ", "."))
    return found


def test_pickled_models_carry_no_compiled_code():
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = fastmlp.MLPClassifier((8,), max_iter=3, random_state=0).fit(X, y)
        reg = fastmlp.MLPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, X[:, 0])
    inc = fastmlp.MLPClassifier((8,), random_state=0).partial_fit(X, y, classes=[0, 1])  # with optimiser state
    mlp = fastmlp.MLP([30, 8, 1], seed=0)
    mlp.fit(X.T, y, epochs=2, batch_size=64)
    for model in (clf, reg, inc, mlp):
        refs = _pickled_globals(model)
        assert refs, "the pickle names no class at all?"
        compiled = {r for r in refs if r.split(".")[0] in ("numba", "llvmlite")}
        assert not compiled, f"{type(model).__name__} pickles compiled code: {sorted(compiled)}"
        assert not {r for r in refs if r.startswith("fastmlp._kernels")}
        copy = pickle.loads(pickle.dumps(model))
        if model is mlp:
            assert_array_equal(copy.forward(X.T), mlp.forward(X.T))
        else:
            assert_array_equal(copy.predict(X), model.predict(X))
    # the unpickled partial_fit model continues exactly as the original
    inc2 = pickle.loads(pickle.dumps(inc))
    inc.partial_fit(X, y)
    inc2.partial_fit(X, y)
    for a, b in zip(inc.coefs_, inc2.coefs_, strict=True):
        assert_array_equal(a, b)


def test_warm_up_and_plugin_arguments():
    pytest.importorskip("distributed")
    from fastmlp.dask import FastmlpWorkerPlugin, compile_stats, warm_up

    assert warm_up(dtypes=("float64",)) > 0
    stats = compile_stats()
    assert stats["loaded"] + stats["compiled"] >= 2  # training and prediction kernels are in this process
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="blas_threads"):
            FastmlpWorkerPlugin(blas_threads=bad)
    plugin = FastmlpWorkerPlugin(blas_threads=2, warm_up=True)
    assert (plugin.blas_threads, plugin.warm_up, plugin.name) == (2, True, "fastmlp")
