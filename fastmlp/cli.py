"""The ``fastmlp`` command (also ``python -m fastmlp``).

Subcommands
-----------
``demo``     XOR, two moons and breast cancer, trained on the fast path, with the speedup over the reference.
``train``    train a network on a CSV/NPZ/NPY file and save it (with its preprocessing) to an ``.npz`` model.
``predict``  apply a saved model to a data file, write the predictions as CSV.
``bench``    the speedup table from the benchmark registry (:mod:`fastmlp.workloads`).
``info``     versions, threading layer, BLAS, compile cache.
``export``   write a saved model (with its preprocessing) as an ONNX file (needs the ``onnx`` extra).

Conventions of ``train``
------------------------
- Features are standardised (z-scores with the *training* rows' mean and standard deviation; a constant
  column gets standard deviation 1). The mean and standard deviation are saved with the model and
  ``predict`` applies them.
- The loss, unless ``--loss`` says otherwise: ``bce`` (sigmoid output) when the target has exactly two
  distinct values (numbers or text labels); ``ce`` (softmax output, one-hot targets) when it holds text
  labels, or integers with 3 to 20 distinct values; ``mse`` (linear output) otherwise. With ``mse`` the
  target is standardised as well, and predictions are mapped back to its scale.
- ``--val-fraction`` of the rows (default 0.2), drawn with ``--seed``, are held out for validation.
- The minibatches are reshuffled every epoch (seeded by ``--seed``); ``--batch-size`` larger than the
  training set means full-batch training.

Bad input (a missing file, a non-numeric cell, a missing target column, a malformed option, a corrupt
model, data that does not fit the model) ends the command with exit status 2 and a single line
``error: ...`` on stderr; no output file is created or replaced. A training run that diverges ends with
status 1; Ctrl-C ends with status 130 and saves nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

__all__ = ["main"]

#: integer targets with at most this many distinct values are classes (unless --loss says otherwise)
MAX_INTEGER_CLASSES = 20
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
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


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
        return int(text)
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


def _fmt_label(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _fmt_num(value) -> str:
    return format(float(value), ".8g")


def _r2(y, pred) -> float:
    y = np.asarray(y, dtype=np.float64)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ss_res = float(np.sum((y - np.asarray(pred, dtype=np.float64)) ** 2))
    return float("nan") if ss_tot == 0 else 1.0 - ss_res / ss_tot


def _fmt_score(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _time_str(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


# ---------------------------------------------------------------------------------------- the task


def choose_task(y, loss: str | None, target_name: str):
    """Decide the loss and encode the targets.

    Returns
    -------
    loss : str
    classes : ndarray or None
        Sorted class labels (classification) or None (regression).
    """
    text = y.dtype.kind == "U"
    values = np.unique(y)
    n_distinct = values.size
    if n_distinct < 2:
        only = _fmt_label(values[0])
        raise UsageError(f"target column {target_name!r} has a single value ({only}): nothing to learn")
    integral = (not text) and bool(np.all(np.asarray(values, dtype=np.float64) % 1 == 0))
    if loss is None:
        if n_distinct == 2:
            loss = "bce"
        elif text or (integral and 3 <= n_distinct <= MAX_INTEGER_CLASSES):
            loss = "ce"
        else:
            loss = "mse"
    if loss == "bce" and n_distinct != 2:
        raise UsageError(
            f"--loss bce needs a target with exactly 2 classes; column {target_name!r} has {n_distinct} distinct values"
        )
    if loss == "mse":
        if text:
            raise UsageError(f"--loss mse needs a numeric target; column {target_name!r} holds text labels")
        return loss, None
    return loss, values


def encode_targets(y, loss, classes, target_stats=None) -> np.ndarray:
    """Targets in the model's layout, samples as columns: ``(1, m)`` for bce/mse, one-hot ``(k, m)`` for ce."""
    if loss == "mse":
        mean, std = target_stats
        return ((np.asarray(y, dtype=np.float64) - mean) / std).reshape(1, -1)
    idx = np.searchsorted(classes, y)
    if loss == "bce":
        return idx.astype(np.float64).reshape(1, -1)
    onehot = np.zeros((classes.size, y.shape[0]))
    onehot[idx, np.arange(y.shape[0])] = 1.0
    return onehot


def decode_outputs(A, pre):
    """Model outputs ``A`` (n_y, m) -> (labels or values (m,), probabilities (m, k) or None)."""
    task = pre.get("task")
    if task in ("binary", "multiclass"):
        classes = np.asarray(pre["classes"])
        if task == "binary":
            p1 = A[0]
            proba = np.column_stack([1.0 - p1, p1])
        else:
            proba = A.T
        return classes[np.argmax(proba, axis=1)], proba
    if task == "regression":
        return A[0] * float(pre["target_std"]) + float(pre["target_mean"]), None
    return None, None


def _score(task, y_true, y_pred):
    if task == "regression":
        return "R²", _r2(y_true, y_pred)
    return "accuracy", float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


# ------------------------------------------------------------------------------------------- train


def cmd_train(args) -> int:
    from fastmlp.io import fit_standardizer, read_table, save_model, standardize

    _check_output(args.out, args.data, what="output")
    if args.plot is not None:
        _check_output(args.plot, args.data, args.out, what="plot")
        if _same_file(args.plot, args.out) or os.path.abspath(args.plot) == os.path.abspath(args.out):
            raise UsageError("--plot and --out name the same file")
        _require_matplotlib()
    X, y, names, target = read_table(args.data, target=args.target, return_target_name=True)
    m, n = X.shape
    loss, classes = choose_task(y, args.loss, target)

    rng = np.random.RandomState(args.seed)
    perm = rng.permutation(m)
    n_val = int(round(m * args.val_fraction))
    if args.val_fraction > 0 and n_val == 0 and m > 1:
        n_val = 1
    if m - n_val < 1:
        raise UsageError(f"{m} rows leave nothing to train on with --val-fraction {args.val_fraction}")
    tr, va = np.sort(perm[n_val:]), np.sort(perm[:n_val])

    mean, std = fit_standardizer(X[tr])
    Xs = standardize(X, mean, std)
    pre = {
        "mean": mean,
        "std": std,
        "feature_names": np.asarray(names, dtype=np.str_),
        "target_name": target,
    }
    target_stats = None
    if loss == "mse":
        tmean, tstd = fit_standardizer(np.asarray(y[tr], dtype=np.float64).reshape(-1, 1))
        target_stats = (float(tmean[0]), float(tstd[0]))
        pre.update(task="regression", target_mean=target_stats[0], target_std=target_stats[1])
        n_out, out_act = 1, "linear"
    else:
        pre.update(task="binary" if loss == "bce" else "multiclass", classes=classes)
        n_out, out_act = (1, "sigmoid") if loss == "bce" else (classes.size, "softmax")
    Y = encode_targets(y, loss, classes, target_stats)

    from fastmlp.model import MLP

    dims = [n, *args.hidden, n_out]
    model = MLP(dims, hidden_activation=args.activation, output_activation=out_act, loss=loss, seed=args.seed,
                dtype=args.dtype)
    Xtr, Ytr = np.ascontiguousarray(Xs[tr].T), np.ascontiguousarray(Y[:, tr])
    batch = min(args.batch_size, len(tr))
    desc = "-".join(map(str, dims))
    kind = f"{args.activation} net" if args.hidden else "net (no hidden layer)"
    _say(f"training {desc} {kind}, loss {loss}, on {len(tr)} rows "
         f"({n_val} held out), {args.epochs} epochs, batch {batch}, lr {args.lr:g}, {args.dtype}")
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

    task = pre["task"]
    pred, _ = decode_outputs(model.forward(np.ascontiguousarray(Xs.T)), pre)
    metric, train_score = _score(task, y[tr], pred[tr])
    line = f"final cost {model.history[-1]:.5g} after {len(model.history)} epochs in {elapsed:.2f} s; "
    line += f"train {metric} {_fmt_score(train_score)}"
    if n_val:
        _, val_score = _score(task, y[va], pred[va])
        line += f", validation {metric} {_fmt_score(val_score)}"
    _say(line)
    save_model(model, args.out, preprocessing=pre)
    _say(f"saved model to {args.out}")
    if args.plot is not None:
        from fastmlp.plot import loss_curve

        loss_curve(model, path=args.plot, title=f"{os.path.basename(args.data)}: {desc} ({loss})")
        _say(f"saved learning curve to {args.plot}")
    return EXIT_OK


# ----------------------------------------------------------------------------------------- predict


def _select_features(X, names, pre, n_features, data_path):
    """Columns of ``X`` in the model's feature order."""
    wanted = pre.get("feature_names")
    generic = all(c == f"col{i}" for i, c in enumerate(names))
    if wanted is not None:
        wanted = [str(w) for w in np.atleast_1d(wanted)]
        if all(w in names for w in wanted) and not (generic and X.shape[1] == n_features and names != wanted):
            idx = [names.index(w) for w in wanted]
            return X[:, idx]
        if not generic:
            missing = [w for w in wanted if w not in names]
            shown = ", ".join(map(repr, missing[:5])) + (", ..." if len(missing) > 5 else "")
            raise UsageError(
                f"{data_path!r} lacks column(s) {shown} that the model was trained on "
                f"(it has {X.shape[1]} feature column(s), the model expects {n_features})"
            )
    if X.shape[1] != n_features:
        raise UsageError(f"{data_path!r} has {X.shape[1]} feature column(s), the model expects {n_features}")
    return X


def cmd_predict(args) -> int:
    from fastmlp.io import atomic_write, load_model, read_model_info, read_table, standardize

    _check_output(args.out, args.model, args.data, what="output")
    info = read_model_info(args.model)  # validates the file without compiling anything
    pre = info["preprocessing"]
    target = pre.get("target_name") if args.target is None else args.target
    X, y, names = read_table(args.data, target=target, optional_target=True)
    n_features = info["n_features_in"]
    X = _select_features(X, names, pre, n_features, args.data)
    if "mean" in pre and "std" in pre:
        X = standardize(X, pre["mean"], pre["std"])
    model = load_model(args.model)
    m = X.shape[0]
    proba = None
    if info["kind"] == "MLP":
        A = model.forward(np.ascontiguousarray(X.T))
        pred, proba = decode_outputs(A, pre)
        if pred is None:  # a model saved without preprocessing: its own predict
            pred = np.asarray(model.predict(np.ascontiguousarray(X.T)))
            pred = pred.reshape(-1, m).T if pred.ndim == 2 and pred.shape[0] > 1 else pred.reshape(m)
    else:
        pred = np.asarray(model.predict(X))
        if hasattr(model, "predict_proba") and pred.ndim == 1:
            proba = np.asarray(model.predict_proba(X))
    task = pre.get("task")
    if task is None:
        task = "regression" if info["kind"] == "MLPRegressor" or info.get("loss") == "mse" else "classification"

    header = ["prediction"] if pred.ndim == 1 else [f"prediction_{j}" for j in range(pred.shape[1])]
    classes = pre.get("classes")
    if classes is None and info["kind"] == "MLPClassifier":
        classes = model.classes_
    if proba is not None and classes is not None and proba.shape[1] == len(classes):
        header += [f"proba_{_fmt_label(c)}" for c in np.atleast_1d(classes)]
    else:
        proba = None

    lines = [",".join(header)]
    for i in range(m):
        row = [_fmt_label(v) if task != "regression" else _fmt_num(v) for v in np.atleast_1d(pred[i])]
        if proba is not None:
            row += [_fmt_num(p) for p in proba[i]]
        lines.append(",".join(_csv_cell(c) for c in row))
    text = "\n".join(lines) + "\n"
    atomic_write(args.out, lambda fh: fh.write(text.encode("utf-8")))
    _say(f"wrote {m} predictions to {args.out}")
    if y is not None and pred.ndim == 1:
        if task == "regression" and y.dtype.kind != "U":
            _say(f"R² {_fmt_score(_r2(y, pred))} against column {target!r} ({m} rows)")
        elif task != "regression":
            truth = np.array([_fmt_label(v) for v in y])
            guess = np.array([_fmt_label(v) for v in pred])
            _say(f"accuracy {np.mean(truth == guess):.4f} against column {target!r} ({m} rows)")
    return EXIT_OK


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


# ------------------------------------------------------------------------------------------- bench


def cmd_bench(args) -> int:
    if args.plot is not None:
        _check_output(args.plot, what="plot")
        _require_matplotlib()
    from fastmlp import _bench, workloads

    names = [workloads.get(s.strip()).name for s in (args.only or "").split(",") if s.strip()] or None
    peers = [s.strip() for s in (args.peers or "").split(",") if s.strip()] or None
    for peer in peers or ():
        if peer not in _bench.PEERS:
            raise UsageError(f"unknown peer {peer!r} for --peers; expected some of {', '.join(_bench.PEERS)}")
    for line in _bench.format_table([]).splitlines():
        _say(line)

    def show(row):
        for line in _bench.format_table([row]).splitlines()[2:-1]:
            _say(line)

    rows = _bench.run_table(names, dtypes=args.dtype, quick=args.quick, peers=peers, progress=show)
    if rows:
        _say(_bench.format_table(rows).splitlines()[-1])
    if args.quick:
        _say("(--quick: tiny workloads, one repetition -- a smoke test, not a measurement)")
    if args.plot is not None:
        from fastmlp.plot import speedup_chart

        speedup_chart(rows, path=args.plot)
        _say(f"saved chart to {args.plot}")
    return EXIT_OK


# -------------------------------------------------------------------------------------------- info


def _version_of(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "not installed"


def cmd_info(args) -> int:
    import platform

    import fastmlp
    from fastmlp import _blas, _config

    rows = [
        ("fastmlp", fastmlp.__version__),
        ("python", f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})"),
        ("platform", platform.platform()),
        ("numpy", np.__version__),
    ]
    for dist in ("numba", "scipy", "scikit-learn", "tqdm", "matplotlib", "threadpoolctl"):
        rows.append((dist, _version_of(dist)))
    try:
        import numba

        rows.append(("numba threading layer", _threading_layer(numba)))
        rows.append(("numba threads", str(numba.config.NUMBA_NUM_THREADS)))
    except ImportError:
        pass
    cache_dir = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.dirname(_config.__file__), "__pycache__")
    rows.append(("compile cache", f"{'enabled' if _config.CACHE else 'disabled'} ({cache_dir})"))
    rows.append(("fastmath flags", ",".join(sorted(_config.FASTMATH))))
    rows.append(("BLAS crossover", f"{_config.BLAS_MIN_FLOPS} multiply-adds (FASTMLP_BLAS_MIN_FLOPS)"))
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    chosen = _blas.CHOSEN_CORETYPE
    who = "set by fastmlp" if chosen else "not set by fastmlp"
    rows.append(("OPENBLAS_CORETYPE", f"{coretype or 'unset'} ({who})"))
    rows.extend(_blas_rows())
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        _say(f"{key:<{width}}  {value}")
    return EXIT_OK


def _threading_layer(numba) -> str:
    configured = numba.config.THREADING_LAYER
    try:
        active = numba.threading_layer()  # only known once a parallel kernel has run
    except ValueError:
        active = None
    if active:
        return f"{active} (configured: {configured})"
    return f"configured: {configured} (no parallel kernel run yet)"


def _blas_rows():
    try:
        import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS, the one Numba calls)
    except ImportError:
        return [("BLAS", "scipy not installed")]
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [("BLAS", "install threadpoolctl to see which BLAS library and kernels are in use")]
    rows = []
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        folder = os.path.basename(os.path.dirname(lib.get("filepath", ""))).lower()
        if folder.startswith("scipy"):
            label = "BLAS (SciPy, kernels)"
        elif folder.startswith("numpy"):
            label = "BLAS (NumPy)"
        else:
            label = "BLAS"
        rows.append((label, f"{lib.get('internal_api')} {lib.get('version')}, kernels {lib.get('architecture')}, "
                            f"{lib.get('num_threads')} threads, {lib.get('threading_layer')} threading"))
        rows.append((f"{label} file", lib.get("filepath", "?")))
    return rows or [("BLAS", "no BLAS library found by threadpoolctl")]


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

    p = sub.add_parser("bench", help="speedup over the NumPy reference on the benchmark workloads",
                       description="Time fastmlp against the NumPy reference (and, with --peers, PyTorch, JAX, "
                                   "scikit-learn when installed) on the registry's workloads, each peer in a "
                                   "fresh process; print the epoch times and speedups.")
    p.add_argument("--quick", action="store_true", help="tiny workloads, one repetition (a smoke test)")
    p.add_argument("--only", default=None, help="comma-separated workloads, e.g. W1,W3 (default W1-W4); "
                                                "also S1,S2 (estimators against scikit-learn)")
    p.add_argument("--peers", default=None, help="comma-separated, from reference,fastmlp,torch,jax,sklearn")
    p.add_argument("--dtype", choices=("float64", "float32"), action="append", default=None,
                   help="repeatable; default float64")
    p.add_argument("--plot", default=None, metavar="PNG", help="save a bar chart of the speedups there")
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
        if getattr(args, "dtype", None) is None and args.command == "bench":
            args.dtype = ["float64"]
        return int(args.func(args) or 0)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except (UsageError, ValueError, OSError, ImportError) as exc:
        message = str(exc).replace("\n", " ").strip() or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except FloatingPointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
