"""A NumPy transcription of scikit-learn's MLP training step, samples as rows: the reference that
``tests/test_engine.py`` holds the engine's optimisers (momentum, Nesterov, Adam), the L2 penalty ``alpha``
and scikit-learn's ``half_mse`` loss to (docs/DESIGN.md §4).

It follows scikit-learn's ``BaseMultilayerPerceptron._backprop`` and its ``SGDOptimizer`` /
``AdamOptimizer``: the formulas written in ``fastmlp._engine.Optimizer``'s docstring. For plain SGD it is
itself held to :func:`fastmlp.reference.train` (``test_numpy_reference_of_this_file_equals_fastmlp_reference``
in ``tests/test_engine.py``).
"""

from __future__ import annotations

import numpy as np

from fastmlp import reference as R

__all__ = ["np_train", "activation", "activation_derivative", "loss_and_delta"]



def activation(Z, act, slope):
    if act == "relu":
        return np.maximum(Z, 0)
    if act == "leaky_relu":
        return np.where(Z > 0, Z, Z * Z.dtype.type(slope))
    if act == "sigmoid":
        return R.sigmoid(Z)
    if act == "tanh":
        return np.tanh(Z)
    if act == "softmax":
        return R.softmax(Z.T).T
    return Z.copy()


def activation_derivative(Z, A, act, slope):
    """g'(Z), from Z (relu, leaky_relu) or from A = g(Z) (sigmoid, tanh)."""
    if act == "relu":
        return (Z > 0).astype(Z.dtype)
    if act == "leaky_relu":
        return np.where(Z > 0, Z.dtype.type(1), Z.dtype.type(slope))
    if act == "sigmoid":
        return A * (1 - A)
    if act == "tanh":
        return 1 - A * A
    return np.ones_like(Z)


def loss_and_delta(Z, A, Y, act, loss, slope):
    """The batch loss (mean over samples) and the output delta, as scikit-learn defines them."""
    n = Z.shape[0]
    if loss == "bce":
        cost = np.sum(np.maximum(Z, 0) - Y * Z + np.log1p(np.exp(-np.abs(Z)))) / n
        return float(cost), A - Y
    if loss == "ce":
        Zs = Z - Z.max(axis=1, keepdims=True)
        log_sm = Zs - np.log(np.exp(Zs).sum(axis=1, keepdims=True))
        return float(-np.sum(Y * log_sm) / n), A - Y
    if loss == "mse":  # sum over outputs, mean over samples
        return float(np.sum((A - Y) ** 2) / n), 2 * (A - Y) * activation_derivative(Z, A, act, slope)
    if loss == "half_mse":  # scikit-learn's squared_loss: mean over samples *and* outputs, halved;
        # its delta is (A - Y) g'(Z) all the same (scikit-learn's convention, not the exact gradient)
        return float(np.mean((A - Y) ** 2) / 2), (A - Y) * activation_derivative(Z, A, act, slope)
    raise AssertionError(loss)


def np_train(coefs, intercepts, acts, X, Y, loss, *, learning_rate, epochs=1, batch_size=None, alpha=0.0,
             kind="sgd", momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-8, slope=0.01, order=None,
             state=None):
    """Train copies of ``coefs`` (n_in, n_out) and ``intercepts`` (n_out,); return them with the per-epoch
    mean batch costs, the sample-weighted costs and the optimiser ``state`` (pass it back to continue).

    For each batch (scikit-learn's ``_backprop``): forward pass; loss of the batch plus
    ``0.5 alpha sum(coef**2) / n``; output delta; ``coef_grad = (A_prev.T @ delta + alpha coef) / n``,
    ``intercept_grad = mean(delta)``; ``delta_prev = (delta @ coef.T) * g'(Z_prev)``. Then the optimiser,
    on every parameter (scikit-learn's ``SGDOptimizer`` / ``AdamOptimizer``):
    sgd ``p -= lr g``; momentum ``v = mu v - lr g; p += v``; nesterov ``v = mu v - lr g; p += mu v - lr g``;
    adam ``t += 1; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g**2;
    p -= lr sqrt(1 - b2**t) / (1 - b1**t) m / (sqrt(v) + eps)``.
    """
    params = [np.array(c, copy=True) for c in coefs] + [np.array(b, copy=True) for b in intercepts]
    L = len(coefs)
    dt = params[0].dtype.type
    if state is None:
        state = {"t": 0, "m": [np.zeros_like(p) for p in params], "v": [np.zeros_like(p) for p in params]}
    m = X.shape[0]
    bs = m if batch_size is None else min(batch_size, m)
    mean_costs, weighted_costs = [], []
    for e in range(epochs):
        lr = learning_rate[e] if np.ndim(learning_rate) else learning_rate
        Xe, Ye = (X, Y) if order is None else (X[order[e]], Y[order[e]])
        batch_costs, sizes = [], []
        for start in range(0, m, bs):
            xb, yb = Xe[start:start + bs], Ye[start:start + bs]
            n = xb.shape[0]
            W, b = params[:L], params[L:]
            As, Zs = [xb], []
            for l in range(L):
                Zs.append(As[-1] @ W[l] + b[l])
                As.append(activation(Zs[-1], acts[l], slope))
            cost, delta = loss_and_delta(Zs[-1], As[-1], yb, acts[-1], loss, slope)
            cost += 0.5 * alpha * sum(float(np.sum(w * w)) for w in W) / n
            grads_W, grads_b = [None] * L, [None] * L
            for l in range(L - 1, -1, -1):
                grads_W[l] = (As[l].T @ delta + dt(alpha) * W[l]) / dt(n)
                grads_b[l] = delta.mean(axis=0)
                if l > 0:
                    delta = (delta @ W[l].T) * activation_derivative(Zs[l - 1], As[l], acts[l - 1], slope)
            grads = grads_W + grads_b
            if kind == "adam":
                state["t"] += 1
                t = state["t"]
                lr_t = dt(lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t))
            for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                if kind == "sgd":
                    p -= dt(lr) * g
                elif kind in ("momentum", "nesterov"):
                    v = dt(momentum) * state["m"][i] - dt(lr) * g
                    state["m"][i] = v
                    p += v if kind == "momentum" else dt(momentum) * v - dt(lr) * g
                else:
                    state["m"][i] = dt(beta_1) * state["m"][i] + dt(1 - beta_1) * g
                    state["v"][i] = dt(beta_2) * state["v"][i] + dt(1 - beta_2) * (g * g)
                    p -= lr_t * state["m"][i] / (np.sqrt(state["v"][i]) + dt(epsilon))
            batch_costs.append(cost)
            sizes.append(n)
        mean_costs.append(float(np.mean(batch_costs)))
        weighted_costs.append(float(np.dot(batch_costs, sizes) / m))
    return params[:L], params[L:], mean_costs, weighted_costs, state
