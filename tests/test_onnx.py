"""ONNX export: every exported graph passes onnx.checker and, run by onnxruntime, gives what fastmlp gives."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

import fastmlp  # noqa: E402
from fastmlp import _tabular, cli  # noqa: E402
from fastmlp import onnx as fonnx  # noqa: E402
from fastmlp.io import load_model  # noqa: E402

#: float64: the same maths in another order of rounding; float32: single-precision runtimes (MLAS)
ONNX_TOL = {np.dtype(np.float64): {"rtol": 1e-12, "atol": 1e-12}, np.dtype(np.float32): {"rtol": 1e-5, "atol": 1e-5}}
DTYPES = ["float64", "float32"]
HIDDEN = ["relu", "leaky_relu", "sigmoid", "tanh", "linear"]
SK_HIDDEN = ["relu", "leaky_relu", "logistic", "tanh", "identity"]


def run_onnx(proto, X):
    """Check ``proto`` with onnx.checker, run it on ``X`` with onnxruntime: ``{output name: array}``."""
    onnx.checker.check_model(proto, full_check=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: X}), strict=True))


def assert_labels_agree(got, want, proba, dtype):
    """Labels equal wherever the probabilities decide them by more than the dtype's tolerance."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    margin = 10 * ONNX_TOL[np.dtype(dtype)]["atol"]
    if proba.ndim == 2 and proba.shape[1] > 1 and got.ndim == 1:
        top2 = np.sort(proba, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > margin
    else:  # thresholds at 0.5
        clear = np.abs(proba.reshape(got.shape) - 0.5) > margin
    assert clear.mean() > 0.5  # the comparison is not vacuous
    assert_array_equal(got[clear], want[clear])


def quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: few epochs on purpose
        return est.fit(X, y)


# ------------------------------------------------------------------------------------------------ fastmlp.MLP


@given(
    hidden=st.lists(st.tuples(st.integers(1, 7), st.sampled_from(HIDDEN)), min_size=0, max_size=3),
    output=st.sampled_from(["sigmoid", "softmax", "linear", "relu", "tanh", "leaky_relu"]),
    n_x=st.integers(1, 6),
    n_y=st.integers(1, 4),
    dtype=st.sampled_from(DTYPES),
    slope=st.floats(-0.5, 2.0),
    seed=st.integers(0, 2**16),
)
def test_mlp_random_architectures(hidden, output, n_x, n_y, dtype, slope, seed):
    if output == "softmax":
        n_y = max(n_y, 2)
    loss = {"sigmoid": "bce", "softmax": "ce"}.get(output, "mse")
    dims = [n_x] + [h for h, _ in hidden] + [n_y]
    acts = [a for _, a in hidden] + [output]
    model = fastmlp.MLP(dims, loss=loss, activations=acts, init="xavier", seed=seed, dtype=dtype, leaky_slope=slope)
    # larger than initial weights: values far from 0, so every branch of every activation is reached
    params = {k: v * 3 for k, v in model.get_parameters().items()}
    model.set_parameters(params)
    X = np.random.RandomState(seed).randn(40, n_x).astype(dtype)
    got = run_onnx(fonnx.to_onnx(model), X)
    want = model.forward(X.T).T
    assert got["output"].dtype == np.dtype(dtype) and got["output"].shape == want.shape
    assert_allclose(got["output"], want, **ONNX_TOL[np.dtype(dtype)])
    if output in ("sigmoid", "softmax"):
        assert_labels_agree(got["label"], model.predict(X.T).T, want, dtype)
        assert got["label"].dtype == np.int64
    else:
        assert set(got) == {"output"}


def test_mlp_trained_and_exported_in_the_other_dtype():
    X, Y = _moons()
    model = fastmlp.MLP([2, 16, 8, 1], "leaky_relu", "sigmoid", seed=0, leaky_slope=0.2)
    model.fit(X, Y, epochs=30, learning_rate=0.5, batch_size=32)
    got = run_onnx(fonnx.to_onnx(model, dtype="float32"), X.T.astype(np.float32))
    assert got["output"].dtype == np.float32
    assert_allclose(got["output"], model.forward(X).T, **ONNX_TOL[np.dtype(np.float32)])
    proto = fonnx.to_onnx(model)
    assert {p.key: p.value for p in proto.metadata_props}["activations"] == "leaky_relu,leaky_relu,sigmoid"
    assert proto.opset_import[0].version == fonnx.OPSET and proto.ir_version == fonnx.IR_VERSION


def _moons():
    rng = np.random.RandomState(0)
    t = rng.uniform(0, np.pi, 200)
    upper = rng.rand(200) < 0.5
    X = np.where(upper, np.cos(t), 1 - np.cos(t)), np.where(upper, np.sin(t), 0.5 - np.sin(t))
    X = np.vstack(X) + rng.randn(2, 200) * 0.1
    return X, (~upper).astype(np.float64).reshape(1, -1)


# ------------------------------------------------------------------------------------------------ estimators


def _datasets():
    from sklearn import datasets

    iris = datasets.load_iris(return_X_y=True)
    cancer = datasets.load_breast_cancer(return_X_y=True)
    wine = datasets.load_wine(return_X_y=True)
    digits = datasets.load_digits(return_X_y=True)
    return {"iris": iris, "breast_cancer": cancer, "wine": wine, "digits": (digits[0][:600], digits[1][:600])}


DATASETS = _datasets()


def _standardised(X, dtype):
    return ((X - X.mean(axis=0)) / (X.std(axis=0) + 1e-12)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("data", "activation"), [("iris", "relu"), ("breast_cancer", "logistic"),
                                                   ("wine", "tanh"), ("digits", "leaky_relu"),
                                                   ("iris", "identity")])
def test_classifier_on_bundled_data(data, activation, dtype):
    X, y = DATASETS[data]
    X = _standardised(X, dtype)
    clf = quiet_fit(fastmlp.MLPClassifier((12, 7), activation=activation, max_iter=15, random_state=0), X, y)
    got = run_onnx(fonnx.to_onnx(clf), X)
    proba = clf.predict_proba(X)
    assert got["probabilities"].dtype == np.dtype(dtype)
    assert_allclose(got["probabilities"], proba, **ONNX_TOL[np.dtype(dtype)])
    assert got["label"].dtype == np.int64
    assert_labels_agree(got["label"], clf.predict(X), proba, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_classifier_text_labels_binary_and_multilabel(dtype):
    X, y = DATASETS["iris"]
    X = _standardised(X, dtype)
    names = np.array(["setosa", "versicolor", "virginica"])
    for labels in (names[y], np.where(y == 2, "yes", "no")):
        clf = quiet_fit(fastmlp.MLPClassifier((6,), max_iter=10, random_state=1), X, labels)
        got = run_onnx(fonnx.to_onnx(clf), X)
        proba = clf.predict_proba(X)
        assert_allclose(got["probabilities"], proba, **ONNX_TOL[np.dtype(dtype)])
        assert got["label"].dtype == object
        assert_labels_agree(got["label"].astype(str), clf.predict(X), proba, dtype)
    Y = np.column_stack([y == 0, y == 2, X[:, 0] > 0]).astype(int)  # multilabel indicators
    clf = quiet_fit(fastmlp.MLPClassifier((6,), max_iter=10, random_state=1), X, Y)
    got = run_onnx(fonnx.to_onnx(clf), X)
    proba = clf.predict_proba(X)
    assert_allclose(got["probabilities"], proba, **ONNX_TOL[np.dtype(dtype)])
    assert got["label"].shape == Y.shape and got["label"].dtype == np.int64
    assert_labels_agree(got["label"], clf.predict(X), proba, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", SK_HIDDEN)
def test_regressor_on_bundled_data(activation, dtype):
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = _standardised(X, dtype)
    Y = np.column_stack([y, -0.5 * y]) / 100  # two outputs
    reg = quiet_fit(fastmlp.MLPRegressor(hidden_layer_sizes=(9, 5), activation=activation, max_iter=10,
                                         random_state=0), X, Y)
    got = run_onnx(fonnx.to_onnx(reg), X)
    assert got["variable"].dtype == np.dtype(dtype)
    assert_allclose(got["variable"], reg.predict(X), **ONNX_TOL[np.dtype(dtype)])


def test_poisson_regressor_exp_output():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    reg = fastmlp.MLPRegressor(loss="poisson", hidden_layer_sizes=(6,), max_iter=10, random_state=0)
    try:
        quiet_fit(reg, X, y / 100)
    except ValueError as exc:
        if "not supported" in str(exc):
            pytest.skip("this fastmlp has no Poisson loss yet")
        raise
    assert reg.out_activation_ == "exp"
    got = run_onnx(fonnx.to_onnx(reg), X)
    assert_allclose(got["variable"].ravel(), reg.predict(X).ravel(), **ONNX_TOL[np.dtype(np.float64)])


def test_exp_output_is_exp_of_the_identity_output():
    """The Poisson regressor's ``exp`` output, checked on the graph even where the estimator lacks the loss."""
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    reg = quiet_fit(fastmlp.MLPRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=0), X, y / 100)
    identity = reg.predict(X)
    reg.out_activation_ = "exp"
    got = run_onnx(fonnx.to_onnx(reg), X)
    assert_allclose(got["variable"].ravel(), np.exp(identity), **ONNX_TOL[np.dtype(np.float64)])


def test_export_errors():
    with pytest.raises(ValueError, match="not fitted"):
        fonnx.to_onnx(fastmlp.MLPClassifier())
    with pytest.raises(TypeError, match="cannot export"):
        fonnx.to_onnx(object())
    model = fastmlp.MLP([2, 3, 1])
    with pytest.raises(ValueError, match="float32 or float64"):
        fonnx.to_onnx(model, dtype="int32")
    with pytest.raises(ValueError, match="entries"):
        fonnx.to_onnx(model, preprocessing={"mean": np.zeros(3), "std": np.ones(3)})


def test_save_onnx_roundtrip(tmp_path):
    X, y = DATASETS["iris"]
    clf = quiet_fit(fastmlp.MLPClassifier((5,), max_iter=5, random_state=0), X, y)
    path = tmp_path / "iris.onnx"
    fonnx.save_onnx(clf, path, dtype="float32")
    proto = onnx.load(str(path))
    got = run_onnx(proto, X.astype(np.float32))
    assert_allclose(got["probabilities"], clf.predict_proba(X), **ONNX_TOL[np.dtype(np.float32)])
    assert list(tmp_path.iterdir()) == [path]  # atomic write: no temporary left behind


# ------------------------------------------------------------------------------------------------ skl2onnx


@pytest.mark.parametrize("dtype", DTYPES)
def test_skl2onnx_pipelines(dtype):
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.datasets import load_diabetes
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = DATASETS["wine"]
    names = np.array(["barolo", "grignolino", "barbera"])
    for labels in (y, names[y]):
        pipe = quiet_fit(make_pipeline(StandardScaler(), fastmlp.MLPClassifier((10,), max_iter=15, random_state=0)),
                         X, labels)
        proto = skl2onnx.to_onnx(pipe, X[:1].astype(dtype), options={"zipmap": False})
        got = run_onnx(proto, X.astype(dtype))
        proba = pipe.predict_proba(X)
        assert_allclose(got["probabilities"], proba, **ONNX_TOL[np.dtype(dtype)])
        label = got["label"].astype(str) if labels.dtype.kind == "U" else got["label"]
        assert_labels_agree(label, pipe.predict(X), proba, dtype)
    if dtype == "float32":  # skl2onnx's default ZipMap output (ZipMap reads float32 only)
        proto = skl2onnx.to_onnx(pipe, X[:1].astype(np.float32))
        rows = run_onnx(proto, X[:3].astype(np.float32))["output_probability"]
        assert_allclose([[r[c] for c in pipe.classes_] for r in rows], pipe.predict_proba(X[:3]), rtol=1e-5, atol=1e-5)

    Xd, yd = load_diabetes(return_X_y=True)
    pipe = quiet_fit(make_pipeline(StandardScaler(), fastmlp.MLPRegressor(hidden_layer_sizes=(8,), activation="tanh",
                                                                         max_iter=10, random_state=0)), Xd, yd / 100)
    got = run_onnx(skl2onnx.to_onnx(pipe, Xd[:1].astype(dtype)), Xd.astype(dtype))
    assert_allclose(got["variable"].ravel(), pipe.predict(Xd), **ONNX_TOL[np.dtype(dtype)])


# ------------------------------------------------------------------------------------------------ command line


def _write_csv(path, X, y, target="target"):
    header = ",".join([f"f{j}" for j in range(X.shape[1])] + [target])
    rows = [",".join([repr(float(v)) for v in row] + [str(t)]) for row, t in zip(X, y, strict=True)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_cli_export(tmp_path, task, capsys):
    X, y = DATASETS["iris"]
    if task == "multiclass":
        y = np.array(["setosa", "versicolor", "virginica"])[y]
    else:
        y = X[:, 0] * 3 - X[:, 2]
        X = X[:, 1:]
    X = X * 10 + 5  # far from standardised: the graph must standardise as `fastmlp predict` does
    _write_csv(tmp_path / "data.csv", X, y)
    args = ["train", str(tmp_path / "data.csv"), "--target", "target", "--out", str(tmp_path / "m.npz"),
            "--hidden", "6,4", "--activation", "leaky_relu", "--epochs", "20", "--quiet"]
    assert cli.main(args) == 0
    assert cli.main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 0
    assert "wrote ONNX model" in capsys.readouterr().out
    got = run_onnx(onnx.load(str(tmp_path / "m.onnx")), X)
    model, pre = load_model(tmp_path / "m.npz", return_preprocessing=True)
    from fastmlp.io import standardize

    Xs = np.ascontiguousarray(standardize(X, pre["mean"], pre["std"]).T)
    pred, proba = _tabular.decode_outputs(model.forward(Xs), pre)
    if task == "multiclass":
        assert_allclose(got["probabilities"], proba, **ONNX_TOL[np.dtype(np.float64)])
        assert_labels_agree(got["label"].astype(str), pred, proba, "float64")
    else:
        assert_allclose(got["variable"].ravel(), pred, **ONNX_TOL[np.dtype(np.float64)])
    # float32 on request
    assert cli.main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m32.onnx"), "--dtype", "float32"]) == 0
    got32 = run_onnx(onnx.load(str(tmp_path / "m32.onnx")), X.astype(np.float32))
    key = "probabilities" if task == "multiclass" else "variable"
    assert_allclose(got32[key], got[key], rtol=1e-4, atol=1e-4)


def test_cli_export_errors(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "missing.npz"), str(tmp_path / "out.onnx")]) == 2
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    assert cli.main(["export", str(tmp_path / "bad.npz"), str(tmp_path / "out.onnx")]) == 2
    assert cli.main(["export", str(tmp_path / "bad.npz"), str(tmp_path / "bad.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "overwrite the input" in err[2]
    assert not (tmp_path / "out.onnx").exists()
