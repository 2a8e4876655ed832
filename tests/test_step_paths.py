"""The per-step path's shortcuts (fastmlp._steps) give the reference's numbers and behave as plain data.

- ``dA0`` computed when first read (``_steps.LazyGrads``): the values of every gradient against the
  reference and the course transcription, also when the parameters change before ``dA0`` is read, and the
  dict behaving as a plain dict (keys, order, items, equality, copies, pickling, merging).
"""

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from references import architecture_numpy as TA
from references import course_numpy as T
from tolerances import tol

from fastmlp import _steps
from fastmlp import course as C
from fastmlp import functional as F
from fastmlp import reference as R

EXACT = dict(rtol=1e-11, atol=1e-14)  # the course dialect against its transcription (A - Y vs divisions)


@pytest.fixture
def always_lazy(monkeypatch):
    """Every backward pass of the course and functional dialects defers dA0, whatever its size."""
    monkeypatch.setattr(_steps, "LAZY_DA0_MIN", 0)


def _course_problem(dims, m, seed):
    rng = np.random.RandomState(seed)
    params = C.initialize_parameters_deep(dims)
    for key in params:  # large enough that every layer matters, small enough not to saturate the output
        params[key][...] = rng.randn(*params[key].shape) / np.sqrt(params[key].shape[1] if key[0] == "W" else 1)
    return params, rng.randn(dims[0], m), (rng.rand(dims[-1], m) < 0.5).astype(float)


def _close_dicts(got, want, **tolerance):
    assert list(got) == list(want)
    for key in want:
        assert np.shape(got[key]) == np.shape(want[key]), key
        assert_allclose(got[key], want[key], err_msg=key, **tolerance)


# --- dA0 when first read ----------------------------------------------------------------------------------
@settings(max_examples=20)
@given(dims=st.lists(st.integers(1, 6), min_size=2, max_size=4), m=st.integers(1, 6), seed=st.integers(0, 999),
       grad_at_zero=st.sampled_from([0, 1]))
def test_deferred_dA0_course_step_equals_the_transcription(dims, m, seed, grad_at_zero):
    dims[-1] = 1
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_steps, "LAZY_DA0_MIN", 0)
        params, X, Y = _course_problem(dims, m, seed)
        theirs = {k: v.copy() for k, v in params.items()}
        AL, caches = C.L_model_forward(X, params)
        grads = C.L_model_backward(AL, Y, caches, grad_at_zero=grad_at_zero)
        assert type(grads) is _steps.LazyGrads
        AL_t, caches_t = T.L_model_forward(X, theirs)
        grads_t = T.L_model_backward(AL_t, Y, caches_t, grad_at_zero=grad_at_zero)
        new = C.update_parameters(params, grads, 0.3)  # before dA0 is read: the update never needs it
        _close_dicts(new, T.update_parameters(theirs, grads_t, 0.3), **EXACT)
        _close_dicts(grads, grads_t, **EXACT)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_deferred_dA0_functional_equals_the_reference(always_lazy, dtype):
    rng = np.random.RandomState(5)
    dims = [5, 4, 3, 2]
    acts = ["tanh", "relu", "softmax"]
    params = R.initialize_parameters(dims, init="xavier", seed=2, dtype=dtype)
    X = rng.randn(5, 7).astype(dtype)
    Y = np.eye(2, dtype=dtype)[:, rng.randint(0, 2, 7)]
    AL_ref, caches_ref = R.L_model_forward(X, params, acts)
    grads_ref = R.L_model_backward(AL_ref, Y, caches_ref, acts, "ce")
    AL, caches = F.L_model_forward(X, params, acts)
    grads = F.L_model_backward(AL, Y, caches, acts, "ce")
    assert type(grads) is _steps.LazyGrads
    assert list(grads) == list(grads_ref)
    for key in grads_ref:
        assert grads[key].dtype == dtype, key
        assert_allclose(grads[key], grads_ref[key], **tol(dtype), err_msg=key)


def test_a_wide_input_layer_defers_dA0_by_default_and_agrees():
    dims = [700, 12, 3, 1]
    params, X, Y = _course_problem(dims, 20, 3)
    assert dims[0] * dims[1] * 20 >= _steps.LAZY_DA0_MIN
    theirs = {k: v.copy() for k, v in params.items()}
    AL, caches = C.L_model_forward(X, params)
    grads = C.L_model_backward(AL, Y, caches)
    assert type(grads) is _steps.LazyGrads
    AL_t, caches_t = T.L_model_forward(X, theirs)
    _close_dicts(grads, T.L_model_backward(AL_t, Y, caches_t), rtol=1e-10, atol=1e-13)


def test_deferred_dA0_is_that_of_the_backward_pass_whatever_changes_after(always_lazy):
    params, X, Y = _course_problem([4, 3, 1], 5, 8)
    theirs = {k: v.copy() for k, v in params.items()}
    AL, caches = C.L_model_forward(X, params)
    grads = C.L_model_backward(AL, Y, caches)
    AL_t, caches_t = T.L_model_forward(X, theirs)
    want = T.L_model_backward(AL_t, Y, caches_t)["dA0"]
    C.update_parameters(params, grads, 0.5, in_place=True)  # W1 changes in place before dA0 is read
    params["W1"] *= 3.0
    grads["dW1"][...] = 0.0  # so does the caller's copy of the other gradients
    assert_allclose(grads["dA0"], want, **EXACT)
    assert grads["dA0"] is grads["dA0"]  # computed once

    # plain parameters (the validated path, a private copy of W1): changed between backward and reading
    plain = {k: v.copy() for k, v in theirs.items()}
    AL, caches = C.L_model_forward(X, plain)
    grads = C.L_model_backward(AL, Y, caches)
    plain["W1"] += 1.0
    assert_allclose(grads["dA0"], want, **EXACT)


def test_deferred_dA0_grads_behave_as_a_plain_dict(always_lazy):
    params, X, Y = _course_problem([3, 4, 2, 1], 6, 1)
    AL, caches = C.L_model_forward(X, params)
    AL_t, caches_t = T.L_model_forward(X, dict(params))
    want = {k: v.copy() for k, v in T.L_model_backward(AL_t, Y, caches_t).items()}

    def fresh():
        grads = C.L_model_backward(AL, Y, caches)
        assert type(grads) is _steps.LazyGrads and dict.__getitem__(grads, "dA0") is _steps._PENDING
        return grads

    grads = fresh()
    assert list(grads) == list(want) and len(grads) == len(want) and "dA0" in grads
    assert list(grads.keys()) == list(want)
    assert grads.get("dA0") is grads["dA0"] and grads.get("missing", 5) == 5
    for label, plain in [("dict", lambda g: dict(g)), ("unpack", lambda g: {**g}),
                         ("kwargs", lambda g: (lambda **kw: kw)(**g)),
                         ("items", lambda g: dict(g.items())), ("values", lambda g: dict(zip(g, g.values()))),
                         ("copy", lambda g: g.copy()), ("copy.copy", copy.copy), ("deepcopy", copy.deepcopy),
                         ("pickle", lambda g: pickle.loads(pickle.dumps(g))), ("or", lambda g: g | {}),
                         ("ror", lambda g: {} | g)]:
        got = plain(fresh())
        assert type(got) is dict, label
        _close_dicts(got, want, **EXACT)
    merged = {"x": 1}
    merged.update(fresh())
    _close_dicts({k: v for k, v in merged.items() if k != "x"}, want, **EXACT)
    grads = fresh()
    assert "computed" not in repr(grads) and "dA0" in repr(grads)
    grads = fresh()
    assert grads == dict(grads) and dict(grads) == grads and not (grads != dict(grads))
    grads = fresh()
    assert_allclose(grads.pop("dA0"), want["dA0"], **EXACT)
    assert "dA0" not in grads
    grads = fresh()
    assert_allclose(grads.setdefault("dA0", None), want["dA0"], **EXACT)
    grads = fresh()
    grads["dA0"] = "replaced"
    assert grads["dA0"] == "replaced"
    assert_array_equal(dict(fresh())["dA0"], dict(fresh())["dA0"])


def test_architecture_backward_needs_no_dA0():
    from fastmlp import architecture as A

    arch = [{"input_dim": 3, "output_dim": 4, "activation": "relu"},
            {"input_dim": 4, "output_dim": 1, "activation": "sigmoid"}]
    params = A.init_layers(arch, 2)
    X = np.random.RandomState(0).randn(3, 5)
    Y = np.array([[0.0, 1.0, 1.0, 0.0, 1.0]])
    Y_hat, memory = A.full_forward_propagation(X, params, arch)
    grads = A.full_backward_propagation(Y_hat, Y, memory, params, arch)
    assert list(grads) == ["dW2", "db2", "dW1", "db1"]
    ref = TA.full_backward_propagation(Y_hat, Y, dict(memory), dict(params), arch)
    assert list(ref) == list(grads)
    for key in grads:
        assert_allclose(grads[key], ref[key], rtol=1e-10, atol=1e-13, err_msg=key)
