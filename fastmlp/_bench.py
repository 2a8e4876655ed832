"""The comparison command: fastmlp against its baseline and its peers on the registry's workloads.

The core of ``fastmlp bench`` (and ``scripts/bench.py``); ``fastmlp bench --readme`` prints the README's
performance tables. Each (workload, dtype, peer) is timed in a fresh process (``python -m fastmlp._bench
--worker ...``) so that the thread pools (BLAS, OpenMP, XLA) of different peers never compete and every peer
starts cold. Each call trains the workload's epochs per timing call (:mod:`fastmlp.workloads`). The peers'
processes take turns, in :data:`ROUNDS` rounds (the order reversed every other round), so that a change in the
machine's load hits every peer alike rather than whichever ran at that moment; each process times, after one
untimed warm-up call, at least its share of ``reps`` calls and more until they add up to
:data:`MIN_SECONDS` (a 0.5 ms call is timed hundreds of times, not five), and a peer's time is the median of all
its calls over the rounds (:func:`fastmlp._timing.call_times`). A call's time is the smaller of its wall time
and its process's CPU time, so that time other processes held the CPU counts for no peer (a 60 ms call is
preempted on a busy machine far more often than a 0.5 ms one); on a quiet machine that is the wall time.

Peers (:data:`PEERS`; a peer that is not installed, or fails, is reported as unavailable, never fatal):

``numpy``       course-style NumPy code (:mod:`fastmlp._baseline`): the baseline of the training workloads W1-W4
``reference``   :mod:`fastmlp.reference` (pure NumPy, validating every call)
``fastmlp``     :class:`fastmlp.MLP` (W1-W4) or :class:`fastmlp.MLPClassifier` (S1, S2)
``torch``       PyTorch CPU, ``nn.Sequential`` + ``BCEWithLogitsLoss`` + ``optim.SGD`` (W1-W4)
``jax``         JAX, one ``jax.jit``-compiled SGD step per minibatch (W1-W4)
``sklearn``     scikit-learn's ``MLPClassifier``: plain SGD via ``partial_fit`` for W1-W4; the baseline of
                the estimator workloads S1, S2 (same constructor arguments as fastmlp's)
``gemm-floor``  not an implementation: the matrix products one epoch of W1-W4 must do, through NumPy into
                preallocated buffers -- what a GEMM-bound workload cannot beat on this machine

To add a peer, or a kind of workload (e.g. prediction or cold start), register a builder with
:func:`register_peer` and say which peers each kind runs and which is its baseline (:data:`BASELINE`); rows,
tables and charts follow. Run it with the OpenBLAS variables unset for every peer alike (docs/DESIGN.md §3)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE fastmlp bench --readme

>>> from fastmlp import _bench
>>> rows = _bench.run_table(["W2-deep"], peers=["numpy", "fastmlp"])   # doctest: +SKIP
>>> print(_bench.format_table(rows))                                    # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import warnings
from collections.abc import Callable

import numpy as np

from fastmlp import _timing, workloads

#: builders: peer name -> (workload, dtype) -> zero-argument callable running one timing call
_BUILDERS: dict[str, Callable] = {}
#: the peers each kind of workload can run, in table order
_PEERS_FOR: dict[str, list[str]] = {"mlp": [], "estimator": []}
#: what each kind of workload's speedups are measured against
BASELINE = {"mlp": "numpy", "estimator": "sklearn"}
#: peers that are measurements of the machine, not implementations (no speedup column of their own)
FLOORS = {"gemm-floor"}
#: how tables name the peers
LABELS = {"numpy": "NumPy (course code)", "reference": "fastmlp.reference", "fastmlp": "fastmlp",
          "torch": "PyTorch", "jax": "JAX jit", "sklearn": "scikit-learn", "gemm-floor": "GEMM floor"}


def register_peer(name: str, kinds, build: Callable) -> None:
    """Make ``name`` a peer for each workload kind in ``kinds``; ``build(workload, dtype)`` returns a
    zero-argument callable that runs one timing call (raising ``ImportError`` when unavailable)."""
    _BUILDERS[name] = build
    for kind in kinds:
        _PEERS_FOR.setdefault(kind, [])
        if name not in _PEERS_FOR[kind]:
            _PEERS_FOR[kind].append(name)


def _all_peers() -> tuple[str, ...]:
    """Every registered peer, in registration order (the table order)."""
    return tuple(_BUILDERS)


peers = _all_peers


_WORKER_TIMEOUT = 1800


# ------------------------------------------------------------------------------------ the peers


def _torch_runner(w, dtype):
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    tdt = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    params = w.init_parameters(dtype)  # the same starting weights as every other peer
    layers = []
    for l in range(1, len(w.dims)):
        lin = torch.nn.Linear(w.dims[l - 1], w.dims[l]).to(tdt)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(params[f"W{l}"]))
            lin.bias.copy_(torch.from_numpy(params[f"b{l}"].ravel()))
        layers.append(lin)
        if l < len(w.dims) - 1:
            layers.append(torch.nn.ReLU() if w.hidden == "relu" else torch.nn.Sigmoid())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(net.parameters(), lr=w.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()  # sigmoid output + BCE, from the logits
    X, Y = w.make_data(dtype)
    Xt, Yt = torch.from_numpy(np.ascontiguousarray(X.T)), torch.from_numpy(np.ascontiguousarray(Y.T))
    starts = range(0, w.m, w.batch)

    def run():
        for _ in range(w.epochs):
            for s in starts:
                opt.zero_grad(set_to_none=True)
                loss_fn(net(Xt[s:s + w.batch]), Yt[s:s + w.batch]).backward()
                opt.step()

    return run


def _jax_runner(w, dtype):
    import jax

    if np.dtype(dtype) == np.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    params = w.init_parameters(dtype)
    L = len(w.dims) - 1
    state = [[jnp.asarray(params[f"W{l}"]), jnp.asarray(params[f"b{l}"])] for l in range(1, L + 1)]
    hidden = jax.nn.relu if w.hidden == "relu" else jax.nn.sigmoid
    lr = w.lr

    def cost(ps, xb, yb):
        a = xb
        for W, b in ps[:-1]:
            a = hidden(W @ a + b)
        z = ps[-1][0] @ a + ps[-1][1]
        return jnp.mean(jnp.logaddexp(0.0, z) - yb * z)  # BCE of sigmoid(z), from the logits

    @jax.jit
    def step(ps, xb, yb):
        grads = jax.grad(cost)(ps, xb, yb)
        return [[W - lr * gW, b - lr * gb] for (W, b), (gW, gb) in zip(ps, grads, strict=True)]

    X, Y = w.make_data(dtype)
    batches = [(jnp.asarray(X[:, s:s + w.batch]), jnp.asarray(Y[:, s:s + w.batch])) for s in range(0, w.m, w.batch)]
    holder = {"p": state}

    def run():
        ps = holder["p"]
        for _ in range(w.epochs):
            for xb, yb in batches:
                ps = step(ps, xb, yb)
        jax.block_until_ready(ps)
        holder["p"] = ps

    return run


def _sklearn_sgd_runner(w, dtype):
    """scikit-learn's MLPClassifier doing the same plain minibatch SGD as the reference (partial_fit)."""
    from sklearn.neural_network import MLPClassifier

    activation = {"relu": "relu", "sigmoid": "logistic", "tanh": "tanh"}[w.hidden]
    clf = MLPClassifier(hidden_layer_sizes=tuple(w.dims[1:-1]), activation=activation, solver="sgd",
                        alpha=0.0, batch_size=w.batch, learning_rate_init=w.lr, momentum=0.0,
                        nesterovs_momentum=False, shuffle=False, random_state=0)
    X, Y = w.make_data(dtype)
    Xs, y = np.ascontiguousarray(X.T), Y.ravel().astype(np.int64)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(w.epochs):
                clf.partial_fit(Xs, y, classes=[0, 1])

    return run


def _numpy_runner(w, dtype):
    """The course-style NumPy baseline (:mod:`fastmlp._baseline`) from the workload's starting parameters."""
    from fastmlp import _baseline

    X, Y = w.make_data(dtype)
    params = w.init_parameters(dtype)
    acts = w.activations

    def run():
        for _ in range(w.epochs):
            _baseline.train_epoch(params, X, Y, acts, w.lr, w.batch)

    return run


def _gemm_floor_runner(w, dtype):
    """The products of one epoch: ``Z = W A``, ``dW = dZ A^T`` and, below the first layer, ``dA = W^T dZ``."""
    rng = np.random.RandomState(0)
    dt = np.dtype(dtype)
    layers = []
    for l in range(1, len(w.dims)):
        n_out, n_in = w.dims[l], w.dims[l - 1]
        W = rng.randn(n_out, n_in).astype(dt)
        A = rng.randn(n_in, w.batch).astype(dt)
        dZ = rng.randn(n_out, w.batch).astype(dt)
        layers.append((l, W, A, dZ, np.empty((n_out, w.batch), dt), np.empty_like(W), np.empty((n_in, w.batch), dt)))
    steps = w.epochs * w.n_batches

    def run():
        for _ in range(steps):
            for l, W, A, dZ, Z, dW, dA in layers:
                np.matmul(W, A, out=Z)
                np.matmul(dZ, A.T, out=dW)
                if l > 1:
                    np.matmul(W.T, dZ, out=dA)

    return run


def _registry_runner(peer):
    return lambda w, dtype: w.build(peer, dtype)


register_peer("numpy", ["mlp"], _numpy_runner)
register_peer("reference", ["mlp"], _registry_runner("reference"))
register_peer("fastmlp", ["mlp", "estimator"], _registry_runner("fastmlp"))
register_peer("torch", ["mlp"], _torch_runner)
register_peer("jax", ["mlp"], _jax_runner)
register_peer("sklearn", ["mlp", "estimator"],
              lambda w, dtype: _sklearn_sgd_runner(w, dtype) if w.kind == "mlp" else w.build("sklearn", dtype))
register_peer("gemm-floor", ["mlp"], _gemm_floor_runner)
#: every peer this module knows, in table order
PEERS = peers()


def build_peer(peer: str, w, dtype):
    """A zero-argument callable running one timing call of workload ``w`` with ``peer``.

    Raises ``ImportError``/``NotImplementedError`` when the peer is not available here, ``ValueError``
    when it does not apply to this kind of workload.
    """
    if peer not in _PEERS_FOR.get(w.kind, ()):
        raise ValueError(f"peer {peer!r} does not run {w.kind} workloads like {w.name}")
    return _BUILDERS[peer](w, dtype)


#: rounds in which the peers' worker processes take turns (a peer's time pools the calls of all its rounds)
ROUNDS = 3
#: each worker process times calls until they add up to at least this many seconds
MIN_SECONDS = 0.3


def peer_times(peer: str, name: str, dtype="float64", reps: int = 5, tiny: bool = False,
               min_seconds: float = 0.0) -> list[float]:
    """Seconds of each timed call (``epochs`` epochs) of ``peer`` on workload ``name``, in this process: at least
    ``reps`` calls, and more until they add up to ``min_seconds``."""
    w = workloads.get(name, tiny=tiny)
    return _timing.call_times(build_peer(peer, w, dtype), reps, min_seconds, running=True)


def time_peer(peer: str, name: str, dtype="float64", reps: int = 5, tiny: bool = False) -> float:
    """Median seconds of one call (``epochs`` epochs) of ``peer`` on workload ``name``, in this process."""
    return statistics.median(peer_times(peer, name, dtype, reps, tiny))


def _times_isolated(peer, name, dtype, reps, tiny, min_seconds=0.0) -> list[float]:
    """:func:`peer_times` in a fresh process."""
    cmd = [sys.executable, "-m", "fastmlp._bench", "--worker", peer, "--only", name, "--dtype", dtype,
           "--reps", str(reps), "--min-seconds", repr(float(min_seconds))] + (["--tiny"] if tiny else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=_WORKER_TIMEOUT)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return [float(t) for t in json.loads(line[7:])["times"]]
    lines = [s for s in r.stderr.strip().splitlines() if s.strip()] or [f"worker exited with {r.returncode}"]
    raise RuntimeError(lines[-1])


def _time_isolated(peer, name, dtype, reps, tiny) -> float:
    """Median seconds of one call of ``peer`` timed in a fresh process."""
    return statistics.median(_times_isolated(peer, name, dtype, reps, tiny))


# ------------------------------------------------------------------------------------ the table


def run_table(names=None, dtypes=("float64",), quick: bool = False, *, peers=None, reps: int | None = None,
              isolate: bool | None = None, plot=None, progress=None, rounds: int | None = None,
              min_seconds: float | None = None) -> list[dict]:
    """Time every peer on every workload; one row per (workload, dtype).

    Parameters
    ----------
    names : list of str, optional
        Workload names (or prefixes, ``"W2"``). Default: the training workloads W1-W4.
    dtypes : sequence of str
        ``"float64"`` and/or ``"float32"``.
    quick : bool
        Tiny workloads, one repetition, in this process: a smoke test, not a measurement.
    peers : sequence of str, optional
        Default: the workload's baseline and fastmlp. Peers that do not apply to a workload are left out.
    reps : int, optional
        Timed calls per peer at least (median of all), shared out over the rounds. Default 6, or 1 when ``quick``.
    isolate : bool, optional
        Each peer in its own process. Default: True unless ``quick``.
    rounds : int, optional
        With ``isolate``, the peers' processes take turns this many times (the order reversed every other
        round) and a peer's time is the median of its calls over all rounds. Default :data:`ROUNDS`, or 1
        when ``quick`` or not isolated.
    min_seconds : float, optional
        Each process times calls until they add up to this much. Default :data:`MIN_SECONDS`, 0 when ``quick``.
    plot : path, optional
        Also save the speedup chart there (:func:`fastmlp.plot.speedup_chart`).
    progress : callable, optional
        Called with each finished row (e.g. to print as you go).

    Returns
    -------
    list of dict
        ``workload``, ``dtype``, ``baseline`` (peer name), ``epochs`` (per call), ``m``, ``ms_per_epoch``
        (peer -> ms), ``samples_per_s`` (peer -> samples/s), ``gflops`` (peer -> GFLOP/s of the epoch's
        matrix products, training workloads only), ``speedups`` (peer -> baseline time / peer time; not for
        the floors), ``speedup`` (fastmlp's, or None), ``errors`` (peer -> why it is unavailable).
    """
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    reps = reps if reps is not None else (1 if quick else 6)
    isolate = (not quick) if isolate is None else isolate
    rounds = max(1, rounds if rounds is not None else (ROUNDS if isolate and not quick else 1))
    min_seconds = min_seconds if min_seconds is not None else (0.0 if quick else MIN_SECONDS)
    reps_per_round = max(1, -(-reps // rounds))
    known = _all_peers()
    chosen = [workloads.get(n, tiny=quick) for n in (names or workloads.names("mlp"))]
    rows = []
    for w in chosen:
        base = BASELINE[w.kind]
        wanted = list(peers) if peers else [base, "fastmlp"]
        for p in wanted:
            if p not in known:
                raise ValueError(f"unknown peer {p!r}; expected some of {', '.join(known)}")
        # the baseline first (a speedup needs it, and it starts the table), then the others in table order
        order = [base] + [p for p in known if p in wanted and p in _PEERS_FOR[w.kind] and p != base]
        for dtype in dtypes:
            calls: dict[str, list[float]] = {p: [] for p in order}
            errors = {}
            for turn in range(rounds):  # the peers take turns, so that the machine's load hits them alike
                for peer in (order if turn % 2 == 0 else order[::-1]):
                    if peer in errors:
                        continue
                    try:
                        if isolate:
                            calls[peer] += _times_isolated(peer, w.name, dtype, reps_per_round, w.tiny, min_seconds)
                        else:
                            calls[peer] += peer_times(peer, w.name, dtype, reps_per_round, w.tiny, min_seconds)
                    except Exception as exc:  # a peer that is missing or broken is reported, not fatal
                        errors[peer] = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
            times = {p: statistics.median(ts) for p, ts in calls.items() if ts and p not in errors}
            t_base = times.get(base)
            speedups = {p: (t_base / t if t_base else None) for p, t in times.items() if p not in FLOORS}
            flops = getattr(w, "flops_per_epoch", None)
            row = dict(workload=w.name, dtype=str(dtype), baseline=base, epochs=w.epochs, m=w.m,
                       ms_per_epoch={p: 1e3 * t / w.epochs for p, t in times.items()},
                       samples_per_s={p: w.m * w.epochs / t for p, t in times.items()},
                       gflops={p: flops * w.epochs / t / 1e9 for p, t in times.items()} if flops else {},
                       speedups=speedups, speedup=speedups.get("fastmlp"), errors=errors, tiny=w.tiny)
            rows.append(row)
            if progress is not None:
                progress(row)
    if plot is not None:
        plot_table(rows, plot)
    return rows


def format_table(rows) -> str:
    """The rows of :func:`run_table` as a fixed-width text table, one line per (workload, dtype, peer).

    Layout (``fastmlp bench`` relies on it to print rows as they finish): a header line, a rule, the
    peer lines, then -- when there are rows -- one closing line saying what the speedups are against.
    """
    head = (f"{'workload':<15} {'dtype':<8} {'peer':<10} {'ms/epoch':>11} {'samples/s':>13} {'GFLOP/s':>8} "
            f"{'speedup':>9}")
    out = [head, "-" * len(head)]
    for r in rows:
        names = list(r["ms_per_epoch"]) + [p for p in r["errors"] if p not in r["ms_per_epoch"]]
        for p in names:
            label = f"{r['workload']:<15} {r['dtype']:<8} {p:<10}"
            if p in r["errors"]:
                out.append(f"{label} unavailable ({r['errors'][p]})")
                continue
            s = r["speedups"].get(p)
            ratio = f"{s:8.2f}x" if s is not None else "      n/a"
            g = r.get("gflops", {}).get(p)
            gtext = f"{g:8.1f}" if g is not None else "        "
            out.append(f"{label} {r['ms_per_epoch'][p]:>11.4f} {r['samples_per_s'][p]:>13,.0f} {gtext} {ratio}")
    if rows:
        bases = sorted({f"{r['baseline']} ({r['workload'].split('-')[0][0]}*)" for r in rows})
        out.append(f"speedup = baseline time / peer time, measured in this run; baseline: {', '.join(bases)}")
    return "\n".join(out)


def _ms(value) -> str:
    """A time in ms with about three significant figures."""
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 1:
        return f"{value:.3g} ms"
    return f"{value:.2g} ms" if value >= 0.01 else f"{value:.1g} ms"


def environment() -> str:
    """One paragraph: commit, versions, CPU, BLAS kernels and the OpenBLAS variables, for published tables."""
    from fastmlp import _blas, _envreport
    from fastmlp._version import __version__

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit += " (with local changes)" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    versions = dict(_envreport.rows())
    blas = next((v for k, v in _blas.report() if k.startswith("BLAS (SciPy")), "BLAS unknown")
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    return (f"fastmlp {__version__} at commit {commit}; Python {platform.python_version()}, numpy "
            f"{np.__version__}, numba {versions.get('numba')}, scipy {versions.get('scipy')} ({blas}), "
            f"scikit-learn {versions.get('scikit-learn')}, JAX {_dist_version('jax')}, PyTorch "
            f"{_dist_version('torch')}; {os.cpu_count()} CPUs ({platform.machine()}){_load()}; OPENBLAS_CORETYPE "
            f"{coretype if coretype else 'unset'}, OPENBLAS_L2_SIZE {os.environ.get('OPENBLAS_L2_SIZE', 'unset')}.")


def _load() -> str:
    """The machine's load average over the last 15 minutes, when the OS tells it (timings share the CPUs)."""
    try:
        return f", load average {os.getloadavg()[2]:.1f} at the end"
    except (AttributeError, OSError):
        return ""


def _dist_version(name) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "not installed"


def format_markdown(rows) -> str:
    """The README's tables, one per kind of workload (:data:`BASELINE`): baseline, fastmlp, speedup, the other
    peers, and -- where the GEMM floor ran -- fastmlp's GFLOP/s against it; then the environment line."""
    out = []
    for kind in BASELINE:  # one table per kind of workload, in registration order
        krows = [r for r in rows if BASELINE.get(_kind_of(r["workload"])) == r["baseline"]
                 and _kind_of(r["workload"]) == kind]
        if not krows:
            continue
        base = BASELINE[kind]
        others = [p for p in peers() if p not in (base, "fastmlp") and p not in FLOORS
                  and any(p in r["ms_per_epoch"] or p in r["errors"] for r in krows)]
        floor = any("gemm-floor" in r["ms_per_epoch"] for r in krows)
        head = ["workload", "dtype", LABELS[base], "fastmlp", "speedup"] + [LABELS[p] for p in others]
        if floor:
            head.append("fastmlp GFLOP/s (GEMM floor)")
        out += ["| " + " | ".join(head) + " |", "|---|---|" + "--:|" * (len(head) - 2)]
        for r in krows:
            cells = [r["workload"], r["dtype"]]
            for p in [base, "fastmlp"]:
                cells.append(_ms(r["ms_per_epoch"][p]) if p in r["ms_per_epoch"] else "n/a")
            s = r["speedups"].get("fastmlp")
            cells.append(f"**{s:.3g}x**" if s else "n/a")
            for p in others:
                cells.append(_ms(r["ms_per_epoch"][p]) if p in r["ms_per_epoch"] else "not installed"
                             if "ModuleNotFoundError" in r["errors"].get(p, "") or "ImportError" in
                             r["errors"].get(p, "") else "failed")
            if floor:
                g, f = r["gflops"].get("fastmlp"), r["gflops"].get("gemm-floor")
                cells.append(f"{g:.3g} ({f:.3g})" if g and f else "n/a")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out.append(environment())
    return "\n".join(out)


def _kind_of(name) -> str:
    return workloads.get(name).kind


def plot_table(rows, path):
    """Save the speedup chart of ``rows`` to ``path`` (:func:`fastmlp.plot.speedup_chart`); returns ``path``."""
    from fastmlp.plot import speedup_chart

    speedup_chart(rows, path=path)
    return path


# -------------------------------------------------------------------------------- command line

#: what ``--readme`` runs: every workload, both dtypes, every peer
README_PEERS = ("numpy", "fastmlp", "jax", "torch", "sklearn", "gemm-floor")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated workloads, e.g. W1,W4,S1 (default: all)")
    ap.add_argument("--peers", default=",".join(peers()), help=f"comma-separated, from {','.join(peers())}")
    ap.add_argument("--dtype", action="append", choices=workloads.DTYPES, help="repeatable; default float64")
    ap.add_argument("--reps", type=int, default=None, help="timed calls per peer at least (median); default 6")
    ap.add_argument("--rounds", type=int, default=None, help=f"turns the peers take (default {ROUNDS})")
    ap.add_argument("--min-seconds", type=float, default=None,
                    help=f"each process times calls for at least this long (default {MIN_SECONDS})")
    ap.add_argument("--quick", action="store_true", help="tiny workloads, 1 rep, one process: a smoke test")
    ap.add_argument("--readme", action="store_true", help="the README's tables: all workloads, both dtypes, "
                                                          "every peer, as markdown")
    ap.add_argument("--plot", default="bench_out/speedup.png", help="PNG bar chart ('' for none)")
    ap.add_argument("--json", default="", help="also write the rows as JSON here")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    dtypes = a.dtype or (list(workloads.DTYPES) if a.readme else ["float64"])
    if a.worker:  # one peer, one workload, in this fresh process
        ts = peer_times(a.worker, a.only, dtypes[0], a.reps or 5, a.tiny, a.min_seconds or 0.0)
        print("RESULT " + json.dumps({"seconds": statistics.median(ts), "times": ts}), flush=True)
        return 0
    names = [s.strip() for s in a.only.split(",") if s.strip()] or workloads.names()
    chosen = list(README_PEERS) if a.readme else [s.strip() for s in a.peers.split(",") if s.strip()]
    print(format_table([]).splitlines()[0], flush=True)

    def show(row):
        for line in format_table([row]).splitlines()[2:-1]:
            print(line, flush=True)

    rows = run_table(names, dtypes, a.quick, peers=chosen, reps=a.reps, progress=show, rounds=a.rounds,
                     min_seconds=a.min_seconds)
    print()
    print(format_markdown(rows) if a.readme else format_table(rows))
    if a.plot:
        os.makedirs(os.path.dirname(os.path.abspath(a.plot)), exist_ok=True)
        plot_table(rows, a.plot)
        print(f"saved {a.plot}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
