"""Tests of the pure-NumPy reference, ``fastmlp.reference``: the definition of "correct" for fastmlp."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import copy_params, random_params, random_targets
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

from fastmlp import _checks
from fastmlp import reference as R

HIDDEN = [
    ("relu", 0.01),
    ("leaky_relu", 0.01),
    ("leaky_relu", 0.2),
    ("sigmoid", 0.01),
    ("tanh", 0.01),
    ("linear", 0.01),
]
HEADS = [
    ("bce", "sigmoid"),
    ("mse", "linear"),
    ("mse", "sigmoid"),
    ("mse", "tanh"),
    ("mse", "leaky_relu"),
    ("ce", "softmax"),
]
ARCHS = [[3, 4, 1], [2, 5, 3, 2], [4, 3, 3, 3, 1]]
DTYPES = [np.float32, np.float64]


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------


def kink_free_problem(dims, acts, loss, slope, m=5, seed=0, margin=1e-3):
    """Parameters, X, Y whose pre-activations all stay at least ``margin`` away from 0 (relu kinks)."""
    for s in range(seed, seed + 500):
        rng = np.random.RandomState(s)
        params = random_params(dims, rng)
        X = rng.randn(dims[0], m)
        Y = random_targets(loss, dims[-1], m, rng)
        _, caches = R.L_model_forward(X, params, acts, leaky_slope=slope)
        if min(np.min(np.abs(Z)) for _, Z in caches) > margin:
            return params, X, Y
    raise AssertionError("no kink-free problem found")  # pragma: no cover


def numeric_gradients(X, Y, params, acts, loss, slope, eps=1e-5):
    """Central differences of compute_cost(L_model_forward(...)) for every parameter, and of m*J wrt X."""

    def J(p, x):
        AL, _ = R.L_model_forward(x, p, acts, leaky_slope=slope)
        return R.compute_cost(AL, Y, loss)

    p = copy_params(params)
    grads = {}
    for key in params:
        P = p[key]
        G = np.zeros_like(P)
        for idx in np.ndindex(P.shape):
            old = P[idx]
            P[idx] = old + eps
            jp = J(p, X)
            P[idx] = old - eps
            jm = J(p, X)
            P[idx] = old
            G[idx] = (jp - jm) / (2 * eps)
        grads["d" + key] = G
    x = X.copy()
    dX = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        jp = J(params, x)
        x[idx] = old - eps
        jm = J(params, x)
        x[idx] = old
        dX[idx] = (jp - jm) / (2 * eps) * X.shape[1]
    grads["dA0"] = dX
    return grads


def rel_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300)


def hand_loop(params, X, Y, acts, loss, lr, epochs, batch_size, shuffle=False, seed=None, slope=0.01):
    """Minibatch SGD written with the public functions, as docs/DESIGN.md §1 states it."""
    Y = Y.reshape(1, -1) if Y.ndim == 1 else Y
    m = X.shape[1]
    rng = np.random.RandomState(seed)
    costs = []
    for _ in range(epochs):
        order = rng.permutation(m) if shuffle else np.arange(m)
        batch_costs = []
        for start in range(0, m, batch_size):
            idx = order[start : start + batch_size]
            xb, yb = X[:, idx], Y[:, idx]
            AL, caches = R.L_model_forward(xb, params, acts, leaky_slope=slope)
            if loss == "mse":
                batch_costs.append(R.compute_cost(AL, yb, loss))
            else:
                batch_costs.append(R.compute_cost_from_logits(caches[-1][1], yb, loss))
            grads = R.L_model_backward(AL, yb, caches, acts, loss, leaky_slope=slope)
            R.update_parameters(params, grads, lr)
        costs.append(sum(batch_costs) / len(batch_costs))
    return params, costs


def read_only(a):
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


# ----------------------------------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------------------------------


def test_activation_tables_cover_every_activation():
    names = set(_checks.ACTIVATIONS) | set(_checks.OUTPUT_ONLY_ACTIVATIONS)
    assert set(R.ACTIVATION_FUNCTIONS) == names
    assert set(R.ACTIVATION_DERIVATIVES) == names
    assert R.ACTIVATION_DERIVATIVES["linear"] is R.identity_backward
    assert set(R.LOSS_FUNCTIONS) == set(_checks.LOSSES)


def test_activation_values():
    Z = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    assert_array_equal(R.relu(Z), [[0, 0, 0, 0.5, 3.0]])
    assert_allclose(R.leaky_relu(Z), [[-0.02, -0.005, 0, 0.5, 3.0]], rtol=1e-15)
    assert_allclose(R.leaky_relu(Z, slope=0.2), [[-0.4, -0.1, 0, 0.5, 3.0]], rtol=1e-15)
    assert_allclose(R.sigmoid(Z), 1 / (1 + np.exp(-Z)), rtol=1e-15)
    assert_allclose(R.tanh(Z), np.tanh(Z), rtol=1e-15)
    A = R.linear(Z)
    assert_array_equal(A, Z)
    assert not np.shares_memory(A, Z)
    assert R.sigmoid(np.array([[0.0]]))[0, 0] == 0.5


def test_derivatives_at_zero_and_signs():
    Z = np.array([[-1.0, 0.0, 1.0]])
    dA = np.array([[2.0, 3.0, 4.0]])
    assert_array_equal(R.relu_backward(dA, Z), [[0.0, 0.0, 4.0]])  # relu'(0) == 0
    assert_allclose(R.leaky_relu_backward(dA, Z, slope=0.2), [[0.4, 0.6, 4.0]], rtol=1e-15)  # slope at 0
    assert_array_equal(R.identity_backward(dA, Z), dA)
    assert_allclose(R.sigmoid_backward(dA, np.zeros((1, 3))), dA * 0.25, rtol=1e-15)
    assert_allclose(R.tanh_backward(dA, np.zeros((1, 3))), dA, rtol=1e-15)


@pytest.mark.parametrize(
    ("name", "slope"),
    [
        ("relu", 0.01),
        ("leaky_relu", 0.01),
        ("leaky_relu", 0.3),
        ("sigmoid", 0.0),
        ("tanh", 0.0),
        ("linear", 0.0),
        ("softmax", 0.0),
    ],
)
def test_activation_derivatives_match_central_differences(name, slope):
    rng = np.random.RandomState(1)
    Z = rng.randn(3, 4)
    Z[np.abs(Z) < 0.05] = 0.5  # away from the relu kink
    dA = rng.randn(3, 4)

    def g(z):
        return R.leaky_relu(z, slope) if name == "leaky_relu" else R.ACTIVATION_FUNCTIONS[name](z)

    # d/dZ of sum(dA * g(Z)) is the vector-Jacobian product the *_backward functions compute
    eps = 1e-6
    num = np.zeros_like(Z)
    for idx in np.ndindex(Z.shape):
        zp, zm = Z.copy(), Z.copy()
        zp[idx] += eps
        zm[idx] -= eps
        num[idx] = (np.sum(dA * g(zp)) - np.sum(dA * g(zm))) / (2 * eps)
    if name == "leaky_relu":
        got = R.leaky_relu_backward(dA, Z, slope)
    else:
        got = R.ACTIVATION_DERIVATIVES[name](dA, Z)
    assert_allclose(got, num, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_softmax_never_overflow(dtype):
    big = np.finfo(dtype).max
    Z = np.array([[-big, -1e4, -800.0, -50.0, 50.0, 800.0, 1e4, big]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        S = R.sigmoid(Z)
    assert S.dtype == dtype
    assert np.all(np.isfinite(S))
    assert S[0, 0] == 0 and S[0, -1] == 1
    assert np.all(np.diff(S[0]) >= 0)
    Zs = np.array([[1e4, -1e4], [-1e4, 1e4], [0.0, 1e4]], dtype=dtype)
    P = R.softmax(Zs)
    assert P.dtype == dtype
    assert_allclose(P.sum(axis=0), 1, rtol=1e-6)
    assert_array_equal(P[:, 0], [1, 0, 0])
    assert_allclose(P[:, 1], [0, 0.5, 0.5], rtol=1e-6)


@given(
    hnp.arrays(
        st.sampled_from(DTYPES),
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=5),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=32),
    )
)
def test_sigmoid_bounded_and_symmetric(Z):
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        S = R.sigmoid(Z)
        Sm = R.sigmoid(-Z)
    assert S.dtype == Z.dtype and S.shape == Z.shape
    assert np.all((S >= 0) & (S <= 1))
    assert_allclose(S + Sm, 1, rtol=0, atol=2 * np.finfo(Z.dtype).eps)


# ----------------------------------------------------------------------------------------------------
# gradient checks
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", ARCHS, ids=lambda d: "-".join(map(str, d)))
@pytest.mark.parametrize(("loss", "head"), HEADS, ids=lambda x: x)
@pytest.mark.parametrize(("hidden", "slope"), HIDDEN, ids=lambda x: str(x))
def test_gradient_check(hidden, slope, loss, head, dims):
    dims = list(dims)
    if head == "softmax":
        dims[-1] = 3
    acts = [hidden] * (len(dims) - 2) + [head]
    params, X, Y = kink_free_problem(dims, acts, loss, slope)
    AL, caches = R.L_model_forward(X, params, acts, leaky_slope=slope)
    grads = R.L_model_backward(AL, Y, caches, acts, loss, leaky_slope=slope)
    num = numeric_gradients(X, Y, params, acts, loss, slope)
    assert set(grads) >= set(num)
    for key, G in num.items():
        assert grads[key].shape == G.shape
        assert rel_error(grads[key], G) < 1e-6, key
    # the whole gradient at once, too
    flat = np.concatenate([grads[k].ravel() for k in sorted(num)])
    flat_num = np.concatenate([num[k].ravel() for k in sorted(num)])
    assert rel_error(flat, flat_num) < 1e-7


@given(
    dims=st.lists(st.integers(1, 4), min_size=2, max_size=4),
    m=st.integers(1, 4),
    hidden=st.sampled_from(["sigmoid", "tanh", "linear"]),
    seed=st.integers(0, 2**16),
)
def test_gradient_check_random_shapes(dims, m, hidden, seed):
    acts = [hidden] * (len(dims) - 2) + ["sigmoid"]
    rng = np.random.RandomState(seed)
    params = random_params(dims, rng)
    X = rng.randn(dims[0], m)
    Y = (rng.uniform(size=(dims[-1], m)) > 0.5).astype(float)
    AL, caches = R.L_model_forward(X, params, acts)
    grads = R.L_model_backward(AL, Y, caches, acts, "bce")
    num = numeric_gradients(X, Y, params, acts, "bce", 0.01)
    for key, G in num.items():
        assert_allclose(grads[key], G, rtol=1e-5, atol=1e-8, err_msg=key)


def test_compute_cost_formulas():
    A = np.array([[0.9, 0.2, 0.5], [0.3, 0.6, 0.99]])
    Y = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    bce = -(math.log(0.9) + math.log(0.8) + math.log(0.5) + math.log(0.7) + math.log(0.6) + math.log(0.99)) / 3
    assert R.compute_cost(A, Y, "bce") == pytest.approx(bce, rel=1e-14)
    mse = (0.1**2 + 0.2**2 + 0.5**2 + 0.3**2 + 0.4**2 + 0.01**2) / 3
    assert R.compute_cost(A, Y, "mse") == pytest.approx(mse, rel=1e-14)
    P = np.array([[0.7, 0.1], [0.2, 0.3], [0.1, 0.6]])
    T = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    assert R.compute_cost(P, T, "ce") == pytest.approx(-(math.log(0.7) + math.log(0.6)) / 2, rel=1e-14)
    assert isinstance(R.compute_cost(A, Y), float)
    # one output: Y may be 1-D
    assert R.compute_cost(A[:1], Y[0], "bce") == R.compute_cost(A[:1], Y[:1], "bce")


def test_cost_from_logits_equals_cost_from_probabilities():
    rng = np.random.RandomState(3)
    Z = rng.randn(2, 6) * 3
    Y = rng.uniform(size=(2, 6))
    assert R.compute_cost_from_logits(Z, Y, "bce") == pytest.approx(R.compute_cost(R.sigmoid(Z), Y, "bce"), rel=1e-13)
    T = np.eye(4)[:, rng.randint(0, 4, 6)]
    Z4 = rng.randn(4, 6) * 3
    assert R.compute_cost_from_logits(Z4, T, "ce") == pytest.approx(R.compute_cost(R.softmax(Z4), T, "ce"), rel=1e-13)


# ----------------------------------------------------------------------------------------------------
# a hand-worked step
# ----------------------------------------------------------------------------------------------------


def test_hand_worked_forward_backward_update():
    # network 2-2-1, relu hidden, sigmoid output, bce; two samples as columns
    X = np.array([[2.0, 1.0], [1.0, 3.0]])
    Y = np.array([[1.0, 0.0]])
    params = {
        "W1": np.array([[1.0, -1.0], [0.5, 0.5]]),
        "b1": np.array([[0.0], [1.0]]),
        "W2": np.array([[2.0, -1.0]]),
        "b2": np.array([[0.5]]),
    }
    # Z1 = W1 X + b1:  sample 1: [2 - 1 + 0, 1 + 0.5 + 1] = [1, 2.5];  sample 2: [1 - 3 + 0, 0.5 + 1.5 + 1] = [-2, 3]
    Z1 = np.array([[1.0, -2.0], [2.5, 3.0]])
    A1 = np.array([[1.0, 0.0], [2.5, 3.0]])  # relu
    # Z2 = W2 A1 + b2:  sample 1: 2*1 - 2.5 + 0.5 = 0;  sample 2: 2*0 - 3 + 0.5 = -2.5
    Z2 = np.array([[0.0, -2.5]])
    s = 1 / (1 + math.exp(2.5))  # sigmoid(-2.5)
    A2 = np.array([[0.5, s]])
    AL, caches = R.L_model_forward(X, params)
    assert_allclose(caches[0][1], Z1, rtol=1e-15)
    assert_allclose(caches[1][0][0], A1, rtol=1e-15)
    assert_allclose(caches[1][1], Z2, rtol=1e-15, atol=1e-15)
    assert_allclose(AL, A2, rtol=1e-15)

    # cost = -(1/2) [log 0.5 + log(1 - s)], and 1 - s = sigmoid(2.5) so -log(1 - s) = log(1 + e^-2.5)
    cost = 0.5 * (math.log(2) + math.log(1 + math.exp(-2.5)))
    assert R.compute_cost(AL, Y) == pytest.approx(cost, rel=1e-14)
    assert R.compute_cost_from_logits(caches[-1][1], Y) == pytest.approx(cost, rel=1e-14)

    grads = R.L_model_backward(AL, Y, caches)
    # dZ2 = A2 - Y = [-0.5, s];  dW2 = (1/2) dZ2 A1^T = (1/2)[-0.5*1 + s*0, -0.5*2.5 + s*3]
    dW2 = np.array([[-0.25, -0.625 + 1.5 * s]])
    db2 = np.array([[0.5 * (-0.5 + s)]])
    # dA1 = W2^T dZ2 = [[2], [-1]] [[-0.5, s]] = [[-1, 2s], [0.5, -s]]
    dA1 = np.array([[-1.0, 2 * s], [0.5, -s]])
    # dZ1 = dA1 * (Z1 > 0) with mask [[1, 0], [1, 1]] = [[-1, 0], [0.5, -s]]
    # dW1 = (1/2) dZ1 X^T: row 1 = (1/2)[-1*2 + 0*1, -1*1 + 0*3]; row 2 = (1/2)[0.5*2 - s*1, 0.5*1 - 3s]
    dW1 = np.array([[-1.0, -0.5], [0.5 - 0.5 * s, 0.25 - 1.5 * s]])
    db1 = np.array([[-0.5], [0.25 - 0.5 * s]])
    # dA0 = W1^T dZ1 = [[1, 0.5], [-1, 0.5]] [[-1, 0], [0.5, -s]]
    dA0 = np.array([[-1 + 0.25, -0.5 * s], [1 + 0.25, -0.5 * s]])
    for key, expected in {"dW2": dW2, "db2": db2, "dA1": dA1, "dW1": dW1, "db1": db1, "dA0": dA0}.items():
        assert_allclose(grads[key], expected, rtol=1e-14, atol=1e-15, err_msg=key)

    before = copy_params(params)
    out = R.update_parameters(params, grads, 0.1)
    assert out is params
    assert_allclose(params["W1"], before["W1"] - 0.1 * dW1, rtol=1e-15)
    assert_allclose(params["b1"], [[0.05], [1 - 0.025 + 0.05 * s]], rtol=1e-15)
    assert_allclose(params["W2"], [[2.025, -1 + 0.0625 - 0.15 * s]], rtol=1e-15)
    assert_allclose(params["b2"], [[0.5 + 0.025 - 0.05 * s]], rtol=1e-15)

    # the same step through train (full batch, one epoch) records the pre-update cost
    again, costs = R.train(copy_params(before), X, Y, learning_rate=0.1)
    assert costs == [pytest.approx(cost, rel=1e-14)]
    for key in params:
        assert_array_equal(again[key], params[key])


def test_layer_functions_compose_to_the_model():
    rng = np.random.RandomState(5)
    params = random_params([3, 4, 2], rng)
    X = rng.randn(3, 6)
    Z1, lin_cache = R.linear_forward(X, params["W1"], params["b1"])
    assert_array_equal(Z1, params["W1"] @ X + params["b1"])
    assert lin_cache[0] is X and lin_cache[1] is params["W1"]
    A1, c1 = R.linear_activation_forward(X, params["W1"], params["b1"], "tanh")
    assert_array_equal(A1, np.tanh(Z1))
    A2, c2 = R.linear_activation_forward(A1, params["W2"], params["b2"], "leaky_relu", leaky_slope=0.2)
    AL, caches = R.L_model_forward(X, params, ["tanh", "leaky_relu"], leaky_slope=0.2)
    assert_array_equal(AL, A2)
    dA2 = rng.randn(2, 6)
    dA1, dW2, db2 = R.linear_activation_backward(dA2, c2, "leaky_relu", leaky_slope=0.2)
    dZ2 = np.where(c2[1] > 0, dA2, 0.2 * dA2)
    assert_allclose(dW2, dZ2 @ A1.T / 6, rtol=1e-14)
    assert_allclose(db2, dZ2.sum(axis=1, keepdims=True) / 6, rtol=1e-14)
    assert_allclose(dA1, params["W2"].T @ dZ2, rtol=1e-14)
    dX, dW1, db1 = R.linear_backward(dA1 * (1 - A1**2), c1[0])
    dX2, dW1b, db1b = R.linear_activation_backward(dA1, c1, "tanh")
    assert_allclose(dW1, dW1b, rtol=1e-14)
    assert_allclose(dX, dX2, rtol=1e-14)


def test_architecture_style_matches_course_style():
    arch = [
        {"input_dim": 2, "output_dim": 4, "activation": "relu"},
        {"input_dim": 4, "output_dim": 3, "activation": "tanh"},
        {"input_dim": 3, "output_dim": 1, "activation": "sigmoid"},
    ]
    pv = R.init_layers(arch, seed=2)
    X = np.random.RandomState(0).randn(2, 5)
    Y = np.array([[0.0, 1.0, 1.0, 0.0, 1.0]])
    A, memory = R.full_forward_propagation(X, pv, arch)
    AL, caches = R.L_model_forward(X, pv, ["relu", "tanh", "sigmoid"])
    assert_array_equal(A, AL)
    assert set(memory) == {"A0", "Z1", "A1", "Z2", "A2", "Z3", "A3"}
    assert_array_equal(memory["A0"], X)
    for l in (1, 2, 3):
        assert_array_equal(memory[f"Z{l}"], caches[l - 1][1])
    assert_array_equal(memory["A1"], caches[1][0][0])
    assert_array_equal(memory["A3"], AL)
    g1 = R.full_backward_propagation(A, Y, memory, pv, arch)
    g2 = R.L_model_backward(AL, Y, caches, ["relu", "tanh", "sigmoid"])
    assert set(g1) == set(g2)
    for key in g1:
        assert_array_equal(g1[key], g2[key])


# ----------------------------------------------------------------------------------------------------
# initialisation
# ----------------------------------------------------------------------------------------------------


def test_initialize_parameters_deep_reproduces_draws():
    dims = [5, 4, 3, 1]
    p = R.initialize_parameters_deep(dims, seed=7)
    rng = np.random.RandomState(7)
    assert list(p) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    for l in (1, 2, 3):
        assert_array_equal(p[f"W{l}"], rng.randn(dims[l], dims[l - 1]) * 0.01)
        assert_array_equal(p[f"b{l}"], np.zeros((dims[l], 1)))
        assert p[f"W{l}"].dtype == np.float64
    default = R.initialize_parameters_deep([3, 2, 1])
    rng = np.random.RandomState(3)
    assert_array_equal(default["W1"], rng.randn(2, 3) * 0.01)
    assert_array_equal(default["W2"], rng.randn(1, 2) * 0.01)


def test_init_layers_reproduces_draws_w_then_b():
    arch = [
        {"input_dim": 3, "output_dim": 4, "activation": "relu"},
        {"input_dim": 4, "output_dim": 2, "activation": "sigmoid"},
    ]
    for seed, p in ((5, R.init_layers(arch, seed=5)), (99, R.init_layers(arch))):
        rng = np.random.RandomState(seed)
        assert_array_equal(p["W1"], rng.randn(4, 3) * 0.1)
        assert_array_equal(p["b1"], rng.randn(4, 1) * 0.1)
        assert_array_equal(p["W2"], rng.randn(2, 4) * 0.1)
        assert_array_equal(p["b2"], rng.randn(2, 1) * 0.1)
        assert set(p) == {"W1", "b1", "W2", "b2"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("init", "scale"),
    [("he", lambda n: np.sqrt(2.0 / n)), ("xavier", lambda n: np.sqrt(1.0 / n)), ("deep", lambda n: 0.01)],
)
def test_initialize_parameters_schemes(init, scale, dtype):
    dims = [6, 5, 2]
    p = R.initialize_parameters(dims, init=init, seed=11, dtype=dtype)
    rng = np.random.RandomState(11)
    for l in (1, 2):
        expected = (rng.randn(dims[l], dims[l - 1]) * scale(dims[l - 1])).astype(dtype)
        assert p[f"W{l}"].dtype == dtype and p[f"b{l}"].dtype == dtype
        assert_array_equal(p[f"W{l}"], expected)
        assert_array_equal(p[f"b{l}"], np.zeros((dims[l], 1)))
    if init == "deep" and dtype == np.float64:
        q = R.initialize_parameters_deep(dims, seed=11)
        for key in q:
            assert_array_equal(p[key], q[key])


def test_initialize_parameters_unseeded_draws_fresh_entropy():
    a = R.initialize_parameters([4, 8, 1])
    b = R.initialize_parameters([4, 8, 1])
    assert not np.array_equal(a["W1"], b["W1"])


# ----------------------------------------------------------------------------------------------------
# inputs are not mutated
# ----------------------------------------------------------------------------------------------------


def test_inputs_not_mutated():
    rng = np.random.RandomState(8)
    params = random_params([3, 4, 2], rng)
    frozen = {k: read_only(v) for k, v in params.items()}
    X = read_only(rng.randn(3, 5))
    Y = read_only((rng.uniform(size=(2, 5)) > 0.5).astype(float))
    acts = ["tanh", "sigmoid"]
    AL, caches = R.L_model_forward(X, frozen, acts)
    AL = read_only(AL)
    caches = [((read_only(a), read_only(w), read_only(b)), read_only(z)) for (a, w, b), z in caches]
    grads = R.L_model_backward(AL, Y, caches, acts)
    R.compute_cost(AL, Y)
    R.compute_cost_from_logits(caches[-1][1], Y)
    R.compute_cost(AL, Y, "mse")
    R.L_model_backward(AL, Y, caches, acts, loss="mse")
    R.linear_backward(read_only(grads["dA1"]), caches[0][0])
    R.linear_activation_backward(read_only(grads["dA1"]), caches[0], "tanh")
    for f in (R.sigmoid, R.relu, R.tanh, R.linear, R.leaky_relu, R.softmax):
        f(X)
    for f in (
        R.sigmoid_backward,
        R.relu_backward,
        R.tanh_backward,
        R.identity_backward,
        R.leaky_relu_backward,
        R.softmax_backward,
    ):
        f(X, X)
    # the parameters are updated in place, the gradients are not touched
    frozen_grads = {k: read_only(v) for k, v in grads.items()}
    R.update_parameters(copy_params(params), frozen_grads, 0.1)
    # train updates only the parameters
    trained, _ = R.train(
        copy_params(params), X, Y, acts, learning_rate=0.5, epochs=2, batch_size=2, shuffle=True, seed=1
    )
    for key in params:
        assert_array_equal(frozen[key], params[key])
        assert not np.array_equal(trained[key], params[key])
    arch = [{"input_dim": 3, "output_dim": 2, "activation": "relu"}]
    arch_copy = [dict(d) for d in arch]
    R.init_layers(arch)
    layer_dims = [3, 4, 1]
    R.initialize_parameters_deep(layer_dims)
    assert arch == arch_copy and layer_dims == [3, 4, 1]


def test_update_parameters_is_in_place_and_converts_gradients():
    params = {"W1": np.ones((2, 3), np.float32), "b1": np.zeros((2, 1), np.float32)}
    W_obj = params["W1"]
    grads = {"dW1": np.full((2, 3), 2.0), "db1": np.full((2, 1), -1.0), "dA0": np.zeros((3, 4))}
    out = R.update_parameters(params, grads, 0.25)
    assert out is params and params["W1"] is W_obj
    assert params["W1"].dtype == np.float32
    assert_array_equal(params["W1"], np.full((2, 3), 0.5, np.float32))
    assert_array_equal(params["b1"], np.full((2, 1), 0.25, np.float32))


# ----------------------------------------------------------------------------------------------------
# no NaN or inf
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturated_bce_output_is_finite(dtype):
    # one layer, ZL = +1e4 and -1e4, both samples wrong
    params = {"W1": np.array([[1.0, 0.0]], dtype), "b1": np.zeros((1, 1), dtype)}
    X = np.array([[1e4, -1e4], [3.0, 4.0]], dtype)
    Y = np.array([[0.0, 1.0]], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        AL, caches = R.L_model_forward(X, params, ["sigmoid"])
        assert_array_equal(AL, [[1.0, 0.0]])
        cost = R.compute_cost(AL, Y)
        # per-sample logit cost max(z, 0) - y z + log1p(exp(-|z|)) = 1e4 for both samples
        cost_logits = R.compute_cost_from_logits(caches[-1][1], Y)
        grads = R.L_model_backward(AL, Y, caches, ["sigmoid"])
    assert np.isfinite(cost) and cost > 30
    # clipping: 1 -> 1 - eps/2 costs -log(eps/2); 0 -> tiny costs -log(tiny)
    eps, tiny = np.finfo(dtype).eps, np.finfo(dtype).tiny
    assert cost == pytest.approx((-math.log(eps / 2) - math.log(tiny)) / 2, rel=1e-5)
    assert cost_logits == pytest.approx(1e4, rel=1e-6)
    # dZ = AL - Y = [1, -1]; dW1 = (1/2)[1*1e4 + (-1)(-1e4), 1*3 - 1*4] = [1e4, -0.5]
    assert_allclose(grads["dW1"], [[1e4, -0.5]], rtol=1e-6)
    assert_allclose(grads["db1"], [[0.0]], atol=1e-6)
    for g in grads.values():
        assert g.dtype == dtype and np.all(np.isfinite(g))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("hidden", "loss", "head"),
    [
        ("tanh", "bce", "sigmoid"),
        ("sigmoid", "mse", "sigmoid"),
        ("relu", "ce", "softmax"),
        ("leaky_relu", "mse", "tanh"),
    ],
)
def test_saturated_deep_network_is_finite(dtype, hidden, loss, head):
    rng = np.random.RandomState(4)
    dims = [3, 4, 3]
    params = random_params(dims, rng, dtype)
    params["W2"] *= dtype(1e4)
    X = (rng.randn(3, 6) * 1e4).astype(dtype)
    Y = random_targets(loss, 3, 6, rng, dtype) if loss != "mse" else rng.uniform(size=(3, 6)).astype(dtype)
    acts = [hidden, head]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        AL, caches = R.L_model_forward(X, params, acts)
        assert np.max(np.abs(caches[-1][1])) > 1e3  # really saturated
        costs = [R.compute_cost(AL, Y, loss)]
        if loss != "mse":
            costs.append(R.compute_cost_from_logits(caches[-1][1], Y, loss))
        grads = R.L_model_backward(AL, Y, caches, acts, loss)
        _, train_costs = R.train(copy_params(params), X, Y, acts, loss, learning_rate=1e-6, epochs=2, batch_size=4)
    assert all(np.isfinite(c) for c in costs + train_costs)
    for g in grads.values():
        assert g.dtype == dtype and np.all(np.isfinite(g))


def test_train_stops_on_divergence_leaving_last_finite_state():
    rng = np.random.RandomState(0)
    params = random_params([2, 3, 1], rng)
    start = copy_params(params)
    X = rng.randn(2, 8) * 1e5
    Y = rng.randn(1, 8)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="diverged"):
        R.train(params, X, Y, ["linear", "linear"], "mse", learning_rate=1e300, epochs=3)
    for key in params:
        assert_array_equal(params[key], start[key])


# ----------------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [None, 7, 100, 1, 3, 5])
@pytest.mark.parametrize(
    ("acts", "loss"), [(["relu", "sigmoid"], "bce"), (["tanh", "linear"], "mse"), (["leaky_relu", "softmax"], "ce")]
)
def test_train_matches_hand_loop(batch_size, acts, loss):
    rng = np.random.RandomState(2)
    dims = [3, 5, 2]
    params = random_params(dims, rng)
    X = rng.randn(3, 7)
    Y = random_targets(loss, 2, 7, rng)
    bs = 7 if batch_size is None or batch_size > 7 else batch_size
    expected, expected_costs = hand_loop(copy_params(params), X, Y, acts, loss, 0.3, 3, bs, slope=0.1)
    got, costs = R.train(params, X, Y, acts, loss, learning_rate=0.3, epochs=3, batch_size=batch_size, leaky_slope=0.1)
    assert got is params
    assert len(costs) == 3 and all(isinstance(c, float) for c in costs)
    assert_allclose(costs, expected_costs, rtol=1e-14)
    for key in params:
        assert_array_equal(got[key], expected[key])


def test_full_batch_gradient_descent_decreases_the_cost():
    rng = np.random.RandomState(21)
    X = rng.randn(2, 40)
    Y = (X[0:1] + 0.5 * X[1:2] > 0).astype(float)
    params = R.initialize_parameters([2, 6, 1], "he", seed=0)
    _, costs = R.train(params, X, Y, ["tanh", "sigmoid"], learning_rate=0.1, epochs=30)
    assert all(b < a for a, b in zip(costs, costs[1:], strict=False))
    assert costs[-1] < 0.8 * costs[0]


def test_train_with_shuffle_uses_one_permutation_per_epoch():
    rng = np.random.RandomState(6)
    params = random_params([2, 4, 1], rng)
    X = rng.randn(2, 10)
    Y = (rng.uniform(size=(1, 10)) > 0.5).astype(float)
    expected, expected_costs = hand_loop(copy_params(params), X, Y, None, "bce", 0.2, 4, 3, shuffle=True, seed=42)
    got, costs = R.train(params, X, Y, learning_rate=0.2, epochs=4, batch_size=3, shuffle=True, seed=42)
    assert_allclose(costs, expected_costs, rtol=1e-14)
    for key in got:
        assert_array_equal(got[key], expected[key])
    unshuffled, _ = hand_loop(copy_params(params), X, Y, None, "bce", 0.2, 4, 3)
    assert not np.array_equal(unshuffled["W1"], got["W1"])


def test_partial_last_batch_is_averaged_over_its_own_size():
    rng = np.random.RandomState(9)
    params = random_params([2, 3, 1], rng)
    X = rng.randn(2, 4)
    Y = (rng.uniform(size=(1, 4)) > 0.5).astype(float)
    got, costs = R.train(copy_params(params), X, Y, ["tanh", "sigmoid"], learning_rate=0.5, batch_size=3)
    # the same as a full-batch step on samples 0..2 followed by a full-batch step on sample 3 alone
    step, c1 = R.train(copy_params(params), X[:, :3], Y[:, :3], ["tanh", "sigmoid"], learning_rate=0.5)
    step, c2 = R.train(step, X[:, 3:], Y[:, 3:], ["tanh", "sigmoid"], learning_rate=0.5)
    for key in got:
        assert_array_equal(got[key], step[key])
    assert costs == [pytest.approx((c1[0] + c2[0]) / 2, rel=1e-15)]
    # a last batch averaged over batch_size (3) instead of its size (1) would move less
    AL, caches = R.L_model_forward(
        X[:, 3:],
        R.train(copy_params(params), X[:, :3], Y[:, :3], ["tanh", "sigmoid"], learning_rate=0.5)[0],
        ["tanh", "sigmoid"],
    )
    g = R.L_model_backward(AL, Y[:, 3:], caches, ["tanh", "sigmoid"])
    assert np.max(np.abs(g["dW1"])) > 0


def test_train_accepts_1d_targets_and_full_batch_epochs_are_sgd_steps():
    rng = np.random.RandomState(12)
    params = random_params([2, 3, 1], rng)
    X = rng.randn(2, 6)
    y = (rng.uniform(size=6) > 0.5).astype(float)
    a, ca = R.train(copy_params(params), X, y, learning_rate=0.1, epochs=2)
    b, cb = R.train(copy_params(params), X, y.reshape(1, -1), learning_rate=0.1, epochs=2)
    assert ca == cb
    manual = copy_params(params)
    for _ in range(2):
        AL, caches = R.L_model_forward(X, manual)
        R.update_parameters(manual, R.L_model_backward(AL, y, caches), 0.1)
    for key in a:
        assert_array_equal(a[key], b[key])
        assert_array_equal(a[key], manual[key])


@given(
    m=st.integers(1, 9),
    batch_size=st.integers(1, 11),
    epochs=st.integers(1, 3),
    shuffle=st.booleans(),
    hidden=st.sampled_from(["relu", "tanh", "leaky_relu"]),
)
def test_train_matches_hand_loop_any_shape(m, batch_size, epochs, shuffle, hidden):
    rng = np.random.RandomState(m * 100 + batch_size)
    params = random_params([3, 4, 1], rng)
    X = rng.randn(3, m)
    Y = (rng.uniform(size=(1, m)) > 0.5).astype(float)
    acts = [hidden, "sigmoid"]
    expected, expected_costs = hand_loop(
        copy_params(params), X, Y, acts, "bce", 0.1, epochs, min(batch_size, m), shuffle=shuffle, seed=5
    )
    got, costs = R.train(
        params, X, Y, acts, learning_rate=0.1, epochs=epochs, batch_size=batch_size, shuffle=shuffle, seed=5
    )
    assert_allclose(costs, expected_costs, rtol=1e-14)
    for key in got:
        assert_array_equal(got[key], expected[key])


# ----------------------------------------------------------------------------------------------------
# dtypes
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("acts", "loss"),
    [
        (["relu", "leaky_relu", "sigmoid"], "bce"),
        (["tanh", "sigmoid", "linear"], "mse"),
        (["linear", "relu", "softmax"], "ce"),
    ],
)
def test_float32_stays_float32(acts, loss):
    rng = np.random.RandomState(13)
    p32 = R.initialize_parameters([4, 5, 3, 2], "xavier", seed=1, dtype=np.float32)
    X64 = rng.randn(4, 9)  # float64 input is converted to the parameters' dtype
    Y64 = random_targets(loss, 2, 9, rng)
    AL, caches = R.L_model_forward(X64, p32, acts)
    assert AL.dtype == np.float32
    assert all(a.dtype == w.dtype == b.dtype == z.dtype == np.float32 for (a, w, b), z in caches)
    grads = R.L_model_backward(AL, Y64, caches, acts, loss)
    assert all(g.dtype == np.float32 for g in grads.values())
    R.update_parameters(p32, grads, 0.1)
    assert all(v.dtype == np.float32 for v in p32.values())
    # training in float32 agrees with float64 to float32 precision
    p64 = {k: v.astype(np.float64) for k, v in p32.items()}
    t32, c32 = R.train(p32, X64, Y64, acts, loss, learning_rate=0.1, epochs=3, batch_size=4)
    t64, c64 = R.train(p64, X64, Y64, acts, loss, learning_rate=0.1, epochs=3, batch_size=4)
    assert all(v.dtype == np.float32 for v in t32.values())
    assert all(v.dtype == np.float64 for v in t64.values())
    assert_allclose(c32, c64, rtol=1e-4)
    for key in t32:
        assert_allclose(t32[key], t64[key], rtol=1e-3, atol=1e-5)
    # the layer functions keep the dtype too
    W, b = t32["W1"], t32["b1"]
    Z, cache = R.linear_forward(X64, W, b)
    assert Z.dtype == np.float32
    dA, dW, db = R.linear_backward(np.ones_like(Z, dtype=np.float64), cache)
    assert dA.dtype == dW.dtype == db.dtype == np.float32
    for f in (R.sigmoid, R.relu, R.tanh, R.linear, R.leaky_relu, R.softmax):
        assert f(Z).dtype == np.float32
    for f in (
        R.sigmoid_backward,
        R.relu_backward,
        R.tanh_backward,
        R.identity_backward,
        R.leaky_relu_backward,
        R.softmax_backward,
    ):
        assert f(Z, Z).dtype == np.float32


@given(
    dims=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    m=st.integers(1, 7),
    dtype=st.sampled_from(DTYPES),
    hidden=st.sampled_from(list(_checks.ACTIVATIONS)),
)
def test_shapes_and_dtypes_any_architecture(dims, m, dtype, hidden):
    rng = np.random.RandomState(len(dims) * 10 + m)
    params = R.initialize_parameters(dims, "he", seed=0, dtype=dtype)
    acts = [hidden] * (len(dims) - 2) + ["sigmoid"]
    X = rng.randn(dims[0], m).astype(dtype)
    Y = (rng.uniform(size=(dims[-1], m)) > 0.5).astype(dtype)
    AL, caches = R.L_model_forward(X, params, acts)
    assert AL.shape == (dims[-1], m) and AL.dtype == dtype
    assert len(caches) == len(dims) - 1
    grads = R.L_model_backward(AL, Y, caches, acts)
    for l in range(1, len(dims)):
        assert grads[f"dW{l}"].shape == params[f"W{l}"].shape
        assert grads[f"db{l}"].shape == params[f"b{l}"].shape
        assert grads[f"dA{l - 1}"].shape == (dims[l - 1], m)
        assert grads[f"dW{l}"].dtype == dtype
    assert np.isfinite(R.compute_cost(AL, Y))


# ----------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------


def _p(dims=(3, 4, 1), dtype=np.float64):
    return R.initialize_parameters(list(dims), "he", seed=0, dtype=dtype)


_X = np.ones((3, 5))
_Y = np.array([[0.0, 1.0, 1.0, 0.0, 1.0]])


def _fwd():
    return R.L_model_forward(_X, _p())


def _with(key, value, dims=(3, 4, 1)):
    p = _p(dims)
    p[key] = value
    return p


def _drop(key):
    p = _p()
    del p[key]
    return p


def _nan_X():
    X = _X.copy()
    X[1, 2] = np.nan
    return X


BAD_INPUT = {
    "X rows": (lambda: R.L_model_forward(np.ones((2, 5)), _p()), r"X has 2 rows \(features\) but W1 expects 3"),
    "X ndim": (lambda: R.L_model_forward(np.ones(3), _p()), r"X must be 2-dimensional"),
    "X nan": (lambda: R.L_model_forward(_nan_X(), _p()), r"X contains 1 non-finite"),
    "X inf in train": (lambda: R.train(_p(), _X * np.inf, _Y), r"X contains 15 non-finite"),
    "W inf": (lambda: R.L_model_forward(_X, _with("W2", np.full((1, 4), np.inf))), r"parameters\['W2'\] contains"),
    "b 1-d": (lambda: R.L_model_forward(_X, _with("b1", np.zeros(4))), r"parameters\['b1'\] must be 2-dimensional"),
    "b shape": (
        lambda: R.L_model_forward(_X, _with("b1", np.zeros((3, 1)))),
        r"parameters\['b1'\] must have shape \(4, 1\) to match W1, got \(3, 1\)",
    ),
    "W chain": (lambda: R.L_model_forward(_X, _with("W2", np.ones((1, 5)))), r"parameters\['W2'\] has 5 columns"),
    "missing key": (lambda: R.L_model_forward(_X, _drop("b2")), r"parameters is missing \['b2'\]"),
    "extra key": (lambda: R.L_model_forward(_X, _with("W9", np.ones((1, 1)))), r"unexpected keys \['W9'\]"),
    "deleted middle W": (
        lambda: R.L_model_forward(_X, {k: v for k, v in _p((3, 4, 2, 1)).items() if k != "W2"}),
        r"parameters is missing \['W2'\]; a network of 3 layers .* \(keys: 'W1', 'b1', 'b2', 'W3', 'b3'\)",
    ),
    "not a dict": (lambda: R.L_model_forward(_X, [np.ones((4, 3))]), r"parameters must be a dict"),
    "mixed dtype": (
        lambda: R.L_model_forward(_X, _with("b2", np.zeros((1, 1), np.float32))),
        r"parameters\['b2'\] has dtype float32 but 'W1' has float64",
    ),
    "big-endian float32 b, float64 W": (  # the b's dtype is float32 in either byte order (was: float64)
        lambda: R.L_model_forward(_X, _with("b2", np.zeros((1, 1), ">f4"))),
        r"parameters\['b2'\] has dtype float32 but 'W1' has float64",
    ),
    "unknown activation": (
        lambda: R.L_model_forward(_X, _p(), ["swish", "sigmoid"]),
        r"unknown activation of layer 1 'swish'",
    ),
    "hidden softmax": (
        lambda: R.L_model_forward(_X, _p(), ["softmax", "sigmoid"]),
        r"unknown activation of layer 1 'softmax'",
    ),
    "activation count": (
        lambda: R.L_model_forward(_X, _p(), ["relu"]),
        r"activations has 1 entries but the network has 2 layers",
    ),
    "activations string": (lambda: R.L_model_forward(_X, _p(), "relu"), r"activations must be a list"),
    "leaky slope": (lambda: R.L_model_forward(_X, _p(), leaky_slope=float("nan")), r"leaky_slope must be a finite"),
    "unknown loss": (lambda: R.compute_cost(_fwd()[0], _Y, "hinge"), r"unknown loss 'hinge'"),
    "Y columns": (
        lambda: R.compute_cost(_fwd()[0], _Y[:, :3]),
        r"Y has shape \(1, 3\): 3 columns \(samples\) but the input has 5",
    ),
    "Y rows": (
        lambda: R.L_model_backward(*_fwd()[:1], np.zeros((2, 5)), _fwd()[1]),
        r"Y has shape \(2, 5\): 2 rows but the output layer has 1 units",
    ),
    "Y range bce": (lambda: R.compute_cost(_fwd()[0], _Y * 2), r"Y must lie in \[0, 1\]"),
    "Y range train": (lambda: R.train(_p(), _X, _Y - 1), r"Y must lie in \[0, 1\]"),
    "Y nan": (lambda: R.compute_cost(_fwd()[0], _Y * np.nan), r"Y contains 5 non-finite"),
    "ce columns": (
        lambda: R.compute_cost_from_logits(np.zeros((2, 3)), np.full((2, 3), 0.2), "ce"),
        r"Y columns must sum to 1 for loss 'ce'",
    ),
    "AL range": (lambda: R.compute_cost(np.full((1, 5), 1.5), _Y), r"AL must hold probabilities in \[0, 1\]"),
    "mse from logits": (lambda: R.compute_cost_from_logits(np.zeros((1, 5)), _Y, "mse"), r"use compute_cost"),
    "bce needs sigmoid": (lambda: R.train(_p(), _X, _Y, ["relu", "tanh"], "bce"), r"loss 'bce' needs a sigmoid output"),
    "ce needs softmax": (
        lambda: R.L_model_backward(_fwd()[0], _Y, _fwd()[1], loss="ce"),
        r"loss 'ce' needs a softmax output",
    ),
    "softmax needs ce": (
        lambda: R.train(_p((3, 4, 2)), _X, np.eye(2)[:, [0, 1, 0, 1, 0]], ["relu", "softmax"], "mse"),
        r"softmax output layer needs loss 'ce'",
    ),
    "learning rate": (lambda: R.train(_p(), _X, _Y, learning_rate=0), r"learning_rate must be a positive"),
    "learning rate update": (lambda: R.update_parameters(_p(), {}, -1.0), r"learning_rate must be a positive"),
    "epochs": (lambda: R.train(_p(), _X, _Y, epochs=0), r"epochs must be a positive integer"),
    "batch size": (lambda: R.train(_p(), _X, _Y, batch_size=0), r"batch_size must be a positive integer"),
    "batch size float": (lambda: R.train(_p(), _X, _Y, batch_size=2.5), r"batch_size must be a positive integer"),
    "train list params": (
        lambda: R.train({"W1": [[1.0, 2.0, 3.0]], "b1": [[0.0]]}, _X, _Y, ["sigmoid"]),
        r"parameters\['W1'\] must be a float NumPy array",
    ),
    "grads missing": (
        lambda: R.update_parameters(
            _p(), {"dW1": np.zeros((4, 3)), "db1": np.zeros((4, 1)), "dW2": np.zeros((1, 4))}, 0.1
        ),
        r"grads is missing 'db2'",
    ),
    "grads shape": (
        lambda: R.update_parameters(_p((3, 1)), {"dW1": np.zeros((3, 1)), "db1": np.zeros((1, 1))}, 0.1),
        r"grads\['dW1'\] has shape \(3, 1\) but parameters\['W1'\] has \(1, 3\)",
    ),
    "grads nan": (
        lambda: R.update_parameters(_p((3, 1)), {"dW1": np.full((1, 3), np.nan), "db1": np.zeros((1, 1))}, 0.1),
        r"grads\['dW1'\] contains 3 non-finite",
    ),
    "linear_forward rows": (
        lambda: R.linear_forward(np.ones((3, 2)), np.ones((4, 2)), np.zeros((4, 1))),
        r"A_prev has 3 rows but W has 2 columns",
    ),
    "linear_forward b": (
        lambda: R.linear_forward(np.ones((2, 2)), np.ones((4, 2)), np.zeros((3, 1))),
        r"b must have shape \(4, 1\)",
    ),
    "layer activation": (
        lambda: R.linear_activation_forward(np.ones((2, 2)), np.ones((4, 2)), np.zeros((4, 1)), "gelu"),
        r"unknown activation 'gelu'",
    ),
    "backward dZ shape": (
        lambda: R.linear_backward(np.ones((4, 3)), (np.ones((2, 2)), np.ones((4, 2)), np.zeros((4, 1)))),
        r"dZ must have shape \(4, 2\)",
    ),
    "backward cache": (
        lambda: R.linear_activation_backward(np.ones((4, 2)), "nope", "relu"),
        r"cache must be the \(\(A_prev, W, b\), Z\) tuple",
    ),
    "backward caches": (lambda: R.L_model_backward(np.ones((1, 5)) / 2, _Y, []), r"caches must be the non-empty list"),
    "backward AL shape": (
        lambda: R.L_model_backward(np.full((1, 4), 0.5), _Y, _fwd()[1]),
        r"AL must have shape \(1, 5\)",
    ),
    "layer_dims short": (lambda: R.initialize_parameters_deep([3]), r"layer_dims needs at least 2 entries"),
    "layer_dims zero": (lambda: R.initialize_parameters_deep([3, 0, 1]), r"layer_dims\[1\] must be a positive integer"),
    "init name": (lambda: R.initialize_parameters([3, 1], init="lecun"), r"unknown init 'lecun'"),
    "init dtype": (lambda: R.initialize_parameters([3, 1], dtype=np.int64), r"dtype must be float32 or float64"),
    "architecture dims": (
        lambda: R.init_layers(
            [
                {"input_dim": 2, "output_dim": 4, "activation": "relu"},
                {"input_dim": 3, "output_dim": 1, "activation": "sigmoid"},
            ]
        ),
        r"nn_architecture\[1\]\['input_dim'\] is 3 but layer 0 has output_dim 4",
    ),
    "architecture key": (
        lambda: R.init_layers([{"input_dim": 2, "activation": "relu"}]),
        r"nn_architecture\[0\] has no 'output_dim'",
    ),
    "architecture activation": (
        lambda: R.init_layers([{"input_dim": 2, "output_dim": 1, "activation": "elu"}]),
        r"unknown activation of layer 1 'elu'",
    ),
    "architecture vs params": (
        lambda: R.full_forward_propagation(
            np.ones((2, 3)),
            R.init_layers([{"input_dim": 2, "output_dim": 1, "activation": "sigmoid"}]),
            [{"input_dim": 2, "output_dim": 3, "activation": "sigmoid"}],
        ),
        r"params_values\['W1'\] has shape \(1, 2\) but nn_architecture says \(3, 2\)",
    ),
    "memory key": (
        lambda: R.full_backward_propagation(
            np.full((1, 3), 0.5),
            np.ones((1, 3)),
            {"A0": np.ones((2, 3))},
            R.init_layers([{"input_dim": 2, "output_dim": 1, "activation": "sigmoid"}]),
            [{"input_dim": 2, "output_dim": 1, "activation": "sigmoid"}],
        ),
        r"memory has no 'Z1'",
    ),
}


def test_big_endian_float32_parameters_stay_float32():
    params = {k: v.astype(">f4") for k, v in _p(dtype=np.float32).items()}
    AL, _ = R.L_model_forward(_X.astype(">f4"), params)
    assert AL.dtype == np.float32
    want, _ = R.L_model_forward(_X.astype(np.float32), _p(dtype=np.float32))
    np.testing.assert_array_equal(AL, want)


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
def test_bad_input_raises_value_error_naming_it(case):
    call, match = BAD_INPUT[case]
    with pytest.raises(ValueError, match=match):
        call()
