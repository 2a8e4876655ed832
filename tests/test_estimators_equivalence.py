"""fastmlp's MLPClassifier / MLPRegressor give scikit-learn's numbers.

Every test fits scikit-learn's own estimator and fastmlp's with the same parameters and ``random_state``
(so the same initial weights, shuffles and validation split) and compares everything scikit-learn exposes:
the weights to 1e-8 relative (float64), ``loss_curve_``, ``n_iter_``, ``t_``, validation scores, ...
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from numpy.testing import assert_allclose, assert_array_equal  # noqa: E402
from sklearn import neural_network as sk  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from tolerances import SKLEARN  # noqa: E402

import fastmlp  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RTOL, ATOL = SKLEARN["rtol"], SKLEARN["atol"]


def _standardise(X):
    return StandardScaler().fit_transform(X)


def _load(task):
    if task == "binary":  # breast cancer, 569 x 30
        X, y = load_breast_cancer(return_X_y=True)
        return _standardise(X), y
    if task == "multiclass":  # digits (first 500), 10 classes
        X, y = load_digits(return_X_y=True)
        return _standardise(X[:500]), y[:500]
    if task == "iris":
        X, y = load_iris(return_X_y=True)
        return _standardise(X), y
    if task == "regression":  # diabetes, standardised target
        X, y = load_diabetes(return_X_y=True)
        return _standardise(X), (y - y.mean()) / y.std()
    if task == "multi-output":
        X, y = load_diabetes(return_X_y=True)
        Y = np.column_stack([y, X[:, 2] * 10 - X[:, 3]])
        return _standardise(X), _standardise(Y)
    if task == "multilabel":
        rng = np.random.RandomState(0)
        X = rng.randn(300, 6)
        Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] * X[:, 4] > 0]).astype(int)
        return X, Y
    raise ValueError(task)


_DATA: dict = {}


def data(task):
    if task not in _DATA:
        _DATA[task] = _load(task)
    return _DATA[task]


def kind(task):
    return "MLPRegressor" if task in ("regression", "multi-output") else "MLPClassifier"


def pair(task, **params):
    """(scikit-learn estimator, fastmlp estimator), unfitted, with the same parameters."""
    return getattr(sk, kind(task))(**params), getattr(fastmlp, kind(task))(**params)


def fit_both(task, **params):
    X, y = data(task)
    ref, ours = pair(task, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X, y)
        ours.fit(X, y)
    return ref, ours


def assert_same(ref, ours, rtol=RTOL):
    """Everything scikit-learn's fitted MLP exposes agrees."""
    for name in ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_", "n_features_in_"):
        assert getattr(ours, name) == getattr(ref, name), name
    if hasattr(ref, "classes_"):
        assert_array_equal(ours.classes_, ref.classes_)
    assert len(ours.loss_curve_) == len(ref.loss_curve_)
    assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=rtol)
    assert_allclose(ours.loss_, ref.loss_, rtol=rtol)
    if ref.best_loss_ is None:
        assert ours.best_loss_ is None
    else:
        assert_allclose(ours.best_loss_, ref.best_loss_, rtol=rtol)
    if ref.validation_scores_ is None:
        assert ours.validation_scores_ is None and ours.best_validation_score_ is None
    else:
        assert_allclose(ours.validation_scores_, ref.validation_scores_, rtol=rtol)
        assert_allclose(ours.best_validation_score_, ref.best_validation_score_, rtol=rtol)
    assert ours._no_improvement_count == ref._no_improvement_count
    assert len(ours.coefs_) == len(ref.coefs_)
    for i, (a, b) in enumerate(zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_, strict=True)):
        assert a.shape == b.shape, i
        assert_allclose(a, b, rtol=rtol, atol=ATOL, err_msg=f"parameter array {i}")


SOLVERS = {
    "sgd-momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False, learning_rate_init=0.01),
    "sgd-nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True, learning_rate_init=0.01),
    "sgd-plain": dict(solver="sgd", momentum=0.0, learning_rate_init=0.05),
    "adam": dict(solver="adam", learning_rate_init=0.005),
}
ACTIVATIONS = ("identity", "logistic", "tanh", "relu")


# --------------------------------------------------------------------------- from the same initial weights
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_same_weights_and_loss_curve(task, solver, activation):
    ref, ours = fit_both(task, hidden_layer_sizes=(16, 8), activation=activation, batch_size=32, max_iter=10,
                         shuffle=False, random_state=0, **SOLVERS[solver])
    assert_same(ref, ours)
    X, _ = data(task)
    if task == "regression":
        assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-8, atol=1e-10)
    else:
        assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-8, atol=1e-12)
        assert_array_equal(ours.predict(X), ref.predict(X))


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression", "multilabel"])
def test_same_with_shuffling(task, solver):
    """scikit-learn's per-epoch permutations are reproduced from the same random_state."""
    ref, ours = fit_both(task, hidden_layer_sizes=(12,), activation="tanh", batch_size=50, max_iter=8,
                         shuffle=True, random_state=3, **SOLVERS[solver])
    assert_same(ref, ours)


@pytest.mark.parametrize("task", ["iris", "multi-output", "multilabel"])
def test_same_other_targets_default_batch(task):
    ref, ours = fit_both(task, hidden_layer_sizes=(10, 10), max_iter=15, random_state=1)
    assert_same(ref, ours)


def test_same_with_strong_l2_and_batch_size_one():
    X, y = data("iris")
    params = dict(hidden_layer_sizes=(5,), alpha=0.5, batch_size=1, max_iter=3, solver="sgd", random_state=0)
    ref, ours = pair("iris", **params)
    ref.fit(X, y)
    ours.fit(X, y)
    assert_same(ref, ours)


def test_random_state_instance_is_consumed_the_same_way():
    X, y = data("binary")
    ref, ours = pair("binary", hidden_layer_sizes=(8,), max_iter=4, random_state=np.random.RandomState(7))
    ours.set_params(random_state=np.random.RandomState(7))
    ref.fit(X, y)
    ours.fit(X, y)
    assert_same(ref, ours)


# --------------------------------------------------------------------------- schedules and stopping
def test_invscaling_schedule():
    ref, ours = fit_both("binary", hidden_layer_sizes=(16,), solver="sgd", learning_rate="invscaling",
                         learning_rate_init=0.5, power_t=0.3, batch_size=64, max_iter=12, random_state=0)
    assert_same(ref, ours)
    assert ours._optimizer.learning_rate == ref._optimizer.learning_rate


def test_adaptive_schedule_divides_and_stops():
    # tol larger than any improvement: every n_iter_no_change + 1 epochs the rate is divided by 5
    ref, ours = fit_both("binary", hidden_layer_sizes=(8,), solver="sgd", learning_rate="adaptive",
                         learning_rate_init=0.01, tol=1.0, n_iter_no_change=1, batch_size=100, max_iter=40,
                         random_state=0)
    assert ref.n_iter_ < 40  # stopped because the rate fell below 1e-6
    assert_same(ref, ours)
    assert ours._optimizer.learning_rate == ref._optimizer.learning_rate


@pytest.mark.parametrize("solver", ["sgd-nesterov", "adam"])
def test_training_loss_convergence_stop(solver):
    ref, ours = fit_both("binary", hidden_layer_sizes=(8,), tol=1e-2, n_iter_no_change=3, max_iter=200,
                         batch_size=64, random_state=0, **SOLVERS[solver])
    assert ref.n_iter_ < 200
    assert_same(ref, ours)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression", "multilabel"])
def test_early_stopping(task):
    ref, ours = fit_both(task, hidden_layer_sizes=(16,), early_stopping=True, validation_fraction=0.2,
                         n_iter_no_change=3, tol=1e-3, max_iter=60, batch_size=32, random_state=0,
                         **SOLVERS["adam"])
    assert ref.n_iter_ < 60
    assert_same(ref, ours)


def test_verbose_output_matches(capsys):
    X, y = data("binary")
    params = dict(hidden_layer_sizes=(8,), verbose=True, early_stopping=True, n_iter_no_change=2, tol=0.5,
                  max_iter=20, random_state=0, solver="sgd", learning_rate="adaptive")
    ref, ours = pair("binary", **params)
    ref.fit(X, y)
    expected = capsys.readouterr().out
    ours.fit(X, y)
    got = capsys.readouterr().out
    assert "Validation score" in expected and "Setting learning rate" in expected
    assert got == expected


# --------------------------------------------------------------------------- warm start and partial_fit
@pytest.mark.parametrize("solver", ["sgd-nesterov", "adam"])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_warm_start_keeps_what_sklearn_keeps(solver, early_stopping):
    X, y = data("binary")
    params = dict(hidden_layer_sizes=(8,), warm_start=True, max_iter=6, batch_size=64, random_state=0,
                  early_stopping=early_stopping, n_iter_no_change=2, tol=1e-3, **SOLVERS[solver])
    ref, ours = pair("binary", **params)
    for max_iter in (6, 4, 5):
        ref.set_params(max_iter=max_iter).fit(X, y)
        ours.set_params(max_iter=max_iter).fit(X, y)
        assert_same(ref, ours)


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_warm_start_from_the_same_assigned_weights(task):
    X, y = data(task)
    params = dict(hidden_layer_sizes=(8, 4), warm_start=True, max_iter=1, batch_size=64, random_state=0,
                  **SOLVERS["sgd-momentum"])
    ref, ours = pair(task, **params)
    ref.fit(X, y)
    ours.fit(X, y)
    rng = np.random.RandomState(42)
    start = [rng.uniform(-0.3, 0.3, c.shape) for c in ref.coefs_ + ref.intercepts_]
    n = len(ref.coefs_)
    for est in (ref, ours):
        est.coefs_ = [a.copy() for a in start[:n]]
        est.intercepts_ = [a.copy() for a in start[n:]]
        est.set_params(max_iter=7).fit(X, y)
    assert_same(ref, ours)


@pytest.mark.parametrize("solver", ["sgd-nesterov", "adam"])
def test_partial_fit_classifier(solver):
    X, y = data("multiclass")
    params = dict(hidden_layer_sizes=(16,), batch_size=40, random_state=0, **SOLVERS[solver])
    ref, ours = pair("multiclass", **params)
    classes = np.unique(y)
    for start in range(0, 500, 100):
        chunk = slice(start, start + 100)
        ref.partial_fit(X[chunk], y[chunk], classes=classes)
        ours.partial_fit(X[chunk], y[chunk], classes=classes)
        assert_same(ref, ours)
    # the optimiser state (velocities, Adam's moments and step count) carried over every call
    if solver == "adam":
        assert ours._optimizer.engine_optimizer.t == ref._optimizer.t


def test_partial_fit_regressor_after_fit():
    X, y = data("regression")
    ref, ours = pair("regression", hidden_layer_sizes=(16,), max_iter=3, batch_size=50, random_state=0,
                     **SOLVERS["sgd-momentum"])
    for est in (ref, ours):
        est.fit(X, y)
        for _ in range(3):
            est.partial_fit(X[:200], y[:200])
    assert_same(ref, ours)


def test_partial_fit_multilabel():
    X, Y = data("multilabel")
    ref, ours = pair("multilabel", hidden_layer_sizes=(8,), random_state=0)
    for est in (ref, ours):
        est.partial_fit(X, Y, classes=[0, 1, 2])  # multilabel: the label columns
        est.partial_fit(X, Y)
    assert_same(ref, ours)


def test_warm_start_after_changing_the_activation():
    X, y = data("binary")
    ref, ours = pair("binary", hidden_layer_sizes=(8,), warm_start=True, max_iter=3, random_state=0,
                     **SOLVERS["adam"])
    for est in (ref, ours):
        est.fit(X, y)
        est.set_params(activation="tanh").fit(X, y)
    assert_same(ref, ours)


@pytest.mark.parametrize("n_iter_no_change", [1, 4, np.inf])
@pytest.mark.parametrize("schedule", ["invscaling", "adaptive"])
def test_epochs_run_in_chunks_book_like_sklearn(schedule, n_iter_no_change):
    """Epochs between possible stopping points run in one engine call; the results must not change."""
    ref, ours = fit_both("binary", hidden_layer_sizes=(8,), solver="sgd", learning_rate=schedule,
                         learning_rate_init=0.05, power_t=0.25, tol=3e-3, n_iter_no_change=n_iter_no_change,
                         max_iter=30, batch_size=100, shuffle=True, random_state=5)
    assert_same(ref, ours)
