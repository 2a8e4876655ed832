"""An exponential that LLVM vectorises, for the softmax of the training kernels.

Private. Numba compiles ``np.exp`` to a call of the C library's ``exp`` / ``expf``: a loop that calls it stays
scalar. In a softmax over digits' ten classes those calls were the largest part of the output layer's time
(``scripts/epoch_profile.py --workload S2``: 74 us of a 1.18 ms float64 epoch, 21 us of a 0.61 ms float32 one).
:func:`exp_nonpositive` is plain arithmetic (range reduction, a polynomial, a power of two built from its bits),
so a loop of it is vectorised like any other.

Its domain is what a softmax needs, ``x <= 0`` (``z - max(z)``) or NaN. Accuracy: within 1 unit in the last
place of the exact exponential (float64's ``np.exp``, rounded to float32 for float32 arguments; NumPy's own
float32 ``exp`` is up to about 2.4 units off), subnormal results included; exactly 1 at 0, exactly 0 where
``np.exp`` rounds to 0, and NaN for NaN (``tests/test_elementary.py`` checks all of these).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from fastmlp._config import JIT_OPTIONS

jit_inline = njit(inline="always", **JIT_OPTIONS)


@intrinsic
def _scale_by_pow2(typingctx, p, k):
    """``p * 2**k`` for a float ``p`` in ``[0.5, 2)`` and an integer ``k <= 0`` (int64), rounded once.

    Where the result is a normal number, ``k`` is added to ``p``'s exponent bits (exact). Below, ``p * 2**(k + 64)``
    is built that way and one product by ``2**-64`` rounds it into the subnormal range, as ``np.exp`` rounds.
    ``k`` is clamped below where the result rounds to 0 anyway (float32: -153, float64: -1078). Integer
    operations on the bits: the kernels' fast-math flags, which LLVM may use to merge floating-point products,
    do not apply to them.
    """
    if not isinstance(p, types.Float) or not isinstance(k, types.Integer) or p.bitwidth not in (32, 64):
        return None

    def codegen(context, builder, signature, args):
        value, power = args
        width = p.bitwidth
        int_type = ir.IntType(width)
        float_type = context.get_value_type(p)
        mantissa, bias = (52, 1023) if width == 64 else (23, 127)
        if k.bitwidth < width:
            power = builder.sext(power, int_type)
        elif k.bitwidth > width:
            power = builder.trunc(power, int_type)
        low = ir.Constant(int_type, -(bias + mantissa + 3))
        power = builder.select(builder.icmp_signed("<", power, low), low, power)
        bits = builder.bitcast(value, int_type)
        shift = ir.Constant(int_type, mantissa)
        normal = builder.bitcast(builder.add(bits, builder.shl(power, shift)), float_type)
        lifted = builder.bitcast(builder.add(bits, builder.shl(builder.add(power, ir.Constant(int_type, 64)), shift)),
                                 float_type)
        tiny = builder.fmul(lifted, ir.Constant(float_type, 2.0 ** -64))
        is_normal = builder.icmp_signed(">", power, ir.Constant(int_type, 2 - bias))
        return builder.select(is_normal, normal, tiny)

    return p(p, k), codegen


@intrinsic
def _fused_minus_product(typingctx, t, k, c):
    """``t - k * c`` (floats of one dtype) rounded once (``llvm.fma``): the range reduction of
    :func:`exp_nonpositive` subtracts ln 2 in two parts, and the kernels' fast-math flags let LLVM add the parts
    first (losing the low one: 213 units in the last place) when they were written as products and differences.
    Numba flags the ``fma`` calls too, but LLVM has no transform that joins two of them (the accuracy tests
    would catch one)."""
    if not (isinstance(t, types.Float) and t == k == c):
        return None

    def codegen(context, builder, signature, args):
        value, factor, constant = args
        return builder.fma(builder.fneg(factor), constant, value)

    return t(t, k, c), codegen


#: exp(r) for |r| <= ln(2) / 2: Taylor coefficients 1/13! .. 1/1! (the next term is below 5e-18 of the result)
_COEFFICIENTS = tuple(1.0 / math.factorial(n) for n in range(13, 0, -1))
_LOG2_E = 1.4426950408889634
#: ln 2 in two parts, the high one with 9 significant bits (``k * _LN2_HIGH`` exact for every ``|k| < 2**15``)
_LN2_HIGH = 0.693359375
_LN2_LOW = -2.1219444005469058e-04
#: below this, exp rounds to 0 in both dtypes (and ``x * log2(e)`` stays far inside int64)
_LOWEST = -1100.0


@intrinsic
def _in_dtype_of(typingctx, x, c):
    """The float ``c`` converted to the dtype of the float ``x`` (a constant ``c`` folds to a constant): every constant
    of :func:`exp_nonpositive` is in its argument's dtype (a float64 constant would make float32 arithmetic
    float64)."""
    if not (isinstance(x, types.Float) and isinstance(c, types.Float)):
        return None

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[1], c, x)

    return x(x, c), codegen


@jit_inline
def exp_nonpositive(x):
    """``exp(x)`` for ``x <= 0`` or NaN, in ``x``'s dtype (float32 or float64); positive ``x`` is taken as 0
    (result 1). Plain arithmetic, inlined where it is called: a loop of it vectorises."""
    zero, half, one = _in_dtype_of(x, 0.0), _in_dtype_of(x, 0.5), _in_dtype_of(x, 1.0)
    lowest = _in_dtype_of(x, _LOWEST)
    t = x if x > lowest else lowest  # (NaN goes to the clamp; it is given back at the end)
    t = t if t < zero else zero
    k = np.floor(t * _in_dtype_of(x, _LOG2_E) + half)
    r = _fused_minus_product(_fused_minus_product(t, k, _in_dtype_of(x, _LN2_HIGH)), k, _in_dtype_of(x, _LN2_LOW))
    # exp(r) = 1 + (r + r^2 P(r)), P by Estrin's scheme (pairs of terms, then pairs of pairs: 4 dependent steps
    # rather than Horner's 11; where the exponential is not vectorised, its latency is its cost); the two largest
    # terms are added last, each rounded once
    c13, c12, c11, c10, c9, c8, c7, c6, c5, c4, c3, c2, c1 = _COEFFICIENTS
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    q1 = _in_dtype_of(x, c3) * r + _in_dtype_of(x, c2)
    q2 = _in_dtype_of(x, c5) * r + _in_dtype_of(x, c4)
    q3 = _in_dtype_of(x, c7) * r + _in_dtype_of(x, c6)
    q4 = _in_dtype_of(x, c9) * r + _in_dtype_of(x, c8)
    q5 = _in_dtype_of(x, c11) * r + _in_dtype_of(x, c10)
    q6 = _in_dtype_of(x, c13) * r + _in_dtype_of(x, c12)
    s1 = q2 * r2 + q1
    s2 = q4 * r2 + q3
    s3 = q6 * r2 + q5
    tail = s3 * r8 + (s2 * r4 + s1)
    p = (tail * r2 + r) + one
    result = _scale_by_pow2(p, np.int64(k))
    return result if x == x else x


if numba.config.DISABLE_JIT:
    def exp_nonpositive(x):  # noqa: F811
        """Plain-Python stand-in (``NUMBA_DISABLE_JIT=1``): NumPy's."""
        return np.exp(min(x, type(x)(0))) if x == x else x
