"""The speed baseline of the training workloads: minibatch SGD as course-style NumPy code writes it.

Deliberately plain and untuned -- the code a course participant has before switching to fastmlp: a
forward pass that keeps ``(A_prev, W, b, Z)`` per layer, the textbook backward pass (the cross-entropy's
``dA = -(Y / A - (1 - Y) / (1 - A))`` pushed through the sigmoid's derivative, a relu mask on a copy),
gradients averaged over the batch, and an update of every array in place. No input checks, no cost
computed per batch, no buffers kept between batches. Samples are columns.

It is not the reference: :mod:`fastmlp.reference` defines what is *correct* (and validates everything);
this module only defines what fastmlp's speedups are measured against (``fastmlp bench``, docs/DESIGN.md
§3). Its results agree with the reference to rounding, which ``tests/test_benchmarks.py`` checks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["train_epoch"]


def _activate(Z, kind):
    if kind == "relu":
        return np.maximum(Z, 0)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-Z))
    if kind == "tanh":
        return np.tanh(Z)
    if kind == "linear":
        return Z
    raise ValueError(f"the baseline has no activation {kind!r}")


def _back_through(dA, Z, kind):
    if kind == "relu":
        dZ = dA.copy()
        dZ[Z <= 0] = 0
        return dZ
    if kind == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-Z))
        return dA * s * (1 - s)
    if kind == "tanh":
        t = np.tanh(Z)
        return dA * (1 - t * t)
    return dA


def _step(params, X, Y, activations, learning_rate):
    """One SGD step on one batch (sigmoid output, binary cross-entropy)."""
    layers = len(activations)
    caches = []
    A = X
    for l in range(1, layers + 1):
        W, b = params[f"W{l}"], params[f"b{l}"]
        Z = np.dot(W, A) + b
        caches.append((A, W, Z))
        A = _activate(Z, activations[l - 1])
    m = Y.shape[1]
    dA = -(np.divide(Y, A) - np.divide(1 - Y, 1 - A))
    grads = {}
    for l in range(layers, 0, -1):
        A_prev, W, Z = caches[l - 1]
        dZ = _back_through(dA, Z, activations[l - 1])
        grads[f"dW{l}"] = np.dot(dZ, A_prev.T) / m
        grads[f"db{l}"] = np.sum(dZ, axis=1, keepdims=True) / m
        dA = np.dot(W.T, dZ)
    for l in range(1, layers + 1):
        params[f"W{l}"] -= learning_rate * grads[f"dW{l}"]
        params[f"b{l}"] -= learning_rate * grads[f"db{l}"]


def train_epoch(params, X, Y, activations, learning_rate, batch_size):
    """One epoch of minibatch SGD over the columns of ``X`` ``(n_0, m)`` / ``Y`` ``(1, m)``, in order;
    ``params`` (``W1, b1, ...``) are updated in place and returned."""
    m = X.shape[1]
    for start in range(0, m, batch_size):
        _step(params, X[:, start:start + batch_size], Y[:, start:start + batch_size], activations, learning_rate)
    return params
