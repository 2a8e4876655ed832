"""No inf or NaN from finite input after a fit: the outputs of the final parameters are checked.

The kernels check each minibatch's cost (computed before its update) and the parameters, so the last update
of a call was never run forward: its parameters could be finite while their outputs overflowed (the crash
fuzz's case: float32, ``X`` of scale 100, batch 1, a linear output). Every training path now bounds the
outputs of its new parameters (``fastmlp._bounds.bounded``), runs a real forward pass when the bound is not
far below overflow, and treats non-finite outputs or cost as a divergence of the last epoch: the same
``FloatingPointError``, the parameters and optimiser state back at that epoch's start.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from fastmlp import MLP, MLPClassifier, architecture, course, functional
from fastmlp import _bounds as B
from fastmlp import _engine as E


def fuzz_case():
    """``scripts/fuzz.py --seed 13000``'s case 13001, which failed in both OpenBLAS settings."""
    rng = np.random.RandomState(2136091617)
    X = (rng.randn(30, 4) * 100.0).astype(np.float32)
    Y = rng.randn(2, 4).astype(np.float32)
    return X, Y


def test_the_fuzz_case_raises_and_keeps_the_last_finite_parameters():
    """(With NumPy set to raise on overflow and warnings made errors: the check itself warns of nothing.)"""
    X, Y = fuzz_case()
    model = MLP([30, 8, 2], loss="mse", activations=["relu", "linear"], dtype="float32", seed=617)
    start = {k: v.copy() for k, v in model.get_parameters().items()}
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        with pytest.raises(FloatingPointError, match="diverged in epoch 1: .*left at the end of epoch 0") as info:
            model.fit(X, Y, epochs=1, learning_rate=1e-4, batch_size=1, shuffle=False, seed=1)
    assert len(info.value.completed.mean_batch_cost) == 0
    for key, value in model.get_parameters().items():
        assert_array_equal(value, start[key])
    assert model.history == []
    assert np.all(np.isfinite(model.forward(X)))


def overflowing_problem(m=8, scale=1e200):
    """float64 data of scale 1e200: the first minibatch's cost is finite, the update makes the weights about
    1e200 (finite) and the outputs of the next forward pass overflow."""
    rng = np.random.RandomState(0)
    X = rng.randn(3, m) * scale
    Y = (rng.rand(1, m) > 0.5).astype(np.float64)
    return X, Y


@pytest.mark.parametrize("kernel, flops", [("tiny", None), ("general", 10**18), ("general", 0)])
@pytest.mark.parametrize("epochs", [1, 3])
def test_engine_rolls_back_the_last_epoch_when_its_outputs_overflow(kernel, flops, epochs):
    """The last epoch of a call goes back to its start, whatever the kernel: bit for bit the parameters and
    optimiser state of a run of one epoch fewer."""
    X, Y = overflowing_problem()
    rates = np.array([1e-300] * (epochs - 1) + [1.0])  # only the last epoch moves the weights far
    net = E.Network([3, 4, 1], ["relu", "sigmoid"], np.float64)
    net.params[:] = np.random.RandomState(1).randn(net.params.size) * 0.1
    again = net.copy()
    opt, opt_again = E.Optimizer(net, "momentum"), E.Optimizer(again, "momentum")
    with pytest.raises(FloatingPointError, match=f"diverged in epoch {epochs}") as info:
        E.train_epochs(net, X, Y, "bce", learning_rate=rates, epochs=epochs, batch_size=8, optimizer=opt,
                       blas_min_flops=flops, kernel=kernel)
    assert len(info.value.completed.mean_batch_cost) == epochs - 1
    if epochs > 1:
        res = E.train_epochs(again, X, Y, "bce", learning_rate=rates[:-1], epochs=epochs - 1, batch_size=8,
                             optimizer=opt_again, blas_min_flops=flops, kernel=kernel)
        assert_array_equal(res.mean_batch_cost, info.value.completed.mean_batch_cost)
    assert_array_equal(net.params, again.params)
    assert_array_equal(opt.state_1, opt_again.state_1)
    assert np.all(np.isfinite(E.forward(net, X)))


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_sample_weighted_kernel_rolls_back_the_last_epoch(kind):
    """(Adam's steps are about the rate whatever the gradient, whose square must not overflow: smaller data.)"""
    X, Y = overflowing_problem(scale=1e200 if kind == "sgd" else 1e100)
    rates = np.array([1e-300, 1e-300, 1.0 if kind == "sgd" else 1e200])
    net = E.Network([3, 4, 1], ["relu", "sigmoid"], np.float64)
    net.params[:] = np.random.RandomState(1).randn(net.params.size) * 0.1
    again = net.copy()
    opt, opt_again = E.Optimizer(net, kind), E.Optimizer(again, kind)
    with pytest.raises(FloatingPointError, match="diverged in epoch 3"):
        E.train_epochs_general(net, X, Y, "bce", learning_rate=rates, epochs=3, optimizer=opt,
                               sample_weight=np.ones(8))
    E.train_epochs_general(again, X, Y, "bce", learning_rate=rates[:2], epochs=2, optimizer=opt_again,
                           sample_weight=np.ones(8))
    assert_array_equal(net.params, again.params)
    assert_array_equal(opt.state_2, opt_again.state_2)
    assert opt.t == opt_again.t


def test_outputs_that_only_look_large_are_checked_by_a_real_forward_pass():
    """Weights of -1e303 into a relu layer: the bound is not below overflow, the outputs are 0 + b: training goes
    on (a check on the bound alone would call this a divergence)."""
    X = np.ones((2, 4))
    Y = np.array([[0.0, 1.0, 0.0, 1.0]])
    net = E.Network([2, 3, 1], ["relu", "sigmoid"], np.float64)
    W1, _ = E.course_views(net.params, net.offsets, net.layer_sizes)
    W1[0][:] = -1e303
    assert not E.output_check(net, X, Y, "bce", 0.0, lambda: np.inf)()  # the bound alone does not decide
    res = E.train_epochs(net, X, Y, "bce", learning_rate=0.1, epochs=2)
    assert np.all(np.isfinite(res.mean_batch_cost)) and np.all(np.isfinite(E.forward(net, X)))


def test_a_real_pass_whose_total_cost_would_overflow_is_a_divergence():
    """The real forward pass's mean cost must add up over the samples without overflow, with a margin of 4. A
    float32 half-mse of 5e37 over 4 samples is finite, but the sum of squares that ``score()`` adds up is not
    (found by review: an ``MLPRegressor`` fit returned and its ``score`` on the training data was -inf)."""
    X = np.ones((2, 4), np.float32)
    Y = np.ones((1, 4), np.float32)
    net = E.Network([2, 3, 1], ["relu", "linear"], np.float32)
    W1, _ = E.course_views(net.params, net.offsets, net.layer_sizes)
    W1[0][:] = -3e38  # the bounds do not decide: the real pass does
    assert not E.output_check(net, X, Y, "mse", 0.0, lambda: np.float32(5e37))()
    assert E.output_check(net, X, Y, "mse", 0.0, lambda: np.float32(1.0))()


def test_functional_and_dialect_loops_refuse_overflowing_outputs():
    X, Y = overflowing_problem()
    params = {"W1": np.full((4, 3), 0.01), "b1": np.zeros((4, 1)), "W2": np.full((1, 4), 0.01), "b2": np.zeros((1, 1))}
    start = {k: v.copy() for k, v in params.items()}
    with pytest.raises(FloatingPointError, match="diverged in epoch 1"):
        functional.train(params, X, Y, activations=["relu", "sigmoid"], learning_rate=1.0, epochs=1)
    for key in params:  # the caller's arrays hold the last finite epoch's values: the start
        assert_array_equal(params[key], start[key])
    with pytest.raises(FloatingPointError, match="diverged in epoch 1"):
        course.L_layer_model(X, Y, [3, 4, 1], learning_rate=1.0, num_iterations=1)
    arch = [{"input_dim": 3, "output_dim": 4, "activation": "relu"},
            {"input_dim": 4, "output_dim": 1, "activation": "sigmoid"}]
    with pytest.raises(FloatingPointError, match="diverged in epoch 1"):
        architecture.train(X, Y, arch, epochs=1, learning_rate=1.0)


@pytest.mark.parametrize("how", ["fit", "partial_fit", "sample_weight"])
def test_estimators_keep_the_last_finite_epoch(how):
    """fit, partial_fit and the sample-weighted kernel: scikit-learn's error for non-finite weights, and a model
    whose outputs are finite (those of the start)."""
    X, Y = overflowing_problem(m=16)
    Xr, y = np.ascontiguousarray(X.T), Y[0]
    est = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=0.5, max_iter=1, batch_size=16,
                        momentum=0.0, shuffle=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="diverged in epoch 1"):
            if how == "partial_fit":
                est.partial_fit(Xr, y, classes=[0.0, 1.0])
            else:
                est.fit(Xr, y, sample_weight=np.ones(16) if how == "sample_weight" else None)
    assert np.all(np.isfinite(est.predict_proba(Xr)))


# --- the bound itself ---------------------------------------------------------------------------------------


def real_outputs(net, X):
    with np.errstate(all="ignore"):
        return E.forward(net, X, logits=True)


@given(
    dims=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    hidden=st.sampled_from(["relu", "tanh", "leaky_relu", "linear"]),
    output=st.sampled_from(["linear", "sigmoid"]),
    scale=st.integers(-2, 40),
    x_scale=st.integers(0, 20),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_bounded_answers_true_only_for_finite_outputs_and_costs(dims, hidden, output, scale, x_scale, dtype, seed):
    rng = np.random.RandomState(seed)
    net = E.Network(dims, [hidden] * (len(dims) - 2) + [output], dtype)
    with np.errstate(over="ignore"):
        net.params[:] = (rng.randn(net.params.size) * 10.0 ** (scale * (1 if dtype == np.float32 else 8))).astype(dtype)
    X = (rng.randn(dims[0], 5) * 10.0 ** x_scale).astype(dtype)
    Y = rng.randn(dims[-1], 5).astype(dtype)
    loss = "mse" if output == "linear" else "bce"
    safe = E.output_check(net, X, Y, loss, 0.0, lambda: np.inf)()
    if safe:
        assert np.all(np.isfinite(real_outputs(net, X)))
        with np.errstate(all="ignore"):
            assert np.isfinite(E.cost(net, X, Y, loss))
    if scale <= 0 and x_scale <= 2:  # ordinary networks never need the real forward pass
        assert safe


def test_the_check_reads_every_value_and_every_layer():
    net = E.Network([2, 2, 1], ["relu", "linear"], np.float32)
    net.params[:] = 1.0
    X, Y = np.ones((2, 4), np.float32), np.zeros((1, 4), np.float32)

    def finite():
        return E.output_check(net, X, Y, "mse", 0.0, lambda: np.inf)()

    assert finite()
    for value in (-1e30, np.nan, np.inf):
        X[-1, -1] = value  # the last input value
        assert not finite()
    X[-1, -1] = 1.0
    Y[-1, -1] = -1e30  # the targets, for a squared error
    assert not finite()
    Y[-1, -1] = 0.0
    net.params[-1] = 1e36  # the last bias
    assert not finite()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_largest_magnitude(dtype):
    values = np.random.RandomState(3).randn(3, 1001).astype(dtype) * 1e10
    assert B.largest_magnitude(values) == np.abs(values).max()
    assert B.largest_magnitude(-np.abs(values)) == np.abs(values).max()
    assert B.largest_magnitude(values[:0]) == 0.0
    values[1, 500] = np.nan
    assert np.isnan(B.largest_magnitude(values))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_kernels_finiteness_check_survives_their_fast_math_flags(dtype):
    """Numba computes ``np.isfinite(x)`` as "``x - x`` is ordered", which the kernels' ``reassoc`` and ``nsz``
    let LLVM cancel to 0 once ``x`` is computed in the kernel: ``np.isfinite(nan + 1.0)`` was True in a function
    compiled with these flags. The kernels' own check (``_kernels._finite``) must see NaN and inf there."""
    from numba import njit

    from fastmlp import _config
    from fastmlp import _kernels as K

    @njit(**{**_config.JIT_OPTIONS, "cache": False})
    def finite_results(x, y):
        return K._finite(x + y), K._finite(x * y + x), K._finite(x)

    for bad in (np.nan, np.inf, -np.inf):
        assert finite_results(dtype(bad), dtype(1)) == (False, False, False), bad
    assert finite_results(dtype(2), dtype(1)) == (True, True, True)
    assert finite_results(np.finfo(dtype).max, dtype(0)) == (True, True, True)


def test_no_kernel_module_calls_numbas_isfinite():
    """Every finiteness check in compiled code goes through ``_kernels._finite`` (see the test above)."""
    import ast
    from pathlib import Path

    from fastmlp import _config

    package = Path(E.__file__).parent
    for name in _config.KERNEL_MODULES:
        for node in ast.walk(ast.parse((package / name).read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "isfinite":
                raise AssertionError(f"{name}:{node.lineno} calls isfinite; use _kernels._finite")


@pytest.mark.parametrize("kernel", ["tiny", "general"])
def test_a_nan_made_mid_epoch_is_caught_by_the_kernel_itself(kernel, monkeypatch):
    """Epoch 2's first minibatch makes the weights about 1e200, its second one's cost is NaN (inf - inf): the kernel
    (the output check after each call switched off here) rolls epoch 2 back and reports one epoch done."""
    X, Y = overflowing_problem(m=8)
    Y[0, :] = 1.0
    monkeypatch.setattr(E, "output_check", lambda *args: lambda: True)
    rates = np.array([1e-300, 1.0])
    net = E.Network([3, 4, 1], ["relu", "sigmoid"], np.float64)
    net.params[:] = np.random.RandomState(1).randn(net.params.size) * 0.1
    again = net.copy()
    with pytest.raises(FloatingPointError, match="diverged in epoch 2") as info:
        E.train_epochs(net, X, Y, "bce", learning_rate=rates, epochs=2, batch_size=4, kernel=kernel)
    assert len(info.value.completed.mean_batch_cost) == 1
    E.train_epochs(again, X, Y, "bce", learning_rate=rates[:1], epochs=1, batch_size=4, kernel=kernel)
    assert_array_equal(net.params, again.params)
