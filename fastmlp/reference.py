"""The pure-NumPy reference: what "correct" means for every fast path in fastmlp.

Everything here is plain, vectorised NumPy written to follow docs/DESIGN.md §1 line by line. The
function names and signatures are the ones course-style MLP code already calls, so this module can be
used directly as a slow but readable MLP library.

Conventions
-----------
* Samples are **columns**: ``X`` is ``(n_x, m)``, ``Y`` is ``(n_y, m)`` (or ``(m,)`` when ``n_y == 1``).
* ``parameters`` is a dict with exactly the keys ``"W1", "b1", ..., "WL", "bL"``; ``W[l]`` is
  ``(n_l, n_{l-1})`` and ``b[l]`` is ``(n_l, 1)``. All parameters share one dtype, float32 or float64,
  and every computation runs in that dtype: ``X`` and ``Y`` are converted to it (never the other way
  round), and every constant is a Python scalar, which NumPy keeps in the array's dtype.
* Activations are named by strings: ``"relu"``, ``"leaky_relu"``, ``"sigmoid"``, ``"tanh"``, ``"linear"``
  for any layer, ``"softmax"`` for the output layer only. ``activations`` is a list with one name per
  layer; the default is relu for the hidden layers and sigmoid for the output. ``leaky_slope`` sets the
  slope of every ``"leaky_relu"`` layer.
* Losses: ``"bce"`` (binary cross-entropy, needs a sigmoid output), ``"mse"`` (any output) and ``"ce"``
  (categorical cross-entropy, needs a softmax output).
* Caches follow the course: ``linear_forward`` returns ``cache = (A_prev, W, b)``;
  ``linear_activation_forward`` returns ``cache = ((A_prev, W, b), Z)``; ``L_model_forward`` returns the
  list of those, one per layer.
* The activation functions return ``A`` only (not ``(A, cache)``); their derivatives have the form
  ``*_backward(dA, Z) -> dZ``. The identity's derivative is :func:`identity_backward`, because the
  course already uses the name ``linear_backward`` for the backward pass of the affine map.

Every public function validates its input and raises ``ValueError`` naming the offending argument.
Inputs are never modified, except ``parameters`` by :func:`update_parameters` and :func:`train`.
"""

from __future__ import annotations

import numpy as np

from fastmlp._checks import (
    as_float_array,
    check_activation,
    check_activations,
    check_architecture,
    check_caches,
    check_dtype,
    check_init,
    check_layer,
    check_layer_dims,
    check_linear_cache,
    check_loss,
    check_loss_output,
    check_parameters,
    check_params_architecture,
    check_positive_float,
    check_positive_int,
    check_seed,
    check_slope,
    check_update_steps,
    check_X,
    check_Y,
)

__all__ = [
    "ACTIVATION_DERIVATIVES",
    "ACTIVATION_FUNCTIONS",
    "LOSS_FUNCTIONS",
    "L_model_backward",
    "L_model_forward",
    "compute_cost",
    "compute_cost_from_logits",
    "full_backward_propagation",
    "full_forward_propagation",
    "identity_backward",
    "init_layers",
    "initialize_parameters",
    "initialize_parameters_deep",
    "leaky_relu",
    "leaky_relu_backward",
    "linear",
    "linear_activation_backward",
    "linear_activation_forward",
    "linear_backward",
    "linear_forward",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_backward",
    "tanh",
    "tanh_backward",
    "train",
    "update_parameters",
]


# ----------------------------------------------------------------------------------------------------
# activations and their derivatives
# ----------------------------------------------------------------------------------------------------


def sigmoid(Z):
    """Logistic function ``1 / (1 + exp(-Z))``, elementwise, without overflow for any finite ``Z``.

    Computed as ``1 / (1 + e)`` for ``Z >= 0`` and ``e / (1 + e)`` for ``Z < 0`` with
    ``e = exp(-|Z|)``, so ``exp`` never sees a positive argument.

    Parameters
    ----------
    Z : ndarray of float, any shape

    Returns
    -------
    A : ndarray, same shape and dtype as ``Z``, values in [0, 1]
    """
    Z = np.asarray(Z)
    e = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1 / (1 + e), e / (1 + e))


def relu(Z):
    """Rectified linear unit ``max(0, Z)``, elementwise.

    Parameters
    ----------
    Z : ndarray of float, any shape

    Returns
    -------
    A : ndarray, same shape and dtype as ``Z``
    """
    return np.maximum(Z, 0)


def leaky_relu(Z, slope=0.01):
    """Leaky ReLU: ``Z`` where ``Z > 0``, else ``slope * Z``, elementwise.

    Parameters
    ----------
    Z : ndarray of float, any shape
    slope : float, default 0.01
        Slope for non-positive inputs; converted to ``Z``'s dtype.

    Returns
    -------
    A : ndarray, same shape and dtype as ``Z``
    """
    Z = np.asarray(Z)
    return np.where(Z > 0, Z, Z * Z.dtype.type(slope))


def tanh(Z):
    """Hyperbolic tangent, elementwise.

    Parameters
    ----------
    Z : ndarray of float, any shape

    Returns
    -------
    A : ndarray, same shape and dtype as ``Z``, values in [-1, 1]
    """
    return np.tanh(Z)


def linear(Z):
    """Identity activation (a copy of ``Z``, so that ``A`` and ``Z`` never share memory).

    Parameters
    ----------
    Z : ndarray of float, any shape

    Returns
    -------
    A : ndarray, same shape and dtype as ``Z``
    """
    return np.array(Z, copy=True)


def softmax(Z):
    """Column-wise softmax, stable: the column maximum is subtracted before ``exp``.

    Parameters
    ----------
    Z : ndarray of float, shape (n, m)
        One column of scores per sample.

    Returns
    -------
    A : ndarray, shape (n, m), same dtype as ``Z``
        Each column is non-negative and sums to 1.
    """
    Z = np.asarray(Z)
    e = np.exp(Z - Z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def sigmoid_backward(dA, Z):
    """``dZ = dA * s * (1 - s)`` with ``s = sigmoid(Z)``.

    Parameters
    ----------
    dA : ndarray, shape (n, m)
        Gradient with respect to the activation's output.
    Z : ndarray, shape (n, m)
        The activation's input, as cached by the forward pass.

    Returns
    -------
    dZ : ndarray, shape (n, m)
    """
    s = sigmoid(Z)
    return dA * s * (1 - s)


def relu_backward(dA, Z):
    """``dZ = dA`` where ``Z > 0``, else 0 (the derivative at ``Z == 0`` is taken as 0).

    Parameters
    ----------
    dA, Z : ndarray, shape (n, m)

    Returns
    -------
    dZ : ndarray, shape (n, m)
    """
    dA = np.asarray(dA)
    return np.where(np.asarray(Z) > 0, dA, dA.dtype.type(0))


def leaky_relu_backward(dA, Z, slope=0.01):
    """``dZ = dA`` where ``Z > 0``, else ``slope * dA``.

    Parameters
    ----------
    dA, Z : ndarray, shape (n, m)
    slope : float, default 0.01
        Must be the slope used in the forward pass.

    Returns
    -------
    dZ : ndarray, shape (n, m)
    """
    dA = np.asarray(dA)
    return np.where(np.asarray(Z) > 0, dA, dA * dA.dtype.type(slope))


def tanh_backward(dA, Z):
    """``dZ = dA * (1 - tanh(Z)**2)``.

    Parameters
    ----------
    dA, Z : ndarray, shape (n, m)

    Returns
    -------
    dZ : ndarray, shape (n, m)
    """
    t = np.tanh(Z)
    return dA * (1 - t * t)


def identity_backward(dA, Z):
    """Derivative of the ``"linear"`` (identity) activation: ``dZ = dA`` (a copy).

    Named ``identity_backward`` rather than ``linear_backward``, which is the backward pass of the
    affine map ``Z = W A + b`` (:func:`linear_backward`).

    Parameters
    ----------
    dA, Z : ndarray, shape (n, m)
        ``Z`` is accepted for a uniform signature and ignored.

    Returns
    -------
    dZ : ndarray, shape (n, m)
    """
    return np.array(dA, copy=True)


def softmax_backward(dA, Z):
    """Vector-Jacobian product of the column-wise softmax: ``dZ = S * (dA - sum_rows(dA * S))``.

    With categorical cross-entropy, :func:`L_model_backward` does not use this: it takes
    ``dZ = AL - Y`` directly.

    Parameters
    ----------
    dA, Z : ndarray, shape (n, m)

    Returns
    -------
    dZ : ndarray, shape (n, m)
    """
    S = softmax(Z)
    return S * (dA - np.sum(dA * S, axis=0, keepdims=True))


#: activation name -> function ``g(Z)`` (``leaky_relu`` also takes ``slope``)
ACTIVATION_FUNCTIONS = {
    "relu": relu,
    "leaky_relu": leaky_relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "linear": linear,
    "softmax": softmax,
}

#: activation name -> derivative ``*_backward(dA, Z)`` (``leaky_relu`` also takes ``slope``)
ACTIVATION_DERIVATIVES = {
    "relu": relu_backward,
    "leaky_relu": leaky_relu_backward,
    "sigmoid": sigmoid_backward,
    "tanh": tanh_backward,
    "linear": identity_backward,
    "softmax": softmax_backward,
}


def _activate(Z, activation, slope):
    if activation == "leaky_relu":
        return leaky_relu(Z, slope)
    return ACTIVATION_FUNCTIONS[activation](Z)


def _activate_backward(dA, Z, activation, slope):
    if activation == "leaky_relu":
        return leaky_relu_backward(dA, Z, slope)
    return ACTIVATION_DERIVATIVES[activation](dA, Z)


# ----------------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------
# initialisation
# ----------------------------------------------------------------------------------------------------


def initialize_parameters_deep(layer_dims, seed=3):
    """The "deep" (course-style) initialisation, reproducible bit for bit.

    ``rng = np.random.RandomState(seed)``; then for ``l = 1..L`` in order:
    ``W[l] = rng.randn(n_l, n_{l-1}) * 0.01`` and ``b[l] = np.zeros((n_l, 1))`` (biases draw nothing).

    Parameters
    ----------
    layer_dims : sequence of int, length L + 1
        ``[n_x, n_1, ..., n_L]``.
    seed : int or None, default 3

    Returns
    -------
    parameters : dict
        ``"W1", "b1", ..., "WL", "bL"``, float64; ``W[l]`` is ``(n_l, n_{l-1})``, ``b[l]`` is ``(n_l, 1)``.
    """
    dims = check_layer_dims(layer_dims)
    rng = np.random.RandomState(check_seed(seed))
    parameters = {}
    for l in range(1, len(dims)):
        parameters[f"W{l}"] = rng.randn(dims[l], dims[l - 1]) * 0.01
        parameters[f"b{l}"] = np.zeros((dims[l], 1))
    return parameters


def init_layers(nn_architecture, seed=99):
    """The "architecture" initialisation, reproducible bit for bit.

    ``rng = np.random.RandomState(seed)``; then for each layer in order:
    ``W = rng.randn(output_dim, input_dim) * 0.1``, then ``b = rng.randn(output_dim, 1) * 0.1``.

    Parameters
    ----------
    nn_architecture : list of dict
        One ``{"input_dim": int, "output_dim": int, "activation": str}`` per layer; each layer's
        ``input_dim`` must equal the previous layer's ``output_dim``.
    seed : int or None, default 99

    Returns
    -------
    params_values : dict
        ``"W1", "b1", ...``, float64; ``W[l]`` is ``(output_dim, input_dim)`` and ``b[l]`` is
        ``(output_dim, 1)``.
    """
    dims, _ = check_architecture(nn_architecture)
    rng = np.random.RandomState(check_seed(seed))
    params = {}
    for l in range(1, len(dims)):
        params[f"W{l}"] = rng.randn(dims[l], dims[l - 1]) * 0.1
        params[f"b{l}"] = rng.randn(dims[l], 1) * 0.1
    return params


def initialize_parameters(layer_dims, init="he", seed=None, dtype=np.float64):
    """Initialise a parameter dict with a named scheme.

    ``rng = np.random.RandomState(seed)`` (``seed=None`` draws fresh entropy); then for ``l = 1..L`` in
    order, ``W[l] = rng.randn(n_l, n_{l-1}) * scale`` computed in float64 and cast to ``dtype``, with

    * ``"he"``: ``scale = sqrt(2 / n_{l-1})``;
    * ``"xavier"``: ``scale = sqrt(1 / n_{l-1})``;
    * ``"deep"``: ``scale = 0.01`` (identical to :func:`initialize_parameters_deep`).

    Biases are zeros of ``dtype`` and draw nothing.

    Parameters
    ----------
    layer_dims : sequence of int, length L + 1
        ``[n_x, n_1, ..., n_L]``.
    init : {"he", "xavier", "deep"}, default "he"
    seed : int or None, default None
    dtype : float32 or float64, default float64

    Returns
    -------
    parameters : dict
        ``"W1", "b1", ..., "WL", "bL"`` of ``dtype``.
    """
    return _initialize_parameters(check_layer_dims(layer_dims), check_init(init), check_seed(seed), check_dtype(dtype))


def _initialize_parameters(dims, init, seed, dt):
    """:func:`initialize_parameters` for arguments already validated."""
    rng = np.random.RandomState(seed)
    parameters = {}
    for l in range(1, len(dims)):
        if init == "he":
            scale = np.sqrt(2.0 / dims[l - 1])
        elif init == "xavier":
            scale = np.sqrt(1.0 / dims[l - 1])
        else:
            scale = 0.01
        parameters[f"W{l}"] = (rng.randn(dims[l], dims[l - 1]) * scale).astype(dt, copy=False)
        parameters[f"b{l}"] = np.zeros((dims[l], 1), dtype=dt)
    return parameters


# ----------------------------------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------------------------------


def _linear_forward(A, W, b):
    return W @ A + b


def linear_forward(A, W, b):
    """Affine part of a layer: ``Z = W @ A + b``.

    Parameters
    ----------
    A : ndarray, shape (n_{l-1}, m)
        Activations of the previous layer (or ``X``); converted to ``W``'s dtype.
    W : ndarray, shape (n_l, n_{l-1})
    b : ndarray, shape (n_l, 1)

    Returns
    -------
    Z : ndarray, shape (n_l, m)
    cache : tuple
        ``(A, W, b)``, for :func:`linear_backward`.
    """
    W, b, A = check_layer(A, W, b)
    return _linear_forward(A, W, b), (A, W, b)


def _linear_activation_forward(A_prev, W, b, activation, slope):
    Z = W @ A_prev + b
    return _activate(Z, activation, slope), ((A_prev, W, b), Z)


def linear_activation_forward(A_prev, W, b, activation, leaky_slope=0.01):
    """One layer: ``Z = W @ A_prev + b``, ``A = g(Z)``.

    Parameters
    ----------
    A_prev : ndarray, shape (n_{l-1}, m)
        Converted to ``W``'s dtype.
    W : ndarray, shape (n_l, n_{l-1})
    b : ndarray, shape (n_l, 1)
    activation : {"relu", "leaky_relu", "sigmoid", "tanh", "linear", "softmax"}
    leaky_slope : float, default 0.01
        Slope of ``"leaky_relu"`` (ignored by the other activations).

    Returns
    -------
    A : ndarray, shape (n_l, m)
    cache : tuple
        ``((A_prev, W, b), Z)``, for :func:`linear_activation_backward`.
    """
    check_activation(activation, output=True)
    W, b, A_prev = check_layer(A_prev, W, b)
    slope = check_slope(leaky_slope, W.dtype)
    return _linear_activation_forward(A_prev, W, b, activation, slope)


def _forward(X, Ws, bs, acts, slope):
    caches = []
    A = X
    for W, b, act in zip(Ws, bs, acts, strict=True):
        A, cache = _linear_activation_forward(A, W, b, act, slope)
        caches.append(cache)
    return A, caches


def L_model_forward(X, parameters, activations=None, leaky_slope=0.01):
    """Forward pass through all L layers.

    Parameters
    ----------
    X : ndarray, shape (n_x, m)
        One sample per column; converted to the parameters' dtype.
    parameters : dict
        ``"W1", "b1", ..., "WL", "bL"``; ``W[l]`` is ``(n_l, n_{l-1})``, ``b[l]`` is ``(n_l, 1)``.
    activations : list of str, length L, optional
        One activation per layer; default relu for layers 1..L-1 and sigmoid for layer L.
        ``"softmax"`` is allowed for the last layer only.
    leaky_slope : float, default 0.01
        Slope of every ``"leaky_relu"`` layer.

    Returns
    -------
    AL : ndarray, shape (n_L, m)
        Output of the last layer.
    caches : list of L tuples
        ``caches[l-1] = ((A[l-1], W[l], b[l]), Z[l])``; ``caches[-1][1]`` is the output logits ``ZL``.
    """
    Ws, bs = check_parameters(parameters)
    acts = check_activations(activations, len(Ws))
    slope = check_slope(leaky_slope, Ws[0].dtype)
    X = check_X(X, Ws[0])
    return _forward(X, Ws, bs, acts, slope)


def full_forward_propagation(X, params_values, nn_architecture, leaky_slope=0.01):
    """Forward pass in the "architecture" style.

    Parameters
    ----------
    X : ndarray, shape (n_x, m)
        Converted to the parameters' dtype.
    params_values : dict
        ``"W1", "b1", ...`` as made by :func:`init_layers`.
    nn_architecture : list of dict
        ``{"input_dim", "output_dim", "activation"}`` per layer.
    leaky_slope : float, default 0.01

    Returns
    -------
    A : ndarray, shape (n_L, m)
        Network output.
    memory : dict
        ``"A0"`` (= ``X``), ``"Z1"``, ``"A1"``, ..., ``"ZL"``, ``"AL"``: every layer's input to and
        output of the activation.
    """
    Ws, bs, acts = check_params_architecture(params_values, nn_architecture)
    slope = check_slope(leaky_slope, Ws[0].dtype)
    X = check_X(X, Ws[0])
    AL, caches = _forward(X, Ws, bs, acts, slope)
    return AL, _memory_from_caches(AL, caches)


def _memory_from_caches(AL, caches) -> dict:
    """The architecture-style ``memory`` ("A0", "Z1", "A1", ..., "ZL", "AL") of a forward pass's caches."""
    memory = {"A0": caches[0][0][0]}
    for l, (_, Z) in enumerate(caches, start=1):
        memory[f"Z{l}"] = Z
        # the output of layer l is the input cached by layer l + 1 (or AL for the last layer)
        memory[f"A{l}"] = caches[l][0][0] if l < len(caches) else AL
    return memory


# ----------------------------------------------------------------------------------------------------
# costs
# ----------------------------------------------------------------------------------------------------


def _bce(AL, Y):
    dt = AL.dtype
    A = np.clip(AL, np.finfo(dt).tiny, np.nextafter(dt.type(1), dt.type(0)))
    return -np.sum(Y * np.log(A) + (1 - Y) * np.log1p(-A)) / AL.shape[1]


def _mse(AL, Y):
    D = AL - Y
    return np.sum(D * D) / AL.shape[1]


def _ce(AL, Y):
    A = np.maximum(AL, np.finfo(AL.dtype).tiny)
    return -np.sum(Y * np.log(A)) / AL.shape[1]


#: loss name -> ``cost(AL, Y)`` on probabilities / outputs (no validation; see :func:`compute_cost`)
LOSS_FUNCTIONS = {"bce": _bce, "mse": _mse, "ce": _ce}


def compute_cost(AL, Y, loss="bce"):
    """Cost of the outputs ``AL`` against the targets ``Y``, averaged over the m samples.

    * ``"bce"``: ``J = -(1/m) sum(Y log A + (1 - Y) log(1 - A))``, summed over outputs and samples;
    * ``"mse"``: ``J = (1/m) sum((A - Y)**2)``, summed over outputs, averaged over samples;
    * ``"ce"``: ``J = -(1/m) sum(Y log A)`` (categorical cross-entropy of softmax columns).

    Clipping, so that a finite input never gives NaN or inf: for ``"bce"``, ``A`` is clipped to
    ``[tiny, 1 - eps/2]`` of its dtype (``tiny`` is ``np.finfo(dtype).tiny``, the smallest normal
    number, and ``1 - eps/2`` the largest number below 1), and ``log(1 - A)`` is computed as
    ``log1p(-A)``; for ``"ce"``, ``A`` is clipped below at ``tiny``. So a probability that rounded to
    exactly 0 or 1 costs at most ``-log(tiny)`` (about 708 in float64, 87 in float32) per entry
    instead of inf. Away from 0 and 1 the clipping changes nothing. :func:`compute_cost_from_logits`
    needs no clipping and is exact even for saturated outputs.

    Parameters
    ----------
    AL : ndarray, shape (n_y, m)
        Network output; probabilities in [0, 1] for ``"bce"`` and ``"ce"``.
    Y : ndarray, shape (n_y, m), or (m,) when n_y == 1
        Targets, in [0, 1] for ``"bce"`` and ``"ce"``; converted to ``AL``'s dtype. For ``"ce"`` every
        column must sum to 1 (within ``sqrt(eps)`` of the dtype), here and in every function below.
    loss : {"bce", "mse", "ce"}, default "bce"

    Returns
    -------
    cost : float
        Computed in ``AL``'s dtype, returned as a Python float.
    """
    check_loss(loss)
    AL = as_float_array(AL, "AL")
    Y = check_Y(Y, AL.shape[0], AL.shape[1], AL.dtype, loss)
    if loss in ("bce", "ce") and (AL.min() < 0 or AL.max() > 1):
        raise ValueError(f"AL must hold probabilities in [0, 1] for loss {loss!r}, got [{AL.min()}, {AL.max()}]")
    return float(LOSS_FUNCTIONS[loss](AL, Y))


def _cost_from_logits(ZL, Y, loss):
    m = ZL.shape[1]
    if loss == "bce":
        return np.sum(np.maximum(ZL, 0) - Y * ZL + np.log1p(np.exp(-np.abs(ZL)))) / m
    # "ce": -log softmax = (max - Z) + log(sum(exp(Z - max))), per column. The two terms are added only
    # after the subtraction (no huge logit absorbs the small log term), and only where Y != 0: a target of 0
    # contributes nothing even when max - Z overflows to inf (which would otherwise give 0 * inf = NaN).
    top = ZL.max(axis=0, keepdims=True)
    with np.errstate(over="ignore"):
        gap = top - ZL
    log_total = np.log(np.sum(np.exp(-gap), axis=0, keepdims=True))
    hit = Y != 0
    return np.sum(Y[hit] * (gap + log_total)[hit]) / m


def compute_cost_from_logits(ZL, Y, loss="bce"):
    """Cross-entropy cost from the output logits ``ZL`` (pre-activation), stable for any finite input.

    * ``"bce"`` (sigmoid output): ``J = (1/m) sum(max(Z, 0) - Y Z + log1p(exp(-|Z|)))``, which equals
      ``-(1/m) sum(Y log sigmoid(Z) + (1 - Y) log(1 - sigmoid(Z)))`` exactly in real arithmetic;
    * ``"ce"`` (softmax output): ``J = -(1/m) sum(Y * log_softmax(Z))`` with
      ``log_softmax(Z) = Zs - log(sum(exp(Zs)))`` per column and ``Zs = Z - max(Z)``.

    No clipping is needed: the result is finite for every finite ``ZL``. This is the cost :func:`train`
    records for ``"bce"`` and ``"ce"``. ``"mse"`` is not a function of the logits alone; use
    :func:`compute_cost`.

    Parameters
    ----------
    ZL : ndarray, shape (n_y, m)
        Output logits, e.g. ``caches[-1][1]`` from :func:`L_model_forward`.
    Y : ndarray, shape (n_y, m), or (m,) when n_y == 1
        Targets in [0, 1]; converted to ``ZL``'s dtype.
    loss : {"bce", "ce"}, default "bce"

    Returns
    -------
    cost : float
    """
    check_loss(loss)
    if loss == "mse":
        raise ValueError("compute_cost_from_logits supports loss 'bce' and 'ce'; use compute_cost for 'mse'")
    ZL = as_float_array(ZL, "ZL")
    Y = check_Y(Y, ZL.shape[0], ZL.shape[1], ZL.dtype, loss)
    return float(_cost_from_logits(ZL, Y, loss))


# ----------------------------------------------------------------------------------------------------
# backward
# ----------------------------------------------------------------------------------------------------


def _linear_backward(dZ, cache, need_dA_prev=True):
    A_prev, W, _ = cache
    inv_m = 1.0 / A_prev.shape[1]
    dW = (dZ @ A_prev.T) * inv_m
    db = np.sum(dZ, axis=1, keepdims=True) * inv_m
    dA_prev = W.T @ dZ if need_dA_prev else None
    return dA_prev, dW, db


def linear_backward(dZ, cache):
    """Backward pass of the affine map ``Z = W @ A_prev + b``.

    ``dW = (1/m) dZ @ A_prev.T``, ``db = (1/m) sum over samples of dZ``, ``dA_prev = W.T @ dZ``.

    Parameters
    ----------
    dZ : ndarray, shape (n_l, m)
        Gradient of ``m * J`` with respect to ``Z`` (per-sample gradients, not yet averaged).
    cache : tuple
        ``(A_prev, W, b)`` from :func:`linear_forward`.

    Returns
    -------
    dA_prev : ndarray, shape (n_{l-1}, m)
    dW : ndarray, shape (n_l, n_{l-1})
    db : ndarray, shape (n_l, 1)
    """
    A_prev, W, b = check_linear_cache(cache)
    dZ = as_float_array(dZ, "dZ", dtype=W.dtype)
    if dZ.shape != (W.shape[0], A_prev.shape[1]):
        raise ValueError(f"dZ must have shape {(W.shape[0], A_prev.shape[1])} to match the cache, got {dZ.shape}")
    return _linear_backward(dZ, (A_prev, W, b))


def linear_activation_backward(dA, cache, activation, leaky_slope=0.01):
    """Backward pass of one layer: ``dZ = dA * g'(Z)``, then :func:`linear_backward`.

    Parameters
    ----------
    dA : ndarray, shape (n_l, m)
        Gradient of ``m * J`` with respect to this layer's output.
    cache : tuple
        ``((A_prev, W, b), Z)`` from :func:`linear_activation_forward`.
    activation : {"relu", "leaky_relu", "sigmoid", "tanh", "linear", "softmax"}
        Must be the activation used in the forward pass.
    leaky_slope : float, default 0.01

    Returns
    -------
    dA_prev : ndarray, shape (n_{l-1}, m)
    dW : ndarray, shape (n_l, n_{l-1})
    db : ndarray, shape (n_l, 1)
    """
    check_activation(activation, output=True)
    try:
        linear_cache, Z = cache
    except (TypeError, ValueError) as exc:
        raise ValueError("cache must be the ((A_prev, W, b), Z) tuple returned by linear_activation_forward") from exc
    A_prev, W, b = check_linear_cache(linear_cache)
    slope = check_slope(leaky_slope, W.dtype)
    shape = (W.shape[0], A_prev.shape[1])
    Z = as_float_array(Z, "cache Z", dtype=W.dtype)
    dA = as_float_array(dA, "dA", dtype=W.dtype)
    if Z.shape != shape or dA.shape != shape:
        raise ValueError(f"dA and the cached Z must have shape {shape}, got {dA.shape} and {Z.shape}")
    dZ = _activate_backward(dA, Z, activation, slope)
    return _linear_backward(dZ, (A_prev, W, b))


def _backward(AL, Y, caches, acts, loss, slope, need_dA0=True):
    grads = {}
    L = len(caches)
    if loss in ("bce", "ce"):
        # sigmoid + bce and softmax + ce: dZ[L] = AL - Y, with no division by AL or 1 - AL
        dZ = AL - Y
    else:
        dZ = _activate_backward(2 * (AL - Y), caches[-1][1], acts[-1], slope)
    for l in range(L, 0, -1):
        if l < L:
            dZ = _activate_backward(grads[f"dA{l}"], caches[l - 1][1], acts[l - 1], slope)
        dA_prev, grads[f"dW{l}"], grads[f"db{l}"] = _linear_backward(dZ, caches[l - 1][0], l > 1 or need_dA0)
        if dA_prev is not None:
            grads[f"dA{l - 1}"] = dA_prev
    return grads


def L_model_backward(AL, Y, caches, activations=None, loss="bce", leaky_slope=0.01):
    """Backward pass through all L layers: gradients of the cost ``J`` of :func:`compute_cost`.

    ``dA[L] = d(m J)/dA[L]`` per sample (mse: ``2 (AL - Y)``), then for ``l = L..1``:
    ``dZ = dA * g'(Z)``, ``dW = (1/m) dZ @ A[l-1].T``, ``db = (1/m) sum_samples dZ``,
    ``dA[l-1] = W[l].T @ dZ``. For a sigmoid output with ``"bce"`` and a softmax output with ``"ce"``
    the last layer's ``dZ`` is computed directly as ``AL - Y`` (the same quantity, with no division by
    ``AL`` or ``1 - AL``, so saturated outputs give finite gradients). ``"bce"`` requires a sigmoid
    output layer and ``"ce"`` a softmax one.

    Parameters
    ----------
    AL : ndarray, shape (n_L, m)
        Output of :func:`L_model_forward`.
    Y : ndarray, shape (n_L, m), or (m,) when n_L == 1
        Targets (in [0, 1] for ``"bce"`` and ``"ce"``); converted to the parameters' dtype.
    caches : list of L tuples
        From :func:`L_model_forward`.
    activations : list of str, length L, optional
        Must match the forward pass; default relu for the hidden layers and sigmoid for the output.
    loss : {"bce", "mse", "ce"}, default "bce"
    leaky_slope : float, default 0.01

    Returns
    -------
    grads : dict
        ``"dW1", "db1", ..., "dWL", "dbL"`` (same shapes and dtype as the parameters), and
        ``"dA0", ..., "dA{L-1}"``: ``dA{l}`` is the gradient of ``m J`` with respect to ``A[l]``
        (``dA0`` with respect to ``X``), shape ``(n_l, m)``.
    """
    check_loss(loss)
    caches = check_caches(caches)
    slope = check_slope(leaky_slope, caches[0][0][1].dtype)
    acts = check_activations(activations, len(caches))
    check_loss_output(loss, acts[-1])
    W_L = caches[-1][0][1]
    AL = as_float_array(AL, "AL", dtype=W_L.dtype)
    m = caches[0][0][0].shape[1]
    if AL.shape != (W_L.shape[0], m):
        raise ValueError(f"AL must have shape {(W_L.shape[0], m)} to match the caches, got {AL.shape}")
    Y = check_Y(Y, AL.shape[0], m, AL.dtype, loss)
    return _backward(AL, Y, caches, acts, loss, slope)


def full_backward_propagation(Y_hat, Y, memory, params_values, nn_architecture, loss="bce", leaky_slope=0.01):
    """Backward pass in the "architecture" style, from the ``memory`` of :func:`full_forward_propagation`.

    Same maths as :func:`L_model_backward`.

    Parameters
    ----------
    Y_hat : ndarray, shape (n_L, m)
        Network output.
    Y : ndarray, shape (n_L, m), or (m,) when n_L == 1
    memory : dict
        ``"A0", "Z1", "A1", ...`` from :func:`full_forward_propagation`.
    params_values : dict
    nn_architecture : list of dict
    loss : {"bce", "mse", "ce"}, default "bce"
    leaky_slope : float, default 0.01

    Returns
    -------
    grads_values : dict
        ``"dW1", "db1", ...`` and ``"dA0", ...`` as in :func:`L_model_backward`.
    """
    caches, acts = _caches_from_memory(memory, params_values, nn_architecture)
    return L_model_backward(Y_hat, Y, caches, acts, loss=loss, leaky_slope=leaky_slope)


def _caches_from_memory(memory, params_values, nn_architecture):
    """The ``L_model_backward`` caches and activations of an architecture-style forward ``memory``."""
    Ws, bs, acts = check_params_architecture(params_values, nn_architecture)
    if not isinstance(memory, dict):
        raise ValueError("memory must be the dict returned by full_forward_propagation")
    caches = []
    for l in range(1, len(Ws) + 1):
        for key in (f"A{l - 1}", f"Z{l}"):
            if key not in memory:
                raise ValueError(f"memory has no {key!r}")
        caches.append(((memory[f"A{l - 1}"], Ws[l - 1], bs[l - 1]), memory[f"Z{l}"]))
    return caches, acts


# ----------------------------------------------------------------------------------------------------
# update and training
# ----------------------------------------------------------------------------------------------------


def update_parameters(parameters, grads, learning_rate):
    """One SGD step, in place: ``W[l] -= learning_rate * dW[l]``, ``b[l] -= learning_rate * db[l]``.

    Parameters
    ----------
    parameters : dict
        ``"W1", "b1", ...``: float NumPy arrays, modified in place.
    grads : dict
        Holds ``"dW1", "db1", ...`` with the parameters' shapes; other keys (``"dA0"``, ...) are ignored.
        Gradients are converted to the parameters' dtype.
    learning_rate : float
        Positive.

    Returns
    -------
    parameters : dict
        The same dict, updated.
    """
    steps, lr = check_update_steps(parameters, grads, learning_rate)
    for P, G in steps:
        P -= lr * G
    return parameters


def train(
    parameters,
    X,
    Y,
    activations=None,
    loss="bce",
    learning_rate=0.01,
    epochs=1,
    batch_size=None,
    leaky_slope=0.01,
    shuffle=False,
    seed=None,
):
    """Minibatch SGD, exactly as docs/DESIGN.md §1: the baseline every fast path is compared with.

    For each epoch: the sample order is ``0..m-1`` or, with ``shuffle=True``, ``rng.permutation(m)``
    drawn once per epoch from one ``rng = np.random.RandomState(seed)`` created at the start of the
    call. The samples are taken in that order in consecutive batches of ``batch_size`` columns; the
    last batch may be smaller, and its gradient is averaged over its own size. For each batch, in
    order: forward pass (:func:`L_model_forward`), batch cost, backward pass (:func:`L_model_backward`,
    without ``dA0``), SGD update (:func:`update_parameters`).

    The batch cost is computed on the batch's forward pass, before its update: for ``"bce"`` and
    ``"ce"`` from the output logits with :func:`compute_cost_from_logits` (stable, no clipping), for
    ``"mse"`` with :func:`compute_cost`. The cost recorded for an epoch is the plain mean of its batch
    costs (``np.mean`` of the Python floats, in float64).

    If a batch's cost or an updated parameter is not finite, training stops with
    ``FloatingPointError``, leaving ``parameters`` as they were after the last finite update.

    Parameters
    ----------
    parameters : dict
        ``"W1", "b1", ..., "WL", "bL"``: float32 or float64 NumPy arrays, updated in place. Every
        computation runs in their dtype.
    X : ndarray, shape (n_x, m)
        Converted to the parameters' dtype (a copy only when the dtype differs).
    Y : ndarray, shape (n_L, m), or (m,) when n_L == 1
        Targets, in [0, 1] for ``"bce"`` and ``"ce"``.
    activations : list of str, length L, optional
        Default relu for the hidden layers and sigmoid for the output.
    loss : {"bce", "mse", "ce"}, default "bce"
        ``"bce"`` needs a sigmoid output and ``"ce"`` a softmax one.
    learning_rate : float, default 0.01
    epochs : int, default 1
    batch_size : int, optional
        Default (and any value >= m): the full batch of m samples.
    leaky_slope : float, default 0.01
    shuffle : bool, default False
    seed : int or None, default None
        Seed of the permutations, used only when ``shuffle`` is true.

    Returns
    -------
    parameters : dict
        The same dict, trained.
    costs : list of float, length ``epochs``
        Mean batch cost of each epoch.
    """
    Ws, bs = check_parameters(parameters, writable=True)
    L = len(Ws)
    acts = check_activations(activations, L)
    check_loss(loss)
    check_loss_output(loss, acts[-1])
    slope = check_slope(leaky_slope, Ws[0].dtype)
    lr = check_positive_float(learning_rate, "learning_rate")
    epochs = check_positive_int(epochs, "epochs")
    X = check_X(X, Ws[0])
    m = X.shape[1]
    Y = check_Y(Y, Ws[-1].shape[0], m, Ws[0].dtype, loss)
    bs_ = m if batch_size is None else min(check_positive_int(batch_size, "batch_size"), m)
    rng = np.random.RandomState(check_seed(seed)) if shuffle else None

    costs = []
    for epoch in range(epochs):
        if rng is not None:
            order = rng.permutation(m)
            Xe, Ye = X[:, order], Y[:, order]
        else:
            Xe, Ye = X, Y
        batch_costs = []
        for k, start in enumerate(range(0, m, bs_)):
            xb = Xe[:, start : start + bs_]
            yb = Ye[:, start : start + bs_]
            AL, caches = _forward(xb, Ws, bs, acts, slope)
            if loss == "mse":
                cost = float(_mse(AL, yb))
            else:
                cost = float(_cost_from_logits(caches[-1][1], yb, loss))
            if not np.isfinite(cost):
                raise FloatingPointError(
                    f"training diverged: non-finite cost at epoch {epoch + 1}, batch {k + 1}; "
                    "parameters are left at their last finite state"
                )
            grads = _backward(AL, yb, caches, acts, loss, slope, need_dA0=False)
            new = []
            for l in range(1, L + 1):
                new.append((Ws[l - 1], Ws[l - 1] - lr * grads[f"dW{l}"]))
                new.append((bs[l - 1], bs[l - 1] - lr * grads[f"db{l}"]))
            if not all(np.all(np.isfinite(N)) for _, N in new):
                raise FloatingPointError(
                    f"training diverged: non-finite parameters after the update at epoch {epoch + 1}, "
                    f"batch {k + 1}; parameters are left at their last finite state"
                )
            for P, N in new:
                P[...] = N
            batch_costs.append(cost)
        costs.append(float(np.mean(batch_costs)))
    return parameters, costs
