"""Where a tiny network's training time goes: per ``fit`` call, per epoch, Python around the kernel or the kernel.

For each training workload asked for (default W1 and W2, ``fastmlp.workloads``), one process times, in CPU time
(``fastmlp._timing.cpu_seconds``; run it with ``OPENBLAS_NUM_THREADS=1`` on a shared machine), interleaved:

- ``MLP.fit`` of 1 epoch and of the workload's epochs per repetition (what ``fastmlp bench`` times);
- ``_engine.train_epochs`` (the engine's validation, buffers and kernel calls, without the model around it),
  the same two sizes.

The median of each gives the cost of one call (``fit`` of 1 epoch), the cost of each further epoch
(``(t(E) - t(1)) / (E - 1)``), and so the share of ``fit``'s own per-call work and of the engine's in a
repetition. Compare two commits by running it in each, alternately::

    OPENBLAS_NUM_THREADS=1 python scripts/epoch_overhead.py [--workloads W1 W2] [--reps 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys


def measure(name: str, reps: int) -> str:
    from fastmlp import _engine, _timing, workloads

    w = workloads.get(name)
    X, Y = w.make_data("float64")
    model = w._fastmlp_model("float64")
    model.fit(X, Y, epochs=1, learning_rate=w.lr, batch_size=w.batch)  # compile or load, allocate
    net = model._net

    def fit(n):
        return lambda: model.fit(X, Y, epochs=n, learning_rate=w.lr, batch_size=w.batch, shuffle=False)

    def engine(n):
        return lambda: _engine.train_epochs(net, X, Y, "bce", learning_rate=w.lr, epochs=n, batch_size=w.batch)

    runs = {("fit", 1): fit(1), ("fit", w.epochs): fit(w.epochs), ("engine", 1): engine(1),
            ("engine", w.epochs): engine(w.epochs)}
    times: dict = {key: [] for key in runs}
    for _ in range(reps):
        for key, run in runs.items():
            times[key].append(_timing.cpu_seconds(run))
    t = {key: statistics.median(v) for key, v in times.items()}
    lines = []
    for what in ("fit", "engine"):
        one, full = t[(what, 1)], t[(what, w.epochs)]
        per_epoch = (full - one) / (w.epochs - 1)
        call = one - per_epoch
        lines.append(f"| {w.name} | {what} | {call * 1e6:.1f} us | {per_epoch * 1e6:.3f} us | "
                     f"{full * 1e3:.3f} ms | {call / full:.1%} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["W1", "W2"])
    parser.add_argument("--reps", type=int, default=40)
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| workload | through | per call | per epoch | one repetition | per-call share |")
    print("|---|---|--:|--:|--:|--:|")
    for name in args.workloads:
        print(measure(name, args.reps), flush=True)


if __name__ == "__main__":
    main()
