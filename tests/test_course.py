"""fastmlp.course: the deep-learning course's dialect (seeds 000/001) equals its NumPy transcription.

``tests/references/course_numpy.py`` is that dialect written in plain NumPy; every function of
``fastmlp.course`` is held to it at 1e-12 (float64), on random architectures, with the course's seeds, and
through the fast per-step path (packed parameters, caches carrying the kernel buffer) as well as the slow
one (plain dicts from elsewhere).
"""

import copy
import pickle

import numpy as np
import pytest
from helpers import numeric_gradients
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from references import course_numpy as T

from fastmlp import course as C

EXACT = dict(rtol=1e-12, atol=1e-15)
XOR_X = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
XOR_Y = np.array([[0.0, 1.0, 1.0, 0.0]])


def _data(dims, m, seed):
    rng = np.random.RandomState(seed)
    return rng.randn(dims[0], m), (rng.rand(dims[-1], m) < 0.5).astype(float)


def _spread(params, seed):
    """Parameters large enough that every layer matters (the course's x0.01 makes deep nets near-constant)."""
    rng = np.random.RandomState(seed)
    for key in params:
        params[key][...] = rng.randn(*params[key].shape)
    return params


def _close_dicts(got, want, **tol):
    assert list(got) == list(want)
    for key in want:
        assert np.shape(got[key]) == np.shape(want[key]), key
        assert_allclose(got[key], want[key], err_msg=key, **(tol or EXACT))


def test_initialisers_equal_the_course_draws_and_seed_the_global_generator():
    for args in ([(3, 4, 2)], [([3, 4, 2],)], [([5, 4, 3, 1],)]):
        (a,) = args
        got = C.initialize_parameters(*a)
        after_ours = np.random.rand()  # noqa: NPY002
        want = T.initialize_parameters(*a)
        after_theirs = np.random.rand()  # noqa: NPY002
        _close_dicts(got, want, rtol=0, atol=0)
        assert after_ours == after_theirs  # the global generator is left where the course code leaves it
        assert all(v.dtype == np.float64 for v in got.values())
    _close_dicts(C.initialize_parameters_deep([5, 4, 3, 1]), T.initialize_parameters_deep([5, 4, 3, 1]), rtol=0, atol=0)
    assert C.initialize_parameters(2, 3, 1)["W1"].shape == (3, 2)
    with pytest.raises(ValueError):
        C.initialize_parameters(2, 3)


def test_activations_return_a_and_the_cache():
    Z = np.array([[-2.0, 0.0, 3.0]])
    A, cache = C.sigmoid(Z)
    assert cache is Z
    assert_allclose(A, T.sigmoid(Z)[0], **EXACT)
    A, cache = C.relu(Z)
    assert cache is Z
    assert_array_equal(A, [[0.0, 0.0, 3.0]])
    dA = np.array([[1.0, 2.0, 3.0]])
    assert_array_equal(C.relu_backward(dA, Z), [[0.0, 2.0, 3.0]])  # relu' at 0 passes (dZ[Z < 0] = 0)
    assert_array_equal(C.relu_backward(dA, Z, grad_at_zero=0), [[0.0, 0.0, 3.0]])
    assert_array_equal(dA, [[1.0, 2.0, 3.0]])
    assert_allclose(C.sigmoid_backward(dA, Z), T.sigmoid_backward(dA, Z), **EXACT)
    with pytest.raises(ValueError, match="grad_at_zero"):
        C.relu_backward(dA, Z, grad_at_zero=0.5)


def test_single_layer_functions_equal_the_transcription():
    rng = np.random.RandomState(0)
    A, W, b = rng.randn(3, 5), rng.randn(4, 3), rng.randn(4, 1)
    Z, cache = C.linear_forward(A, W, b)
    assert cache[0] is A and cache[1] is W and cache[2] is b
    assert_allclose(Z, T.linear_forward(A, W, b)[0], **EXACT)
    for act in ("relu", "sigmoid"):
        got, (lin, Zc) = C.linear_activation_forward(A, W, b, act)
        want, _ = T.linear_activation_forward(A, W, b, act)
        assert_allclose(got, want, **EXACT)
        dA = rng.randn(4, 5)
        for g, w in zip(C.linear_activation_backward(dA, (lin, Zc), act),
                        T.linear_activation_backward(dA, (lin, Zc), act), strict=True):
            assert_allclose(g, w, **EXACT)
    with pytest.raises(ValueError, match="tanh"):
        C.linear_activation_forward(A, W, b, "tanh")


@settings(max_examples=25)
@given(dims=st.lists(st.integers(1, 6), min_size=2, max_size=5), m=st.integers(1, 7), seed=st.integers(0, 999),
       packed=st.booleans(), grad_at_zero=st.sampled_from([0, 1]))
def test_a_training_step_equals_the_transcription(dims, m, seed, packed, grad_at_zero):
    dims[-1] = 1
    X, Y = _data(dims, m, seed)
    params = _spread(C.initialize_parameters_deep(dims), seed)
    if not packed:  # a plain dict from elsewhere takes the validated, copying path
        params = {k: v.copy() for k, v in params.items()}
    theirs = {k: v.copy() for k, v in params.items()}
    X_before, Y_before = X.copy(), Y.copy()

    AL, caches = C.L_model_forward(X, params)
    AL_t, caches_t = T.L_model_forward(X, theirs)
    assert_allclose(AL, AL_t, **EXACT)
    assert len(caches) == len(caches_t)
    for ((A_prev, W, b), Z), ((A_prev_t, _, _), Z_t) in zip(caches, caches_t, strict=True):
        assert_allclose(A_prev, A_prev_t, **EXACT)
        assert_allclose(Z, Z_t, **EXACT)
    assert caches[0][0][0] is X and caches[0][0][1] is params["W1"] and caches[-1][0][2] is params[f"b{len(dims) - 1}"]

    cost = C.compute_cost(AL, Y)
    assert type(cost) is type(T.compute_cost(AL_t, Y))
    assert_allclose(cost, T.compute_cost(AL_t, Y), **EXACT)

    grads = C.L_model_backward(AL, Y, caches, grad_at_zero=grad_at_zero)
    grads_t = T.L_model_backward(AL_t, Y, caches_t, grad_at_zero=grad_at_zero)
    _close_dicts(grads, grads_t, rtol=1e-11, atol=1e-14)  # A - Y vs the course's divisions: a few ulps

    new = C.update_parameters(params, grads, 0.3)
    new_t = T.update_parameters(theirs, grads_t, 0.3)
    assert new is not params and all(new[k] is not params[k] for k in params)
    _close_dicts(new, new_t, rtol=1e-11, atol=1e-14)
    _close_dicts(params, theirs, rtol=0, atol=0)  # the caller's parameters are untouched
    assert_array_equal(X, X_before)
    assert_array_equal(Y, Y_before)

    same = C.update_parameters(params, grads, 0.3, in_place=True)
    assert same is params
    _close_dicts(params, new_t, rtol=1e-11, atol=1e-14)


def test_a_loop_of_steps_equals_the_transcription_and_the_whole_loop_function():
    dims = [2, 4, 1]
    ours = C.initialize_parameters_deep(dims)
    theirs = T.initialize_parameters_deep(dims)
    costs, costs_t = [], []
    for _ in range(300):
        AL, caches = C.L_model_forward(XOR_X, ours)
        costs.append(C.compute_cost(AL, XOR_Y))
        ours = C.update_parameters(ours, C.L_model_backward(AL, XOR_Y, caches), 0.5)
        AL, caches = T.L_model_forward(XOR_X, theirs)
        costs_t.append(T.compute_cost(AL, XOR_Y))
        theirs = T.update_parameters(theirs, T.L_model_backward(AL, XOR_Y, caches), 0.5)
    assert_allclose(costs, costs_t, rtol=1e-10)
    _close_dicts(ours, theirs, rtol=1e-10, atol=1e-13)
    trained, every_100 = C.L_layer_model(XOR_X, XOR_Y, dims, learning_rate=0.5, num_iterations=300)
    assert_allclose(every_100, costs[::100], rtol=1e-10)
    _close_dicts(trained, theirs, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("grad_at_zero", [1, 0])
def test_whole_loop_keeps_the_relu_convention_at_zero(grad_at_zero):
    """XOR [2, 4, 1] from the course initialisation (b = 0): the sample (0, 0) gives Z == 0 exactly, where the
    two conventions part ways -- the course transcription's reaches a low cost, the other does not."""
    params, costs = C.L_layer_model(XOR_X, XOR_Y, [2, 4, 1], learning_rate=0.5, num_iterations=1000,
                                    grad_at_zero=grad_at_zero)
    want_params, want_costs = T.L_layer_model(XOR_X, XOR_Y, [2, 4, 1], learning_rate=0.5, num_iterations=1000,
                                              grad_at_zero=grad_at_zero)
    assert_allclose(costs, want_costs, rtol=1e-9)
    _close_dicts(params, want_params, rtol=1e-9, atol=1e-12)
    final = C.compute_cost(C.L_model_forward(XOR_X, params)[0], XOR_Y)
    assert (final < 0.05) if grad_at_zero else (final > 0.3)


def test_whole_loop_prints_and_starts_from_given_parameters(capsys):
    start = C.initialize_parameters([2, 3, 1])
    kept = copy.deepcopy(start)
    params, costs = C.L_layer_model(XOR_X, XOR_Y, [2, 3, 1], 0.1, 250, print_cost=True, parameters=start)
    _close_dicts(start, kept, rtol=0, atol=0)
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == [f"Cost after iteration {i}" for i in (0, 100, 200, 249)]
    assert len(costs) == 3
    with pytest.raises(ValueError, match="layer sizes"):
        C.L_layer_model(XOR_X, XOR_Y, [2, 5, 1], parameters=start)


def test_gradients_match_central_differences():
    rng = np.random.RandomState(4)
    dims = [3, 5, 4, 1]
    X, Y = rng.randn(3, 6), (rng.rand(1, 6) < 0.5).astype(float)
    params = _spread(C.initialize_parameters_deep(dims), 5)
    AL, caches = C.L_model_forward(X, params)
    grads = C.L_model_backward(AL, Y, caches)
    numeric = numeric_gradients(lambda p: C.compute_cost(C.L_model_forward(X, p)[0], Y), params)
    for key in params:
        assert_allclose(grads["d" + key], numeric[key], rtol=1e-5, atol=1e-8, err_msg=key)


def test_edits_to_packed_parameters_are_seen():
    params = _spread(C.initialize_parameters_deep([2, 3, 1]), 1)
    params["W1"][0, 0] = 5.0  # in place: still the packed view
    AL, _ = C.L_model_forward(XOR_X, params)
    assert_allclose(AL, T.L_model_forward(XOR_X, {k: v.copy() for k, v in params.items()})[0], **EXACT)
    params["W2"] = np.ones((1, 3))  # replaced: the dict is no longer packed, the new array is used
    AL, caches = C.L_model_forward(XOR_X, params)
    assert caches[1][0][1] is params["W2"]
    assert_allclose(AL, T.L_model_forward(XOR_X, dict(params))[0], **EXACT)
    grads = C.L_model_backward(AL, XOR_Y, caches)
    _close_dicts(grads, T.L_model_backward(AL, XOR_Y, T.L_model_forward(XOR_X, dict(params))[1]), rtol=1e-11,
                 atol=1e-14)


def test_packed_parameters_copy_and_pickle_as_plain_data():
    params = C.initialize_parameters_deep([3, 2, 1])
    deep = copy.deepcopy(params)
    deep["W1"][...] = 7
    assert not np.any(params["W1"] == 7)
    plain = pickle.loads(pickle.dumps(params))
    assert type(plain) is dict
    _close_dicts(plain, params, rtol=0, atol=0)


@pytest.mark.parametrize("case, match", [
    ("nan X", "non-finite"),
    ("X rows", "rows"),
    ("Y range", r"\[0, 1\]"),
    ("nan Y", "non-finite"),
    ("learning rate", "learning_rate"),
    ("missing grad", "db1"),
    ("nan grad", "non-finite"),
])
def test_bad_input_gives_the_reference_errors_on_the_fast_path(case, match):
    params = C.initialize_parameters_deep([2, 3, 1])
    AL, caches = C.L_model_forward(XOR_X, params)
    grads = C.L_model_backward(AL, XOR_Y, caches)
    calls = {
        "nan X": lambda: C.L_model_forward(np.where(XOR_X > 0, np.nan, XOR_X), params),
        "X rows": lambda: C.L_model_forward(XOR_X[:1], params),
        "Y range": lambda: C.L_model_backward(AL, XOR_Y * 3, caches),
        "nan Y": lambda: C.L_model_backward(AL, XOR_Y * np.nan, caches),
        "learning rate": lambda: C.update_parameters(params, grads, -1.0),
        "missing grad": lambda: C.update_parameters(params, {"dW1": grads["dW1"]}, 0.1),
        "nan grad": lambda: C.update_parameters(params, {**grads, "dW2": grads["dW2"] * np.nan}, 0.1),
    }
    before = copy.deepcopy(params)
    with pytest.raises(ValueError, match=match):
        calls[case]()
    _close_dicts(params, before, rtol=0, atol=0)


def test_compute_cost_stays_finite_at_saturated_outputs():
    cost = C.compute_cost(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert np.isfinite(cost) and cost > 100
    assert_allclose(C.compute_cost(np.array([[0.3, 0.9]]), np.array([[0, 1]])),
                    T.compute_cost(np.array([[0.3, 0.9]]), np.array([[0, 1]])), **EXACT)


def test_results_the_caller_keeps_never_change():
    """Results of earlier steps are reused once nothing else holds them; anything kept (the dict, one array,
    a view of one) keeps them as they were."""
    params = _spread(C.initialize_parameters_deep([2, 3, 1]), 2)
    kept = {}
    seen = []
    for i in range(8):
        AL, caches = C.L_model_forward(XOR_X, params)
        grads = C.L_model_backward(AL, XOR_Y, caches)
        seen.append(id(grads))
        if i == 1:
            kept["grads"] = (grads, {k: v.copy() for k, v in grads.items()})
        if i == 2:
            kept["dW1"] = (grads["dW1"], grads["dW1"].copy())
        if i == 3:
            kept["view"] = (grads["dW2"][0], grads["dW2"][0].copy())
        params = C.update_parameters(params, grads, 0.5)
        if i == 1:
            kept["params"] = (params, {k: v.copy() for k, v in params.items()})
        if i == 2:
            kept["W1"] = (params["W1"].T, params["W1"].T.copy())
    held, values = kept.pop("grads")
    _close_dicts(held, values, rtol=0, atol=0)
    held, values = kept.pop("params")
    _close_dicts(held, values, rtol=0, atol=0)
    for held, values in kept.values():
        assert_array_equal(held, values)
    assert len(set(seen[5:])) < 3  # and unheld results were reused


def test_the_xor_exercise_published_numbers_through_functional():
    """The two-layer XOR exercise (seed 002: sigmoid layers, ``randn`` draws W1, B1, W2, B2 after seed 42) run
    with ``fastmlp.functional``: its published forward values and its predictions after 150000 steps."""
    from fastmlp import functional as F

    rng = np.random.RandomState(42)
    params = {"W1": rng.randn(2, 2), "b1": rng.randn(2, 1), "W2": rng.randn(1, 2), "b2": rng.randn(1, 1)}
    acts = ["sigmoid", "sigmoid"]
    AL, caches = F.L_model_forward(np.array([[0.5], [0.1]]), params, acts)
    printed = dict(rtol=0, atol=5.1e-9)
    assert_allclose(caches[0][1].ravel(), [0.00037727, 0.2420103], **printed)
    assert_allclose(caches[1][0][0].ravel(), [0.50009432, 0.560209], **printed)
    assert_allclose(caches[1][1].ravel(), [0.75020481], **printed)
    assert_allclose(AL.ravel(), [0.67922332], **printed)
    assert_allclose(F.compute_cost(AL, np.array([[1.0]])), 0.3868053036181012, rtol=1e-12)
    trained, _ = F.train(params, XOR_X, XOR_Y, acts, "bce", 0.1, 150000)
    predictions = F.L_model_forward(XOR_X, trained, acts)[0]
    assert_allclose(predictions.ravel(), [6.21620551e-04, 4.99846111e-01, 9.99591612e-01, 5.00196568e-01],
                    rtol=1e-7)


def test_one_import_line_brings_every_name_the_course_code_defines_or_calls():
    namespace = {}
    exec("from fastmlp.course import *", namespace)
    for name in ("sigmoid", "relu", "sigmoid_backward", "relu_backward", "initialize_parameters",
                 "initialize_parameters_deep", "linear_forward", "linear_activation_forward", "L_model_forward",
                 "L_Model_Forward", "compute_cost", "linear_backward", "linear_activation_backward", "L_model_backward",
                 "update_parameters", "L_layer_model"):
        assert callable(namespace[name]), name


def test_deep_copies_of_edited_parameter_dicts_are_ordinary():
    params = C.initialize_parameters_deep([3, 2, 1])
    params["note"] = "kept"
    params["W1"] = np.ones((2, 3))
    copied = copy.deepcopy(params)
    assert copied["note"] == "kept" and copied["W1"] is not params["W1"]
    assert_array_equal(copied["W1"], params["W1"])
