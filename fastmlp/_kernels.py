"""Numba kernels: fused affine + activation forward, fused backward, in-place optimiser steps, whole epochs.

Private. Every kernel writes into buffers its caller allocated (see :mod:`fastmlp._engine`, which
validates, converts and allocates once per ``fit``); nothing here allocates per training step.

Layout: samples are *rows* here (``X`` is ``(m, n0)``, C-contiguous), which makes every minibatch a
contiguous block. A layer's weights are stored as ``coef`` of shape ``(n_in, n_out)`` -- the transpose of the
course-style ``W`` -- followed by its ``intercept`` ``(n_out,)``, all layers back to back in one flat
parameter vector. The maths is the one of ``fastmlp.reference`` (DESIGN.md section 1) transposed:

====================  ==========================================
course (columns)      kernels (rows)
====================  ==========================================
``Z = W @ A + b``     ``Z = A @ coef + intercept``
``dW = dZ @ A.T / m`` ``g_coef = (A.T @ dZ + alpha coef) / m``
``dA = W.T @ dZ``     ``dA = dZ @ coef.T``
====================  ==========================================

Small products run as compiled loops (the innermost loop runs along contiguous memory, so LLVM
vectorises it; multiplications by an input that is exactly zero, common after a relu, are skipped, which
changes no result). Products of at least ``blas_min_flops`` multiply-adds call BLAS ``?gemm`` directly,
through Numba's own ``numba_xxgemm`` helper (the function Numba's ``np.dot`` uses, so compiled kernels stay
cacheable), with transposes expressed through memory layout, never copies. For plain SGD on the BLAS
path the weight update is fused into the gradient product: ``coef <- beta coef - (lr/m) A.T @ dZ`` in one
``gemm`` call, so the weight gradient is never materialised.
"""

from __future__ import annotations

import numba.np.linalg  # noqa: F401  (makes Numba register its BLAS helper symbols)
import numpy as np
from numba import njit, types
from numba.extending import overload

from fastmlp._config import JIT_OPTIONS

# --- integer codes used inside kernels -----------------------------------------------------------
ACT_LINEAR, ACT_RELU, ACT_LEAKY_RELU, ACT_SIGMOID, ACT_TANH, ACT_SOFTMAX = range(6)
ACTIVATION_CODES = {
    "linear": ACT_LINEAR,
    "relu": ACT_RELU,
    "leaky_relu": ACT_LEAKY_RELU,
    "sigmoid": ACT_SIGMOID,
    "tanh": ACT_TANH,
    "softmax": ACT_SOFTMAX,
}
#: bce: sigmoid output, summed over outputs, mean over samples; mse: sum over outputs of (A-Y)^2, mean over
#: samples; ce: softmax output; half_mse: scikit-learn's squared loss, mean over samples *and* outputs, / 2
LOSS_BCE, LOSS_MSE, LOSS_CE, LOSS_HALF_MSE = range(4)
LOSS_CODES = {"bce": LOSS_BCE, "mse": LOSS_MSE, "ce": LOSS_CE, "half_mse": LOSS_HALF_MSE}
OPT_SGD, OPT_MOMENTUM, OPT_NESTEROV, OPT_ADAM = range(4)
OPTIMIZER_CODES = {"sgd": OPT_SGD, "momentum": OPT_MOMENTUM, "nesterov": OPT_NESTEROV, "adam": OPT_ADAM}

jit = njit(**JIT_OPTIONS)

# --- BLAS ------------------------------------------------------------------------------------------
_XXGEMM = types.ExternalFunction(
    "numba_xxgemm",
    types.intc(
        types.char, types.char, types.char,  # kind, transa, transb
        types.intp, types.intp, types.intp,  # m, n, k
        types.voidptr, types.voidptr, types.intp,  # alpha, a, lda
        types.voidptr, types.intp,  # b, ldb
        types.voidptr, types.voidptr, types.intp,  # beta, c, ldc
    ),
)


def _blas_kind(arr):  # pragma: no cover - replaced by the overload below inside kernels
    raise NotImplementedError


@overload(_blas_kind)
def _blas_kind_impl(arr):
    code = ord("d") if arr.dtype == types.float64 else ord("s")

    def impl(arr):
        return np.int8(code)

    return impl


@jit
def _gemm(trans_a, trans_b, alpha, A, B, beta, C, scalars):
    """``C <- alpha op(A) @ op(B) + beta C`` for C-contiguous (row-major) 2-D arrays, through BLAS.

    Row-major ``C (M, N)`` is column-major ``C.T``, so this asks BLAS for
    ``C.T = op(B).T @ op(A).T``; a transpose is a flag, never a copy. ``scalars`` is a (2,) scratch
    array of C's dtype that carries alpha and beta to BLAS by pointer.
    """
    M, N = C.shape
    K = A.shape[0] if trans_a else A.shape[1]
    scalars[0] = alpha
    scalars[1] = beta
    flag_a = np.int8(116) if trans_a else np.int8(110)  # 't' / 'n'
    flag_b = np.int8(116) if trans_b else np.int8(110)
    status = _XXGEMM(_blas_kind(C), flag_b, flag_a, N, M, K, scalars[0:1].ctypes, B.ctypes, B.shape[1],
                     A.ctypes, A.shape[1], scalars[1:2].ctypes, C.ctypes, N)
    if status != 0:
        raise RuntimeError("BLAS gemm failed")


# --- activations -----------------------------------------------------------------------------------
@jit
def _activate_row(z, a, act, slope):
    """``a = g(z)`` for one sample's pre-activations; ``a`` may be ``z`` itself."""
    one = z.dtype.type(1)
    zero = z.dtype.type(0)
    n = z.shape[0]
    if act == ACT_RELU:
        for j in range(n):
            a[j] = z[j] if z[j] > zero else zero
    elif act == ACT_LEAKY_RELU:
        for j in range(n):
            a[j] = z[j] if z[j] > zero else slope * z[j]
    elif act == ACT_SIGMOID:
        for j in range(n):
            if z[j] >= zero:
                a[j] = one / (one + np.exp(-z[j]))
            else:
                e = np.exp(z[j])
                a[j] = e / (one + e)
    elif act == ACT_TANH:
        for j in range(n):
            a[j] = np.tanh(z[j])
    elif act == ACT_SOFTMAX:
        top = z[0]
        for j in range(1, n):
            top = max(top, z[j])
        total = zero
        for j in range(n):
            a[j] = np.exp(z[j] - top)
            total += a[j]
        for j in range(n):
            a[j] = a[j] / total
    else:
        for j in range(n):
            a[j] = z[j]


@jit
def _derivative_times(d, z, a, act, slope, one):
    """``d * g'(z)`` for one element, ``a = g(z)`` (sigmoid and tanh use ``a``; relu at 0 gives 0).

    ``one`` is 1 in the arrays' dtype, so that float32 arithmetic stays float32.
    """
    zero = one - one
    if act == ACT_RELU:
        return d if z > zero else zero
    if act == ACT_LEAKY_RELU:
        return d if z > zero else slope * d
    if act == ACT_SIGMOID:
        return d * a * (one - a)
    if act == ACT_TANH:
        return d * (one - a * a)
    return d


@jit
def _activate_rows(Z, A, act, slope):
    """``A = g(Z)`` row by row; ``A`` may be ``Z``."""
    for i in range(Z.shape[0]):
        _activate_row(Z[i], A[i], act, slope)


# --- one layer, forward --------------------------------------------------------------------------
@jit
def _affine_activation(A_prev, coef, intercept, act, slope, Z, A, use_blas, scalars):
    """Fused ``Z = A_prev @ coef + intercept``, ``A = g(Z)``.

    Parameters
    ----------
    A_prev : (b, n_in) array
    coef : (n_in, n_out) array
    intercept : (n_out,) array
    act : int, activation code; slope : leaky-relu slope (array dtype)
    Z, A : (b, n_out) arrays, written (``A`` may be ``Z`` when the pre-activations are not needed)
    use_blas : bool, call BLAS for the product instead of the compiled loops
    scalars : (2,) scratch array for BLAS
    """
    n_b, n_in = A_prev.shape
    n_out = coef.shape[1]
    zero = Z.dtype.type(0)
    for i in range(n_b):
        for j in range(n_out):
            Z[i, j] = intercept[j]
    if use_blas:
        _gemm(False, False, 1, A_prev, coef, 1, Z, scalars)
        for i in range(n_b):
            _activate_row(Z[i], A[i], act, slope)
    else:
        for i in range(n_b):
            for k in range(n_in):
                x = A_prev[i, k]
                if x != zero:
                    for j in range(n_out):
                        Z[i, j] += x * coef[k, j]
            _activate_row(Z[i], A[i], act, slope)


# --- one layer, backward -------------------------------------------------------------------------
@jit
def _backprop_delta(dZ, coef, Z_prev, A_prev, act_prev, slope, dZ_prev, use_blas, scalars):
    """Fused ``dZ_prev = (dZ @ coef.T) * g'(Z_prev)``.

    Parameters
    ----------
    dZ : (b, n_out); coef : (n_in, n_out); Z_prev, A_prev : (b, n_in) the previous layer's
    pre-activations and activations; dZ_prev : (b, n_in), written.
    """
    n_b, n_out = dZ.shape
    n_in = coef.shape[0]
    zero = dZ.dtype.type(0)
    one = dZ.dtype.type(1)
    if use_blas:
        _gemm(False, True, 1, dZ, coef, 0, dZ_prev, scalars)
        for i in range(n_b):
            for k in range(n_in):
                dZ_prev[i, k] = _derivative_times(dZ_prev[i, k], Z_prev[i, k], A_prev[i, k], act_prev, slope, one)
    else:
        for i in range(n_b):
            for k in range(n_in):
                if (act_prev == ACT_RELU) and not (Z_prev[i, k] > zero):
                    dZ_prev[i, k] = zero
                    continue
                s = zero
                for j in range(n_out):
                    s += dZ[i, j] * coef[k, j]
                dZ_prev[i, k] = _derivative_times(s, Z_prev[i, k], A_prev[i, k], act_prev, slope, one)


@jit
def _intercept_gradient(dZ, g_intercept):
    """``g_intercept = mean(dZ, axis=0)``."""
    n_b, n_out = dZ.shape
    size = dZ.dtype.type(n_b)
    for j in range(n_out):
        g_intercept[j] = dZ.dtype.type(0)
    for i in range(n_b):
        for j in range(n_out):
            g_intercept[j] += dZ[i, j]
    for j in range(n_out):
        g_intercept[j] = g_intercept[j] / size


@jit
def _layer_gradients(A_prev, dZ, coef, alpha, g_coef, g_intercept, use_blas, scalars):
    """``g_coef = (A_prev.T @ dZ + alpha coef) / b`` and ``g_intercept = mean(dZ, axis=0)``."""
    n_b, n_in = A_prev.shape
    n_out = dZ.shape[1]
    zero = dZ.dtype.type(0)
    size = dZ.dtype.type(n_b)
    _intercept_gradient(dZ, g_intercept)
    if use_blas:
        _gemm(True, False, 1, A_prev, dZ, 0, g_coef, scalars)
    else:
        for k in range(n_in):
            for j in range(n_out):
                g_coef[k, j] = zero
        for i in range(n_b):
            for k in range(n_in):
                x = A_prev[i, k]
                if x != zero:
                    for j in range(n_out):
                        g_coef[k, j] += x * dZ[i, j]
    if alpha != zero:
        for k in range(n_in):
            for j in range(n_out):
                g_coef[k, j] = (g_coef[k, j] + alpha * coef[k, j]) / size
    else:
        for k in range(n_in):
            for j in range(n_out):
                g_coef[k, j] = g_coef[k, j] / size


@jit
def _optimizer_step(params, grad, lo, hi, opt, lr, lr_adam, momentum, beta_1, beta_2, epsilon, state_1, state_2):
    """In-place update of ``params[lo:hi]`` from ``grad[lo:hi]`` (scikit-learn's formulas and order).

    sgd: ``p -= lr g``. momentum: ``v = mu v - lr g; p += v``. nesterov: ``v = mu v - lr g;
    p += mu v - lr g``. adam: ``m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p += -lr_t m / (sqrt(v) + eps)``.
    """
    one = params.dtype.type(1)
    if opt == OPT_SGD:
        for i in range(lo, hi):
            params[i] -= lr * grad[i]
    elif opt == OPT_MOMENTUM:
        for i in range(lo, hi):
            v = momentum * state_1[i] - lr * grad[i]
            state_1[i] = v
            params[i] += v
    elif opt == OPT_NESTEROV:
        for i in range(lo, hi):
            v = momentum * state_1[i] - lr * grad[i]
            state_1[i] = v
            params[i] += momentum * v - lr * grad[i]
    else:
        for i in range(lo, hi):
            g = grad[i]
            m1 = beta_1 * state_1[i] + (one - beta_1) * g
            m2 = beta_2 * state_2[i] + (one - beta_2) * (g * g)
            state_1[i] = m1
            state_2[i] = m2
            params[i] += (-lr_adam * m1) / (np.sqrt(m2) + epsilon)


# --- the output layer: cost and delta ------------------------------------------------------------
@jit
def _cost_and_delta(Z, A, Y, act, loss, slope, dZ):
    """Return the summed (not yet averaged) cost of a batch and write the output delta ``dZ``.

    bce (sigmoid output) is computed from the logits, ``max(z, 0) - y z + log1p(exp(-|z|))``, and ce
    (softmax output) through a log-sum-exp, so that no log of a rounded-to-zero probability is taken.
    Deltas: bce, ce: ``A - Y``; mse: ``2 (A - Y) g'(Z)``; half_mse: ``(A - Y) g'(Z)``.
    """
    n_b, n_out = Z.shape
    zero = Z.dtype.type(0)
    one = Z.dtype.type(1)
    two = Z.dtype.type(2)
    total = 0.0
    if loss == LOSS_BCE:
        for i in range(n_b):
            for j in range(n_out):
                z = Z[i, j]
                y = Y[i, j]
                total += max(z, zero) - y * z + np.log1p(np.exp(-abs(z)))
                dZ[i, j] = A[i, j] - y
    elif loss == LOSS_CE:
        for i in range(n_b):
            top = Z[i, 0]
            for j in range(1, n_out):
                top = max(top, Z[i, j])
            s = zero
            for j in range(n_out):
                s += np.exp(Z[i, j] - top)
            lse = top + np.log(s)
            for j in range(n_out):
                y = Y[i, j]
                if y != zero:
                    total += y * (lse - Z[i, j])
                dZ[i, j] = A[i, j] - y
    else:
        factor = two if loss == LOSS_MSE else one
        for i in range(n_b):
            for j in range(n_out):
                diff = A[i, j] - Y[i, j]
                total += diff * diff
                dZ[i, j] = _derivative_times(factor * diff, Z[i, j], A[i, j], act, slope, one)
        if loss == LOSS_HALF_MSE:
            total = total / (2.0 * n_out)
    return total


# --- whole network -----------------------------------------------------------------------------------
@jit
def _offsets(dims, rows):
    """Offsets of each layer in the flat parameter vector and in an activation workspace of ``rows`` rows."""
    n_layers = dims.shape[0] - 1
    param_offset = np.empty(n_layers + 1, np.int64)
    act_offset = np.empty(n_layers + 1, np.int64)
    param_offset[0] = 0
    act_offset[0] = 0
    for l in range(n_layers):
        param_offset[l + 1] = param_offset[l] + dims[l] * dims[l + 1] + dims[l + 1]
        act_offset[l + 1] = act_offset[l] + rows * dims[l + 1]
    return param_offset, act_offset


@jit
def _coef_view(params, param_offset, dims, l):
    lo = param_offset[l]
    return params[lo:lo + dims[l] * dims[l + 1]].reshape((dims[l], dims[l + 1]))


@jit
def _intercept_view(params, param_offset, dims, l):
    return params[param_offset[l] + dims[l] * dims[l + 1]:param_offset[l + 1]]


@jit
def _rows_view(buffer, act_offset, dims, l, n_rows):
    """Layer ``l``'s ``(n_rows, dims[l + 1])`` block of an activation workspace."""
    lo = act_offset[l]
    return buffer[lo:lo + n_rows * dims[l + 1]].reshape((n_rows, dims[l + 1]))


@jit
def _forward(X, params, dims, acts, slope, buffer, out, blas_min_flops):
    """Network output for every row of ``X``.

    Parameters
    ----------
    X : (m, n0) C-contiguous; params : (P,) flat parameters; dims : (L + 1,) int64 layer sizes
    acts : (L,) int64 activation codes; slope : leaky slope (array dtype)
    buffer : (2, m * max(dims)) ping-pong workspace; out : (m, nL), written
    """
    n_layers = dims.shape[0] - 1
    m = X.shape[0]
    param_offset, _ = _offsets(dims, m)
    scalars = np.empty(2, params.dtype)
    A_prev = X
    for l in range(n_layers):
        n_in, n_out = dims[l], dims[l + 1]
        if l == n_layers - 1:
            A = out
        else:
            A = buffer[l % 2, :m * n_out].reshape((m, n_out))
        _affine_activation(A_prev, _coef_view(params, param_offset, dims, l),
                           _intercept_view(params, param_offset, dims, l), acts[l], slope, A, A,
                           m * n_in * n_out >= blas_min_flops, scalars)
        A_prev = A


@jit
def _batch_step(xb, yb, params, dims, acts, slope, loss, alpha, opt, lr, lr_adam, momentum, beta_1, beta_2,
                epsilon, state_1, state_2, Zbuf, Abuf, deltas, grad, param_offset, act_offset, scalars,
                blas_min_flops):
    """One minibatch: forward, cost, backward and the optimiser step for every layer; returns the cost.

    The cost (loss of the batch plus ``0.5 alpha sum(coef^2) / b``) is that of the parameters before the
    step. Layer ``l`` is updated as soon as the delta of layer ``l - 1`` has been computed from its old
    weights, which gives the same result as computing every gradient first.
    """
    n_layers = dims.shape[0] - 1
    n_b = xb.shape[0]
    size = params.dtype.type(n_b)
    one = params.dtype.type(1)
    zero = params.dtype.type(0)

    penalty = 0.0
    if alpha != zero:
        for l in range(n_layers):
            lo = param_offset[l]
            for i in range(lo, lo + dims[l] * dims[l + 1]):
                penalty += params[i] * params[i]
        penalty = 0.5 * alpha * penalty / n_b

    A_prev = xb
    for l in range(n_layers):
        Z = _rows_view(Zbuf, act_offset, dims, l, n_b)
        A = _rows_view(Abuf, act_offset, dims, l, n_b)
        _affine_activation(A_prev, _coef_view(params, param_offset, dims, l),
                           _intercept_view(params, param_offset, dims, l), acts[l], slope, Z, A,
                           n_b * dims[l] * dims[l + 1] >= blas_min_flops, scalars)
        A_prev = A

    top = n_layers - 1
    n_last = dims[n_layers]
    dZ = deltas[0, :n_b * n_last].reshape((n_b, n_last))
    cost = _cost_and_delta(_rows_view(Zbuf, act_offset, dims, top, n_b), _rows_view(Abuf, act_offset, dims, top, n_b),
                           yb, acts[top], loss, slope, dZ) / n_b + penalty

    for l in range(top, -1, -1):
        n_in, n_out = dims[l], dims[l + 1]
        lo = param_offset[l]
        hi = param_offset[l + 1]
        coef = _coef_view(params, param_offset, dims, l)
        dZ = deltas[(top - l) % 2, :n_b * n_out].reshape((n_b, n_out))
        A_prev = _rows_view(Abuf, act_offset, dims, l - 1, n_b) if l > 0 else xb
        use_blas = n_b * n_in * n_out >= blas_min_flops
        if l > 0:
            dZ_prev = deltas[(top - l + 1) % 2, :n_b * n_in].reshape((n_b, n_in))
            _backprop_delta(dZ, coef, _rows_view(Zbuf, act_offset, dims, l - 1, n_b), A_prev, acts[l - 1], slope,
                            dZ_prev, use_blas, scalars)
        g_intercept = _intercept_view(grad, param_offset, dims, l)
        if opt == OPT_SGD and use_blas:
            # fused: coef <- (1 - lr alpha / b) coef - (lr / b) A_prev.T @ dZ, the gradient never stored
            _gemm(True, False, -lr / size, A_prev, dZ, one - lr * alpha / size, coef, scalars)
            _intercept_gradient(dZ, g_intercept)
            _optimizer_step(params, grad, lo + n_in * n_out, hi, opt, lr, lr_adam, momentum, beta_1, beta_2,
                            epsilon, state_1, state_2)
        else:
            _layer_gradients(A_prev, dZ, coef, alpha, _coef_view(grad, param_offset, dims, l), g_intercept,
                             use_blas, scalars)
            _optimizer_step(params, grad, lo, hi, opt, lr, lr_adam, momentum, beta_1, beta_2, epsilon,
                            state_1, state_2)
    return cost


@jit
def _all_finite(values):
    for i in range(values.shape[0]):
        if not np.isfinite(values[i]):
            return False
    return True


@jit
def _train_epochs(X, Y, params, dims, acts, slope, loss, alpha, batch_size, order, learning_rates,
                  opt, momentum, beta_1, beta_2, epsilon, state_1, state_2, step,
                  Zbuf, Abuf, deltas, grad, xbuf, ybuf, backup, blas_min_flops,
                  mean_batch_cost, sample_weighted_cost):
    """Run ``len(learning_rates)`` epochs of minibatch training in place; return the epochs completed.

    Parameters
    ----------
    X : (m, n0) C-contiguous; Y : (m, nL) C-contiguous
    params : (P,) flat parameters, updated in place
    dims : (L + 1,) int64; acts : (L,) int64 activation codes; slope, alpha : array-dtype scalars
    loss, opt : int codes; batch_size : int
    order : (epochs, m) int64 sample order of each epoch, or shape (0, m) for the natural order
    learning_rates : (epochs,) float64, the rate of each epoch
    momentum, beta_1, beta_2, epsilon : array-dtype scalars; state_1, state_2 : (P,) optimiser state
    step : (1,) int64, Adam's update count, advanced in place
    Zbuf, Abuf : (batch_size * sum(dims[1:]),); deltas : (2, batch_size * max(dims)); grad, backup : (P,)
    xbuf : (batch_size, n0); ybuf : (batch_size, nL) gather buffers (used when ``order`` is given)
    blas_min_flops : int, products of at least this many multiply-adds call BLAS
    mean_batch_cost, sample_weighted_cost : (epochs,) float64, written: the mean of the epoch's
    minibatch costs, and their mean weighted by batch size

    Returns
    -------
    int
        Epochs completed. Fewer than requested means that the next epoch produced a non-finite cost or
        weights; the parameters are then restored to their values at the start of that epoch.
    """
    m = X.shape[0]
    n_epochs = learning_rates.shape[0]
    shuffled = order.shape[0] > 0
    n_batches = (m + batch_size - 1) // batch_size
    param_offset, act_offset = _offsets(dims, batch_size)
    scalars = np.empty(2, params.dtype)
    for e in range(n_epochs):
        backup[:] = params
        lr = params.dtype.type(learning_rates[e])
        total = 0.0
        weighted = 0.0
        for start in range(0, m, batch_size):
            stop = min(start + batch_size, m)
            n_b = stop - start
            if shuffled:
                for i in range(n_b):
                    row = order[e, start + i]
                    xbuf[i, :] = X[row]
                    ybuf[i, :] = Y[row]
                xb = xbuf[:n_b]
                yb = ybuf[:n_b]
            else:
                xb = X[start:stop]
                yb = Y[start:stop]
            lr_adam = lr
            if opt == OPT_ADAM:
                step[0] += 1
                t = step[0]
                lr_adam = params.dtype.type(
                    learning_rates[e] * np.sqrt(1.0 - float(beta_2) ** t) / (1.0 - float(beta_1) ** t))
            cost = _batch_step(xb, yb, params, dims, acts, slope, loss, alpha, opt, lr, lr_adam, momentum,
                               beta_1, beta_2, epsilon, state_1, state_2, Zbuf, Abuf, deltas, grad,
                               param_offset, act_offset, scalars, blas_min_flops)
            total += cost
            weighted += cost * n_b
        mean_batch_cost[e] = total / n_batches
        sample_weighted_cost[e] = weighted / m
        if not (np.isfinite(total) and _all_finite(params)):
            params[:] = backup
            return e
    return n_epochs
