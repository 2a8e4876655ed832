"""A cheap proof that a network's outputs and cost on its training data are finite, checked after training calls.

Private. The training kernels check each minibatch's cost, which is computed with the parameters *before*
that minibatch's update, and the parameters' finiteness: the last update of a call is never run forward. Its
parameters can be finite while their outputs overflow (float32, ``X`` of scale 100, a linear output: the
weights reach 1e22 in one epoch and the forward pass gives -inf). :func:`fastmlp._engine.train_epochs` and
the other training paths therefore ask, after each call that completed epochs, whether the outputs of the
new parameters on the training data are finite (:func:`fastmlp._engine.output_check`); when they are not,
the last epoch is treated as diverged.

Each layer's pre-activations are bounded from ``max |X|``: with ``u`` a bound on each input unit's magnitude,
``|Z_i| <= sum_j |W_ij| u_j + |b_i|``; linear and relu pass that bound on, leaky relu multiplies it by
``max(1, |slope|)``, sigmoid, tanh and softmax reset it to 1; the cost is bounded from the output layer's bound
(and ``max |Y|`` for the squared and Poisson losses). :func:`coarse` bounds each layer's Euclidean norm
instead, from the norms of ``X`` and of each layer's parameters: a dot product per layer, no compiled code (a
kernel of its own cost a cold start 1 s of compilation).
:func:`per_unit` keeps one bound per unit (a product per layer) for when the coarse bound is not enough, and
only when that is not enough either does the caller run a real forward pass. The sums and products here are
NumPy's own loops (``einsum``), never BLAS: a BLAS call wakes NumPy's OpenBLAS threads, which then spin
against the threads of the BLAS the kernels use (W4-wide float64 ran at half speed, 68 -> 130 ms an epoch).
Every bound must stay below the dtype's largest value over :data:`MARGIN` (rounding, and the sums of up to
``m`` terms of a cost, have room below overflow).
"""

from __future__ import annotations

import math

import numpy as np

#: how a loss's cost grows with the output layer: cross-entropies from the logits (about |Z|), squared
#: errors ((A - Y)^2), Poisson (exp(Z) - Y Z)
COST_LOGITS, COST_SQUARED, COST_POISSON = range(3)
COST_KINDS = {"mse": COST_SQUARED, "half_mse": COST_SQUARED, "poisson": COST_POISSON}
#: bounds must stay below the dtype's largest value divided by this
MARGIN = 2.0**20
#: the largest finite value of each dtype over MARGIN
LIMITS = {np.dtype(t): float(np.finfo(t).max) / MARGIN for t in (np.float32, np.float64)}
_SQUASHING = frozenset({"sigmoid", "tanh", "softmax"})


def largest_magnitude(values: np.ndarray) -> float:
    """``max |values|`` (0 for an empty array, NaN when one is NaN), without a temporary array and without BLAS (a
    dot product's threads cost more than the sum on a busy machine)."""
    if values.size == 0:
        return 0.0
    return float(max(values.max(), -values.min()))


def _cost_within(z_out: float, a_out: float, y_top: float, n_out: int, kind: int, cost_limit: float) -> bool:
    """Whether the cost of one sample stays below ``cost_limit`` given bounds on its output layer's
    pre-activations ``z_out`` and activations ``a_out``."""
    if kind == COST_SQUARED:
        reach = a_out + y_top
        return n_out * reach * reach < cost_limit
    if kind == COST_POISSON:
        return z_out < math.log(cost_limit / n_out) and n_out * (math.exp(z_out) + y_top * z_out) < cost_limit
    return n_out * (z_out + 1.0) < cost_limit


def _activation_bound(activation: str, z: float, leak: float) -> float:
    if activation in _SQUASHING:
        return 1.0
    return leak * z if activation == "leaky_relu" else z


def layer_factors(net) -> tuple:
    """Per layer ``(kind, start, stop, sqrt(n_out))``: kind 0 passes the bound on (linear, relu), 1 resets it (sigmoid,
    tanh, softmax: every unit within 1), 2 is leaky relu; ``params[start:stop]`` holds the layer's ``W`` and ``b``.
    The first argument of :func:`coarse`."""
    offsets = [int(o) for o in net.offsets]
    return tuple((1 if act in _SQUASHING else (2 if act == "leaky_relu" else 0), offsets[l], offsets[l + 1],
                  math.sqrt(n_out))
                 for l, (n_out, act) in enumerate(zip(net.layer_sizes[1:], net.activations, strict=True)))


def coarse(factors: tuple, leak: float, x_norm: float, params: np.ndarray, n_out: int, y_norm: float, kind: int,
           alpha: float, limit: float, cost_limit: float) -> bool:
    """True when a bound of each layer's Euclidean norm shows every pre-activation and the cost far from overflow.

    ``factors`` from :func:`layer_factors`; ``leak`` ``max(1, |slope|)``; ``x_norm`` >= every sample's Euclidean
    norm (e.g. ``sqrt(n0) max |X|``), ``y_norm`` the same of the targets; ``params`` the flat parameters. For one
    sample, ``||W a + b|| <= ||(W, b)||_F (||a|| + 1)``, and every ``|Z_i| <= ||Z||``. A dot product per layer.
    """
    u = x_norm
    z = 0.0
    squares = 0.0
    for act, start, stop, root_out in factors:
        layer = params[start:stop]
        layer_squares = float(np.einsum("i,i->", layer, layer))
        squares += layer_squares
        z = math.sqrt(layer_squares) * (u + 1.0)
        if not z < limit:  # (a NaN fails too)
            return False
        u = z if act == 0 else (root_out if act == 1 else leak * z)
    if alpha and not alpha * squares < limit:
        return False
    return _cost_within(z, u, y_norm, n_out, kind, cost_limit)


def per_unit(net, x_top: float, y_top: float, kind: int, alpha: float, limit: float, cost_limit: float) -> bool:
    """:func:`coarse` with one bound per unit: ``u = |W| u + |b|`` per layer, in the parameters' dtype (a bound
    that overflows it is inf, which fails the test as it should)."""
    leak = max(1.0, abs(float(net.leaky_slope)))
    u = np.full(net.layer_sizes[0], x_top, net.dtype)
    squares = 0.0
    z = u
    for W, b, activation in zip(net.weights, net.biases, net.activations, strict=True):
        z = np.einsum("ij,j->i", np.abs(W), u) + np.abs(b[:, 0])
        if not float(z.max()) < limit:
            return False
        if alpha:
            squares += float(np.einsum("i,i->", W.ravel(), W.ravel()))
        u = np.ones_like(z) if activation in _SQUASHING else (leak * z if activation == "leaky_relu" else z)
    if alpha and not alpha * squares < limit:
        return False
    return _cost_within(float(z.max()), float(u.max()), y_top, net.layer_sizes[-1], kind, cost_limit)
