"""fastmlp.functional: the course-style API backed by the kernels gives the reference's numbers."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from tolerances import tol

from fastmlp import functional as F
from fastmlp import reference as R

TOL = {np.float64: tol(np.float64), np.float32: tol(np.float32)}
HIDDEN = ["relu", "leaky_relu", "sigmoid", "tanh", "linear"]


def _problem(rng, dims, loss, m, dtype):
    X = rng.randn(dims[0], m).astype(dtype)
    if loss == "ce":
        Y = np.eye(dims[-1])[:, rng.randint(0, dims[-1], m)].astype(dtype)
    elif loss == "bce":
        Y = (rng.rand(dims[-1], m) < 0.5).astype(dtype)
    else:
        Y = rng.randn(dims[-1], m).astype(dtype)
    return X, Y


def _acts(hidden, n_layers, loss):
    out = {"bce": "sigmoid", "ce": "softmax", "mse": "tanh"}[loss]
    return [hidden] * (n_layers - 1) + [out]


def _copy(params):
    return {k: v.copy() for k, v in params.items()}


@given(
    dims=st.lists(st.integers(1, 7), min_size=2, max_size=5),
    hidden=st.sampled_from(HIDDEN),
    loss=st.sampled_from(["bce", "mse", "ce"]),
    m=st.integers(1, 9),
    dtype=st.sampled_from([np.float64, np.float32]),
    seed=st.integers(0, 2**16),
)
def test_forward_backward_update_equal_reference(dims, hidden, loss, m, dtype, seed):
    if loss == "ce" and dims[-1] < 2:
        dims = dims[:-1] + [2]
    rng = np.random.RandomState(seed)
    X, Y = _problem(rng, dims, loss, m, dtype)
    acts = _acts(hidden, len(dims) - 1, loss)
    params = R.initialize_parameters(dims, init="xavier", seed=seed, dtype=dtype)
    before = _copy(params)
    AL_ref, caches_ref = R.L_model_forward(X, params, acts, leaky_slope=0.2)
    AL, caches = F.L_model_forward(X, params, acts, leaky_slope=0.2)
    assert AL.dtype == dtype
    assert_allclose(AL, AL_ref, **TOL[dtype])
    for (lin, Z), (lin_ref, Z_ref) in zip(caches, caches_ref, strict=True):
        assert_allclose(Z, Z_ref, **TOL[dtype])
        assert_allclose(lin[0], lin_ref[0], **TOL[dtype])
    grads_ref = R.L_model_backward(AL_ref, Y, caches_ref, acts, loss, leaky_slope=0.2)
    grads = F.L_model_backward(AL, Y, caches, acts, loss, leaky_slope=0.2)
    assert set(grads) == set(grads_ref)
    for key in grads_ref:
        assert grads[key].dtype == dtype
        assert_allclose(grads[key], grads_ref[key], **TOL[dtype], err_msg=key)
    for key in params:  # nothing above touched the parameters
        assert_allclose(params[key], before[key], rtol=0, atol=0)
    updated_ref = R.update_parameters(_copy(params), grads_ref, 0.3)
    updated = F.update_parameters(params, grads, 0.3)
    assert updated is params
    for key in params:
        assert params[key].dtype == dtype
        assert_allclose(params[key], updated_ref[key], **TOL[dtype], err_msg=key)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch_size", [None, 1, 7])
@pytest.mark.parametrize("shuffle", [False, True])
def test_train_equals_reference(dtype, batch_size, shuffle):
    rng = np.random.RandomState(3)
    dims = [4, 6, 5, 2]
    X, Y = _problem(rng, dims, "bce", 23, dtype)
    params = R.initialize_parameters(dims, seed=4, dtype=dtype)
    ref_params, ref_costs = R.train(_copy(params), X, Y, ["tanh", "relu", "sigmoid"], "bce", 0.1, 4, batch_size,
                                    shuffle=shuffle, seed=9)
    out, costs = F.train(params, X, Y, ["tanh", "relu", "sigmoid"], "bce", 0.1, 4, batch_size, shuffle=shuffle,
                         seed=9)
    assert out is params and len(costs) == 4
    assert_allclose(costs, ref_costs, **TOL[dtype])
    for key in params:
        assert params[key].dtype == dtype
        assert_allclose(params[key], ref_params[key], **TOL[dtype])


def test_wide_layers_take_the_blas_path_and_agree():
    rng = np.random.RandomState(5)
    dims = [50, 300, 200, 3]
    X, Y = _problem(rng, dims, "ce", 64, np.float64)
    params = R.initialize_parameters(dims, seed=1)
    acts = ["relu", "relu", "softmax"]
    AL_ref, c_ref = R.L_model_forward(X, params, acts)
    AL, c = F.L_model_forward(X, params, acts)
    assert_allclose(AL, AL_ref, rtol=1e-10, atol=1e-12)
    g_ref = R.L_model_backward(AL_ref, Y, c_ref, acts, "ce")
    g = F.L_model_backward(AL, Y, c, acts, "ce")
    for key in g_ref:
        assert_allclose(g[key], g_ref[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_architecture_style_equals_reference():
    arch = [{"input_dim": 3, "output_dim": 4, "activation": "relu"},
            {"input_dim": 4, "output_dim": 1, "activation": "sigmoid"}]
    params = R.init_layers(arch, seed=99)
    X, Y = _problem(np.random.RandomState(0), [3, 4, 1], "bce", 11, np.float64)
    A_ref, mem_ref = R.full_forward_propagation(X, params, arch)
    A, mem = F.full_forward_propagation(X, params, arch)
    assert set(mem) == set(mem_ref)
    for key in mem_ref:
        assert_allclose(mem[key], mem_ref[key], rtol=1e-12, atol=1e-14)
    g_ref = R.full_backward_propagation(A_ref, Y, mem_ref, params, arch)
    g = F.full_backward_propagation(A, Y, mem, params, arch)
    for key in g_ref:
        assert_allclose(g[key], g_ref[key], rtol=1e-10, atol=1e-12)


def test_caches_mix_with_the_reference():
    X, Y = _problem(np.random.RandomState(1), [2, 3, 1], "bce", 5, np.float64)
    params = R.initialize_parameters_deep([2, 3, 1], seed=3)
    AL, caches = F.L_model_forward(X, params)
    grads = R.L_model_backward(AL, Y, caches)
    AL_ref, caches_ref = R.L_model_forward(X, params)
    for key, value in R.L_model_backward(AL_ref, Y, caches_ref).items():
        assert_allclose(grads[key], value, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_saturated_logits_stay_finite(dtype):
    params = {"W1": np.array([[1e4, -1e4]], dtype), "b1": np.zeros((1, 1), dtype)}
    X = np.array([[1.0, -1.0, 3.0], [-1.0, 1.0, 0.5]], dtype)
    Y = np.array([[0.0, 1.0, 0.0]], dtype)
    AL, caches = F.L_model_forward(X, params, ["sigmoid"])
    grads = F.L_model_backward(AL, Y, caches, ["sigmoid"])
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    _, costs = F.train(_copy(params), X, Y, ["sigmoid"], "bce", 1e-6, 2)
    assert np.all(np.isfinite(costs))


def test_inputs_are_not_mutated():
    X, Y = _problem(np.random.RandomState(2), [3, 4, 1], "bce", 6, np.float64)
    X.flags.writeable = False
    Y.flags.writeable = False
    params = R.initialize_parameters([3, 4, 1], seed=0)
    before = _copy(params)
    AL, caches = F.L_model_forward(X, params)
    F.L_model_backward(AL, Y, caches)
    for key in params:
        assert np.array_equal(params[key], before[key])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p, X, Y: F.L_model_forward(X[:2], p), "rows"),
        (lambda p, X, Y: F.L_model_forward(X, p, ["relu", "swish"]), "swish"),
        (lambda p, X, Y: F.train(p, X, Y, loss="hinge"), "hinge"),
        (lambda p, X, Y: F.train(p, X, Y * 3), r"\[0, 1\]"),
        (lambda p, X, Y: F.train(p, np.where(X > 0, np.nan, X), Y), "non-finite"),
        (lambda p, X, Y: F.train(p, X, Y, learning_rate=0), "learning_rate"),
        (lambda p, X, Y: F.train(p, X, Y, batch_size=0), "batch_size"),
        (lambda p, X, Y: F.update_parameters(p, {"dW1": p["W1"]}, 0.1), "db1"),
    ],
)
def test_bad_input_is_named(call, match):
    X, Y = _problem(np.random.RandomState(2), [3, 4, 1], "bce", 6, np.float64)
    params = R.initialize_parameters([3, 4, 1], seed=0)
    with pytest.raises(ValueError, match=match):
        call(params, X, Y)


def test_functional_offers_every_reference_name():
    assert set(F.__all__) == set(R.__all__)
    for name in R.__all__:
        assert hasattr(F, name), name


def test_loop_results_the_caller_keeps_never_change():
    """A loop on packed parameters reuses the results nobody holds any more; whatever is kept stays as it was."""
    X, Y = _problem(np.random.RandomState(3), [3, 4, 1], "bce", 5, np.float64)
    params = F.initialize_parameters([3, 4, 1], seed=1)
    acts = ["tanh", "sigmoid"]
    kept, seen = [], []
    for i in range(8):
        AL, caches = F.L_model_forward(X, params, acts)
        grads = F.L_model_backward(AL, Y, caches, acts)
        seen.append((id(caches), id(grads)))
        if i == 1:
            kept.append((caches[1][1], caches[1][1].copy()))
        if i == 2:
            kept.append((AL, AL.copy()))
        if i == 3:
            kept.append((grads["dA1"][0], grads["dA1"][0].copy()))
        ref_caches = R.L_model_forward(X, params, acts)[1]
        for (lin, Z), (lin_ref, Z_ref) in zip(caches, ref_caches, strict=True):
            assert_allclose(Z, Z_ref, **TOL[np.float64])
            assert_allclose(lin[0], lin_ref[0], **TOL[np.float64])
        F.update_parameters(params, grads, 0.5)
    for held, values in kept:
        assert np.array_equal(held, values)
    assert len({c for c, _ in seen[5:]}) < 3 and len({g for _, g in seen[5:]}) < 3
