"""The deep-learning course's L-layer dialect, name for name: ``from fastmlp.course import *``.

Course-style code (the L-layer assignment: ``initialize_parameters_deep``, ``L_model_forward``,
``compute_cost``, ``L_model_backward``, ``update_parameters``) keeps working when its own definitions are
replaced by this module, with the same numbers (to rounding) and far less time per step. The contract
followed, function by function:

- the same names, signatures and return structures: ``sigmoid(Z)`` and ``relu(Z)`` return ``(A, cache)``
  with ``cache = Z``; ``linear_forward`` returns ``(Z, (A, W, b))``; ``linear_activation_forward`` returns
  ``(A, ((A_prev, W, b), Z))``; ``L_model_forward`` returns ``(AL, caches)``; ``compute_cost(AL, Y)``
  returns a NumPy scalar; ``L_model_backward`` returns ``grads`` with ``dA{l-1}, dW{l}, db{l}`` for
  ``l = L..1``, in that order;
- the same seeds: ``initialize_parameters(n_x, n_h, n_y)`` and ``initialize_parameters(layer_dims)`` reseed
  NumPy's global generator with 1, ``initialize_parameters_deep(layer_dims)`` with 3, and draw
  ``randn(n_l, n_{l-1}) * 0.01`` for each ``W`` in order, ``b`` zeros (exactly as the course code does,
  global generator included);
- the same edge cases: relu' at ``Z == 0`` lets the gradient through (``dZ[Z < 0] = 0``, as the course
  transcription writes it); ``grad_at_zero=0`` gives the other convention (``dZ[Z <= 0] = 0``).
  ``update_parameters`` returns updated copies and leaves the caller's dict and arrays untouched;
  ``in_place=True`` updates them in place instead (as some transcriptions do);
- hidden layers are relu, the output sigmoid, the cost binary cross-entropy, float64.

Fast where it pays: :func:`L_model_forward`, :func:`L_model_backward`, :func:`update_parameters` and
:func:`compute_cost` are one compiled call each, with O(1) checks for the arrays a loop passes again and
again (see :mod:`fastmlp._steps`); :func:`L_layer_model` runs the whole training loop in compiled code.
The single-layer helpers are NumPy expressions, as fast as NumPy makes them.
"""

from __future__ import annotations

import numpy as np

from fastmlp import _checks, _engine, _steps
from fastmlp import reference as _ref

__all__ = [
    "L_Model_Forward",
    "L_layer_model",
    "L_model_backward",
    "L_model_forward",
    "compute_cost",
    "initialize_parameters",
    "initialize_parameters_deep",
    "linear_activation_backward",
    "linear_activation_forward",
    "linear_backward",
    "linear_forward",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "update_parameters",
]

_ACTIVATIONS = ("relu", "sigmoid")


def _check_activation(activation):
    _checks.check_choice(activation, _ACTIVATIONS, "unknown activation {value!r}; expected 'relu' or 'sigmoid'")


def _check_grad_at_zero(grad_at_zero) -> int:
    return _checks.check_relu_grad_at_zero(grad_at_zero, "grad_at_zero")


# --- activations --------------------------------------------------------------------------------------
def sigmoid(Z):
    """Logistic function; returns ``(A, cache)`` with ``cache = Z``.

    Parameters
    ----------
    Z : ndarray, any shape

    Returns
    -------
    A : ndarray, shape of ``Z``, ``1 / (1 + exp(-Z))`` (computed without overflow)
    cache : ``Z`` itself
    """
    return _ref.sigmoid(Z), Z


def relu(Z):
    """Rectified linear unit; returns ``(A, cache)`` with ``A = max(0, Z)`` and ``cache = Z``."""
    return np.maximum(0, Z), Z


def sigmoid_backward(dA, cache):
    """``dZ = dA * s * (1 - s)`` with ``s = sigmoid(Z)``, ``Z = cache``."""
    s = _ref.sigmoid(cache)
    return dA * s * (1 - s)


def relu_backward(dA, cache, grad_at_zero=1):
    """``dZ = dA`` where ``Z > 0`` and 0 where ``Z < 0``; at ``Z == 0`` ``dA`` passes (``grad_at_zero=1``,
    the course transcription's ``dZ[Z < 0] = 0``) or is zeroed (``grad_at_zero=0``). ``cache = Z``; ``dA`` is
    not modified."""
    Z = cache
    dZ = np.array(dA, copy=True)
    dZ[(Z < 0) if _check_grad_at_zero(grad_at_zero) else (Z <= 0)] = 0
    return dZ


# --- initialisation -----------------------------------------------------------------------------------
def _course_init(layer_dims, seed: int) -> _steps.Packed:
    dims = _checks.check_layer_dims(layer_dims)
    # the course code seeds NumPy's global generator and draws from it: so do we, so that the user's own
    # draws afterwards are the same too
    np.random.seed(seed)  # noqa: NPY002
    Ws = [np.random.randn(dims[l], dims[l - 1]) * 0.01 for l in range(1, len(dims))]  # noqa: NPY002
    return _steps.pack(Ws, [np.zeros((n, 1)) for n in dims[1:]], np.float64)


def initialize_parameters(n_x, n_h=None, n_y=None):
    """Parameters of a network, ``W`` drawn ``randn * 0.01`` after ``np.random.seed(1)``, ``b`` zeros.

    Two signatures, as in the course: ``initialize_parameters(n_x, n_h, n_y)`` for a two-layer network, and
    ``initialize_parameters(layer_dims)`` for any depth (both draw ``W1``, ``W2``, ... in order, so they agree
    on two layers).

    Returns
    -------
    parameters : dict
        ``"W1": (n1, n0), "b1": (n1, 1), ...``, float64. The arrays are views into one flat vector, which
        the compiled functions of this module use as it is.
    """
    if n_h is None and n_y is None:
        return _course_init(n_x, 1)
    if n_h is None or n_y is None:
        raise ValueError("initialize_parameters takes (n_x, n_h, n_y) or (layer_dims)")
    return _course_init([n_x, n_h, n_y], 1)


def initialize_parameters_deep(layer_dims):
    """Parameters for ``layer_dims = [n0, ..., nL]``: ``np.random.seed(3)``, then ``W[l] = randn(n_l, n_{l-1})
    * 0.01`` and ``b[l] = zeros((n_l, 1))`` for ``l = 1..L`` (see :func:`initialize_parameters`)."""
    return _course_init(layer_dims, 3)


# --- forward ------------------------------------------------------------------------------------------
def linear_forward(A, W, b):
    """``Z = W @ A + b``; returns ``(Z, (A, W, b))``.

    Parameters
    ----------
    A : (n_{l-1}, m) array; W : (n_l, n_{l-1}); b : (n_l, 1)
    """
    return np.dot(W, A) + b, (A, W, b)


def linear_activation_forward(A_prev, W, b, activation):
    """One layer: returns ``(A, ((A_prev, W, b), Z))``; ``activation`` is ``"relu"`` or ``"sigmoid"``."""
    _check_activation(activation)
    Z, linear_cache = linear_forward(A_prev, W, b)
    A, activation_cache = (relu if activation == "relu" else sigmoid)(Z)
    return A, (linear_cache, activation_cache)


def L_model_forward(X, parameters):
    """Forward pass, relu hidden layers and a sigmoid output, in one compiled call.

    Parameters
    ----------
    X : (n_x, m) array
    parameters : dict, ``"W1", "b1", ..., "WL", "bL"``

    Returns
    -------
    AL : (n_L, m) array
    caches : list of L ``((A_prev, W, b), Z)`` tuples (``A_prev`` of the first is ``X`` itself; ``W``, ``b``
        are the parameters' own arrays; ``Z`` and the other ``A`` are views into one buffer)
    """
    return _steps.forward(X, parameters, None, 0.01, 0)


#: the name one transcription of the course uses for :func:`L_model_forward`
L_Model_Forward = L_model_forward


# --- cost ---------------------------------------------------------------------------------------------
def compute_cost(AL, Y):
    """Cross-entropy ``-(1/m) sum(Y log AL + (1 - Y) log(1 - AL))``, compiled; returns a NumPy scalar.

    ``AL`` is clipped to ``[tiny, 1 - eps/2]`` first (as :func:`fastmlp.reference.compute_cost` does), so an
    output that rounded to exactly 0 or 1 gives a large finite cost instead of inf or NaN; elsewhere the
    clipping changes nothing.

    Parameters
    ----------
    AL : (1, m) array of probabilities; Y : (1, m) array of labels
    """
    cost = _steps.bce_cost(AL, Y)
    if cost is None:
        AL = _checks.as_float_array(AL, "AL", ndim=None)
        Y = _checks.as_float_array(Y, "Y", ndim=None)
        if Y.ndim != 2:
            raise ValueError(f"Y must be 2-dimensional (n_y, m), got shape {Y.shape}")
        A = np.clip(AL, np.finfo(AL.dtype).tiny, 1 - np.finfo(AL.dtype).eps / 2)
        cost = -(1 / Y.shape[1]) * np.sum(Y * np.log(A) + (1 - Y) * np.log1p(-A))
    return np.float64(cost)  # what np.squeeze of the course's cost is


# --- backward -----------------------------------------------------------------------------------------
def linear_backward(dZ, cache):
    """``dA_prev = W.T @ dZ``, ``dW = (1/m) dZ @ A_prev.T``, ``db = (1/m) sum(dZ, axis=1)``; returns
    ``(dA_prev, dW, db)`` for ``cache = (A_prev, W, b)``."""
    A_prev, W, _ = cache
    m = A_prev.shape[1]
    return np.dot(W.T, dZ), (1 / m) * np.dot(dZ, A_prev.T), (1 / m) * np.sum(dZ, axis=1, keepdims=True)


def linear_activation_backward(dA, cache, activation, grad_at_zero=1):
    """One layer backward: returns ``(dA_prev, dW, db)`` for ``cache = ((A_prev, W, b), Z)``."""
    _check_activation(activation)
    linear_cache, activation_cache = cache
    if activation == "relu":
        dZ = relu_backward(dA, activation_cache, grad_at_zero)
    else:
        dZ = sigmoid_backward(dA, activation_cache)
    return linear_backward(dZ, linear_cache)


def L_model_backward(AL, Y, caches, grad_at_zero=1):
    """Backward pass through all L layers in one compiled call.

    The output delta is computed as ``AL - Y`` (what ``-(Y/AL - (1-Y)/(1-AL))`` times the sigmoid's
    derivative equals, without the divisions).

    Parameters
    ----------
    AL : (1, m) array, from :func:`L_model_forward`
    Y : (1, m) array (or anything of m entries)
    caches : from :func:`L_model_forward`
    grad_at_zero : {1, 0}, relu' at ``Z == 0`` (see :func:`relu_backward`)

    Returns
    -------
    grads : dict
        ``"dA{L-1}", "dW{L}", "db{L}", ..., "dA0", "dW1", "db1"``, in that order.
    """
    return _steps.backward(AL, Y, caches, None, "bce", 0.01, _check_grad_at_zero(grad_at_zero), key_order="course")


def update_parameters(params, grads, learning_rate, in_place=False):
    """One gradient-descent step: ``W[l] - learning_rate * dW[l]``, ``b[l] - learning_rate * db[l]``.

    Returns the updated parameters: a new dict of new arrays, the caller's ``params`` and its arrays left
    untouched (as the course's deep copy does); with ``in_place=True``, ``params`` itself updated in place.
    """
    return _steps.update(params, grads, learning_rate, in_place=bool(in_place))


# --- the whole loop -----------------------------------------------------------------------------------
def L_layer_model(X, Y, layers_dims, learning_rate=0.0075, num_iterations=3000, print_cost=False, *,
                  parameters=None, grad_at_zero=1):
    """Train by full-batch gradient descent with every iteration in compiled code.

    The course's loop: ``parameters = initialize_parameters_deep(layers_dims)`` (unless ``parameters`` is
    given; it is not modified), then ``num_iterations`` times forward, cost, backward, update. The results
    equal that loop run with this module's functions (to rounding).

    Parameters
    ----------
    X : (n_x, m) array; Y : (1, m) array of labels in [0, 1]
    layers_dims : list of int, ``[n_x, n_1, ..., 1]``
    learning_rate : float; num_iterations : int
    print_cost : bool, print the cost every 100 iterations and at the last
    parameters : dict, optional, the starting parameters
    grad_at_zero : {1, 0}, relu' at ``Z == 0`` (see :func:`relu_backward`)

    Returns
    -------
    parameters : dict, the trained parameters
    costs : list of NumPy scalars, the cost at iterations 0, 100, 200, ...

    Raises
    ------
    FloatingPointError
        When an iteration gives a non-finite cost or weights (try a smaller learning rate).
    """
    relu0 = _check_grad_at_zero(grad_at_zero)
    iterations = _checks.check_positive_int(num_iterations, "num_iterations")
    lr = _checks.check_positive_float(learning_rate, "learning_rate")
    dims = _checks.check_layer_dims(layers_dims)
    start = initialize_parameters_deep(dims) if parameters is None else parameters
    Ws, bs = _checks.check_parameters(start)
    got = [Ws[0].shape[1]] + [W.shape[0] for W in Ws]
    if got != dims:
        raise ValueError(f"parameters have layer sizes {got} but layers_dims is {dims}")
    net = _engine.Network(dims, ["relu"] * (len(dims) - 2) + ["sigmoid"], np.float64, relu_grad_at_zero=relu0)
    net.set_course_parameters(Ws, bs)
    Xc = _engine.kernel_array(_checks.check_X(X, net.weights[0]))
    Yc = _engine.kernel_array(_checks.check_Y(Y, dims[-1], Xc.shape[1], np.float64, "bce"))
    costs = []
    done = 0
    while done < iterations:
        chunk = min(iterations - done, 100 - done % 100) if print_cost else iterations
        result = _engine.train_epochs(net, Xc, Yc, "bce", learning_rate=lr, epochs=chunk, epoch_offset=done)
        for i, cost in enumerate(result.mean_batch_cost, start=done):
            if i % 100 == 0:
                costs.append(np.float64(cost))
            if print_cost and (i % 100 == 0 or i == iterations - 1):
                print(f"Cost after iteration {i}: {cost}")
        done += chunk
    return _steps.packed_view(net.params.copy(), tuple(dims)), costs
