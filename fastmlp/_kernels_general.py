"""Numba kernels for the general case of the scikit-learn estimators: sample weights, sparse ``X``, Poisson
loss, and the whole-data-set loss and gradient that L-BFGS minimises.

Private; :mod:`fastmlp._engine` is the door to them. The unweighted dense minibatch path stays on
:func:`fastmlp._kernels._train_epochs` (fused updates, borrowed views); the kernels here compute a block's
full gradient first and then step, with scikit-learn's weighted formulas (``_multilayer_perceptron._backprop``):

- the block's loss is ``sum_i s_i loss_i / S + 0.5 alpha sum(W^2) / S`` with ``S = sum_i s_i``;
- the output delta is ``(A - Y) * s_i`` (every estimator output is paired with its canonical loss:
  logistic + binary log-loss, softmax + log-loss, identity + half squared error, exp + half Poisson
  deviance), and ``g_W = (dZ @ A_prev.T + alpha W) / S``, ``g_b = sum(dZ) / S``.

A block whose weights sum to zero (possible within a minibatch) contributes a zero loss and gradient.

Sparse ``X`` is CSR (``data``, ``indices``, ``indptr``, rows are samples); the first layer's products run on
it directly: ``Z1[:, i] = b + sum_p W1[:, indices[p]] * data[p]`` over the nonzeros ``p`` of row ``i``, and
``g_W1[:, k] += dZ1[:, i] * X[i, k]`` over the same nonzeros. Nothing densifies ``X``. A minibatch is a list
of row numbers (``rows``), so shuffling gathers nothing from a sparse ``X``.

Layout as in :mod:`fastmlp._kernels`: samples are columns, every activation block is packed
``(n_l, n_b)``, a layer's ``W`` is ``(n_out, n_in)`` in C order followed by its intercept. The Poisson
network's output layer is linear (it computes ``log`` of the mean); the exponential is applied here, in the
loss, and by the caller at prediction time. No view here is borrowed: every array keeps its reference count.
"""

from __future__ import annotations

import numpy as np

from fastmlp._kernels import (
    _FLUSH_SUBNORMALS,
    _U,
    LOSS_BCE,
    LOSS_CE,
    LOSS_HALF_MSE,
    OPT_ADAM,
    _activate_block,
    _affine_activation,
    _backprop_delta,
    _finite,
    _flush_to_zero,
    _gemm,
    _neg_log_softmax,
    _optimizer_step,
    _restore_flush_to_zero,
    _smallest_normal,
    jit,
)

#: the Poisson loss (half deviance, exponential output): a code beyond :data:`fastmlp._kernels.LOSS_CODES`
LOSS_POISSON = 10
#: losses the general kernels take: the estimators' canonical output/loss pairs
GENERAL_LOSS_CODES = {"bce": LOSS_BCE, "ce": LOSS_CE, "half_mse": LOSS_HALF_MSE, "poisson": LOSS_POISSON}


# --- the first layer on a sparse X --------------------------------------------------------------------
#: outputs handled per pass over the nonzeros: the rows ``j * n_b + i`` of those outputs stay in cache while
#: ``i`` advances (all outputs at once would touch one cache line per output for every nonzero)
_OUTPUT_CHUNK = 16


@jit
def _block_nnz(indptr, rows, n_b):
    """Nonzeros in the CSR rows ``rows[:n_b]``."""
    total = 0
    for i in range(n_b):
        total += indptr[rows[i] + 1] - indptr[rows[i]]
    return total


@jit
def _sparse_affine_activation(data, indices, indptr, rows, n_b, params, n_in, n_out, act, slope, Z, A, scratch):
    """``Z = W1 @ X[rows].T + b1`` and ``A = g(Z)`` for the CSR rows ``rows[:n_b]``, packed ``(n_out, n_b)``
    at offset 0 of ``Z`` and ``A``.

    With ``scratch`` of at least ``n_out * (n_in + n_b)`` entries and at least ``n_in`` nonzeros in the block,
    ``W1`` is transposed into it and every nonzero adds a contiguous row ``W1[:, k] * v`` to its sample's
    contiguous row of a ``(n_b, n_out)`` block, transposed into ``Z`` at the end (the transposes cost less than
    the nonzeros' work). Otherwise the outputs are walked in chunks straight into ``Z``. Each entry's sum runs
    over the row's nonzeros in the same order either way.
    """
    use_scratch = scratch.shape[0] >= n_out * (n_in + n_b) and _block_nnz(indptr, rows, n_b) >= n_in
    n_in, n_out, n_b = _U(n_in), _U(n_out), _U(n_b)  # unsigned: no wraparound checks, loops vectorise
    b_off = n_in * n_out
    if use_scratch:
        zt_off = n_in * n_out
        for j in range(n_out):
            for k in range(n_in):
                scratch[k * n_out + j] = params[j * n_in + k]
        for i in range(n_b):
            zi = zt_off + i * n_out
            for j in range(n_out):
                scratch[zi + j] = params[b_off + j]
            r = rows[i]
            for p in range(indptr[r], indptr[r + 1]):
                kk = _U(indices[p]) * n_out
                v = data[p]
                for j in range(n_out):
                    scratch[zi + j] += scratch[kk + j] * v
        for j in range(n_out):
            for i in range(n_b):
                Z[j * n_b + i] = scratch[zt_off + i * n_out + j]
    else:
        for j in range(n_out):
            bias = params[b_off + j]
            for i in range(n_b):
                Z[j * n_b + i] = bias
        for j0 in range(_U(0), n_out, _U(_OUTPUT_CHUNK)):
            j1 = min(j0 + _U(_OUTPUT_CHUNK), n_out)
            for i in range(n_b):
                r = rows[i]
                for p in range(indptr[r], indptr[r + 1]):
                    k = _U(indices[p])
                    v = data[p]
                    for j in range(j0, j1):
                        Z[j * n_b + i] += params[j * n_in + k] * v
    _activate_block(Z, 0, A, 0, n_out, n_b, act, slope)


@jit
def _sparse_weight_gradient(data, indices, indptr, rows, n_b, dZ, d_off, n_in, n_out, grad, scratch):
    """``grad[:n_out * n_in] = dZ @ X[rows]`` (the first layer's ``W`` layout) for the CSR rows ``rows[:n_b]``,
    ``dZ`` packed ``(n_out, n_b)`` at ``d_off``; ``scratch`` as in :func:`_sparse_affine_activation` (then
    contiguous rows ``g[k, :] += dZ[:, i] * v`` in a transposed accumulator)."""
    zero = grad.dtype.type(0)
    use_scratch = scratch.shape[0] >= n_out * (n_in + n_b) and _block_nnz(indptr, rows, n_b) >= n_in
    n_in, n_out, n_b, d_off = _U(n_in), _U(n_out), _U(n_b), _U(d_off)
    if use_scratch:
        dt_off = n_in * n_out
        for t in range(n_in * n_out):
            scratch[t] = zero
        for j in range(n_out):
            for i in range(n_b):
                scratch[dt_off + i * n_out + j] = dZ[d_off + j * n_b + i]
        for i in range(n_b):
            di = dt_off + i * n_out
            r = rows[i]
            for p in range(indptr[r], indptr[r + 1]):
                kk = _U(indices[p]) * n_out
                v = data[p]
                for j in range(n_out):
                    scratch[kk + j] += scratch[di + j] * v
        for j in range(n_out):
            for k in range(n_in):
                grad[j * n_in + k] = scratch[k * n_out + j]
        return
    for t in range(n_in * n_out):
        grad[t] = zero
    for j0 in range(_U(0), n_out, _U(_OUTPUT_CHUNK)):
        j1 = min(j0 + _U(_OUTPUT_CHUNK), n_out)
        for i in range(n_b):
            r = rows[i]
            for p in range(indptr[r], indptr[r + 1]):
                k = _U(indices[p])
                v = data[p]
                for j in range(j0, j1):
                    grad[j * n_in + k] += dZ[d_off + j * n_b + i] * v


@jit
def _dense_weight_gradient(src, s_off, s_ld, n_in, n_b, dZ, d_off, n_out, grad, p_off, use_blas, scalars):
    """``grad[p_off:p_off + n_out * n_in] = dZ @ A_prev.T`` (``A_prev`` the ``(n_in, n_b)`` block at
    ``src[s_off:]``, rows ``s_ld`` apart; ``dZ`` packed ``(n_out, n_b)`` at ``d_off``)."""
    one = dZ.dtype.type(1)
    zero = one - one
    if use_blas:
        _gemm(False, True, n_out, n_in, n_b, one, dZ, d_off, n_b, src, s_off, s_ld, zero, grad, p_off, n_in,
              scalars)
        return
    for j in range(n_out):
        dj = d_off + j * n_b
        for k in range(n_in):
            sk = s_off + k * s_ld
            s = zero
            for i in range(n_b):
                s += src[sk + i] * dZ[dj + i]
            grad[p_off + j * n_in + k] = s


@jit
def _finish_layer_gradient(dZ, d_off, n_out, n_b, n_in, params, p_off, alpha, total_weight, grad):
    """``g_W = (g_W + alpha W) / S`` in place and ``g_b = sum(dZ, axis=1) / S`` (scikit-learn's order)."""
    zero = grad.dtype.type(0)
    for t in range(p_off, p_off + n_in * n_out):
        grad[t] = (grad[t] + alpha * params[t]) / total_weight
    b_off = p_off + n_in * n_out
    for j in range(n_out):
        s = zero
        dj = d_off + j * n_b
        for i in range(n_b):
            s += dZ[dj + i]
        grad[b_off + j] = s / total_weight


# --- the output layer: weighted loss and delta ------------------------------------------------------------
@jit
def _weighted_output(Z, z_off, A, a_off, Y, y_off, y_ld, sw, sw_off, n_out, n_b, loss, dZ):
    """Return ``sum_i s_i loss_i`` of the block and write ``dZ = (A - Y) * s_i`` (packed ``(n_out, n_b)``).

    bce and ce are computed from the logits ``Z`` (as :func:`fastmlp._kernels._cost_and_delta`); half_mse is
    scikit-learn's ``sum_j (a - y)^2 / (2 n_out)``; poisson (``A`` is overwritten with ``exp(Z)``) is the half
    deviance ``sum_j y log(y) - y z - y + exp(z)``, with ``0 log 0 = 0``.
    """
    one = Z.dtype.type(1)
    zero = one - one
    total = 0.0
    for i in range(n_b):
        s = sw[sw_off + i]
        sample = 0.0
        if loss == LOSS_CE:
            top = Z[z_off + i]
            for j in range(1, n_out):
                top = max(top, Z[z_off + j * n_b + i])
            acc = zero
            for j in range(n_out):
                acc += np.exp(Z[z_off + j * n_b + i] - top)
            log_s = np.log(acc)
            for j in range(n_out):
                t = j * n_b + i
                y = Y[y_off + j * y_ld + i]
                if y != zero:
                    sample += y * _neg_log_softmax(top, Z[z_off + t], log_s)
                dZ[t] = (A[a_off + t] - y) * s
        else:
            for j in range(n_out):
                t = j * n_b + i
                z = Z[z_off + t]
                y = Y[y_off + j * y_ld + i]
                if loss == LOSS_BCE:
                    a = A[a_off + t]
                    sample += max(z, zero) - y * z - np.log(max(a, one - a))
                elif loss == LOSS_POISSON:
                    a = np.exp(z)
                    A[a_off + t] = a
                    if y > zero:
                        sample += y * np.log(y)
                    sample += a - y - y * z
                else:
                    a = A[a_off + t]
                    sample += (a - y) * (a - y)
                dZ[t] = (a - y) * s
            if loss == LOSS_HALF_MSE:
                sample = sample / (2.0 * n_out)
        total += sample * s
    return total


# --- one block: loss and full gradient ----------------------------------------------------------------------
@jit
def _loss_grad_block(xb, x_off, x_ld, data, indices, indptr, rows, sparse, yb, y_off, y_ld, sw, sw_off, n_b,
                     params, dims, acts, slope, loss, alpha, p_off, a_off, Zbuf, Abuf, deltas, grad, scalars,
                     blas_min_flops, sparse_scratch):
    """Loss of the block of ``n_b`` samples and its gradient, written into ``grad`` (layout of ``params``).

    Parameters
    ----------
    xb, x_off, x_ld : dense ``X`` block ``(n0, n_b)`` at ``xb[x_off:]``, rows ``x_ld`` apart (unused if sparse)
    data, indices, indptr, rows : CSR ``X`` and the block's row numbers (used if ``sparse``)
    yb, y_off, y_ld : targets ``(nL, n_b)`` at ``yb[y_off:]``, rows ``y_ld`` apart
    sw, sw_off : the block's sample weights at ``sw[sw_off:sw_off + n_b]``
    params, dims, acts, slope, loss, alpha : network and problem (``loss`` a general loss code)
    p_off, a_off : :func:`fastmlp._kernels._param_offsets` and ``_act_offsets`` (columns ``n_b`` or more)
    Zbuf, Abuf : activation workspaces; deltas : (2 * half,) with ``half >= n_b * max(dims[1:])``
    grad : (P,) written; scalars : (2,) BLAS scratch
    sparse_scratch : scratch of the sparse first layer (see :func:`_sparse_affine_activation`; may be empty)

    Returns
    -------
    float
        ``sum_i s_i loss_i / S + 0.5 alpha sum(W^2) / S`` (0 and a zero gradient when ``S == 0``).
    """
    n_layers = dims.shape[0] - 1
    zero = params.dtype.type(0)
    half = deltas.shape[0] // 2
    total_weight_64 = 0.0
    for i in range(n_b):
        total_weight_64 += sw[sw_off + i]
    total_weight = params.dtype.type(total_weight_64)
    if total_weight == zero:
        for t in range(grad.shape[0]):
            grad[t] = zero
        return 0.0

    penalty = 0.0
    if alpha != zero:
        for l in range(n_layers):
            for t in range(p_off[l], p_off[l] + dims[l] * dims[l + 1]):
                penalty += params[t] * params[t]
        penalty = 0.5 * alpha * penalty / total_weight

    if sparse:
        _sparse_affine_activation(data, indices, indptr, rows, n_b, params, dims[0], dims[1], acts[0], slope, Zbuf,
                                  Abuf, sparse_scratch)
    else:
        _affine_activation(xb, x_off, x_ld, dims[0], n_b, params, p_off[0], dims[1], acts[0], slope, Zbuf, a_off[0],
                           Abuf, a_off[0], n_b * dims[0] * dims[1] >= blas_min_flops, scalars)
    for l in range(1, n_layers):
        _affine_activation(Abuf, a_off[l - 1], n_b, dims[l], n_b, params, p_off[l], dims[l + 1], acts[l], slope,
                           Zbuf, a_off[l], Abuf, a_off[l], n_b * dims[l] * dims[l + 1] >= blas_min_flops, scalars)

    top = n_layers - 1
    cost = _weighted_output(Zbuf, a_off[top], Abuf, a_off[top], yb, y_off, y_ld, sw, sw_off, dims[n_layers], n_b,
                            loss, deltas) / total_weight + penalty

    for l in range(top, 0, -1):
        n_in = dims[l]
        n_out = dims[l + 1]
        d_off = ((top - l) % 2) * half
        use_blas = n_b * n_in * n_out >= blas_min_flops
        _dense_weight_gradient(Abuf, a_off[l - 1], n_b, n_in, n_b, deltas, d_off, n_out, grad, p_off[l], use_blas,
                               scalars)
        _finish_layer_gradient(deltas, d_off, n_out, n_b, n_in, params, p_off[l], alpha, total_weight, grad)
        _backprop_delta(deltas, d_off, n_out, n_b, params, p_off[l], n_in, Zbuf, a_off[l - 1], Abuf, a_off[l - 1],
                        acts[l - 1], slope, deltas, half - d_off, use_blas, scalars)
    d_off = (top % 2) * half
    if sparse:
        _sparse_weight_gradient(data, indices, indptr, rows, n_b, deltas, d_off, dims[0], dims[1], grad,
                                sparse_scratch)
    else:
        _dense_weight_gradient(xb, x_off, x_ld, dims[0], n_b, deltas, d_off, dims[1], grad, 0,
                               n_b * dims[0] * dims[1] >= blas_min_flops, scalars)
    _finish_layer_gradient(deltas, d_off, dims[1], n_b, dims[0], params, 0, alpha, total_weight, grad)
    return cost


@jit
def _loss_grad_full(X, data, indices, indptr, rows, sparse, Y, sw, params, dims, acts, slope, loss, alpha,
                    param_offsets, act_offsets, Zbuf, Abuf, deltas, grad, scalars, blas_min_flops, sparse_scratch):
    """Loss and gradient over the whole data set (what L-BFGS minimises); see :func:`_loss_grad_block`.

    ``X`` (n0, m) dense columns (``(n0, 0)`` when sparse); CSR ``data, indices, indptr`` with ``rows`` =
    ``arange(m)``; ``Y`` (nL, m); ``sw`` (m,); ``act_offsets`` for ``m`` columns.
    """
    m = Y.shape[1]
    return _loss_grad_block(X.reshape(X.size), 0, m, data, indices, indptr, rows, sparse, Y.reshape(Y.size), 0, m,
                            sw, 0, m, params, dims, acts, slope, loss, alpha, param_offsets, act_offsets, Zbuf,
                            Abuf, deltas, grad, scalars, blas_min_flops, sparse_scratch)


# --- minibatch epochs with sample weights and/or sparse X ----------------------------------------------------
@jit
def _train_epochs_general(X, data, indices, indptr, sparse, Y, sw, params, dims, acts, slope, loss, alpha,
                          batch_size, order, learning_rates, opt, momentum, beta_1, beta_2, epsilon, state_1,
                          state_2, step, Zbuf, Abuf, deltas, grad, xbuf, ybuf, swbuf, rows, backup,
                          param_offsets, act_offsets, scalars, blas_min_flops, sparse_scratch, span, partial,
                          sample_weighted_cost):
    """Minibatch epochs as :func:`fastmlp._kernels._train_epochs`, with sample weights and a dense or CSR ``X``.

    Each batch: gather its rows (``order[e]`` or the natural order), :func:`_loss_grad_block`, then one
    optimiser step over all parameters (scikit-learn's order: every gradient from the old weights first).

    Parameters
    ----------
    X : (n0, m) dense columns, or (n0, 0) when ``sparse``; data, indices, indptr : CSR ``X`` (m rows)
    Y : (nL, m); sw : (m,) sample weights
    xbuf, ybuf, swbuf, rows : gather buffers of ``n0 * batch_size``, ``nL * batch_size``, ``batch_size``,
    ``batch_size`` entries; other arguments as for :func:`fastmlp._kernels._train_epochs`
    span, partial : minibatch range and running sums of an epoch run in pieces, as for
    :func:`fastmlp._kernels._train_epochs` (``partial[1]`` carries the weighted sum)
    sample_weighted_cost : (epochs,) float64, written for each epoch that ends in this call:
    ``sum_batches loss_b * n_b / m`` (scikit-learn's ``loss_``)

    Returns
    -------
    int
        Epochs completed; fewer means the next one gave a non-finite loss or weights, and the parameters, the
        optimiser state and its step count were restored to their values at its start (``backup`` holds
        ``params.size + state_1.size + state_2.size`` entries).

    Runs with flush-to-zero on, as :func:`fastmlp._kernels._train_epochs` does (``FASTMLP_SUBNORMALS``).
    """
    n_x = dims[0]
    n_y = Y.shape[0]
    m = Y.shape[1]
    n_epochs = learning_rates.shape[0]
    shuffled = order.shape[0] > 0
    n_params = params.shape[0]
    n_batches = (m + batch_size - 1) // batch_size
    X_flat = X.reshape(X.size)
    Y_flat = Y.reshape(Y.size)
    n_s1 = state_1.shape[0]
    n_s2 = state_2.shape[0]
    # flush-to-zero, as in fastmlp._kernels._train_epochs (not with a subnormal epsilon)
    tiny = _smallest_normal(epsilon)
    previous_mode = _flush_to_zero(_FLUSH_SUBNORMALS and not (epsilon != 0 and abs(epsilon) < tiny))
    for e in range(n_epochs):
        # the epoch's starting point: parameters, optimiser state and step, restored if the epoch diverges
        for t in range(n_params):
            backup[t] = params[t]
        for t in range(n_s1):
            backup[n_params + t] = state_1[t]
        for t in range(n_s2):
            backup[n_params + n_s1 + t] = state_2[t]
        step_at_start = step[0]
        lr = params.dtype.type(learning_rates[e])
        first = span[0] if e == 0 else 0
        stop = span[1] if e == n_epochs - 1 else n_batches
        weighted = partial[1] if first > 0 else 0.0
        for batch in range(first, stop):
            start = batch * batch_size
            n_b = min(batch_size, m - start)
            for i in range(n_b):
                rows[i] = order[e, start + i] if shuffled else start + i
                swbuf[i] = sw[rows[i]]
            if not sparse:
                for k in range(n_x):
                    for i in range(n_b):
                        xbuf[k * n_b + i] = X_flat[k * m + rows[i]]
            for k in range(n_y):
                for i in range(n_b):
                    ybuf[k * n_b + i] = Y_flat[k * m + rows[i]]
            cost = _loss_grad_block(xbuf, 0, n_b, data, indices, indptr, rows, sparse, ybuf, 0, n_b, swbuf, 0, n_b,
                                    params, dims, acts, slope, loss, alpha, param_offsets, act_offsets, Zbuf, Abuf,
                                    deltas, grad, scalars, blas_min_flops, sparse_scratch)
            lr_adam = lr
            if opt == OPT_ADAM:
                step[0] += 1
                t_adam = step[0]
                lr_adam = params.dtype.type(
                    learning_rates[e] * np.sqrt(1.0 - float(beta_2) ** t_adam) / (1.0 - float(beta_1) ** t_adam))
            _optimizer_step(params, grad, 0, n_params, 0, params.dtype.type(0), opt, lr, lr_adam, momentum, beta_1,
                            beta_2, epsilon, state_1, state_2)
            weighted += cost * n_b
        finite = _finite(weighted)
        for t in range(n_params):
            if not _finite(params[t]):
                finite = False
                break
        if not finite:
            for t in range(n_params):
                params[t] = backup[t]
            for t in range(n_s1):
                state_1[t] = backup[n_params + t]
            for t in range(n_s2):
                state_2[t] = backup[n_params + n_s1 + t]
            step[0] = step_at_start
            _restore_flush_to_zero(previous_mode)
            return e
        if stop < n_batches:
            partial[1] = weighted
        else:
            sample_weighted_cost[e] = weighted / m
    _restore_flush_to_zero(previous_mode)
    return n_epochs


# --- prediction on a sparse X ----------------------------------------------------------------------------------
@jit
def _forward_sparse(data, indices, indptr, rows, params, dims, acts, slope, param_offsets, buffer, out,
                    scalars, blas_min_flops, sparse_scratch):
    """Network output ``out`` (nL, m) for the CSR rows ``rows`` (``arange(m)``); ``buffer`` is
    ``(2, m * max(dims[1:]))`` ping-pong workspace."""
    n_layers = dims.shape[0] - 1
    m = rows.shape[0]
    flat_out = out.reshape(out.size)
    first = flat_out if n_layers == 1 else buffer[0]
    _sparse_affine_activation(data, indices, indptr, rows, m, params, dims[0], dims[1], acts[0], slope, first, first,
                              sparse_scratch)
    src = first
    for l in range(1, n_layers):
        dst = flat_out if l == n_layers - 1 else buffer[l % 2]
        _affine_activation(src, 0, m, dims[l], m, params, param_offsets[l], dims[l + 1], acts[l], slope, dst, 0, dst,
                           0, m * dims[l] * dims[l + 1] >= blas_min_flops, scalars)
        src = dst
