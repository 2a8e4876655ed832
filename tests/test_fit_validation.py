"""The estimators' shortcuts around scikit-learn's per-fit validation (``fastmlp.estimators``): the parameters are
validated again whenever one of them may have changed, and plain training arrays get exactly the checks and
bookkeeping of ``validate_data`` (anything else takes ``validate_data`` itself)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import validate_data

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp import estimators as E


def _data(m=40, n=3, dtype=np.float64, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(m, n).astype(dtype)
    return X, (X[:, 0] > 0).astype(np.int64)


@pytest.fixture
def validations(monkeypatch):
    """The number of times scikit-learn's parameter validation ran."""
    calls = []
    original = BaseEstimator._validate_params

    def counted(self):
        calls.append(type(self).__name__)
        return original(self)

    monkeypatch.setattr(BaseEstimator, "_validate_params", counted)
    return calls


def test_parameters_are_validated_again_whenever_they_may_have_changed(validations):
    X, y = _data()
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
        est.fit(X, y)
        assert len(validations) == 1  # unchanged parameters: validated once
        est.set_params(alpha=-1.0)
        with pytest.raises(InvalidParameterError, match="alpha"):
            est.fit(X, y)
        est.set_params(alpha=1e-4)
        est.fit(X, y)
        est.set_params(max_iter=2.0)  # equal value, another type: validated (and refused) again
        with pytest.raises(InvalidParameterError, match="max_iter"):
            est.fit(X, y)
        est.set_params(max_iter=2, hidden_layer_sizes=[4])  # a list: validated on every fit
        est.fit(X, y)
        est.fit(X, y)
        est.hidden_layer_sizes[0] = 0
        with pytest.raises(ValueError, match="hidden_layer_sizes"):
            est.fit(X, y)
        est.set_params(hidden_layer_sizes=(4,), random_state=np.random.RandomState(1))
        est.fit(X, y)
        n = len(validations)
        est.fit(X, y)  # the same RandomState object
        est.set_params(random_state=np.random.RandomState(1))  # another one
        est.fit(X, y)
    assert len(validations) == n + 1
    assert validations.count("MLPClassifier") == len(validations)


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_plain_training_arrays_are_what_validate_data_returns(cls, dtype):
    X, y = _data(dtype=dtype)
    Xf = np.asfortranarray(X)
    ys = [y, y.astype(np.int32), y.astype(bool), y.astype(np.float64) + 0.5]
    for X_in in (X, Xf, X[::2], X[:1]):
        for y_in in ys:
            y_in = y_in[:X_in.shape[0]]
            for reset in (True, False):
                fast, slow = cls(), cls()
                fast.n_features_in_ = slow.n_features_in_ = X.shape[1]
                got = E._plain_training_arrays(fast, X_in, y_in, reset)
                want = validate_data(slow, X_in, y_in, multi_output=True, dtype=(np.float64, np.float32),
                                     reset=reset)
                assert got is not None
                assert got[0] is want[0] and got[1] is want[1]  # no copies, as scikit-learn
                assert vars(fast) == vars(slow)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_anything_else_takes_validate_data(cls):
    """Inputs the shortcut does not take (scikit-learn then raises its own errors or converts): non-finite
    values, other types and dtypes, shapes, a feature count or names that differ from the fitted ones."""
    X, y = _data()
    est = cls()
    est.n_features_in_ = 3
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    y_inf = y.astype(float)
    y_inf[2] = np.inf
    for X_in, y_in in [(X_nan, y), (X, y_inf), (X.tolist(), y), (np.asmatrix(X), y), (X.astype(np.int64), y),
                       (X.astype(np.float16), y), (X[:, :2], y), (X, y[:-1]), (X, y.reshape(-1, 1)),
                       (X, y.astype(str)), (X[:0], y[:0]), (X.ravel(), y)]:
        assert E._plain_training_arrays(est, X_in, y_in, reset=False) is None
    est.feature_names_in_ = np.array(["a", "b", "c"], dtype=object)
    assert E._plain_training_arrays(est, X, y, reset=False) is None
    assert E._plain_training_arrays(est, X, y, reset=True) is not None
    assert "feature_names_in_" not in vars(est)  # as validate_data(reset=True) on an array without names


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_fit_refuses_what_scikit_learn_refuses(cls):
    X, y = _data()
    est = cls(hidden_layer_sizes=(3,), max_iter=2, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
        X_nan = X.copy()
        X_nan[0, 0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            est.fit(X_nan, y)
        with pytest.raises(ValueError, match="features"):
            est.fit(X[:, :2], y)
        with pytest.raises(ValueError, match="inconsistent numbers of samples"):
            est.fit(X, y[:-1])
        before = est.coefs_[0].copy()
        est.fit(X, y)  # still fits, from where it was
    assert not np.array_equal(est.coefs_[0], before)
    assert_array_equal(est.n_features_in_, 3)
