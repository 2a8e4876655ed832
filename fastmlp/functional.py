"""The course-style API of :mod:`fastmlp.reference`, backed by the Numba kernels.

Same names, same signatures, same results (to rounding): changing ``from fastmlp import reference`` to
``from fastmlp import functional`` in course-style code just works, faster. Samples are columns:
``X`` is ``(n_x, m)``, parameters are ``{"W1": (n1, n0), "b1": (n1, 1), ...}``.

Compiled: :func:`L_model_forward` (one kernel call for all layers), :func:`L_model_backward` (one call
for all layers), :func:`update_parameters` (in place, one call), :func:`compute_cost` (``"bce"``),
:func:`train` (every epoch and minibatch inside compiled code), and the "architecture"-style
:func:`full_forward_propagation` / :func:`full_backward_propagation` built on them. The caches are the
reference's ``((A_prev, W, b), Z)`` tuples (views into the kernel's buffer), so they can be mixed with the
reference's functions.

A loop pays O(1) per call around the kernels (see :mod:`fastmlp._steps`): the initialisers return the
reference's parameters with their arrays packed into one flat vector, which every step then uses as it
is; caches carry the forward buffer to backward; gradients carry their flat vector to the update.
Finiteness is checked by the kernels while they read the data, with the reference's errors.

Single-layer helpers and activations are the reference's own functions: a compiled version of a single
NumPy expression would be no faster.
"""

from __future__ import annotations

import functools

import numpy as np

from fastmlp import _checks, _engine, _steps
from fastmlp import reference as _ref
from fastmlp._checks import (
    check_loss,
    check_loss_output,
    check_positive_float,
    check_positive_int,
)
from fastmlp._guard import DeferredInterrupt
from fastmlp._steps import backward_again as _backward_again
from fastmlp._steps import forward_again as _forward_again
from fastmlp._steps import update_again as _update_again
from fastmlp.reference import (  # noqa: F401  (re-exported: the course-style API, unchanged)
    ACTIVATION_DERIVATIVES,
    ACTIVATION_FUNCTIONS,
    LOSS_FUNCTIONS,
    compute_cost_from_logits,
    identity_backward,
    leaky_relu,
    leaky_relu_backward,
    linear,
    linear_activation_backward,
    linear_activation_forward,
    linear_backward,
    linear_forward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    softmax,
    softmax_backward,
    tanh,
    tanh_backward,
)

#: the same public names as the reference
__all__ = list(_ref.__all__)


def _network(Ws, bs, acts, slope) -> _engine.Network:
    """A kernel network holding a copy of the course-style parameters (for :func:`train`)."""
    dims = [Ws[0].shape[1]] + [W.shape[0] for W in Ws]
    net = _engine.Network(dims, acts, Ws[0].dtype, slope)
    net.set_course_parameters(Ws, bs)
    return net


def _packed(init):
    """``init`` whose parameters come back packed: the same dict and values, the arrays views into one flat
    vector, which the compiled step functions below then use without a copy."""

    @functools.wraps(init)
    def packed_init(*args, **kwargs):
        params = init(*args, **kwargs)
        Ws, bs = _checks.check_parameters(params)
        return _steps.pack(Ws, bs, Ws[0].dtype)

    packed_init.__doc__ = (init.__doc__ or "") + (
        "\n    In :mod:`fastmlp.functional` the arrays are views into one flat vector (the dict is a plain dict\n"
        "    otherwise), so the compiled functions use them without copying.\n")
    return packed_init


initialize_parameters = _packed(_ref.initialize_parameters)
initialize_parameters_deep = _packed(_ref.initialize_parameters_deep)
init_layers = _packed(_ref.init_layers)


def compute_cost(AL, Y, loss="bce"):
    """:func:`fastmlp.reference.compute_cost`, compiled for ``"bce"`` on float arrays of one shape and dtype."""
    if loss == "bce":
        cost = _steps.bce_cost(AL, Y)
        if cost is not None:
            return cost
    return _ref.compute_cost(AL, Y, loss)


def L_model_forward(X, parameters, activations=None, leaky_slope=0.01):
    """Forward pass through all L layers, in one compiled call.

    Parameters
    ----------
    X : ndarray, shape (n_x, m)
    parameters : dict
        ``"W1", "b1", ..., "WL", "bL"``; ``W[l]`` is ``(n_l, n_{l-1})``, ``b[l]`` is ``(n_l, 1)``.
    activations : list of str, length L, optional
        Default relu for the hidden layers, sigmoid for the output.
    leaky_slope : float, default 0.01

    Returns
    -------
    AL : ndarray, shape (n_L, m)
    caches : list of L tuples
        ``caches[l-1] = ((A[l-1], W[l], b[l]), Z[l])``, as in :func:`fastmlp.reference.L_model_forward`
        (views into one buffer, which :func:`L_model_backward` reads as it is).
    """
    again = _forward_again(X, parameters, activations, leaky_slope, 0, "relu", "sigmoid")
    if again is not None:  # (the loop's next step with the very objects of the step before)
        return again
    return _steps.forward(X, parameters, activations, leaky_slope, 0, recycle=True, hot=False)


def L_model_backward(AL, Y, caches, activations=None, loss="bce", leaky_slope=0.01):
    """Backward pass through all L layers, in one compiled call.

    Same maths and results as :func:`fastmlp.reference.L_model_backward` (``dZ[L] = AL - Y`` for a
    sigmoid output with ``"bce"`` and a softmax output with ``"ce"``).

    Parameters
    ----------
    AL : ndarray, shape (n_L, m)
    Y : ndarray, shape (n_L, m), or (m,) when n_L == 1
    caches : list of L ``((A_prev, W, b), Z)`` tuples from :func:`L_model_forward` (or the reference's)
    activations : list of str, length L, optional
    loss : {"bce", "mse", "ce"}, default "bce"
    leaky_slope : float, default 0.01

    Returns
    -------
    grads : dict
        ``"dW1", "db1", ..., "dWL", "dbL"`` and ``"dA0", ..., "dA{L-1}"`` (each ``(n_l, m)``).
    """
    again = _backward_again(AL, Y, caches, activations, loss, leaky_slope, 0, "reference", "relu", "sigmoid")
    if again is not None:  # (the loop's next step with the very objects of the step before)
        return again
    return _steps.backward(AL, Y, caches, activations, loss, leaky_slope, 0, key_order="reference", hot=False)


def update_parameters(parameters, grads, learning_rate):
    """One SGD step, in place: ``W[l] -= learning_rate * dW[l]``, ``b[l] -= learning_rate * db[l]``.

    Same contract as :func:`fastmlp.reference.update_parameters`; returns the same dict. One compiled call
    when ``parameters`` and ``grads`` come from this module's functions.
    """
    if _update_again(parameters, grads, learning_rate):  # (the loop's next step with the objects of the one before)
        return parameters
    return _steps.update(parameters, grads, learning_rate, in_place=True, hot=False)


def train(parameters, X, Y, activations=None, loss="bce", learning_rate=0.01, epochs=1, batch_size=None,
          leaky_slope=0.01, shuffle=False, seed=None):
    """Minibatch SGD with every epoch in compiled code; the contract of :func:`fastmlp.reference.train`.

    ``parameters`` is updated in place and returned with one cost per epoch (the mean of its minibatch
    costs); with ``shuffle=True`` the order of each epoch is ``rng.permutation(m)`` from one
    ``rng = np.random.RandomState(seed)``, exactly as in the reference. If an epoch gives a non-finite cost
    or weights, ``FloatingPointError`` is raised and ``parameters`` holds the values of the last finite
    *epoch* (the reference keeps those of the last finite minibatch). After Ctrl-C (honoured within about
    0.1 s), ``KeyboardInterrupt`` is raised and ``parameters`` holds the values of the last completed epoch.
    """
    Ws, bs = _checks.check_parameters(parameters, writable=True)
    acts = _checks.check_activations(activations, len(Ws))
    check_loss(loss)
    check_loss_output(loss, acts[-1])
    slope = _checks.check_slope(leaky_slope, Ws[0].dtype)
    lr = check_positive_float(learning_rate, "learning_rate")
    epochs = check_positive_int(epochs, "epochs")
    X = _engine.kernel_array(_checks.check_X(X, Ws[0]))
    m = X.shape[1]
    Y = _engine.kernel_array(_checks.check_Y(Y, Ws[-1].shape[0], m, Ws[0].dtype, loss))
    batch = m if batch_size is None else min(check_positive_int(batch_size, "batch_size"), m)
    order = None
    if shuffle:  # drawn a bounded number of epochs at a time by the engine: memory O(m), whatever `epochs`
        rng = np.random.RandomState(_checks.check_seed(seed))
        order = lambda n: np.stack([rng.permutation(m) for _ in range(n)])  # noqa: E731
    net = _network(Ws, bs, acts, slope)
    try:
        with DeferredInterrupt() as interrupted:
            result = _engine.train_epochs(net, X, Y, loss, learning_rate=lr, epochs=epochs, batch_size=batch,
                                          order=order, stop=interrupted)
    finally:  # also after a divergence or Ctrl-C: the network then holds the last complete epoch's parameters
        for W, b, my_W, my_b in zip(Ws, bs, net.weights, net.biases, strict=True):
            W[...] = my_W
            b[...] = my_b
    if result.interrupted:
        raise KeyboardInterrupt(f"training interrupted after {len(result.mean_batch_cost)} of {epochs} epochs; "
                                "parameters hold the last completed epoch")
    return parameters, result.mean_batch_cost.tolist()


def full_forward_propagation(X, params_values, nn_architecture, leaky_slope=0.01):
    """Forward pass in the "architecture" style, compiled; see :func:`fastmlp.reference.full_forward_propagation`.

    Returns ``(A, memory)`` with ``memory`` keyed ``"A0", "Z1", "A1", ..., "ZL", "AL"``.
    """
    Ws, bs, acts = _checks.check_params_architecture(params_values, nn_architecture)
    parameters = {f"{k}{l}": v for l, (W, b) in enumerate(zip(Ws, bs, strict=True), start=1)
                  for k, v in (("W", W), ("b", b))}
    AL, caches = L_model_forward(X, parameters, acts, leaky_slope)
    return AL, _ref._memory_from_caches(AL, caches)


def full_backward_propagation(Y_hat, Y, memory, params_values, nn_architecture, loss="bce", leaky_slope=0.01):
    """Backward pass in the "architecture" style, compiled; see :func:`fastmlp.reference.full_backward_propagation`."""
    caches, acts = _ref._caches_from_memory(memory, params_values, nn_architecture)
    return L_model_backward(Y_hat, Y, caches, acts, loss=loss, leaky_slope=leaky_slope)
