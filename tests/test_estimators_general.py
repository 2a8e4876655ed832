"""lbfgs, sample weights, sparse X, the Poisson loss and hand-built fitted states, against scikit-learn's MLP.

Each test fits scikit-learn's estimator and fastmlp's with the same parameters and ``random_state`` on the
bundled data sets and compares what scikit-learn exposes (float64: 1e-8 relative; float32: fastmlp trains in
float32 where scikit-learn mixes in float64, so the comparison is looser and the dtype is checked).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

import scipy.sparse as sp  # noqa: E402
from numpy.testing import assert_allclose, assert_array_equal  # noqa: E402
from sklearn import neural_network as sk  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.preprocessing import LabelBinarizer, StandardScaler  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import _engine  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RTOL = 1e-8
ATOL = 1e-12
#: float32: fastmlp computes in float32 throughout, scikit-learn partly in float64
RTOL32 = 2e-3
ATOL32 = 2e-4


def _standardise(X):
    return StandardScaler().fit_transform(X)


_DATA: dict = {}


def data(task, dtype=np.float64):
    if task not in _DATA:
        if task == "binary":  # breast cancer
            X, y = load_breast_cancer(return_X_y=True)
        elif task == "multiclass":  # digits, first 300
            X, y = load_digits(return_X_y=True)
            X, y = X[:300], y[:300]
        elif task == "iris":
            X, y = load_iris(return_X_y=True)
        elif task == "regression":  # diabetes, standardised target
            X, y = load_diabetes(return_X_y=True)
            y = (y - y.mean()) / y.std()
        elif task == "counts":  # diabetes, a count target for the Poisson loss
            X, y = load_diabetes(return_X_y=True)
            y = np.round(y / 25.0)
        elif task == "multi-output":
            X, y = load_diabetes(return_X_y=True)
            y = _standardise(np.column_stack([y, X[:, 2] * 10 - X[:, 3]]))
        else:
            raise ValueError(task)
        _DATA[task] = (_standardise(X), y)
    X, y = _DATA[task]
    return X.astype(dtype), y


def kind(task):
    return "MLPRegressor" if task in ("regression", "counts", "multi-output") else "MLPClassifier"


def pair(task, **params):
    return getattr(sk, kind(task))(**params), getattr(fastmlp, kind(task))(**params)


def weights_for(n, seed=0):
    """Uneven weights with some zeros, as scikit-learn accepts them."""
    rng = np.random.RandomState(seed)
    w = rng.randint(0, 4, n).astype(float)
    w[:3] = [0.0, 0.5, 2.5]
    return w


def assert_same_weights(ref, ours, rtol=RTOL, atol=ATOL):
    """Every weight and intercept agrees to ``rtol`` relative to the largest entry of its array (L-BFGS's line
    searches amplify rounding differences in the smallest weights first) or to ``atol``."""
    assert len(ours.coefs_) == len(ref.coefs_)
    for i, (a, b) in enumerate(zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_, strict=True)):
        assert a.shape == b.shape, i
        assert_allclose(a, b, rtol=rtol, atol=max(atol, rtol * float(np.abs(b).max())), err_msg=f"array {i}")


def assert_same_stochastic(ref, ours, rtol=RTOL):
    for name in ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_", "_no_improvement_count"):
        assert getattr(ours, name) == getattr(ref, name), name
    assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=rtol)
    if getattr(ref, "validation_scores_", None) is not None:
        assert_allclose(ours.validation_scores_, ref.validation_scores_, rtol=rtol)
    assert_same_weights(ref, ours, rtol=rtol)


def fit_both(task, *, dtype=np.float64, sample_weight=None, sparse=None, **params):
    X, y = data(task, dtype)
    if sparse is not None:
        X = sparse(X)
    ref, ours = pair(task, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X, y, sample_weight=sample_weight)
        ours.fit(X, y, sample_weight=sample_weight)
    return ref, ours


# --------------------------------------------------------------------------- L-BFGS
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_lbfgs_same_as_sklearn(task, activation):
    ref, ours = fit_both(task, solver="lbfgs", hidden_layer_sizes=(12, 6), activation=activation, alpha=1e-3,
                         max_iter=30, random_state=0)
    assert ours.n_iter_ == ref.n_iter_
    assert_allclose(ours.loss_, ref.loss_, rtol=RTOL)
    assert_same_weights(ref, ours)
    assert not hasattr(ours, "loss_curve_") and ours.t_ == ref.t_ == 0


@pytest.mark.parametrize("task, activation", [("iris", "tanh"), ("multi-output", "identity")])
def test_lbfgs_other_targets_and_convergence_before_max_iter(task, activation):
    ref, ours = fit_both(task, solver="lbfgs", hidden_layer_sizes=(8,), activation=activation, max_iter=300,
                         tol=1e-3, random_state=1)
    assert ref.n_iter_ < 500  # converged: gtol reached
    assert ours.n_iter_ == ref.n_iter_
    assert_allclose(ours.loss_, ref.loss_, rtol=1e-6)
    assert_same_weights(ref, ours, rtol=1e-6, atol=1e-9)


def test_lbfgs_float32_trains_in_float32_close_to_sklearn():
    ref, ours = fit_both("binary", dtype=np.float32, solver="lbfgs", hidden_layer_sizes=(8,), max_iter=10,
                         random_state=0)
    assert all(a.dtype == np.float32 for a in ours.coefs_ + ours.intercepts_)
    assert_same_weights(ref, ours, rtol=RTOL32, atol=ATOL32)
    X, _ = data("binary", np.float32)
    assert ours.predict_proba(X).dtype == np.float32
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-3)


@pytest.mark.parametrize("limit", ["max_iter", "max_fun"])
def test_lbfgs_convergence_warning_as_sklearn(limit):
    X, y = data("multiclass")
    params = dict(solver="lbfgs", hidden_layer_sizes=(10,), random_state=0, max_iter=15)
    if limit == "max_fun":
        params["max_fun"] = 7
    messages = []
    for est in pair("multiclass", **params):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(X, y)
        messages.append([str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)])
        messages[-1].append(est.n_iter_)
    assert messages[0] == messages[1]
    assert len(messages[0]) == 2  # one warning, and n_iter_


def test_lbfgs_warm_start_as_sklearn():
    X, y = data("iris")
    ref, ours = pair("iris", solver="lbfgs", hidden_layer_sizes=(6,), warm_start=True, max_iter=10,
                     random_state=0)
    for max_iter in (10, 5):
        ref.set_params(max_iter=max_iter).fit(X, y)
        ours.set_params(max_iter=max_iter).fit(X, y)
        assert ours.n_iter_ == ref.n_iter_
        assert_same_weights(ref, ours)


def test_loss_grad_lbfgs_equals_sklearns():
    X, y = data("multiclass")
    ref, ours = fit_both("multiclass", solver="lbfgs", hidden_layer_sizes=(7,), activation="tanh", alpha=0.1,
                         max_iter=3, random_state=0)
    Y = LabelBinarizer().fit_transform(y).astype(float)
    theta = np.hstack([a.ravel() for a in ref.coefs_ + ref.intercepts_])
    w = weights_for(len(y))
    for sample_weight in (None, w):
        buffers = ([X] + [None] * (ref.n_layers_ - 1), [None] * (ref.n_layers_ - 1),
                   [np.empty_like(c) for c in ref.coefs_], [np.empty_like(b) for b in ref.intercepts_])
        want_loss, want_grad = ref._loss_grad_lbfgs(theta, X, Y, sample_weight, *buffers)
        got_loss, got_grad = ours._loss_grad_lbfgs(theta, X, Y, sample_weight)
        assert_allclose(got_loss, want_loss, rtol=1e-12)
        assert_allclose(got_grad, want_grad, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------- gradient of the general kernel
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("loss, out", [("bce", "sigmoid"), ("ce", "softmax"), ("half_mse", "linear"),
                                       ("poisson", "linear")])
def test_general_loss_gradient_central_differences(loss, out, sparse):
    rng = np.random.RandomState(0)
    # half_mse: scikit-learn averages the loss over outputs but not its gradient; one output keeps them consistent
    m, n_out = 9, (1 if loss == "half_mse" else 3)
    X = rng.randn(m, 5)
    X[rng.rand(m, 5) < 0.4] = 0.0
    if loss == "ce":
        Y = np.eye(n_out)[rng.randint(n_out, size=m)]
    elif loss == "bce":
        Y = (rng.rand(m, n_out) < 0.5).astype(float)
    elif loss == "poisson":
        Y = rng.poisson(2.0, (m, n_out)).astype(float)
    else:
        Y = rng.randn(m, n_out)
    net = _engine.Network([5, 4, n_out], ["tanh", out])
    net.params[:] = rng.uniform(-0.5, 0.5, net.params.size)
    theta = net.params.copy()
    Xin = _engine.SparseRows(sp.csr_matrix(X), np.float64) if sparse else np.ascontiguousarray(X.T)
    f = _engine.loss_gradient_function(net, Xin, np.ascontiguousarray(Y.T), loss, alpha=0.3,
                                       sample_weight=rng.rand(m) + 0.1)
    _, grad = f(theta)
    numeric = np.empty_like(theta)
    for i in range(theta.size):
        step = np.zeros_like(theta)
        step[i] = 1e-6
        numeric[i] = (f(theta + step)[0] - f(theta - step)[0]) / 2e-6
    assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- sample weights
SOLVERS = {
    "sgd": dict(solver="sgd", momentum=0.9, learning_rate_init=0.01, batch_size=32),
    "adam": dict(solver="adam", learning_rate_init=0.005, batch_size=32),
    "lbfgs": dict(solver="lbfgs"),
}


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_sample_weight_same_as_sklearn(task, solver):
    X, y = data(task)
    ref, ours = fit_both(task, sample_weight=weights_for(len(y)), hidden_layer_sizes=(10,), activation="tanh",
                         alpha=1e-2, max_iter=8, random_state=0, **SOLVERS[solver])
    if solver == "lbfgs":
        assert ours.n_iter_ == ref.n_iter_
        assert_allclose(ours.loss_, ref.loss_, rtol=RTOL)
        assert_same_weights(ref, ours)
    else:
        assert_same_stochastic(ref, ours)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_sample_weight_float32_trains_in_float32(solver):
    X, y = data("binary", np.float32)
    ref, ours = fit_both("binary", dtype=np.float32, sample_weight=weights_for(len(y)), hidden_layer_sizes=(8,),
                         max_iter=3, shuffle=False, random_state=0, **SOLVERS[solver])
    assert all(a.dtype == np.float32 for a in ours.coefs_ + ours.intercepts_)
    assert_same_weights(ref, ours, rtol=RTOL32, atol=ATOL32)


def test_sample_weight_with_early_stopping_and_shuffling():
    """The weights are split with the data and weight the validation score, as scikit-learn's."""
    X, y = data("multiclass")
    ref, ours = fit_both("multiclass", sample_weight=weights_for(len(y), seed=3), hidden_layer_sizes=(16,),
                         early_stopping=True, validation_fraction=0.2, n_iter_no_change=3, tol=1e-3, max_iter=40,
                         random_state=0, **SOLVERS["adam"])
    assert ref.n_iter_ < 40
    assert_same_stochastic(ref, ours)
    assert_allclose(ours.best_validation_score_, ref.best_validation_score_, rtol=RTOL)


def test_sample_weight_partial_fit():
    X, y = data("regression")
    w = weights_for(len(y), seed=5)
    ref, ours = pair("regression", hidden_layer_sizes=(8,), random_state=0, **SOLVERS["sgd"])
    for start in range(0, 400, 100):
        chunk = slice(start, start + 100)
        ref.partial_fit(X[chunk], y[chunk], sample_weight=w[chunk])
        ours.partial_fit(X[chunk], y[chunk], sample_weight=w[chunk])
    assert_same_stochastic(ref, ours)


def test_unit_sample_weights_are_the_unweighted_fit():
    X, y = data("binary")
    plain = fastmlp.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    ones = fastmlp.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(
        X, y, sample_weight=np.ones(len(y)))
    for a, b in zip(plain.coefs_ + plain.intercepts_, ones.coefs_ + ones.intercepts_, strict=True):
        assert_array_equal(a, b)


def test_doubled_weights_equal_duplicated_samples_for_lbfgs():
    """A weight of 2 is the sample twice (full-batch L-BFGS has no batches that could tell them apart)."""
    X, y = data("iris")
    w = np.ones(len(y))
    w[::3] = 2.0
    X2 = np.vstack([X, X[::3]])
    y2 = np.concatenate([y, y[::3]])
    params = dict(solver="lbfgs", hidden_layer_sizes=(5,), max_iter=20, random_state=0)
    a = fastmlp.MLPClassifier(**params).fit(X, y, sample_weight=w)
    b = fastmlp.MLPClassifier(**params).fit(X2, y2)
    assert_same_weights(b, a, rtol=1e-7, atol=1e-10)


def test_batch_with_zero_weight_sum_stays_finite():
    X, y = data("iris")
    w = np.ones(len(y))
    w[:10] = 0.0
    est = fastmlp.MLPClassifier(hidden_layer_sizes=(4,), batch_size=10, shuffle=False, max_iter=3,
                                solver="sgd", random_state=0).fit(X, y, sample_weight=w)
    assert all(np.isfinite(a).all() for a in est.coefs_ + est.intercepts_)
    assert np.isfinite(est.loss_curve_).all()


# --------------------------------------------------------------------------- sparse X
SPARSE = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "csr_array": sp.csr_array}


def _sparse_copy(X, fmt):
    X = X.copy()
    X[np.abs(X) < 0.7] = 0.0  # about half the entries
    return SPARSE[fmt](X), X


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fmt", list(SPARSE))
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_sparse_equals_dense(solver, fmt, dtype):
    X, y = data("multiclass", dtype)
    Xs, Xd = _sparse_copy(X, fmt)
    params = dict(hidden_layer_sizes=(10,), max_iter=6, random_state=0, **SOLVERS[solver])
    dense = fastmlp.MLPClassifier(**params).fit(Xd, y)
    sparse = fastmlp.MLPClassifier(**params).fit(Xs, y)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    assert sparse.n_iter_ == dense.n_iter_
    assert_same_weights(dense, sparse, **tol)
    assert sparse.coefs_[0].dtype == dtype
    assert_allclose(sparse.predict_proba(Xs), dense.predict_proba(Xd), **tol)
    assert_array_equal(sparse.predict(Xs), sparse.predict(Xd))
    assert sparse.score(Xs, y) == sparse.score(Xd, y)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_sparse_same_as_sklearn(solver, dtype):
    X, y = data("regression", dtype)
    Xs, _ = _sparse_copy(X, "csr")
    ref, ours = pair("regression", hidden_layer_sizes=(10,), max_iter=6, random_state=0, **SOLVERS[solver])
    ref.fit(Xs, y)
    ours.fit(Xs, y)
    if dtype == np.float64:
        assert_same_weights(ref, ours)
        assert_allclose(ours.predict(Xs), ref.predict(Xs), rtol=1e-8, atol=1e-10)
    else:
        assert ours.coefs_[0].dtype == np.float32 and ours.predict(Xs).dtype == np.float32
        assert_same_weights(ref, ours, rtol=RTOL32, atol=ATOL32)
        assert_allclose(ours.predict(Xs), ref.predict(Xs), rtol=RTOL32, atol=ATOL32)


def test_sparse_partial_fit_early_stopping_and_weights():
    X, y = data("binary")
    Xs, _ = _sparse_copy(X, "csc")
    w = weights_for(len(y))
    ref, ours = fit_both("binary", sparse=lambda _: Xs, sample_weight=w, hidden_layer_sizes=(8,),
                         early_stopping=True, n_iter_no_change=2, max_iter=12, random_state=0, **SOLVERS["adam"])
    assert_same_stochastic(ref, ours)
    ref, ours = pair("binary", hidden_layer_sizes=(8,), random_state=0, **SOLVERS["sgd"])
    for est in (ref, ours):
        for _ in range(3):
            est.partial_fit(Xs, y, sample_weight=w, classes=[0, 1])
    assert_same_stochastic(ref, ours)


def test_sparse_x_is_not_densified_or_modified():
    X, y = data("binary")
    Xs, _ = _sparse_copy(X, "csr")
    before = (Xs.data.copy(), Xs.indices.copy(), Xs.indptr.copy())
    est = fastmlp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(Xs, y)
    est.predict(Xs)
    for a, b in zip(before, (Xs.data, Xs.indices, Xs.indptr), strict=True):
        assert_array_equal(a, b)
    rows = _engine.SparseRows(Xs, np.float64)
    assert rows.data.size == Xs.nnz  # the kernels read the nonzeros only


# --------------------------------------------------------------------------- Poisson
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_poisson_same_as_sklearn(solver, dtype):
    X, y = data("counts", dtype)
    params = dict(loss="poisson", hidden_layer_sizes=(8,), activation="tanh", max_iter=8, random_state=0,
                  **SOLVERS[solver])
    if solver != "lbfgs":
        params["learning_rate_init"] = 1e-3
    ref, ours = fit_both("counts", dtype=dtype, sample_weight=weights_for(len(y)), **params)
    assert ours.out_activation_ == ref.out_activation_ == "exp"
    if dtype == np.float64:
        assert_allclose(ours.loss_, ref.loss_, rtol=RTOL)
        assert_same_weights(ref, ours)
        assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-8)
    else:
        assert ours.predict(X).dtype == np.float32
        assert_allclose(ours.predict(X), ref.predict(X), rtol=RTOL32)
    assert (ours.predict(X) > 0).all()


# --------------------------------------------------------------------------- hand-built fitted state
def _hand_built(cls):
    est = cls(solver="sgd", learning_rate_init=0.1, alpha=0.1, activation="logistic", max_iter=1, momentum=0,
              hidden_layer_sizes=2, random_state=1)
    est.coefs_ = [np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0.0]]), np.array([[0.1], [0.2]])]
    est.intercepts_ = [np.array([0.1, 0.1]), np.array([1.0])]
    est.n_outputs_, est.n_layers_, est.n_features_in_ = 1, 3, 3
    est.out_activation_ = "logistic"
    est.n_iter_, est.t_, est.best_loss_, est.loss_curve_, est._no_improvement_count = 0, 0, np.inf, [], 0
    return est


def test_partial_fit_from_assigned_weights_as_sklearn():
    X = np.array([[0.6, 0.8, 0.7], [0.1, -0.2, 0.4]])
    y = np.array([0, 1])
    ref, ours = _hand_built(sk.MLPClassifier), _hand_built(fastmlp.MLPClassifier)
    for est in (ref, ours):
        est.partial_fit(X, y, classes=[0, 1])
        est.partial_fit(X, y)
    assert_same_stochastic(ref, ours)
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-12)


# --------------------------------------------------------------------------- scikit-learn's own checks and tests
def test_sklearn_sample_weight_equivalence_with_sklearns_settings():
    """scikit-learn runs this check on its MLPs with these settings (its instance generator); so do we."""
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data

    check_sample_weight_equivalence_on_dense_data("MLPClassifier", fastmlp.MLPClassifier(solver="lbfgs"))
    check_sample_weight_equivalence_on_dense_data(
        "MLPRegressor", fastmlp.MLPRegressor(solver="sgd", tol=1e-2, random_state=42))


def test_poisson_and_lbfgs_models_survive_save_load_and_pickle(tmp_path):
    import pickle

    X, y = data("counts")
    est = fastmlp.MLPRegressor(loss="poisson", solver="lbfgs", hidden_layer_sizes=(6,), max_iter=15,
                               random_state=0).fit(X, y)
    est.save(tmp_path / "poisson.npz")
    for loaded in (fastmlp.MLPRegressor.load(tmp_path / "poisson.npz"), pickle.loads(pickle.dumps(est))):
        assert loaded.out_activation_ == "exp"
        assert_allclose(loaded.predict(X), est.predict(X), rtol=1e-12)
        assert_allclose(loaded.predict(sp.csr_matrix(X)), est.predict(X), rtol=1e-12)


def test_warm_start_switching_between_lbfgs_and_adam():
    X, y = data("iris")
    est = fastmlp.MLPClassifier(solver="lbfgs", hidden_layer_sizes=(6,), warm_start=True, max_iter=20,
                                random_state=0).fit(X, y)
    lbfgs_loss = est.loss_
    est.set_params(solver="adam", max_iter=5, learning_rate_init=1e-4).fit(X, y)
    assert len(est.loss_curve_) == 5 and est.loss_curve_[0] < 1.5 * lbfgs_loss + 0.1
    est.set_params(solver="lbfgs", max_iter=5).fit(X, y)
    assert est.loss_ <= est.loss_curve_[-1] + 1e-12


def test_malformed_sparse_matrix_is_a_clear_error():
    X, y = data("iris")
    est = fastmlp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, y)
    for field, value in (("indices", 99), ("indptr", 10**6)):
        Xs = sp.csr_matrix(X)
        getattr(Xs, field)[-1] = value
        with pytest.raises(ValueError, match="indices|indptr|CSR"):
            est.predict(Xs)
        with pytest.raises(ValueError, match="indices|indptr|CSR"):
            fastmlp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(Xs, y)
