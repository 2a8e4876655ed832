"""Time the weight-gradient product ``dZ @ A_prev.T`` of one minibatch both ways fastmlp can run it: BLAS on
the operands as stored (its "nt" form) and a transposed copy of ``A_prev`` followed by a plain ("nn") BLAS
product (``fastmlp._small_products``), plus the forward product ``W @ A_prev`` for scale; interleaved, CPU time
of one thread, best of the repetitions. Run with the OpenBLAS variables unset, as the benchmarks are::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python scripts/bench_small_products.py
    ... --shape 128,64,32 --shape 10,128,32      # n_out,n_in,batch (default: the S1/S2/W3/W4 layers)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit

from fastmlp import _kernels as K
from fastmlp import _small_products as SP
from fastmlp._config import JIT_OPTIONS

_OPTS = dict(JIT_OPTIONS, cache=False)
#: (n_out, n_in, batch): S2 digits (64-128-10), S1 / W3 breast cancer (30-64-32-1), W4 (784-512-256-1)
DEFAULT_SHAPES = [(128, 64, 32), (10, 128, 32), (64, 30, 32), (32, 64, 32), (1, 32, 32), (512, 784, 256),
                  (256, 512, 256)]


@njit(**_OPTS)
def _nt(n_out, n_in, b, dZ, A, G, scalars, reps):
    one = A.dtype.type(1)
    for _ in range(reps):
        K._gemm(False, True, n_out, n_in, b, one, dZ, 0, b, A, 0, b, one - one, G, 0, n_in, scalars)


@njit(**_OPTS)
def _copy_nn(n_out, n_in, b, dZ, A, G, At, scalars, reps):
    one = A.dtype.type(1)
    for _ in range(reps):
        SP.transpose_block(A, 0, b, n_in, b, At, 0)
        K._gemm(False, False, n_out, n_in, b, one, dZ, 0, b, At, 0, n_in, one - one, G, 0, n_in, scalars)


@njit(**_OPTS)
def _forward(n_out, n_in, b, W, A, Z, scalars, reps):
    one = A.dtype.type(1)
    for _ in range(reps):
        K._gemm(False, False, n_out, b, n_in, one, W, 0, n_in, A, 0, b, one - one, Z, 0, b, scalars)


def measure(n_out, n_in, b, dtype, repeats=5, flops=2e8):
    """Best CPU seconds per call of the three products, and whether transpose_pays chooses the copy."""
    rng = np.random.RandomState(0)
    dZ, A, W = (rng.randn(n).astype(dtype) for n in (n_out * b, n_in * b, n_out * n_in))
    G1, G2, Z = np.empty(n_out * n_in, dtype), np.empty(n_out * n_in, dtype), np.empty(n_out * b, dtype)
    At, scalars = np.empty(n_in * b, dtype), np.empty(2, dtype)
    _nt(n_out, n_in, b, dZ, A, G1, scalars, 1)
    _copy_nn(n_out, n_in, b, dZ, A, G2, At, scalars, 1)
    _forward(n_out, n_in, b, W, A, Z, scalars, 1)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(G2, G1, rtol=tol, atol=tol * np.abs(G1).max())
    reps = max(1, int(flops / (2 * n_out * n_in * b)))
    best = [np.inf] * 3
    for _ in range(repeats):
        for i, call in enumerate((lambda: _nt(n_out, n_in, b, dZ, A, G1, scalars, reps),
                                  lambda: _copy_nn(n_out, n_in, b, dZ, A, G2, At, scalars, reps),
                                  lambda: _forward(n_out, n_in, b, W, A, Z, scalars, reps))):
            start = time.process_time()
            call()
            best[i] = min(best[i], (time.process_time() - start) / reps)
    return best, bool(SP.transpose_pays(n_out, n_in, b))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", action="append", default=[], help="n_out,n_in,batch (repeatable)")
    ap.add_argument("--dtype", action="append", choices=["float64", "float32"], default=[])
    args = ap.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shape] or DEFAULT_SHAPES
    print(f"{'dtype':8s} {'n_out x n_in, batch':>22s} {'nt us':>9s} {'copy+nn us':>11s} {'GFLOP/s':>15s} "
          f"{'W@A GFLOP/s':>12s}  chosen")
    for dtype in args.dtype or ["float64", "float32"]:
        for n_out, n_in, b in shapes:
            (nt, copy_nn, fwd), pays = measure(n_out, n_in, b, np.dtype(dtype).type)
            f = 2 * n_out * n_in * b
            print(f"{dtype:8s} {f'{n_out} x {n_in}, {b}':>22s} {nt * 1e6:9.2f} {copy_nn * 1e6:11.2f} "
                  f"{f / nt / 1e9:7.1f} {f / copy_nn / 1e9:7.1f} {f / fwd / 1e9:12.1f}  {'copy+nn' if pays else 'nt'}")


if __name__ == "__main__":
    main()
