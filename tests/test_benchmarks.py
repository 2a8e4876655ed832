"""Smoke test of the asv suite and tests of the workload registry.

Every benchmark module under ``asv_benchmarks/benchmarks`` is imported (without asv) with
``FASTMLP_BENCH_TINY=1``, and every benchmark method runs once for every parameter combination, on the
tiny workloads: a broken benchmark fails CI here instead of silently producing no numbers on the dashboard.
"""

import importlib
import importlib.util
import inspect
import itertools
import math
import os
import pkgutil
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from fastmlp import workloads

ROOT = Path(__file__).resolve().parents[1]
SUITE_DIR = ROOT / "asv_benchmarks" / "benchmarks"
PREFIXES = ("time_", "track_", "peakmem_", "mem_", "timeraw_")


def _load_suite():
    """Import the suite as a package under a private name, with the tiny switch on while it imports."""
    name = "_fastmlp_asv_suite"
    old = os.environ.get("FASTMLP_BENCH_TINY")
    os.environ["FASTMLP_BENCH_TINY"] = "1"
    try:
        spec = importlib.util.spec_from_file_location(
            name, SUITE_DIR / "__init__.py", submodule_search_locations=[str(SUITE_DIR)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
        modules = [
            importlib.import_module(f"{name}.{info.name}")
            for info in pkgutil.iter_modules([str(SUITE_DIR)])
        ]
    finally:
        if old is None:
            del os.environ["FASTMLP_BENCH_TINY"]
        else:
            os.environ["FASTMLP_BENCH_TINY"] = old
    return package, modules


SUITE, MODULES = _load_suite()


def _cases():
    for module in MODULES:
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            methods = [m for m in dir(cls) if m.startswith(PREFIXES) and callable(getattr(cls, m))]
            if not methods:
                continue
            params = getattr(cls, "params", [])
            grid = list(itertools.product(*params)) if params and isinstance(params[0], list | tuple) else (
                [(p,) for p in params] if params else [()]
            )
            short = module.__name__.rsplit(".", 1)[1]
            for combo in grid:
                yield pytest.param(cls, methods, combo, id=f"{short}.{cls_name}-{'-'.join(map(str, combo))}")


CASES = list(_cases())


def test_suite_is_tiny_and_complete():
    common = importlib.import_module(f"{SUITE.__name__}.common")
    assert common.TINY
    kinds = {m.split("_")[0] for case in CASES for m in case.values[1]}
    assert {"time", "track", "peakmem", "timeraw"} <= kinds
    assert len(MODULES) >= 3


@pytest.mark.parametrize("cls, methods, combo", CASES)
def test_benchmark_runs_once(cls, methods, combo):
    """setup, each benchmark method once, teardown -- as asv would, minus the repetitions."""
    bench = cls()
    try:
        if hasattr(bench, "setup"):
            bench.setup(*combo)
    except NotImplementedError as exc:  # asv reports these as skipped
        pytest.skip(f"not available yet: {exc}")
    try:
        for name in methods:
            result = getattr(bench, name)(*combo)
            if name.startswith("track_"):
                assert isinstance(result, int | float) and math.isfinite(result) and result > 0, (name, result)
                assert getattr(bench, "unit", None) == "x"
            elif name.startswith("timeraw_"):
                code = result[0] if isinstance(result, tuple) else result
                assert isinstance(code, str)
                compile(code, f"<{name}>", "exec")  # running it means compiling every kernel afresh: asv does
    finally:
        if hasattr(bench, "teardown"):
            bench.teardown(*combo)


# ----------------------------------------------------------------------------------- the registry


@pytest.mark.parametrize("name", workloads.names("mlp"))
@pytest.mark.parametrize("tiny", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_training_data_shapes_and_determinism(name, tiny, dtype):
    w = workloads.get(name, tiny=tiny)
    X, Y = w.make_data(dtype)
    assert X.shape == (w.dims[0], w.m) and Y.shape == (w.dims[-1], w.m)
    assert X.dtype == np.dtype(dtype) and Y.dtype == np.dtype(dtype)
    assert X.flags.c_contiguous and X.flags.writeable
    assert np.all(np.isfinite(X)) and set(np.unique(Y)) <= {0.0, 1.0} and len(np.unique(Y)) == 2
    X2, Y2 = w.make_data(dtype)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(Y, Y2)
    X2[0, 0] += 1.0  # callers own their copies: the cache underneath is untouched
    np.testing.assert_array_equal(w.make_data(dtype)[0], X)
    xb, yb = w.first_batch(dtype)
    assert xb.shape == (w.dims[0], w.batch) and yb.shape == (1, w.batch)
    assert w.n_batches == -(-w.m // w.batch)
    assert w.activations == [w.hidden] * (len(w.dims) - 2) + ["sigmoid"]


@pytest.mark.parametrize("name", workloads.names("mlp"))
def test_parameters_are_deterministic_and_typed(name):
    w = workloads.get(name)
    p64, p32 = w.init_parameters("float64"), w.init_parameters("float32")
    assert sorted(p64) == sorted(f"{k}{l}" for l in range(1, len(w.dims)) for k in "Wb")
    for l in range(1, len(w.dims)):
        assert p64[f"W{l}"].shape == (w.dims[l], w.dims[l - 1]) and p64[f"b{l}"].shape == (w.dims[l], 1)
        assert p32[f"W{l}"].dtype == np.float32
        np.testing.assert_array_equal(p64[f"W{l}"], w.init_parameters("float64")[f"W{l}"])
    # he scale: the first layer's weights have variance about 2 / n_x
    assert np.std(p64["W1"]) < 3 * np.sqrt(2.0 / w.dims[0])


def test_table_of_design_md():
    expected = {
        "W1-xor": ((2, 2, 1), "sigmoid", 4, 4),
        "W2-deep": ((2, 4, 6, 6, 4, 1), "relu", 1024, 32),
        "W3-cancer": ((30, 64, 32, 1), "relu", 569, 32),
        "W4-wide": ((784, 512, 256, 1), "relu", 4096, 256),
    }
    got = {n: (w.dims, w.hidden, w.m, w.batch) for n, w in workloads.WORKLOADS.items()}
    assert got == expected
    X, Y = workloads.get("W1").make_data()
    np.testing.assert_array_equal(Y, [[0, 1, 1, 0]])
    np.testing.assert_array_equal(X, [[0, 0, 1, 1], [0, 1, 0, 1]])


def _design_table():
    """The workload table of docs/DESIGN.md §3: name -> (dims, hidden, m, batch, lr, epochs)."""
    text = (ROOT / "docs" / "DESIGN.md").read_text()
    section = text.split("## 3. Workloads", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"W\d-\w+", cells[0]):
            rows[cells[0]] = (tuple(int(d) for d in cells[1].split("-")), cells[2], int(cells[3]), int(cells[4]),
                              float(cells[5]), int(cells[6]))
    return rows


def test_registry_is_the_design_documents_table():
    """Learning rates and epochs per timing call included: the published numbers' settings."""
    table = _design_table()
    assert set(table) == set(workloads.WORKLOADS)
    for name, w in workloads.WORKLOADS.items():
        assert (w.dims, w.hidden, w.m, w.batch, w.lr, w.epochs) == table[name], name


def test_data_and_starting_weights_as_the_design_document_states():
    """W2/W4: RandomState(0).randn(n0, m), then 0/1 labels from rand < 0.5; W3: breast cancer, z-scored;
    every workload starts from "he" weights drawn from RandomState(1) -- written out here independently."""
    for name in ("W2-deep", "W4-wide"):
        w = workloads.get(name)
        rng = np.random.RandomState(0)
        X = rng.randn(w.dims[0], w.m)
        Y = (rng.rand(1, w.m) < 0.5).astype(float)
        Xw, Yw = w.make_data()
        np.testing.assert_array_equal(Xw, X)
        np.testing.assert_array_equal(Yw, Y)
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_breast_cancer()
    Z = (d.data - d.data.mean(0)) / d.data.std(0)
    Xw, Yw = workloads.get("W3").make_data()
    np.testing.assert_allclose(Xw, Z.T, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(Yw, d.target.reshape(1, -1))
    for w in workloads.WORKLOADS.values():
        rng = np.random.RandomState(1)
        params = w.init_parameters()
        for k in range(1, len(w.dims)):
            want = rng.randn(w.dims[k], w.dims[k - 1]) * np.sqrt(2.0 / w.dims[k - 1])
            np.testing.assert_array_equal(params[f"W{k}"], want)
            np.testing.assert_array_equal(params[f"b{k}"], np.zeros((w.dims[k], 1)))


def test_get_by_prefix_and_errors():
    assert workloads.get("w2") is workloads.WORKLOADS["W2-deep"]
    assert workloads.get("S2").name == "S2-digits-adam"
    assert workloads.get("W4", tiny=True).tiny and workloads.get("W4", tiny=True).epochs == 1
    assert workloads.get("W4", tiny=True).shrink() == workloads.get("W4", tiny=True)
    assert workloads.names() == workloads.names("mlp") + workloads.names("estimator")
    with pytest.raises(ValueError, match="unknown workload"):
        workloads.get("W9")
    with pytest.raises(ValueError, match="unknown implementation"):
        workloads.get("W1").build("numpy")
    with pytest.raises(ValueError, match="unknown kernel op"):
        workloads.get("W1").build_kernel("sideways", "reference")


@pytest.mark.parametrize("name", workloads.names("estimator"))
@pytest.mark.parametrize("tiny", [False, True])
def test_estimator_workloads(name, tiny):
    w = workloads.get(name, tiny=tiny)
    X, y = w.make_data("float32")
    assert X.shape == (w.m, w.n_features) and y.shape == (w.m,) and X.dtype == np.float32
    assert y.dtype.kind == "i" and len(np.unique(y)) >= 2
    np.testing.assert_array_equal(w.make_data("float32")[0], X)
    params = w.sklearn_params()
    assert params["hidden_layer_sizes"] == w.hidden_layer_sizes and params["batch_size"] == w.batch
    assert params["shuffle"] is False and params["max_iter"] == w.epochs
    if not tiny:
        pytest.importorskip("sklearn")
        from sklearn.neural_network import MLPClassifier

        MLPClassifier(**params)  # every argument is one scikit-learn knows


@pytest.mark.parametrize("name", workloads.names("mlp"))
def test_reference_and_fastmlp_runners_train_the_same_model(name):
    """The two sides of each benchmark do the same work: after one tiny run their weights agree."""
    w = workloads.get(name, tiny=True)
    try:
        ref = w.build_reference("float64")
        fast = w.build_fastmlp("float64")
    except NotImplementedError as exc:
        pytest.skip(str(exc))
    ref()
    fast()
    got = fast.model.get_parameters()
    for k, v in ref.parameters.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-8, atol=1e-12, err_msg=k)


def test_timing_helpers():
    calls = []
    t = workloads.median_time(lambda: calls.append(1), reps=3)
    assert t >= 0 and len(calls) == 4
    assert workloads.speedup(lambda: sum(range(20000)), lambda: None, reps=3) > 1


def test_call_times_takes_at_least_reps_calls_and_the_time_asked_for():
    import time

    from fastmlp import _timing

    calls = []
    times = _timing.call_times(lambda: calls.append(1), reps=3)
    assert len(times) == 3 and len(calls) == 4  # one untimed warm-up
    times = _timing.call_times(lambda: time.sleep(0.002), reps=2, min_seconds=0.03)
    assert sum(times) >= 0.03 and len(times) >= 2
    # time the process did not run (here: asleep, as when other processes hold the CPU) is left out
    running = _timing.call_times(lambda: time.sleep(0.02), reps=2, running=True)
    assert len(running) == 2 and max(running) < 0.01


def test_bench_peers_take_turns_over_rounds(monkeypatch):
    """Every round times every peer, the order reversed every other round; a peer's time is the median of all
    its calls (not of one process's)."""
    from fastmlp import _bench

    seen = []
    fake = {"numpy": [4.0, 4.0], "fastmlp": [1.0, 3.0]}

    def times(peer, name, dtype, reps, tiny, min_seconds=0.0):
        seen.append((peer, reps, min_seconds))
        return fake[peer][len([p for p, _, _ in seen if p == peer]) - 1:][:1]

    monkeypatch.setattr(_bench, "_times_isolated", times)
    rows = _bench.run_table(["W1"], isolate=True, peers=["numpy", "fastmlp"], rounds=2, reps=4, min_seconds=0.5)
    assert [p for p, _, _ in seen] == ["numpy", "fastmlp", "fastmlp", "numpy"]
    assert all(r == 2 and s == 0.5 for _, r, s in seen)  # reps shared out over the rounds
    (row,) = rows
    assert row["speedups"]["fastmlp"] == 4.0 / 2.0  # median of fastmlp's calls 1.0 and 3.0


# ------------------------------------------------------------------------ scripts/bench.py core


def test_bench_table_quick(tmp_path):
    from fastmlp import _bench

    rows = _bench.run_table(["W1", "S1"], ["float32"], quick=True, peers=["reference", "fastmlp", "torch"])
    assert [r["workload"] for r in rows] == ["W1-xor", "S1-cancer-sgd"]
    w1, s1 = rows
    assert w1["baseline"] == "numpy" and s1["baseline"] == "sklearn"
    assert w1["dtype"] == "float32" and w1["speedups"]["numpy"] == 1.0 and "reference" in w1["speedups"]
    assert "torch" not in s1["ms_per_epoch"] and "torch" not in s1["errors"]  # does not apply to S*
    text = _bench.format_table(rows)
    assert "W1-xor" in text and "speedup" in text.splitlines()[0]
    if w1["speedup"] is not None:
        pytest.importorskip("matplotlib")
        out = _bench.plot_table(rows, tmp_path / "speedup.png")
        assert (tmp_path / "speedup.png").stat().st_size > 1000 and out == tmp_path / "speedup.png"


def test_readme_tables_command_quick():
    """``fastmlp bench --readme``: every peer, both dtypes, the markdown tables and the environment line."""
    from fastmlp import _bench

    rows = _bench.run_table(["W2", "S2"], ["float64", "float32"], quick=True, peers=list(_bench.README_PEERS))
    text = _bench.format_markdown(rows)
    lines = text.splitlines()
    assert lines[0].startswith("| workload | dtype | NumPy (course code) | fastmlp | speedup |")
    assert lines[0].endswith("| fastmlp GFLOP/s (GEMM floor) |")
    assert sum(line.startswith("| W2-deep |") for line in lines) == 2
    assert sum(line.startswith("| S2-digits-adam |") for line in lines) == 2
    assert "at commit" in lines[-1] and "OPENBLAS_CORETYPE" in lines[-1]
    w2 = rows[0]
    assert w2["gflops"]["gemm-floor"] > 0 and "gemm-floor" not in w2["speedups"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numpy_baseline_trains_as_the_reference(dtype):
    """The speed baseline is plain course code, but it computes what the reference computes."""
    from tolerances import train_tol

    from fastmlp import _baseline, reference

    w = workloads.get("W2", tiny=True)
    X, Y = w.make_data(dtype)
    ours, ref = w.init_parameters(dtype), w.init_parameters(dtype)
    _baseline.train_epoch(ours, X, Y, w.activations, w.lr, w.batch)
    reference.train(ref, X, Y, activations=w.activations, loss="bce", learning_rate=w.lr, epochs=1,
                    batch_size=w.batch)
    for k in ref:
        assert ours[k].dtype == np.dtype(dtype)
        np.testing.assert_allclose(ours[k], ref[k], err_msg=k, **train_tol(dtype))


def test_bench_worker_runs_in_its_own_process():
    from fastmlp import _bench

    t = _bench._time_isolated("reference", "W1-xor", "float64", 1, True)
    assert t > 0
    with pytest.raises(RuntimeError, match="peer 'torch' does not run"):
        _bench._time_isolated("torch", "S1", "float64", 1, True)


def test_readme_performance_tables_are_this_commands_output():
    """The README's tables have exactly the columns ``fastmlp bench --readme`` prints, and name the command."""
    from fastmlp import _bench

    rows = _bench.run_table(["W1", "S1"], ["float64"], quick=True, peers=list(_bench.README_PEERS))
    headers = [line for line in _bench.format_markdown(rows).splitlines() if line.startswith("| workload |")]
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Performance\n", 1)[1].split("\n## ", 1)[0]
    assert "fastmlp bench --readme" in section
    published = [line for line in section.splitlines() if line.startswith("| workload |")]
    assert published[:2] == headers
