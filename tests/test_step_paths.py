"""The per-step path's shortcuts (fastmlp._steps) give the reference's numbers and behave as plain data.

- ``dA0`` computed when first read (``_steps.LazyGrads``): the values of every gradient against the
  reference and the course transcription, also when the parameters change before ``dA0`` is read, and the
  dict behaving as a plain dict (keys, order, items, equality, copies, pickling, merging).
- plain parameter dicts (the user's own arrays, not made by fastmlp's initialisers) take the structural
  O(L) checks, finiteness left to the kernels: no full validation scan on a valid step, the reference's
  numbers (also when the parameters change between forward and backward, or share memory), and a clear
  ``ValueError`` for NaN or inf in ``W``, ``b``, ``X`` or the gradients from every dialect's forward,
  backward and update.
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

from fastmlp import _checks, _steps
from fastmlp import architecture as A
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


# --- plain parameter dicts --------------------------------------------------------------------------------
ARCH = [{"input_dim": 3, "output_dim": 4, "activation": "relu"},
        {"input_dim": 4, "output_dim": 2, "activation": "relu"},
        {"input_dim": 2, "output_dim": 1, "activation": "sigmoid"}]


def _plain(dtype=np.float64, seed=0):
    rng = np.random.RandomState(seed)
    dims = [3, 4, 2, 1]
    params = {}
    for l in range(1, len(dims)):
        params[f"W{l}"] = (rng.randn(dims[l], dims[l - 1]) * 0.8).astype(dtype)
        params[f"b{l}"] = (rng.randn(dims[l], 1) * 0.3).astype(dtype)
    X = rng.randn(3, 5).astype(dtype)
    Y = (rng.rand(1, 5) < 0.5).astype(dtype)
    return params, X, Y


def _copy(params):
    return {k: v.copy() for k, v in params.items()}


def _dialects():
    """name -> (forward, backward, update in place) with the signatures of a loop on each dialect."""
    return {
        "functional": (lambda X, p: F.L_model_forward(X, p),
                       lambda AL, Y, caches, p: F.L_model_backward(AL, Y, caches),
                       lambda p, g, lr: F.update_parameters(p, g, lr)),
        "course": (lambda X, p: C.L_model_forward(X, p),
                   lambda AL, Y, caches, p: C.L_model_backward(AL, Y, caches, grad_at_zero=0),
                   lambda p, g, lr: C.update_parameters(p, g, lr, in_place=True)),
        "architecture": (lambda X, p: A.full_forward_propagation(X, p, ARCH),
                         lambda AL, Y, memory, p: A.full_backward_propagation(AL, Y, memory, p, ARCH),
                         lambda p, g, lr: A.update(p, g, ARCH, lr)),
    }


def _reference_step(X, Y, params, lr, change=None):
    """The reference's step on ``params`` (in place), ``change(params)`` run between forward and backward."""
    AL, caches = R.L_model_forward(X, params)
    if change is not None:
        change(params)
    grads = R.L_model_backward(AL, Y, caches)
    R.update_parameters(params, grads, lr)
    return AL, grads


@pytest.mark.parametrize("dialect", ["functional", "course", "architecture"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_plain_dicts_take_the_structural_checks_and_equal_the_reference(dialect, dtype, monkeypatch):
    forward, backward, update = _dialects()[dialect]
    params, X, Y = _plain(dtype)
    theirs = _copy(params)
    keep = params["W1"]
    for _ in range(2):  # warm: the first step may compile or cache
        _reference_step(X, Y, theirs, 0.3)
        AL, caches = forward(X, params)
        grads = backward(AL, Y, caches, params)
        assert update(params, grads, 0.3) is params
    AL_t, grads_t = _reference_step(X, Y, theirs, 0.3)
    scans = []
    for module in (_checks, _steps):
        monkeypatch.setattr(module, "as_float_array", lambda *a, **k: scans.append(a[1:2]))
    AL, caches = forward(X, params)
    grads = backward(AL, Y, caches, params)
    update(params, grads, 0.3)
    monkeypatch.undo()
    assert scans == []  # no validation scan on a valid step with a plain dict
    assert type(params) is dict and params["W1"] is keep  # updated in place, the caller's own arrays
    assert_allclose(AL, AL_t, **tol(dtype))
    for key in grads:
        assert grads[key].dtype == dtype
        assert_allclose(grads[key], grads_t[key], **tol(dtype), err_msg=key)
    for key in params:
        assert params[key].dtype == dtype
        assert_allclose(params[key], theirs[key], **tol(dtype), err_msg=key)


@pytest.mark.parametrize("dialect", ["functional", "course", "architecture"])
@pytest.mark.parametrize("packed", [False, True])
def test_parameters_changed_between_forward_and_backward_count_as_in_the_reference(dialect, packed):
    forward, backward, update = _dialects()[dialect]
    params, X, Y = _plain()
    theirs = _copy(params)
    if packed:
        params = F.initialize_parameters([3, 4, 2, 1])
        for key in params:
            params[key][...] = theirs[key]

    def in_place(p):
        p["W1"] *= 1.5
        p["b2"] += 0.25

    AL, caches = forward(X, params)
    in_place(params)
    grads = backward(AL, Y, caches, params)
    AL_t, grads_t = _reference_step(X, Y, theirs, 0.3, in_place)
    for key in grads:
        assert_allclose(grads[key], grads_t[key], **tol(np.float64), err_msg=key)

    # an array replaced in the dict: the course caches hold the arrays of the forward pass, the notebook reads
    # params_values again
    AL, caches = forward(X, params)
    old_W2 = params["W2"]
    params["W2"] = params["W2"] * -2.0
    grads = backward(AL, Y, caches, params)
    if dialect == "architecture":
        want = TA.full_backward_propagation(AL, Y, dict(caches), _copy(params), ARCH)
    else:
        AL_t, caches_t = R.L_model_forward(X, {**params, "W2": old_W2})
        want = R.L_model_backward(AL_t, Y, caches_t)
    for key in grads:
        assert_allclose(grads[key], want[key], **tol(np.float64), err_msg=key)


def test_plain_in_place_update_of_arrays_sharing_memory_is_the_reference_s():
    rng = np.random.RandomState(2)
    params = {"W1": rng.randn(2, 2), "b1": rng.randn(2, 1), "b2": rng.randn(2, 1)}
    params["W2"] = params["W1"]  # one array under two names
    params = {k: params[k] for k in ("W1", "b1", "W2", "b2")}
    theirs = {k: v.copy() for k, v in params.items() if k != "W2"}
    theirs = {"W1": theirs["W1"], "b1": theirs["b1"], "W2": theirs["W1"], "b2": theirs["b2"]}
    grads = {k: rng.randn(*v.shape) for k, v in (("dW1", params["W1"]), ("db1", params["b1"]),
                                                  ("dW2", params["W2"]), ("db2", params["b2"]))}
    F.update_parameters(params, grads, 0.5)
    R.update_parameters(theirs, grads, 0.5)
    for key in params:
        assert_allclose(params[key], theirs[key], rtol=1e-15, atol=0, err_msg=key)


def test_plain_copying_update_leaves_the_caller_s_dict_alone():
    params, X, Y = _plain()
    before = _copy(params)
    AL, caches = C.L_model_forward(X, params)
    grads = C.L_model_backward(AL, Y, caches)
    new = C.update_parameters(params, grads, 0.3)
    want = T.update_parameters(_copy(before), {k: v.copy() for k, v in grads.items()}, 0.3)
    assert list(new) == list(params) and all(new[k] is not params[k] for k in params)
    _close_dicts(new, want, rtol=1e-15, atol=0)
    _close_dicts(params, before, rtol=0, atol=0)


@pytest.mark.parametrize("dialect", ["functional", "course", "architecture"])
@pytest.mark.parametrize("where", ["W1", "b2", "W3", "X"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_in_a_plain_dict_are_named(dialect, where, bad):
    forward, backward, update = _dialects()[dialect]
    params, X, Y = _plain()
    AL, caches = forward(X, params)
    grads = {k: v.copy() for k, v in backward(AL, Y, caches, params).items()}
    good = _copy(params)
    poisoned = _copy(params)
    if where == "X":
        X_bad = X.copy()
        X_bad[1, 2] = bad
        with pytest.raises(ValueError, match="X contains 1 non-finite"):
            forward(X_bad, params)
        return
    poisoned[where].flat[-1] = bad
    name = f"parameters\\['{where}'\\]" if dialect != "architecture" else where
    with pytest.raises(ValueError, match=f"{name}.*non-finite|non-finite.*{where}"):
        forward(X, poisoned)
    # changed to non-finite between forward and backward
    fresh = _copy(good)
    AL, caches = forward(X, fresh)
    fresh[where][...] = poisoned[where]
    with pytest.raises(ValueError, match="non-finite"):
        backward(AL, Y, caches, fresh)
    # update: a non-finite parameter or gradient; nothing written
    target = _copy(poisoned)
    with pytest.raises(ValueError, match="non-finite"):
        update(target, grads, 0.1)
    _close_dicts(target, poisoned, rtol=0, atol=0, equal_nan=True)
    target = _copy(good)
    bad_grads = dict(grads)
    bad_grads["d" + where] = np.full_like(grads["d" + where], bad)
    with pytest.raises(ValueError, match=f"d{where}.*non-finite"):
        update(target, bad_grads, 0.1)
    _close_dicts(target, good, rtol=0, atol=0)


@pytest.mark.parametrize("change", ["setitem", "update", "ior", "setdefault", "pop", "popitem", "delitem", "clear"])
def test_every_change_to_a_packed_dict_or_gradients_is_seen(change):
    """Packed parameters and kept gradients are trusted as unchanged in O(1) until one of the dict's own
    methods changes them; then the full comparison decides."""
    params, X, Y = _course_problem([3, 4, 1], 5, 4)
    C.L_model_forward(X, params)  # (the packed path, once)
    new_W1 = np.full((4, 3), 0.2)
    edits = {
        "setitem": lambda d: d.__setitem__("W1", new_W1),
        "update": lambda d: d.update(W1=new_W1),
        "ior": lambda d: d.__ior__({"W1": new_W1}),
        "setdefault": lambda d: (d.pop("W1"), d.setdefault("W1", new_W1)),
        "pop": lambda d: (d.pop("W1"), d.__setitem__("W1", new_W1)),
        "popitem": lambda d: [d.__setitem__(k, v) for k, v in [d.popitem()] + [("W1", new_W1)]],
        "delitem": lambda d: (d.__delitem__("W1"), d.__setitem__("W1", new_W1)),
        "clear": lambda d: (lambda saved: (d.clear(), d.update({**saved, "W1": new_W1})))(dict(d)),
    }
    edits[change](params)
    assert params["W1"] is new_W1
    AL, caches = C.L_model_forward(X, params)
    assert caches[0][0][1] is new_W1
    AL_t, caches_t = T.L_model_forward(X, {k: v.copy() for k, v in params.items()})
    assert_allclose(AL, AL_t, **EXACT)
    grads = C.L_model_backward(AL, Y, caches)
    want = T.L_model_backward(AL_t, Y, caches_t)
    new_dW1 = np.full((4, 3), 0.5)
    changed = dict(grads)
    grads_edit = {"setitem": lambda g: g.__setitem__("dW1", new_dW1), "update": lambda g: g.update(dW1=new_dW1),
                  "ior": lambda g: g.__ior__({"dW1": new_dW1})}.get(change, lambda g: g.__setitem__("dW1", new_dW1))
    grads_edit(grads)
    changed["dW1"] = new_dW1
    stepped = C.update_parameters(params, grads, 0.1)
    want_step = T.update_parameters({k: v.copy() for k, v in params.items()}, changed, 0.1)
    _close_dicts(stepped, want_step, **EXACT)
    _close_dicts({k: v for k, v in grads.items() if k != "dW1"}, {k: v for k, v in want.items() if k != "dW1"},
                 **EXACT)


# --- compiled entry points (the dispatcher skipped) -------------------------------------------------------
ODD_ARRAYS = r"""
import numpy as np
from numpy.testing import assert_allclose
from fastmlp import _steps, functional as F, reference as R

def unaligned(a):
    raw = np.zeros(a.nbytes + 1, np.uint8)
    b = np.frombuffer(raw.data, a.dtype, a.size, offset=1).reshape(a.shape)
    b[...] = a
    assert not b.flags.aligned
    return b

def readonly(a):
    b = a.copy()
    b.flags.writeable = False
    return b

rng = np.random.RandomState(0)
kinds = {"plain": lambda a: a.copy(), "unaligned": unaligned, "readonly": readonly,
         "fortran": np.asfortranarray, "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">"))}
for dtype in (np.float64, np.float32, np.float64):
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    X0 = rng.randn(3, 6).astype(dtype)
    Y0 = (rng.rand(1, 6) < 0.5).astype(dtype)
    for kx, make_x in kinds.items():
        for ky, make_y in kinds.items():
            params = F.initialize_parameters([3, 4, 1], seed=1, dtype=dtype)
            ref = {k: v.copy() for k, v in params.items()}
            X, Y = make_x(X0), make_y(Y0)
            AL, caches = F.L_model_forward(X, params)
            AL_r, caches_r = R.L_model_forward(X0, ref)
            assert_allclose(AL, AL_r, **tol)
            assert_allclose(F.compute_cost(make_y(AL), Y), R.compute_cost(AL_r, Y0), **tol)
            grads = F.L_model_backward(AL, Y, caches)
            grads_r = R.L_model_backward(AL_r, Y0, caches_r)
            for key in grads_r:
                assert_allclose(grads[key], grads_r[key], **tol, err_msg=key)
            F.update_parameters(params, grads, 0.1)
            R.update_parameters(ref, grads_r, 0.1)
            for key in ref:
                assert_allclose(params[key], ref[key], **tol, err_msg=key)
assert len(_steps._ENTRIES) >= 6, _steps._ENTRIES  # forward, backward, update, cost: float64 and float32
# the compiled entry points themselves were called (not the dispatchers)
# (each behind its guard, which checks the arguments' types again just before the call)
assert all(type(run.entry).__name__ == "builtin_function_or_method" for run in _steps._ENTRIES.values()), (
    _steps._ENTRIES)
print("ok")
"""


def test_arrays_of_every_layout_give_the_reference_numbers_through_the_entry_points():
    """Kernels are called through their compiled entry points only with arguments of exactly their types:
    unaligned, read-only, Fortran-ordered and big-endian inputs go through the dispatcher or a conversion,
    alternating dtypes included, and every result equals the reference (in a child: a wrong call would crash)."""
    from tests.child import describe, run_python

    proc = run_python(ODD_ARRAYS, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), describe(proc)


# --- the caller's own X changed in place, rings, read-only views, default activations -----------------------
X_CHANGED_IN_PLACE = r"""
import numpy as np
from fastmlp import architecture as A, functional as F, reference as R

rng = np.random.default_rng(0)
for change in ("shape_wide", "shape_tall", "shape_swap", "dtype_int"):
    for first in (True, False):  # with and without entry points learnt by an earlier step
        P = F.initialize_parameters_deep([5, 4, 3, 1], seed=1)
        Y = np.ones((1, 7))
        if first:
            X0 = rng.standard_normal((5, 7))
            AL0, c0 = F.L_model_forward(X0, P)
            F.L_model_backward(AL0, Y, c0)
        X = rng.standard_normal((5, 7))
        AL, caches = F.L_model_forward(X, P)
        if change == "shape_wide":
            X.shape = (1, 35)
        elif change == "shape_tall":
            X.shape = (35, 1)
        elif change == "shape_swap":
            X.shape = (7, 5)
        else:
            X.dtype = np.int64
        try:
            g = F.L_model_backward(AL, Y, caches)
        except ValueError as exc:
            print(change, "ValueError", str(exc)[:60])
            continue
        # the reference on the same (changed) caches
        ref = R.L_model_backward(AL, Y, caches)
        for key in ("dW1", "db1", "dW3"):
            np.testing.assert_allclose(g[key], ref[key], rtol=1e-10, atol=1e-12)
        print(change, "equal to the reference")

# the architecture dialect: memory["A0"] is X
arch = [{"input_dim": 5, "output_dim": 4, "activation": "relu"}, {"input_dim": 4, "output_dim": 1,
        "activation": "sigmoid"}]
params = A.init_layers(arch, 2)
X = rng.standard_normal((5, 7))
Y_hat, memory = A.full_forward_propagation(X, params, arch)
X.shape = (1, 35)
try:
    A.full_backward_propagation(Y_hat, np.ones((1, 7)), memory, params, arch)
except ValueError as exc:
    print("architecture ValueError", str(exc)[:60])
print("survived")
"""


def test_the_caller_s_X_changed_in_place_between_forward_and_backward_never_reaches_the_kernel():
    """The forward pass keeps the caller's own ``X`` (no copy); reshaping or re-typing it in place before the
    backward pass once made the kernel write outside its buffers. Now the pass no longer counts: the caches
    are validated as the reference's would be (a clear ValueError, or the reference's numbers)."""
    from tests.child import describe, run_python

    for env in ({}, {"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None}):
        proc = run_python(X_CHANGED_IN_PLACE, env={"MALLOC_PERTURB_": "165", **env}, timeout=600)
        assert proc.returncode == 0, describe(proc)
        assert "survived" in proc.stdout, describe(proc)
        assert "shape_wide ValueError" in proc.stdout and "architecture ValueError" in proc.stdout, describe(proc)


def test_reuse_keeps_results_for_a_bounded_number_of_sample_counts():
    P = F.initialize_parameters_deep([2, 3, 1], seed=0)
    X = np.random.default_rng(0).standard_normal((2, 60))
    Y = np.ones((1, 60))
    for m in range(1, 61):
        AL, caches = F.L_model_forward(X[:, :m], P)
        F.L_model_backward(AL, Y[:, :m], caches)
    layout = caches._pass.layout
    assert 0 < len(layout.rings) <= _steps.MAX_RINGS
    assert all(key[1] > 60 - _steps.MAX_RINGS for key in layout.rings)


@pytest.mark.parametrize("dialect", ["functional", "course"])
def test_an_in_place_update_refuses_a_read_only_parameter_as_the_reference_does(dialect):
    X = np.random.default_rng(1).standard_normal((5, 6))
    Y = np.ones((1, 6))
    if dialect == "functional":
        P = F.initialize_parameters_deep([5, 4, 1], seed=0)
        AL, caches = F.L_model_forward(X, P)
        grads = F.L_model_backward(AL, Y, caches)
        P["W1"].flags.writeable = False
        before = {k: v.copy() for k, v in P.items()}
        with pytest.raises(ValueError, match="W1.*read-only"):
            F.update_parameters(P, grads, 0.1)
    else:
        P = C.initialize_parameters_deep([5, 4, 1])
        AL, caches = C.L_model_forward(X, P)
        grads = C.L_model_backward(AL, Y, caches)
        P["W1"].flags.writeable = False
        before = {k: v.copy() for k, v in P.items()}
        with pytest.raises(ValueError, match="W1.*read-only"):
            C.update_parameters(P, grads, 0.1, in_place=True)
    for key, value in before.items():
        assert_array_equal(P[key], value)


def test_backward_without_activations_uses_the_defaults_as_the_reference_does():
    X = np.random.default_rng(2).standard_normal((4, 9))
    Y = (np.random.default_rng(3).random((1, 9)) < 0.5).astype(float)
    P = F.initialize_parameters_deep([4, 5, 1], seed=0)
    AL, caches = F.L_model_forward(X, P, ["tanh", "sigmoid"])
    g = F.L_model_backward(AL, Y, caches)
    Pr = R.initialize_parameters_deep([4, 5, 1], seed=0)
    ALr, cr = R.L_model_forward(X, Pr, ["tanh", "sigmoid"])
    ref = R.L_model_backward(ALr, Y, cr)
    for key in ref:
        assert_allclose(g[key], ref[key], **tol("float64"))


# --- plain dicts read where they are (the array kernels: no copy into one vector) ---------------------------
ACTS = ["relu", "sigmoid", "tanh", "leaky_relu", "linear"]


@settings(max_examples=25, deadline=None)
@given(dims=st.lists(st.integers(1, 5), min_size=2, max_size=4), m=st.integers(1, 5), seed=st.integers(0, 999),
       hidden=st.lists(st.sampled_from(ACTS), min_size=3, max_size=3), f32=st.booleans())
def test_a_plain_dict_is_read_where_it_is_and_each_step_equals_the_reference(dims, m, seed, hidden, f32):
    dtype = np.float32 if f32 else np.float64
    rng = np.random.RandomState(seed)
    params = {}
    for l in range(1, len(dims)):
        params[f"W{l}"] = (rng.randn(dims[l], dims[l - 1]) * 0.7).astype(dtype)
        params[f"b{l}"] = (rng.randn(dims[l], 1) * 0.2).astype(dtype)
    acts = hidden[:len(dims) - 2] + ["sigmoid"]
    X = rng.randn(dims[0], m).astype(dtype)
    Y = (rng.rand(dims[-1], m) < 0.5).astype(dtype)
    theirs = _copy(params)
    arrays = dict(params)
    for _ in range(2):
        AL, caches = F.L_model_forward(X, params, acts)
        assert caches._pass.Wb is not None  # the caller's own arrays went to the kernel
        grads = F.L_model_backward(AL, Y, caches, acts)
        AL_r, caches_r = R.L_model_forward(X, theirs, acts)
        grads_r = R.L_model_backward(AL_r, Y, caches_r, acts)
        assert_allclose(AL, AL_r, **tol(dtype))
        for key in grads_r:
            assert grads[key].dtype == dtype
            assert_allclose(grads[key], grads_r[key], **tol(dtype), err_msg=key)
        assert F.update_parameters(params, grads, 0.5) is params
        R.update_parameters(theirs, grads_r, 0.5)
        for key in theirs:
            assert params[key] is arrays[key]  # in place, in the caller's arrays
            assert_allclose(params[key], theirs[key], **tol(dtype), err_msg=key)


@pytest.mark.parametrize("dialect", ["functional", "course", "architecture"])
def test_a_plain_dict_of_the_kernels_types_is_never_copied(dialect, monkeypatch):
    forward, backward, update = _dialects()[dialect]
    params, X, Y = _plain()
    theirs = _copy(params)
    forward(X, params)  # (compiled, entry points learnt)

    def refuse(*args, **kwargs):
        raise AssertionError("copied")

    for name in ("_flat_copy", "_flat_now", "pack"):
        monkeypatch.setattr(_steps, name, refuse)
    AL, caches = forward(X, params)
    grads = backward(AL, Y, caches, params)
    update(params, grads, 0.3)
    monkeypatch.undo()
    _reference_step(X, Y, theirs, 0.3)
    _close_dicts(params, theirs, **tol(np.float64))


@pytest.mark.parametrize("kind", ["fortran", "readonly", "unaligned", "non-contiguous", "big-endian"])
def test_plain_dicts_of_other_layouts_are_copied_and_equal_the_reference(kind):
    params, X, Y = _plain()
    theirs = _copy(params)

    def unaligned(a):
        raw = np.zeros(a.nbytes + 1, np.uint8)
        b = np.frombuffer(raw.data, a.dtype, a.size, offset=1).reshape(a.shape)
        b[...] = a
        return b

    def readonly(a):
        a = a.copy()
        a.flags.writeable = False
        return a

    make = {"fortran": np.asfortranarray, "readonly": readonly, "unaligned": unaligned,
            "non-contiguous": lambda a: np.repeat(a, 2, axis=1)[:, ::2],
            "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">"))}[kind]
    params["W2"] = make(params["W2"])
    params["b1"] = make(params["b1"])
    AL, caches = F.L_model_forward(X, params)
    grads = F.L_model_backward(AL, Y, caches)
    AL_r, grads_r = _reference_step(X, Y, theirs, 0.3)
    assert_allclose(AL, AL_r, **tol(np.float64))
    for key in grads_r:
        assert_allclose(grads[key], grads_r[key], **tol(np.float64), err_msg=key)
    if kind in ("readonly", "big-endian"):  # (as before: an in-place update refuses both)
        with pytest.raises(ValueError, match="read-only|dtype >f8"):
            F.update_parameters(params, grads, 0.3)
        return
    F.update_parameters(params, grads, 0.3)
    _close_dicts(params, theirs, **tol(np.float64))


PLAIN_CHANGED_IN_PLACE = r"""
import sys
import numpy as np
from fastmlp import architecture as A, course as C, functional as F, reference as R

arch = [{"input_dim": 3, "output_dim": 4, "activation": "relu"}, {"input_dim": 4, "output_dim": 2,
        "activation": "relu"}, {"input_dim": 2, "output_dim": 1, "activation": "sigmoid"}]
dialects = {
    "functional": (lambda X, p: F.L_model_forward(X, p), lambda AL, Y, c, p: F.L_model_backward(AL, Y, c),
                   lambda p, g: F.update_parameters(p, g, 0.1)),
    "course": (lambda X, p: C.L_model_forward(X, p), lambda AL, Y, c, p: C.L_model_backward(AL, Y, c, 0),
               lambda p, g: C.update_parameters(p, g, 0.1, in_place=True)),
    "architecture": (lambda X, p: A.full_forward_propagation(X, p, arch),
                     lambda AL, Y, c, p: A.full_backward_propagation(AL, Y, c, p, arch),
                     lambda p, g: A.update(p, g, arch, 0.1)),
}


def fresh(seed=0):
    rng = np.random.RandomState(seed)
    dims = [3, 4, 2, 1]
    p = {}
    for l in range(1, 4):
        p[f"W{l}"] = rng.randn(dims[l], dims[l - 1])
        p[f"b{l}"] = rng.randn(dims[l], 1)
    return p, rng.randn(3, 6), (rng.rand(1, 6) < 0.5).astype(float)


def change(p, how):
    W = p["W2"]
    if how == "ndim3":
        W.shape = (1,) + W.shape
    elif how == "ndim1":
        W.shape = (W.size,)
    elif how == "swap":
        W.shape = W.shape[::-1]
    elif how == "b_row":
        p["b1"].shape = (1, 4)
    elif how == "float32":
        W.dtype = np.float32
    elif how == "int64":
        W.dtype = np.int64
    elif how == "big_endian":
        W.dtype = W.dtype.newbyteorder(">")
    elif how == "readonly":
        W.flags.writeable = False
    elif how == "nan":
        W[0, 0] = np.nan
    elif how == "replaced_wider":
        p["W2"] = np.ones((2, 5))
    elif how == "replaced_list":
        p["W2"] = W.tolist()


outcomes = {}
for name, (forward, backward, update) in dialects.items():
    for how in ("ndim3", "ndim1", "swap", "b_row", "float32", "int64", "big_endian", "readonly", "nan",
                "replaced_wider", "replaced_list"):
        for when in ("before backward", "before update", "before forward"):
            p, X, Y = fresh()
            for _ in range(2):  # entry points learnt, results kept for reuse
                AL, c = forward(X, p)
                update(p, backward(AL, Y, c, p), )
            try:
                if when == "before forward":
                    change(p, how)
                AL, c = forward(X, p)
                if when == "before backward":
                    change(p, how)
                g = backward(AL, Y, c, p)
                if when == "before update":
                    change(p, how)
                update(p, g)
                outcomes[name, how, when] = "ran"
            except (ValueError, TypeError) as exc:
                outcomes[name, how, when] = type(exc).__name__
print(sorted(set(outcomes.values())))
print("survived")
"""


def test_a_plain_dict_changed_in_place_at_any_point_of_a_step_never_crashes():
    """The array kernels read the caller's own arrays, which the caller can reshape, re-type, flag or replace
    at any time: every step checks what decides how an array reaches the kernel (in Python) and its shapes,
    strides and alignment (in the kernel). In a child, under MALLOC_PERTURB_, both OpenBLAS settings."""
    from tests.child import describe, run_python

    for env in ({}, {"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None}):
        proc = run_python(PLAIN_CHANGED_IN_PLACE, env={"MALLOC_PERTURB_": "165", **env}, timeout=600)
        assert proc.returncode == 0 and "survived" in proc.stdout, describe(proc)
        assert "ValueError" in proc.stdout, describe(proc)


@pytest.mark.parametrize("how", ["swap", "b_row", "float32", "big_endian", "replaced_wider"])
def test_a_plain_dict_changed_between_forward_and_backward_gives_the_reference_s_answer(how):
    """Whatever the change, the backward pass answers as the reference's does on the same caches: the same
    numbers or a ValueError."""
    params, X, Y = _plain()
    AL, caches = F.L_model_forward(X, params)
    F.L_model_backward(AL, Y, caches)
    AL, caches = F.L_model_forward(X, params)
    W = params["W2"]
    if how == "swap":
        W.shape = W.shape[::-1]
    elif how == "b_row":
        params["b1"].shape = (1, 4)
    elif how == "float32":
        W.dtype = np.float32
    elif how == "big_endian":
        W.dtype = W.dtype.newbyteorder(">")
    else:
        params["W2"] = np.ones((2, 5))  # (the caches keep the forward pass's W2)
    try:
        want = R.L_model_backward(AL.copy(), Y, caches)
    except ValueError:
        with pytest.raises(ValueError):
            F.L_model_backward(AL, Y, caches)
        return
    got = F.L_model_backward(AL, Y, caches)
    for key in want:
        assert_allclose(got[key], want[key], **tol(np.float64), err_msg=key)


@pytest.mark.parametrize("same_X", [True, False])
def test_a_cache_tuple_the_caller_keeps_never_changes(same_X):
    """Caches are reused two steps later only when nothing else holds them, their arrays or their
    ``((A_prev, W, b), Z)`` tuples: a tuple kept by the caller keeps its values."""
    rng = np.random.default_rng(5)
    P = F.initialize_parameters_deep([2, 3, 1], seed=0)
    X = rng.standard_normal((2, 4))
    Y = np.ones((1, 4))
    AL, caches = F.L_model_forward(X, P)
    held = caches[0]
    Z_before = held[1].copy()
    del AL, caches
    for k in range(4):
        X_k = X if same_X else X * (k + 2.0)
        if same_X:
            P["W1"] *= 1.5  # (new values through the same arrays)
        AL, caches = F.L_model_forward(X_k, P)
        F.L_model_backward(AL, Y, caches)
        del AL, caches
    assert_array_equal(held[1], Z_before)


def test_a_plain_dict_s_deferred_dA0_is_that_of_the_backward_pass(always_lazy):
    """dA0 computed when first read from a plain dict's own W1: a copy of it as the backward pass read it."""
    params, X, Y = _plain()
    theirs = _copy(params)
    AL, caches = F.L_model_forward(X, params)
    assert caches._pass.Wb is not None
    grads = F.L_model_backward(AL, Y, caches)
    assert type(grads) is _steps.LazyGrads
    params["W1"] *= -3.0  # after the backward pass, before dA0 is read
    AL_r, caches_r = R.L_model_forward(X, theirs)
    want = R.L_model_backward(AL_r, Y, caches_r)
    for key in want:
        assert_allclose(grads[key], want[key], **tol(np.float64), err_msg=key)


BUFFERS_CHANGED_THROUGH_BASE = r"""
import numpy as np
from fastmlp import architecture as A, functional as F

arch = [{"input_dim": 3, "output_dim": 5, "activation": "relu"}, {"input_dim": 5, "output_dim": 1,
        "activation": "sigmoid"}]
rng = np.random.RandomState(0)
X, Y = rng.randn(3, 8), (rng.rand(1, 8) < 0.5).astype(float)


def plain():
    r = np.random.RandomState(1)
    return {"W1": r.randn(5, 3), "b1": r.randn(5, 1), "W2": r.randn(1, 5), "b2": r.randn(1, 1)}


def spoil(a, how):  # the array a result's arrays view, changed in place (and let go)
    if how == "column":
        a.shape = (a.size, 1) if a.ndim == 2 else (a.size,)
    elif how == "ndim30":
        a.shape = (1,) * 29 + (a.size,)
    elif how == "float32":
        a.dtype = np.float32


def loop(kind, how=None):
    p = plain() if kind != "packed" else F.initialize_parameters([3, 5, 1], seed=1)
    for step in range(6):
        if kind == "architecture":
            AL, c = A.full_forward_propagation(X, p, arch)
            if step == 3 and how:
                spoil(c["Z1"].base, how)
            A.update(p, A.full_backward_propagation(AL, Y, c, p, arch), arch, 0.1)
            continue
        AL, c = F.L_model_forward(X, p)
        if step == 2 and how:
            spoil(AL.base, how)  # the forward buffer, before backward reads it
        g = F.L_model_backward(AL, Y, c)
        if step == 3 and how:
            spoil(g["dW1"].base, how)  # the gradient buffer, reused by a later step
        if step == 4 and how and kind == "packed":
            spoil(p["W1"].base, how)  # the parameters' flat vector
        p = F.update_parameters(p, g, 0.1)
        del AL, c, g
    return p


for kind in ("plain", "packed", "architecture"):
    want = loop(kind)
    for how in ("column", "ndim30", "float32"):
        got = loop(kind, how)
        print(kind, how, "equal" if all(np.array_equal(got[k], want[k]) for k in want) else "differs", flush=True)
print("survived")
"""


def test_fastmlp_s_own_buffers_changed_through_a_result_s_base_never_reach_a_kernel():
    """A result's arrays are views; their ``base`` (the forward buffer behind ``AL`` and the caches, the gradient
    buffer, a packed dict's flat vector) is a NumPy array the caller can reshape or re-type in place. The
    kernels trust the shapes of the buffers they get (a forward buffer reshaped to one column made them write
    past its end; a flat vector given thirty dimensions crashed the interpreter): they get views of their own,
    so every step goes on exactly as without the change. In a child, under MALLOC_PERTURB_."""
    from tests.child import describe, run_python

    proc = run_python(BUFFERS_CHANGED_THROUGH_BASE, env={"MALLOC_PERTURB_": "165"})
    assert proc.returncode == 0 and "survived" in proc.stdout, describe(proc)
    assert proc.stdout.count("equal") == 9 and "differs" not in proc.stdout, describe(proc)


def test_a_float_subclass_slope_whose_conversion_changes_the_parameters_counts_as_changed_before_the_call():
    """``leaky_slope`` is converted before anything is checked: a float subclass whose ``__float__`` byte-swaps
    W1 in place (once) gives what a plain call on the swapped W1 gives (the kernels had read the bytes with the
    byte order checked before the conversion: other numbers, silently)."""
    rng = np.random.RandomState(0)
    p = {"W1": rng.randn(4, 3) * 1e-3, "b1": rng.randn(4, 1), "W2": rng.randn(1, 4), "b2": rng.randn(1, 1)}
    X, Y = rng.randn(3, 6), (rng.rand(1, 6) < 0.5).astype(float)
    acts = ["leaky_relu", "sigmoid"]

    def swap():
        p["W1"].dtype = p["W1"].dtype.newbyteorder()

    class Slope(float):
        armed = True

        def __float__(self):
            if self.armed:
                swap()
                self.armed = False
            return 0.01

    for _ in range(3):  # (entry points learnt, results kept)
        AL, caches = F.L_model_forward(X, p, acts)
        F.update_parameters(p, F.L_model_backward(AL, Y, caches, acts), 0.1)
    got = F.L_model_forward(X, p, acts, leaky_slope=Slope(0.01))[0].copy()
    want = F.L_model_forward(X, p, acts)[0]
    assert_allclose(got, want, **tol(np.float64))
    swap()
    AL, caches = F.L_model_forward(X, p, acts)
    got = F.L_model_backward(AL, Y, caches, acts, leaky_slope=Slope(0.01))["dW1"].copy()
    swap()
    AL, caches = F.L_model_forward(X, p, acts)
    swap()
    want = F.L_model_backward(AL, Y, caches, acts)["dW1"]
    assert_allclose(got, want, **tol(np.float64))


def test_the_base_of_a_result_s_arrays_the_caller_keeps_never_changes():
    """Results are reused once nobody holds them or any of their arrays; the ``base`` of those arrays (the buffer
    the kernels write through a view of their own) counts as one of them: kept, it stays as it was."""
    X, Y = np.array([[0.0, 0, 1, 1], [0, 1, 0, 1]]), np.array([[0.0, 1, 1, 0]])
    for make in (lambda: F.initialize_parameters([2, 3, 1], seed=1), lambda: _copy(F.initialize_parameters(
            [2, 3, 1], seed=1)), lambda: C.initialize_parameters_deep([2, 3, 1])):
        p, held = make(), []
        for i in range(8):
            AL, caches = F.L_model_forward(X, p)
            g = F.L_model_backward(AL, Y, caches)
            if i == 2:
                held += [(AL.base, AL.base.copy()), (g["dW1"].base, g["dW1"].base.copy())]
            p = C.update_parameters(p, g, 0.5)  # (a new dict each step: the one before is let go)
            if i == 3:
                held.append((p["W1"].base, p["W1"].base.copy()))
            del AL, caches, g
        for base, values in held:
            assert_array_equal(base, values)
