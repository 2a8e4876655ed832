"""Issue 9 section 3: every bad input refused with a clear error, in every dtype (checked after the cast)."""

from __future__ import annotations

import numpy as np
import pytest

from fastmlp import MLP, _checks, functional, reference


def _params(dtype, dims=(3, 4, 1), seed=0):
    return {k: v.astype(dtype) for k, v in reference.initialize_parameters(list(dims), seed=seed).items()}


def _data(m=8, seed=1):
    r = np.random.RandomState(seed)
    return r.randn(3, m), (r.rand(1, m) > 0.5).astype(float)


# --- float64 values that overflow float32 ------------------------------------------------------------
@pytest.mark.parametrize("call", ["forward", "cost", "fit", "predict"])
def test_float32_model_refuses_input_that_overflows_float32(call):
    model = MLP([3, 4, 1], seed=0, dtype="float32")
    X, Y = _data()
    X[1, 2] = 1e39  # finite in float64, inf in float32
    with pytest.raises(ValueError, match="too large for float32"):
        if call in ("cost", "fit"):
            getattr(model, call)(X, Y)
        else:
            getattr(model, call)(X)
    assert model.history == []


def test_float32_model_refuses_targets_and_parameters_that_overflow():
    model = MLP([3, 4, 1], loss="mse", output_activation="linear", seed=0, dtype="float32")
    X, Y = _data()
    Y[0, 0] = -1e39
    with pytest.raises(ValueError, match="Y holds values too large for float32"):
        model.fit(X, Y)
    before = model.get_parameters()
    params = model.get_parameters()
    params = {k: v.astype(np.float64) for k, v in params.items()}
    params["W2"][0, 0] = 3.5e38
    with pytest.raises(ValueError, match="W2 holds values too large for float32"):
        model.set_parameters(params)
    for k, v in model.get_parameters().items():
        np.testing.assert_array_equal(v, before[k])


def test_leaky_slope_that_overflows_the_dtype_is_refused():
    with pytest.raises(ValueError, match="leaky_slope.*too large for float32"):
        MLP([3, 4, 1], hidden_activation="leaky_relu", dtype="float32", leaky_slope=1e39)
    MLP([3, 4, 1], hidden_activation="leaky_relu", dtype="float64", leaky_slope=1e39)  # fine in float64
    X, _ = _data()
    params = _params(np.float32)
    with pytest.raises(ValueError, match="leaky_slope"):
        reference.L_model_forward(X, params, ["leaky_relu", "sigmoid"], leaky_slope=1e39)
    with pytest.raises(ValueError, match="leaky_slope"):
        functional.L_model_forward(X, params, ["leaky_relu", "sigmoid"], leaky_slope=1e39)


def test_reference_and_functional_refuse_data_that_overflows_float32_parameters():
    X, Y = _data()
    X[0, 0] = 1e39
    for module in (reference, functional):
        with pytest.raises(ValueError, match="too large for float32"):
            module.L_model_forward(X, _params(np.float32))
        with pytest.raises(ValueError, match="too large for float32"):
            module.train(_params(np.float32), X, Y)


# --- parameters of a dtype the kernels do not train ----------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
@pytest.mark.parametrize("module", [reference, functional])
def test_train_refuses_parameters_it_would_only_train_a_copy_of(module, dtype):
    if np.dtype(dtype) == np.float64:  # longdouble is float64 on some platforms
        pytest.skip("longdouble is float64 here")
    params = _params(dtype)
    before = {k: v.copy() for k, v in params.items()}
    X, Y = _data()
    with pytest.raises(ValueError, match=f"has dtype {np.dtype(dtype)}.*convert"):
        module.train(params, X, Y, epochs=3, learning_rate=0.5)
    grads = {f"d{k}": np.ones_like(v) for k, v in params.items()}
    with pytest.raises(ValueError, match=f"has dtype {np.dtype(dtype)}"):
        module.update_parameters(params, grads, 0.1)
    for k, v in params.items():
        np.testing.assert_array_equal(v, before[k])


# --- softmax cross-entropy for huge logits ---------------------------------------------------------------
def test_compute_cost_from_logits_is_finite_and_exact_for_huge_logits():
    Z = np.array([[1.7e308], [-1.7e308], [0.0]])
    assert reference.compute_cost_from_logits(Z, np.array([[1.0], [0.0], [0.0]]), loss="ce") == 0.0
    cost = reference.compute_cost_from_logits(Z, np.array([[0.5], [0.0], [0.5]]), loss="ce")
    assert np.isfinite(cost)
    assert cost == pytest.approx(0.5 * 1.7e308)
    # three equal huge logits: exactly ln 3, in both dtypes
    for dtype, big in ((np.float32, 1e8), (np.float64, 1e16)):
        Z = np.full((3, 2), big, dtype)
        Y = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
        assert reference.compute_cost_from_logits(Z, Y, loss="ce") == pytest.approx(np.log(3), rel=1e-6)


@pytest.mark.parametrize("dtype,big", [("float32", 1e5), ("float32", 1e8), ("float64", 1e16)])
def test_kernel_softmax_cross_entropy_is_exact_for_huge_logits(dtype, big):
    # one linear layer with zero weights and equal huge biases: every logit is `big`
    model = MLP([2, 3], output_activation="softmax", loss="ce", dtype=dtype, seed=0)
    params = model.get_parameters()
    params["W1"][:] = 0
    params["b1"][:] = big
    model.set_parameters(params)
    X = np.zeros((2, 4))
    Y = np.eye(3)[:, [0, 1, 2, 0]]
    assert model.cost(X, Y) == pytest.approx(np.log(3), rel=1e-6)
    model.fit(X, Y, epochs=1, learning_rate=1e-30)
    assert model.history[0] == pytest.approx(np.log(3), rel=1e-6)


# --- seeds --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", ["abc", 1.5, -1, 2**32, True])
def test_bad_seed_is_a_value_error_naming_the_parameter(seed):
    with pytest.raises(ValueError, match="seed"):
        MLP([3, 4, 1], seed=seed)
    with pytest.raises(ValueError, match="seed"):
        reference.initialize_parameters([3, 4, 1], seed=seed)
    X, Y = _data()
    with pytest.raises(ValueError, match="seed"):
        MLP([3, 4, 1], seed=0).fit(X, Y, shuffle=True, seed=seed)
    with pytest.raises(ValueError, match="seed"):
        functional.train(_params(np.float64), X, Y, shuffle=True, seed=seed)


def test_numpy_integer_seed_is_accepted():
    a = MLP([3, 4, 1], seed=np.int64(7)).get_parameters()
    b = MLP([3, 4, 1], seed=7).get_parameters()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


# --- one home for validation -------------------------------------------------------------------------------
def test_validation_lives_in_checks_only():
    import fastmlp.cli as cli
    import fastmlp.model as model

    assert not [name for name in vars(reference) if name.startswith("_check")]
    assert reference.check_parameters is _checks.check_parameters  # imported, not restated
    assert not hasattr(model, "_INITS")
    # the command line's argument types go through the same parsers
    with pytest.raises(Exception, match="positive integer"):
        cli._positive_int("0")
    assert cli._positive_float("0.5") == 0.5


def test_float32_estimator_refuses_float64_data_that_overflows_float32():
    import warnings

    from fastmlp import MLPClassifier, MLPRegressor

    r = np.random.RandomState(0)
    X = r.randn(30, 3).astype(np.float32)
    y = r.randn(30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y > 0)
    assert reg.coefs_[0].dtype == np.float32
    bad = X.astype(np.float64)
    bad[3, 1] = 1e39
    before = [c.copy() for c in reg.coefs_]
    with pytest.raises(ValueError, match="too large for float32"):
        reg.predict(bad)
    with pytest.raises(ValueError, match="too large for float32"):
        clf.predict_proba(bad)
    with pytest.raises(ValueError, match="too large for float32"):
        reg.partial_fit(bad, y)
    for a, b in zip(reg.coefs_, before, strict=True):
        np.testing.assert_array_equal(a, b)
