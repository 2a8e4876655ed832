"""The training kernel of tiny networks: one compiled function per optimiser and loss, plain loops, no BLAS.

Private. A network is *tiny* for a batch size when every layer's product ``batch * n_in * n_out`` is below
the BLAS threshold (``blas_min_flops``): the general kernel (:func:`fastmlp._kernels._train_epochs`) would
run all of it as compiled loops anyway, through some seven calls between separately compiled layer kernels
per minibatch (each passing twenty-odd arguments), and for a 2-2-1 network those calls cost more than the
arithmetic. Here the whole minibatch -- forward pass, cost and output delta, backward pass, gradient and
optimiser step -- is one function inlined into the epoch loop, and it has no BLAS, transposed-copy or
fused-update paths: what a first ``fit`` of a tiny network compiles is this kernel instead of the general
one, which is both faster to run and faster to compile.

The epoch loop, the rollback on divergence, minibatch pieces (``span``/``partial``) and shuffled gathers are
the general template's own: :func:`train_epochs_tiny_kernel` compiles a copy of
:func:`fastmlp._kernels._train_epochs` whose ``_batch_step`` is :func:`_tiny_batch_step` (specialised, as the
general kernel is, to one optimiser and one loss, which are constants here too; compiled with
``_config.TINY_JIT_OPTIONS``). The arguments and results are those of the general kernel, so
:func:`fastmlp._engine.train_epochs` calls either.

The numbers are those of the general kernel's compiled-loop path (same products in the same order, same
formulas); ``tests/test_tiny_kernel.py`` holds both to :mod:`fastmlp.reference`.
"""

from __future__ import annotations

import types as pytypes

import numpy as np
from numba import njit

from fastmlp import _kernels as K
from fastmlp._config import TINY_JIT_OPTIONS

# the codes, as names the template reads (a specialised copy sees _OPT and _LOSS as constants)
ACT_LINEAR, ACT_RELU, ACT_LEAKY_RELU, ACT_SIGMOID, ACT_TANH, ACT_SOFTMAX = (
    K.ACT_LINEAR, K.ACT_RELU, K.ACT_LEAKY_RELU, K.ACT_SIGMOID, K.ACT_TANH, K.ACT_SOFTMAX)
ACT_RELU_PASS_AT_ZERO = K.ACT_RELU_PASS_AT_ZERO
LOSS_BCE = K.LOSS_BCE
OPT_SGD, OPT_MOMENTUM, OPT_NESTEROV, OPT_ADAM = K.OPT_SGD, K.OPT_MOMENTUM, K.OPT_NESTEROV, K.OPT_ADAM
_OPT = _LOSS = None
_U = np.uint64
_sigmoid = K._sigmoid
_cost_and_delta = K._cost_and_delta
jit_inline = njit(inline="always", **TINY_JIT_OPTIONS)


def _activation(z, act, slope, one):
    """``g(z)`` of one element (not softmax)."""
    zero = one - one
    if act == ACT_SIGMOID:
        return _sigmoid(z, one)
    if act == ACT_RELU or act == ACT_RELU_PASS_AT_ZERO:
        return z if z > zero else zero
    if act == ACT_TANH:
        return np.tanh(z)
    if act == ACT_LEAKY_RELU:
        return z if z > zero else slope * z
    return z


def _derivative(d, z, a, act, slope, one):
    """``d * g'(z)`` of one element, with ``a = g(z)`` (relu' at 0 is 0, 1 for the pass-at-zero relu)."""
    zero = one - one
    if act == ACT_SIGMOID:
        return d * a * (one - a)
    if act == ACT_RELU:
        return d if z > zero else zero
    if act == ACT_RELU_PASS_AT_ZERO:
        return d if z >= zero else zero
    if act == ACT_TANH:
        return d * (one - a * a)
    if act == ACT_LEAKY_RELU:
        return d if z > zero else slope * d
    return d


def _update(params, t, g, lr, lr_adam, momentum, beta_1, beta_2, epsilon, state_1, state_2):
    """The optimiser step of parameter ``t`` with gradient ``g``: :func:`fastmlp._kernels._optimizer_step`'s
    formulas, one element (the optimiser ``_OPT`` is a constant of the compiled copy)."""
    if _OPT == OPT_SGD:
        params[t] -= lr * g
    elif _OPT == OPT_MOMENTUM:
        v = momentum * state_1[t] - lr * g
        state_1[t] = v
        params[t] += v
    elif _OPT == OPT_NESTEROV:
        v = momentum * state_1[t] - lr * g
        state_1[t] = v
        params[t] += momentum * v - lr * g
    else:
        one = params.dtype.type(1)
        m1 = beta_1 * state_1[t] + (one - beta_1) * g
        m2 = beta_2 * state_2[t] + (one - beta_2) * (g * g)
        state_1[t] = m1
        state_2[t] = m2
        params[t] += (-lr_adam * m1) / (np.sqrt(m2) + epsilon)


def _tiny_batch_step(xb, yb, b_off, b_ld, n_b, params, grad, p_off, a_off, Zbuf, Abuf, deltas, dims, acts, slope,
                     loss, alpha, opt, lr, lr_adam, momentum, beta_1, beta_2, epsilon, state_1, state_2, scalars,
                     blas_min_flops, squares):
    """One minibatch, as :func:`fastmlp._kernels._batch_step` (same arguments, same result), in plain loops
    (``squares`` is not used: the weights' ``sum(W^2)`` is computed here when the cost needs it, and -1 returned).

    Forward: each ``Z[j, i] = b[j] + sum_k W[j, k] A_prev[k, i]`` summed in a register in the order written
    (bias first, as the general kernel's loops), its activation stored with it. The output delta and the cost
    (bce inline; other losses through :func:`fastmlp._kernels._cost_and_delta`). Backward, top layer first:
    each ``dZ_prev[k, i] = g'(Z_prev[k, i]) sum_j W[j, k] dZ[j, i]`` from the old weights of layer ``l``, then
    layer ``l``'s gradient, element by element, each element's optimiser step taken as soon as its gradient is
    known (``grad`` is not written). Every inner loop is a short sum, compiled without "reassoc"
    (``_config.TINY_JIT_OPTIONS``): plain loops, no vector versions to choose between at run time.
    ``scalars`` and ``blas_min_flops`` are unused (no BLAS here).
    """
    n_layers = dims.shape[0] - 1
    one = params.dtype.type(1)
    zero = one - one
    size = params.dtype.type(n_b)
    half = _U(deltas.shape[0] // 2)
    nb = _U(n_b)
    x_off, x_ld, y_off, y_ld = b_off, b_ld, b_off, b_ld

    penalty = 0.0
    if alpha != zero:
        for l in range(n_layers):
            for t in range(_U(p_off[l]), _U(p_off[l] + dims[l] * dims[l + 1])):
                penalty += params[t] * params[t]
        penalty = 0.5 * alpha * penalty / n_b

    top = n_layers - 1
    for l in range(n_layers):
        src, s_off, s_ld = (xb, _U(x_off), _U(x_ld)) if l == 0 else (Abuf, _U(a_off[l - 1]), nb)
        n_in, n_out, w_off, z_off = _U(dims[l]), _U(dims[l + 1]), _U(p_off[l]), _U(a_off[l])
        b_off = w_off + n_in * n_out
        act = acts[l]
        for j in range(n_out):
            zj = z_off + j * nb
            wj = w_off + j * n_in
            bias = params[b_off + j]
            for i in range(nb):
                z = bias
                for k in range(n_in):
                    z += params[wj + k] * src[s_off + k * s_ld + i]
                Zbuf[zj + i] = z
                if act != ACT_SOFTMAX:
                    Abuf[zj + i] = _activation(z, act, slope, one)
        if act == ACT_SOFTMAX:  # the output layer only: each column (sample) over its n_out rows
            for i in range(nb):
                high = Zbuf[z_off + i]
                for j in range(_U(1), n_out):
                    high = max(high, Zbuf[z_off + j * nb + i])
                total = zero
                for j in range(n_out):
                    e = np.exp(Zbuf[z_off + j * nb + i] - high)
                    Abuf[z_off + j * nb + i] = e
                    total += e
                for j in range(n_out):
                    Abuf[z_off + j * nb + i] = Abuf[z_off + j * nb + i] / total

    n_y = _U(dims[n_layers])
    z_top = _U(a_off[top])
    if _LOSS == LOSS_BCE:  # sigmoid output: the sum first (loops that only read), then dZ = A - Y
        total = 0.0
        for j in range(n_y):
            for i in range(nb):
                z = Zbuf[z_top + j * nb + i]
                a = Abuf[z_top + j * nb + i]
                total += max(z, zero) - yb[_U(y_off) + j * _U(y_ld) + i] * z - np.log(max(a, one - a))
        for j in range(n_y):
            for i in range(nb):
                t = j * nb + i
                deltas[t] = Abuf[z_top + t] - yb[_U(y_off) + j * _U(y_ld) + i]
    else:
        total = _cost_and_delta(Zbuf, a_off[top], Abuf, a_off[top], yb, y_off, y_ld, dims[n_layers], n_b, acts[top],
                                loss, slope, deltas, np.int64(0))
    cost = total / n_b + penalty

    for l in range(top, -1, -1):
        n_in, n_out, w_off = _U(dims[l]), _U(dims[l + 1]), _U(p_off[l])
        b_off = w_off + n_in * n_out
        d_off = _U((top - l) % 2) * half
        if l > 0:  # the delta of layer l - 1, from this layer's weights before their step
            dp_off = half - d_off
            zp_off = _U(a_off[l - 1])
            act = acts[l - 1]
            for k in range(n_in):
                dk = dp_off + k * nb
                zk = zp_off + k * nb
                for i in range(nb):
                    d = zero
                    for j in range(n_out):
                        d += params[w_off + j * n_in + k] * deltas[d_off + j * nb + i]
                    deltas[dk + i] = _derivative(d, Zbuf[zk + i], Abuf[zk + i], act, slope, one)
        src, s_off, s_ld = (xb, _U(x_off), _U(x_ld)) if l == 0 else (Abuf, _U(a_off[l - 1]), nb)
        for j in range(n_out):
            dj = d_off + j * nb
            s = zero
            for i in range(nb):
                s += deltas[dj + i]
            _update(params, b_off + j, s / size, lr, lr_adam, momentum, beta_1, beta_2, epsilon, state_1, state_2)
        for k in range(n_in):
            sk = s_off + k * s_ld
            for j in range(n_out):
                dj = d_off + j * nb
                s = zero
                for i in range(nb):
                    s += src[sk + i] * deltas[dj + i]
                t = w_off + j * n_in + k
                _update(params, t, (s + alpha * params[t]) / size, lr, lr_adam, momentum, beta_1, beta_2, epsilon,
                        state_1, state_2)
    return cost, -1.0


_TINY_KERNELS: dict = {}


def _copy(function, namespace, name):
    """``function`` reading its globals from ``namespace``, called ``name``."""
    copy = pytypes.FunctionType(function.__code__, namespace, name, function.__defaults__, function.__closure__)
    copy.__qualname__ = name
    copy.__doc__ = function.__doc__
    return copy


def train_epochs_tiny_kernel(opt: int, loss: int):
    """The tiny networks' training kernel for optimiser code ``opt`` and loss code ``loss``: the general epoch
    template with :func:`_tiny_batch_step` as its minibatch step, both reading ``opt`` and ``loss`` as
    constants (made on first use; it compiles, or loads from the disk cache, on its first call for a dtype)."""
    kernel = _TINY_KERNELS.get((opt, loss))
    if kernel is None:
        suffix = f"_{K.OPTIMIZER_NAMES[opt]}_{K.LOSS_NAMES[loss]}"
        namespace = dict(globals(), _OPT=opt, _LOSS=loss)
        namespace["_activation"] = jit_inline(_copy(_activation, namespace, "_tiny_activation" + suffix))
        namespace["_derivative"] = jit_inline(_copy(_derivative, namespace, "_tiny_derivative" + suffix))
        namespace["_update"] = jit_inline(_copy(_update, namespace, "_tiny_update" + suffix))
        step = jit_inline(_copy(_tiny_batch_step, namespace, "_tiny_batch_step" + suffix))
        epochs = dict(K._train_epochs.__globals__, _OPT=opt, _LOSS=loss, _batch_step=step)
        kernel = njit(**TINY_JIT_OPTIONS)(_copy(K._train_epochs, epochs, K._train_epochs.__name__ + "_tiny" + suffix))
        _TINY_KERNELS[(opt, loss)] = kernel
    return kernel
