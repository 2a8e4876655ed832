"""The training kernel of tiny networks: one compiled function per optimiser, loss and kind of batch; no BLAS.

Private. A network is *tiny* for a batch size when it is narrow and its products of a batch are small
(:func:`fastmlp._engine.is_tiny`: at most 64 weights a layer, at most 4096 multiply-adds a product). The general
kernel (:func:`fastmlp._kernels._train_epochs`) runs a minibatch through some seven calls between separately
compiled layer kernels (each passing twenty-odd arguments) and BLAS calls sized for larger products; for such a
network those calls cost more than the arithmetic. Here the whole minibatch -- forward pass, cost and output delta,
backward pass, gradient and optimiser step -- is one function inlined into the epoch loop, with no BLAS,
transposed-copy or fused-update paths: what a first ``fit`` of a tiny network compiles is this kernel instead of
the general one, which is both faster to run and faster to compile. Two minibatch steps:

- :func:`_rows_batch_step`, for batches of :data:`ROWS_MIN_BATCH` (8) samples or more, works along the batch: each
  row of a layer's ``Z`` and delta (one unit, every sample) is made in vectors by LLVM vector instructions written
  here (:func:`_forward_row`, :func:`_backward_row`), each element summed in the order a per-sample loop would
  take; the gradient's sums over the batch in a fixed order of eight lanes (:func:`_layer_gradient`);
- :func:`_tiny_batch_step`, for smaller batches (XOR's four samples), in plain per-sample loops.

The epoch loop, the rollback on divergence, minibatch pieces (``span``/``partial``) and shuffled gathers are
the general template's own: :func:`train_epochs_tiny_kernel` compiles a copy of
:func:`fastmlp._kernels._train_epochs` whose ``_batch_step`` is one of the two (specialised, as the general kernel
is, to one optimiser and one loss, which are constants here too; compiled with ``_config.TINY_JIT_OPTIONS``). The
arguments and results are those of the general kernel, so :func:`fastmlp._engine.train_epochs` calls either.

The formulas are those of the general kernel; the sums run in other orders (the gradients' in eight lanes), so the
numbers agree to rounding: ``tests/test_tiny_kernel.py`` holds both kernels to :mod:`fastmlp.reference`.
"""

from __future__ import annotations

import types as pytypes

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmlp import _kernels as K
from fastmlp._config import TINY_JIT_OPTIONS
from fastmlp._elementary import exp_nonpositive

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


# --- sums over the batch in a fixed order --------------------------------------------------------------
#: the running sums a batch sum is split into (lane ``l`` adds the terms ``i = l, l + 8, l + 16, ...``): fixed, so
#: that the result does not depend on the machine's vector width (8 float64 are one AVX-512 register, two AVX2)
LANES = 8


def _lane_sums(builder, align, xp, yps, n):
    """IR for ``[sum(xp[i] * yp[i] for i < n) for yp in yps]`` (``xp`` None: ``sum(yp[i])``), each in a fixed order:
    ``LANES`` running sums over the first ``n - n % LANES`` terms (one vector of them per ``yp``, all in flight
    together), combined by halves (``((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))``), plus the remaining terms
    summed in order.

    Written out as vector instructions because Numba's loop vectoriser only vectorises such a sum when allowed to
    reorder it ("reassoc", left out of these kernels: the order would then depend on the machine), and its SLP
    vectoriser, which would pack eight scalar running sums, is off.
    """
    fty = yps[0].type.pointee
    vty = ir.VectorType(fty, LANES)
    i32, i64 = ir.IntType(32), ir.IntType(64)
    blocks = builder.udiv(n, ir.Constant(i64, LANES))
    sums = [cgutils.alloca_once_value(builder, ir.Constant(vty, None)) for _ in yps]
    with cgutils.for_range(builder, blocks) as loop:
        at = builder.mul(loop.index, ir.Constant(i64, LANES))
        x = None if xp is None else builder.load(builder.bitcast(builder.gep(xp, [at]), vty.as_pointer()), align=align)
        for yp, total in zip(yps, sums, strict=True):
            term = builder.load(builder.bitcast(builder.gep(yp, [at]), vty.as_pointer()), align=align)
            if x is not None:
                term = builder.fmul(x, term)
            builder.store(builder.fadd(builder.load(total), term), total)
    rests = [cgutils.alloca_once_value(builder, ir.Constant(fty, 0.0)) for _ in yps]
    done = builder.mul(blocks, ir.Constant(i64, LANES))
    with cgutils.for_range(builder, builder.sub(n, done)) as loop:
        at = builder.add(done, loop.index)
        x = None if xp is None else builder.load(builder.gep(xp, [at]))
        for yp, rest in zip(yps, rests, strict=True):
            term = builder.load(builder.gep(yp, [at]))
            if x is not None:
                term = builder.fmul(x, term)
            builder.store(builder.fadd(builder.load(rest), term), rest)
    results = []
    for total, rest in zip(sums, rests, strict=True):
        v = builder.load(total)
        width = LANES
        while width > 1:
            width //= 2
            low = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, width), list(range(width))))
            high = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, width), list(range(width, 2 * width))))
            v = builder.fadd(low, high)
        results.append(builder.fadd(builder.extract_element(v, ir.Constant(i32, 0)), builder.load(rest)))
    return results


def _flat_float_array(t):
    return isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C" and t.dtype in (types.float32,
                                                                                           types.float64)


#: gradient rows summed together by :func:`_layer_gradient` (their running sums in registers at once)
_ROWS_TOGETHER = 4


def _gradient_rows(builder, align, xp, dp, n, n_out, store):
    """IR: ``store(j, sum(xp[i] * dp[j * n + i] for i < n))`` for ``j < n_out`` (``xp`` None: the row sums), the
    rows ``_ROWS_TOGETHER`` at a time, then two, then one (a lone running sum waits on its own additions)."""
    i64 = ir.IntType(64)
    done = ir.Constant(i64, 0)
    for together in (_ROWS_TOGETHER, 2, 1):
        times = builder.udiv(builder.sub(n_out, done), ir.Constant(i64, together))
        with cgutils.for_range(builder, times) as loop:
            first = builder.add(done, builder.mul(loop.index, ir.Constant(i64, together)))
            rows = [builder.add(first, ir.Constant(i64, q)) for q in range(together)]
            sums = _lane_sums(builder, align, xp, [builder.gep(dp, [builder.mul(j, n)]) for j in rows], n)
            for j, total in zip(rows, sums, strict=True):
                store(j, total)
        done = builder.add(done, builder.mul(times, ir.Constant(i64, together)))


@intrinsic
def _layer_gradient(typingctx, grad, g_off, src, s_off, s_ld, n_in, dZ, d_off, n_out, n):
    """A layer's gradient sums (not yet divided by the batch size), each in the fixed order of :func:`_lane_sums`:
    ``grad[g_off + j * n_in + k] = sum(dZ[d_off + j * n + i] * src[s_off + k * s_ld + i] for i < n)`` (the weights,
    ``W``'s layout) and ``grad[g_off + n_in * n_out + j] = sum(dZ[d_off + j * n + i] for i < n)`` (the intercepts).

    1-D C-contiguous arrays of one dtype, ``uint64`` offsets, strides and counts (no bounds check: the caller's
    offsets are its own).
    """
    if not (_flat_float_array(grad) and _flat_float_array(src) and _flat_float_array(dZ)
            and grad.dtype == src.dtype == dZ.dtype):
        return None
    u = types.uint64

    def codegen(context, builder, signature, args):
        grad_a, g_off, src_a, s_off, s_ld, n_in, dz_a, d_off, n_out, n = args
        align = context.get_abi_sizeof(context.get_value_type(signature.args[0].dtype))
        gp = builder.gep(context.make_array(signature.args[0])(context, builder, grad_a).data, [g_off])
        sp = builder.gep(context.make_array(signature.args[2])(context, builder, src_a).data, [s_off])
        dp = builder.gep(context.make_array(signature.args[6])(context, builder, dz_a).data, [d_off])
        with cgutils.for_range(builder, n_in) as loop:
            k = loop.index
            xp = builder.gep(sp, [builder.mul(k, s_ld)])
            _gradient_rows(builder, align, xp, dp, n, n_out, lambda j, total, k=k: builder.store(
                total, builder.gep(gp, [builder.add(builder.mul(j, n_in), k)])))
        bp = builder.gep(gp, [builder.mul(n_in, n_out)])
        _gradient_rows(builder, align, None, dp, n, n_out, lambda j, total: builder.store(total, builder.gep(bp, [j])))
        return context.get_dummy_value()

    return types.none(grad, u, src, u, u, u, dZ, u, u, u), codegen


# --- rows that are combinations of rows ---------------------------------------------------------------
#: elements of the vectors :func:`_forward_row` and :func:`_backward_row` work in (results do not depend on it:
#: every element is its own sum, in its own order); 8, not 16, float32 too, so that a minibatch of 8 samples is a
#: vector in either dtype
_WIDTH = 8
#: vectors of a row that they keep in flight at once (independent running sums)
_IN_FLIGHT = 4


def _splat(builder, value, width):
    vty = ir.VectorType(value.type, width)
    one = builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width))


def _combine_rows(builder, width, count, align, init, cp, c_step, sp, s_ld, rows, at, finish):
    """IR: ``finish(at + q * width, s_q)`` for the ``count`` vectors (``width`` 1: scalars) ``s_q[e] = init + c_0
    x_0[e] + c_1 x_1[e] + ...`` (that order) of the elements ``e`` from ``at``, with ``c_r = cp[r * c_step]`` and
    ``x_r[e] = sp[r * s_ld + e]``; the running sums stay in registers over the ``rows`` terms."""
    i64 = ir.IntType(64)
    start = init if width == 1 else _splat(builder, init, width)
    vty = start.type
    sums = [cgutils.alloca_once_value(builder, start) for _ in range(count)]
    with cgutils.for_range(builder, rows) as loop:
        r = loop.index
        c = builder.load(builder.gep(cp, [builder.mul(r, c_step)]))
        if width > 1:
            c = _splat(builder, c, width)
        row = builder.gep(sp, [builder.add(builder.mul(r, s_ld), at)])
        for q, total in enumerate(sums):
            where = builder.gep(row, [ir.Constant(i64, q * width)])
            x = builder.load(builder.bitcast(where, vty.as_pointer()) if width > 1 else where, align=align)
            builder.store(builder.fadd(builder.load(total), builder.fmul(c, x)), total)
    for q, total in enumerate(sums):
        finish(builder.add(at, ir.Constant(i64, q * width)), builder.load(total))


def _access(builder, base, at, vty, align, value=None):
    """Load (``value`` None) or store ``value`` at ``base + at``: one element, or a vector of type ``vty``."""
    where = builder.gep(base, [at])
    if isinstance(vty, ir.VectorType):
        where = builder.bitcast(where, vty.as_pointer())
    if value is None:
        return builder.load(where, align=align)
    return builder.store(value, where, align=align)


def _rectified(builder, z, d, act, slope):
    """IR: ``d`` where ``z > 0``, else ``slope * d`` for leaky relu (``act``), 0 for relu (``z >= 0`` for the
    pass-at-zero relu), and ``d`` itself for every other activation: the activation (``d = z``) or the derivative
    factor of the rectifiers, as :mod:`fastmlp._kernels_tiny`'s per-element formulas have them."""
    i64 = ir.IntType(64)
    zero = ir.Constant(z.type, None)
    if isinstance(z.type, ir.VectorType):
        slope = _splat(builder, slope, z.type.count)
    is_leaky = builder.icmp_signed("==", act, ir.Constant(i64, ACT_LEAKY_RELU))
    is_pass = builder.icmp_signed("==", act, ir.Constant(i64, ACT_RELU_PASS_AT_ZERO))
    rectifier = builder.or_(builder.or_(is_leaky, is_pass), builder.icmp_signed("==", act, ir.Constant(i64, ACT_RELU)))
    gate = builder.select(is_pass, builder.fcmp_ordered(">=", z, zero), builder.fcmp_ordered(">", z, zero))
    below = builder.select(is_leaky, builder.fmul(slope, d), zero)
    return builder.select(rectifier, builder.select(gate, d, below), d)


def _make_row_kernel(backward):
    """The intrinsic :func:`_forward_row` (``backward`` False) or :func:`_backward_row`."""

    def row(typingctx, out, o_off, init, coef, c_off, c_step, src, s_off, s_ld, rows, n, other, x_off, act, slope):
        arrays = (out, coef, src, other)
        if not (all(_flat_float_array(a) for a in arrays) and out.dtype == coef.dtype == src.dtype == other.dtype
                == init == slope and isinstance(act, types.Integer)):
            return None
        u = types.uint64

        def codegen(context, builder, signature, args):
            out_a, o_off, init, coef_a, c_off, c_step, src_a, s_off, s_ld, rows, n, other_a, x_off, act, slope = args
            act = context.cast(builder, act, signature.args[13], types.int64)
            size = context.get_abi_sizeof(context.get_value_type(signature.args[2]))
            data = [builder.gep(context.make_array(signature.args[i])(context, builder, a).data, [off])
                    for i, a, off in ((0, out_a, o_off), (3, coef_a, c_off), (6, src_a, s_off), (11, other_a, x_off))]
            op, cp, sp, xp = data

            def finish(at, total):
                if backward:  # the delta times the rectifier's derivative (xp: the previous layer's Z)
                    _access(builder, op, at, total.type, size,
                            _rectified(builder, _access(builder, xp, at, total.type, size), total, act, slope))
                else:  # Z, and the rectifier's activation of it (xp: A)
                    _access(builder, op, at, total.type, size, total)
                    _access(builder, xp, at, total.type, size, _rectified(builder, total, total, act, slope))

            i64 = ir.IntType(64)
            done = ir.Constant(i64, 0)
            for vector, count in ((_WIDTH, _IN_FLIGHT), (_WIDTH, 1), (1, 1)):  # then what is left, one at a time
                chunk = ir.Constant(i64, vector * count)
                times = builder.udiv(builder.sub(n, done), chunk)
                with cgutils.for_range(builder, times) as loop:
                    at = builder.add(done, builder.mul(loop.index, chunk))
                    _combine_rows(builder, vector, count, size, init, cp, c_step, sp, s_ld, rows, at, finish)
                done = builder.add(done, builder.mul(times, chunk))
            return context.get_dummy_value()

        return types.none(out, u, init, coef, u, u, src, u, u, u, u, other, u, act, slope), codegen

    return row


_forward_row = intrinsic(_make_row_kernel(False))
_forward_row.__doc__ = """A layer's forward row (the arguments ``Z, o_off, init, coef, c_off, c_step, src, s_off, s_ld,
rows, n, A, x_off, act, slope``): ``Z[o_off + i] = init + sum(coef[c_off + r * c_step] * src[s_off + r * s_ld + i]
for r < rows)`` for ``i < n`` (``init`` the bias, ``coef`` a row of ``W``), each element summed in that order
(``init`` first, then ``r = 0, 1, ...``, as a loop over ``r`` per element would), the elements a vector at a time with
several vectors' sums in registers; and ``A[x_off + i]`` its activation when ``act`` is linear or a rectifier (for the
others, ``Z``: the caller overwrites it).

1-D C-contiguous arrays of one dtype, ``uint64`` offsets, steps and counts (no bounds check: the caller's offsets
are its own); the rows written must not overlap the rows read.
"""
_backward_row = intrinsic(_make_row_kernel(True))
_backward_row.__doc__ = """A layer's backward row (the arguments ``D, o_off, init, coef, c_off, c_step, src, s_off,
s_ld, rows, n, Z, x_off, act, slope``): the sum of :func:`_forward_row` (``init`` 0, ``coef`` a column of ``W``) times
the derivative at ``Z[x_off + i]`` when ``act`` is a rectifier, the sum alone otherwise (the caller multiplies by the
derivative), into ``D[o_off + i]``."""


@jit_inline
def _vector_sigmoid(z, one):
    """The logistic function of one element from ``e = exp(-|z|)`` (:func:`fastmlp._elementary.exp_nonpositive`,
    whose loops vectorise): ``1 / (1 + e)`` for ``z >= 0``, ``e / (1 + e)`` below. For the loops along the batch
    (W2-deep: 0.038 -> 0.029-0.036 ms per float64 epoch, a noisy row). The per-sample loops of a handful of samples,
    which are not vectorised, keep :func:`fastmlp._kernels._sigmoid` (libm's ``exp``, lower latency: W1-xor was 6%
    slower with this one), and so do the general kernels (this one made the first ``fit`` of W3 compile about 0.4 s
    longer)."""
    e = exp_nonpositive(-abs(z))
    return (one if z >= one - one else e) / (one + e)


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
                    e = exp_nonpositive(Zbuf[z_off + j * nb + i] - high)
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


@jit_inline
def _smooth_activation_row(Z, A, off, n, act, one):
    """``A[off:off + n] = g(Z[off:off + n])`` for sigmoid and tanh (the rectifiers' come with ``Z``)."""
    if act == ACT_SIGMOID:
        for i in range(n):
            A[off + i] = _vector_sigmoid(Z[off + i], one)
    elif act == ACT_TANH:
        for i in range(n):
            A[off + i] = np.tanh(Z[off + i])


@jit_inline
def _smooth_derivative_row(D, d_off, A, a_off, n, act, one):
    """``D[d_off + i] *= g'`` for ``i < n``, from ``A = g(Z)`` at ``a_off``, for sigmoid and tanh (the rectifiers'
    come with the delta)."""
    if act == ACT_SIGMOID:
        for i in range(n):
            a = A[a_off + i]
            D[d_off + i] = D[d_off + i] * a * (one - a)
    elif act == ACT_TANH:
        for i in range(n):
            a = A[a_off + i]
            D[d_off + i] = D[d_off + i] * (one - a * a)


def _rows_batch_step(xb, yb, b_off, b_ld, n_b, params, grad, p_off, a_off, Zbuf, Abuf, deltas, dims, acts, slope,
                     loss, alpha, opt, lr, lr_adam, momentum, beta_1, beta_2, epsilon, state_1, state_2, scalars,
                     blas_min_flops, squares):
    """One minibatch, as :func:`fastmlp._kernels._batch_step` (same arguments, same result; ``squares`` is not
    used: the weights' ``sum(W^2)`` is computed here when the cost needs it, and -1 returned).

    Every block is feature-major, as the general kernel's: a layer's input, ``Z``, ``A`` and delta are
    ``(units, n_b)``, each unit's row contiguous, so that the work runs along the batch, in vectors, however narrow
    the layer. Forward: row ``Z[j] = b[j] + W[j, 0] A_prev[0] + W[j, 1] A_prev[1] + ...`` (:func:`_forward_row`:
    each element summed in that order, as a loop over the inputs per sample would), then its activation. The output
    delta and the cost (bce inline; other losses through :func:`fastmlp._kernels._cost_and_delta`). Backward, top
    layer first: row ``dZ_prev[k] = g'(Z_prev[k]) (W[0, k] dZ[0] + W[1, k] dZ[1] + ...)`` from the old weights of
    layer ``l``, then layer ``l``'s gradient sums into ``grad`` (:func:`_layer_gradient`: sums over the batch, each
    in a fixed order of eight lanes of running sums, whatever the machine's vector width), then the layer's
    optimiser step, element by element. ``scalars`` and ``blas_min_flops`` are unused (no BLAS here).
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
            _forward_row(Zbuf, zj, params[b_off + j], params, wj, _U(1), src, s_off, s_ld, n_in, nb, Abuf, zj, act,
                         slope)
            _smooth_activation_row(Zbuf, Abuf, zj, nb, act, one)
        if act == ACT_SOFTMAX:  # the output layer only: each column (sample) over its n_out rows
            for i in range(nb):
                high = Zbuf[z_off + i]
                for j in range(_U(1), n_out):
                    high = max(high, Zbuf[z_off + j * nb + i])
                total = zero
                for j in range(n_out):
                    e = exp_nonpositive(Zbuf[z_off + j * nb + i] - high)
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
                _backward_row(deltas, dk, zero, params, w_off + k, n_in, deltas, d_off, nb, n_out, nb, Zbuf,
                              zp_off + k * nb, act, slope)
                _smooth_derivative_row(deltas, dk, Abuf, zp_off + k * nb, nb, act, one)
        src, s_off, s_ld = (xb, _U(x_off), _U(x_ld)) if l == 0 else (Abuf, _U(a_off[l - 1]), nb)
        _layer_gradient(grad, w_off, src, s_off, s_ld, n_in, deltas, d_off, n_out, nb)
        for t in range(w_off, b_off):
            _update(params, t, (grad[t] + alpha * params[t]) / size, lr, lr_adam, momentum, beta_1, beta_2, epsilon,
                    state_1, state_2)
        for t in range(b_off, b_off + n_out):
            _update(params, t, grad[t] / size, lr, lr_adam, momentum, beta_1, beta_2, epsilon, state_1, state_2)
    return cost, -1.0


_TINY_KERNELS: dict = {}


def _copy(function, namespace, name):
    """``function`` reading its globals from ``namespace``, called ``name``."""
    copy = pytypes.FunctionType(function.__code__, namespace, name, function.__defaults__, function.__closure__)
    copy.__qualname__ = name
    copy.__doc__ = function.__doc__
    return copy


#: minibatches of at least this many samples train with :func:`_rows_batch_step` (a full vector of
#: :data:`LANES` sums); smaller ones with :func:`_tiny_batch_step`, whose plain loops cost less for a handful
#: of samples (XOR's four) and compile faster
ROWS_MIN_BATCH = LANES


def uses_rows(batch_size: int) -> bool:
    """Whether minibatches of ``batch_size`` train with :func:`_rows_batch_step` (else :func:`_tiny_batch_step`)."""
    return batch_size >= ROWS_MIN_BATCH


def train_epochs_tiny_kernel(opt: int, loss: int, batch_size: int = 1):
    """The tiny networks' training kernel for optimiser code ``opt``, loss code ``loss`` and minibatches of
    ``batch_size``: the general epoch template with :func:`_rows_batch_step` (:func:`uses_rows`) or
    :func:`_tiny_batch_step` as its minibatch step, reading ``opt`` and ``loss`` as constants (made on first use;
    it compiles, or loads from the disk cache, on its first call for a dtype)."""
    rows = uses_rows(batch_size)
    kernel = _TINY_KERNELS.get((opt, loss, rows))
    if kernel is None:
        suffix = f"{'_rows' if rows else ''}_{K.OPTIMIZER_NAMES[opt]}_{K.LOSS_NAMES[loss]}"
        namespace = dict(globals(), _OPT=opt, _LOSS=loss)
        namespace["_update"] = jit_inline(_copy(_update, namespace, "_tiny_update" + suffix))
        if rows:
            step = jit_inline(_copy(_rows_batch_step, namespace, "_rows_batch_step" + suffix))
        else:
            namespace["_activation"] = jit_inline(_copy(_activation, namespace, "_tiny_activation" + suffix))
            namespace["_derivative"] = jit_inline(_copy(_derivative, namespace, "_tiny_derivative" + suffix))
            step = jit_inline(_copy(_tiny_batch_step, namespace, "_tiny_batch_step" + suffix))
        epochs = dict(K._train_epochs.__globals__, _OPT=opt, _LOSS=loss, _batch_step=step)
        kernel = njit(**TINY_JIT_OPTIONS)(_copy(K._train_epochs, epochs, K._train_epochs.__name__ + "_tiny" + suffix))
        _TINY_KERNELS[(opt, loss, rows)] = kernel
    return kernel
