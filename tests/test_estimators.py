"""fastmlp.MLPClassifier / MLPRegressor: scikit-learn conventions, errors, dtypes, pickling, parallel use.

Numerical equality with scikit-learn's own MLP lives in ``test_estimators_equivalence.py``.
"""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from numpy.testing import assert_allclose, assert_array_equal  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastmlp import MLPClassifier, MLPRegressor  # noqa: E402
from tests.tolerances import SKLEARN  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _regression_data(n=120, n_features=5, n_targets=1, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, n_features)
    W = rng.randn(n_features, n_targets)
    y = np.tanh(X @ W) + 0.05 * rng.randn(n, n_targets)
    return X, (y.ravel() if n_targets == 1 else y)


# --------------------------------------------------------------------------- scikit-learn's own checks
@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_constructor_defaults_equal_sklearn():
    from sklearn import neural_network as sk

    for ours, theirs in ((MLPClassifier, sk.MLPClassifier), (MLPRegressor, sk.MLPRegressor)):
        assert ours().get_params() == theirs().get_params()


# --------------------------------------------------------------------------- outputs and attributes
def test_binary_classifier_attributes_and_outputs(cancer):
    X, y = cancer
    clf = MLPClassifier(hidden_layer_sizes=(8, 4), max_iter=5, random_state=0).fit(X, y)
    assert clf.out_activation_ == "logistic"
    assert clf.n_outputs_ == 1 and clf.n_layers_ == 4 and clf.n_features_in_ == 30
    assert [c.shape for c in clf.coefs_] == [(30, 8), (8, 4), (4, 1)]
    assert [b.shape for b in clf.intercepts_] == [(8,), (4,), (1,)]
    assert clf.n_iter_ == 5 and clf.t_ == 5 * len(X) and len(clf.loss_curve_) == 5
    assert clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert_array_equal(clf.classes_, [0, 1])
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert_allclose(clf.predict_log_proba(X), np.log(proba))
    assert_array_equal(clf.predict(X), clf.classes_[(proba[:, 1] > 0.5).astype(int)])
    assert 0.0 <= clf.score(X, y) <= 1.0


def test_multiclass_string_labels(iris):
    X, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=300, random_state=0).fit(X, labels)
    assert clf.out_activation_ == "softmax" and clf.n_outputs_ == 3
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(X)) <= set(labels)
    assert clf.score(X, labels) > 0.9


def test_multilabel():
    rng = np.random.RandomState(0)
    X = rng.randn(100, 4)
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5]).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 3
    assert clf.predict(X).shape == (100, 3)
    assert clf.predict_proba(X).shape == (100, 3)
    assert clf.score(X, Y) > 0.7


def test_regressor_single_and_multi_output():
    X, y = _regression_data()
    reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=200, random_state=0).fit(X, y)
    assert reg.out_activation_ == "identity" and reg.predict(X).shape == (120,)
    assert reg.score(X, y) > 0.5
    X, Y = _regression_data(n_targets=3)
    reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=200, random_state=0).fit(X, Y)
    assert reg.n_outputs_ == 3 and reg.predict(X).shape == (120, 3)


def test_leaky_relu_trains(cancer):
    X, y = cancer
    clf = MLPClassifier(hidden_layer_sizes=(16,), activation="leaky_relu", solver="sgd", learning_rate_init=0.05,
                        max_iter=30, random_state=0).fit(X, y)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X, y) > 0.95


def test_no_hidden_layer(cancer):
    X, y = cancer
    clf = MLPClassifier(hidden_layer_sizes=(), max_iter=20, random_state=0).fit(X, y)
    assert clf.n_layers_ == 2 and [c.shape for c in clf.coefs_] == [(30, 1)]


# --------------------------------------------------------------------------- dtypes
def test_float32_trains_in_float32(cancer):
    X, y = cancer
    c32 = MLPClassifier(hidden_layer_sizes=(8,), max_iter=10, random_state=0).fit(X.astype(np.float32), y)
    c64 = MLPClassifier(hidden_layer_sizes=(8,), max_iter=10, random_state=0).fit(X, y)
    assert all(c.dtype == np.float32 for c in c32.coefs_ + c32.intercepts_)
    assert all(c.dtype == np.float64 for c in c64.coefs_ + c64.intercepts_)
    assert c32.predict_proba(X.astype(np.float32)).dtype == np.float32
    for a, b in zip(c32.coefs_, c64.coefs_, strict=True):
        assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    assert_allclose(c32.loss_curve_, c64.loss_curve_, rtol=1e-4)


def test_integer_input_becomes_float64():
    rng = np.random.RandomState(0)
    X = rng.randint(-3, 4, size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    assert clf.coefs_[0].dtype == np.float64
    ref = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X.astype(np.float64), y)
    assert_allclose(clf.coefs_[0], ref.coefs_[0])


def test_fortran_and_readonly_input_not_mutated(cancer):
    X, y = cancer
    Xf = np.asfortranarray(X)
    Xf.setflags(write=False)
    before = Xf.copy()
    a = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(Xf, y)
    b = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    assert_array_equal(Xf, before)
    assert_allclose(a.coefs_[0], b.coefs_[0])


# --------------------------------------------------------------------------- weights, warm start, pickling
def test_assigned_weights_are_used(cancer):
    X, y = cancer
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    clf.coefs_ = [np.zeros_like(c) for c in clf.coefs_]
    clf.intercepts_ = [np.zeros_like(b) for b in clf.intercepts_]
    assert_allclose(clf.predict_proba(X), 0.5)
    clf.coefs_[0][...] = 1.0  # in-place edits of assigned arrays are seen too
    assert_allclose(clf.predict_proba(X), 0.5)  # output layer still zero
    with pytest.raises(ValueError, match="shape"):
        clf.coefs_ = [np.zeros((3, 3))] + clf.coefs_[1:]
        clf.predict(X)


def test_warm_start_continues_from_assigned_weights(cancer):
    X, y = cancer
    params = dict(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.01, max_iter=4, shuffle=False,
                  random_state=0)
    start = MLPClassifier(**{**params, "random_state": 1}).fit(X, y)
    clf = MLPClassifier(**params, warm_start=True).fit(X, y)
    clf.coefs_ = [c.copy() for c in start.coefs_]
    clf.intercepts_ = [b.copy() for b in start.intercepts_]
    clf.fit(X, y)
    # the same as continuing `start` itself with warm_start (a new SGD velocity per fit, as scikit-learn)
    start.set_params(warm_start=True).fit(X, y)
    for a, b in zip(clf.coefs_ + clf.intercepts_, start.coefs_ + start.intercepts_, strict=True):
        assert_allclose(a, b, rtol=1e-12)


def test_refit_without_warm_start_does_not_touch_old_arrays(cancer):
    X, y = cancer
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    old = clf.coefs_[0].copy()
    kept = clf.coefs_[0]
    clf.fit(X, y)
    assert_array_equal(kept, old)


def test_pickle_roundtrip_keeps_training(cancer):
    X, y = cancer
    clf = MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", max_iter=3, shuffle=False, random_state=0,
                        warm_start=True).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    assert_allclose(copy.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)
    # coefs_ of the unpickled model still follow its training
    for a, b in zip(clf.coefs_ + clf.intercepts_, copy.coefs_ + copy.intercepts_, strict=True):
        assert_allclose(a, b, rtol=1e-12)
    assert copy.coefs_[0] is copy._net.coefs[0]
    cloned = clone(clf)
    assert not hasattr(cloned, "coefs_")


# --------------------------------------------------------------------------- errors
def test_lbfgs_has_no_partial_fit():
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert hasattr(MLPClassifier(solver="sgd"), "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")


def test_poisson_loss_refuses_negative_targets():
    X, y = _regression_data()
    with pytest.raises(ValueError, match="negative.*Poisson"):
        MLPRegressor(loss="poisson").fit(X, y)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(activation="softplus"), "activation"),
        (dict(solver="rmsprop"), "solver"),
        (dict(hidden_layer_sizes=(4, 0)), "hidden_layer_sizes"),
        (dict(learning_rate_init=0.0), "learning_rate_init"),
        (dict(learning_rate="cosine"), "learning_rate"),
        (dict(momentum=1.5), "momentum"),
        (dict(batch_size=0), "batch_size"),
        (dict(validation_fraction=1.0), "validation_fraction"),
    ],
)
def test_bad_parameters(iris, params, match):
    X, y = iris
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**params).fit(X, y)


def test_bad_data(iris):
    X, y = iris
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier(max_iter=2).fit(Xn, y)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="NaN|infinity"):
        clf.predict(np.where(Xn == Xn, Xn, np.inf))
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier(max_iter=2).fit(X, X[:, 0])
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="classes"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="[Ss]ample weights.*zero"):
        MLPClassifier(max_iter=2).fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="sample_weight.shape"):
        MLPClassifier(max_iter=2).fit(X, y, sample_weight=np.ones(3))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["multiclass", "binary", "regressor"])
def test_predict_finds_every_non_finite_input_and_lets_overflow_through(iris, kind, dtype):
    """Prediction leaves the finiteness of a dense ``X`` to the forward kernel (a NaN or inf makes its row's
    first-layer outputs non-finite): a single one in any row, one row included, is still refused as
    scikit-learn refuses it; a finite ``X`` so large that the products overflow is still accepted."""
    X, y = iris
    X = X.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if kind == "regressor":
            est = MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, X[:, 0])
            methods = [est.predict]
        else:
            est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
            est.fit(X, y if kind == "multiclass" else y == 1)
            methods = [est.predict, est.predict_proba, est.predict_log_proba]
    for method in methods:
        for row, col, bad in [(0, 0, np.nan), (75, 2, np.inf), (149, 3, -np.inf)]:
            Xb = X.copy()
            Xb[row, col] = bad
            with pytest.raises(ValueError, match="NaN|infinity"):
                method(Xb)
            with pytest.raises(ValueError, match="NaN|infinity"):
                method(Xb[row:row + 1])
        huge = np.full((4, X.shape[1]), np.finfo(dtype).max / 2, dtype)
        with np.errstate(all="ignore"):
            method(huge)  # finite: no error, whatever the products give


def test_warm_start_with_other_classes_is_an_error(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="warm_start can only be used"):
        clf.fit(X[y < 2], y[y < 2])


def test_warm_start_with_other_hidden_sizes_is_an_error(iris):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="network layout"):
        clf.set_params(hidden_layer_sizes=(5,)).fit(X, y)


def test_divergence_raises_valueerror_and_keeps_finite_weights():
    X, y = _regression_data()
    reg = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e3, momentum=0.0,
                       max_iter=50, shuffle=False, random_state=0)
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        reg.fit(X * 1e3, y * 1e3)
    assert all(np.isfinite(c).all() for c in reg.coefs_ + reg.intercepts_)
    assert np.isfinite(reg.loss_curve_).all()


def test_a_diverging_partial_fit_changes_nothing():
    """n_iter_ stayed 0 after a partial_fit whose epoch diverged (the loop reset it first)."""
    rng = np.random.RandomState(0)
    X, y = rng.randn(16, 3), np.arange(16) % 2
    clf = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=0.5, momentum=0.0, batch_size=16,
                        shuffle=False, random_state=0)
    clf.partial_fit(X, y, classes=[0, 1])
    state = (clf.n_iter_, clf.t_, list(clf.loss_curve_), [c.copy() for c in clf.coefs_ + clf.intercepts_])
    assert state[0] == 1
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        clf.partial_fit(X * 1e200, y)
    assert (clf.n_iter_, clf.t_, clf.loss_curve_) == state[:3]
    for got, want in zip(clf.coefs_ + clf.intercepts_, state[3], strict=True):
        np.testing.assert_array_equal(got, want)


def test_divergence_with_early_stopping_restores_best_weights():
    X, y = _regression_data(n=200)
    reg = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=0.5, momentum=0.9,
                       max_iter=50, shuffle=False, random_state=0, early_stopping=True)
    with pytest.warns(ConvergenceWarning, match="diverged"):
        reg.fit(X * 30, y * 30)
    assert all(np.isfinite(c).all() for c in reg.coefs_ + reg.intercepts_)
    # the diverged epoch is booked as scikit-learn books it (its test_mlp_diverging_loss): a NaN score and loss
    assert np.isnan(reg.validation_scores_[-1]) and np.isnan(reg.loss_curve_[-1])
    assert np.all(np.isfinite(reg.validation_scores_[:-1]))
    assert len(reg.validation_scores_) == len(reg.loss_curve_) == reg.n_iter_
    # scikit-learn trains on with NaN weights (to max_iter: a NaN score never counts as no improvement) and
    # restores its best weights; its loss_ is its last epoch's, NaN, as is this one's (it was the epoch before's)
    from sklearn.neural_network import MLPRegressor as SKLearnRegressor

    sk = SKLearnRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=0.5, momentum=0.9,
                          max_iter=50, shuffle=False, random_state=0, early_stopping=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(X * 30, y * 30)
    assert isinstance(reg.loss_, float) and np.isnan(reg.loss_) and np.isnan(sk.loss_)
    assert reg.best_loss_ is None and sk.best_loss_ is None
    done = reg.n_iter_ - 1
    assert_allclose(reg.loss_curve_[:done], sk.loss_curve_[:done], **SKLEARN)
    assert_allclose(reg.validation_scores_[:done], sk.validation_scores_[:done], **SKLEARN)
    assert_allclose(reg.best_validation_score_, sk.best_validation_score_, **SKLEARN)
    for got, want in zip(reg.coefs_ + reg.intercepts_, sk.coefs_ + sk.intercepts_, strict=True):
        assert_allclose(got, want, **SKLEARN)


def test_batch_size_larger_than_data_warns(iris):
    X, y = iris
    with pytest.warns(UserWarning, match="clipped"):
        MLPClassifier(hidden_layer_sizes=(4,), batch_size=1000, max_iter=1).fit(X, y)


def test_convergence_warning_at_max_iter(iris):
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning, match="Maximum iterations \\(3\\)"):
            MLPClassifier(hidden_layer_sizes=(4,), max_iter=3).fit(X, y)


# --------------------------------------------------------------------------- parallel use
def test_grid_search_and_cross_val_score_in_parallel(iris):
    X, y = iris
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0)
    grid = {"alpha": [1e-4, 1e-2], "learning_rate_init": [1e-3, 1e-2]}
    serial = GridSearchCV(est, grid, cv=3, n_jobs=1).fit(X, y)
    parallel = GridSearchCV(est, grid, cv=3, n_jobs=2).fit(X, y)
    assert_allclose(parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"])
    assert parallel.best_params_ == serial.best_params_
    scores = cross_val_score(est, X, y, cv=3, n_jobs=2)
    assert_allclose(scores, cross_val_score(est, X, y, cv=3, n_jobs=1))


def _fit_and_report_threads(X, y):
    import threadpoolctl

    MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=2, batch_size=len(X), random_state=0).fit(X, y)
    return [(info["internal_api"], info["num_threads"]) for info in threadpoolctl.threadpool_info()]


def test_no_oversubscription_in_joblib_workers(iris):
    """In loky workers (GridSearchCV's default backend) every BLAS / OpenMP pool is capped at cpu_count // n_jobs."""
    pytest.importorskip("threadpoolctl")
    from joblib import Parallel, delayed

    X, y = iris
    reports = Parallel(n_jobs=2)(delayed(_fit_and_report_threads)(X, y) for _ in range(2))
    cap = max(1, (os.cpu_count() or 1) // 2)
    for report in reports:
        assert report, "threadpoolctl found no thread pool in the worker"
        assert all(n <= cap for _, n in report), report


@pytest.mark.parametrize(
    "y",
    [
        np.array([0, 1, 1, 0, 1]),
        np.array([-1, 1, 1, -1, -1]),
        np.array([3, 7, 5, 3, 5]),
        np.array([0.0, 2.0, 0.0, 1.0, 2.0]),
        np.array(["b", "a", "c", "a", "b"]),
        np.array(["no", "yes", "yes", "no", "no"]),
        np.array(["x", "z", "y", "z", "x"], dtype=object),
    ],
)
def test_fast_label_binarisation_equals_label_binarizer(y):
    from sklearn.preprocessing import LabelBinarizer

    from fastmlp.estimators import _fast_binarize

    lb = LabelBinarizer().fit(y)
    fast = _fast_binarize(lb, y)
    if y.dtype == object:
        assert fast is None  # left to scikit-learn
        return
    Y, all_present = fast
    assert Y.dtype == bool and all_present
    assert_array_equal(Y, lb.transform(y).astype(bool))
    assert _fast_binarize(lb, y[:1])[1] is False
    unknown = np.concatenate([y[:2], y[:1]])
    unknown[-1] = "zz" if y.dtype.kind == "U" else 99
    assert _fast_binarize(lb, unknown) is None
