"""Course-style loops: the user's own NumPy code against the same loop on fastmlp's dialects, per step.

Each row times one training step (forward, cost, backward, update) of a loop written as course-style code
writes it, three ways in the same run: the NumPy code itself (``tests/references``: the dialects
transcribed in plain NumPy), the same loop calling ``fastmlp.course`` / ``fastmlp.architecture`` /
``fastmlp.functional`` instead, and, where there is one, fastmlp's own compiled loop (``MLP.fit``, the
whole-loop functions). Times are medians of interleaved repetitions; ratios are of those medians.

Run (the OpenBLAS variables unset, as for every benchmark of the project)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python scripts/bench_course.py

``--quick`` runs fewer, shorter repetitions; ``--small`` only the rows that need no data set;
``--idle-thread`` keeps another thread alive (waiting, as Jupyter's kernel threads do) while it measures,
which turns off the per-step hot paths that only a single-threaded interpreter may use. The asv suite
(``asv_benchmarks/benchmarks/course.py``) times the same rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from references import architecture_numpy as arch_np  # noqa: E402
from references import course_numpy as course_np  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import architecture, course, functional  # noqa: E402
from fastmlp._timing import time_within_budget  # noqa: E402

XOR_X = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
XOR_Y = np.array([[0.0, 1.0, 1.0, 0.0]])
SEED_ARCHITECTURE = [
    {"input_dim": 2, "output_dim": 4, "activation": "relu"},
    {"input_dim": 4, "output_dim": 6, "activation": "relu"},
    {"input_dim": 6, "output_dim": 6, "activation": "relu"},
    {"input_dim": 6, "output_dim": 4, "activation": "relu"},
    {"input_dim": 4, "output_dim": 1, "activation": "sigmoid"},
]


# --- the user's NumPy loops ---------------------------------------------------------------------------
def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def two_layer_numpy_step(state, X, Y, learning_rate=0.1):
    """A two-layer sigmoid network written the way the XOR exercise writes it: affine, sigmoid,
    cross-entropy, hand-written gradients, an in-place update of a list of four arrays."""
    W1, B1, W2, B2 = state
    m = X.shape[1]
    H = _sigmoid(np.dot(W1, X) + B1)
    Y_hat = _sigmoid(np.dot(W2, H) + B2)
    loss = -np.sum(Y * np.log(Y_hat) + (1 - Y) * np.log(1 - Y_hat)) / m
    d2 = (Y_hat - Y) / m
    d1 = np.dot(W2.T, d2) * H * (1 - H)
    for p, g in zip(state, (np.dot(d1, X.T), np.sum(d1, axis=1, keepdims=True), np.dot(d2, H.T),
                            np.sum(d2, axis=1, keepdims=True)), strict=True):
        p += -learning_rate * g
    return loss


def course_numpy_step(state, X, Y, learning_rate):
    """One iteration of the course's loop with the NumPy dialect (seed 000's functions)."""
    AL, caches = course_np.L_model_forward(X, state[0])
    cost = course_np.compute_cost(AL, Y)
    state[0] = course_np.update_parameters(state[0], course_np.L_model_backward(AL, Y, caches), learning_rate)
    return cost


def course_fast_step(state, X, Y, learning_rate):
    """The same iteration with ``from fastmlp.course import *``."""
    AL, caches = course.L_model_forward(X, state[0])
    cost = course.compute_cost(AL, Y)
    state[0] = course.update_parameters(state[0], course.L_model_backward(AL, Y, caches), learning_rate)
    return cost


def functional_step(state, X, Y, learning_rate, activations):
    """The XOR exercise's loop written with ``fastmlp.functional`` (in-place update)."""
    AL, caches = functional.L_model_forward(X, state[0], activations)
    cost = functional.compute_cost(AL, Y)
    functional.update_parameters(state[0], functional.L_model_backward(AL, Y, caches, activations), learning_rate)
    return cost


# --- workloads ----------------------------------------------------------------------------------------
def _cancer():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    X = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0)
    return np.ascontiguousarray(X.T), data.target.reshape(1, -1).astype(float)


def _cats(seed=0):
    rng = np.random.RandomState(seed)
    X = rng.rand(12288, 209)
    return X, (rng.rand(1, 209) < 0.35).astype(float)


def _mlp_fit(dims, X, Y, learning_rate):
    model = fastmlp.MLP(dims, init="deep", seed=3)
    return lambda: model.fit(X, Y, epochs=1, learning_rate=learning_rate)


def _xor_exercise():
    np_state = [np.random.RandomState(42).randn(2, 2), np.zeros((2, 1)), np.random.RandomState(43).randn(1, 2),
                np.zeros((1, 1))]
    fast_state = [functional.initialize_parameters([2, 2, 1], seed=42)]
    sig2 = ["sigmoid", "sigmoid"]
    trained = functional.initialize_parameters([2, 2, 1], seed=42)
    return {
        "numpy": lambda: two_layer_numpy_step(np_state, XOR_X, XOR_Y),
        "fastmlp": lambda: functional_step(fast_state, XOR_X, XOR_Y, 0.1, sig2),
        "compiled": _per_step(lambda n: functional.train(trained, XOR_X, XOR_Y, sig2, "bce", 0.1, n), 2000),
    }


def _xor_exercise_plain_dict():
    """The XOR exercise's loop on ``fastmlp.functional`` with the user's own parameter dict (NumPy arrays they
    drew themselves, not made by fastmlp's initialisers): the structurally checked path."""
    rng = np.random.RandomState(42)
    np_state = [rng.randn(2, 2), np.zeros((2, 1)), rng.randn(1, 2), np.zeros((1, 1))]
    plain = {"W1": np_state[0].copy(), "b1": np_state[1].copy(), "W2": np_state[2].copy(), "b2": np_state[3].copy()}
    fast_state = [plain]
    sig2 = ["sigmoid", "sigmoid"]
    return {
        "numpy": lambda: two_layer_numpy_step(np_state, XOR_X, XOR_Y),
        "fastmlp": lambda: functional_step(fast_state, XOR_X, XOR_Y, 0.1, sig2),
    }


def _course_loop(dims, data, lr):
    X, Y = data()
    np_state = [course_np.initialize_parameters_deep(dims)]
    fast_state = [course.initialize_parameters_deep(dims)]
    entry = {"numpy": lambda: course_numpy_step(np_state, X, Y, lr),
             "fastmlp": lambda: course_fast_step(fast_state, X, Y, lr)}
    if dims == [2, 2, 1]:
        entry["compiled"] = _per_step(lambda n: course.L_layer_model(X, Y, dims, lr, n), 2000)
    else:
        entry["compiled"] = _mlp_fit(dims, X, Y, lr)
    return entry


def _seed_004_forward():
    x = np.array([1.0, 2.0]).reshape(2, 1)
    params_np = arch_np.init_layers(SEED_ARCHITECTURE, 42)
    params = architecture.init_layers(SEED_ARCHITECTURE, 42)
    model = fastmlp.MLP.from_architecture(SEED_ARCHITECTURE, seed=42)
    return {
        "numpy": lambda: arch_np.full_forward_propagation(x, params_np, SEED_ARCHITECTURE),
        "fastmlp": lambda: architecture.full_forward_propagation(x, params, SEED_ARCHITECTURE),
        "compiled": lambda: model.forward(x),
    }


_XOR_ARCH = [{"input_dim": 2, "output_dim": 4, "activation": "relu"},
             {"input_dim": 4, "output_dim": 1, "activation": "sigmoid"}]


def _whole_loop(kind, n_loop):
    if kind == "course":
        return {
            "numpy": _per_step(lambda n: course_np.L_layer_model(XOR_X, XOR_Y, [2, 4, 1], 0.5, n), n_loop // 10),
            "fastmlp": _per_step(lambda n: course.L_layer_model(XOR_X, XOR_Y, [2, 4, 1], 0.5, n), n_loop),
        }
    return {
        "numpy": _per_step(lambda n: arch_np.train(XOR_X, XOR_Y, _XOR_ARCH, n, 0.5), n_loop // 10),
        "fastmlp": _per_step(lambda n: architecture.train(XOR_X, XOR_Y, _XOR_ARCH, n, 0.5), n_loop),
    }


#: name -> builder of ``{label: zero-argument callable running one step}``; labels ``numpy`` (the user's
#: code), ``fastmlp`` (the same loop on fastmlp's dialect) and optionally ``compiled`` (fastmlp's own loop)
WORKLOADS = {
    "XOR 2-2-1 sigmoid, m=4 (XOR exercise loop)": _xor_exercise,
    "XOR 2-2-1 sigmoid, m=4, the user's own dict (XOR exercise loop)": _xor_exercise_plain_dict,
    "XOR [2,2,1] relu, m=4 (course loop)": lambda: _course_loop([2, 2, 1], lambda: (XOR_X, XOR_Y), 0.5),
    "[30,64,32,1] relu, m=569 full batch (course loop)": lambda: _course_loop([30, 64, 32, 1], _cancer, 0.05),
    "[12288,20,7,5,1] relu, m=209 (course loop)": lambda: _course_loop([12288, 20, 7, 5, 1], _cats, 0.0075),
    "seed 004 forward only, m=1": _seed_004_forward,
    "whole loop, course: L_layer_model on XOR [2,4,1]": lambda: _whole_loop("course", 2000),
    "whole loop, architecture: train on XOR [2,4,1]": lambda: _whole_loop("architecture", 2000),
}
#: issue 11's target per row: ``(kind, value)``; ``"speedup"``: their NumPy / on fastmlp at least ``value``;
#: ``"of compiled"``: on fastmlp / compiled loop at most ``value``
TARGETS = {
    "XOR 2-2-1 sigmoid, m=4 (XOR exercise loop)": ("speedup", 3.0),
    "XOR 2-2-1 sigmoid, m=4, the user's own dict (XOR exercise loop)": ("speedup", 3.0),
    "XOR [2,2,1] relu, m=4 (course loop)": ("speedup", 3.0),
    "[30,64,32,1] relu, m=569 full batch (course loop)": ("speedup", 1.5),
    "[12288,20,7,5,1] relu, m=209 (course loop)": ("of compiled", 1.25),
    "seed 004 forward only, m=1": ("speedup", 3.0),
    "whole loop, course: L_layer_model on XOR [2,4,1]": ("speedup", 50.0),
    "whole loop, architecture: train on XOR [2,4,1]": ("speedup", 50.0),
}
#: the rows that run in seconds without optional data (the asv smoke test's tiny mode)
SMALL = [name for name in WORKLOADS if "XOR" in name or "seed 004" in name]


def workloads(names=None):
    """``[(name, entry), ...]`` built for ``names`` (default: all)."""
    return [(name, WORKLOADS[name]()) for name in (names or WORKLOADS)]


def _per_step(run, n):
    """A callable timing ``run(n)`` and reporting it as ``n`` steps (see :func:`measure`)."""
    def call():
        run(n)
    call.steps = n
    return call


def _time_per_step(fn, budget):
    """Seconds per step of ``fn``: as many calls as fit in ``budget`` seconds (at least one)."""
    return time_within_budget(fn, budget) / getattr(fn, "steps", 1)


def measure(rows, repeats=7, budget=0.05):
    """Median seconds per step of every entry, the entries of a row timed in turn, ``repeats`` rounds."""
    for _, entry in rows:  # warm-up: compile and load every kernel first
        for fn in entry.values():
            fn()
    samples = {(name, label): [] for name, entry in rows for label in entry}
    for _ in range(repeats):
        for name, entry in rows:
            for label, fn in entry.items():
                samples[name, label].append(_time_per_step(fn, budget))
    return {key: statistics.median(values) for key, values in samples.items()}


def _fmt(seconds):
    return f"{seconds * 1e6:10.2f} us"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions")
    parser.add_argument("--small", action="store_true", help="only the rows that need no data set")
    parser.add_argument("--idle-thread", action="store_true",
                        help="another thread alive meanwhile (waiting, as in a Jupyter kernel)")
    args = parser.parse_args(argv)
    if args.idle_thread:
        import threading

        threading.Thread(target=threading.Event().wait, daemon=True, name="idle").start()
    rows = workloads(SMALL if args.small else None)
    times = measure(rows, repeats=3 if args.quick else 7, budget=0.01 if args.quick else 0.1)
    print(f"{'workload':66s} {'their NumPy':>13s} {'on fastmlp':>13s} {'speedup':>8s} {'compiled loop':>14s}"
          f" {'on fastmlp / compiled':>22s}  target")
    for name, entry in rows:
        t_np, t_fast = times[name, "numpy"], times[name, "fastmlp"]
        line = f"{name:66s} {_fmt(t_np)} {_fmt(t_fast)} {t_np / t_fast:7.2f}x"
        if "compiled" in entry:
            t_c = times[name, "compiled"]
            line += f" {_fmt(t_c):>14s} {t_fast / t_c:21.2f}x"
        else:
            line += " " * 37
        kind, value = TARGETS.get(name, (None, None))
        if kind == "speedup":
            line += f"  speedup >= {value:g}x: {'met' if t_np / t_fast >= value else 'NOT met'}"
        elif kind == "of compiled":
            line += f"  <= {value:g}x compiled: {'met' if t_fast / t_c <= value else 'NOT met'}"
        print(line)
    from threadpoolctl import threadpool_info

    print("BLAS:", ", ".join(f"{i.get('internal_api')} {i.get('architecture')} {i.get('num_threads')} threads"
                             for i in threadpool_info() if i.get("user_api") == "blas"))
    if args.idle_thread:
        print("measured with another (idle) thread alive")


if __name__ == "__main__":
    main()
