"""The ``fastmlp`` command (also ``python -m fastmlp``).

Subcommands
-----------
``demo``     XOR, two moons and breast cancer, trained on the fast path, with the speedup over the reference.
``train``    train a network on a CSV/NPZ/NPY file and save it (with its preprocessing) to an ``.npz`` model.
``predict``  apply a saved model to a data file, write the predictions as CSV.
``bench``    speedup table over the registry's workloads (:mod:`fastmlp._bench`); ``--readme``: the README's tables.
``info``     versions, threading layer, BLAS, compile cache.
``export``   write a saved model (with its preprocessing) as an ONNX file (needs the ``onnx`` extra).

``train`` and ``predict`` are the tabular pipeline of :mod:`fastmlp._tabular` (its docstring has the
conventions: standardisation, the loss rule, the validation split, what is saved with the model); this
module parses the command line and reports.

Bad input (a missing file, a non-numeric cell, a missing target column, a malformed option, a corrupt
or inconsistent model file, data that does not fit the model) and resource errors (out of memory, a full
disk) end the command with exit status 2 and a single line ``error: ...`` on stderr; no output file is
created or replaced. A training run that diverges ends with
status 1; Ctrl-C ends with status 130 and saves nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from fastmlp._checks import parse_int, parse_positive_float

__all__ = ["main"]

_HIDDEN_ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "linear")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the command line: reported as one ``error:`` line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ------------------------------------------------------------------------------------------------ types


def _positive_int(text: str) -> int:
    try:
        return parse_int(text, "value", minimum=1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        return parse_positive_float(text, "value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}") from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not (0.0 <= value < 1.0):
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return value


def _int_arg(text: str) -> int:
    try:
        return parse_int(text, "value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def parse_hidden(text: str) -> list[int]:
    """``"64,32"`` -> ``[64, 32]``; ``""`` or ``"none"`` -> ``[]`` (no hidden layer)."""
    stripped = text.strip()
    if stripped.lower() in ("", "none"):
        return []
    sizes = []
    for part in stripped.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise argparse.ArgumentTypeError(
                f"must be comma-separated positive layer sizes like 64,32, got {text!r}"
            )
        sizes.append(int(part))
    return sizes


# ------------------------------------------------------------------------------------------- helpers


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _check_output(path, *inputs, what="output") -> None:
    """Fail before any work when ``path`` cannot be written or would overwrite an input."""
    if not path.strip():
        raise UsageError(f"{what} needs a file name (got {path!r})")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{what} folder {os.path.dirname(path) or '.'!r} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{what} {path!r} is a folder")
    for other in inputs:
        if other is not None and _same_file(path, other):
            raise UsageError(f"{what} {path!r} would overwrite the input {other!r}")


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError('--plot needs matplotlib; install the plot extra: pip install "fastmlp[plot]"') from None


def _say(*args) -> None:
    print(*args, flush=True)


# ------------------------------------------------------------------------------------------- train


def cmd_train(args) -> int:
    from fastmlp import _tabular
    from fastmlp.io import read_table, save_model

    _check_output(args.out, args.data, what="output")
    if args.plot is not None:
        _check_output(args.plot, args.data, args.out, what="plot")
        if _same_file(args.plot, args.out) or os.path.abspath(args.plot) == os.path.abspath(args.out):
            raise UsageError("--plot and --out name the same file")
        _require_matplotlib()
    X, y, names, target = read_table(args.data, target=args.target, return_target_name=True)
    table = _tabular.prepare(X, y, names, target, loss=args.loss, val_fraction=args.val_fraction, seed=args.seed)
    model = table.build_model(args.hidden, args.activation, args.seed, args.dtype)
    Xtr, Ytr = table.training_data()
    batch = min(args.batch_size, Xtr.shape[1])
    desc = "-".join(map(str, model.layer_dims))
    kind = f"{args.activation} net" if args.hidden else "net (no hidden layer)"
    _say(f"training {desc} {kind}, loss {table.loss}, on {Xtr.shape[1]} rows "
         f"({table.val.size} held out), {args.epochs} epochs, batch {batch}, lr {args.lr:g}, {args.dtype}")
    t0 = time.perf_counter()
    try:
        model.fit(Xtr, Ytr, epochs=args.epochs, learning_rate=args.lr, batch_size=batch, shuffle=True,
                  seed=args.seed, verbose=not args.quiet)
    except KeyboardInterrupt:
        done = len(model.history)
        print(f"interrupted after {done} epoch(s); nothing saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FloatingPointError as exc:
        print(f"error: training diverged ({exc}); try a smaller --lr; nothing saved", file=sys.stderr)
        return EXIT_FAILURE
    elapsed = time.perf_counter() - t0

    metric, train_score, val_score = table.evaluate(model)
    line = f"final cost {model.history[-1]:.5g} after {len(model.history)} epochs in {elapsed:.2f} s; "
    line += f"train {metric} {_tabular.format_score(train_score)}"
    if val_score is not None:
        line += f", validation {metric} {_tabular.format_score(val_score)}"
    _say(line)
    save_model(model, args.out, preprocessing=table.pre)
    _say(f"saved model to {args.out}")
    if args.plot is not None:
        from fastmlp.plot import loss_curve

        loss_curve(model, path=args.plot, title=f"{os.path.basename(args.data)}: {desc} ({table.loss})")
        _say(f"saved learning curve to {args.plot}")
    return EXIT_OK


# ----------------------------------------------------------------------------------------- predict


def cmd_predict(args) -> int:
    from fastmlp import _tabular
    from fastmlp.io import atomic_write, read_model_info, read_table

    _check_output(args.out, args.model, args.data, what="output")
    info = read_model_info(args.model)  # checks every entry against the network
    pre = info["preprocessing"]
    _tabular.check_preprocessing(pre, info)
    target = pre.get("target_name") if args.target is None else args.target
    X, y, names = read_table(args.data, target=target, optional_target=True)
    X = _tabular.select_features(X, names, pre, info["n_features_in"], args.data)
    p = _tabular.predict(info, X)
    text = _tabular.prediction_csv(p)
    atomic_write(args.out, lambda fh: fh.write(text.encode("utf-8")))
    m = X.shape[0]
    _say(f"wrote {m} predictions to {args.out}")
    if y is not None and p.values.ndim == 1:
        if p.task == "regression" and y.dtype.kind != "U":
            _say(f"R² {_tabular.format_score(_tabular.r2(y, p.values))} against column {target!r} ({m} rows)")
        elif p.task != "regression":
            truth = np.array([_tabular.format_label(v) for v in y])
            guess = np.array([_tabular.format_label(v) for v in p.values])
            _say(f"accuracy {np.mean(truth == guess):.4f} against column {target!r} ({m} rows)")
    return EXIT_OK


# ------------------------------------------------------------------------------------------- bench


def cmd_bench(args) -> int:
    if args.plot is not None:
        _check_output(args.plot, what="plot")
        _require_matplotlib()
    from fastmlp import _bench, workloads

    names = [workloads.get(s.strip()).name for s in (args.only or "").split(",") if s.strip()] or None
    peers = [s.strip() for s in (args.peers or "").split(",") if s.strip()] or None
    if args.readme:
        names = names or workloads.names()
        peers = peers or list(_bench.README_PEERS)
        args.dtype = args.dtype or list(workloads.DTYPES)
    args.dtype = args.dtype or ["float64"]
    for peer in peers or ():
        if peer not in _bench.peers():
            raise UsageError(f"unknown peer {peer!r} for --peers; expected some of {', '.join(_bench.peers())}")
    for line in _bench.format_table([]).splitlines():
        _say(line)

    def show(row):
        for line in _bench.format_table([row]).splitlines()[2:-1]:
            _say(line)

    for value, flag in ((args.rounds, "--rounds"), (args.reps, "--reps")):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    if args.min_seconds is not None and not args.min_seconds >= 0:
        raise UsageError(f"--min-seconds must be a non-negative number, got {args.min_seconds}")
    rows = _bench.run_table(names, dtypes=args.dtype, quick=args.quick, peers=peers, progress=show,
                            reps=args.reps, rounds=args.rounds, min_seconds=args.min_seconds)
    if rows:
        _say(_bench.format_table(rows).splitlines()[-1])
    if args.readme:
        _say("")
        _say(_bench.format_markdown(rows))
    if args.quick:
        _say("(--quick: tiny workloads, one repetition -- a smoke test, not a measurement)")
    if args.plot is not None:
        from fastmlp.plot import speedup_chart

        speedup_chart(rows, path=args.plot)
        _say(f"saved chart to {args.plot}")
    return EXIT_OK


# -------------------------------------------------------------------------------------------- info


def cmd_info(args) -> int:
    from fastmlp import _envreport

    rows = _envreport.rows()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        _say(f"{key:<{width}}  {value}")
    return EXIT_OK


def cmd_export(args) -> int:
    from fastmlp.onnx import export_model_file

    _check_output(args.out, args.model, what="output")
    export_model_file(args.model, args.out, dtype=args.dtype)
    _say(f"wrote ONNX model to {args.out}")
    return EXIT_OK


# -------------------------------------------------------------------------------------------- demo


def cmd_demo(args) -> int:
    from fastmlp import _demo

    return _demo.run(quick=args.quick, dtype=args.dtype, seed=args.seed, show_progress=not args.quiet)


# ------------------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    from fastmlp._version import __version__

    parser = _Parser(prog="fastmlp", description="Train multilayer perceptrons on the CPU, fast.")
    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="train XOR, two moons and breast cancer; show accuracy and speedup",
                       description="Train XOR (2-2-1 sigmoid), two moons (relu) and breast cancer (relu, "
                                   "standardised) on the fast path and print the speedup over the NumPy reference.")
    p.add_argument("--quick", action="store_true", help="fewer epochs and shorter timings (a smoke test)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--seed", type=_int_arg, default=0, help="seed of the data split and shuffling (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train on a CSV/NPZ/NPY file and save the model",
                       description="Train a network on a data file (samples as rows) and save it, with its "
                                   "feature standardisation and class labels, to an .npz model file.",
                       epilog="Loss rule: bce for 2 classes, ce for text labels or 3-20 integer classes, mse "
                              "otherwise. Features are z-scored with the training rows' mean and std.")
    p.add_argument("data", help="a .csv file with a header row (or .npz with X and the target, or .npy)")
    p.add_argument("--target", required=True, help="the target column (.npy: colK or a column index)")
    p.add_argument("--out", required=True, help="the model file to write (.npz)")
    p.add_argument("--hidden", type=parse_hidden, default=[64, 32],
                   help="hidden layer sizes, comma separated (default 64,32; 'none' for no hidden layer)")
    p.add_argument("--activation", choices=_HIDDEN_ACTIVATIONS, default="relu", help="hidden activation")
    p.add_argument("--loss", choices=("bce", "mse", "ce"), default=None, help="default: from the target")
    p.add_argument("--epochs", type=_positive_int, default=100, help="default 100")
    p.add_argument("--lr", type=_positive_float, default=0.05, help="learning rate (default 0.05)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="default 32")
    p.add_argument("--seed", type=_int_arg, default=0, help="seed of the initialisation, split, shuffling")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--val-fraction", type=_fraction, default=0.2, help="rows held out (default 0.2)")
    p.add_argument("--plot", default=None, metavar="PNG", help="save the learning curve there")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="apply a saved model to a data file",
                       description="Write the model's predictions for every row of DATA as CSV (with class "
                                   "probabilities for classifiers); report accuracy or R² when DATA has the "
                                   "target column.")
    p.add_argument("model", help="a model file written by 'fastmlp train' (or MLP.save)")
    p.add_argument("data", help="a data file laid out like the training data (the target column may be absent)")
    p.add_argument("--out", required=True, help="the CSV file to write")
    p.add_argument("--target", default=None, help="target column to score against (default: the training one)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("bench", help="speedup over the NumPy baseline and the peers on the benchmark workloads",
                       description="Time fastmlp against course-style NumPy code (and, with --peers, PyTorch, JAX, "
                                   "scikit-learn when installed) on the registry's workloads, each peer in a "
                                   "fresh process, the peers' processes taking turns over several rounds; print "
                                   "the epoch times (median of every timed call) and speedups.")
    p.add_argument("--quick", action="store_true", help="tiny workloads, one repetition (a smoke test)")
    p.add_argument("--only", default=None, help="comma-separated workloads, e.g. W1,W3 (default W1-W4); "
                                                "also S1,S2 (estimators against scikit-learn)")
    p.add_argument("--peers", default=None, help="comma-separated, from numpy,reference,fastmlp,torch,jax,"
                                                 "sklearn,gemm-floor (default: the baseline and fastmlp)")
    p.add_argument("--readme", action="store_true", help="the README's performance tables: every workload, both "
                                                         "dtypes, every peer, printed as markdown")
    p.add_argument("--dtype", choices=("float64", "float32"), action="append", default=None,
                   help="repeatable; default float64")
    p.add_argument("--plot", default=None, metavar="PNG", help="save a bar chart of the speedups there")
    p.add_argument("--rounds", type=int, default=None, metavar="N",
                   help="turns the peers' processes take, order reversed every other round (default 3)")
    p.add_argument("--reps", type=int, default=None, metavar="N",
                   help="timed calls per peer at least, shared out over the rounds (default 6)")
    p.add_argument("--min-seconds", type=float, default=None, metavar="S",
                   help="each process times calls until they add up to S seconds (default 0.3)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("info", help="versions, threading layer, BLAS, compile cache")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export", help="export a saved model to ONNX (needs the onnx extra)",
                       description="Write MODEL as an ONNX graph (input: the raw feature columns as rows, "
                                   "standardised in the graph; outputs: label/probabilities or variable).")
    p.add_argument("model", help="a model file written by 'fastmlp train' (or .save)")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--dtype", choices=("float64", "float32"), default=None, help="default: the model's")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv=None) -> int:
    """Run the ``fastmlp`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("choose a command: demo, train, predict, bench, info or export (see 'fastmlp --help')")
        return int(args.func(args) or 0)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except (UsageError, ValueError, OSError, ImportError) as exc:
        message = str(exc).replace("\n", " ").strip() or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError as exc:  # a resource error: one line, like bad input
        detail = str(exc).replace("\n", " ").strip()
        print(f"error: out of memory{': ' + detail if detail else ''} (try a smaller model or data set)",
              file=sys.stderr)
        return EXIT_USAGE
    except FloatingPointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
