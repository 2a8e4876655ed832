"""How the small minibatch products are handed to BLAS: the weight-gradient product through a transposed copy.

Private. A layer's three products per minibatch (samples as columns, ``A_prev`` ``(n_in, b)``, ``dZ``
``(n_out, b)``, ``W`` ``(n_out, n_in)``, all row-major) are ``Z = W @ A_prev``, ``dA = W.T @ dZ`` and the
weight gradient ``g_W = dZ @ A_prev.T``. Measured one product at a time against SciPy's OpenBLAS on the
machine this was written on (AVX-512; ``OPENBLAS_CORETYPE`` unset; CPU time, one thread):

- ``W @ A_prev`` runs at the machine's peak for every minibatch shape tried (110-115 GFLOP/s in float64 for
  (128, 64) @ (64, 32) and (10, 128) @ (128, 32)); register-blocked loops compiled by Numba reached less
  than half of that, so the forward product stays with BLAS.
- ``dZ @ A_prev.T`` is a product of two matrices whose rows are contiguous along the batch: BLAS then takes
  its dot-product ("nt") kernels, which for small shapes run at 35-65 GFLOP/s in float64 (8.1 us for
  (128, 32) @ (32, 64)). Copying ``A_prev.T`` into a ``(b, n_in)`` scratch block first turns it into the
  "nn" form: 5.4 us including the copy in float64 (3.6 -> 3.0 us in float32); (64, 30) and (32, 64) layers
  gain as much. A single output row (``n_out = 1``) loses (0.09 -> 0.33 us: the copy outweighs a 32-term
  product), and wide layers (784 x 256 per batch) gain nothing, so the copy is made only where
  :func:`transpose_pays` says so.
- Where no copy is made (fewer than ``MIN_ROWS`` output rows), the "nt" product runs in chunks of columns of
  at most :data:`NT_CHUNK_VALUES` outputs each (:func:`nt_columns`): OpenBLAS's small-matrix kernels take
  an "nt" product only while its output is that small, and otherwise pack the operands. Digits' output
  layer, ``(10, 32) @ (32, 128)``: 2.27 -> 1.23 us in float64, 1.72 -> 0.83 us in float32; ``(10, 256) @
  (256, 512)`` 60 -> 29 us. With ``OPENBLAS_CORETYPE=Haswell`` (no small-matrix kernels) the chunks cost
  -5% to +10%.

``scripts/bench_small_products.py`` repeats these measurements for any shapes.
"""

from __future__ import annotations

import contextlib

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmlp._config import JIT_OPTIONS

jit_inline = njit(inline="always", **JIT_OPTIONS)
_U = np.uint64

#: the copy pays from this many output rows up (measured: 1 loses, 10 breaks even, 32 and more gain)
MIN_ROWS = 16
#: ... and up to this many copied values (``n_in * b``); (128, 64) @ (64, 32)-sized products gain, (512, 256) @
#: (256, 784) ones do not
MAX_COPIED = 8192


@jit_inline
def transpose_pays(n_out, n_in, n_b):
    """Whether ``dZ @ A_prev.T`` of an ``(n_out, n_b)`` ``dZ`` and an ``(n_in, n_b)`` ``A_prev`` is faster as a
    transposed copy of ``A_prev`` followed by a plain ("nn") BLAS product."""
    return n_out >= MIN_ROWS and n_in * n_b <= MAX_COPIED


#: the "nt" weight-gradient product is split into column chunks of at most this many outputs (measured: OpenBLAS
#: takes up to about 1200 into its small-matrix kernels)
NT_CHUNK_VALUES = 1024


@jit_inline
def nt_columns(n_out, n_in):
    """Columns per call of the "nt" product ``dZ @ A_prev.T`` with an ``(n_out, n_in)`` output: for fewer than
    :data:`MIN_ROWS` outputs, equal chunks of at most :data:`NT_CHUNK_VALUES` values; all ``n_in`` columns
    when one chunk does, or for more rows (wide layers, where the chunks would be a few columns each)."""
    if n_out >= MIN_ROWS:
        return n_in
    chunks = max(1, (n_out * n_in + NT_CHUNK_VALUES - 1) // NT_CHUNK_VALUES)
    return max(1, (n_in + chunks - 1) // chunks)


@jit_inline
def transpose_block(src, s_off, s_ld, rows, cols, dst, d_off):
    """``dst[d_off:]`` = the packed ``(cols, rows)`` transpose of the ``(rows, cols)`` block at ``src[s_off:]``
    whose rows lie ``s_ld`` apart.

    Eight source rows at a time: each destination row then receives eight consecutive values per pass, and
    the eight source rows stay in cache. (Row by row, every store lands ``rows`` values from the previous one:
    transposing a (128, 64) float64 block that way took 21 us, against 1.4 us in tiles of eight rows; a
    (64, 32) block of rows 1797 apart, 0.58 against 0.37 us.)
    """
    s_off, s_ld, rows, cols, d_off = _U(s_off), _U(s_ld), _U(rows), _U(cols), _U(d_off)
    tile = _U(8)
    k0 = _U(0)
    while k0 + tile <= rows:
        for i in range(cols):
            for k in range(k0, k0 + tile):
                dst[d_off + i * rows + k] = src[s_off + k * s_ld + i]
        k0 += tile
    for k in range(k0, rows):
        sk = s_off + k * s_ld
        for i in range(cols):
            dst[d_off + i * rows + k] = src[sk + i]


# --- register-blocked products written as LLVM vector code ---------------------------------------------------------
#: what a product does with its tile of results (``acc = sum_k A[m, k] B[k, n]``, from zero or from the bias):
#: ``C = alpha acc``; ``C = beta C + alpha acc``; ``C = bias + acc``; the same and ``E = relu(C)``;
#: ``C = acc where E > 0, else 0`` (``E`` the pre-activations of the layer below: relu's derivative)
STORE, UPDATE, BIAS, BIAS_RELU, RELU_MASK = range(5)
#: columns per tile (four float64 or two float32 512-bit vectors), and rows per tile (the remainder row by row)
TILE_COLUMNS = 32
TILE_ROWS = {8: 4, 4: 8}


def _splat(builder, vec_type, value):
    """``value`` in every lane of a vector of ``vec_type``."""
    lanes = vec_type.count
    one = builder.insert_element(ir.Constant(vec_type, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vec_type, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))


@contextlib.contextmanager
def _counted_loop(builder, count):
    """``for index in range(count)`` in LLVM IR (``count`` an i64), yielding ``index``, with LLVM's unrolling switched
    off: the body is already a block of vector code, and unrolling it four times (LLVM's choice) quadrupled the code
    to optimise at every call site for no measured gain."""
    i64 = ir.IntType(64)
    cond = builder.append_basic_block("tile.cond")
    body = builder.append_basic_block("tile.body")
    end = builder.append_basic_block("tile.end")
    start = builder.basic_block
    builder.branch(cond)
    with builder.goto_block(cond):
        index = builder.phi(i64)
        builder.cbranch(builder.icmp_signed("<", index, count), body, end)
    with builder.goto_block(body):
        yield index
        step = builder.add(index, ir.Constant(i64, 1))
        back = builder.branch(cond)
        module = builder.module
        disable = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])
        loop_id = ir.MDValue(module, [], name=str(len(module.metadata)))  # a loop ID refers to itself
        loop_id.operands = (loop_id, disable)
        back.set_metadata("llvm.loop", loop_id)
        index.add_incoming(step, builder.basic_block)
    index.add_incoming(ir.Constant(i64, 0), start)
    builder.position_at_end(end)


def _product_codegen(context, builder, sig, args):
    """LLVM code for :data:`tile_product` (see there): a call of one shared function per dtype.

    The function (``linkonce_odr``, never inlined) is defined once in each LLVM module that calls it, and the
    copies merge when Numba links a kernel's modules: every site shares one copy of the code to optimise (inlined
    at each of its three sites, the products added 2-3 s of compilation to a first fit).
    """
    mode_type, tys = sig.args[0], sig.args[1:]
    dtype = tys[0].dtype
    values = [context.cast(builder, args[0], mode_type, types.int64)]
    for index, ty in enumerate(tys):
        arg = args[index + 1]
        if isinstance(ty, types.Array):
            values.append(context.make_array(ty)(context, builder, arg).data)
        elif index in (13, 14):  # alpha, beta
            values.append(context.cast(builder, arg, ty, dtype))
        else:
            values.append(context.cast(builder, arg, ty, types.int64))
    name = f"fastmlp_tile_product_{dtype}"
    module = builder.module
    function = module.globals.get(name)
    if function is None:
        function = ir.Function(module, ir.FunctionType(ir.VoidType(), [v.type for v in values]), name)
        function.linkage = "linkonce_odr"
        function.attributes.add("noinline")
        body = ir.IRBuilder(function.append_basic_block("entry"))
        _product_body(context, body, dtype, function.args)
        body.ret_void()
    builder.call(function, values)
    return context.get_dummy_value()


def _product_body(context, builder, dtype, values):
    """The body of the shared tile-product function: ``values`` are its arguments (pointers, i64, scalars)."""
    mode_value = values[0]
    i32, i64 = ir.IntType(32), ir.IntType(64)
    size = context.get_abi_sizeof(context.get_data_type(dtype))
    elem = context.get_value_type(dtype)
    lanes = 64 // size
    n_vec = TILE_COLUMNS // lanes
    vec = ir.VectorType(elem, lanes)
    vptr = vec.as_pointer()
    mvec = ir.VectorType(ir.IntType(1), lanes)
    suffix = f"v{lanes}f{8 * size}"
    module = builder.module
    masked_load = cgutils.get_or_insert_function(module, ir.FunctionType(vec, [vptr, i32, mvec, vec]),
                                                 f"llvm.masked.load.{suffix}.p0")
    masked_store = cgutils.get_or_insert_function(module, ir.FunctionType(ir.VoidType(), [vec, vptr, i32, mvec]),
                                                  f"llvm.masked.store.{suffix}.p0")
    fma = cgutils.get_or_insert_function(module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.fma.{suffix}")
    align = ir.Constant(i32, size)

    (C, c_off, ldc, A, a_off, a_rs, a_cs, B, b_off, ldb, M, N, K, alpha, beta, E, e_off, e_ld, bias,
     bias_off) = values[1:]
    zero = ir.Constant(vec, [ir.Constant(elem, 0.0)] * lanes)
    alpha_v, beta_v = _splat(builder, vec, alpha), _splat(builder, vec, beta)

    def mode_is(*modes):
        hit = ir.Constant(ir.IntType(1), 0)
        for mode in modes:
            hit = builder.or_(hit, builder.icmp_signed("==", mode_value, ir.Constant(i64, mode)))
        return hit

    # BIAS and BIAS_RELU: alpha 1 and beta 0 (C is not read), so that the sum is exactly acc + bias
    has_bias = mode_is(BIAS, BIAS_RELU)
    alpha = builder.select(has_bias, ir.Constant(elem, 1.0), alpha)
    alpha_v = _splat(builder, vec, alpha)
    is_update = _splat(builder, mvec, mode_is(UPDATE))
    is_relu_mask = _splat(builder, mvec, mode_is(RELU_MASK))
    is_relu_mask_v = is_relu_mask
    is_bias_relu = _splat(builder, mvec, mode_is(BIAS_RELU))
    lane_ids = ir.Constant(ir.VectorType(i64, lanes), list(range(lanes)))

    def at(ptr, offset):
        return builder.bitcast(builder.gep(ptr, [offset]), vptr)

    def tile(rows, m0, n0, slots):
        # the lanes that hold columns n0 + v * lanes + lane < N
        remaining = builder.sub(N, n0)
        masks = [builder.icmp_signed("<", builder.add(lane_ids, ir.Constant(ir.VectorType(i64, lanes),
                                                                          [v * lanes] * lanes)),
                                     _splat(builder, ir.VectorType(i64, lanes), remaining)) for v in range(n_vec)]
        for r in range(rows):
            for v in range(n_vec):
                builder.store(zero, slots[r][v])
        with _counted_loop(builder, K) as k:
            b_row = builder.add(builder.add(b_off, builder.mul(k, ldb)), n0)
            b_vecs = [builder.call(masked_load, [at(B, builder.add(b_row, ir.Constant(i64, v * lanes))), align,
                                                 masks[v], zero]) for v in range(n_vec)]
            a_col = builder.add(a_off, builder.mul(k, a_cs))
            for r in range(rows):
                m = builder.add(m0, ir.Constant(i64, r))
                a = _splat(builder, vec, builder.load(builder.gep(A, [builder.add(a_col, builder.mul(m, a_rs))])))
                for v in range(n_vec):
                    builder.store(builder.call(fma, [a, b_vecs[v], builder.load(slots[r][v])]), slots[r][v])
        # every mode through one code path: each load and store is masked by its columns and by whether the mode
        # makes it (a store or load of no lanes does nothing), so a run-time mode costs no branch and no copy
        update_masks = [builder.and_(mask, is_update) for mask in masks]
        below_masks = [builder.and_(mask, is_relu_mask) for mask in masks]
        relu_masks = [builder.and_(mask, is_bias_relu) for mask in masks]
        for r in range(rows):
            m = builder.add(m0, ir.Constant(i64, r))
            c_row = builder.add(builder.add(c_off, builder.mul(m, ldc)), n0)
            e_row = builder.add(builder.add(e_off, builder.mul(m, e_ld)), n0)
            # the bias is added after the sum, as BLAS adds C to its product (read in every mode: the caller passes
            # a valid element when there is none)
            row_bias = builder.load(builder.gep(bias, [builder.add(bias_off, m)]))
            row_bias = _splat(builder, vec, builder.select(has_bias, row_bias, ir.Constant(elem, 0.0)))
            for v in range(n_vec):
                acc = builder.load(slots[r][v])
                c_ptr = at(C, builder.add(c_row, ir.Constant(i64, v * lanes)))
                e_ptr = at(E, builder.add(e_row, ir.Constant(i64, v * lanes)))
                old = builder.call(masked_load, [c_ptr, align, update_masks[v], zero])
                below = builder.call(masked_load, [e_ptr, align, below_masks[v], zero])
                out = builder.fadd(builder.fadd(builder.fmul(alpha_v, acc), builder.fmul(beta_v, old)), row_bias)
                dropped = builder.and_(is_relu_mask_v, builder.fcmp_unordered("<=", below, zero))
                out = builder.select(dropped, zero, out)
                builder.call(masked_store, [out, c_ptr, align, masks[v]])
                relu = builder.select(builder.fcmp_ordered(">", out, zero), out, zero)
                builder.call(masked_store, [relu, e_ptr, align, relu_masks[v]])

    rows_main = TILE_ROWS[size]
    # row blocks of rows_main, then of two rows, then the last row (10 rows of float32: 8 + 2; 30: 3 x 8 + 3 x 2)
    sizes = (rows_main, 2, 1)
    slots = {rows: [[cgutils.alloca_once(builder, vec) for _ in range(n_vec)] for _ in range(rows)] for rows in sizes}
    n_tiles = builder.udiv(builder.add(N, ir.Constant(i64, TILE_COLUMNS - 1)), ir.Constant(i64, TILE_COLUMNS))
    done = ir.Constant(i64, 0)
    for rows in sizes:
        blocks = builder.udiv(builder.sub(M, done), ir.Constant(i64, rows))
        first = done
        with _counted_loop(builder, blocks) as block:
            m0 = builder.add(first, builder.mul(block, ir.Constant(i64, rows)))
            with cgutils.for_range(builder, n_tiles) as tile_loop:
                tile(rows, m0, builder.mul(tile_loop.index, ir.Constant(i64, TILE_COLUMNS)), slots[rows])
        done = builder.add(first, builder.mul(blocks, ir.Constant(i64, rows)))
    return None


@intrinsic
def tile_product(typingctx, mode, C, c_off, ldc, A, a_off, a_rs, a_cs, B, b_off, ldb, M, N, K, alpha, beta, E, e_off,
                 e_ld, bias, bias_off):
    """``C[m, n]`` for ``m < M``, ``n < N`` (the block at ``c_off``, rows ``ldc`` apart) from
    ``acc = sum_k A[m, k] B[k, n]`` as ``mode`` says (:data:`STORE` ...; an integer, read at run time), with
    ``A[m, k]`` at ``A[a_off + m a_rs + k a_cs]`` and the ``(K, N)`` block of ``B`` at ``b_off`` (rows ``ldb``
    apart); ``E`` (rows ``e_ld`` apart) is read or written only by the modes that name it; ``bias[bias_off + m]``
    is read in every mode (pass any valid element). Every array is 1-D of one dtype; offsets and sizes integers.

    Register-blocked LLVM vector code: tiles of :data:`TILE_ROWS` rows by :data:`TILE_COLUMNS` columns (the last
    rows in smaller blocks, the last columns through masked loads and stores) whose sums stay in 512-bit
    registers over the whole of ``k``, summed in the order of ``k`` with fused multiply-adds, as OpenBLAS's
    small-matrix kernels sum them.
    """
    arrays = (C, A, B, E, bias)
    if not all(isinstance(a, types.Array) and a.ndim == 1 and a.dtype == C.dtype for a in arrays):
        return None
    if C.dtype not in (types.float64, types.float32):
        return None
    sig = types.void(mode, C, c_off, ldc, A, a_off, a_rs, a_cs, B, b_off, ldb, M, N, K, alpha, beta, E, e_off, e_ld,
                     bias, bias_off)
    return sig, _product_codegen


#: products of up to this many multiply-adds run as tile products; larger ones call BLAS (see :func:`tile_pays`)
TILE_MAX_MACS = 1 << 16


@jit_inline
def tile_pays(M, N, K):
    """Whether an ``(M, K) @ (K, N)`` product runs as a tile product rather than through BLAS: at most
    :data:`TILE_MAX_MACS` multiply-adds, ``M`` a multiple of 8 or 1, and ``K`` at least 16 unless the product is
    tiny (at most 4096 multiply-adds: W3-cancer's delta through its one output, (32, 1) @ (1, 32), saves a BLAS
    call and a pass of relu's derivative).

    Measured against OpenBLAS's small-matrix kernels (SkylakeX, one thread), one product at a time: (64, 30) @
    (30, 32) 1.1 against 1.3 us in float64 and 0.57 against 0.72 us in float32, (32, 64) @ (64, 32) 1.19 against
    1.29 and 0.60 against 0.71 us, (1, 32) @ (32, 32) 0.045 against 0.067 us; and a W3-cancer epoch (every
    product of 64 x 32 x 32 multiply-adds or fewer) 1-9% faster. Larger products also won alone ((128, 64) @ (64,
    32) 4.7 against 5.1 us) but made a digits (S2) epoch 2-8% slower inside training, where OpenBLAS packs the
    strided batch once and its products run near the machine's peak; 10 or 30 rows (the last rows in blocks too
    small to keep the multiply-add units busy) and sums of fewer than 16 terms (the tile's set-up and stores
    outweigh them: digits' delta, (128, 10) @ (10, 32), 6% of an epoch) lost alone.
    """
    macs = M * N * K
    return macs <= TILE_MAX_MACS and (M % 8 == 0 or M == 1) and (K >= 16 or macs <= 4096)


# --- with NUMBA_DISABLE_JIT=1 (debugging, coverage) the LLVM products have no Python form: NumPy does the same
if numba.config.DISABLE_JIT:
    def _block(buf, off, rows, cols, row_step, col_step=1):
        """The ``(rows, cols)`` block of ``buf`` at ``off`` with the given element steps, as a (writable) view."""
        size = buf.itemsize
        return np.lib.stride_tricks.as_strided(buf[int(off):], shape=(int(rows), int(cols)),
                                               strides=(int(row_step) * size, int(col_step) * size))

    def tile_product(mode, C, c_off, ldc, A, a_off, a_rs, a_cs, B, b_off, ldb, M, N, K, alpha, beta, E, e_off,  # noqa: F811
                     e_ld, bias, bias_off):
        """:func:`tile_product` with NumPy (the same results up to rounding)."""
        if M <= 0 or N <= 0:
            return
        acc = np.zeros((int(M), int(N)), C.dtype)
        if K > 0:
            acc += _block(A, a_off, M, K, a_rs, a_cs) @ _block(B, b_off, K, N, ldb)
        out = _block(C, c_off, M, N, ldc)
        zero = C.dtype.type(0)
        if mode == STORE:
            out[...] = C.dtype.type(alpha) * acc
        elif mode == UPDATE:
            out[...] = C.dtype.type(beta) * out + C.dtype.type(alpha) * acc
        elif mode == RELU_MASK:
            out[...] = np.where(_block(E, e_off, M, N, e_ld) > zero, acc, zero)
        else:
            out[...] = acc + bias[int(bias_off):int(bias_off) + int(M), None]
            if mode == BIAS_RELU:
                _block(E, e_off, M, N, e_ld)[...] = np.where(out > zero, out, zero)
