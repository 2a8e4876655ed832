"""Tests of ``fastmlp.MLP`` against the pure-NumPy reference ``fastmlp.reference`` (issue 3).

Every path of the model -- forward, cost, one SGD step, whole epochs with and without shuffling -- is held
to the reference over hypothesis-generated architectures, every activation, every loss, batch sizes 1, m
and a partial last batch, in float64 (rtol 1e-10) and float32 (rtol 1e-5), on both the compiled-loop and the
BLAS paths of the kernels. Then: dtypes, input layouts, no mutation of inputs, saturated logits, the
initialisation schemes, ``history``, bad input and divergence.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import pytest
from helpers import copy_params, random_targets
from helpers import random_params as _random_params
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from tolerances import DTYPES, HIDDEN_NAMES, RATES, tol, train_tol

from fastmlp import MLP, _config
from fastmlp import reference as R

SLOPES = [0.01, 0.3]
#: (loss, output activation): every loss with every output it accepts
HEADS = [
    ("bce", "sigmoid"),
    ("mse", "linear"),
    ("mse", "sigmoid"),
    ("mse", "tanh"),
    ("mse", "relu"),
    ("mse", "leaky_relu"),
    ("ce", "softmax"),
]
#: blas_min_flops values that force every layer onto BLAS, or every layer onto the compiled loops
BLAS_PATHS = {"blas": 0, "loops": 10**18}


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------

#: this file's parameters are scaled by 1 / sqrt(fan-in)
random_params = functools.partial(_random_params, fan_in=True)


def read_only(a):
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def make_model(dims, acts, loss, dtype, slope, params):
    model = MLP(dims, activations=acts, loss=loss, dtype=dtype, leaky_slope=slope, seed=0)
    return model.set_parameters(params)


def assert_params_close(got, want, dtype, **kw):
    assert set(got) == set(want)
    for key in want:
        assert got[key].dtype == np.dtype(dtype), key
        assert_allclose(got[key], want[key], err_msg=key, **(kw or tol(dtype)))


@contextlib.contextmanager
def blas_path(path):
    """Run the model with every layer on BLAS (``"blas"``), on compiled loops (``"loops"``), or as configured."""
    with pytest.MonkeyPatch.context() as mp:
        if path != "default":
            mp.setattr(_config, "BLAS_MIN_FLOPS", BLAS_PATHS[path])
        yield


@st.composite
def problems(draw, max_layers=4, max_width=8, max_m=12):
    """A random network, its parameters and a data set: (dims, acts, loss, slope, dtype, params, X, Y)."""
    n_layers = draw(st.integers(1, max_layers))
    dims = draw(st.lists(st.integers(1, max_width), min_size=n_layers + 1, max_size=n_layers + 1))
    loss, out = draw(st.sampled_from(HEADS))
    acts = [draw(st.sampled_from(HIDDEN_NAMES)) for _ in range(n_layers - 1)] + [out]
    slope = draw(st.sampled_from(SLOPES))
    dtype = draw(st.sampled_from(DTYPES))
    m = draw(st.integers(1, max_m))
    rng = np.random.RandomState(draw(st.integers(0, 2**31 - 1)))
    params = random_params(dims, rng, dtype)
    X = rng.randn(dims[0], m).astype(dtype)
    Y = random_targets(loss, dims[-1], m, rng, dtype)
    return dims, acts, loss, slope, dtype, params, X, Y


def reference_cost(params, X, Y, acts, loss, slope):
    AL, caches = R.L_model_forward(X, params, acts, leaky_slope=slope)
    if loss == "mse":
        return R.compute_cost(AL, Y, "mse")
    return R.compute_cost_from_logits(caches[-1][1], Y, loss)


# ----------------------------------------------------------------------------------------------------
# forward, cost, training: every path against the reference
# ----------------------------------------------------------------------------------------------------


@given(problem=problems(), path=st.sampled_from(["default", "blas", "loops"]))
def test_forward_matches_reference(problem, path):
    dims, acts, loss, slope, dtype, params, X, Y = problem
    model = make_model(dims, acts, loss, dtype, slope, params)
    with blas_path(path):
        AL = model.forward(X)
    want, _ = R.L_model_forward(X, params, acts, leaky_slope=slope)
    assert AL.shape == (dims[-1], X.shape[1])
    assert AL.dtype == np.dtype(dtype)
    assert_allclose(AL, want, **tol(dtype))


@given(problem=problems(), path=st.sampled_from(["default", "blas", "loops"]))
def test_cost_matches_reference(problem, path):
    dims, acts, loss, slope, dtype, params, X, Y = problem
    model = make_model(dims, acts, loss, dtype, slope, params)
    with blas_path(path):
        cost = model.cost(X, Y)
    assert isinstance(cost, float)
    assert_allclose(cost, reference_cost(params, X, Y, acts, loss, slope), **tol(dtype))


@given(
    problem=problems(),
    batch=st.sampled_from(["1", "m", "partial", "any"]),
    any_batch=st.integers(1, 12),
    epochs=st.integers(1, 3),
    shuffle=st.booleans(),
    seed=st.integers(0, 1000),
    path=st.sampled_from(["default", "blas", "loops"]),
)
def test_fit_matches_reference_train(problem, batch, any_batch, epochs, shuffle, seed, path):
    dims, acts, loss, slope, dtype, params, X, Y = problem
    m = X.shape[1]
    batch_size = {"1": 1, "m": None, "partial": max(1, (m + 1) // 2), "any": any_batch}[batch]
    model = make_model(dims, acts, loss, dtype, slope, params)
    with blas_path(path):
        out = model.fit(X, Y, epochs=epochs, learning_rate=RATES[loss], batch_size=batch_size, shuffle=shuffle,
                        seed=seed)
    assert out is model
    want, costs = R.train(copy_params(params), X, Y, acts, loss=loss, learning_rate=RATES[loss], epochs=epochs,
                          batch_size=batch_size, leaky_slope=slope, shuffle=shuffle, seed=seed)
    assert_params_close(model.get_parameters(), want, dtype, **train_tol(dtype))
    assert len(model.history) == epochs
    assert all(isinstance(c, float) for c in model.history)
    assert_allclose(model.history, costs, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss, out", HEADS)
@pytest.mark.parametrize("hidden, slope", [("relu", 0.01), ("leaky_relu", 0.01), ("leaky_relu", 0.3),
                                           ("sigmoid", 0.01), ("tanh", 0.01), ("linear", 0.01)])
def test_single_full_batch_step_is_one_reference_sgd_step(hidden, slope, loss, out, dtype):
    """One full-batch epoch is one step of forward, backward and update_parameters, done by hand."""
    rng = np.random.RandomState(5)
    dims = [4, 5, 3, 3]
    acts = [hidden, hidden, out]
    params = random_params(dims, rng, dtype)
    X = rng.randn(4, 7).astype(dtype)
    Y = random_targets(loss, 3, 7, rng, dtype)
    model = make_model(dims, acts, loss, dtype, slope, params).fit(X, Y, epochs=1, learning_rate=0.3)

    AL, caches = R.L_model_forward(X, params, acts, leaky_slope=slope)
    grads = R.L_model_backward(AL, Y, caches, acts, loss=loss, leaky_slope=slope)
    want = R.update_parameters(copy_params(params), grads, 0.3)
    assert_params_close(model.get_parameters(), want, dtype)
    assert_allclose(model.history, [reference_cost(params, X, Y, acts, loss, slope)], **tol(dtype))
    # and the step moved the parameters: the comparison above is not vacuous
    assert not np.allclose(model.get_parameters()["W1"], params["W1"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [1, 4, 10, None])
def test_partial_last_batch_and_batch_sizes(batch_size, dtype):
    """m = 10 with batch 4 leaves a last batch of 2, averaged over its own size."""
    rng = np.random.RandomState(11)
    dims = [3, 6, 2]
    acts = ["tanh", "sigmoid"]
    params = random_params(dims, rng, dtype)
    X = rng.randn(3, 10).astype(dtype)
    Y = (rng.uniform(size=(2, 10)) > 0.5).astype(dtype)
    model = make_model(dims, acts, "bce", dtype, 0.01, params)
    model.fit(X, Y, epochs=4, learning_rate=0.5, batch_size=batch_size, shuffle=True, seed=3)
    want, costs = R.train(copy_params(params), X, Y, acts, learning_rate=0.5, epochs=4, batch_size=batch_size,
                          shuffle=True, seed=3)
    assert_params_close(model.get_parameters(), want, dtype)
    assert_allclose(model.history, costs, **tol(dtype))


WIDE_CASES = [
    # (dims, acts, loss, m, batch_size): products of 64 x 64 x 200 multiply-adds and more, over the BLAS threshold
    ([64, 200, 128, 1], ["relu", "tanh", "sigmoid"], "bce", 150, 64),
    ([100, 160, 10], ["leaky_relu", "softmax"], "ce", 128, 64),
    ([80, 96, 64, 3], ["sigmoid", "linear", "linear"], "mse", 70, 64),
]


@pytest.mark.parametrize("path", ["default", "blas", "loops"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dims, acts, loss, m, batch_size", WIDE_CASES)
def test_wide_layers_match_reference(dims, acts, loss, m, batch_size, dtype, path):
    assert 64 * dims[0] * dims[1] >= _config.BLAS_MIN_FLOPS  # the default path uses BLAS for these
    rng = np.random.RandomState(2)
    params = random_params(dims, rng, dtype)
    X = rng.randn(dims[0], m).astype(dtype)
    Y = random_targets(loss, dims[-1], m, rng, dtype)
    model = make_model(dims, acts, loss, dtype, 0.2, params)
    with blas_path(path):
        assert_allclose(model.forward(X), R.L_model_forward(X, params, acts, leaky_slope=0.2)[0], **tol(dtype))
        assert_allclose(model.cost(X, Y), reference_cost(params, X, Y, acts, loss, 0.2), **tol(dtype))
        model.fit(X, Y, epochs=2, learning_rate=0.05, batch_size=batch_size, shuffle=True, seed=4)
    want, costs = R.train(copy_params(params), X, Y, acts, loss=loss, learning_rate=0.05, epochs=2,
                          batch_size=batch_size, leaky_slope=0.2, shuffle=True, seed=4)
    close = {"rtol": 1e-10, "atol": 1e-11} if dtype == np.float64 else {"rtol": 1e-5, "atol": 2e-6}
    assert_params_close(model.get_parameters(), want, dtype, **close)
    assert_allclose(model.history, costs, **tol(dtype))


# ----------------------------------------------------------------------------------------------------
# dtypes, layouts, no mutation
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype_arg", ["float32", np.float32, np.dtype("float32")])
def test_float32_stays_float32(dtype_arg):
    rng = np.random.RandomState(0)
    model = MLP([3, 5, 2], output_activation="softmax", loss="ce", dtype=dtype_arg, seed=1)
    assert model.dtype == np.float32
    assert all(v.dtype == np.float32 for v in model.get_parameters().values())
    X = rng.randn(3, 9)  # float64 input is converted to the model dtype
    Y = np.eye(2)[:, rng.randint(0, 2, 9)]
    model.fit(X, Y, epochs=2, learning_rate=0.1, batch_size=4)
    assert all(v.dtype == np.float32 for v in model.get_parameters().values())
    assert model.forward(X).dtype == np.float32
    assert model.forward(X.astype(np.float32)).dtype == np.float32
    assert isinstance(model.cost(X, Y), float)
    assert all(isinstance(c, float) for c in model.history)
    # float64 parameters are cast to float32 too
    model.set_parameters(random_params([3, 5, 2], rng, np.float64))
    assert all(v.dtype == np.float32 for v in model.get_parameters().values())


def test_float64_by_default_and_float64_stays_float64():
    model = MLP([2, 3, 1], seed=0)
    assert model.dtype == np.float64
    model.set_parameters(random_params([2, 3, 1], np.random.RandomState(0), np.float32))
    assert all(v.dtype == np.float64 for v in model.get_parameters().values())
    assert model.forward(np.ones((2, 3), np.float32)).dtype == np.float64


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_are_never_mutated(dtype):
    rng = np.random.RandomState(3)
    dims, acts = [3, 4, 1], ["relu", "sigmoid"]
    params = random_params(dims, rng, dtype)
    params_before = copy_params(params)
    X = rng.randn(3, 8).astype(dtype)
    Y = (rng.uniform(size=8) > 0.5).astype(dtype)
    X0, Y0 = X.copy(), Y.copy()
    model = make_model(dims, acts, "bce", dtype, 0.01, params)
    model.fit(X, Y, epochs=3, learning_rate=0.5, batch_size=3, shuffle=True, seed=0)
    model.forward(X)
    model.cost(X, Y)
    model.predict(X)
    assert_array_equal(X, X0)
    assert_array_equal(Y, Y0)
    for key in params:
        assert_array_equal(params[key], params_before[key])
        assert not np.array_equal(model.get_parameters()[key], params[key])


@pytest.mark.parametrize("dims", [[3, 4, 2], [3, 4, 1], [1, 4, 2], [2, 1, 3], [3, 1], [1, 1]])
def test_get_parameters_returns_independent_copies(dims):
    """Neither training nor writing into the returned arrays may change the other side.

    A layer with one input or one output has a weight matrix that is both C- and F-contiguous, so its
    transpose must still be copied.
    """
    rng = np.random.RandomState(0)
    model = MLP(dims, seed=0)
    got = model.get_parameters()
    snapshot = copy_params(got)
    model.fit(rng.randn(dims[0], 6), (rng.uniform(size=(dims[-1], 6)) > 0.5).astype(float), learning_rate=0.5)
    for key in got:
        assert_array_equal(got[key], snapshot[key], err_msg=f"{key} changed when the model was trained")
        assert not np.shares_memory(got[key], model._net.params), key
    trained = copy_params(model.get_parameters())
    for value in model.get_parameters().values():
        value[...] = 123.0
    assert_params_close(model.get_parameters(), trained, np.float64, rtol=0, atol=0)


def _layouts(a, kind):
    """``a`` in another memory layout / dtype / writability, holding the same values."""
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.zeros((a.shape[0] * 2, a.shape[1] * 3) if a.ndim == 2 else (a.shape[0] * 3,), a.dtype)
        if a.ndim == 2:
            big[::2, ::3] = a
            out = big[::2, ::3]
        else:
            big[::3] = a
            out = big[::3]
        assert not out.flags.c_contiguous and not out.flags.f_contiguous
        return out
    if kind == "readonly":
        return read_only(a)
    if kind == "int":
        assert np.array_equal(a, np.round(a))
        return a.astype(np.int64)
    if kind == "list":
        return a.tolist()
    raise AssertionError(kind)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["fortran", "strided", "readonly", "int"])
def test_input_layouts_give_the_same_results(kind, dtype):
    rng = np.random.RandomState(4)
    dims, acts = [3, 5, 2], ["tanh", "sigmoid"]
    params = {k: np.round(v * 4) / 4 for k, v in random_params(dims, rng).items()}
    if kind == "int":  # integer parameters too
        params = {k: np.round(v * 3) for k, v in params.items()}
    X = rng.randint(-3, 4, size=(3, 11)).astype(np.float64)
    Y = rng.randint(0, 2, size=(2, 11)).astype(np.float64)
    plain = make_model(dims, acts, "bce", dtype, 0.01, params)
    other = make_model(dims, acts, "bce", dtype, 0.01, {k: _layouts(v, kind) for k, v in params.items()})
    assert_params_close(other.get_parameters(), plain.get_parameters(), dtype, rtol=0, atol=0)
    Xo, Yo = _layouts(X, kind), _layouts(Y, kind)
    assert_allclose(other.forward(Xo), plain.forward(X), rtol=0, atol=0)
    assert other.forward(Xo).dtype == np.dtype(dtype)
    assert other.cost(Xo, Yo) == plain.cost(X, Y)
    assert_array_equal(other.predict(Xo), plain.predict(X))
    plain.fit(X, Y, epochs=3, learning_rate=0.2, batch_size=4, shuffle=True, seed=1)
    other.fit(Xo, Yo, epochs=3, learning_rate=0.2, batch_size=4, shuffle=True, seed=1)
    assert_params_close(other.get_parameters(), plain.get_parameters(), dtype, rtol=0, atol=0)
    assert other.history == plain.history
    # and both equal the reference
    want, costs = R.train({k: v.astype(dtype) for k, v in params.items()}, X.astype(dtype), Y.astype(dtype), acts,
                          learning_rate=0.2, epochs=3, batch_size=4, shuffle=True, seed=1)
    assert_params_close(plain.get_parameters(), want, dtype)
    assert_allclose(plain.history, costs, **tol(dtype))


@pytest.mark.parametrize("kind", ["fortran", "strided", "readonly", "int", "list"])
def test_one_dimensional_targets_in_any_layout(kind):
    rng = np.random.RandomState(6)
    dims = [2, 3, 1]
    params = random_params(dims, rng)
    X = rng.randn(2, 9)
    y = rng.randint(0, 2, size=9).astype(np.float64)
    a = make_model(dims, ["relu", "sigmoid"], "bce", np.float64, 0.01, params)
    b = make_model(dims, ["relu", "sigmoid"], "bce", np.float64, 0.01, params)
    a.fit(X, y.reshape(1, -1), epochs=2, learning_rate=0.3, batch_size=4)
    b.fit(X, _layouts(y, kind), epochs=2, learning_rate=0.3, batch_size=4)
    assert_params_close(b.get_parameters(), a.get_parameters(), np.float64, rtol=0, atol=0)
    assert b.cost(X, _layouts(y, kind)) == a.cost(X, y.reshape(1, -1))


def test_bias_vectors_are_accepted_by_set_parameters():
    rng = np.random.RandomState(0)
    params = random_params([3, 4, 2], rng)
    flat = {k: (v.ravel() if k.startswith("b") else v) for k, v in params.items()}
    model = MLP([3, 4, 2], seed=0).set_parameters(flat)
    assert_params_close(model.get_parameters(), params, np.float64, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_per_output_activation(dtype):
    rng = np.random.RandomState(12)
    X = rng.randn(3, 20).astype(dtype)
    sig = MLP([3, 4, 2], seed=0, dtype=dtype)
    labels = sig.predict(X)
    assert labels.shape == (2, 20) and labels.dtype.kind == "i"
    assert_array_equal(labels, (sig.forward(X) > 0.5).astype(int))
    soft = MLP([3, 4, 3], output_activation="softmax", loss="ce", seed=0, dtype=dtype)
    assert_array_equal(soft.predict(X), np.argmax(soft.forward(X), axis=0))
    assert_allclose(soft.forward(X).sum(axis=0), 1, **tol(dtype))
    lin = MLP([3, 4, 2], output_activation="linear", loss="mse", seed=0, dtype=dtype)
    assert_array_equal(lin.predict(X), lin.forward(X))
    assert lin.predict(X).dtype == np.dtype(dtype)


def test_seed_none_draws_fresh_parameters_and_repr():
    a, b = MLP([4, 5, 1]), MLP([4, 5, 1])
    assert not np.array_equal(a.get_parameters()["W1"], b.get_parameters()["W1"])
    model = MLP(np.array([4, 5, 1]), hidden_activation="tanh", dtype="float32", seed=0)
    assert model.layer_dims == [4, 5, 1] and model.activations == ["tanh", "sigmoid"] and model.n_layers == 2
    assert "MLP(" in repr(model) and "float32" in repr(model)


# ----------------------------------------------------------------------------------------------------
# saturation
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("loss, out", [("bce", "sigmoid"), ("ce", "softmax"), ("mse", "sigmoid"), ("mse", "tanh")])
def test_saturated_logits_stay_finite(loss, out, hidden, dtype):
    rng = np.random.RandomState(9)
    dims = [3, 4, 3]
    acts = [hidden, out]
    params = random_params(dims, rng, np.float64, scale=1.0)
    if hidden != "relu":  # saturate the hidden layer as well
        params["W1"] *= 1e4
    X = rng.randn(3, 8)
    _, caches = R.L_model_forward(X, params, acts)
    A1 = caches[1][0][0]
    params["W2"] *= 1e4 / np.max(np.abs(params["W2"] @ A1))  # output logits up to +-1e4
    params = {k: v.astype(dtype) for k, v in params.items()}
    X = X.astype(dtype)
    ZL = R.L_model_forward(X, params, acts)[1][-1][1]
    assert 1e3 < np.max(np.abs(ZL)) <= 1.01e4
    # targets that disagree with the saturated outputs: the largest possible costs
    AL = R.L_model_forward(X, params, acts)[0]
    Y = (AL < 0.5).astype(dtype) if loss != "ce" else np.eye(3, dtype=dtype)[:, np.argmin(ZL, axis=0)]

    model = make_model(dims, acts, loss, dtype, 0.01, params)
    out_fast = model.forward(X)
    assert np.all(np.isfinite(out_fast))
    assert_allclose(out_fast, AL, **tol(dtype))
    cost = model.cost(X, Y)
    assert np.isfinite(cost) and cost > (1000 if loss != "mse" else 1)  # the saturated, wrong outputs cost a lot
    assert_allclose(cost, reference_cost(params, X, Y, acts, loss, 0.01), **tol(dtype))
    model.fit(X, Y, epochs=1, learning_rate=0.01, batch_size=3)
    got = model.get_parameters()
    assert all(np.all(np.isfinite(v)) for v in got.values())
    assert np.all(np.isfinite(model.history))
    want, costs = R.train(copy_params(params), X, Y, acts, loss=loss, learning_rate=0.01, batch_size=3)
    assert_params_close(got, want, dtype, **({"rtol": 1e-10, "atol": 1e-8} if dtype == np.float64
                                             else {"rtol": 1e-5, "atol": 1e-2}))
    assert_allclose(model.history, costs, **tol(dtype))


# ----------------------------------------------------------------------------------------------------
# initialisation
# ----------------------------------------------------------------------------------------------------


ARCHITECTURES = [
    [{"input_dim": 2, "output_dim": 4, "activation": "relu"},
     {"input_dim": 4, "output_dim": 6, "activation": "tanh"},
     {"input_dim": 6, "output_dim": 1, "activation": "sigmoid"}],
    [{"input_dim": 5, "output_dim": 3, "activation": "leaky_relu"},
     {"input_dim": 3, "output_dim": 1, "activation": "sigmoid"}],
    [{"input_dim": 3, "output_dim": 2, "activation": "sigmoid"}],
]


@pytest.mark.parametrize("seed", [99, 0, 7])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_from_architecture_equals_init_layers_and_full_forward(arch, seed):
    model = MLP.from_architecture(arch, seed=seed)
    params = R.init_layers(arch, seed=seed)
    assert model.layer_dims == [arch[0]["input_dim"]] + [layer["output_dim"] for layer in arch]
    assert model.activations == [layer["activation"] for layer in arch]
    assert_params_close(model.get_parameters(), params, np.float64, rtol=0, atol=0)
    X = np.random.RandomState(seed).randn(arch[0]["input_dim"], 7)
    want, memory = R.full_forward_propagation(X, params, arch)
    assert_allclose(model.forward(X), want, **tol(np.float64))
    Y = (want > 0.5).astype(float)
    model.fit(X, Y, epochs=2, learning_rate=0.1)
    trained, _ = R.train(copy_params(params), X, Y, [layer["activation"] for layer in arch], learning_rate=0.1,
                         epochs=2)
    assert_params_close(model.get_parameters(), trained, np.float64)


def test_from_architecture_float32():
    arch = ARCHITECTURES[0]
    model = MLP.from_architecture(arch, seed=99, dtype="float32", loss="mse")
    params = R.init_layers(arch, seed=99)
    assert_params_close(model.get_parameters(), {k: v.astype(np.float32) for k, v in params.items()}, np.float32,
                        rtol=0, atol=0)
    assert model.loss == "mse"


@pytest.mark.parametrize("seed", [0, 3, 1234])
@pytest.mark.parametrize("dims", [[2, 3, 1], [5, 4, 4, 2], [1, 1]])
def test_deep_init_equals_initialize_parameters_deep(dims, seed):
    model = MLP(dims, init="deep", seed=seed)
    assert_params_close(model.get_parameters(), R.initialize_parameters_deep(dims, seed=seed), np.float64,
                        rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("init", ["he", "xavier", "deep"])
@pytest.mark.parametrize("dims", [[2, 3, 1], [7, 5, 4, 2]])
def test_init_schemes_equal_initialize_parameters(dims, init, dtype):
    model = MLP(dims, init=init, seed=42, dtype=dtype)
    want = R.initialize_parameters(dims, init=init, seed=42, dtype=dtype)
    assert_params_close(model.get_parameters(), want, dtype, rtol=0, atol=0)
    # the seed matters, and the same seed gives the same draws
    assert not np.array_equal(MLP(dims, init=init, seed=43, dtype=dtype).get_parameters()["W1"], want["W1"])
    assert_array_equal(MLP(dims, init=init, seed=42, dtype=dtype).get_parameters()["W1"], want["W1"])


# ----------------------------------------------------------------------------------------------------
# history and continued training
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [None, 3])
def test_two_fits_of_three_epochs_equal_one_of_six(batch_size, dtype):
    rng = np.random.RandomState(1)
    X = rng.randn(4, 10)
    Y = (rng.uniform(size=(1, 10)) > 0.5).astype(float)
    a = MLP([4, 6, 1], seed=3, dtype=dtype)
    b = MLP([4, 6, 1], seed=3, dtype=dtype)
    start = copy_params(a.get_parameters())
    a.fit(X, Y, epochs=3, learning_rate=0.2, batch_size=batch_size)
    assert len(a.history) == 3
    a.fit(X, Y, epochs=3, learning_rate=0.2, batch_size=batch_size)
    b.fit(X, Y, epochs=6, learning_rate=0.2, batch_size=batch_size)
    assert len(a.history) == len(b.history) == 6
    assert_params_close(a.get_parameters(), b.get_parameters(), dtype)
    assert_allclose(a.history, b.history, **tol(dtype))
    want, costs = R.train(start, X.astype(dtype), Y.astype(dtype), learning_rate=0.2, epochs=6,
                          batch_size=batch_size)
    assert_params_close(a.get_parameters(), want, dtype)
    assert_allclose(a.history, costs, **tol(dtype))
    # history is one cost per epoch and the cost goes down on this easy problem
    assert a.history[-1] < a.history[0]


def test_history_over_many_epochs_equals_reference_costs():
    """Enough epochs that fit runs them in several compiled chunks; history still has one cost per epoch."""
    rng = np.random.RandomState(2)
    X = rng.randn(2, 16)
    Y = (X[0] * X[1] > 0).astype(float)
    model = MLP([2, 4, 1], hidden_activation="tanh", seed=0)
    start = copy_params(model.get_parameters())
    model.fit(X, Y, epochs=3000, learning_rate=0.5, batch_size=8, shuffle=True, seed=5)
    want, costs = R.train(start, X, Y, ["tanh", "sigmoid"], learning_rate=0.5, epochs=3000, batch_size=8,
                          shuffle=True, seed=5)
    assert len(model.history) == 3000
    assert_allclose(model.history, costs, rtol=1e-8, atol=1e-10)
    assert_params_close(model.get_parameters(), want, np.float64, rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------


def _model(loss="bce"):
    if loss == "ce":
        return MLP([3, 4, 2], output_activation="softmax", loss="ce", seed=0)
    if loss == "mse":
        return MLP([3, 4, 2], output_activation="linear", loss="mse", seed=0)
    return MLP([3, 4, 2], seed=0)


_X = np.random.RandomState(0).randn(3, 5)
_Y = np.array([[0, 1, 1, 0, 1], [1, 1, 0, 0, 0]], dtype=float)


def _with(a, index, value):
    a = np.array(a, dtype=float, copy=True)
    a[index] = value
    return a


BAD_CALLS = {
    # constructor
    "unknown hidden activation": (lambda: MLP([3, 4, 1], hidden_activation="relux"), r"relux"),
    "unknown output activation": (lambda: MLP([3, 4, 1], output_activation="sigmod"), r"sigmod"),
    "unknown activation in list": (lambda: MLP([3, 4, 1], activations=["relu", "swish"]), r"swish"),
    "softmax hidden": (lambda: MLP([3, 4, 2], activations=["softmax", "softmax"], loss="ce"), r"softmax"),
    "wrong number of activations": (lambda: MLP([3, 4, 1], activations=["relu"]), r"activations"),
    "unknown loss": (lambda: MLP([3, 4, 1], loss="hinge"), r"loss.*hinge|hinge.*loss"),
    "bce without sigmoid": (lambda: MLP([3, 4, 1], output_activation="linear", loss="bce"), r"bce.*sigmoid"),
    "ce without softmax": (lambda: MLP([3, 4, 2], loss="ce"), r"ce.*softmax"),
    "unknown init": (lambda: MLP([3, 4, 1], init="glorot"), r"init.*glorot|glorot"),
    "bad dtype": (lambda: MLP([3, 4, 1], dtype="int32"), r"dtype"),
    "one layer size": (lambda: MLP([3]), r"layer_dims"),
    "zero layer size": (lambda: MLP([3, 0, 1]), r"layer_dims"),
    "nan leaky slope": (lambda: MLP([3, 4, 1], leaky_slope=float("nan")), r"leaky_slope"),
    # shapes
    "fit X rows": (lambda: _model().fit(_X[:2], _Y), r"X.*rows|X.*shape"),
    "forward X rows": (lambda: _model().forward(np.ones((4, 5))), r"X.*rows|X.*shape"),
    "cost X rows": (lambda: _model().cost(np.ones((2, 5)), _Y), r"X.*rows|X.*shape"),
    "X 1-d": (lambda: _model().forward(np.ones(3)), r"X.*dimensional|X.*shape"),
    "X 3-d": (lambda: _model().fit(np.ones((3, 5, 1)), _Y), r"X.*dimensional|X.*shape"),
    "Y columns": (lambda: _model().fit(_X, _Y[:, :4]), r"Y.*shape"),
    "Y rows": (lambda: _model().fit(_X, _Y[:1]), r"Y.*shape"),
    "Y transposed": (lambda: _model().fit(_X, _Y.T), r"Y.*shape"),
    "Y 1-d for two outputs": (lambda: _model().fit(_X, _Y[0]), r"Y.*shape"),
    "cost Y shape": (lambda: _model().cost(_X, _Y[:, :3]), r"Y.*shape"),
    "empty X": (lambda: _model().fit(np.ones((3, 0)), np.ones((2, 0))), r"X.*empty"),
    "string X": (lambda: _model().forward(np.array([["a"] * 5] * 3)), r"X"),
    # non-finite values
    "nan in X": (lambda: _model().fit(_with(_X, (1, 2), np.nan), _Y), r"X.*non-finite"),
    "inf in X": (lambda: _model().fit(_with(_X, (0, 0), np.inf), _Y), r"X.*non-finite"),
    "-inf in X forward": (lambda: _model().forward(_with(_X, (2, 4), -np.inf)), r"X.*non-finite"),
    "nan in Y": (lambda: _model().fit(_X, _with(_Y, (0, 1), np.nan)), r"Y.*non-finite"),
    "inf in Y mse": (lambda: _model("mse").fit(_X, _with(_Y, (1, 1), np.inf)), r"Y.*non-finite"),
    "nan in Y cost": (lambda: _model().cost(_X, _with(_Y, (0, 0), np.nan)), r"Y.*non-finite"),
    # targets
    "Y above 1 bce": (lambda: _model().fit(_X, _with(_Y, (0, 0), 1.5)), r"Y.*\[0, 1\]"),
    "Y below 0 bce": (lambda: _model().fit(_X, _with(_Y, (0, 0), -0.1)), r"Y.*\[0, 1\]"),
    "Y above 1 bce cost": (lambda: _model().cost(_X, _with(_Y, (1, 3), 2.0)), r"Y.*\[0, 1\]"),
    "Y above 1 ce": (lambda: _model("ce").fit(_X, _with(_Y, (0, 0), 3.0)), r"Y.*\[0, 1\]"),
    "Y ce columns not distributions": (lambda: _model("ce").fit(_X, np.full((2, 5), 0.3)), r"Y.*sum to 1"),
    "Y ce cost columns": (lambda: _model("ce").cost(_X, np.full((2, 5), 0.7)), r"Y.*sum to 1"),
    # hyper-parameters
    "zero learning rate": (lambda: _model().fit(_X, _Y, learning_rate=0), r"learning_rate"),
    "negative learning rate": (lambda: _model().fit(_X, _Y, learning_rate=-0.1), r"learning_rate"),
    "nan learning rate": (lambda: _model().fit(_X, _Y, learning_rate=float("nan")), r"learning_rate"),
    "inf learning rate": (lambda: _model().fit(_X, _Y, learning_rate=float("inf")), r"learning_rate"),
    "zero epochs": (lambda: _model().fit(_X, _Y, epochs=0), r"epochs"),
    "negative epochs": (lambda: _model().fit(_X, _Y, epochs=-2), r"epochs"),
    "fractional epochs": (lambda: _model().fit(_X, _Y, epochs=1.5), r"epochs"),
    "zero batch size": (lambda: _model().fit(_X, _Y, batch_size=0), r"batch_size"),
    "negative batch size": (lambda: _model().fit(_X, _Y, batch_size=-4), r"batch_size"),
    "fractional batch size": (lambda: _model().fit(_X, _Y, batch_size=2.5), r"batch_size"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_value_error_naming_it(case):
    call, match = BAD_CALLS[case]
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("kwargs", [{"learning_rate": 0}, {"epochs": 0}, {"batch_size": 0}])
@pytest.mark.parametrize("data", ["good", "nan X", "bad Y"])
def test_rejected_fit_changes_nothing(data, kwargs):
    model = _model()
    before = copy_params(model.get_parameters())
    X = _with(_X, (0, 0), np.nan) if data == "nan X" else _X
    Y = _with(_Y, (0, 0), 7.0) if data == "bad Y" else _Y
    with pytest.raises(ValueError):
        model.fit(X, Y, **({} if data != "good" else kwargs))
    assert_params_close(model.get_parameters(), before, np.float64, rtol=0, atol=0)
    assert model.history == []


def _good_params():
    return random_params([3, 4, 2], np.random.RandomState(1))


BAD_PARAMS = {
    "missing W2": (lambda p: p.pop("W2"), r"W2"),
    "missing b1": (lambda p: p.pop("b1"), r"b1"),
    "extra key": (lambda p: p.__setitem__("W3", np.ones((1, 2))), r"W3"),
    "W1 wrong shape": (lambda p: p.__setitem__("W1", np.ones((3, 4))), r"W1.*shape"),
    "W2 wrong shape": (lambda p: p.__setitem__("W2", np.ones((2, 5))), r"W2.*shape"),
    "b2 wrong shape": (lambda p: p.__setitem__("b2", np.ones((3, 1))), r"b2.*shape"),
    "b1 row vector": (lambda p: p.__setitem__("b1", np.ones((1, 4))), r"b1.*shape"),
    "nan in W2": (lambda p: p["W2"].__setitem__((1, 1), np.nan), r"W2.*non-finite"),
    "inf in b1": (lambda p: p["b1"].__setitem__((0, 0), np.inf), r"b1.*non-finite"),
    "string array": (lambda p: p.__setitem__("W1", np.full((4, 3), "x")), r"W1"),
}


@pytest.mark.parametrize("case", list(BAD_PARAMS))
def test_bad_set_parameters_raises_and_leaves_the_model_unchanged(case):
    model = _model()
    model.fit(_X, _Y, epochs=2, learning_rate=0.1)
    before = copy_params(model.get_parameters())
    params = _good_params()
    mutate, match = BAD_PARAMS[case]
    mutate(params)
    with pytest.raises(ValueError, match=match):
        model.set_parameters(params)
    assert_params_close(model.get_parameters(), before, np.float64, rtol=0, atol=0)
    assert len(model.history) == 2


def test_set_parameters_rejects_a_non_dict():
    with pytest.raises(ValueError, match="dict"):
        _model().set_parameters([np.ones((4, 3))])


def test_set_parameters_with_all_layers_valid_but_a_late_one_bad_changes_nothing():
    """Validation happens before any write: a good W1 is not applied when W2 is bad."""
    model = _model()
    before = copy_params(model.get_parameters())
    params = _good_params()
    params["b2"] = np.full((2, 1), np.nan)
    with pytest.raises(ValueError, match="b2"):
        model.set_parameters(params)
    assert_params_close(model.get_parameters(), before, np.float64, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------
# divergence
# ----------------------------------------------------------------------------------------------------


def _diverging_problem(dtype):
    """A linear model with mse and a learning rate so large that each full-batch step multiplies the error."""
    rng = np.random.RandomState(0)
    X = rng.randn(3, 8).astype(dtype)
    Y = rng.randn(1, 8).astype(dtype)
    params = random_params([3, 1], rng, dtype)
    return X, Y, params


@pytest.mark.parametrize("dtype", DTYPES)
def test_divergence_raises_naming_the_epoch_and_keeps_the_last_finite_epoch(dtype):
    X, Y, params = _diverging_problem(dtype)
    model = make_model([3, 1], ["linear"], "mse", dtype, 0.01, params)
    with pytest.raises(FloatingPointError, match=r"epoch (\d+)") as info:
        model.fit(X, Y, epochs=10_000, learning_rate=50.0)
    finished = len(model.history)
    assert finished >= 3  # several finite epochs first, so "the last finite epoch" is not the start
    assert f"epoch {finished + 1}" in str(info.value)
    got = model.get_parameters()
    assert all(np.all(np.isfinite(v)) for v in got.values())
    assert np.all(np.isfinite(model.history))
    # re-running the finished epochs from the same start gives those parameters and costs
    want, costs = R.train(copy_params(params), X, Y, ["linear"], loss="mse", learning_rate=50.0, epochs=finished)
    assert_params_close(got, want, dtype, rtol=1e-9 if dtype == np.float64 else 1e-4, atol=0)
    assert_allclose(model.history, costs, rtol=1e-9 if dtype == np.float64 else 1e-4)
    # and the reference diverges in the very next epoch too: it raises, or (it checks each minibatch's cost, taken
    # before the update, and the weights) the parameters it leaves give non-finite outputs or cost, which fastmlp
    # checks
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            after, _ = R.train(copy_params(params), X, Y, ["linear"], loss="mse", learning_rate=50.0,
                               epochs=finished + 1)
        except FloatingPointError as exc:
            assert f"epoch {finished + 1}" in str(exc)
        else:
            AL = R.L_model_forward(X, after, activations=["linear"])[0]
            assert not np.isfinite(np.sum((AL - Y) ** 2))  # the outputs or the mse cost overflow
    # the model is still usable
    assert np.all(np.isfinite(model.forward(X)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_divergence_in_a_continued_fit_keeps_earlier_history(dtype):
    X, Y, params = _diverging_problem(dtype)
    model = make_model([3, 1], ["linear"], "mse", dtype, 0.01, params)
    model.fit(X, Y, epochs=2, learning_rate=0.01)
    after_two = copy_params(model.get_parameters())
    with pytest.raises(FloatingPointError, match=r"epoch \d+"):
        model.fit(X, Y, epochs=10_000, learning_rate=50.0)
    finished = len(model.history) - 2
    assert finished >= 3
    want, costs = R.train(copy_params(after_two), X, Y, ["linear"], loss="mse", learning_rate=50.0, epochs=finished)
    assert_params_close(model.get_parameters(), want, dtype, rtol=1e-9 if dtype == np.float64 else 1e-4, atol=0)
    assert_allclose(model.history[2:], costs, rtol=1e-9 if dtype == np.float64 else 1e-4)
    assert np.all(np.isfinite(model.forward(X)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_divergence_of_a_deep_model_restores_the_last_finite_epoch(dtype):
    rng = np.random.RandomState(1)
    X = rng.randn(4, 12).astype(dtype)
    Y = rng.randn(2, 12).astype(dtype)
    model = MLP([4, 6, 5, 2], hidden_activation="leaky_relu", output_activation="linear", loss="mse", seed=2,
                dtype=dtype)
    start = copy_params(model.get_parameters())
    with pytest.raises(FloatingPointError, match="epoch") as info:
        model.fit(X, Y, epochs=5000, learning_rate=0.4, batch_size=5)
    finished = len(model.history)
    assert finished >= 1
    assert f"epoch {finished + 1}" in str(info.value)
    got = copy_params(model.get_parameters())
    assert all(np.all(np.isfinite(v)) for v in got.values())
    # the same model re-run for the finished epochs from the same start ends in exactly the same state
    again = MLP([4, 6, 5, 2], hidden_activation="leaky_relu", output_activation="linear", loss="mse", seed=2,
                dtype=dtype)
    again.set_parameters(start)
    if finished:
        again.fit(X, Y, epochs=finished, learning_rate=0.4, batch_size=5)
    assert_params_close(again.get_parameters(), got, dtype, rtol=0, atol=0)
    assert again.history == model.history
