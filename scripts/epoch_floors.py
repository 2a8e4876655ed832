"""The machine's floors for one epoch of a workload (S1, S2; W1-W4: the products alone), below which none can go.

For each dtype, measured here, on one core, with CPU time (run it with ``OPENBLAS_NUM_THREADS=1`` and, as every
benchmark, with ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` unset)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python scripts/epoch_floors.py --workload S2

- **products at peak**: the epoch's matrix products (forward ``W A``, weight gradient ``dZ A^T`` and, below the top
  layer, ``W^T dZ``; their FLOPs counted from the layer sizes and the minibatches) at the rate one core reaches on a
  large square ``gemm`` (NumPy's BLAS, 1024 x 1024 x 1024), the best rate these shapes could hope for;
- **optimiser floor**: a compiled loop doing only the optimiser's memory traffic and its expensive arithmetic (Adam:
  read the gradient, the two moments and the parameters, write the moments and the parameters, one square root and
  one division per parameter; SGD with momentum: the velocity and the parameters), over every parameter, once per
  minibatch -- next to it fastmlp's own optimiser step (``fastmlp._kernels._optimizer_step``, the code the training
  kernel inlines) on the same arrays, the L2 penalty and the sum of squares included;
- **exp/log**: one ``exp`` per output unit and sample and one ``log`` per sample (softmax and its cross-entropy:
  the vectorised ``fastmlp._elementary.exp_nonpositive`` and libm's ``log``, as the kernels call them), in compiled
  loops.

Each figure is the median of ``--repeat`` interleaved timings (the ``gemm`` rate: the best of them), in milliseconds
per epoch; a busy machine lowers the ``gemm`` rate (about 90 GFLOP/s float64 at load 6, against 130 quiet). The
sum is the epoch's floor from these parts; scikit-learn's epoch time divided by the speedup target says how much is
left for the rest (bias, activations and their derivatives, the cost, Python).

For a training workload (``--workload W3``: plain SGD, fused into the gradient product, so no optimiser floor) it
times the epoch's BLAS products alone, called with the shapes, transposes and copies the training kernel uses
(minibatch by minibatch, nothing else), next to the same FLOPs at the large-``gemm`` rate and ``MLP.fit``'s own CPU
time per epoch (the workload's ``fastmlp bench`` runner); the difference is everything but the products.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
from numba import njit

from fastmlp import _kernels as K
from fastmlp import _small_products as SP
from fastmlp import workloads
from fastmlp._config import JIT_OPTIONS
from fastmlp._elementary import exp_nonpositive


def _adam_family_step():
    """The Adam ``_optimizer_step`` as the training kernels compile it (other optimisers' branches pruned)."""
    flags = dict.fromkeys(K._FLAGS, False)
    flags.update(_RELU=True, _SOFTMAX=True, _ADAM=True, _CE=True, _OPT=K.OPT_ADAM, _LOSS=K.LOSS_CE)
    return K._family_copy("_optimizer_step", flags)


def _nesterov_family_step():
    flags = dict.fromkeys(K._FLAGS, False)
    flags.update(_RELU=True, _SOFTMAX=True, _NESTEROV=True, _CE=True, _OPT=K.OPT_NESTEROV, _LOSS=K.LOSS_CE)
    return K._family_copy("_optimizer_step", flags)


_adam_step = _adam_family_step()
_nesterov_step = _nesterov_family_step()


@njit(**JIT_OPTIONS)
def _fastmlp_adam(params, grad, s1, s2, bounds, steps, lr, penalty):
    """``steps`` minibatches of fastmlp's Adam step over the layers ``bounds`` ((lo, hi, penalty_end) rows)."""
    dt = params.dtype.type
    total = 0.0
    for _ in range(steps):
        for layer in range(bounds.shape[0]):
            total += _adam_step(params, grad, bounds[layer, 0], bounds[layer, 1], bounds[layer, 2], penalty,
                                K.OPT_ADAM, lr, lr, dt(0.9), dt(0.9), dt(0.999), dt(1e-8), s1, s2)
    return total


@njit(**JIT_OPTIONS)
def _fastmlp_nesterov(params, grad, s1, s2, bounds, steps, lr, penalty):
    dt = params.dtype.type
    total = 0.0
    for _ in range(steps):
        for layer in range(bounds.shape[0]):
            total += _nesterov_step(params, grad, bounds[layer, 0], bounds[layer, 1], bounds[layer, 2], penalty,
                                    K.OPT_NESTEROV, lr, lr, dt(0.9), dt(0.9), dt(0.999), dt(1e-8), s1, s2)
    return total


@njit(**JIT_OPTIONS)
def _adam_floor(params, grad, s1, s2, steps):
    """Adam's reads, writes, square root and division, nothing else."""
    n = np.uint64(params.shape[0])
    for _ in range(steps):
        for i in range(n):
            g = grad[i]
            a = s1[i] + g
            b = s2[i] + g
            s1[i] = a
            s2[i] = b
            params[i] = params[i] + a / np.sqrt(b)
    return 0.0


@njit(**JIT_OPTIONS)
def _momentum_floor(params, grad, s1, s2, steps):
    """Momentum's reads and writes (gradient, velocity, parameters), nothing else."""
    n = np.uint64(params.shape[0])
    for _ in range(steps):
        for i in range(n):
            v = s1[i] + grad[i]
            s1[i] = v
            params[i] = params[i] + v
    return 0.0


@njit(**JIT_OPTIONS)
def _exp_log(z, out, n_log):
    """``exp`` of every value of ``z`` (all <= 0), ``log`` of its first ``n_log`` (as the kernels call them)."""
    s = z.dtype.type(0)
    for i in range(z.shape[0]):
        out[i] = exp_nonpositive(z[i])
    for i in range(n_log):
        s += np.log(out[i])
    return s


@njit(**JIT_OPTIONS)
def _epoch_products(X, params, dims, p_off, a_off, m, batch, Z, D, T, scalars):
    """The BLAS products of one epoch of a training workload (columns are samples), called as fastmlp's training
    kernel calls them (``_affine_activation``, ``_backprop_delta``, ``_layer_update`` with SGD fused), and nothing
    else: no bias, activation, derivative, cost or update pass."""
    one = X.dtype.type(1)
    zero = one - one
    n_layers = dims.shape[0] - 1
    half = D.shape[0] // 2
    for b0 in range(0, m, batch):
        n_b = batch if batch < m - b0 else m - b0
        for l in range(n_layers):
            n_in, n_out = dims[l], dims[l + 1]
            if l == 0:
                K._gemm(False, False, n_out, n_b, n_in, one, params, p_off[l], n_in, X, b0, m, one, Z, a_off[l],
                        n_b, scalars)
            else:
                K._gemm(False, False, n_out, n_b, n_in, one, params, p_off[l], n_in, Z, a_off[l - 1], n_b, one, Z,
                        a_off[l], n_b, scalars)
        for l in range(n_layers - 1, -1, -1):
            n_in, n_out = dims[l], dims[l + 1]
            d_off = ((n_layers - 1 - l) % 2) * half
            if l > 0:
                K._gemm(True, False, n_in, n_b, n_out, one, params, p_off[l], n_in, D, d_off, n_b, zero, D,
                        half - d_off, n_b, scalars)
            src, s_off, s_ld = (X, b0, m) if l == 0 else (Z, a_off[l - 1], n_b)
            right, r_off, r_ld, r_trans = src, s_off, s_ld, True
            chunk = SP.nt_columns(n_out, n_in)
            if SP.transpose_pays(n_out, n_in, n_b) and T.shape[0] >= n_in * n_b:
                SP.transpose_block(src, s_off, s_ld, n_in, n_b, T, 0)
                right, r_off, r_ld, r_trans = T, 0, n_in, False
                chunk = n_in
            for k0 in range(0, n_in, chunk):
                cols = chunk if chunk < n_in - k0 else n_in - k0
                K._gemm(False, r_trans, n_out, cols, n_b, -one * 1e-9, D, d_off, n_b, right, r_off + k0 * r_ld, r_ld,
                        one, params, p_off[l] + k0, n_in, scalars)


def _cpu(func, repeat_inner):
    t = time.process_time()
    for _ in range(repeat_inner):
        func()
    return (time.process_time() - t) / repeat_inner


def floors(name: str, dtype: str, repeat: int) -> dict:
    w = workloads.get(name)
    dt = np.dtype(dtype)
    dims = [w.n_features, *w.hidden_layer_sizes, 10 if w.data == "digits" else 1]
    m, batch = w.m, w.batch
    n_batches = -(-m // batch)
    macs = sum(dims[l] * dims[l + 1] * (3 if l > 0 else 2) for l in range(len(dims) - 1)) * m
    rng = np.random.default_rng(0)
    # one core's large-gemm rate
    big = rng.standard_normal((1024, 1024)).astype(dt)
    out = np.empty_like(big)
    np.matmul(big, big, out=out)
    # parameters in fastmlp's layout: per layer W (n_out, n_in) then b (n_out,)
    bounds, lo = [], 0
    for l in range(len(dims) - 1):
        n_coef = dims[l] * dims[l + 1]
        bounds.append((lo, lo + n_coef + dims[l + 1], lo + n_coef))
        lo += n_coef + dims[l + 1]
    bounds = np.array(bounds, np.int64)
    n_params = lo
    P = (rng.standard_normal(n_params) * 0.1).astype(dt)
    G = (rng.standard_normal(n_params) * 0.01).astype(dt)
    S1 = np.zeros(n_params, dt)
    S2 = np.full(n_params, 1e-4, dt)
    lr, penalty = dt.type(1e-3), dt.type(w.alpha / batch)
    n_out = dims[-1]
    z = rng.uniform(-5, 0, m * n_out).astype(dt)
    zout = np.empty_like(z)
    parts = {
        "gemm 1024^3": lambda: np.matmul(big, big, out=out),
        "fastmlp Adam step": lambda: _fastmlp_adam(P, G, S1, S2, bounds, n_batches, lr, penalty),
        "Adam floor": lambda: _adam_floor(P, G, S1, S2, n_batches),
        "fastmlp Nesterov step": lambda: _fastmlp_nesterov(P, G, S1, S2, bounds, n_batches, lr, penalty),
        "momentum floor": lambda: _momentum_floor(P, G, S1, S2, n_batches),
        "exp/log": lambda: _exp_log(z, zout, m),
    }
    for f in parts.values():
        f()  # compile, warm up
    inner = {"gemm 1024^3": 3}
    times = {k: [] for k in parts}
    for _ in range(repeat):
        for k, f in parts.items():
            P[:] = rng.standard_normal(n_params) * 0.1  # the same magnitudes every time (no decay, no subnormals)
            S1[:] = 0
            S2[:] = 1e-4
            times[k].append(_cpu(f, inner.get(k, 20)))
    med = {k: statistics.median(v) for k, v in times.items()}
    med["gemm 1024^3"] = min(times["gemm 1024^3"])  # a peak: the best run
    rate = 2 * 1024**3 / med["gemm 1024^3"]
    return dict(dims=dims, macs=macs, n_params=n_params, n_batches=n_batches, gflops=rate / 1e9,
                products_ms=2 * macs / rate * 1e3, adam_ms=med["fastmlp Adam step"] * 1e3,
                adam_floor_ms=med["Adam floor"] * 1e3, nesterov_ms=med["fastmlp Nesterov step"] * 1e3,
                momentum_floor_ms=med["momentum floor"] * 1e3, exp_log_ms=med["exp/log"] * 1e3)


def mlp_floors(name: str, dtype: str, repeat: int) -> dict:
    """A training workload (W1..W4): one epoch's products alone, as the training kernel calls them through BLAS,
    against the same FLOPs at the large-gemm rate and against ``MLP.fit`` itself (CPU time per epoch)."""
    w = workloads.get(name)
    dt = np.dtype(dtype)
    dims = np.array(w.dims, np.int64)
    m, batch = w.m, w.batch
    n_batches = -(-m // batch)
    macs = sum(int(dims[l]) * int(dims[l + 1]) * (3 if l > 0 else 2) for l in range(len(dims) - 1)) * m
    rng = np.random.default_rng(0)
    big = rng.standard_normal((1024, 1024)).astype(dt)
    out = np.empty_like(big)
    p_off = np.zeros(len(dims), np.int64)
    a_off = np.zeros(len(dims), np.int64)
    for l in range(len(dims) - 1):
        p_off[l + 1] = p_off[l] + dims[l] * dims[l + 1] + dims[l + 1]
        a_off[l + 1] = a_off[l] + dims[l + 1] * batch
    params = (rng.standard_normal(int(p_off[-1])) * 0.1).astype(dt)
    X = rng.standard_normal(int(dims[0]) * m).astype(dt)
    Z = rng.standard_normal(int(a_off[-1])).astype(dt) * dt.type(0.01)
    D = rng.standard_normal(2 * int(dims.max()) * batch).astype(dt) * dt.type(0.01)
    T = np.zeros(int(a_off[-1]), dt)
    scalars = np.zeros(2, dt)
    run = w.build("fastmlp", dtype)
    parts = {
        "gemm 1024^3": lambda: np.matmul(big, big, out=out),
        "products": lambda: _epoch_products(X, params, dims, p_off, a_off, m, batch, Z, D, T, scalars),
        "fit": run,
    }
    for f in parts.values():
        f()
    inner = {"gemm 1024^3": 3, "products": 200, "fit": 5}
    times = {k: [] for k in parts}
    for _ in range(repeat):
        for k, f in parts.items():
            times[k].append(_cpu(f, inner[k]))
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = 2 * 1024**3 / min(times["gemm 1024^3"])
    return dict(dims=[int(d) for d in dims], macs=macs, n_batches=n_batches, gflops=rate / 1e9,
                peak_ms=2 * macs / rate * 1e3, products_ms=med["products"] * 1e3,
                epoch_ms=med["fit"] / w.epochs * 1e3)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="S2")
    parser.add_argument("--dtype", action="append", choices=("float64", "float32"))
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args(argv)
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        print("note: OPENBLAS_NUM_THREADS is not 1: the gemm rate is not one core's")
    for dtype in args.dtype or ["float64", "float32"]:
        if isinstance(workloads.get(args.workload), workloads.Workload):
            f = mlp_floors(args.workload, dtype, args.repeat)
            print(f"{args.workload} {dtype}: layers {f['dims']}, {f['n_batches']} minibatches, "
                  f"{2 * f['macs'] / 1e6:.1f} MFLOP of products per epoch (load {os.getloadavg()[0]:.1f})")
            print(f"  products at one core's large-gemm rate ({f['gflops']:.0f} GFLOP/s)  {f['peak_ms']:.4f} ms/epoch")
            print(f"  the epoch's BLAS products alone, as the kernel calls them  {f['products_ms']:.4f} ms/epoch "
                  f"({2 * f['macs'] / f['products_ms'] / 1e6:.0f} GFLOP/s)")
            print(f"  MLP.fit, CPU time per epoch                             {f['epoch_ms']:.4f} ms/epoch")
            print(f"  everything but the products                             "
                  f"{f['epoch_ms'] - f['products_ms']:.4f} ms/epoch")
            continue
        f = floors(args.workload, dtype, args.repeat)
        total = f["products_ms"] + f["adam_floor_ms"] + f["exp_log_ms"]
        print(f"{args.workload} {dtype}: layers {f['dims']}, {f['n_params']} parameters, {f['n_batches']} minibatches, "
              f"{2 * f['macs'] / 1e6:.1f} MFLOP of products per epoch (load {os.getloadavg()[0]:.1f})")
        print(f"  products at one core's large-gemm rate ({f['gflops']:.0f} GFLOP/s)  {f['products_ms']:.3f} ms/epoch")
        print(f"  Adam floor (reads, writes, sqrt, division)          {f['adam_floor_ms']:.3f} ms/epoch"
              f"   (fastmlp's Adam step {f['adam_ms']:.3f})")
        print(f"  momentum floor (reads, writes)                      {f['momentum_floor_ms']:.3f} ms/epoch"
              f"   (fastmlp's Nesterov step {f['nesterov_ms']:.3f})")
        print(f"  exp/log (softmax, cross-entropy)                    {f['exp_log_ms']:.3f} ms/epoch")
        print(f"  floor with Adam                                     {total:.3f} ms/epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
