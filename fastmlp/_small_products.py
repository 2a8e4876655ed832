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

import numpy as np
from numba import njit

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
