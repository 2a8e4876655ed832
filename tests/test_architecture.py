"""fastmlp.architecture: the list-of-dicts dialect (seed 004) equals its NumPy transcription and the seed's
published numbers.

``tests/references/architecture_numpy.py`` is that dialect written in plain NumPy; every function of
``fastmlp.architecture`` is held to it at 1e-12 (float64) on random architectures, and to the values the
seed publishes (printed to 8 decimals) for ``init_layers(seed=42)`` and its forward pass.
"""

import copy

import numpy as np
import pytest
from helpers import numeric_gradients
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from references import architecture_numpy as T

from fastmlp import architecture as A

EXACT = dict(rtol=1e-12, atol=1e-15)
PRINTED = dict(rtol=0, atol=5.1e-9)  # values printed with 8 decimals
SEED_ARCHITECTURE = [
    {"input_dim": 2, "output_dim": 4, "activation": "relu"},
    {"input_dim": 4, "output_dim": 6, "activation": "relu"},
    {"input_dim": 6, "output_dim": 6, "activation": "relu"},
    {"input_dim": 6, "output_dim": 4, "activation": "relu"},
    {"input_dim": 4, "output_dim": 1, "activation": "sigmoid"},
]


def _close_dicts(got, want, **tol):
    assert list(got) == list(want)
    for key in want:
        assert np.shape(got[key]) == np.shape(want[key]), key
        assert_allclose(got[key], want[key], err_msg=key, **(tol or EXACT))


def _architecture(dims, acts):
    return [{"input_dim": a, "output_dim": b, "activation": g} for a, b, g in zip(dims[:-1], dims[1:], acts,
                                                                                   strict=True)]


def test_published_init_layers_and_forward_pass():
    params = A.init_layers(SEED_ARCHITECTURE, seed=42)
    assert_allclose(params["W1"], [[0.04967142, -0.01382643], [0.06476885, 0.15230299], [-0.02341534, -0.0234137],
                                   [0.15792128, 0.07674347]], **PRINTED)
    assert_allclose(params["b1"], [[-0.04694744], [0.054256], [-0.04634177], [-0.04657298]], **PRINTED)
    assert_allclose(params["W2"], [[0.02419623, -0.19132802, -0.17249178, -0.05622875],
                                   [-0.10128311, 0.03142473, -0.09080241, -0.14123037],
                                   [0.14656488, -0.02257763, 0.00675282, -0.14247482],
                                   [-0.05443827, 0.01109226, -0.11509936, 0.0375698],
                                   [-0.06006387, -0.02916937, -0.06017066, 0.18522782],
                                   [-0.00134972, -0.10577109, 0.08225449, -0.12208436]], **PRINTED)
    assert_allclose(params["b2"].ravel(), [0.02088636, -0.19596701, -0.1328186, 0.01968612, 0.07384666, 0.01713683],
                    **PRINTED)
    assert_allclose(params["W3"][:2], [[-0.01156483, -0.03011037, -0.1478522, -0.07198442, -0.04606388, 0.10571222],
                                       [0.03436183, -0.17630402, 0.0324084, -0.03850823, -0.0676922, 0.06116763]],
                    **PRINTED)
    assert_allclose(params["W3"][2, 0], 0.10309995, **PRINTED)

    x = np.array([1, 2]).reshape(2, 1)  # an integer array, as in the seed
    a1, z1 = A.single_layer_forward_propagation(x, params["W1"], params["b1"], activation="relu")
    assert_allclose(a1.ravel(), [0.0, 0.42363083, 0.0, 0.26483525], **PRINTED)
    assert_allclose(z1.ravel(), [-0.02492888, 0.42363083, -0.1165845, 0.26483525], **PRINTED)

    out, memory = A.full_forward_propagation(x, params, SEED_ARCHITECTURE)
    assert_allclose(out, [[0.4993655]], **PRINTED)
    assert list(memory) == ["A0", "Z1", "A1", "Z2", "A2", "Z3", "A3", "Z4", "A4", "Z5"]
    assert memory["A0"] is x
    assert_allclose(memory["Z2"].ravel(), [-0.07505745, -0.22005731, -0.18011554, 0.03433495, 0.11054447,
                                           -0.06000331], **PRINTED)
    assert_allclose(memory["A2"].ravel(), [0, 0, 0, 0.03433495, 0.11054447, 0], **PRINTED)
    assert_allclose(memory["Z3"].ravel(), [0.00161239, -0.20756207, -0.01936693, 0.04058611, 0.14956942,
                                           -0.04804277], **PRINTED)
    assert_allclose(memory["Z4"].ravel(), [0.01903536, -0.01462353, -0.21395109, 0.02714481], **PRINTED)
    assert_allclose(memory["A4"][0, 0], 0.01903536, **PRINTED)
    _close_dicts(memory, T.full_forward_propagation(x, T.init_layers(SEED_ARCHITECTURE, 42), SEED_ARCHITECTURE)[1])


def test_activations_and_cost_as_the_notebook_defines_them():
    Z = np.array([[-1.0, 0.0, 2.0]])
    assert_allclose(A.sigmoid(Z), T.sigmoid(Z), **EXACT)
    assert_array_equal(A.relu(Z), [[0.0, 0.0, 2.0]])
    dA = np.array([[1.0, 2.0, 3.0]])
    assert_array_equal(A.relu_backward(dA, Z), [[0.0, 0.0, 3.0]])  # relu' at 0 is 0 (dZ[Z <= 0] = 0)
    assert_array_equal(A.relu_backward(dA, Z, grad_at_zero=1), [[0.0, 2.0, 3.0]])
    assert_allclose(A.sigmoid_backward(dA, Z), T.sigmoid_backward(dA, Z), **EXACT)
    Y_hat, Y = np.array([[0.2, 0.9, 0.6]]), np.array([[0.0, 1.0, 1.0]])
    cost = A.get_cost_value(Y_hat, Y)
    assert cost.shape == (3,)  # a value per sample, as the notebook's definition gives
    assert_allclose(cost, T.get_cost_value(Y_hat, Y), **EXACT)
    assert A.get_accuracy_value(Y_hat, Y) == T.get_accuracy_value(Y_hat, Y) == 1.0
    with pytest.raises(ValueError, match="Non-supported activation"):
        A.single_layer_forward_propagation(Z.T, np.ones((1, 3)), np.zeros((1, 1)), "tanh")


@st.composite
def networks(draw):
    n_layers = draw(st.integers(1, 4))
    dims = draw(st.lists(st.integers(1, 6), min_size=n_layers + 1, max_size=n_layers + 1))
    acts = [draw(st.sampled_from(["relu", "sigmoid"])) for _ in range(n_layers - 1)]
    acts.append(draw(st.sampled_from(["sigmoid", "sigmoid", "relu"])))
    return dims, acts


@settings(max_examples=25)
@given(net=networks(), m=st.integers(1, 7), seed=st.integers(0, 999), grad_at_zero=st.sampled_from([0, 1]))
def test_a_step_equals_the_transcription(net, m, seed, grad_at_zero):
    dims, acts = net
    arch = _architecture(dims, acts)
    rng = np.random.RandomState(seed)
    X = rng.randn(dims[0], m)
    Y = (rng.rand(dims[-1], m) < 0.5).astype(float)
    params = A.init_layers(arch, seed)
    for key in params:  # larger than the notebook's 0.1 so that deep nets do not go flat
        params[key] *= 10
    theirs = {k: v.copy() for k, v in params.items()}
    X_before = X.copy()

    out, memory = A.full_forward_propagation(X, params, arch)
    out_t, memory_t = T.full_forward_propagation(X, theirs, arch)
    assert_allclose(out, out_t, **EXACT)
    _close_dicts(memory, memory_t)
    if acts[-1] == "relu":
        out = np.clip(out, 0.05, 0.95)  # the cross-entropy gradient of a relu output needs outputs in (0, 1)
        out_t = out.copy()
    grads = A.full_backward_propagation(out, Y, memory, params, arch, grad_at_zero=grad_at_zero)
    grads_t = T.full_backward_propagation(out_t, Y, memory_t, theirs, arch, grad_at_zero=grad_at_zero)
    _close_dicts(grads, grads_t, rtol=1e-11, atol=1e-14)  # Y_hat - Y vs the divisions: a few ulps
    _close_dicts(params, theirs, rtol=0, atol=0)
    assert_array_equal(X, X_before)

    same = A.update(params, grads, arch, 0.1)
    assert same is params
    _close_dicts(params, T.update(theirs, grads_t, arch, 0.1), rtol=1e-11, atol=1e-14)


def test_memory_from_elsewhere_and_plain_dicts_take_the_checked_path():
    dims, acts = [3, 4, 1], ["relu", "sigmoid"]
    arch = _architecture(dims, acts)
    params = T.init_layers(arch, 7)  # a plain dict
    X = np.random.RandomState(0).randn(3, 5)
    Y = np.array([[0.0, 1.0, 1.0, 0.0, 1.0]])
    out, memory = T.full_forward_propagation(X, params, arch)
    grads = A.full_backward_propagation(out, Y, memory, params, arch)
    _close_dicts(grads, T.full_backward_propagation(out, Y, memory, params, arch), rtol=1e-11, atol=1e-14)
    out_ours, memory_ours = A.full_forward_propagation(X, params, arch)
    _close_dicts(A.full_backward_propagation(out_ours, Y, dict(memory_ours), params, arch), grads, rtol=1e-11,
                 atol=1e-14)
    with pytest.raises(ValueError):
        A.full_forward_propagation(X, params, _architecture([3, 5, 1], acts))


@pytest.mark.parametrize("with_callback", [False, True])
def test_train_equals_the_transcription(with_callback, capsys):
    arch = _architecture([2, 4, 3, 1], ["relu", "relu", "sigmoid"])
    rng = np.random.RandomState(3)
    X = rng.randn(2, 20)
    Y = (X[:1] * X[1:] > 0).astype(float)
    seen, seen_t = [], []
    params, costs, accuracy = A.train(X, Y, arch, 120, 0.1, verbose=with_callback,
                                      callback=(lambda i, p: seen.append((i, copy.deepcopy(p)))) if with_callback
                                      else None)
    params_t, costs_t, accuracy_t = T.train(X, Y, arch, 120, 0.1,
                                            callback=(lambda i, p: seen_t.append((i, copy.deepcopy(p))))
                                            if with_callback else None)
    _close_dicts(params, params_t, rtol=1e-10, atol=1e-13)
    assert len(costs) == 120 and costs[0].shape == (20,)
    assert_allclose(np.array(costs), np.array(costs_t), rtol=1e-10, atol=1e-14)
    assert accuracy == accuracy_t
    if with_callback:
        assert [i for i, _ in seen] == [i for i, _ in seen_t] == [0, 50, 100]
        for (_, p), (_, p_t) in zip(seen, seen_t, strict=True):
            _close_dicts(p, p_t, rtol=1e-10, atol=1e-13)
        assert capsys.readouterr().out.count("Iteration:") == 3


def test_train_with_one_sample_records_scalars():
    arch = _architecture([2, 3, 1], ["relu", "sigmoid"])
    X, Y = np.array([[1.0], [2.0]]), np.array([[1.0]])
    _, costs, _ = A.train(X, Y, arch, 3, 0.1)
    _, costs_t, _ = T.train(X, Y, arch, 3, 0.1)
    assert [np.shape(c) for c in costs] == [np.shape(c) for c in costs_t] == [(), (), ()]
    assert_allclose(costs, costs_t, rtol=1e-12)


def test_forward_results_the_caller_keeps_never_change():
    arch = _architecture([2, 4, 3, 1], ["relu", "relu", "sigmoid"])
    params = A.init_layers(arch, 1)
    rng = np.random.RandomState(0)
    kept, seen = [], []
    for i in range(8):
        X = rng.randn(2, 3)
        out, memory = A.full_forward_propagation(X, params, arch)
        seen.append(id(memory))
        if i == 1:
            kept.append((memory, {k: v.copy() for k, v in memory.items()}))
        if i == 2:
            kept.append(({"A": out}, {"A": out.copy()}))
        if i == 3:
            kept.append(({"Z": memory["Z2"][:, 0]}, {"Z": memory["Z2"][:, 0].copy()}))
        want_out, want_memory = T.full_forward_propagation(X, params, arch)
        assert_allclose(out, want_out, **EXACT)
        _close_dicts(memory, want_memory)
        assert memory["A0"] is X
    for held, values in kept:
        _close_dicts(held, values, rtol=0, atol=0)
    assert len(set(seen[5:])) < 3  # unheld results were reused
    grads = A.full_backward_propagation(out, np.ones((1, 3)), memory, params, arch)
    _close_dicts(grads, T.full_backward_propagation(out, np.ones((1, 3)), want_memory, params, arch), rtol=1e-11,
                 atol=1e-14)


def test_one_import_line_brings_every_name_the_notebook_defines():
    namespace = {}
    exec("from fastmlp.architecture import *", namespace)
    for name in ("init_layers", "sigmoid", "relu", "sigmoid_backward", "relu_backward",
                 "single_layer_forward_propagation", "full_forward_propagation", "get_cost_value",
                 "single_layer_backward_propagation", "get_accuracy_value", "convert_prob_into_class",
                 "full_backward_propagation", "update", "train"):
        assert callable(namespace[name]), name


def test_gradients_are_those_of_the_cross_entropy():
    """Central differences of the binary cross-entropy of the output (what ``full_backward_propagation``
    differentiates, whatever ``get_cost_value`` reports)."""
    arch = _architecture([3, 5, 2, 1], ["relu", "sigmoid", "sigmoid"])
    params = A.init_layers(arch, 3)
    for key in params:
        params[key] *= 10
    rng = np.random.RandomState(1)
    X, Y = rng.randn(3, 4), np.array([[0.0, 1.0, 1.0, 0.0]])

    def cost(p):
        out = A.full_forward_propagation(X, p, arch)[0]
        return -np.mean(Y * np.log(out) + (1 - Y) * np.log(1 - out))

    out, memory = A.full_forward_propagation(X, params, arch)
    grads = A.full_backward_propagation(out, Y, memory, params, arch)
    numeric = numeric_gradients(cost, params)
    for key in params:
        assert_allclose(grads["d" + key], numeric[key], rtol=1e-5, atol=1e-8, err_msg=key)
