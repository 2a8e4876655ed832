"""fastmlp._elementary: the vectorised exponential of the softmax within 1 unit in the last place of the exact one
over its whole domain (normal and subnormal results, the underflow to 0, exactly 1 at 0, NaN, -inf), compiled with
the kernels' fast-math flags and inside a loop LLVM vectorises; and the softmax paths that use it against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit
from numpy.testing import assert_allclose, assert_array_equal

from fastmlp import _kernels as K
from fastmlp._config import JIT_OPTIONS
from fastmlp._elementary import exp_nonpositive

DTYPES = (np.float32, np.float64)


def _exact_exp(x):
    """The exponential rounded to ``x``'s dtype: float64's ``np.exp`` (within 1 unit in the last place of the exact
    value in float64; NumPy's float32 ``exp`` is up to about 2.4 units off, differently on different CPUs)."""
    with np.errstate(under="ignore"):
        return np.exp(x.astype(np.float64)).astype(x.dtype)


@njit(**JIT_OPTIONS)
def _exp_loop(x, out):
    """A plain loop of exp_nonpositive, as the softmax kernels run it (vectorised; the kernels' flags)."""
    for i in range(np.uint64(x.shape[0])):
        out[i] = exp_nonpositive(x[i])


def _edges(dtype):
    """Arguments where an exponential goes wrong first: around 0, the reduction's boundaries, the smallest normal
    and subnormal results and the underflow to 0."""
    info = np.finfo(dtype)
    lowest_normal = float(np.log(info.tiny))  # about -708.4 / -87.3
    lowest = float(np.log(info.smallest_subnormal))  # about -744.4 / -103.3
    points = [0.0, -0.0, -info.smallest_subnormal, -info.tiny, -info.eps, -0.5 * np.log(2), -np.log(2),
              -1.5 * np.log(2), lowest_normal, lowest_normal - 0.5, lowest, lowest - 0.3, lowest - 0.7, lowest - 2,
              -1100.0, -1e30, -np.inf, -float(info.max)]
    with np.errstate(over="ignore"):
        around = [np.nextafter(dtype(p), dtype(s)) for p in points for s in (-np.inf, 0) if np.isfinite(p)]
    return np.array(points + around, dtype)


def _ulps(got, want):
    """|got - want| in units of the last place of ``want`` (of the smallest subnormal below the normal range)."""
    dtype = want.dtype.type
    unit = np.maximum(np.spacing(np.abs(want)), np.finfo(dtype).smallest_subnormal)
    return np.abs(got.astype(np.float64) - want.astype(np.float64)) / unit.astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_nonpositive_is_within_its_bound_of_numpy(dtype):
    rng = np.random.default_rng(7)
    x = np.concatenate([-rng.exponential(3.0, 20000), -rng.uniform(0, 800, 20000), -np.logspace(-30, 3, 5000),
                        _edges(dtype)]).astype(dtype)
    out = np.full_like(x, -7)
    _exp_loop(x, out)
    want = _exact_exp(x)
    assert out.dtype == dtype  # float32 stays float32
    assert _ulps(out, want).max() <= 1.0
    assert_array_equal(out == 0, want == 0)  # zero exactly where the exponential rounds to zero
    assert_array_equal(out[x == 0], 1)
    assert np.all(out >= 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_nonpositive_keeps_nan_and_takes_positive_as_zero(dtype):
    x = np.array([np.nan, -1.0, np.nan, 0.5, np.inf, -np.inf], dtype)
    out = np.empty_like(x)
    _exp_loop(x, out)
    assert np.isnan(out[0]) and np.isnan(out[2])
    assert_allclose(out[1], np.exp(dtype(-1)), rtol=2 * np.finfo(dtype).eps)
    assert_array_equal(out[3:], [1, 1, 0])  # outside the domain: positive x as 0 (documented), -inf to 0


@given(x=st.floats(max_value=0.0, allow_nan=False, allow_infinity=True), f32=st.booleans())
def test_exp_nonpositive_matches_numpy_anywhere_in_its_domain(x, f32):
    dtype = np.float32 if f32 else np.float64
    with np.errstate(over="ignore"):
        arg = np.array([x], dtype)
    out = np.empty_like(arg)
    _exp_loop(arg, out)
    assert _ulps(out, _exact_exp(arg))[0] <= 1.0


@njit(**JIT_OPTIONS)
def _softmax_both_ways(Z, n, n_b, A_along, A_sample, scratch):
    """The softmax along the samples (the training kernels', with a row of scratch) and a sample at a time
    (without one: the per-step and general paths')."""
    K._softmax_along_samples(Z, 0, A_along, 0, n, n_b, scratch, 2)
    K._activate_block(Z, 0, A_sample, 0, n, n_b, K.ACT_SOFTMAX, Z.dtype.type(0))


@given(n=st.integers(1, 12), n_b=st.integers(1, 70), scale=st.sampled_from([0.1, 3.0, 40.0, 400.0]),
       f32=st.booleans(), seed=st.integers(0, 2**16))
def test_softmax_paths_agree_with_each_other_and_with_numpy(n, n_b, scale, f32, seed):
    dtype = np.float32 if f32 else np.float64
    Z = (np.random.default_rng(seed).standard_normal((n, n_b)) * scale).astype(dtype)
    along, sample = np.empty_like(Z), np.empty_like(Z)
    _softmax_both_ways(Z.ravel(), n, n_b, along.ravel(), sample.ravel(), np.zeros(2 + n_b, dtype))
    eps = np.finfo(dtype).eps  # the same formula (LLVM may sum a sample's rows in another order)
    assert_allclose(along, sample, rtol=8 * eps, atol=np.finfo(dtype).tiny * 4)
    e = np.exp(Z.astype(np.float64) - Z.astype(np.float64).max(axis=0))
    want = e / e.sum(axis=0)
    rtol = 1e-5 if f32 else 1e-12
    tiny = np.finfo(dtype).tiny  # below it, flush-to-zero and subnormal rounding may differ
    assert_allclose(along, want, rtol=rtol, atol=tiny * 4)
    assert along.dtype == dtype
