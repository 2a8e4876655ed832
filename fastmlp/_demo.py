"""``fastmlp demo``: three small problems trained on the fast path, each timed against the NumPy reference.

1. XOR with a 2-2-1 sigmoid network (full batch) -- it learns the truth table;
2. two moons (generated here), a 2-16-16-1 relu network, minibatch SGD -- train/test accuracy;
3. breast cancer (scikit-learn's bundled copy when installed, otherwise two generated Gaussian classes
   of the same shape), standardised, 30-64-32-1 relu -- with a progress bar and train/test accuracy.

The speedup printed for each is measured here, in this process: the epoch time of
:func:`fastmlp.reference.train` divided by that of :meth:`fastmlp.MLP.fit`, both on the same training data
from the same starting parameters, without shuffling, each timed after a warm-up (best of three runs of
enough epochs to take a few hundredths of a second).
"""

from __future__ import annotations

import time

import numpy as np

from fastmlp._standardise import fit_standardizer, standardize
from fastmlp._timing import format_seconds, per_call

__all__ = ["run", "make_moons", "load_cancer", "measure_speedup"]


def _say(*args) -> None:
    print(*args, flush=True)


def make_moons(n: int = 400, noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: ``X (2, n)``, ``y (n,)`` of 0/1 (samples as columns)."""
    rng = np.random.RandomState(seed)
    n0 = n // 2
    n1 = n - n0
    t0 = rng.uniform(0.0, np.pi, n0)
    t1 = rng.uniform(0.0, np.pi, n1)
    outer = np.vstack([np.cos(t0), np.sin(t0)])
    inner = np.vstack([1.0 - np.cos(t1), 0.5 - np.sin(t1)])
    X = np.hstack([outer, inner]) + noise * rng.randn(2, n)
    y = np.concatenate([np.zeros(n0), np.ones(n1)])
    return X, y


def load_cancer(seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Breast cancer as ``X (569, 30)`` rows, ``y (569,)`` 0/1, and a description of the source."""
    try:
        from sklearn.datasets import load_breast_cancer
    except ImportError:
        rng = np.random.RandomState(seed)
        y = (rng.rand(569) < 0.63).astype(np.float64)
        centres = rng.randn(2, 30)
        X = centres[y.astype(int)] * 0.8 + rng.randn(569, 30)
        return X, y, "generated (scikit-learn not installed): 2 Gaussian classes, 569 x 30"
    data = load_breast_cancer()
    return np.asarray(data.data, dtype=np.float64), np.asarray(data.target, dtype=np.float64), \
        "scikit-learn's breast cancer set, 569 x 30"


def _split(m: int, test_fraction: float, seed: int):
    perm = np.random.RandomState(seed).permutation(m)
    n_test = int(round(m * test_fraction))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def measure_speedup(layer_dims, activations, X, Y, *, loss="bce", learning_rate=0.05, batch_size=None,
                    dtype="float64", params=None, target: float = 0.05):
    """Epoch times of the reference and of ``MLP.fit`` on the same data and starting parameters.

    Parameters
    ----------
    layer_dims : list of int
    activations : list of str, one per layer
    X : ndarray (n_x, m)
    Y : ndarray (n_y, m)
    loss, learning_rate, batch_size, dtype
        As in ``MLP.fit`` (no shuffling).
    params : dict, optional
        Starting parameters (default: ``he`` with seed 1).
    target : float
        Each timed call lasts at least this long (seconds).

    Returns
    -------
    (reference_seconds_per_epoch, fastmlp_seconds_per_epoch)
    """
    from fastmlp import reference
    from fastmlp.model import MLP

    dt = np.dtype(dtype)
    if params is None:
        params = reference.initialize_parameters(layer_dims, init="he", seed=1, dtype=dt)
    params = {k: np.asarray(v, dtype=dt) for k, v in params.items()}
    X = np.ascontiguousarray(X, dtype=dt)
    Y = np.ascontiguousarray(Y, dtype=dt)

    def run_reference(n):
        p = {k: v.copy() for k, v in params.items()}
        reference.train(p, X, Y, activations=list(activations), loss=loss, learning_rate=learning_rate,
                        epochs=n, batch_size=batch_size)

    model = MLP(list(layer_dims), activations=list(activations), loss=loss, dtype=dt)

    def run_fast(n):
        model.set_parameters(params)
        model.fit(X, Y, epochs=n, learning_rate=learning_rate, batch_size=batch_size)

    run_reference(1)  # warm-up
    run_fast(1)
    return per_call(run_reference, target), per_call(run_fast, target)


def _report_speedup(t_ref: float, t_fast: float) -> str:
    return (f"speedup over the NumPy reference: {t_ref / t_fast:,.0f}x per epoch "
            f"({format_seconds(t_fast)} vs {format_seconds(t_ref)})")


def _accuracy(model, X, y) -> float:
    return float(np.mean(model.predict(X).ravel() == y))


def _xor(dtype, quick, seed) -> float:
    from fastmlp import reference
    from fastmlp.model import MLP

    X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], dtype=np.float64)
    y = np.array([0.0, 1.0, 1.0, 0.0])
    acts = ["sigmoid", "sigmoid"]
    lr, epochs = 1.0, 5000
    _say(f"1. XOR, 2-2-1 sigmoid network, full batch, learning rate {lr:g}, {epochs} epochs")
    params = reference.initialize_parameters([2, 2, 1], init="xavier", seed=0, dtype=dtype)
    model = MLP([2, 2, 1], activations=acts, loss="bce", dtype=dtype)
    model.set_parameters(params)
    t0 = time.perf_counter()
    model.fit(X, y, epochs=1, learning_rate=lr)
    first = time.perf_counter() - t0
    step = epochs // 5
    _say(f"   epoch {1:>5}  cost {model.history[-1]:.4f}   (first fit, compilation or cache load: {first:.2f} s)")
    for mark in range(step, epochs + 1, step):
        model.fit(X, y, epochs=mark - len(model.history), learning_rate=lr)
        _say(f"   epoch {len(model.history):>5}  cost {model.history[-1]:.4f}")
    out = model.forward(X)[0]
    pred = model.predict(X).ravel()
    _say("   x1 x2 | output  predicted  XOR")
    for j in range(4):
        _say(f"    {int(X[0, j])}  {int(X[1, j])} | {out[j]:.4f}  {int(pred[j]):>9}  {int(y[j]):>3}")
    correct = int(np.sum(pred == y))
    _say(f"   learned XOR: {'yes' if correct == 4 else 'no'} ({correct}/4 correct)")
    t_ref, t_fast = measure_speedup([2, 2, 1], acts, X, y.reshape(1, -1), learning_rate=lr, dtype=dtype,
                                    params=params, target=0.02 if quick else 0.1)
    _say("   " + _report_speedup(t_ref, t_fast))
    return t_ref / t_fast


def _moons(dtype, quick, seed) -> float:
    from fastmlp.model import MLP

    X, y = make_moons(400, noise=0.15, seed=seed)
    tr, te = _split(y.size, 0.25, seed)
    mean, std = fit_standardizer(X[:, tr].T)
    Xs = standardize(X.T, mean, std).T
    dims, acts = [2, 16, 16, 1], ["relu", "relu", "sigmoid"]
    lr, batch = 0.1, 32
    epochs = 100 if quick else 400
    _say(f"2. Two moons, 2-16-16-1 relu network, batch {batch}, learning rate {lr:g}, {epochs} epochs")
    _say(f"   data: generated, {y.size} points, noise 0.15; {tr.size} train / {te.size} test")
    model = MLP(dims, activations=acts, loss="bce", seed=seed, dtype=dtype)
    start = model.get_parameters()
    Xtr, ytr = np.ascontiguousarray(Xs[:, tr]), y[tr]
    step = epochs // 4
    for k in range(4):
        model.fit(Xtr, ytr, epochs=step, learning_rate=lr, batch_size=batch, shuffle=True, seed=seed + k)
        _say(f"   epoch {len(model.history):>4}  cost {model.history[-1]:.4f}")
    _say(f"   accuracy: train {_accuracy(model, Xtr, ytr):.3f}, test {_accuracy(model, Xs[:, te], y[te]):.3f}")
    t_ref, t_fast = measure_speedup(dims, acts, Xtr, ytr.reshape(1, -1), learning_rate=lr, batch_size=batch,
                                    dtype=dtype, params=start, target=0.02 if quick else 0.1)
    _say("   " + _report_speedup(t_ref, t_fast))
    return t_ref / t_fast


def _cancer(dtype, quick, seed, show_progress) -> float:
    from fastmlp.model import MLP

    Xr, y, source = load_cancer(seed)
    tr, te = _split(y.size, 0.25, seed)
    mean, std = fit_standardizer(Xr[tr])
    Xs = standardize(Xr, mean, std).T  # (30, 569)
    dims, acts = [30, 64, 32, 1], ["relu", "relu", "sigmoid"]
    lr, batch = 0.05, 32
    epochs = 30 if quick else 200
    _say(f"3. Breast cancer, standardised, 30-64-32-1 relu network, batch {batch}, learning rate {lr:g}, "
         f"{epochs} epochs")
    _say(f"   data: {source}; {tr.size} train / {te.size} test")
    model = MLP(dims, activations=acts, loss="bce", seed=seed, dtype=dtype)
    start = model.get_parameters()
    Xtr, ytr = np.ascontiguousarray(Xs[:, tr]), y[tr]
    model.fit(Xtr, ytr, epochs=epochs, learning_rate=lr, batch_size=batch, shuffle=True, seed=seed,
              verbose=show_progress)
    _say(f"   final cost {model.history[-1]:.4f}")
    _say(f"   accuracy: train {_accuracy(model, Xtr, ytr):.3f}, test {_accuracy(model, Xs[:, te], y[te]):.3f}")
    t_ref, t_fast = measure_speedup(dims, acts, Xtr, ytr.reshape(1, -1), learning_rate=lr, batch_size=batch,
                                    dtype=dtype, params=start, target=0.02 if quick else 0.1)
    _say("   " + _report_speedup(t_ref, t_fast))
    return t_ref / t_fast


def run(*, quick: bool = False, dtype: str = "float64", seed: int = 0, show_progress: bool = True) -> int:
    """Run the demo, printing as it goes; returns the exit status (0)."""
    import numba

    from fastmlp._version import __version__

    t0 = time.perf_counter()
    _say(f"fastmlp {__version__} demo (numpy {np.__version__}, numba {numba.__version__}, {dtype})")
    _say("")
    speedups = [_xor(dtype, quick, seed)]
    _say("")
    speedups.append(_moons(dtype, quick, seed))
    _say("")
    speedups.append(_cancer(dtype, quick, seed, show_progress))
    _say("")
    _say(f"done in {time.perf_counter() - t0:.1f} s, compilation or cache loading included; speedups "
         + ", ".join(f"{s:,.0f}x" for s in speedups) + ".")
    _say("next: fastmlp train DATA.csv --target COLUMN --out model.npz")
    return 0
