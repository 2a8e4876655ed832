"""Numba kernels: fused affine + activation forward, fused backward, in-place optimiser steps, whole epochs.

Private. Every kernel writes into buffers its caller allocated (see :mod:`fastmlp._engine`, which
validates, converts and allocates once per ``fit``); nothing here allocates per training step.

Layout: samples are *columns*, as in the course material: ``X`` is ``(n0, m)`` C-contiguous and every
activation block of a minibatch is ``(n_l, b)``, so the innermost loops run along the batch, over
contiguous memory, however narrow the layer (a 2-4-6-6-4-1 network still gets full vectors). A layer's
weights are stored as the course-style ``W`` of shape ``(n_out, n_in)``, C order (scikit-learn's
``coef`` is its transpose), followed by its intercept ``b`` ``(n_out,)``, all layers back to back in one
flat parameter vector. The maths is that of ``fastmlp.reference`` (docs/DESIGN.md §1):
``Z = W @ A + b``, ``g_W = (dZ @ A.T + alpha W) / b``, ``dA = W.T @ dZ``.

Kernels address every array as a flat buffer plus an offset and a row stride: creating array views
inside the batch loop costs reference counting that, for a small network, outweighs the arithmetic.
Small products run as compiled loops whose innermost loop LLVM vectorises. Products of at least
``blas_min_flops`` multiply-adds call BLAS ``?gemm`` directly,
through Numba's own ``numba_xxgemm`` helper (the function Numba's ``np.dot`` uses, so compiled kernels stay
cacheable), with transposes expressed through memory layout, never copies. For plain SGD on the BLAS
path the weight update is fused into the gradient product: ``W <- beta W - (lr/m) dZ @ A.T`` in one
``gemm`` call, so the weight gradient is never materialised.
"""

from __future__ import annotations

import types as pytypes

import llvmlite.binding
import numba.np.linalg  # noqa: F401  (makes Numba register its BLAS helper symbols)
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload
from numba.np.arrayobj import populate_array

from fastmlp import _small_products as _sp
from fastmlp._config import (
    EXACT_INTERNAL_JIT_OPTIONS,
    FLUSH_SUBNORMALS,
    INTERNAL_JIT_OPTIONS,
    JIT_OPTIONS,
    STEP_JIT_OPTIONS,
)
from fastmlp._elementary import exp_nonpositive

# --- integer codes used inside kernels -----------------------------------------------------------
ACT_LINEAR, ACT_RELU, ACT_LEAKY_RELU, ACT_SIGMOID, ACT_TANH, ACT_SOFTMAX = range(6)
#: relu whose derivative at z == 0 is 1 (the course transcription's ``dZ[Z < 0] = 0``); not a public name
ACT_RELU_PASS_AT_ZERO = 6
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

#: Compile time (the first ``fit`` in a fresh process) decides how kernels call each other. A function
#: called from one place per entry kernel is inlined there at Numba IR level (``jit_inline``): typed,
#: lowered and optimised once, inside its caller. A separately compiled callee costs its own compilation
#: *plus* LLVM optimisation and machine code again in every caller that links it, so only small leaves
#: called from many places (activations, derivatives) stay separate, called with ``int64`` offsets and
#: sizes everywhere (never a literal or an unsigned value) so that each compiles once per dtype. Code is
#: arranged so that nothing is inlined at two sites of one kernel (which would compile it twice). IR
#: inlining is not free either: Numba copies the callee's IR per block with its whole variable scope, and its
#: passes grow faster than linearly with a function's size (inlining the four layer kernels into
#: ``_train_epochs`` made a first fit 1.5x slower to compile), so the layer kernels stay separate. A training
#: kernel is a copy of ``_train_epochs`` and of the layer kernels it calls in which the optimiser, the loss and
#: (for the usual networks) the activations are compile-time constants (see :func:`train_epochs_kernel` and
#: :func:`_family_copy`): Numba prunes the branches of the others before typing them, so a first ``fit``
#: compiles only what it runs. Measured per function with ``scripts/cold_start.py --breakdown``.
jit = njit(**JIT_OPTIONS)
jit_inline = njit(inline="always", **JIT_OPTIONS)
#: a separately compiled kernel that only other kernels call: Numba builds no wrappers for calls from Python
#: (with 15-25 arguments to unbox, those were a tenth of the LLVM code of a first fit)
jit_internal = njit(**INTERNAL_JIT_OPTIONS)
#: a per-step kernel called from Python once per step of a user's loop: compiled without reference counting
#: (see ``_config.STEP_JIT_OPTIONS``), so it allocates nothing and every array in it borrows its arguments
jit_step = njit(**STEP_JIT_OPTIONS)
#: the optimiser and loss codes of a training kernel made by :func:`train_epochs_kernel` (None in the template)
_OPT = _LOSS = None
#: Which branches a kernel compiles: one flag per activation, optimiser and loss. In the module's own kernels
#: (the templates, which the per-step, predict and general paths call) every flag is True. :func:`_family_copy`
#: makes copies of the training kernels in which the flags of what a network does not use are False: Numba
#: prunes a branch on a False module constant before typing it, so a first ``fit`` types, lowers and optimises
#: only its own activations, optimiser and loss.
_LINEAR = _RELU = _LEAKY_RELU = _SIGMOID = _TANH = _SOFTMAX = _RELU_PASS_AT_ZERO = True
_SGD = _MOMENTUM = _NESTEROV = _ADAM = True
_BCE = _MSE = _CE = _HALF_MSE = True
#: a squared loss (mse or half_mse): the only losses whose delta needs the output activation's derivative
_SQUARED_LOSS = True
ACTIVATION_FLAGS = {ACT_LINEAR: "_LINEAR", ACT_RELU: "_RELU", ACT_LEAKY_RELU: "_LEAKY_RELU", ACT_SIGMOID: "_SIGMOID",
                    ACT_TANH: "_TANH", ACT_SOFTMAX: "_SOFTMAX", ACT_RELU_PASS_AT_ZERO: "_RELU_PASS_AT_ZERO"}
OPTIMIZER_FLAGS = {OPT_SGD: "_SGD", OPT_MOMENTUM: "_MOMENTUM", OPT_NESTEROV: "_NESTEROV", OPT_ADAM: "_ADAM"}
LOSS_FLAGS = {LOSS_BCE: "_BCE", LOSS_MSE: "_MSE", LOSS_CE: "_CE", LOSS_HALF_MSE: "_HALF_MSE"}
_FLAGS = (*ACTIVATION_FLAGS.values(), *OPTIMIZER_FLAGS.values(), *LOSS_FLAGS.values(), "_SQUARED_LOSS", "_OPT",
          "_LOSS")
#: the kernels a training kernel is made of, copied per specialisation (each reads its callees, and the flags,
#: from its copy's namespace)
_FAMILY = ("_batch_step", "_affine_activation", "_activate_block", "_apply_activation", "_apply_derivative",
           "_backprop_delta", "_cost_and_delta", "_layer_update", "_optimizer_step")
_COPIES: dict = {}
_COPY_NAMES: dict = {}


def _reads(name: str) -> frozenset:
    """The flags that the kernel (or template) ``name`` reads, itself or through the family members it calls."""
    func = globals()[name]
    code = getattr(func, "py_func", func).__code__
    found = {n for n in code.co_names if n in _FLAGS}
    for callee in code.co_names:
        if callee in _FAMILY and callee != name:
            found |= _reads(callee)
    return frozenset(found)


def _family_copy(name: str, flags: dict):
    """The kernel ``name`` (a family member or the :func:`_train_epochs` template) compiled with the module
    constants in ``flags`` fixed, calling copies of the family members made with the same ``flags``.

    A copy shares the template's code but reads its globals from a namespace holding the flags and the callees'
    copies: Numba takes globals as compile-time constants and prunes the branches they rule out before typing.
    A copy depends only on the flags it reads (:func:`_reads`), so training kernels that differ elsewhere share
    it. Its name lists the flags it reads that are not False (and the values of ``_OPT`` and ``_LOSS``), which
    gives it its own file in Numba's disk cache.
    """
    relevant = _reads(name)
    key = (name, tuple(sorted((f, flags[f]) for f in relevant)))
    copy = _COPIES.get(key)
    if copy is not None:
        return copy
    template = globals()[name]
    py_func = getattr(template, "py_func", template)
    namespace = dict(py_func.__globals__)
    namespace.update(flags)
    for callee in py_func.__code__.co_names:
        if callee in _FAMILY and callee != name:
            namespace[callee] = _family_copy(callee, flags)
    # the name must tell every value of the flags read apart: Numba's disk cache finds a kernel by its name and
    # argument types only, so two copies of one name would load each other's code
    parts = [f.strip("_").lower() + ("" if flags[f] is True else str(flags[f])) for f in _FLAGS
             if f in relevant and flags[f] is not False]
    suffix = "__" + "_".join(parts)
    if _COPY_NAMES.setdefault(name + suffix, key) != key:
        raise RuntimeError(f"two specialisations of {name} would share the cache name {name + suffix}")
    func = pytypes.FunctionType(py_func.__code__, namespace, name + suffix, py_func.__defaults__,
                                py_func.__closure__)
    func.__qualname__ = name + suffix
    func.__doc__ = py_func.__doc__
    if hasattr(template, "targetoptions"):  # the member's own options (inline, wrappers, fast-math)
        options = {k: v for k, v in template.targetoptions.items() if k not in ("nopython", "boundscheck")}
        copy = njit(cache=JIT_OPTIONS["cache"], **options)(func)
    else:
        copy = jit(func)
    _COPIES[key] = copy
    return copy


def _specialised(template, suffix: str, **constants):
    """``template`` compiled with the module-level names in ``constants`` fixed (e.g. ``_OPT=OPT_SGD``).

    The copy shares the template's code but reads its globals from a namespace holding ``constants``: Numba
    takes globals as compile-time constants and prunes the branches they rule out before typing. The copy's
    own name (``template`` + ``suffix``) gives it its own file in Numba's disk cache. (The tiny networks'
    kernel is made this way; the general training kernels by :func:`_family_copy`.)
    """
    namespace = dict(template.__globals__, **constants)
    name = template.__name__ + suffix
    copy = pytypes.FunctionType(template.__code__, namespace, name, template.__defaults__, template.__closure__)
    copy.__qualname__ = name
    copy.__doc__ = template.__doc__
    return jit(copy)


#: indices into the flat buffers are unsigned: Numba then emits no negative-index wraparound, which would
#: otherwise stop LLVM from vectorising every loop whose index carries an offset
_U = np.uint64



# --- borrowed views ---------------------------------------------------------------------------------
@intrinsic
def _borrow(typingctx, arr):
    """A view of ``arr`` that carries no reference count.

    Numba increments and decrements (atomically) the reference count of an array every time it binds it
    to a new name, which the inlined layer kernels do dozens of times per minibatch; for a small network
    that costs more than the arithmetic. A view without a memory-info block makes those operations no-ops.
    (An intrinsic: the view is built where it is used, with no function of its own to compile.)

    The rule (docs/DESIGN.md, "Memory safety"): borrow **only the borrowing kernel's own arguments** (or a
    reshape/slice of one), which the Python caller holds for the whole call. Never a local array, a tuple
    element or a temporary: Numba frees a local right after its last *counted* use, the view does not
    count, and the kernel runs without the GIL, so BLAS or another thread may reuse that memory at once
    (this was the use-after-free of issue 9). ``tests/test_memory_safety.py`` checks the rule.
    """
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        source = context.make_array(arr)(context, builder, args[0])
        view = context.make_array(arr)(context, builder)
        populate_array(view, data=source.data, shape=source.shape, strides=source.strides,
                       itemsize=source.itemsize, meminfo=None)
        return view._getvalue()

    return arr(arr), codegen


# --- subnormals ------------------------------------------------------------------------------------
#: the training kernels run with flush-to-zero on (``FASTMLP_SUBNORMALS``, :mod:`fastmlp._config`)
_FLUSH_SUBNORMALS = FLUSH_SUBNORMALS
#: MXCSR's flush-to-zero bit: a result below the smallest normal number is stored as 0, not as a subnormal
_MXCSR_FTZ = 0x8000
_X86 = llvmlite.binding.get_process_triple().split("-")[0] in ("x86_64", "i386", "i686", "i586")


def _mxcsr_call(builder, name, slot):
    fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [builder.bitcast(slot, ir.IntType(8).as_pointer())])


@intrinsic
def _flush_to_zero(typingctx, on):
    """Set the CPU's flush-to-zero mode to ``on`` (a bool) for the calling thread; returns the previous mode (for
    :func:`_restore_flush_to_zero`). A no-op returning 0 where there is no MXCSR (not x86).

    Arithmetic whose inputs or results are subnormal takes an x86 core a slow path for every vector instruction
    that meets one (see ``FASTMLP_SUBNORMALS`` in :mod:`fastmlp._config`). With flush-to-zero a result below the
    smallest normal number is 0 instead, and the kernel's own results are never subnormal. Only the FTZ bit
    changes (not DAZ: inputs keep their values).
    """
    def codegen(context, builder, signature, args):
        if not _X86:
            return ir.Constant(ir.IntType(32), 0)
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        old = builder.load(slot)
        cleared = builder.and_(old, ir.Constant(ir.IntType(32), ~_MXCSR_FTZ & 0xFFFFFFFF))
        with_bit = builder.or_(old, ir.Constant(ir.IntType(32), _MXCSR_FTZ))
        builder.store(builder.select(args[0], with_bit, cleared), slot)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return old

    return types.uint32(types.boolean), codegen


@intrinsic
def _restore_flush_to_zero(typingctx, previous):
    """Put the flush-to-zero bit back as ``previous`` (what :func:`_flush_to_zero` returned) had it, keeping the
    rest of MXCSR as it is now (the exception flags raised meanwhile stay raised)."""
    def codegen(context, builder, signature, args):
        if _X86:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
            now = builder.and_(builder.load(slot), ir.Constant(ir.IntType(32), ~_MXCSR_FTZ & 0xFFFFFFFF))
            bit = builder.and_(args[0], ir.Constant(ir.IntType(32), _MXCSR_FTZ))
            builder.store(builder.or_(now, bit), slot)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()

    return types.void(types.uint32), codegen


@intrinsic
def _smallest_normal(typingctx, x):
    """The smallest normal number of ``x``'s float type, as that type (a constant: nothing of its own to compile)."""
    if x not in (types.float32, types.float64):
        return None
    tiny = float(np.finfo(np.float32 if x == types.float32 else np.float64).tiny)

    def codegen(context, builder, signature, args):
        return context.get_constant(x, tiny)

    return x(x), codegen


@intrinsic
def _flat(typingctx, arr):
    """``arr.reshape(arr.size)`` of a C-contiguous array: the same 1-D view (data, ``size`` items one item
    apart, the same memory-info block and parent), built where it is used. Numba's ``reshape`` calls a C
    helper that works out the strides of any layout, which on a tiny network costs a per-step kernel more
    than the arithmetic it serves."""
    if not (isinstance(arr, types.Array) and arr.layout == "C"):
        return None
    flat = arr.copy(ndim=1, layout="C")

    def codegen(context, builder, signature, args):
        source = context.make_array(arr)(context, builder, args[0])
        view = context.make_array(flat)(context, builder)
        populate_array(view, data=source.data, shape=cgutils.pack_array(builder, [source.nitems]),
                       strides=cgutils.pack_array(builder, [source.itemsize]), itemsize=source.itemsize,
                       meminfo=source.meminfo, parent=source.parent)
        return impl_ret_borrowed(context, builder, flat, view._getvalue())

    return flat(arr), codegen


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


@overload(_blas_kind, jit_options={"no_cpython_wrapper": True, "no_cfunc_wrapper": True})
def _blas_kind_impl(arr):
    code = ord("d") if arr.dtype == types.float64 else ord("s")

    def impl(arr):
        return np.int8(code)

    return impl


@jit_inline
def _gemm(trans_a, trans_b, M, N, K, alpha, A, a_off, lda, B, b_off, ldb, beta, C, c_off, ldc, scalars):
    """``C <- alpha op(A) @ op(B) + beta C`` on row-major blocks of flat buffers, through BLAS.

    ``C`` is the ``(M, N)`` block at ``C[c_off:]`` with rows ``ldc`` apart; ``op(A)`` is ``(M, K)`` and
    ``op(B)`` ``(K, N)``, stored at ``a_off`` / ``b_off`` with rows ``lda`` / ``ldb`` apart (as stored,
    before any transpose). Row-major ``C`` is column-major ``C.T``, so BLAS is asked for
    ``C.T = op(B).T @ op(A).T``: a transpose is a flag, never a copy. ``scalars`` is a (2,) scratch array
    of C's dtype that carries alpha and beta to BLAS by pointer.
    """
    M, N, K, lda, ldb, ldc = np.int64(M), np.int64(N), np.int64(K), np.int64(lda), np.int64(ldb), np.int64(ldc)
    scalars[0] = alpha
    scalars[1] = beta
    flag_a = np.int8(116) if trans_a else np.int8(110)  # 't' / 'n'
    flag_b = np.int8(116) if trans_b else np.int8(110)
    status = _XXGEMM(_blas_kind(C), flag_b, flag_a, N, M, K, scalars[0:1].ctypes, B[b_off:].ctypes, ldb,
                     A[a_off:].ctypes, lda, scalars[1:].ctypes, C[c_off:].ctypes, ldc)
    if status != 0:
        raise RuntimeError("BLAS gemm failed")


# --- with NUMBA_DISABLE_JIT=1 (debugging, coverage) every kernel runs as plain Python, slowly: the helpers
# that only exist in compiled code get plain equivalents (an ordinary view; NumPy's matmul for BLAS; no change of
# the floating-point mode)
if numba.config.DISABLE_JIT:
    def _borrow(arr):  # noqa: F811
        """``arr`` itself: without the JIT there is no reference counting to save."""
        return arr

    def _flat(arr):  # noqa: F811
        """``arr.reshape(arr.size)``."""
        return arr.reshape(arr.size)

    def _flush_to_zero(on):  # noqa: F811
        """Nothing: plain Python leaves the CPU's mode alone."""
        return np.uint32(0)

    def _restore_flush_to_zero(previous):  # noqa: F811
        return None

    def _smallest_normal(x):  # noqa: F811
        return type(x)(np.finfo(type(x)).tiny)

    def _block(buf, off, rows, cols, ld):
        """The ``(rows, cols)`` block at ``buf[off:]`` with rows ``ld`` apart, as a (writable) view."""
        size = buf.itemsize
        return np.lib.stride_tricks.as_strided(buf[int(off):], shape=(int(rows), int(cols)),
                                               strides=(int(ld) * size, size))

    def _gemm(trans_a, trans_b, M, N, K, alpha, A, a_off, lda, B, b_off, ldb, beta, C, c_off, ldc,  # noqa: F811
              scalars):
        """:func:`_gemm` with NumPy (same operands, same result up to rounding)."""
        op_a = _block(A, a_off, K, M, lda).T if trans_a else _block(A, a_off, M, K, lda)
        op_b = _block(B, b_off, N, K, ldb).T if trans_b else _block(B, b_off, K, N, ldb)
        out = _block(C, c_off, M, N, ldc)
        product = C.dtype.type(alpha) * (op_a @ op_b)
        if beta == 0:  # as BLAS: C is not read
            out[...] = product
        else:
            out[...] = product + C.dtype.type(beta) * out


# --- activations -----------------------------------------------------------------------------------
@jit_inline
def _sigmoid(z, one):
    """The logistic function of one element, without overflow for any finite ``z``."""
    if z >= one - one:
        return one / (one + np.exp(-z))
    e = np.exp(z)
    return e / (one + e)


@jit_inline
def _activate_block(Z, z_off, A, a_off, n, n_b, act, slope):
    """``A = g(Z)`` for the packed ``(n, n_b)`` blocks at ``Z[z_off:]``, ``A[a_off:]`` (may be the same).

    Softmax normalises each column (sample) over its ``n`` rows.
    """
    z_off, a_off, n, n_b = _U(z_off), _U(a_off), _U(n), _U(n_b)
    one = Z.dtype.type(1)
    if _SOFTMAX and act == ACT_SOFTMAX:  # (the formula of _softmax_along_samples, a sample at a time)
        for i in range(n_b):
            top = Z[z_off + i]
            for j in range(_U(1), n):
                z = Z[z_off + j * n_b + i]
                top = z if z > top else top
            total = one - one
            for j in range(n):
                e = exp_nonpositive(Z[z_off + j * n_b + i] - top)
                A[a_off + j * n_b + i] = e
                total += e
            scale = one / total
            for j in range(n):
                A[a_off + j * n_b + i] = A[a_off + j * n_b + i] * scale
    else:
        _apply_activation(Z, z_off, A, a_off, n * n_b, act, slope)


@jit_inline
def _apply_activation(Z, z_off, A, a_off, count, act, slope):
    """``A[a_off + t] = g(Z[z_off + t])`` for ``t < count`` (not softmax): one loop per activation, so that
    each is a plain loop LLVM vectorises (a per-element dispatch on ``act`` would keep it scalar)."""
    z_off, a_off, count = _U(z_off), _U(a_off), _U(count)
    one = Z.dtype.type(1)
    zero = one - one
    # each branch first asks its flag (a constant: see _family_copy), so that a specialised copy compiles only its own
    if (_RELU or _RELU_PASS_AT_ZERO) and (act == ACT_RELU or act == ACT_RELU_PASS_AT_ZERO):
        for t in range(count):
            z = Z[z_off + t]
            A[a_off + t] = z if z > zero else zero
    elif _LEAKY_RELU and act == ACT_LEAKY_RELU:
        for t in range(count):
            z = Z[z_off + t]
            A[a_off + t] = z if z > zero else slope * z
    elif _SIGMOID and act == ACT_SIGMOID:
        for t in range(count):
            A[a_off + t] = _sigmoid(Z[z_off + t], one)
    elif _TANH and act == ACT_TANH:
        for t in range(count):
            A[a_off + t] = np.tanh(Z[z_off + t])
    elif _LINEAR:
        for t in range(count):
            A[a_off + t] = Z[z_off + t]


@jit_internal
def _apply_derivative(D, d_off, Z, z_off, A, a_off, count, act, slope):
    """``D[d_off + t] *= g'(Z[z_off + t])`` for ``t < count``, with ``A = g(Z)`` (sigmoid and tanh use ``A``;
    relu' at 0 is 0); one plain loop per activation, as in :func:`_apply_activation`."""
    d_off, z_off, a_off, count = _U(d_off), _U(z_off), _U(a_off), _U(count)
    one = D.dtype.type(1)
    zero = one - one
    if _RELU and act == ACT_RELU:
        for t in range(count):
            D[d_off + t] = D[d_off + t] if Z[z_off + t] > zero else zero
    elif _RELU_PASS_AT_ZERO and act == ACT_RELU_PASS_AT_ZERO:
        for t in range(count):
            D[d_off + t] = D[d_off + t] if Z[z_off + t] >= zero else zero
    elif _LEAKY_RELU and act == ACT_LEAKY_RELU:
        for t in range(count):
            D[d_off + t] = D[d_off + t] if Z[z_off + t] > zero else slope * D[d_off + t]
    elif _SIGMOID and act == ACT_SIGMOID:
        for t in range(count):
            a = A[a_off + t]
            D[d_off + t] = D[d_off + t] * a * (one - a)
    elif _TANH and act == ACT_TANH:
        for t in range(count):
            a = A[a_off + t]
            D[d_off + t] = D[d_off + t] * (one - a * a)


# --- one layer ---------------------------------------------------------------------------------------
@jit_internal
def _affine_activation(src, s_off, s_ld, n_in, n_b, params, p_off, n_out, act, slope, Z, z_off, A, a_off,
                       use_blas, scalars):
    """Fused ``Z = W @ A_prev + b`` and ``A = g(Z)`` for one layer.

    Parameters
    ----------
    src, s_off, s_ld : ``A_prev``, the ``(n_in, n_b)`` block at ``src[s_off:]`` with rows ``s_ld`` apart
    params, p_off : the layer's ``W`` ``(n_out, n_in)`` at ``p_off``, its ``b`` ``(n_out,)`` right after
    act, slope : activation code and leaky slope (array dtype)
    Z, z_off / A, a_off : the packed ``(n_out, n_b)`` blocks written (``A`` may be ``Z`` at the same offset)
    use_blas : bool, BLAS for the product; scalars : (2,) scratch, or (2 + n_b,): a softmax then runs along the
        samples
    """
    one = Z.dtype.type(1)
    b_off = p_off + n_in * n_out
    _fill_bias(params, b_off, n_out, n_b, Z, z_off)
    if use_blas:
        _gemm(False, False, n_out, n_b, n_in, one, params, p_off, n_in, src, s_off, s_ld, one, Z, z_off, n_b, scalars)
    else:
        _small_product(src, s_off, s_ld, n_in, n_b, params, p_off, n_out, Z, z_off)
    if _SOFTMAX and act == ACT_SOFTMAX and scalars.shape[0] >= 2 + n_b:  # room for a row: along the samples
        _softmax_along_samples(Z, z_off, A, a_off, n_out, n_b, scalars, 2)
    else:
        _activate_block(Z, z_off, A, a_off, n_out, n_b, act, slope)


@jit_inline
def _softmax_along_samples(Z, z_off, A, a_off, n, n_b, column, c_off):
    """``A = softmax(Z)`` of the packed ``(n, n_b)`` blocks at ``Z[z_off:]``, ``A[a_off:]`` (``A`` may be ``Z``),
    normalising each column (sample), row by row: plain loops that LLVM vectorises, exponentials included (see
    :mod:`fastmlp._elementary`), where a sample at a time reads values ``n_b`` apart, one by one.
    ``column[c_off:c_off + n_b]`` is scratch. The formula of :func:`_activate_block`'s softmax: each sample's
    exponentials (of ``z - max z``) are summed, then scaled by the reciprocal of their sum."""
    z_off, a_off, n, n_b, c_off = _U(z_off), _U(a_off), _U(n), _U(n_b), _U(c_off)
    one = Z.dtype.type(1)
    for i in range(n_b):  # the largest logit of each sample
        column[c_off + i] = Z[z_off + i]
    for j in range(_U(1), n):
        zj = z_off + j * n_b
        for i in range(n_b):
            z = Z[zj + i]
            column[c_off + i] = z if z > column[c_off + i] else column[c_off + i]
    for j in range(n):
        zj, aj = z_off + j * n_b, a_off + j * n_b
        for i in range(n_b):
            A[aj + i] = exp_nonpositive(Z[zj + i] - column[c_off + i])
    for i in range(n_b):  # the reciprocal of the sum of each sample's exponentials
        column[c_off + i] = A[a_off + i]
    for j in range(_U(1), n):
        aj = a_off + j * n_b
        for i in range(n_b):
            column[c_off + i] += A[aj + i]
    for i in range(n_b):
        column[c_off + i] = one / column[c_off + i]
    for j in range(n):
        aj = a_off + j * n_b
        for i in range(n_b):
            A[aj + i] = A[aj + i] * column[c_off + i]


@jit_inline
def _small_product(src, s_off, s_ld, n_in, n_b, params, p_off, n_out, Z, z_off):
    """``Z += W @ A_prev`` by compiled loops (see :func:`_affine_activation` for the layout)."""
    s_off, s_ld, n_in, n_b, p_off, n_out, z_off = (
        _U(s_off), _U(s_ld), _U(n_in), _U(n_b), _U(p_off), _U(n_out), _U(z_off))
    for j in range(n_out):
        zj = z_off + j * n_b
        for k in range(n_in):
            w = params[p_off + j * n_in + k]
            sk = s_off + k * s_ld
            for i in range(n_b):
                Z[zj + i] += w * src[sk + i]


@jit_inline
def _fill_bias(params, b_off, n_out, n_b, Z, z_off):
    """Every column of the packed ``(n_out, n_b)`` block at ``Z[z_off:]`` set to the intercept at ``b_off``."""
    b_off, n_out, n_b, z_off = _U(b_off), _U(n_out), _U(n_b), _U(z_off)
    for j in range(n_out):
        bias = params[b_off + j]
        zj = z_off + j * n_b
        for i in range(n_b):
            Z[zj + i] = bias


@jit_internal
def _backprop_delta(dZ, d_off, n_out, n_b, params, p_off, n_in, Z, zp_off, A, ap_off, act_prev, slope,
                    dZ_prev, dp_off, use_blas, scalars):
    """Fused ``dZ_prev = (W.T @ dZ) * g'(Z_prev)``.

    ``dZ`` packed ``(n_out, n_b)`` at ``d_off``; ``W`` ``(n_out, n_in)`` at ``params[p_off:]``; the previous
    layer's packed pre-activations and activations ``(n_in, n_b)`` at ``Z[zp_off:]``, ``A[ap_off:]``;
    ``dZ_prev`` packed ``(n_in, n_b)`` written at ``dp_off``.
    """
    one = dZ.dtype.type(1)
    zero = one - one
    if use_blas:
        _gemm(True, False, n_in, n_b, n_out, one, params, p_off, n_in, dZ, d_off, n_b, zero, dZ_prev, dp_off, n_b,
              scalars)
    else:
        _delta_product_loops(dZ, d_off, n_out, n_b, params, p_off, n_in, dZ_prev, dp_off)
    # one call for the block (a call per row costs more than a small network's arithmetic), from one call site
    _apply_derivative(dZ_prev, dp_off, Z, zp_off, A, ap_off, n_in * n_b, act_prev, slope)


@jit_inline
def _delta_product_loops(dZ, d_off, n_out, n_b, params, p_off, n_in, dZ_prev, dp_off):
    """``dZ_prev = W.T @ dZ`` by compiled loops (see :func:`_backprop_delta` for the layout)."""
    zero = dZ.dtype.type(0)
    d_off, n_out, n_b, p_off, n_in, dp_off = _U(d_off), _U(n_out), _U(n_b), _U(p_off), _U(n_in), _U(dp_off)
    for k in range(n_in):
        dk = dp_off + k * n_b
        for i in range(n_b):
            dZ_prev[dk + i] = zero
        for j in range(n_out):
            w = params[p_off + j * n_in + k]
            dj = d_off + j * n_b
            for i in range(n_b):
                dZ_prev[dk + i] += w * dZ[dj + i]


@jit_inline
def _intercept_gradient(dZ, d_off, n_out, n_b, grad, g_off):
    """``grad[g_off + j] = mean_i dZ[j, i]`` for the packed ``(n_out, n_b)`` block at ``dZ[d_off:]``."""
    size = dZ.dtype.type(n_b)
    d_off, n_out, n_b, g_off = _U(d_off), _U(n_out), _U(n_b), _U(g_off)
    for j in range(n_out):
        s = dZ.dtype.type(0)
        dj = d_off + j * n_b
        for i in range(n_b):
            s += dZ[dj + i]
        grad[g_off + j] = s / size


@jit_inline
def _layer_gradients(src, s_off, s_ld, n_in, n_b, dZ, d_off, n_out, params, p_off, alpha, grad, use_blas, scalars):
    """``g_W = (dZ @ A_prev.T + alpha W) / n_b`` and ``g_b = mean(dZ, axis=1)``.

    ``A_prev`` is the ``(n_in, n_b)`` block at ``src[s_off:]`` (rows ``s_ld`` apart), ``dZ`` packed
    ``(n_out, n_b)``; the gradients go into ``grad`` at the layer's offset ``p_off`` (``grad`` has the
    layout of ``params``). On the BLAS path the ``1 / n_b`` and the penalty ride along in the ``gemm``
    (``grad = (alpha / n_b) W``, then ``grad += (1 / n_b) dZ @ A_prev.T``).
    """
    one = dZ.dtype.type(1)
    zero = one - one
    size = dZ.dtype.type(n_b)
    _intercept_gradient(dZ, d_off, n_out, n_b, grad, p_off + n_in * n_out)
    if use_blas:
        beta = zero
        if alpha != zero:
            scale = alpha / size
            for t in range(_U(p_off), _U(p_off + n_in * n_out)):
                grad[t] = scale * params[t]
            beta = one
        _gemm(False, True, n_out, n_in, n_b, one / size, dZ, d_off, n_b, src, s_off, s_ld, beta, grad, p_off, n_in,
              scalars)
        return
    _weight_gradient_loops(src, s_off, s_ld, n_in, n_b, dZ, d_off, n_out, params, p_off, alpha, grad)


@jit_inline
def _weight_gradient_loops(src, s_off, s_ld, n_in, n_b, dZ, d_off, n_out, params, p_off, alpha, grad):
    """``g_W = (dZ @ A_prev.T + alpha W) / n_b`` by compiled loops (see :func:`_layer_gradients`)."""
    zero = dZ.dtype.type(0)
    size = dZ.dtype.type(n_b)
    s_off, s_ld, n_in, n_b = _U(s_off), _U(s_ld), _U(n_in), _U(n_b)
    d_off, n_out, p_off = _U(d_off), _U(n_out), _U(p_off)
    for k in range(n_in):
        sk = s_off + k * s_ld
        for j in range(n_out):
            dj = d_off + j * n_b
            s = zero
            for i in range(n_b):
                s += src[sk + i] * dZ[dj + i]
            t = p_off + j * n_in + k
            grad[t] = (s + alpha * params[t]) / size


@jit_inline
def _optimizer_step(params, grad, lo, hi, penalty_end, penalty, opt, lr, lr_adam, momentum, beta_1, beta_2, epsilon,
                    state_1, state_2):
    """In-place update of ``params[lo:hi]`` from ``grad[lo:hi]`` (scikit-learn's formulas and order); returns the
    sum of the squares of the updated ``params[lo:penalty_end]``.

    The gradient of ``params[i]`` is ``g = grad[i] + penalty * params[i]`` for ``i < penalty_end`` and
    ``grad[i]`` beyond: an L2 penalty is added here, in the one pass over the parameters, rather than in a
    pass of its own before the update (``penalty_end <= lo`` adds none). The squares of the new weights are
    summed in the same pass, in the parameters' dtype (the next minibatch's cost needs them, see
    :func:`_batch_step`; a float64 sum of float32 squares would halve the float32 loop's vector width).

    sgd: ``p -= lr g``. momentum: ``v = mu v - lr g; p += v``. nesterov: ``v = mu v - lr g;
    p += mu v - lr g``. adam: ``m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p += -lr_t m / (sqrt(v) + eps)``.
    """
    one = params.dtype.type(1)
    zero = one - one
    keep_1, keep_2 = one - beta_1, one - beta_2
    step = -lr_adam
    # (conditional expressions, not min/max: Numba compiles its min and max as functions of their own)
    split = penalty_end if penalty_end < hi else hi
    split = split if split > lo else lo
    squares = zero
    # two ranges, one loop body: the penalised weights, then the rest (the body is compiled once)
    for part in range(2):
        first, stop, pen = (_U(lo), _U(split), penalty) if part == 0 else (_U(split), _U(hi), zero)
        total = zero
        if _SGD and opt == OPT_SGD:
            for i in range(first, stop):
                p = params[i] - lr * (grad[i] + pen * params[i])
                params[i] = p
                total += p * p
        elif _MOMENTUM and opt == OPT_MOMENTUM:
            for i in range(first, stop):
                v = momentum * state_1[i] - lr * (grad[i] + pen * params[i])
                state_1[i] = v
                p = params[i] + v
                params[i] = p
                total += p * p
        elif _NESTEROV and opt == OPT_NESTEROV:
            for i in range(first, stop):
                g = grad[i] + pen * params[i]
                v = momentum * state_1[i] - lr * g
                state_1[i] = v
                p = params[i] + (momentum * v - lr * g)
                params[i] = p
                total += p * p
        elif _ADAM:
            for i in range(first, stop):
                g = grad[i] + pen * params[i]
                m1 = beta_1 * state_1[i] + keep_1 * g
                m2 = beta_2 * state_2[i] + keep_2 * (g * g)
                state_1[i] = m1
                state_2[i] = m2
                p = params[i] + (step * m1) / (np.sqrt(m2) + epsilon)
                params[i] = p
                total += p * p
        if part == 0:
            squares = total
    return squares


# --- the output layer: cost and delta ------------------------------------------------------------
@njit(**EXACT_INTERNAL_JIT_OPTIONS)
def _neg_log_softmax(top, z, log_s):
    """``-log softmax(z) = (top - z) + log_s`` with ``top`` the column maximum and ``log_s`` the log of the
    column's ``sum(exp(Z - top))``. Compiled without fast-math: reassociating it to ``(top + log_s) - z``
    would lose ``log_s`` against a huge logit (three equal logits of 1e8 in float32 would cost 0, not ln 3)."""
    return (top - z) + log_s


@jit_internal
def _cost_and_delta(Z, z_off, A, a_off, Y, y_off, y_ld, n_out, n_b, act, loss, slope, dZ, d_off):
    """Return the summed (not yet averaged) cost of a batch and write the output delta ``dZ``.

    ``Z``, ``A`` and ``dZ`` are packed ``(n_out, n_b)`` blocks (``dZ`` apart from the others: ce uses it as
    scratch before writing it); the targets are the ``(n_out, n_b)`` block at ``Y[y_off:]`` with rows ``y_ld``
    apart. bce (sigmoid output) is ``max(z, 0) - y z + log1p(exp(-|z|))``
    where ``log1p(exp(-|z|)) = -log(max(a, 1 - a))`` reuses the sigmoid already computed (the argument lies
    in [1/2, 1], so nothing rounds to zero); ce (softmax output) is ``(max - z) + log(sum(exp(Z - max)))``,
    exact however large the logits, where the log of the sum is ``-log(a)`` of the softmax ``a`` already computed
    at the largest logit (``a = 1 / sum`` lies in [1/n_out, 1]: no exponential evaluated twice). No log of a
    probability that can round to 0 is ever taken. Deltas: bce, ce: ``A - Y``; mse: ``2 (A - Y) g'(Z)``;
    half_mse: ``(A - Y) g'(Z)``.
    """
    one = Z.dtype.type(1)
    zero = one - one
    two = one + one
    total = 0.0
    if _CE and loss == LOSS_CE and n_out >= 2:
        # row by row, along the samples: plain loops that LLVM vectorises (a sample at a time reads values n_b
        # apart, one by one). Per sample: the largest logit ``top`` and the largest softmax value, which is
        # exp(top - top) / s = 1 / s, so that log s = -log of it. The first two rows of dZ hold them until the
        # cost is summed; the deltas are written after.
        z_off, a_off, y_off, y_ld, n_out, n_b, d_off = (
            _U(z_off), _U(a_off), _U(y_off), _U(y_ld), _U(n_out), _U(n_b), _U(d_off))
        tops, logs = d_off, d_off + n_b
        for i in range(n_b):
            dZ[tops + i] = Z[z_off + i]
            dZ[logs + i] = A[a_off + i]
        for j in range(_U(1), n_out):
            zj, aj = z_off + j * n_b, a_off + j * n_b
            for i in range(n_b):
                z = Z[zj + i]
                dZ[tops + i] = z if z > dZ[tops + i] else dZ[tops + i]
                a = A[aj + i]
                dZ[logs + i] = a if a > dZ[logs + i] else dZ[logs + i]
        for i in range(n_b):
            dZ[logs + i] = -np.log(dZ[logs + i])
        for j in range(n_out):
            zj, yj = z_off + j * n_b, y_off + j * y_ld
            for i in range(n_b):
                y = Y[yj + i]
                if y != zero:
                    total += y * _neg_log_softmax(dZ[tops + i], Z[zj + i], dZ[logs + i])
        for j in range(n_out):
            aj, yj, dj = a_off + j * n_b, y_off + j * y_ld, d_off + j * n_b
            for i in range(n_b):
                dZ[dj + i] = A[aj + i] - Y[yj + i]
        return total
    if _CE and loss == LOSS_CE:  # one output (its softmax is 1): a sample at a time
        for i in range(n_b):
            top = Z[z_off + i]
            log_s = -np.log(A[a_off + i])
            y = Y[y_off + i]
            if y != zero:
                total += y * _neg_log_softmax(top, Z[z_off + i], log_s)
            dZ[d_off + i] = A[a_off + i] - y
        return total
    if not (_BCE or _SQUARED_LOSS):  # (each flag a constant: a kernel for ce alone compiles nothing below)
        return total
    factor = two if loss == LOSS_MSE else one
    # the sum first, in loops that only read: a store in the same loop would make LLVM choose between a
    # vectorised and a scalar loop by a run-time overlap test of the addresses, and the two round differently
    for j in range(n_out):
        if _BCE and loss == LOSS_BCE:
            for i in range(n_b):
                z = Z[z_off + j * n_b + i]
                a = A[a_off + j * n_b + i]
                total += max(z, zero) - Y[y_off + j * y_ld + i] * z - np.log(max(a, one - a))
        elif _SQUARED_LOSS:
            for i in range(n_b):
                diff = A[a_off + j * n_b + i] - Y[y_off + j * y_ld + i]
                total += diff * diff
    for j in range(n_out):
        for i in range(n_b):
            t = j * n_b + i
            dZ[d_off + t] = factor * (A[a_off + t] - Y[y_off + j * y_ld + i])
    if _SQUARED_LOSS and loss != LOSS_BCE:
        _apply_derivative(dZ, d_off, Z, z_off, A, a_off, n_out * n_b, act, slope)
        if loss == LOSS_HALF_MSE:
            total = total / (2.0 * n_out)
    return total


# --- whole network -----------------------------------------------------------------------------------
@jit
def _param_offsets(dims):
    """Offset of each layer's ``W`` in the flat parameter vector; entry ``L`` is the total size."""
    n_layers = dims.shape[0] - 1
    offsets = np.empty(n_layers + 1, np.int64)
    offsets[0] = 0
    for l in range(n_layers):
        offsets[l + 1] = offsets[l] + dims[l] * dims[l + 1] + dims[l + 1]
    return offsets


@jit
def _act_offsets(dims, cols):
    """Offset of each layer's ``(n_l, cols)`` block in an activation workspace."""
    n_layers = dims.shape[0] - 1
    offsets = np.empty(n_layers + 1, np.int64)
    offsets[0] = 0
    for l in range(n_layers):
        offsets[l + 1] = offsets[l] + cols * dims[l + 1]
    return offsets


#: fewer rows than this are predicted by dot products (BLAS's per-call cost exceeds a few rows' arithmetic)
_MIN_BLAS_ROWS = 8
#: from this many rows on, a wide layer's ``W.T`` is copied for BLAS's plain form (the copy is then at most a
#: 32nd of the product)
_MIN_ROWS_TO_TRANSPOSE = 32


@jit
def _forward_rows(X, params, dims, acts, slope, offsets, buffer, out, blas_min_flops, labels):
    """Network output for every row (sample) of ``X``: scikit-learn's layout, with no transposed copy.

    Parameters
    ----------
    X : (m, n0) C-contiguous; params : (P,) flat parameters; dims : (L + 1,) int64 layer sizes
    acts : (L,) int64 activation codes; slope : leaky slope (array dtype)
    offsets : (L + 1,) int64, :func:`_param_offsets` of ``dims``
    buffer : (2, block * max(dims[1:])) ping-pong workspace: the rows are run through every layer ``block``
        at a time (``block = buffer.shape[1] // max(dims[1:])``, at least 1), so that a block's activations
        are still in cache when the next layer reads them
    out : (m, nL) C-contiguous, written
    labels : (m,) int64, or empty. With ``m`` entries (a softmax output layer): ``labels[i]`` is written with
        the index of row ``i``'s largest probability, the first of equal ones, and ``out`` is scratch (logits,
        or probabilities in a row whose two largest logits were so close that only the probabilities can tell
        them apart: see :func:`_argmax_softmax_row`).

    Layer by layer ``Z = A_prev @ W.T + b`` on row-major blocks (through BLAS, or, for small products and for a
    few rows, as dot products of contiguous rows), then the intercept (after BLAS) and the activation, row by
    row while the row is in cache. BLAS gets ``W`` transposed by a flag (its dot-product form), except for
    layers of at least :data:`fastmlp._small_products.MIN_ROWS` outputs when ``X`` has at least
    :data:`_MIN_ROWS_TO_TRANSPOSE` rows: their ``W.T`` is copied once per call (a local array) and the
    product runs in BLAS's plain form, which OpenBLAS's small-matrix kernels run much faster on row blocks
    (digits, 64 -> 128, float64: 1797 rows in 64-row blocks 0.30 ms against 0.38-0.49 ms for the flagged form).

    Returns
    -------
    bool
        Whether the first unit's pre-activation was finite in every row. A NaN or infinite value in a row of
        ``X`` makes that row's every first-layer product non-finite (``w * nan`` and ``0 * inf`` are NaN), so
        True means that ``X`` is finite, read off ``m`` values; False, that ``X`` is not finite or that a
        product overflowed (the caller then validates ``X``).
    """
    n_layers = dims.shape[0] - 1
    m = X.shape[0]
    width = np.int64(1)
    for l in range(n_layers):
        width = max(width, dims[l + 1])
    block = max(np.int64(1), buffer.shape[1] // width)
    scalars = np.empty(2, params.dtype)
    one = params.dtype.type(1)
    # W.T of the layers whose product runs in BLAS's plain form (a local copy, never borrowed): t_off[l] is
    # where layer l's (n_in, n_out) block starts, t_off[l + 1] == t_off[l] for a layer that keeps the flag
    t_off = np.zeros(n_layers + 1, np.int64)
    for l in range(n_layers):
        plain = m >= _MIN_ROWS_TO_TRANSPOSE and dims[l + 1] >= _sp.MIN_ROWS
        t_off[l + 1] = t_off[l] + (dims[l] * dims[l + 1] if plain else 0)
    w_t = np.empty(t_off[n_layers], params.dtype)
    for l in range(n_layers):
        if t_off[l + 1] > t_off[l]:
            _sp.transpose_block(params, offsets[l], dims[l], dims[l + 1], dims[l], w_t, t_off[l])
    # the arrays read or written row by row are borrowed (only this kernel's own arguments, see _borrow): the
    # per-row calls below would otherwise count references on every one of them, for every row and layer
    x_flat, flat_out = _borrow(X.reshape(X.size)), _borrow(out.reshape(out.size))
    params, buffer, labels, acts = _borrow(params), _borrow(buffer), _borrow(labels), _borrow(acts)
    want_labels = labels.shape[0] > 0
    finite = True
    for first in range(0, m, block):
        rows = min(block, m - first)
        src = x_flat
        s_off = first * dims[0]
        for l in range(n_layers):
            last = l == n_layers - 1
            dst = flat_out if last else buffer[l % 2]
            d_off = first * dims[n_layers] if last else np.int64(0)
            n_in, n_out, p_off = dims[l], dims[l + 1], offsets[l]
            b_off = p_off + n_in * n_out
            use_blas = rows >= _MIN_BLAS_ROWS and rows * n_in * n_out >= blas_min_flops
            if use_blas and t_off[l + 1] > t_off[l]:
                _gemm(False, False, rows, n_out, n_in, one, src, s_off, n_in, w_t, t_off[l], n_out, one - one, dst,
                      d_off, n_out, scalars)
            elif use_blas:
                _gemm(False, True, rows, n_out, n_in, one, src, s_off, n_in, params, p_off, n_in, one - one, dst,
                      d_off, n_out, scalars)
            else:
                _dot_rows(src, s_off, rows, n_in, params, p_off, n_out, dst, d_off)
            for i in range(rows):  # row by row while it is in cache: the intercept (after BLAS), the activation
                row = d_off + i * n_out
                if use_blas:
                    _add_intercept(dst, row, params, b_off, n_out)
                if l == 0 and not _finite(dst[row]):
                    finite = False
                if acts[l] == ACT_SOFTMAX:
                    if last and want_labels:
                        labels[first + i] = _argmax_softmax_row(dst, row, n_out)
                    else:
                        _softmax_row(dst, row, n_out)
                else:
                    _activate_block(dst, row, dst, row, np.int64(1), n_out, acts[l], slope)
            src = dst
            s_off = d_off
    return finite


@jit_inline
def _add_intercept(Z, row, params, b_off, n):
    """``Z[row:row + n] += params[b_off:b_off + n]``."""
    row, b_off, n = _U(row), _U(b_off), _U(n)
    for j in range(n):
        Z[row + j] += params[b_off + j]


@jit_inline
def _dot_rows(src, s_off, m, n_in, params, p_off, n_out, Z, z_off):
    """``Z = A_prev @ W.T + b`` by dot products of contiguous rows (``A_prev`` ``(m, n_in)`` at ``src[s_off:]``,
    ``Z`` ``(m, n_out)`` at ``Z[z_off:]``, ``W`` ``(n_out, n_in)`` at ``p_off`` followed by ``b``); sums in loops
    that only read, so their rounding is fixed."""
    s_off, m, n_in, p_off, n_out, z_off = _U(s_off), _U(m), _U(n_in), _U(p_off), _U(n_out), _U(z_off)
    b_off = p_off + n_in * n_out
    for i in range(m):
        for j in range(n_out):
            s = params[b_off + j]
            for k in range(n_in):
                s += src[s_off + i * n_in + k] * params[p_off + j * n_in + k]
            Z[z_off + i * n_out + j] = s


@jit_inline
def _argmax_softmax_row(Z, row, n):
    """The index of the largest entry of ``softmax(Z[row:row + n])`` (the first of equal ones).

    That is the largest logit's, unless another logit lies within a few units of rounding of it: their
    exponentials, or their quotients by the sum, could then round to the same probability, and the first of
    them would win. Only then is the softmax computed, in place (by :func:`_softmax_row`, as for
    ``predict_proba``), and its largest entry taken; otherwise ``Z`` is left as it is.
    """
    row, n = _U(row), _U(n)
    top = Z[row]
    best = _U(0)
    for j in range(_U(1), n):
        if Z[row + j] > top:
            top = Z[row + j]
            best = j
    # a gap d between logits leaves exp(-d), and its quotient by the sum, below those of the top logit
    # once d exceeds a few eps; this margin is generous (a tie is rare, and then only costs this row's softmax)
    # (a NaN or an infinite logit, which make probabilities NaN, also takes the softmax path)
    close = Z.dtype.type(1024) * np.finfo(Z.dtype).eps
    tie = not _finite(top)
    for j in range(n):
        if j != best and not (top - Z[row + j] > close):
            tie = True
    if tie:  # as numpy.argmax of the probabilities: the first NaN, else the first of the largest
        _softmax_row(Z, row, n)
        top = Z[row]
        best = _U(0)
        for j in range(n):
            if np.isnan(Z[row + j]):
                return np.int64(j)
            if Z[row + j] > top:
                top = Z[row + j]
                best = j
    return np.int64(best)


@jit_inline
def _softmax_row(Z, row, n):
    """Softmax of the ``n`` values at ``Z[row:]``, in place."""
    row, n = _U(row), _U(n)
    top = Z[row]
    for j in range(_U(1), n):
        top = max(top, Z[row + j])
    total = Z.dtype.type(0)
    for j in range(n):
        e = np.exp(Z[row + j] - top)
        Z[row + j] = e
        total += e
    for j in range(n):
        Z[row + j] = Z[row + j] / total


@jit
def _forward(X, params, dims, acts, slope, buffer, out, blas_min_flops):
    """Network output for every column (sample) of ``X``.

    Parameters
    ----------
    X : (n0, m) C-contiguous; params : (P,) flat parameters; dims : (L + 1,) int64 layer sizes
    acts : (L,) int64 activation codes; slope : leaky slope (array dtype)
    buffer : (2, m * max(dims)) ping-pong workspace; out : (nL, m) C-contiguous, written
    """
    n_layers = dims.shape[0] - 1
    m = X.shape[1]
    p_off = _param_offsets(dims)
    scalars = np.empty(2, params.dtype)
    src = X.reshape(X.size)
    flat_out = out.reshape(out.size)
    zero_offset = np.int64(0)
    for l in range(n_layers):
        dst = flat_out if l == n_layers - 1 else buffer[l % 2]
        _affine_activation(src, zero_offset, m, dims[l], m, params, p_off[l], dims[l + 1], acts[l], slope, dst,
                           zero_offset, dst, zero_offset, m * dims[l] * dims[l + 1] >= blas_min_flops, scalars)
        src = dst


@jit_internal
def _layer_update(src, s_off, s_ld, n_in, n_b, deltas, d_off, n_out, params, grad, lo, hi, alpha, opt, lr, lr_adam,
                  momentum, beta_1, beta_2, epsilon, state_1, state_2, use_blas, scalars, scratch, t_off, t_size):
    """Gradient and optimiser step of one layer, whose parameters are ``params[lo:hi]``.

    ``A_prev`` is the ``(n_in, n_b)`` block at ``src[s_off:]`` (rows ``s_ld`` apart) and ``dZ`` the packed
    ``(n_out, n_b)`` block at ``deltas[d_off:]``. With plain SGD on the BLAS path the update is fused into
    the gradient product, ``W <- (1 - lr alpha / n_b) W - (lr / n_b) dZ @ A_prev.T``, and the weight
    gradient is never stored. ``scratch[t_off:t_off + t_size]`` is free for this call: where
    :func:`fastmlp._small_products.transpose_pays` and it is large enough, ``A_prev.T`` is copied there so that
    BLAS runs the product in its faster plain form.

    Returns the sum of the squares of the updated weights (float64; 0 for a fused SGD step without penalty,
    ``alpha == 0``, whose next cost does not need it).
    """
    n_coef = n_in * n_out
    size = params.dtype.type(n_b)
    zero = params.dtype.type(0)
    one = params.dtype.type(1)
    first = lo  # the first parameter the optimiser step updates
    penalty = zero  # the L2 penalty's share of the weight gradient, when the optimiser step adds it
    _intercept_gradient(deltas, d_off, n_out, n_b, grad, lo + n_coef)
    if use_blas:
        fused = opt == OPT_SGD
        if fused:  # W <- (1 - lr alpha / n_b) W - (lr / n_b) dZ @ A_prev.T
            target, scale, keep = params, -lr / size, one - lr * alpha / size
            first = lo + n_coef  # the weights are done: only the intercept is left
        else:  # g_W = dZ @ A_prev.T / n_b; the optimiser step adds (alpha / n_b) W as it reads W anyway
            target, scale, keep = grad, one / size, zero
            penalty = alpha / size
        # the right operand A_prev.T: as stored (BLAS's slower "nt" form, in chunks of columns), or copied
        # transposed first (then in one product)
        right, r_off, r_ld, r_trans = src, s_off, s_ld, True
        chunk = _sp.nt_columns(n_out, n_in)
        if _sp.transpose_pays(n_out, n_in, n_b) and t_size >= n_in * n_b:
            _sp.transpose_block(src, s_off, s_ld, n_in, n_b, scratch, t_off)
            right, r_off, r_ld, r_trans = scratch, t_off, n_in, False
            chunk = n_in
        for k0 in range(0, n_in, chunk):  # columns k0.. of the gradient: rows k0.. of A_prev
            cols = chunk if chunk < n_in - k0 else n_in - k0  # (Numba's min is a function of its own to compile)
            _gemm(False, r_trans, n_out, cols, n_b, scale, deltas, d_off, n_b, right, r_off + k0 * r_ld, r_ld, keep,
                  target, lo + k0, n_in, scalars)
    else:
        _weight_gradient_loops(src, s_off, s_ld, n_in, n_b, deltas, d_off, n_out, params, lo, alpha, grad)
    squares = 0.0
    squares += _optimizer_step(params, grad, first, hi, lo + n_coef, penalty, opt, lr, lr_adam, momentum, beta_1,
                               beta_2, epsilon, state_1, state_2)
    if first > lo and alpha != zero:  # the weights were updated by the product itself: a pass of their own
        for t in range(_U(lo), _U(lo + n_coef)):
            squares += params[t] * params[t]
    return squares


@jit_inline
def _batch_step(xb, yb, b_off, b_ld, n_b, params, grad, p_off, a_off, Zbuf, Abuf, deltas, dims, acts, slope, loss,
                alpha, opt, lr, lr_adam, momentum, beta_1, beta_2, epsilon, state_1, state_2, scalars, blas_min_flops,
                squares):
    """One minibatch: forward, cost, backward and the optimiser step for every layer; returns the cost and the sum
    of the squares of the updated weights.

    The batch is the ``(n0, n_b)`` block at ``xb[b_off:]`` with targets ``(nL, n_b)`` at ``yb[b_off:]``, rows
    ``b_ld`` apart in both. (At most 30 arguments: CPython passes more as a tuple, which Numba cannot inline.)
    ``p_off`` / ``a_off`` are the layer offsets in ``params`` (and
    ``grad``) and in the activation workspaces ``Zbuf`` / ``Abuf`` (blocks packed ``(n_l, n_b)``); the two
    halves of ``deltas`` hold the deltas of alternate layers. (Arrays are never chosen at run time here:
    each such choice costs reference counting that a small network notices.)

    The cost (loss of the batch plus ``0.5 alpha sum(W^2) / n_b``) is that of the parameters before the
    step. ``squares`` is their ``sum(W^2)`` as the previous minibatch's step returned it, or negative when
    unknown (the first minibatch of an epoch), which costs a pass over the weights when ``alpha != 0``.
    Layer ``l`` is updated as soon as the delta of layer ``l - 1`` has been computed from its old
    weights, which gives the same result as computing every gradient first.
    """
    n_layers = dims.shape[0] - 1
    zero = params.dtype.type(0)
    half = deltas.shape[0] // 2
    zero_offset = np.int64(0)
    x_off, x_ld, y_off, y_ld = b_off, b_ld, b_off, b_ld

    penalty = 0.0
    if alpha != zero:
        if squares >= 0.0:
            penalty = squares
        else:
            for l in range(n_layers):
                for t in range(_U(p_off[l]), _U(p_off[l] + dims[l] * dims[l + 1])):
                    penalty += params[t] * params[t]
        penalty = 0.5 * alpha * penalty / n_b

    for l in range(n_layers):
        # the input of layer l: the batch itself, or the previous layer's activations
        src, s_off, s_ld = (xb, x_off, x_ld) if l == 0 else (Abuf, a_off[l - 1], n_b)
        _affine_activation(src, s_off, s_ld, dims[l], n_b, params, p_off[l], dims[l + 1], acts[l], slope,
                           Zbuf, a_off[l], Abuf, a_off[l], n_b * dims[l] * dims[l + 1] >= blas_min_flops, scalars)

    top = n_layers - 1
    cost = _cost_and_delta(Zbuf, a_off[top], Abuf, a_off[top], yb, y_off, y_ld, dims[n_layers], n_b, acts[top],
                           loss, slope, deltas, zero_offset) / n_b + penalty

    new_squares = 0.0
    for l in range(top, -1, -1):
        n_in = dims[l]
        n_out = dims[l + 1]
        d_off = ((top - l) % 2) * half
        use_blas = n_b * n_in * n_out >= blas_min_flops
        if l > 0:
            _backprop_delta(deltas, d_off, n_out, n_b, params, p_off[l], n_in, Zbuf, a_off[l - 1], Abuf,
                            a_off[l - 1], acts[l - 1], slope, deltas, half - d_off, use_blas, scalars)
        src, s_off, s_ld = (xb, x_off, x_ld) if l == 0 else (Abuf, a_off[l - 1], n_b)
        # free scratch for the update: the Z blocks of layer l - 1 and above are no longer read (the deltas below
        # layer l are computed); for layer 0 that is all of Zbuf
        t_off = a_off[l - 1] if l > 0 else zero_offset
        t_size = n_in * n_b if l > 0 else a_off[n_layers]
        new_squares += _layer_update(src, s_off, s_ld, n_in, n_b, deltas, d_off, n_out, params, grad, p_off[l],
                                     p_off[l + 1], alpha, opt, lr, lr_adam, momentum, beta_1, beta_2, epsilon, state_1,
                                     state_2, use_blas, scalars, Zbuf, t_off, t_size)
    return cost, new_squares


@jit_inline
def _finite(x):
    """``np.isfinite(x)`` that the fast-math flags cannot fold away: every finiteness check of the kernels.

    Numba computes ``isfinite(x)`` as "``x - x`` is ordered"; with ``reassoc`` and ``nsz`` (both default flags)
    LLVM cancels ``x - x`` to 0 once ``x`` is a sum computed in the kernel, so that ``isfinite(nan + 1.0)`` is
    True. One ordered comparison of ``|x|`` with infinity is False for NaN and +-inf, and only ``nnan``/``ninf``
    (never used, see :mod:`fastmlp._config`) may fold it (tests/test_output_bounds.py checks both)."""
    return abs(x) < np.inf


@jit_inline
def _all_finite(values):
    """Whether every value is finite: in blocks of 2048 without an exit inside a block, so that LLVM vectorises the
    test (an exit per value kept the scan scalar: 152 -> 24 us over W4's 530,000 float32 parameters)."""
    n = values.shape[0]
    for start in range(0, n, 2048):
        stop = start + 2048 if start + 2048 < n else n
        bad = 0
        for i in range(_U(start), _U(stop)):
            bad += 0 if _finite(values[i]) else 1
        if bad:
            return False
    return True


@jit_inline
def _gather_rows(X_flat, Y_flat, order, start, n_b, n_x, n_y, xbuf, ybuf):
    """Copy samples ``order[start:start + n_b]`` (``order`` flat) of the row-major ``(m, n_x)`` / ``(m, n_y)`` arrays at
    ``X_flat`` / ``Y_flat`` into the packed column blocks ``xbuf`` ``(n_x, n_b)`` and ``ybuf`` ``(n_y, n_b)``.

    Row by row, so every sample is one contiguous read (a shuffled gather from samples-as-columns storage
    touches a different cache line for every value, which made it the largest cost of a small-batch epoch).
    """
    start, n_b, n_x, n_y = _U(start), _U(n_b), _U(n_x), _U(n_y)
    for i in range(n_b):
        row = _U(order[start + i])
        for k in range(n_x):
            xbuf[k * n_b + i] = X_flat[row * n_x + k]
        for k in range(n_y):
            ybuf[k * n_b + i] = Y_flat[row * n_y + k]


@jit_inline
def _save_state(params, state_1, state_2, backup):
    """``backup = concatenate(params, state_1, state_2)`` (``backup`` at least that long)."""
    n_p, n_1, n_2 = _U(params.shape[0]), _U(state_1.shape[0]), _U(state_2.shape[0])
    for t in range(n_p):
        backup[t] = params[t]
    for t in range(n_1):
        backup[n_p + t] = state_1[t]
    for t in range(n_2):
        backup[n_p + n_1 + t] = state_2[t]


@jit_inline
def _restore_state(backup, params, state_1, state_2):
    """The inverse of :func:`_save_state`."""
    n_p, n_1, n_2 = _U(params.shape[0]), _U(state_1.shape[0]), _U(state_2.shape[0])
    for t in range(n_p):
        params[t] = backup[t]
    for t in range(n_1):
        state_1[t] = backup[n_p + t]
    for t in range(n_2):
        state_2[t] = backup[n_p + n_1 + t]


def _train_epochs(X, Y, params, dims, acts, slope, alpha, batch_size, order, learning_rates,
                  momentum, beta_1, beta_2, epsilon, state_1, state_2, step,
                  Zbuf, Abuf, deltas, grad, xbuf, ybuf, backup, param_offsets, act_offsets, scalars,
                  blas_min_flops, span, partial, mean_batch_cost, sample_weighted_cost):
    """Run ``len(learning_rates)`` epochs (or pieces of epochs) of minibatch training in place; return how many
    of them completed.

    A template, never compiled as it is: :func:`train_epochs_kernel` compiles one copy per optimiser, loss and
    (for the usual networks) activation set, in which the codes ``_OPT`` and ``_LOSS`` and the branch flags are
    constants (see :func:`_family_copy`).

    Parameters
    ----------
    X : (n0, m) C-contiguous; Y : (nL, m) C-contiguous (samples are columns), or, when ``order`` is given,
        (m, n0) and (m, nL) C-contiguous (samples as *rows*: a shuffled minibatch is gathered sample by sample,
        and a sample's values are then contiguous instead of ``m`` apart)
    params : (P,) flat parameters, updated in place
    dims : (L + 1,) int64; acts : (L,) int64 activation codes; slope, alpha : array-dtype scalars
    batch_size : int
    order : (epochs, m) int64 sample order of each epoch, or shape (0, m) for the natural order (its second
        dimension is the sample count either way)
    learning_rates : (epochs,) float64, the rate of each epoch
    momentum, beta_1, beta_2, epsilon : array-dtype scalars; state_1, state_2 : (P,) optimiser state
    step : (1,) int64, Adam's update count, advanced in place
    Zbuf, Abuf : (batch_size * sum(dims[1:]),); deltas : (2 * batch_size * max(dims),); grad : (P,)
    backup : (P + len(state_1) + len(state_2),) scratch: the parameters and optimiser state at the start of the call
    xbuf : (n0 * batch_size,); ybuf : (nL * batch_size,) gather buffers (used when ``order`` is given)
    param_offsets : (L + 1,) int64, :func:`_param_offsets` of ``dims``
    act_offsets : (L + 1,) int64, :func:`_act_offsets` of ``dims`` and ``batch_size``
    scalars : (2 + batch_size,) scratch of the parameters' dtype (alpha and beta for BLAS, then a softmax's row)
    blas_min_flops : int, products of at least this many multiply-adds call BLAS
    span : (2,) int64, the first minibatch run in the first epoch and the end (exclusive) of those run in the
        last: ``[0, n_batches]`` runs whole epochs. A call can so stop inside a long epoch and a later call
        resume it (Ctrl-C and progress stay responsive; see :func:`fastmlp._engine.train_epochs`).
    partial : (2,) float64, the running sum of the minibatch costs and of the costs weighted by batch size of
        an epoch run in pieces: read when the first epoch resumes (``span[0] > 0``), written when the last one
        stops early (``span[1] < n_batches``)
    mean_batch_cost, sample_weighted_cost : (epochs,) float64, written for each epoch that ends in this call:
        the mean of the epoch's minibatch costs, and their mean weighted by batch size

    Returns
    -------
    int
        Epochs (or pieces) completed. Fewer than requested means that the next one produced a non-finite
        cost or weights; the parameters, the optimiser state and ``step`` are then restored to their values at
        the start of that epoch (of that piece, for a resumed epoch).

    Rollback costs nothing per epoch: the parameters and optimiser state are copied once, at the start of the
    call; each epoch checks only its cost, and the parameters are scanned once, after the last epoch. When
    either check fails, the call is replayed from that copy (the same arithmetic in the same order, so the
    same numbers), first checking the parameters after every epoch, which finds the first epoch that went
    non-finite, then once more up to the start of that epoch.

    The kernel runs with the calling thread's flush-to-zero mode on (``FASTMLP_SUBNORMALS``, see
    :func:`_flush_to_zero`) and restores it before it returns.
    """
    opt, loss = _OPT, _LOSS  # constants of the compiled copy: only their branches are compiled
    n_x, n_y = dims[0], dims[dims.shape[0] - 1]
    m = order.shape[1]
    n_epochs = learning_rates.shape[0]
    shuffled = order.shape[0] > 0
    n_batches = (m + batch_size - 1) // batch_size
    # everything the batch loop touches is borrowed (see _borrow): only this kernel's own arguments, which
    # the caller keeps alive until we return. Never borrow a local array here (Numba frees a local after
    # its last use, and the borrowed view would then read freed memory).
    p_off, a_off, scalars = _borrow(param_offsets), _borrow(act_offsets), _borrow(scalars)
    X_flat, Y_flat = _borrow(X.reshape(X.size)), _borrow(Y.reshape(Y.size))
    order_flat = _borrow(order.reshape(order.size))
    params, grad, backup, Zbuf, Abuf, deltas = (_borrow(params), _borrow(grad), _borrow(backup), _borrow(Zbuf),
                                                _borrow(Abuf), _borrow(deltas))
    xbuf, ybuf, state_1, state_2, dims, acts = (_borrow(xbuf), _borrow(ybuf), _borrow(state_1), _borrow(state_2),
                                                _borrow(dims), _borrow(acts))
    # flush-to-zero (see _flush_to_zero), unless Adam's epsilon is itself subnormal: sqrt(v) + epsilon would then
    # flush to 0 where v is 0, and 0 / 0 is NaN
    tiny = _smallest_normal(epsilon)
    previous_mode = _flush_to_zero(_FLUSH_SUBNORMALS and not (epsilon != 0 and abs(epsilon) < tiny))
    _save_state(params, state_1, state_2, backup)
    step_at_start = step[0]
    # replay: 0 the run itself (cost checked per epoch, parameters after the last one); 1 a replay checking the
    # parameters after every epoch, up to the epoch that failed; 2 a replay without checks up to `limit`
    replay = 0
    limit = n_epochs
    e = 0
    while e < limit:
        lr = params.dtype.type(learning_rates[e])
        first = span[0] if e == 0 else 0
        stop = span[1] if e == n_epochs - 1 else n_batches
        total = partial[0] if first > 0 else 0.0
        weighted = partial[1] if first > 0 else 0.0
        squares = -1.0  # sum(W^2) of the current weights, returned by each minibatch's step for the next one's cost
        for batch in range(first, stop):
            start = batch * batch_size
            n_b = batch_size if batch_size < m - start else m - start  # (Numba's min is a function of its own)
            lr_adam = lr
            if opt == OPT_ADAM:
                step[0] += 1
                t_adam = step[0]
                lr_adam = params.dtype.type(
                    learning_rates[e] * np.sqrt(1.0 - float(beta_2) ** t_adam) / (1.0 - float(beta_1) ** t_adam))
            # one call site, so that _batch_step is compiled once (not once more for literal offsets)
            if shuffled:  # X and Y hold samples as rows: each sample is read contiguously
                _gather_rows(X_flat, Y_flat, order_flat, e * m + start, n_b, n_x, n_y, xbuf, ybuf)
                x_src, y_src, src_off, src_ld = xbuf, ybuf, np.int64(0), np.int64(n_b)
            else:
                x_src, y_src, src_off, src_ld = X_flat, Y_flat, np.int64(start), np.int64(m)
            cost, squares = _batch_step(x_src, y_src, src_off, src_ld, n_b, params, grad, p_off, a_off, Zbuf, Abuf,
                                        deltas, dims, acts, slope, loss, alpha, opt, lr, lr_adam, momentum, beta_1,
                                        beta_2, epsilon, state_1, state_2, scalars, blas_min_flops, squares)
            total += cost
            weighted += cost * n_b
        if replay != 2:
            finite = _finite(total)
            if finite and (replay == 1 or e == n_epochs - 1):
                finite = _all_finite(params)
            if not finite:
                _restore_state(backup, params, state_1, state_2)
                step[0] = step_at_start
                if replay == 0 and e > 0:  # which epoch went wrong first: the parameters may have done so silently
                    replay, limit = 1, e + 1
                else:  # epoch e is the first to fail: back to its start
                    if e == 0:
                        _restore_flush_to_zero(previous_mode)
                        return 0
                    replay, limit = 2, e
                e = 0
                continue
        if stop < n_batches:
            partial[0] = total
            partial[1] = weighted
        else:
            mean_batch_cost[e] = total / n_batches
            sample_weighted_cost[e] = weighted / m
        e += 1
    _restore_flush_to_zero(previous_mode)
    return limit


_TRAIN_KERNELS: dict = {}
OPTIMIZER_NAMES = {code: name for name, code in OPTIMIZER_CODES.items()}
LOSS_NAMES = {code: name for name, code in LOSS_CODES.items()}


#: the activation sets a training kernel is specialised to (relu hidden layers and the usual outputs: the networks
#: that the estimators and ``MLP`` make by default); any other network gets a kernel with every activation
SPECIALISED_ACTIVATIONS = (frozenset({ACT_RELU, ACT_SIGMOID}), frozenset({ACT_RELU, ACT_SOFTMAX}),
                           frozenset({ACT_RELU, ACT_LINEAR}))
ALL_ACTIVATIONS = frozenset(ACTIVATION_FLAGS)


def train_epochs_kernel(opt: int, loss: int, acts):
    """The compiled :func:`_train_epochs` for optimiser code ``opt``, loss code ``loss`` and a network with the
    activation codes ``acts`` (any iterable), made on first use; it compiles, or loads from the disk cache, on
    its first call for a dtype.

    It compiles no other optimiser or loss (see :func:`_family_copy`), and, when the set of ``acts`` is one of
    :data:`SPECIALISED_ACTIVATIONS`, no other activation: a first ``fit`` of such a network compiles a third less
    code. Other activation sets share one kernel with every activation per optimiser and loss (a kernel per
    set would multiply the kernels a process compiles, for a test suite tens of them).
    """
    codes = frozenset(int(a) for a in acts)
    if codes not in SPECIALISED_ACTIVATIONS:
        codes = ALL_ACTIVATIONS
    key = (int(opt), int(loss), codes)
    kernel = _TRAIN_KERNELS.get(key)
    if kernel is None:
        flags = dict.fromkeys(_FLAGS, False)
        flags.update({ACTIVATION_FLAGS[a]: True for a in codes})
        flags[OPTIMIZER_FLAGS[opt]] = flags[LOSS_FLAGS[loss]] = True
        flags["_SQUARED_LOSS"] = loss in (LOSS_MSE, LOSS_HALF_MSE)
        flags["_OPT"], flags["_LOSS"] = int(opt), int(loss)
        kernel = _family_copy("_train_epochs", flags)
        _TRAIN_KERNELS[key] = kernel
    return kernel


@jit
def _activate_columns(Z, A, act, slope):
    """``A = g(Z)`` for 2-D ``(n, m)`` C-contiguous arrays (samples as columns)."""
    zero_offset = np.int64(0)
    _activate_block(Z.reshape(Z.size), zero_offset, A.reshape(A.size), zero_offset, Z.shape[0], Z.shape[1], act,
                    slope)


@jit
def _cost_columns(Z, A, Y, act, loss, slope, dZ):
    """Summed cost and output delta for 2-D ``(n, m)`` C-contiguous arrays (see :func:`_cost_and_delta`)."""
    m = Z.shape[1]
    zero_offset = np.int64(0)
    return _cost_and_delta(Z.reshape(Z.size), zero_offset, A.reshape(A.size), zero_offset, Y.reshape(Y.size),
                           zero_offset, m, Z.shape[0], m, act, loss, slope, dZ.reshape(dZ.size), zero_offset)


# --- whole-batch passes for the course-style functional API ----------------------------------------
@jit
def _forward_cached(X, params, dims, acts, slope, Zbuf, Abuf, blas_min_flops):
    """Forward pass over all ``m`` columns of ``X`` ``(n0, m)``, keeping every layer's ``Z`` and ``A``.

    ``Zbuf``, ``Abuf`` : (m * sum(dims[1:]),), written: layer ``l``'s packed ``(n_l, m)`` blocks, in order.
    """
    n_layers = dims.shape[0] - 1
    m = X.shape[1]
    p_off = _param_offsets(dims)
    a_off = _act_offsets(dims, m)
    scalars = np.empty(2, params.dtype)
    src = X.reshape(X.size)
    s_off = 0
    for l in range(n_layers):
        _affine_activation(src, s_off, m, dims[l], m, params, p_off[l], dims[l + 1], acts[l], slope, Zbuf, a_off[l],
                           Abuf, a_off[l], m * dims[l] * dims[l + 1] >= blas_min_flops, scalars)
        src = Abuf
        s_off = a_off[l]


@jit
def _backward_full(X, Y, params, dims, acts, slope, loss, Zbuf, Abuf, grad, dAbuf, deltas, blas_min_flops):
    """Gradients of a whole batch without updating anything (the course-style ``L_model_backward``).

    ``X`` ``(n0, m)``, ``Y`` ``(nL, m)``; ``Zbuf`` / ``Abuf`` as written by :func:`_forward_cached`;
    ``grad`` (P,) written in the layout of ``params``; ``dAbuf`` (m * sum(dims[:-1]),) written with the packed
    ``dA_l = W_{l+1}.T @ dZ_{l+1}`` blocks for l = 0..L-1; ``deltas`` (2 * m * max(dims),) scratch.
    """
    n_layers = dims.shape[0] - 1
    m = X.shape[1]
    p_off = _param_offsets(dims)
    a_off = _act_offsets(dims, m)
    scalars = np.empty(2, params.dtype)
    one = params.dtype.type(1)
    da_off = np.empty(n_layers, np.int64)
    da_off[0] = 0
    for l in range(1, n_layers):
        da_off[l] = da_off[l - 1] + m * dims[l - 1]
    top = n_layers - 1
    half = deltas.shape[0] // 2
    X_flat = X.reshape(X.size)
    zero_offset = np.int64(0)
    _cost_and_delta(Zbuf, a_off[top], Abuf, a_off[top], Y.reshape(Y.size), zero_offset, m, dims[n_layers], m,
                    acts[top], loss, slope, deltas, zero_offset)
    for l in range(top, -1, -1):
        n_in = dims[l]
        n_out = dims[l + 1]
        d_off = ((top - l) % 2) * half
        use_blas = m * n_in * n_out >= blas_min_flops
        # dA_l = W.T @ dZ (the linear "derivative" leaves it as it is), then dZ_{l-1} = dA_l * g'(Z_{l-1})
        _backprop_delta(deltas, d_off, n_out, m, params, p_off[l], n_in, dAbuf, da_off[l], dAbuf, da_off[l],
                        np.int64(ACT_LINEAR), slope, dAbuf, da_off[l], use_blas, scalars)
        if l > 0:
            dp_off = half - d_off
            deltas[dp_off:dp_off + n_in * m] = dAbuf[da_off[l]:da_off[l] + n_in * m]
            _apply_derivative(deltas, dp_off, Zbuf, a_off[l - 1], Abuf, a_off[l - 1], n_in * m, acts[l - 1], slope)
        src, s_off = (X_flat, zero_offset) if l == 0 else (Abuf, a_off[l - 1])
        _layer_gradients(src, s_off, m, n_in, m, deltas, d_off, n_out, params, p_off[l], one - one, grad, use_blas,
                         scalars)


@jit
def _subtract_scaled(P, G, lr):
    """``P -= lr * G`` in place, for 1-D arrays of the same length."""
    for i in range(P.shape[0]):
        P[i] -= lr * G[i]



# --- per-step passes for course-style loops (fastmlp._steps) --------------------------------------
# A user's own loop calls forward, cost, backward and update once per step on a tiny network, so the
# call itself is the cost: these kernels take few arguments (``spec`` packs the layer sizes, activation
# codes and parameter offsets), allocate their scratch themselves, and check finiteness while they read.
@intrinsic
def _move_items(typingctx, dst, d_off, src, s_off, n):
    """memmove of ``n`` items from ``src[s_off:]`` to ``dst[d_off:]`` (1-D C arrays of one dtype; the
    caller keeps both ranges inside the arrays)."""
    if dst.dtype != src.dtype or dst.ndim != 1 or src.ndim != 1 or dst.layout != "C" or src.layout != "C":
        return None

    def codegen(context, builder, sig, args):
        d = context.make_array(sig.args[0])(context, builder, args[0])
        s_ = context.make_array(sig.args[2])(context, builder, args[2])
        size = context.get_abi_sizeof(context.get_data_type(sig.args[0].dtype))
        dptr = builder.gep(d.data, [args[1]])
        sptr = builder.gep(s_.data, [args[3]])
        cgutils.raw_memmove(builder, dptr, sptr, args[4], size)
        return context.get_dummy_value()
    return types.none(dst, types.int64, src, types.int64, types.int64), codegen


if numba.config.DISABLE_JIT:
    def _move_items(dst, d_off, src, s_off, n):  # noqa: F811
        """``dst[d_off:d_off + n] = src[s_off:s_off + n]`` (NumPy copies overlapping blocks as memmove does)."""
        dst[int(d_off):int(d_off) + int(n)] = src[int(s_off):int(s_off) + int(n)]


@jit_inline
def _copy_block(src, s_off, dst, d_off, n):
    """``dst[d_off:d_off + n] = src[s_off:s_off + n]`` (one memmove)."""
    _move_items(dst, np.int64(d_off), src, np.int64(s_off), np.int64(n))


@jit
def _spec_parts(spec):
    """``dims`` (L + 1,), ``acts`` (L,), ``p_off`` (L + 1,) packed in one int64 array of length 3 L + 2."""
    n_layers = (spec.shape[0] - 2) // 3
    return spec[:n_layers + 1], spec[n_layers + 1:2 * n_layers + 1], spec[2 * n_layers + 1:]


@jit_inline
def _step_arrays_fit(X, ZA, dims):
    """Whether ``X`` is ``(dims[0], m)`` and ``ZA`` ``(2 sum(dims[1:]), m)`` for one ``m``: the caller checked
    that before the call, but the caller's ``X`` can be re-shaped in place (same number of dimensions: the type
    does not change) by code that runs in between, or by another thread -- the kernels read views made for the
    call then, whose shapes are those checked here."""
    rows = 0
    for l in range(1, dims.shape[0]):
        rows += dims[l]
    return X.shape[0] == dims[0] and ZA.shape[0] == 2 * rows and ZA.shape[1] == X.shape[1]


@jit_step
def _step_forward(X, params, spec, slope, ZA, scalars, blas_min_flops):
    """Forward pass keeping every layer's ``Z`` and ``A``; returns 0 when every ``Z`` is finite, 1 when one is
    not, 2 when ``X`` or ``ZA`` does not have the shape of ``spec`` (nothing read or written).

    ``X`` (n0, m) C-contiguous; ``ZA`` (2 S, m) C-contiguous with ``S = sum(dims[1:])``: rows ``[0, S)`` hold
    the layers' ``Z`` blocks in order, rows ``[S, 2 S)`` their ``A`` blocks. A non-finite ``X`` or parameter
    always makes some ``Z`` non-finite (``0 * inf`` is NaN), so the caller validates only when this is False.
    """
    # borrowed (no reference counting in the calls below: on a tiny network it costs more than the arithmetic):
    # only this kernel's own arguments (see _borrow)
    params, spec = _borrow(params), _borrow(spec)
    dims, acts, p_off = _spec_parts(spec)
    if not _step_arrays_fit(X, ZA, dims) or params.shape[0] != p_off[dims.shape[0] - 1]:
        return 2
    n_layers = dims.shape[0] - 1
    m = X.shape[1]
    S = ZA.shape[0] // 2
    flat = _flat(ZA)
    slope = params.dtype.type(slope)
    src = _flat(X)
    s_off = 0
    z_off = 0
    for l in range(n_layers):
        _affine_activation(src, s_off, m, dims[l], m, params, p_off[l], dims[l + 1], acts[l], slope, flat, z_off,
                           flat, S * m + z_off, m * dims[l] * dims[l + 1] >= blas_min_flops, scalars)
        src = flat
        s_off = S * m + z_off
        z_off += dims[l + 1] * m
    for t in range(S * m):
        if not _finite(flat[t]):
            return 1
    return 0


@jit_step
def _step_backward(X, Y, params, spec, slope, loss, ZA, out, with_dA0, blas_min_flops):
    """Gradients of the mean cost from a :func:`_step_forward` pass; returns a status code.

    ``out`` is written: first the gradient (P,) in the layout of ``params``, then the packed blocks
    ``dA_l = W_{l+1}.T @ dZ_{l+1}`` ``(dims[l], m)``, l = 0..L-1; without ``with_dA0`` the first of them,
    ``dA_0`` (the one product the gradient does not need), is not computed and the block holds
    ``dZ_1`` ``(dims[1], m)`` instead, from which the caller can form ``dA_0`` when it is asked for. The
    last ``2 m max(dims[1:]) + 2`` entries of ``out`` are scratch (the kernel allocates nothing). So ``out``
    has length ``P + m (first + sum(dims[1:-1])) + 2 m max(dims[1:]) + 2`` with ``first = dims[0]`` or
    ``dims[1]`` (:meth:`fastmlp._engine.StepLayout.backward_length`). Status: 0 fine; 1 ``Y`` is not finite,
    or outside [0, 1] for a cross-entropy loss; 2 a gradient or a parameter is not finite; 3, nothing read or
    written, ``X``, ``Y`` or ``ZA`` does not have the shape of ``spec`` (see :func:`_step_arrays_fit`). Nothing
    is validated beyond that here: the caller reruns its full checks when the status is not 0.
    """
    # borrowed, as in _step_forward: only this kernel's own arguments
    params, spec, out = _borrow(params), _borrow(spec), _borrow(out)
    dims, acts, p_off = _spec_parts(spec)
    if (not _step_arrays_fit(X, ZA, dims) or Y.shape[0] != dims[dims.shape[0] - 1] or Y.shape[1] != X.shape[1]
            or params.shape[0] != p_off[dims.shape[0] - 1]):
        return 3
    n_layers = dims.shape[0] - 1
    m = X.shape[1]
    zero = params.dtype.type(0)
    one = params.dtype.type(1)
    Y_flat = _flat(Y)
    for t in range(Y_flat.shape[0]):
        y = Y_flat[t]
        if not _finite(y):
            return 1
        if (loss == LOSS_BCE or loss == LOSS_CE) and (y < zero or y > one):
            return 1
    slope = params.dtype.type(slope)
    S = ZA.shape[0] // 2
    flat = _flat(ZA)
    X_flat = _flat(X)
    n_params = params.shape[0]
    widest = 0
    for l in range(1, n_layers + 1):
        widest = max(widest, dims[l])
    half = m * widest  # the input layer needs no delta
    tail = out.shape[0] - 2 * half - 2
    grad = out[:n_params]
    dA_flat = out[n_params:tail]
    deltas = out[tail:tail + 2 * half]
    scalars = out[tail + 2 * half:]
    top = n_layers - 1
    # offsets of layer l's Z block in ZA (z_l) and of its dA block (d_l), walked down from the top layer
    z_l = m * (S - dims[n_layers])
    d_l = 0
    for l in range(1, n_layers):
        d_l += m * (dims[l - 1] if l > 1 or with_dA0 else dims[1])
    a_base = S * m
    _cost_and_delta(flat, z_l, flat, a_base + z_l, Y_flat, 0, m, dims[n_layers], m, acts[top], loss, slope, deltas, 0)
    for l in range(top, -1, -1):
        n_in = dims[l]
        n_out = dims[l + 1]
        d_off = ((top - l) % 2) * half
        use_blas = m * n_in * n_out >= blas_min_flops
        if l > 0 or with_dA0:
            _backprop_delta(deltas, d_off, n_out, m, params, p_off[l], n_in, dA_flat, d_l, dA_flat, d_l,
                            ACT_LINEAR, slope, dA_flat, d_l, use_blas, scalars)
        else:  # dZ_1 kept instead of dA_0
            _copy_block(deltas, d_off, dA_flat, 0, n_out * m)
        if l > 0:
            z_prev = z_l - m * n_in
            dp_off = half - d_off
            _copy_block(dA_flat, d_l, deltas, dp_off, n_in * m)
            _apply_derivative(deltas, dp_off, flat, z_prev, flat, a_base + z_prev, n_in * m, acts[l - 1], slope)
            _layer_gradients(flat, a_base + z_prev, m, n_in, m, deltas, d_off, n_out, params, p_off[l], zero,
                             grad, use_blas, scalars)
            z_l = z_prev
            d_l -= m * (dims[l - 1] if l > 1 or with_dA0 else dims[1])
        else:
            _layer_gradients(X_flat, 0, m, n_in, m, deltas, d_off, n_out, params, p_off[l], zero, grad, use_blas,
                             scalars)
    # finite parameters and gradients leave only an overflow to make a dA non-finite: no need to scan them
    if not (_all_finite(grad) and _all_finite(params)):
        return 2
    return 0


@jit_step
def _scaled_difference(P, G, lr, out):
    """``out = P - lr * G`` for 1-D arrays of one length (``out`` may be ``P``).

    Returns False, writing nothing, when ``P`` or ``G`` holds a non-finite value (the caller validates).
    """
    for i in range(P.shape[0]):
        if not (_finite(P[i]) and _finite(G[i])):
            return False
    lr = P.dtype.type(lr)
    for i in range(P.shape[0]):
        out[i] = P[i] - lr * G[i]
    return True


@jit_step
def _bce_of_probabilities(AL, Y):
    """``-(1/m) sum(Y log A + (1 - Y) log(1 - A))`` of ``(n, m)`` arrays, ``A`` clipped to ``[tiny, 1 - eps/2]``
    as :func:`fastmlp.reference.compute_cost` does (nothing changes away from 0 and 1); NaN when an input
    is not finite or a value lies outside [0, 1], or an array is empty, not aligned or of another shape (the
    caller then validates)."""
    m = AL.shape[1]
    if AL.size == 0 or AL.shape != Y.shape or AL.ctypes.data % AL.itemsize != 0 or Y.ctypes.data % Y.itemsize != 0:
        return np.nan
    A = _flat(AL)
    Yf = _flat(Y)
    one = AL.dtype.type(1)
    tiny = np.finfo(AL.dtype).tiny
    top = one - np.finfo(AL.dtype).eps / 2
    total = 0.0
    for t in range(A.shape[0]):
        a = A[t]
        y = Yf[t]
        if not (a >= 0 and a <= 1 and y >= 0 and y <= 1):  # also False for NaN
            return np.nan
        a = min(max(a, tiny), top)
        total += y * np.log(a) + (one - y) * np.log1p(-a)
    return -total / m


# --- the same passes on the caller's own arrays (a parameter dict the user made: no copy into one vector) ---
# ``Wb`` is the tuple ``(W1, b1, ..., WL, bL)`` of the caller's arrays, each typed as a C-contiguous 2-D array
# of the parameters' dtype: one compiled version per depth and dtype, built the first time a per-step call
# meets such a dict (never by ``fit``). The caller checks in Python what decides how an array is unboxed
# (exact type ``ndarray``, 2-D, the dtype); everything else about the arrays -- shapes, strides, alignment --
# is checked here, before anything is read (:func:`_arrays_fit`), since the caller can change it in place at
# any time. Read-only arrays are only read (the caller checks the flag before an in-place update).
@jit_inline
def _arrays_fit(Wb, dims):
    """Whether ``Wb`` holds ``W_l`` ``(dims[l+1], dims[l])`` and ``b_l`` ``(dims[l+1], 1)``, l = 1..L, each
    C-contiguous (as its type says) and aligned to its item size."""
    if len(Wb) != 2 * (dims.shape[0] - 1):
        return False
    t = 0
    for a in Wb:  # (iterating costs less than indexing a tuple with a variable)
        rows = dims[t // 2 + 1]
        cols = dims[t // 2] if t % 2 == 0 else 1
        if a.shape[0] != rows or a.shape[1] != cols:
            return False
        size = a.itemsize
        if (cols > 1 and a.strides[1] != size) or (rows > 1 and a.strides[0] != cols * size):
            return False
        if a.ctypes.data % size != 0:
            return False
        t += 1
    return True


@jit_inline
def _arrays_finite(Wb):
    """Whether every value of the 2-D arrays ``Wb`` is finite."""
    for a in Wb:
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                if not _finite(a[i, j]):
                    return False
    return True


@jit_step
def _step_forward_arrays(X, Wb, spec, slope, ZA, scalars, blas_min_flops):
    """:func:`_step_forward` reading the parameters from the arrays ``Wb`` (``(W1, b1, ..., WL, bL)``) as they
    are; the same operations in the same order. Returns 0 when every ``Z`` is finite, 1 when one is not (a
    non-finite input or parameter always makes one so), 2 when an array (of ``Wb``, or ``X`` or ``ZA``) does
    not have the shape of ``spec`` or is not C-contiguous and aligned (nothing read, nothing written)."""
    spec = _borrow(spec)  # (borrowed, as in _step_forward: only this kernel's own arguments, never Wb's arrays)
    dims, acts, p_off = _spec_parts(spec)
    if not (_arrays_fit(Wb, dims) and _step_arrays_fit(X, ZA, dims)):
        return 2
    m = X.shape[1]
    S = ZA.shape[0] // 2
    flat = _flat(ZA)
    one = ZA.dtype.type(1)
    slope = ZA.dtype.type(slope)
    src = _flat(X)
    s_off = np.int64(0)
    z_off = np.int64(0)
    t = 0
    W = Wb[0]
    for a in Wb:  # W1, b1, W2, ...: a layer at each b
        if t % 2 == 0:
            W = a
            t += 1
            continue
        l = t // 2
        t += 1
        n_in = dims[l]
        n_out = dims[l + 1]
        # (the steps of _affine_activation, with W and b in arrays of their own)
        _fill_bias(_flat(a), 0, n_out, m, flat, z_off)
        if m * n_in * n_out >= blas_min_flops:
            _gemm(False, False, n_out, m, n_in, one, _flat(W), 0, n_in, src, s_off, m, one, flat, z_off,
                  m, scalars)
        else:
            _small_product(src, s_off, m, n_in, m, _flat(W), 0, n_out, flat, z_off)
        _activate_block(flat, z_off, flat, S * m + z_off, n_out, m, acts[l], slope)
        src = flat
        s_off = S * m + z_off
        z_off += n_out * m
    for t in range(S * m):
        if not _finite(flat[t]):
            return 1
    return 0


@jit_step
def _step_backward_arrays(X, Y, Wb, spec, slope, loss, ZA, out, with_dA0, blas_min_flops):
    """:func:`_step_backward` reading the parameters from the arrays ``Wb`` (``(W1, b1, ..., WL, bL)``) as they
    are; the same operations in the same order, the same ``out`` layout and status codes, status 3 also when an
    array of ``Wb`` does not have the shape of ``spec`` or is not C-contiguous and aligned (nothing read or
    written)."""
    spec, out = _borrow(spec), _borrow(out)  # (as in _step_forward_arrays)
    dims, acts, p_off = _spec_parts(spec)
    if not (_arrays_fit(Wb, dims) and _step_arrays_fit(X, ZA, dims) and Y.shape[0] == dims[dims.shape[0] - 1]
            and Y.shape[1] == X.shape[1]):
        return 3
    n_layers = dims.shape[0] - 1
    m = X.shape[1]
    zero = ZA.dtype.type(0)
    one = ZA.dtype.type(1)
    Y_flat = _flat(Y)
    for t in range(Y_flat.shape[0]):
        y = Y_flat[t]
        if not _finite(y):
            return 1
        if (loss == LOSS_BCE or loss == LOSS_CE) and (y < zero or y > one):
            return 1
    slope = ZA.dtype.type(slope)
    S = ZA.shape[0] // 2
    flat = _flat(ZA)
    X_flat = _flat(X)
    n_params = p_off[n_layers]
    widest = 0
    for l in range(1, n_layers + 1):
        widest = max(widest, dims[l])
    half = m * widest
    tail = out.shape[0] - 2 * half - 2
    grad = out[:n_params]
    dA_flat = out[n_params:tail]
    deltas = out[tail:tail + 2 * half]
    scalars = out[tail + 2 * half:]
    top = n_layers - 1
    z_l = m * (S - dims[n_layers])
    d_l = 0
    for l in range(1, n_layers):
        d_l += m * (dims[l - 1] if l > 1 or with_dA0 else dims[1])
    a_base = S * m
    no_offset = np.int64(0)
    _cost_and_delta(flat, z_l, flat, a_base + z_l, Y_flat, 0, m, dims[n_layers], m, acts[top], loss, slope, deltas, 0)
    for l in range(top, -1, -1):
        n_in = dims[l]
        n_out = dims[l + 1]
        W = _flat(Wb[2 * l])
        d_off = ((top - l) % 2) * half
        use_blas = m * n_in * n_out >= blas_min_flops
        if l > 0 or with_dA0:
            _backprop_delta(deltas, d_off, n_out, m, W, no_offset, n_in, dA_flat, d_l, dA_flat, d_l, ACT_LINEAR,
                            slope, dA_flat, d_l, use_blas, scalars)
        else:
            _copy_block(deltas, d_off, dA_flat, 0, n_out * m)
        # _layer_gradients adds alpha * params to the weight gradient (alpha = 0 here): it is given the
        # gradient itself, zeroed, for params (0 * W would be 0 too, for the finite W checked below)
        grad[p_off[l]:p_off[l] + n_in * n_out] = zero
        if l > 0:
            z_prev = z_l - m * n_in
            dp_off = half - d_off
            _copy_block(dA_flat, d_l, deltas, dp_off, n_in * m)
            _apply_derivative(deltas, dp_off, flat, z_prev, flat, a_base + z_prev, n_in * m, acts[l - 1], slope)
            _layer_gradients(flat, a_base + z_prev, m, n_in, m, deltas, d_off, n_out, grad, p_off[l], zero,
                             grad, use_blas, scalars)
            z_l = z_prev
            d_l -= m * (dims[l - 1] if l > 1 or with_dA0 else dims[1])
        else:
            _layer_gradients(X_flat, 0, m, n_in, m, deltas, d_off, n_out, grad, p_off[l], zero, grad, use_blas,
                             scalars)
    if not (_all_finite(grad) and _arrays_finite(Wb)):
        return 2
    return 0


@jit_step
def _update_arrays(Wb, spec, G, lr, out):
    """``P - lr * G`` for the parameters ``P`` in the arrays ``Wb`` (``(W1, b1, ..., WL, bL)``) and their
    gradient ``G`` in the flat layout of ``spec``: written into ``out`` (that layout) when it has ``G``'s
    length, else into the arrays themselves, one after the other in that order (as a loop of in-place NumPy
    updates would, should two of them share memory). Returns 0 when done; 1, nothing written, when ``P`` or
    ``G`` holds a non-finite value; 2, nothing read, when an array does not have the shape of ``spec`` or is
    not C-contiguous and aligned."""
    spec, G, out = _borrow(spec), _borrow(G), _borrow(out)  # (only this kernel's own arguments, never Wb's arrays)
    dims, acts, p_off = _spec_parts(spec)
    if not _arrays_fit(Wb, dims) or G.shape[0] != p_off[dims.shape[0] - 1]:
        return 2
    if not (_all_finite(G) and _arrays_finite(Wb)):
        return 1
    lr = G.dtype.type(lr)
    in_place = out.shape[0] != G.shape[0]
    k = 0
    for a in Wb:
        cols = a.shape[1]
        for i in range(a.shape[0]):
            if in_place:
                for j in range(cols):
                    a[i, j] = a[i, j] - lr * G[k + j]
            else:
                for j in range(cols):
                    out[k + j] = a[i, j] - lr * G[k + j]
            k += cols
    return 0


@jit
def _train_full_batch_recording(X, Y, params, dims, acts, slope, loss, learning_rate, Zbuf, Abuf, deltas, grad,
                                param_offsets, act_offsets, scalars, blas_min_flops, outputs):
    """Full-batch plain gradient descent, one epoch per entry of ``outputs`` ``(epochs, nL, m)``, which is
    written with each epoch's network output before its update (what a course loop records).

    Buffers as for :func:`_train_epochs` with ``batch_size = m``. Returns the epochs completed: fewer than
    requested when an epoch gave a non-finite cost or weights (the caller raises; the parameters are then
    not meaningful).
    """
    m = X.shape[1]
    n_out = Y.shape[0]
    top = dims.shape[0] - 2
    n_epochs = outputs.shape[0]
    zero = params.dtype.type(0)
    lr = params.dtype.type(learning_rate)
    # borrowed as in _train_epochs: only this kernel's own arguments (see _borrow)
    X_flat, Y_flat, out = _borrow(X.reshape(X.size)), _borrow(Y.reshape(Y.size)), _borrow(outputs.reshape(outputs.size))
    params, grad, Zbuf, Abuf, deltas = _borrow(params), _borrow(grad), _borrow(Zbuf), _borrow(Abuf), _borrow(deltas)
    p_off, a_off, scalars = _borrow(param_offsets), _borrow(act_offsets), _borrow(scalars)
    dims, acts = _borrow(dims), _borrow(acts)
    no_state = grad[:0]  # plain SGD keeps no optimiser state
    base = a_off[top]
    size = n_out * m
    for e in range(n_epochs):
        cost, _ = _batch_step(X_flat, Y_flat, 0, m, m, params, grad, p_off, a_off, Zbuf, Abuf, deltas, dims, acts,
                              slope, loss, zero, OPT_SGD, lr, lr, zero, zero, zero, zero, no_state, no_state, scalars,
                              blas_min_flops, -1.0)
        for t in range(size):
            out[e * size + t] = Abuf[base + t]
        if not (_finite(cost) and _all_finite(params)):
            return e
    return outputs.shape[0]
