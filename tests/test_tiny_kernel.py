"""The tiny networks' training kernel (``fastmlp._kernels_tiny``) against the reference and the general kernel.

``_engine.train_epochs`` picks the tiny kernel when no layer's product of a full batch reaches the BLAS threshold
(``kernel="auto"``); ``kernel="tiny"`` / ``"general"`` force one, so that both are held to the same references:
:func:`fastmlp.reference.train` for plain SGD and ``tests/references/sklearn_step.np_train`` (scikit-learn's
formulas) for the optimisers, the L2 penalty and every loss / output pair, in both dtypes, over hypothesis shapes
including batch size 1; divergence and rollback bit for bit; Ctrl-C in a child process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from references.sklearn_step import np_train
from test_engine import HEADS, batch_sizes, cols, make_data, make_net, problems
from tolerances import DTYPES, train_tol

from fastmlp import MLP, _engine, reference
from fastmlp import _kernels_tiny as KT
from tests.child import BASE_ENV, describe

KINDS = ["sgd", "momentum", "nesterov", "adam"]
#: the general kernel on its compiled loops (no BLAS), and the tiny kernel
KERNELS = {"general": {"kernel": "general", "blas_min_flops": 10**18}, "tiny": {"kernel": "tiny"}}


def train(net, X, Y, loss, which, **kw):
    """Samples as rows in, as :func:`np_train` takes them; the engine gets columns."""
    return _engine.train_epochs(net, cols(X), cols(Y), loss, **KERNELS[which], **kw)


def test_the_engine_takes_the_tiny_kernel_exactly_for_narrow_layers_and_small_batches():
    net = _engine.Network([2, 2, 1], ["sigmoid", "sigmoid"])  # 4 weights in its widest layer
    assert _engine.is_tiny(net, 4, 256) and _engine.is_tiny(net, 1024, 256)
    assert not _engine.is_tiny(net, 1025, 256) and not _engine.is_tiny(net, 1, 0)
    deep = _engine.Network([2, 4, 6, 6, 4, 1], ["relu"] * 4 + ["sigmoid"])  # W2-deep: 36
    assert _engine.is_tiny(deep, 32, 256) and _engine.is_tiny(deep, 32, 10**18) and not _engine.is_tiny(deep, 128, 256)
    wide = _engine.Network([30, 64, 32, 1], ["relu", "relu", "sigmoid"])  # W3-cancer
    assert not _engine.is_tiny(wide, 1, 256) and not _engine.is_tiny(wide, 32, 10**18)
    assert not _engine.is_tiny(_engine.Network([8, 9, 1], ["relu", "sigmoid"]), 1, 10**18)  # 72 weights
    # batches of 8 or more run along the batch in vectors, smaller ones in plain loops (two kernels)
    assert not KT.uses_rows(7) and KT.uses_rows(8)


def test_a_first_xor_fit_compiles_the_tiny_kernel_and_not_the_general_one():
    """In a fresh process without a compile cache: what a first fit of a tiny network needs is the tiny kernel."""
    code = """
        import json
        import numpy as np
        from fastmlp import MLP, _kernels, _kernels_tiny
        X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], float)
        Y = np.array([[0, 1, 1, 0]], float)
        MLP([2, 2, 1], hidden_activation="sigmoid", seed=1).fit(X, Y, epochs=10, learning_rate=0.1)
        print(json.dumps({"tiny": sorted(map(str, _kernels_tiny._TINY_KERNELS)),
                          "general": sorted(map(str, _kernels._TRAIN_KERNELS))}))
    """
    from tests.child import run_python

    proc = run_python(code, env={"FASTMLP_CACHE": "0"})
    assert proc.returncode == 0, describe(proc)
    made = json.loads(proc.stdout.strip().splitlines()[-1])
    assert made == {"tiny": ["(0, 0, False)"], "general": []}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("which", list(KERNELS))
def test_xor_plain_sgd_equals_reference_train(which, dtype):
    X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], dtype)
    Y = np.array([[0, 1, 1, 0]], dtype)
    params = reference.initialize_parameters([2, 2, 1], init="he", seed=1, dtype=np.dtype(dtype))
    net = _engine.Network([2, 2, 1], ["sigmoid", "sigmoid"], dtype)
    net.set_course_parameters([params["W1"], params["W2"]], [params["b1"], params["b2"]])
    ref = {k: v.copy() for k, v in params.items()}
    _, costs = reference.train(ref, X, Y, activations=["sigmoid", "sigmoid"], loss="bce", learning_rate=0.5, epochs=300,
                            batch_size=4)
    result = _engine.train_epochs(net, X, Y, "bce", learning_rate=0.5, epochs=300, batch_size=4, **KERNELS[which])
    got = net.course_parameters()
    for key in ref:
        assert got[key].dtype == np.dtype(dtype)
        assert_allclose(got[key], ref[key], err_msg=key, **train_tol(dtype))
    assert_allclose(result.mean_batch_cost, costs, **train_tol(dtype))


@given(problem=problems(), data=st.data(), kind=st.sampled_from(KINDS), alpha=st.sampled_from([0.0, 0.01, 1.0]),
       shuffle=st.booleans())
def test_any_tiny_problem_matches_the_reference_on_both_kernels(problem, data, kind, alpha, shuffle):
    dims, acts, loss, slope, dtype, net, X, Y = problem
    if dtype == np.float32:
        # the float32 kernels the parametrised cases compile (one optimiser per loss), but plain SGD for Adam's loss:
        # as in test_engine, Adam amplifies float32 noise in a gradient that cancels
        kind = _KIND_OF_LOSS[loss] if _KIND_OF_LOSS[loss] != "adam" else "sgd"
    m = X.shape[0]
    batch_size = data.draw(batch_sizes(m))
    order = np.stack([np.random.RandomState(s).permutation(m) for s in range(2)]) if shuffle else None
    coefs, intercepts, costs, weighted, _ = np_train(net.coefs, net.intercepts, acts, X, Y, loss, learning_rate=0.02,
                                                     epochs=2, batch_size=batch_size, alpha=alpha, kind=kind,
                                                     slope=slope, order=order)
    params = {}
    for which in KERNELS:
        mine = net.copy()
        result = train(mine, X, Y, loss, which, learning_rate=0.02, epochs=2, batch_size=batch_size, alpha=alpha,
                       optimizer=_engine.Optimizer(mine, kind), order=order)
        assert mine.params.dtype == np.dtype(dtype)
        for l, (c, b) in enumerate(zip(coefs, intercepts, strict=True)):
            assert_allclose(mine.coefs[l], c, err_msg=f"{which} coef {l}", **train_tol(dtype))
            assert_allclose(mine.intercepts[l], b, err_msg=f"{which} intercept {l}", **train_tol(dtype))
        assert_allclose(result.mean_batch_cost, costs, err_msg=which, **train_tol(dtype))
        assert_allclose(result.sample_weighted_cost, weighted, err_msg=which, **train_tol(dtype))
        params[which] = mine.params
    assert_allclose(params["tiny"], params["general"], **train_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss, out", HEADS)
def test_every_head_and_optimiser_on_a_two_layer_net(loss, out, dtype):
    """Each loss / output pair, each optimiser, with a penalty, minibatches of 3 over 7 samples (a short last one).
    In float32 (the same code), each loss with one optimiser (every optimiser once: the float32 kernels
    test_engine's float32 cases compile; each other pair would cost a compilation of about 8 CPU-s)."""
    dims, acts = [3, 4, 2], ["tanh", out]
    X, Y = make_data(dims, loss, 7, dtype)
    for kind in KINDS if dtype == np.float64 else [_KIND_OF_LOSS[loss]]:
        net = make_net(dims, acts, dtype, 0.2)
        coefs, intercepts, costs, _, _ = np_train(net.coefs, net.intercepts, acts, X, Y, loss, learning_rate=0.01,
                                                  epochs=3, batch_size=3, alpha=0.1, kind=kind, slope=0.2)
        result = train(net, X, Y, loss, "tiny", learning_rate=0.01, epochs=3, batch_size=3, alpha=0.1,
                       optimizer=_engine.Optimizer(net, kind))
        tolerance = train_tol(dtype) if dtype == np.float64 else {"rtol": 1e-4, "atol": 1e-5}
        for l, (c, b) in enumerate(zip(coefs, intercepts, strict=True)):
            assert_allclose(net.coefs[l], c, err_msg=f"{kind} coef {l}", **tolerance)
            assert_allclose(net.intercepts[l], b, err_msg=f"{kind} intercept {l}", **tolerance)
        assert_allclose(result.mean_batch_cost, costs, err_msg=kind, **tolerance)


#: one optimiser per loss (four kernels to compile), every optimiser, every head, every hidden activation
_KIND_OF_LOSS = {"bce": "nesterov", "ce": "momentum", "mse": "adam", "half_mse": "sgd"}
_HIDDEN = ["leaky_relu", "tanh", "sigmoid", "relu", "linear", "leaky_relu", "tanh", "relu"]


@pytest.mark.parametrize("loss, out, hidden", [(*head, hidden) for head, hidden in zip(HEADS, _HIDDEN, strict=True)])
def test_every_head_on_the_kernel_along_the_batch(loss, out, hidden):
    """Batches of 10 over 21 samples: one vector of 8 and a tail of 2 per row, and a last batch of one sample."""
    kind = _KIND_OF_LOSS[loss]
    dims, acts = [3, 5, 2], [hidden, out]
    X, Y = make_data(dims, loss, 21, np.float64)
    net = make_net(dims, acts, np.float64, 0.2)
    coefs, intercepts, costs, weighted, _ = np_train(net.coefs, net.intercepts, acts, X, Y, loss, learning_rate=0.01,
                                                     epochs=3, batch_size=10, alpha=0.1, kind=kind, slope=0.2)
    result = train(net, X, Y, loss, "tiny", learning_rate=0.01, epochs=3, batch_size=10, alpha=0.1,
                   optimizer=_engine.Optimizer(net, kind))
    for l, (c, b) in enumerate(zip(coefs, intercepts, strict=True)):
        assert_allclose(net.coefs[l], c, err_msg=f"coef {l}", **train_tol(np.float64))
        assert_allclose(net.intercepts[l], b, err_msg=f"intercept {l}", **train_tol(np.float64))
    assert_allclose(result.mean_batch_cost, costs, **train_tol(np.float64))
    assert_allclose(result.sample_weighted_cost, weighted, **train_tol(np.float64))


@pytest.mark.parametrize("grad_at_zero", [0, 1])
def test_relu_derivative_at_zero_on_the_kernel_along_the_batch(grad_at_zero):
    """One SGD step on 8 samples whose hidden pre-activations are exactly 0 for some samples: relu' there is 0, or 1
    for the course transcription's relu (``relu_grad_at_zero=1``), as in a step written out in NumPy."""
    X = np.array([[0, 1, 0, 2, -1, 0, 1, 0], [0, 0, 1, -1, 1, 2, 0, 0]], float)
    Y = np.array([[0, 1, 1, 0, 1, 0, 1, 0]], float)
    W1, b1 = np.array([[1.0, 1.0], [2.0, -1.0], [-1.0, 0.5]]), np.zeros((3, 1))
    W2, b2 = np.array([[0.5, -0.25, 1.0]]), np.array([[0.1]])
    net = _engine.Network([2, 3, 1], ["relu", "sigmoid"], relu_grad_at_zero=grad_at_zero)
    net.set_course_parameters([W1, W2], [b1, b2])
    assert KT.uses_rows(8)
    _engine.train_epochs(net, X, Y, "bce", learning_rate=0.5, epochs=1, batch_size=8, kernel="tiny")
    Z1 = W1 @ X + b1
    A1 = np.maximum(Z1, 0)
    A2 = 1 / (1 + np.exp(-(W2 @ A1 + b2)))
    dZ2 = (A2 - Y) / 8
    dZ1 = (W2.T @ dZ2) * ((Z1 >= 0) if grad_at_zero else (Z1 > 0))
    assert (Z1 == 0).any()
    want = [W1 - 0.5 * dZ1 @ X.T, W2 - 0.5 * dZ2 @ A1.T]
    got = net.course_parameters()
    assert_allclose(got["W1"], want[0], rtol=1e-12)
    assert_allclose(got["W2"], want[1], rtol=1e-12)
    assert_allclose(got["b1"], b1 - 0.5 * dZ1.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [32, 13])
def test_w2_deep_on_the_kernel_along_the_batch_equals_reference_train(batch_size, dtype):
    """The W2-deep network (relu, sigmoid output, bce, SGD), 75 samples: full vectors, tails, a short last batch."""
    dims, acts = [2, 4, 6, 6, 4, 1], ["relu"] * 4 + ["sigmoid"]
    rng = np.random.RandomState(5)
    X = rng.randn(2, 75).astype(dtype)
    Y = (rng.rand(1, 75) > 0.5).astype(dtype)
    params = reference.initialize_parameters(dims, init="he", seed=2, dtype=np.dtype(dtype))
    net = _engine.Network(dims, acts, dtype)
    net.set_course_parameters([params[f"W{l}"] for l in range(1, 6)], [params[f"b{l}"] for l in range(1, 6)])
    assert _engine.is_tiny(net, batch_size, 256)
    _, costs = reference.train(params, X, Y, activations=acts, loss="bce", learning_rate=0.05, epochs=20,
                               batch_size=batch_size)
    result = _engine.train_epochs(net, X, Y, "bce", learning_rate=0.05, epochs=20, batch_size=batch_size)
    got = net.course_parameters()
    for key in params:
        assert got[key].dtype == np.dtype(dtype)
        assert_allclose(got[key], params[key], err_msg=key, **train_tol(dtype))
    assert_allclose(result.mean_batch_cost, costs, **train_tol(dtype))


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_divergence_restores_the_last_finite_epoch_bit_for_bit(kind):
    """As test_engine's check of the general kernel: epoch 3's huge rate makes the weights overflow with a finite
    cost (Adam's, about 1e300, stay finite, but their outputs overflow); parameters, optimiser state and step
    count end as after the last finite epoch, bit for bit, and the model trains on from there as a fresh run of
    that many epochs would."""
    dims, acts = [3, 4, 1], ["relu", "linear"]
    X, Y = make_data(dims, "half_mse", 8, np.float64)
    if kind != "adam":
        X = X * 1e90
    rates = np.array([1e-200, 1e-200, 1e300, 1e-200, 1e-200])
    done = 2
    for epochs in (done + 1, 5):
        net = make_net(dims, acts, np.float64)
        opt = _engine.Optimizer(net, kind)
        with pytest.raises(FloatingPointError, match=f"epoch {done + 1}") as info:
            train(net, X, Y, "half_mse", "tiny", learning_rate=rates[:epochs], epochs=epochs, optimizer=opt)
        assert len(info.value.completed.mean_batch_cost) == done
        again = make_net(dims, acts, np.float64)
        opt_again = _engine.Optimizer(again, kind)
        res = train(again, X, Y, "half_mse", "tiny", learning_rate=rates[:done], epochs=done, optimizer=opt_again)
        assert_array_equal(res.mean_batch_cost, info.value.completed.mean_batch_cost)
        assert_array_equal(net.params, again.params)
        assert_array_equal(opt.state_1, opt_again.state_1)
        assert_array_equal(opt.state_2, opt_again.state_2)
        assert opt.t == opt_again.t


def test_xor_divergence_through_fit_keeps_the_last_finite_epoch():
    X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], float) * 1e150
    Y = np.array([[0, 1, 1, 0]], float)
    model = MLP([2, 2, 1], hidden_activation="linear", output_activation="linear", loss="mse", seed=1)
    with pytest.raises(FloatingPointError, match="diverged"):
        model.fit(X, Y, epochs=50, learning_rate=1.0)
    assert all(np.isfinite(v).all() for v in model.get_parameters().values())
    assert all(np.isfinite(model.history))


def test_training_in_pieces_and_in_one_call_agree(monkeypatch):
    """One minibatch per kernel call (span / partial), shuffled orders drawn an epoch at a time: bit for bit."""
    X, Y = make_data([2, 3, 1], "bce", 13, np.float64)
    results = []
    for pieces in (False, True):
        if pieces:
            monkeypatch.setattr(_engine, "CHUNK_SECONDS", 0.0)
            monkeypatch.setattr(_engine, "_PESSIMISTIC_RATE", 0.0)
            monkeypatch.setattr(_engine, "ORDER_ENTRIES", 1)
        net = make_net([2, 3, 1], ["relu", "sigmoid"], np.float64)
        opt = _engine.Optimizer(net, "adam")
        rng = np.random.RandomState(4)
        res = train(net, X, Y, "bce", "tiny", learning_rate=0.05, epochs=5, batch_size=4, alpha=0.01, optimizer=opt,
                    order=lambda n, rng=rng: np.stack([rng.permutation(13) for _ in range(n)]))
        results.append((net.params.copy(), opt.state_1.copy(), res.mean_batch_cost, res.sample_weighted_cost))
    for a, b in zip(*results, strict=True):
        assert_array_equal(a, b)


def test_inputs_are_not_modified():
    X, Y = make_data([2, 2, 1], "bce", 6, np.float64)
    Xc, Yc = cols(X), cols(Y)
    X0, Y0 = Xc.copy(), Yc.copy()
    net = make_net([2, 2, 1], ["sigmoid", "sigmoid"], np.float64)
    _engine.train_epochs(net, Xc, Yc, "bce", learning_rate=0.1, epochs=3, batch_size=4, kernel="tiny")
    assert_array_equal(Xc, X0)
    assert_array_equal(Yc, Y0)


def test_unknown_kernel_is_refused():
    net = _engine.Network([2, 2, 1], ["sigmoid", "sigmoid"])
    X, Y = np.zeros((2, 4)), np.zeros((1, 4))
    with pytest.raises(ValueError, match="unknown kernel"):
        _engine.train_epochs(net, X, Y, "bce", learning_rate=0.1, kernel="fast")


_CTRL_C_CHILD = r"""
import json
import numpy as np
from numpy.testing import assert_array_equal
from fastmlp import MLP, _kernels_tiny

r = np.random.RandomState(0)
X = r.randn(2, 40)
Y = (r.rand(1, 40) > 0.5).astype(float)
make = lambda: MLP([2, 3, 1], hidden_activation="tanh", seed=0)
make().fit(X, Y, epochs=1, batch_size=5)  # compile
model = make()
print("READY", flush=True)
try:  # 8 minibatches an epoch: minutes of training (per-epoch arrays of 5e6 entries, not more: memory)
    model.fit(X, Y, epochs=5 * 10**6, learning_rate=1e-6, batch_size=5)
    raise SystemExit("not interrupted")
except KeyboardInterrupt:
    print("STOPPED", flush=True)
assert _kernels_tiny._TINY_KERNELS, "the tiny kernel did not run"
done = len(model.history)
again = make()
again.fit(X, Y, epochs=done, learning_rate=1e-6, batch_size=5)
for key, value in model.get_parameters().items():
    assert_array_equal(value, again.get_parameters()[key])
assert model.history == again.history
print("RESULT " + json.dumps({"epochs": done}), flush=True)
"""


def test_ctrl_c_stops_a_tiny_fit_promptly_at_a_whole_epoch():
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_CTRL_C_CHILD)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=BASE_ENV)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "READY", line + proc.stderr.read()
        time.sleep(1.0)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        line = proc.stdout.readline()
        latency = time.perf_counter() - sent
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, line + out, err)
    assert line.strip() == "STOPPED", describe(done)
    assert latency < 5, f"{latency:.1f} s after SIGINT"  # loose: the machine is shared
    assert proc.returncode == 0 and "RESULT " in out, describe(done)
    assert json.loads(out.split("RESULT ", 1)[1])["epochs"] > 0
