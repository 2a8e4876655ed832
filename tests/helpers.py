"""Builders of test problems shared by the test files (parameters, targets, copies), samples as columns."""

from __future__ import annotations

import numpy as np


def random_params(dims, rng, dtype=np.float64, scale=0.8, *, fan_in=False):
    """Course-style parameters ``W1 (n1, n0), b1 (n1, 1), ...`` drawn from ``rng`` in layer order.

    ``W = randn(n_l, n_{l-1}) * scale`` (divided by ``sqrt(n_{l-1})`` with ``fan_in``), ``b = randn(n_l, 1)
    * 0.3``, computed in float64 and cast to ``dtype``.
    """
    p = {}
    for l in range(1, len(dims)):
        s = scale / np.sqrt(dims[l - 1]) if fan_in else scale
        p[f"W{l}"] = (rng.randn(dims[l], dims[l - 1]) * s).astype(dtype)
        p[f"b{l}"] = (rng.randn(dims[l], 1) * 0.3).astype(dtype)
    return p


def random_targets(loss, n, m, rng, dtype=np.float64):
    """Targets ``(n, m)`` a loss accepts: probabilities (bce), one-hot columns (ce), Gaussian (others)."""
    if loss == "bce":
        return rng.uniform(0, 1, (n, m)).astype(dtype)
    if loss == "ce":
        return np.eye(n, dtype=dtype)[:, rng.randint(0, n, m)]
    return rng.randn(n, m).astype(dtype)


def copy_params(p):
    """Independent copies of every array of a parameter dict."""
    return {k: np.array(v, copy=True) for k, v in p.items()}


def numeric_gradients(cost, params, eps=1e-6):
    """Central differences of ``cost(parameters)`` for every entry of every array of ``params`` (a dict),
    each shifted on a copy: ``{key: array of params[key]'s shape}``."""
    grads = {}
    for key in params:
        numeric = np.zeros_like(params[key])
        for idx in np.ndindex(params[key].shape):
            for sign in (1, -1):
                shifted = {k: v.copy() for k, v in params.items()}
                shifted[key][idx] += sign * eps
                numeric[idx] += sign * cost(shifted) / (2 * eps)
        grads[key] = numeric
    return grads
