"""fastmlp._small_products: the transposed copy against NumPy, the crossover rule, and training through the
transposed weight-gradient product (layers of 16 outputs and more) against the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from references.sklearn_step import np_train
from tolerances import DTYPES, tol, train_tol

from fastmlp import _engine as E
from fastmlp import _small_products as SP


@given(rows=st.integers(1, 40), cols=st.integers(1, 40), pad=st.integers(0, 5), s_off=st.integers(0, 7),
       d_off=st.integers(0, 7), f32=st.booleans())
def test_transpose_block_is_numpys_transpose(rows, cols, pad, s_off, d_off, f32):
    dtype = np.float32 if f32 else np.float64
    ld = cols + pad
    rng = np.random.RandomState(rows * 41 + cols)
    src = rng.randn(s_off + rows * ld).astype(dtype)
    src0 = src.copy()
    dst = np.full(d_off + rows * cols + 3, -7.0, dtype)
    SP.transpose_block(src, np.int64(s_off), np.int64(ld), np.int64(rows), np.int64(cols), dst, np.int64(d_off))
    block = src[s_off:s_off + rows * ld].reshape(rows, ld)[:, :cols]
    assert dst.dtype == dtype
    assert_array_equal(dst[d_off:d_off + rows * cols].reshape(cols, rows), block.T)
    assert_array_equal(dst[:d_off], -7.0)  # nothing written outside the block
    assert_array_equal(dst[d_off + rows * cols:], -7.0)
    assert_array_equal(src, src0)


def test_transpose_pays_only_between_the_measured_bounds():
    assert SP.transpose_pays(SP.MIN_ROWS, 64, 32)
    assert not SP.transpose_pays(SP.MIN_ROWS - 1, 64, 32)
    assert not SP.transpose_pays(1, 32, 32)
    assert SP.transpose_pays(128, SP.MAX_COPIED // 32, 32)
    assert not SP.transpose_pays(128, SP.MAX_COPIED // 32 + 1, 32)
    assert not SP.transpose_pays(512, 784, 256)


def _net(dims, acts, dtype, seed=0):
    rng = np.random.RandomState(seed)
    net = E.Network(dims, acts, dtype)
    for l in range(len(dims) - 1):
        net.coefs[l][:] = rng.randn(dims[l], dims[l + 1]) * 0.8 / np.sqrt(dims[l])
        net.intercepts[l][:] = rng.randn(dims[l + 1]) * 0.3
    return net


def _data(dims, m, dtype, seed=1):
    rng = np.random.RandomState(seed)
    X = rng.randn(m, dims[0]).astype(dtype)
    Y = np.eye(dims[-1])[rng.randint(0, dims[-1], m)].astype(dtype)
    return X, Y


#: which layers take the transposed product (16+ outputs, n_in * batch <= MAX_COPIED, room in the scratch):
#: [5, 20, 17, 3] batch 5: layers 0 and 1 do, 2 not (3 outputs); [60, 16, 2] batch 4: layer 0 has 16 outputs
#: but the Z workspace (4 * 18 values) is too small for its 60 x 4 copy; [300, 16, 2] batch 30: 9000 values
#: copied would exceed MAX_COPIED. Output layers of fewer than 16 rows and more than NT_CHUNK_VALUES values run
#: the "nt" product in column chunks: [40, 131, 9] in two (66 and 65 columns), [7, 250, 10] in three (84, 84, 82)
NETS = [([5, 20, 17, 3], 5, 13), ([60, 16, 2], 4, 10), ([300, 16, 2], 30, 37), ([40, 131, 9], 8, 21),
        ([7, 250, 10], 6, 15)]


def test_nt_columns_chunks_only_narrow_outputs():
    assert SP.nt_columns(10, 128) == 64  # digits' output layer: two calls
    assert SP.nt_columns(9, 131) == 66 and SP.nt_columns(10, 250) == 84
    assert SP.nt_columns(1, 32) == 32 and SP.nt_columns(8, SP.NT_CHUNK_VALUES // 8) == SP.NT_CHUNK_VALUES // 8
    assert SP.nt_columns(SP.MIN_ROWS, 784) == 784  # wide layers: one product
    assert SP.nt_columns(1, 5000) * 1 <= SP.NT_CHUNK_VALUES


@pytest.mark.parametrize("dims, batch, m", NETS)
@pytest.mark.parametrize("kind, alpha", [("sgd", 0.05), ("momentum", 0.0), ("nesterov", 0.05), ("adam", 0.05)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_training_through_the_transposed_product_matches_numpy(dims, batch, m, kind, alpha, dtype):
    acts = ["relu"] * (len(dims) - 2) + ["softmax"]
    net = _net(dims, acts, dtype)
    X, Y = _data(dims, m, dtype)
    order = np.stack([np.random.RandomState(e).permutation(m) for e in range(2)])
    # Adam moves a weight by about lr * g / (|g| + epsilon): where a gradient nearly cancels over the batch (a
    # float32 sum of 30 products of both signs, whose rounding depends on the order BLAS's kernel for this CPU
    # adds in), a tiny epsilon turns that rounding into a change of lr * rounding / |g|. [300, 16, 2] with
    # epsilon 1e-7 reached 0.68 of the float32 tolerance under OpenBLAS's Haswell kernels and 1.09 under its
    # SkylakeX ones (as on users' machines); with 1e-5, 0.07 under either. float64 keeps 1e-7.
    epsilon = 1e-7 if dtype == np.float64 else 1e-5
    opt = E.Optimizer(net, kind, momentum=0.8, beta_1=0.85, beta_2=0.99, epsilon=epsilon)
    coefs, intercepts, costs, _, _ = np_train(
        [c.astype(np.float64) for c in net.coefs], [b.astype(np.float64) for b in net.intercepts], acts,
        X.astype(np.float64), Y.astype(np.float64), "ce", learning_rate=0.05, epochs=2, batch_size=batch,
        alpha=alpha, kind=kind, momentum=0.8, beta_1=0.85, beta_2=0.99, epsilon=epsilon, order=order)
    result = E.train_epochs(net, np.ascontiguousarray(X.T), np.ascontiguousarray(Y.T), "ce", learning_rate=0.05,
                            epochs=2, batch_size=batch, alpha=alpha, optimizer=opt, order=order, blas_min_flops=0)
    kw = tol(dtype) if dtype == np.float64 else train_tol(dtype)
    for l in range(len(dims) - 1):
        assert net.coefs[l].dtype == dtype
        assert_allclose(net.coefs[l], coefs[l], err_msg=f"coef {l}", **kw)
        assert_allclose(net.intercepts[l], intercepts[l], err_msg=f"intercept {l}", **kw)
    assert_allclose(result.mean_batch_cost, costs, **kw)
    assert not np.allclose(net.coefs[0], _net(dims, acts, dtype).coefs[0], rtol=1e-6, atol=0)  # it moved
