"""The quick speedup table: fastmlp against its reference and its peers, on the registry's workloads.

The core of ``scripts/bench.py`` and of ``fastmlp bench``. Each (workload, dtype, peer) is timed in a
fresh process (``python -m fastmlp._bench --worker ...``) so that thread pools (BLAS, OpenMP, XLA) of
different peers never compete and every peer starts cold; the time is the median of ``reps`` calls, each
training the workload's epochs per repetition (``fastmlp.workloads``), after one untimed warm-up call.

Peers:

``reference``  :mod:`fastmlp.reference` (pure NumPy): the baseline of the training workloads W1-W4
``fastmlp``    :class:`fastmlp.MLP` (W1-W4) or :class:`fastmlp.MLPClassifier` (S1, S2)
``torch``      PyTorch CPU, ``nn.Sequential`` + ``BCEWithLogitsLoss`` + ``optim.SGD`` (W1-W4)
``jax``        JAX, one ``jax.jit``-compiled SGD step per minibatch (W1-W4)
``sklearn``    scikit-learn's ``MLPClassifier``: plain SGD via ``partial_fit`` for W1-W4; the baseline of
               the estimator workloads S1, S2 (same constructor arguments as fastmlp's)

A peer that is not installed (or fails) is reported as unavailable, never fatal.

>>> from fastmlp import _bench
>>> rows = _bench.run_table(["W2-deep"], peers=["reference", "fastmlp"])   # doctest: +SKIP
>>> print(_bench.format_table(rows))                                        # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings

import numpy as np

from fastmlp import workloads

#: every peer this module knows, in table order
PEERS = ("reference", "fastmlp", "torch", "jax", "sklearn")
#: the peers each kind of workload can run
_PEERS_FOR = {"mlp": ("reference", "fastmlp", "torch", "jax", "sklearn"), "estimator": ("sklearn", "fastmlp")}
#: what each kind of workload's speedups are measured against
BASELINE = {"mlp": "reference", "estimator": "sklearn"}

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


def build_peer(peer: str, w, dtype):
    """A zero-argument callable training ``w.epochs`` epochs of workload ``w`` with ``peer``.

    Raises ``ImportError``/``NotImplementedError`` when the peer is not available here, ``ValueError``
    when it does not apply to this kind of workload.
    """
    if peer not in _PEERS_FOR[w.kind]:
        raise ValueError(f"peer {peer!r} does not run {w.kind} workloads like {w.name}")
    if w.kind == "estimator" or peer in ("reference", "fastmlp"):
        return w.build(peer, dtype)
    return {"torch": _torch_runner, "jax": _jax_runner, "sklearn": _sklearn_sgd_runner}[peer](w, dtype)


def time_peer(peer: str, name: str, dtype="float64", reps: int = 5, tiny: bool = False) -> float:
    """Median seconds of one call (``epochs`` epochs) of ``peer`` on workload ``name``, in this process."""
    w = workloads.get(name, tiny=tiny)
    return workloads.median_time(build_peer(peer, w, dtype), reps)


def _time_isolated(peer, name, dtype, reps, tiny) -> float:
    cmd = [sys.executable, "-m", "fastmlp._bench", "--worker", peer, "--only", name, "--dtype", dtype,
           "--reps", str(reps)] + (["--tiny"] if tiny else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=_WORKER_TIMEOUT)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return float(json.loads(line[7:])["seconds"])
    lines = [s for s in r.stderr.strip().splitlines() if s.strip()] or [f"worker exited with {r.returncode}"]
    raise RuntimeError(lines[-1])


# ------------------------------------------------------------------------------------ the table


def run_table(names=None, dtypes=("float64",), quick: bool = False, *, peers=None, reps: int | None = None,
              isolate: bool | None = None, plot=None, progress=None) -> list[dict]:
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
        Timed calls per peer (median). Default 5, or 1 when ``quick``.
    isolate : bool, optional
        Each peer in its own process. Default: True unless ``quick``.
    plot : path, optional
        Also save :func:`plot_table`'s bar chart there.
    progress : callable, optional
        Called with each finished row (e.g. to print as you go).

    Returns
    -------
    list of dict
        ``workload``, ``dtype``, ``baseline`` (peer name), ``epochs`` (per call), ``m``, ``ms_per_epoch``
        (peer -> ms), ``samples_per_s`` (peer -> samples/s), ``speedups`` (peer -> baseline time / peer
        time), ``speedup`` (fastmlp's, or None), ``errors`` (peer -> why it is unavailable).
    """
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    reps = reps if reps is not None else (1 if quick else 5)
    isolate = (not quick) if isolate is None else isolate
    chosen = [workloads.get(n, tiny=quick) for n in (names or workloads.names("mlp"))]
    rows = []
    for w in chosen:
        base = BASELINE[w.kind]
        wanted = list(peers) if peers else [base, "fastmlp"]
        for p in wanted:
            if p not in PEERS:
                raise ValueError(f"unknown peer {p!r}; expected some of {', '.join(PEERS)}")
        # the baseline first (a speedup needs it, and it starts the table), then the others in PEERS order
        order = [base] + [p for p in PEERS if p in wanted and p in _PEERS_FOR[w.kind] and p != base]
        for dtype in dtypes:
            times, errors = {}, {}
            for peer in order:
                try:
                    if isolate:
                        times[peer] = _time_isolated(peer, w.name, dtype, reps, w.tiny)
                    else:
                        times[peer] = time_peer(peer, w.name, dtype, reps, w.tiny)
                except Exception as exc:  # a peer that is missing or broken is reported, not fatal
                    errors[peer] = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
            t_base = times.get(base)
            speedups = {p: (t_base / t if t_base else None) for p, t in times.items()}
            row = dict(workload=w.name, dtype=str(dtype), baseline=base, epochs=w.epochs, m=w.m,
                       ms_per_epoch={p: 1e3 * t / w.epochs for p, t in times.items()},
                       samples_per_s={p: w.m * w.epochs / t for p, t in times.items()},
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
    head = f"{'workload':<15} {'dtype':<8} {'peer':<10} {'ms/epoch':>11} {'samples/s':>13} {'speedup':>9}"
    out = [head, "-" * len(head)]
    for r in rows:
        peers = list(r["ms_per_epoch"]) + [p for p in r["errors"] if p not in r["ms_per_epoch"]]
        for p in peers:
            label = f"{r['workload']:<15} {r['dtype']:<8} {p:<10}"
            if p in r["errors"]:
                out.append(f"{label} unavailable ({r['errors'][p]})")
                continue
            s = r["speedups"].get(p)
            ratio = f"{s:8.2f}x" if s is not None else "      n/a"
            out.append(f"{label} {r['ms_per_epoch'][p]:>11.4f} {r['samples_per_s'][p]:>13,.0f} {ratio}")
    if rows:
        bases = sorted({f"{r['baseline']} ({r['workload'].split('-')[0][0]}*)" for r in rows})
        out.append(f"speedup = baseline time / peer time, measured in this run; baseline: {', '.join(bases)}")
    return "\n".join(out)


def plot_table(rows, path):
    """Grouped horizontal bars: for each (workload, dtype), each peer's speedup over the baseline (log x)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    groups = [r for r in rows if any(v for v in r["speedups"].values())]
    if not groups:
        raise ValueError("no speedups to plot")
    peers = [p for p in PEERS if any(p in r["speedups"] and p != r["baseline"] for r in groups)]
    colors = dict(zip(PEERS, ["0.6", "tab:red", "tab:orange", "tab:green", "tab:blue"], strict=True))
    height = 0.8 / max(1, len(peers))
    fig, ax = plt.subplots(figsize=(8.0, 1.0 + 0.35 * len(groups) * len(peers)))
    labelled = set()
    for gi, r in enumerate(groups):
        y0 = len(groups) - 1 - gi
        for pi, p in enumerate(peers):
            v = r["speedups"].get(p)
            if not v or p == r["baseline"]:  # the baseline is the dashed line at 1
                continue
            y = y0 + 0.4 - height * (pi + 0.5)
            ax.barh(y, v, height=height * 0.9, color=colors[p], label=None if p in labelled else p)
            labelled.add(p)
            ax.text(v, y, f" {v:.3g}x", va="center", fontsize=7)
    ax.set_yticks(range(len(groups))[::-1], [f"{r['workload']}\n{r['dtype']}" for r in groups], fontsize=8)
    ax.axvline(1.0, color="0.3", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("speedup over the baseline, the dashed line (NumPy reference for W*, scikit-learn for S*)"
                  "; log scale", fontsize=8)
    ax.set_title("fastmlp and its peers: epoch-time ratio, one run" + (" (tiny workloads)" if groups[0]["tiny"]
                                                                            else ""))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# -------------------------------------------------------------------------------- command line


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated workloads, e.g. W1,W4,S1 (default: all)")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, from {','.join(PEERS)}")
    ap.add_argument("--dtype", action="append", choices=workloads.DTYPES, help="repeatable; default float64")
    ap.add_argument("--reps", type=int, default=None, help="timed calls per peer (median); default 5")
    ap.add_argument("--quick", action="store_true", help="tiny workloads, 1 rep, one process: a smoke test")
    ap.add_argument("--plot", default="bench_out/speedup.png", help="PNG bar chart ('' for none)")
    ap.add_argument("--json", default="", help="also write the rows as JSON here")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    dtypes = a.dtype or ["float64"]
    if a.worker:  # one peer, one workload, in this fresh process
        t = time_peer(a.worker, a.only, dtypes[0], a.reps or 5, a.tiny)
        print("RESULT " + json.dumps({"seconds": t}), flush=True)
        return 0
    names = [s.strip() for s in a.only.split(",") if s.strip()] or workloads.names()
    peers = [s.strip() for s in a.peers.split(",") if s.strip()]
    print(format_table([]).splitlines()[0], flush=True)

    def show(row):
        for line in format_table([row]).splitlines()[2:-1]:
            print(line, flush=True)

    rows = run_table(names, dtypes, a.quick, peers=peers, reps=a.reps, progress=show)
    print()
    print(format_table(rows))
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
