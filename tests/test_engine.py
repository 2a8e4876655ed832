"""Tests of the engine ``fastmlp._engine`` (issue 3), the one door to the kernels (samples as columns).

The problems below are drawn with samples as rows (scikit-learn's layout, that of :func:`np_train`); the
helpers :func:`train_rows`, :func:`forward_rows` and :func:`cost_rows` hand them to the engine as columns.

Plain SGD is held to :func:`fastmlp.reference.train`. The optimisers (momentum, Nesterov, Adam), the L2 penalty
``alpha`` and scikit-learn's ``half_mse`` loss are held to :func:`np_train` (``tests/references/sklearn_step.py``):
a short NumPy transcription of scikit-learn's ``BaseMultilayerPerceptron._backprop`` and its ``SGDOptimizer`` /
``AdamOptimizer``, the formulas written in ``_engine.Optimizer``'s docstring. Every comparison runs on both
kernel paths: every layer on BLAS (``blas_min_flops=0``) and every layer on the compiled loops
(``blas_min_flops`` huge).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from references.sklearn_step import activation, loss_and_delta, np_train
from tolerances import DTYPES, HIDDEN_NAMES, RATES, tol, train_tol

from fastmlp import _engine as E
from fastmlp import reference as R

PATHS = {"blas": 0, "loops": 10**18}
#: (loss, output activation)
HEADS = [
    ("bce", "sigmoid"),
    ("ce", "softmax"),
    ("mse", "linear"),
    ("mse", "tanh"),
    ("mse", "relu"),
    ("half_mse", "linear"),
    ("half_mse", "sigmoid"),
    ("half_mse", "leaky_relu"),
]
REFERENCE_LOSSES = ("bce", "ce", "mse")


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------


def cols(a):
    """Samples as rows -> samples as columns, the engine's layout."""
    return np.ascontiguousarray(a.T)


def train_rows(net, X, Y, loss, **kw):
    return E.train_epochs(net, cols(X), cols(Y), loss, **kw)


def forward_rows(net, X, **kw):
    return E.forward(net, cols(X), **kw).T


def cost_rows(net, X, Y, loss):
    return E.cost(net, cols(X), cols(Y), loss)


def make_net(dims, acts, dtype, slope=0.01, seed=0, scale=0.8):
    rng = np.random.RandomState(seed)
    net = E.Network(dims, acts, dtype, slope)
    for l in range(len(dims) - 1):
        net.coefs[l][:] = rng.randn(dims[l], dims[l + 1]) * scale / np.sqrt(dims[l])
        net.intercepts[l][:] = rng.randn(dims[l + 1]) * 0.3
    return net


def make_data(dims, loss, m, dtype, seed=1):
    rng = np.random.RandomState(seed)
    X = rng.randn(m, dims[0]).astype(dtype)
    n_out = dims[-1]
    if loss == "bce":
        Y = rng.uniform(0, 1, (m, n_out))
    elif loss == "ce":
        Y = np.eye(n_out)[rng.randint(0, n_out, m)]
    else:
        Y = rng.randn(m, n_out)
    return X, Y.astype(dtype)


def as_columns(net):
    """The network's parameters as a course-style dict ``W1 (n1, n0), b1 (n1, 1), ...``."""
    p = {}
    for l, (c, b) in enumerate(zip(net.coefs, net.intercepts, strict=True), start=1):
        p[f"W{l}"] = c.T.copy()
        p[f"b{l}"] = b.reshape(-1, 1).copy()
    return p


def assert_net_close(net, coefs, intercepts, **kw):
    kw = kw or tol(net.dtype)
    for l, (c, b) in enumerate(zip(coefs, intercepts, strict=True)):
        assert net.coefs[l].dtype == net.dtype
        assert_allclose(net.coefs[l], c, err_msg=f"coef {l}", **kw)
        assert_allclose(net.intercepts[l], b, err_msg=f"intercept {l}", **kw)


def snapshot(net):
    return [c.copy() for c in net.coefs], [b.copy() for b in net.intercepts]


@st.composite
def problems(draw, heads=HEADS, max_layers=4, max_width=8, max_m=12):
    n_layers = draw(st.integers(1, max_layers))
    dims = draw(st.lists(st.integers(1, max_width), min_size=n_layers + 1, max_size=n_layers + 1))
    loss, out = draw(st.sampled_from(heads))
    acts = [draw(st.sampled_from(HIDDEN_NAMES)) for _ in range(n_layers - 1)] + [out]
    slope = draw(st.sampled_from([0.01, 0.3]))
    dtype = draw(st.sampled_from(DTYPES))
    m = draw(st.integers(1, max_m))
    seed = draw(st.integers(0, 10_000))
    net = make_net(dims, acts, dtype, slope, seed)
    X, Y = make_data(dims, loss, m, dtype, seed + 1)
    return dims, acts, loss, slope, dtype, net, X, Y


def batch_sizes(m):
    return st.sampled_from([1, None, max(1, (m + 1) // 2), max(1, m - 1), 5])


# ----------------------------------------------------------------------------------------------------
# the NumPy reference above is itself checked against fastmlp.reference
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss, out", [h for h in HEADS if h[0] in REFERENCE_LOSSES])
def test_numpy_reference_of_this_file_equals_fastmlp_reference(loss, out):
    dims, acts = [3, 5, 4, 3], ["tanh", "leaky_relu", out]
    net = make_net(dims, acts, np.float64, 0.2)
    X, Y = make_data(dims, loss, 10, np.float64)
    order = np.stack([np.random.RandomState(7).permutation(10) for _ in range(3)])
    coefs, intercepts, costs, _, _ = np_train(net.coefs, net.intercepts, acts, X, Y, loss, learning_rate=0.3,
                                              epochs=3, batch_size=4, slope=0.2, order=order)
    params = as_columns(net)
    for e in range(3):
        params, c = R.train(params, X[order[e]].T, Y[order[e]].T, acts, loss=loss, learning_rate=0.3, batch_size=4,
                            leaky_slope=0.2)
        assert_allclose(costs[e], c[0], rtol=1e-12)
    for l in range(3):
        assert_allclose(coefs[l], params[f"W{l + 1}"].T, rtol=1e-12, atol=1e-14)
        assert_allclose(intercepts[l], params[f"b{l + 1}"].ravel(), rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------------------------------
# plain SGD against fastmlp.reference
# ----------------------------------------------------------------------------------------------------


@given(
    problem=problems(heads=[h for h in HEADS if h[0] in REFERENCE_LOSSES]),
    data=st.data(),
    epochs=st.integers(1, 3),
    shuffle=st.booleans(),
    path=st.sampled_from(list(PATHS)),
)
def test_plain_sgd_matches_reference_train(problem, data, epochs, shuffle, path):
    dims, acts, loss, slope, dtype, net, X, Y = problem
    m = X.shape[0]
    batch_size = data.draw(batch_sizes(m))
    params = as_columns(net)
    order = None
    if shuffle:
        rng = np.random.RandomState(3)
        order = np.stack([rng.permutation(m) for _ in range(epochs)])
    result = train_rows(net, X, Y, loss, learning_rate=RATES[loss], epochs=epochs, batch_size=batch_size,
                            order=order, blas_min_flops=PATHS[path])
    want, costs = R.train(params, X.T, Y.T, acts, loss=loss, learning_rate=RATES[loss], epochs=epochs,
                          batch_size=batch_size, leaky_slope=slope, shuffle=shuffle, seed=3)
    assert_net_close(net, [want[f"W{l}"].T for l in range(1, len(dims))],
                     [want[f"b{l}"].ravel() for l in range(1, len(dims))], **train_tol(dtype))
    assert result.mean_batch_cost.dtype == np.float64 and result.mean_batch_cost.shape == (epochs,)
    assert_allclose(result.mean_batch_cost, costs, **tol(dtype))


@given(problem=problems(), path=st.sampled_from(list(PATHS)))
def test_forward_rows_matches_reference(problem, path):
    dims, acts, loss, slope, dtype, net, X, Y = problem
    params = as_columns(net)
    AL, caches = R.L_model_forward(X.T, params, acts, leaky_slope=slope)
    out = forward_rows(net, X, blas_min_flops=PATHS[path])
    assert out.dtype == np.dtype(dtype) and out.shape == (X.shape[0], dims[-1])
    assert_allclose(out, AL.T, **tol(dtype))
    logits = forward_rows(net, X, logits=True, blas_min_flops=PATHS[path])
    assert logits.dtype == np.dtype(dtype)
    assert_allclose(logits, caches[-1][1].T, **tol(dtype))


@given(problem=problems(), path=st.sampled_from(list(PATHS)), rows=st.integers(1, 40))
def test_forward_on_rows_matches_reference(problem, path, rows):
    """``_engine.forward_rows`` (the estimators' predict kernel: samples as rows, no transposed copies; dot
    products below 8 rows, BLAS with a transposed flag above) against the reference, one row included."""
    dims, acts, loss, slope, dtype, net, X, Y = problem
    X = np.ascontiguousarray(np.resize(X, (rows, dims[0])))
    AL, _ = R.L_model_forward(X.T, as_columns(net), acts, leaky_slope=slope)
    before = X.copy()
    out = E.forward_rows(net, X, blas_min_flops=PATHS[path])
    assert out.dtype == np.dtype(dtype) and out.shape == (rows, dims[-1]) and out.flags.c_contiguous
    assert_allclose(out, AL.T, **tol(dtype))
    assert_array_equal(X, before)


@given(problem=problems(), path=st.sampled_from(list(PATHS)), rows=st.integers(1, 40), block=st.integers(1, 9))
def test_forward_rows_in_blocks_matches_reference(problem, path, rows, block):
    """``forward_rows`` runs the rows through the layers ``block`` rows at a time (a remainder block included):
    every block boundary gives the reference's outputs, and ``argmax_rows`` the index of the largest of them."""
    dims, acts, loss, slope, dtype, net, X, Y = problem
    X = np.ascontiguousarray(np.resize(X, (rows, dims[0])))
    AL, _ = R.L_model_forward(X.T, as_columns(net), acts, leaky_slope=slope)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(E, "SMALL_BLOCK_MACS", 0)  # blocks by FORWARD_BLOCK_VALUES
        patch.setattr(E, "FORWARD_BLOCK_VALUES", block * max(dims[1:]))
        patch.setattr(E, "_ROWS_PER_BLOCK_MIN", 1)
        out = E.forward_rows(net, X, blas_min_flops=PATHS[path])
        labels = E.argmax_rows(net, X, blas_min_flops=PATHS[path]) if acts[-1] == "softmax" else None
    assert_allclose(out, AL.T, **tol(dtype))
    if labels is not None:
        assert labels.dtype == np.int64 and labels.shape == (rows,)
        assert_array_equal(labels, out.argmax(axis=1))
        # where the reference's two largest probabilities are apart by more than rounding, the same class
        top2 = np.sort(AL, axis=0)[-2:] if dims[-1] > 1 else np.vstack([AL * 0, AL])
        clear = top2[1] - top2[0] > 1e-4
        assert_array_equal(labels[clear], AL.argmax(axis=0)[clear])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows, macs", [(70, 1 << 19), (70, 40 * 20 * 9), (31, 1 << 19), (33, 40 * 20 * 12)])
def test_forward_rows_with_transposed_weights_matches_reference(dtype, rows, macs):
    """Layers of at least 16 outputs, from 32 rows on, run BLAS's plain form on a transposed copy of ``W``
    (``_kernels._forward_rows``), in blocks of ``SMALL_BLOCK_MACS // max(n_in * n_out)`` rows (a remainder block
    included); narrower layers keep the flagged form, and 31 rows none of the copies: all give the reference's
    outputs and labels."""
    dims, acts = [20, 40, 17, 3, 12], ["relu", "tanh", "sigmoid", "softmax"]
    net = make_net(dims, acts, dtype)
    X, _ = make_data(dims, "ce", rows, dtype)
    AL, caches = R.L_model_forward(X.T, as_columns(net), acts)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(E, "SMALL_BLOCK_MACS", macs)
        patch.setattr(E, "_ROWS_PER_BLOCK_MIN", 1)
        assert E._rows_per_block(dims, rows) == min(rows, macs // (40 * 20))
        out = E.forward_rows(net, X, blas_min_flops=0)
        labels, finite = E.predict_rows(net, X, argmax=True, blas_min_flops=0)
    assert out.dtype == np.dtype(dtype) and out.shape == (rows, dims[-1])
    assert_allclose(out, AL.T, **tol(dtype))
    assert finite
    assert_array_equal(labels, out.argmax(axis=1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", list(PATHS))
def test_argmax_rows_breaks_ties_as_argmax_of_the_probabilities(path, dtype):
    """Logits equal, or one unit of rounding apart, or NaN: the label is that of ``argmax`` of the probabilities
    ``forward_rows`` returns (the first of equal ones; the first NaN), never just the largest logit."""
    dims, acts = [3, 5, 4], ["tanh", "softmax"]
    net = make_net(dims, acts, dtype)
    X, _ = make_data(dims, "ce", 30, dtype)
    W, b = net.coefs[1], net.intercepts[1]
    W[:, 2] = W[:, 1]  # outputs 1 and 2 always tie
    b[2] = b[1]
    labels = E.argmax_rows(net, X, blas_min_flops=PATHS[path])
    probs = E.forward_rows(net, X, blas_min_flops=PATHS[path])
    assert_array_equal(labels, probs.argmax(axis=1))
    assert not np.any(labels == 2)  # the tie goes to the first
    b[2] = np.nextafter(b[1], dtype(np.inf))  # output 2 larger than output 1 by a unit of rounding
    assert_array_equal(E.argmax_rows(net, X, blas_min_flops=PATHS[path]),
                       E.forward_rows(net, X, blas_min_flops=PATHS[path]).argmax(axis=1))
    b[3] = np.nan  # every row's probabilities are NaN: numpy's argmax gives the first NaN, index 0
    labels = E.argmax_rows(net, X, blas_min_flops=PATHS[path])
    assert_array_equal(labels, E.forward_rows(net, X, blas_min_flops=PATHS[path]).argmax(axis=1))
    assert_array_equal(labels, 0)


def test_argmax_rows_needs_a_softmax_output():
    net = make_net([2, 3], ["sigmoid"], np.float64)
    with pytest.raises(ValueError, match="softmax"):
        E.argmax_rows(net, np.zeros((4, 2)))


@given(problem=problems())
def test_cost_rows_matches_reference(problem):
    dims, acts, loss, slope, dtype, net, X, Y = problem
    cost = cost_rows(net, X, Y, loss)
    assert isinstance(cost, float)
    if loss in REFERENCE_LOSSES:
        AL, caches = R.L_model_forward(X.T, as_columns(net), acts, leaky_slope=slope)
        want = R.compute_cost(AL, Y.T, "mse") if loss == "mse" else R.compute_cost_from_logits(caches[-1][1], Y.T,
                                                                                              loss)
    else:
        Z = X
        for l in range(len(acts)):
            Z = activation(Z @ net.coefs[l] + net.intercepts[l], acts[l], slope)
        want = np.mean((Z - Y) ** 2) / 2
    assert_allclose(cost, want, **tol(dtype))
    # the cost of training's first batch is this cost, for a full batch
    before = net.copy()
    first = train_rows(before, X, Y, loss, learning_rate=1e-3).mean_batch_cost[0]
    assert_allclose(first, cost, **tol(dtype))


def test_cost_by_hand():
    """5 samples (columns), 3 outputs, every logit 0 -> bce = 3 log 2; then mse of sigmoid outputs against 0."""
    net = E.Network([2, 3], ["sigmoid"])
    X, Y = np.zeros((2, 5)), np.zeros((3, 5))
    assert_allclose(E.cost(net, X, Y, "bce"), 3 * np.log(2), rtol=1e-12)
    net.intercepts[0][:] = [1.0, 2.0, 3.0]
    assert_allclose(E.cost(net, X, Y, "mse"), np.sum(R.sigmoid(np.array([1.0, 2.0, 3.0])) ** 2), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_returns_c_contiguous_columns(dtype):
    dims, acts = [3, 5, 2], ["relu", "softmax"]
    X, _ = make_data(dims, "ce", 10, dtype)
    out = E.forward(make_net(dims, acts, dtype), cols(X))
    assert out.shape == (2, 10) and out.flags.c_contiguous and out.dtype == np.dtype(dtype)


@pytest.mark.parametrize("layout", ["fortran", "strided"])
def test_non_contiguous_arrays_give_the_same_results(layout):
    dims, acts = [3, 4, 1], ["tanh", "sigmoid"]
    X, Y = make_data(dims, "bce", 9, np.float64)
    X, Y = cols(X), cols(Y)
    if layout == "fortran":
        Xo, Yo = np.asfortranarray(X), np.asfortranarray(Y)
    else:
        Xo, Yo = np.repeat(X, 2, axis=1)[:, ::2], np.repeat(Y, 3, axis=1)[:, ::3]
    assert not Xo.flags.c_contiguous
    a, b = make_net(dims, acts, np.float64), make_net(dims, acts, np.float64)
    E.train_epochs(a, X, Y, "bce", learning_rate=0.3, epochs=2, batch_size=4)
    E.train_epochs(b, Xo, Yo, "bce", learning_rate=0.3, epochs=2, batch_size=4)
    assert_array_equal(a.params, b.params)
    assert_array_equal(E.forward(a, Xo), E.forward(a, X))


# ----------------------------------------------------------------------------------------------------
# optimisers, alpha and half_mse against the NumPy reference
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("alpha", [0.0, 0.05])
@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("loss, out", [("bce", "sigmoid"), ("ce", "softmax"), ("half_mse", "linear"),
                                       ("half_mse", "tanh"), ("mse", "sigmoid")])
def test_optimizers_match_numpy_reference(loss, out, kind, alpha, path):
    dims, acts = [4, 6, 5, 3], ["relu", "tanh", out]
    net = make_net(dims, acts, np.float64)
    X, Y = make_data(dims, loss, 11, np.float64)
    order = np.stack([np.random.RandomState(e).permutation(11) for e in range(3)])
    opt = E.Optimizer(net, kind, momentum=0.8, beta_1=0.85, beta_2=0.99, epsilon=1e-7)
    coefs, intercepts, costs, weighted, state = np_train(
        net.coefs, net.intercepts, acts, X, Y, loss, learning_rate=0.05, epochs=3, batch_size=4, alpha=alpha,
        kind=kind, momentum=0.8, beta_1=0.85, beta_2=0.99, epsilon=1e-7, order=order)
    result = train_rows(net, X, Y, loss, learning_rate=0.05, epochs=3, batch_size=4, alpha=alpha,
                            optimizer=opt, order=order, blas_min_flops=PATHS[path])
    assert_net_close(net, coefs, intercepts)
    assert_allclose(result.mean_batch_cost, costs, **tol(np.float64))
    assert_allclose(result.sample_weighted_cost, weighted, **tol(np.float64))
    if kind == "adam":
        assert opt.t == state["t"] == 3 * 3
    # the run is not trivially equal to plain SGD without the penalty
    if kind != "sgd" or alpha:
        plain = make_net(dims, acts, np.float64)
        train_rows(plain, X, Y, loss, learning_rate=0.05, epochs=3, batch_size=4, order=order)
        assert not np.allclose(plain.params, net.params, rtol=1e-6, atol=0)


#: float32: every optimiser and every loss once, each optimiser with the loss it has in test_tiny_kernel's float32
#: cases (test_optimizers_match_numpy_reference has every pair in float64): the float32 kernels are the same code,
#: and each pair costs a compilation of two kernels (about 12 CPU-s)
FLOAT32_CASES = [("bce", "sigmoid", "nesterov", 0.1), ("ce", "softmax", "momentum", 0.0),
                 ("half_mse", "linear", "sgd", 0.1), ("mse", "linear", "adam", 0.1)]
FLOAT32_KIND = {loss: kind for loss, _, kind, _ in FLOAT32_CASES}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("loss, out, kind, alpha", FLOAT32_CASES)
def test_optimizers_float32(loss, out, kind, alpha, path):
    dims, acts = [3, 5, 3], ["leaky_relu", out]
    net = make_net(dims, acts, np.float32, 0.1)
    X, Y = make_data(dims, loss, 9, np.float32)
    opt = E.Optimizer(net, kind)
    coefs, intercepts, costs, weighted, _ = np_train(net.coefs, net.intercepts, acts, X, Y, loss, learning_rate=0.01,
                                                     epochs=2, batch_size=4, alpha=alpha, kind=kind, slope=0.1)
    result = train_rows(net, X, Y, loss, learning_rate=0.01, epochs=2, batch_size=4, alpha=alpha, optimizer=opt,
                            blas_min_flops=PATHS[path])
    assert net.params.dtype == np.float32
    assert opt.state_1.dtype == np.float32
    assert_net_close(net, coefs, intercepts)
    assert_allclose(result.mean_batch_cost, costs, **tol(np.float32))
    assert_allclose(result.sample_weighted_cost, weighted, **tol(np.float32))


@given(problem=problems(), data=st.data(), kind=st.sampled_from(["sgd", "momentum", "nesterov", "adam"]),
       alpha=st.sampled_from([0.0, 0.01, 1.0]), path=st.sampled_from(list(PATHS)))
def test_any_problem_matches_numpy_reference(problem, data, kind, alpha, path):
    dims, acts, loss, slope, dtype, net, X, Y = problem
    if dtype == np.float32:
        # the float32 kernels of FLOAT32_CASES (each other pair would compile two more), but not Adam: it divides
        # by sqrt(v), and a gradient that cancels to float32 rounding noise gives a step of order lr (plain SGD,
        # whose float32 kernels test_cost_rows_matches_reference compiles, instead)
        kind = FLOAT32_KIND[loss] if FLOAT32_KIND[loss] != "adam" else "sgd"
        net = make_net(dims, acts, dtype, slope)
        X, Y = X.astype(dtype), Y.astype(dtype)
    batch_size = data.draw(batch_sizes(X.shape[0]))
    opt = E.Optimizer(net, kind)
    coefs, intercepts, costs, weighted, _ = np_train(net.coefs, net.intercepts, acts, X, Y, loss, learning_rate=0.02,
                                                     epochs=2, batch_size=batch_size, alpha=alpha, kind=kind,
                                                     slope=slope)
    result = train_rows(net, X, Y, loss, learning_rate=0.02, epochs=2, batch_size=batch_size, alpha=alpha,
                            optimizer=opt, blas_min_flops=PATHS[path])
    assert_net_close(net, coefs, intercepts, **train_tol(dtype))
    assert_allclose(result.mean_batch_cost, costs, **train_tol(dtype))
    assert_allclose(result.sample_weighted_cost, weighted, **train_tol(dtype))


WIDE = [
    ([64, 200, 96, 1], ["relu", "tanh", "sigmoid"], "bce"),
    ([100, 128, 10], ["leaky_relu", "softmax"], "ce"),
    ([72, 160, 3], ["sigmoid", "linear"], "half_mse"),
]


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("kind, alpha", [("sgd", 0.0), ("sgd", 0.01), ("momentum", 0.01), ("nesterov", 0.0),
                                         ("adam", 0.01)])
@pytest.mark.parametrize("dims, acts, loss", WIDE)
def test_wide_layers_match_numpy_reference(dims, acts, loss, kind, alpha, path):
    net = make_net(dims, acts, np.float64, 0.2)
    X, Y = make_data(dims, loss, 150, np.float64)  # batches of 64, 64 and 22
    order = np.stack([np.random.RandomState(5).permutation(150)])
    coefs, intercepts, costs, weighted, _ = np_train(net.coefs, net.intercepts, acts, X, Y, loss, learning_rate=0.01,
                                                     batch_size=64, alpha=alpha, kind=kind, slope=0.2, order=order)
    result = train_rows(net, X, Y, loss, learning_rate=0.01, batch_size=64, alpha=alpha,
                            optimizer=E.Optimizer(net, kind), order=order, blas_min_flops=PATHS[path])
    assert_net_close(net, coefs, intercepts, rtol=1e-10, atol=1e-11)
    assert_allclose(result.mean_batch_cost, costs, **tol(np.float64))
    assert_allclose(result.sample_weighted_cost, weighted, **tol(np.float64))


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("dims, acts, loss", WIDE[:2])
def test_wide_layers_float32_blas_equals_loops(dims, acts, loss, kind):
    nets = {p: make_net(dims, acts, np.float32, 0.2) for p in PATHS}
    X, Y = make_data(dims, loss, 100, np.float32)
    for path, net in nets.items():
        train_rows(net, X, Y, loss, learning_rate=0.01, epochs=2, batch_size=64,
                       optimizer=E.Optimizer(net, kind), blas_min_flops=PATHS[path])
        assert net.params.dtype == np.float32
    coefs, intercepts, _, _, _ = np_train(make_net(dims, acts, np.float64, 0.2).coefs,
                                          make_net(dims, acts, np.float64, 0.2).intercepts, acts,
                                          X.astype(np.float64), Y.astype(np.float64), loss, learning_rate=0.01,
                                          epochs=2, batch_size=64, kind=kind, slope=0.2)
    for net in nets.values():
        assert_net_close(net, coefs, intercepts, rtol=1e-4, atol=1e-4 if kind == "adam" else 1e-5)
    assert_allclose(nets["blas"].params, nets["loops"].params, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# order, costs, rates, state
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("path", list(PATHS))
def test_order_equals_training_on_the_permuted_data(path, kind, dtype):
    dims, acts = [3, 4, 2], ["tanh", "sigmoid"]
    X, Y = make_data(dims, "bce", 10, dtype)
    X0, Y0 = X.copy(), Y.copy()
    rng = np.random.RandomState(0)
    order = np.stack([rng.permutation(10) for _ in range(3)])
    a = make_net(dims, acts, dtype)
    b = make_net(dims, acts, dtype)
    opt_a, opt_b = E.Optimizer(a, kind), E.Optimizer(b, kind)
    res = train_rows(a, X, Y, "bce", learning_rate=0.1, epochs=3, batch_size=4, optimizer=opt_a, order=order,
                         blas_min_flops=PATHS[path])
    costs = []
    for e in range(3):
        r = train_rows(b, np.ascontiguousarray(X[order[e]]), np.ascontiguousarray(Y[order[e]]), "bce",
                           learning_rate=0.1, batch_size=4, optimizer=opt_b, blas_min_flops=PATHS[path])
        costs.append(r.mean_batch_cost[0])
    assert_allclose(a.params, b.params, rtol=1e-12 if dtype == np.float64 else 1e-6, atol=0)
    assert_allclose(res.mean_batch_cost, costs, rtol=1e-12 if dtype == np.float64 else 1e-6)
    assert_array_equal(X, X0)
    assert_array_equal(Y, Y0)
    # the order matters: the natural order gives other parameters
    c = make_net(dims, acts, dtype)
    train_rows(c, X, Y, "bce", learning_rate=0.1, epochs=3, batch_size=4, optimizer=E.Optimizer(c, kind))
    assert not np.allclose(c.params, a.params, rtol=1e-4, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shuffled_training_reads_samples_as_rows_whatever_the_layout_given(dtype):
    # with an order the kernel gathers whole samples from (m, n) rows: the transpose of a C-contiguous rows
    # array is used as it is, a C-contiguous columns array is transposed first; both give the same numbers
    dims, acts = [5, 4, 3], ["relu", "softmax"]
    X, Y = make_data(dims, "ce", 13, dtype)
    X0, Y0 = X.copy(), Y.copy()
    order = np.stack([np.random.RandomState(e).permutation(13) for e in range(2)])
    a, b = make_net(dims, acts, dtype), make_net(dims, acts, dtype)
    res_a = E.train_epochs(a, cols(X), cols(Y), "ce", learning_rate=0.1, epochs=2, batch_size=4,
                           optimizer=E.Optimizer(a, "adam"), order=order)
    res_b = E.train_epochs(b, X.T, Y.T, "ce", learning_rate=0.1, epochs=2, batch_size=4,
                           optimizer=E.Optimizer(b, "adam"), order=order)
    assert_array_equal(a.params, b.params)
    assert_array_equal(res_a.mean_batch_cost, res_b.mean_batch_cost)
    assert_array_equal(X, X0)
    assert_array_equal(Y, Y0)


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_sample_weighted_cost_is_the_batch_costs_weighted_by_batch_size(alpha):
    dims, acts = [2, 3, 1], ["relu", "sigmoid"]
    net = make_net(dims, acts, np.float64)
    X, Y = make_data(dims, "bce", 10, np.float64)
    probe = net.copy()
    batch_costs = []
    for start in (0, 4, 8):  # batches of 4, 4 and 2, costs taken before each step
        xb, yb = X[start:start + 4], Y[start:start + 4]
        penalty = 0.5 * alpha * sum(float(np.sum(c * c)) for c in probe.coefs) / xb.shape[0]
        Z = forward_rows(probe, np.ascontiguousarray(xb), logits=True)
        batch_costs.append(loss_and_delta(Z, R.sigmoid(Z), yb, "sigmoid", "bce", 0.01)[0] + penalty)
        train_rows(probe, np.ascontiguousarray(xb), np.ascontiguousarray(yb), "bce", learning_rate=0.5,
                       alpha=alpha)
    result = train_rows(net, X, Y, "bce", learning_rate=0.5, batch_size=4, alpha=alpha)
    assert_allclose(net.params, probe.params, rtol=1e-12)
    assert_allclose(result.mean_batch_cost, [np.mean(batch_costs)], rtol=1e-12)
    assert_allclose(result.sample_weighted_cost, [(4 * batch_costs[0] + 4 * batch_costs[1] + 2 * batch_costs[2]) / 10],
                    rtol=1e-12)
    assert not np.isclose(result.mean_batch_cost[0], result.sample_weighted_cost[0], rtol=1e-6)
    # with equal batches the two agree
    even = make_net(dims, acts, np.float64)
    r = train_rows(even, X, Y, "bce", learning_rate=0.5, batch_size=5, alpha=alpha, epochs=2)
    assert_allclose(r.mean_batch_cost, r.sample_weighted_cost, rtol=1e-12)


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_per_epoch_learning_rates_equal_separate_calls(kind):
    dims, acts = [3, 4, 1], ["relu", "linear"]
    X, Y = make_data(dims, "mse", 8, np.float64)
    rates = np.array([0.1, 0.02, 0.05])
    a, b = make_net(dims, acts, np.float64), make_net(dims, acts, np.float64)
    opt_a, opt_b = E.Optimizer(a, kind), E.Optimizer(b, kind)
    res = train_rows(a, X, Y, "mse", learning_rate=rates, epochs=3, batch_size=3, optimizer=opt_a)
    costs = [train_rows(b, X, Y, "mse", learning_rate=r, batch_size=3, optimizer=opt_b).mean_batch_cost[0]
             for r in rates]
    assert_allclose(a.params, b.params, rtol=1e-13)
    assert_allclose(res.mean_batch_cost, costs, rtol=1e-13)
    coefs, intercepts, want, _, _ = np_train(make_net(dims, acts, np.float64).coefs,
                                             make_net(dims, acts, np.float64).intercepts, acts, X, Y, "mse",
                                             learning_rate=rates, epochs=3, batch_size=3, kind=kind)
    assert_net_close(a, coefs, intercepts)
    assert_allclose(res.mean_batch_cost, want, **tol(np.float64))


@pytest.mark.parametrize("kind", ["momentum", "nesterov", "adam"])
def test_optimizer_state_carries_across_calls_and_reset_clears_it(kind):
    dims, acts = [3, 4, 2], ["tanh", "softmax"]
    X, Y = make_data(dims, "ce", 9, np.float64)
    a, b = make_net(dims, acts, np.float64), make_net(dims, acts, np.float64)
    opt_a, opt_b = E.Optimizer(a, kind), E.Optimizer(b, kind)
    train_rows(a, X, Y, "ce", learning_rate=0.05, epochs=2, batch_size=4, optimizer=opt_a)
    train_rows(a, X, Y, "ce", learning_rate=0.05, epochs=2, batch_size=4, optimizer=opt_a)
    train_rows(b, X, Y, "ce", learning_rate=0.05, epochs=4, batch_size=4, optimizer=opt_b)
    assert_allclose(a.params, b.params, rtol=1e-13)
    assert_allclose(opt_a.state_1, opt_b.state_1, rtol=1e-13)
    if kind == "adam":
        assert opt_a.t == opt_b.t == 4 * 3
    assert np.any(opt_a.state_1 != 0)
    opt_a.reset()
    assert opt_a.t == 0 and not np.any(opt_a.state_1) and not np.any(opt_a.state_2)
    # after a reset the optimiser behaves like a new one
    c = a.copy()
    train_rows(a, X, Y, "ce", learning_rate=0.05, batch_size=4, optimizer=opt_a)
    train_rows(c, X, Y, "ce", learning_rate=0.05, batch_size=4, optimizer=E.Optimizer(c, kind))
    assert_array_equal(a.params, c.params)


# ----------------------------------------------------------------------------------------------------
# saturation and divergence
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("loss, out", [("bce", "sigmoid"), ("ce", "softmax"), ("half_mse", "sigmoid")])
def test_saturated_logits_give_finite_costs_and_steps(loss, out, path, dtype):
    dims, acts = [3, 4, 3], ["tanh", out]
    net = make_net(dims, acts, dtype)
    net.coefs[0][:] *= 1e4
    net.coefs[1][:] = np.sign(net.coefs[1]) * 2.5e3  # |logits| up to 1e4
    X, Y = make_data(dims, loss, 8, dtype)
    logits = forward_rows(net, X, logits=True, blas_min_flops=PATHS[path])
    assert np.max(np.abs(logits)) > 1e3
    Y = (logits < 0).astype(dtype) if loss != "ce" else np.eye(3, dtype=dtype)[np.argmin(logits, axis=1)]
    assert np.all(np.isfinite(forward_rows(net, X, blas_min_flops=PATHS[path])))
    cost = cost_rows(net, X, Y, loss)
    assert np.isfinite(cost) and cost > (1000 if loss != "half_mse" else 0.1)
    for kind in ("sgd", "adam"):
        trained = net.copy()
        res = train_rows(trained, X, Y, loss, learning_rate=0.01, batch_size=3, alpha=0.01,
                         optimizer=E.Optimizer(trained, kind), blas_min_flops=PATHS[path])
        assert np.all(np.isfinite(res.mean_batch_cost)) and np.all(np.isfinite(trained.params))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", list(PATHS))
def test_divergence_raises_and_restores_the_start_of_the_failing_epoch(path, dtype):
    dims, acts = [3, 4, 1], ["linear", "linear"]
    X, Y = make_data(dims, "mse", 8, dtype)
    net = make_net(dims, acts, dtype)
    start = net.params.copy()
    with pytest.raises(FloatingPointError, match=r"epoch (\d+)") as info:
        train_rows(net, X, Y, "mse", learning_rate=0.5, epochs=500, batch_size=3, epoch_offset=10,
                       blas_min_flops=PATHS[path])
    done = len(info.value.completed.mean_batch_cost)
    assert len(info.value.completed.sample_weighted_cost) == done
    assert f"epoch {10 + done + 1}" in str(info.value)
    assert np.all(np.isfinite(net.params))
    assert np.all(np.isfinite(info.value.completed.mean_batch_cost))
    again = make_net(dims, acts, dtype)
    assert_array_equal(again.params, start)
    if done:
        res = train_rows(again, X, Y, "mse", learning_rate=0.5, epochs=done, batch_size=3,
                             blas_min_flops=PATHS[path])
        assert_array_equal(res.mean_batch_cost, info.value.completed.mean_batch_cost)
    assert_array_equal(again.params, net.params)


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("path", [*PATHS, "general"])
def test_divergence_restores_the_optimiser_state_of_the_last_finite_epoch(path, kind):
    """Epoch 3's rate makes the weights overflow in its one minibatch, while its own cost is finite (the cost is
    that of the weights before the step): the kernel finds that epoch only when it scans the weights, and must
    then replay the call from its start. Parameters, optimiser state and step count end as after two epochs,
    bit for bit, whether the epoch is the call's last (found by the final scan) or not (found by a replay).
    Adam's step is bounded by the rate: its weights stay finite in epoch 3 (about 1e300), but their outputs
    overflow: the output check after the call finds epoch 3 when it is the last, and when it is not, the cost
    of epoch 4 fails and the check of the epoch before steps back once more.
    ``general`` is the sample-weighted kernel (sparse input, ``sample_weight``), which checks every epoch."""

    def train(n, rate, epochs, o):
        if path == "general":
            return E.train_epochs_general(n, cols(X), cols(Y), "half_mse", learning_rate=rate, epochs=epochs,
                                          optimizer=o, sample_weight=np.ones(len(X)))
        return train_rows(n, X, Y, "half_mse", learning_rate=rate, epochs=epochs, optimizer=o,
                          blas_min_flops=PATHS[path])

    dtype = np.float64
    dims, acts = [3, 4, 1], ["relu", "linear"]
    X, Y = make_data(dims, "half_mse", 8, dtype)
    if kind != "adam":
        X = X * 1e90
    rates = np.array([1e-200, 1e-200, 1e300, 1e-200, 1e-200])
    done = 2
    for epochs in (done + 1, 5):
        net = make_net(dims, acts, dtype)
        opt = E.Optimizer(net, kind)
        with pytest.raises(FloatingPointError, match=f"epoch {done + 1}") as info:
            train(net, rates[:epochs], epochs, opt)
        assert len(info.value.completed.sample_weighted_cost) == done
        again = make_net(dims, acts, dtype)
        opt_again = E.Optimizer(again, kind)
        res = train(again, rates[:done], done, opt_again)
        assert_array_equal(res.sample_weighted_cost, info.value.completed.sample_weighted_cost)
        assert_array_equal(net.params, again.params)
        assert_array_equal(opt.state_1, opt_again.state_1)
        assert_array_equal(opt.state_2, opt_again.state_2)
        assert opt.t == opt_again.t
        # the model trains on from there as if nothing had happened
        outcomes = []
        for n, o in ((net, opt), (again, opt_again)):
            try:
                outcomes.append(train(n, 1e-200, 2, o).sample_weighted_cost)
            except FloatingPointError as exc:
                outcomes.append(str(exc))
        assert not isinstance(outcomes[0], str)
        assert_array_equal(outcomes[0], outcomes[1])
        assert_array_equal(net.params, again.params)


# ----------------------------------------------------------------------------------------------------
# the network and the engine's own checks
# ----------------------------------------------------------------------------------------------------


def test_network_parameter_views():
    net = E.Network([3, 4, 2], ["relu", "sigmoid"], "float32")
    assert net.params.dtype == np.float32 and net.params.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    assert [c.shape for c in net.coefs] == [(3, 4), (4, 2)]
    assert [b.shape for b in net.intercepts] == [(4,), (2,)]
    net.coefs[1][:] = 7
    net.intercepts[0][:] = -1
    assert_array_equal(net.params[16:24], 7)
    assert_array_equal(net.params[12:16], -1)
    other = net.copy()
    other.params[:] = 0
    assert_array_equal(net.params[16:24], 7)
    assert net.n_layers == 2


@given(st.lists(st.integers(1, 300), min_size=2, max_size=6), st.integers(1, 1000))
def test_layout_offsets_in_python_equal_the_kernels(sizes, cols):
    """The engine computes the workspace offsets with NumPy (no compilation in the first fit); compiled code
    computes them again inside some kernels: both must describe one layout."""
    from fastmlp import _kernels as K

    dims = np.asarray(sizes, dtype=np.int64)
    assert_array_equal(E.param_offsets(sizes), K._param_offsets(dims))
    assert_array_equal(E.act_offsets(sizes, cols), K._act_offsets(dims, cols))
    assert E.param_offsets(sizes).dtype == np.int64 and E.act_offsets(sizes, cols).dtype == np.int64


def test_course_parameter_conversions_round_trip():
    net = E.Network([3, 4, 2], ["relu", "sigmoid"])
    assert net.offsets.tolist() == [0, 16, 26]
    rng = np.random.RandomState(0)
    Ws, bs = [rng.randn(4, 3), rng.randn(2, 4)], [rng.randn(4, 1), rng.randn(2)]
    net.set_course_parameters(Ws, bs)
    assert_array_equal(net.params, np.concatenate([Ws[0].ravel(), bs[0].ravel(), Ws[1].ravel(), bs[1]]))
    params = net.course_parameters()
    assert list(params) == ["W1", "b1", "W2", "b2"] and params["b2"].shape == (2, 1)
    assert_array_equal(params["W2"], Ws[1])
    params["W1"][:] = 0  # copies
    assert net.params[0] == Ws[0][0, 0]
    views = net.course_parameters(copy=False)
    views["b1"][:] = 5
    assert_array_equal(net.intercepts[0], 5)
    other = E.Network([3, 4, 2], ["relu", "sigmoid"])
    other.set_coefs(net.coefs, net.intercepts)
    assert_array_equal(other.params, net.params)
    Wg, bg = E.course_views(np.arange(26.0), net.offsets, net.layer_sizes)
    assert_array_equal(Wg[1], np.arange(16.0, 24.0).reshape(2, 4))
    assert_array_equal(bg[0].ravel(), np.arange(12.0, 16.0))


def _engine_case(name):
    net = E.Network([3, 4, 2], ["relu", "sigmoid"], "float64")
    X = np.zeros((3, 5))  # samples are columns
    Y = np.zeros((2, 5))
    cases = {
        "X float32": lambda: E.train_epochs(net, X.astype(np.float32), Y, "bce", learning_rate=0.1),
        "X width": lambda: E.train_epochs(net, np.zeros((4, 5)), Y, "bce", learning_rate=0.1),
        "X 1-d": lambda: E.train_epochs(net, np.zeros(15), Y, "bce", learning_rate=0.1),
        "Y width": lambda: E.train_epochs(net, X, np.zeros((1, 5)), "bce", learning_rate=0.1),
        "Y samples": lambda: E.train_epochs(net, X, np.zeros((2, 4)), "bce", learning_rate=0.1),
        "Y list": lambda: E.train_epochs(net, X, Y.tolist(), "bce", learning_rate=0.1),
        "unknown loss": lambda: E.train_epochs(net, X, Y, "hinge", learning_rate=0.1),
        "batch size 0": lambda: E.train_epochs(net, X, Y, "bce", learning_rate=0.1, batch_size=0),
        "epochs 0": lambda: E.train_epochs(net, X, Y, "bce", learning_rate=0.1, epochs=0),
        "order shape": lambda: E.train_epochs(net, X, Y, "bce", learning_rate=0.1, epochs=2,
                                              order=np.arange(5)[None]),
        "order range": lambda: E.train_epochs(net, X, Y, "bce", learning_rate=0.1, order=np.array([[0, 1, 2, 3, 5]])),
        "order negative": lambda: E.train_epochs(net, X, Y, "bce", learning_rate=0.1,
                                                 order=np.array([[0, 1, 2, 3, -1]])),
        "forward dtype": lambda: E.forward(net, X.astype(np.float32)),
        "forward width": lambda: E.forward(net, np.zeros((2, 5))),
        "cost Y width": lambda: E.cost(net, X, np.zeros((3, 5)), "bce"),
        "rows X": lambda: E.train_epochs(net, X.T, Y, "bce", learning_rate=0.1),
        "backward buffers": lambda: E.backward(net, X, Y, "bce", np.zeros(3), np.zeros(3)),
        "unknown optimizer": lambda: E.Optimizer(net, "rmsprop"),
        "unknown activation": lambda: E.Network([3, 4, 2], ["relu", "gelu"]),
        "softmax hidden": lambda: E.Network([3, 4, 2], ["softmax", "sigmoid"]),
        "activation count": lambda: E.Network([3, 4, 2], ["relu"]),
        "layer sizes": lambda: E.Network([3], []),
        "zero width": lambda: E.Network([3, 0, 2], ["relu", "sigmoid"]),
        "bad dtype": lambda: E.Network([3, 2], ["sigmoid"], "int64"),
    }
    return net, cases[name]


ENGINE_CASES = [
    "X float32", "X width", "X 1-d", "Y width", "Y samples", "Y list", "unknown loss", "batch size 0", "epochs 0",
    "order shape", "order range", "order negative", "forward dtype", "forward width", "cost Y width",
    "rows X", "backward buffers", "unknown optimizer", "unknown activation", "softmax hidden", "activation count",
    "layer sizes", "zero width", "bad dtype",
]


@pytest.mark.parametrize("name", ENGINE_CASES)
def test_engine_rejects_what_the_kernels_cannot_take(name):
    net, call = _engine_case(name)
    before = net.params.copy()
    with pytest.raises(ValueError):
        call()
    assert_array_equal(net.params, before)
