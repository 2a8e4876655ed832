"""The tabular pipeline behind ``fastmlp train`` and ``fastmlp predict``: from a data table (samples as rows)
to a trained :class:`fastmlp.MLP` with its preprocessing, and back from a saved model to predictions.

Conventions
-----------
- Features are standardised (z-scores with the *training* rows' mean and standard deviation,
  :mod:`fastmlp._standardise`). The mean and standard deviation are saved with the model and applied again
  before predicting.
- The loss, unless the caller chooses: ``bce`` (sigmoid output) when the target has exactly two distinct
  values (numbers or text labels); ``ce`` (softmax output, one-hot targets) when it holds text labels, or
  integers with 3 to :data:`MAX_INTEGER_CLASSES` distinct values; ``mse`` (linear output) otherwise. With
  ``mse`` the target is standardised as well, and predictions are mapped back to its scale.
- A fraction of the rows, drawn with the seed, is held out for validation.

The preprocessing saved with a model (the ``pre__<name>`` entries of the model file)
------------------------------------------------------------------------------------
=================  =====================================================================================
name               content
=================  =====================================================================================
``mean``, ``std``  float64 ``(n_features,)``: the standardisation (``std > 0``)
``feature_names``  text ``(n_features,)``: the training table's feature columns, in the model's order
``target_name``    text: the training table's target column
``task``           ``"binary"``, ``"multiclass"`` or ``"regression"``
``classes``        ``(k,)`` class labels, sorted (``binary``: 2 labels, one sigmoid output; ``multiclass``:
                   ``k`` labels, ``k`` softmax outputs)
``target_mean``,   float: the target's standardisation (``regression``; ``target_std > 0``)
``target_std``
=================  =====================================================================================

:func:`check_preprocessing` holds a loaded model file to this table, so that a file that passes can predict.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math

import numpy as np

from fastmlp._standardise import fit_standardizer, standardize

__all__ = [
    "MAX_INTEGER_CLASSES",
    "choose_task",
    "encode_targets",
    "decode_outputs",
    "prepare",
    "Prepared",
    "check_preprocessing",
    "select_features",
    "predict",
    "prediction_csv",
]

#: integer targets with at most this many distinct values are classes (unless the loss is chosen)
MAX_INTEGER_CLASSES = 20
TASKS = ("binary", "multiclass", "regression")


def format_label(value) -> str:
    """A class label as text: whole floats without ``.0``."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def format_number(value) -> str:
    return format(float(value), ".8g")


def r2(y, pred) -> float:
    """Coefficient of determination (NaN for a constant target)."""
    y = np.asarray(y, dtype=np.float64)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ss_res = float(np.sum((y - np.asarray(pred, dtype=np.float64)) ** 2))
    return float("nan") if ss_tot == 0 else 1.0 - ss_res / ss_tot


def score(task, y_true, y_pred) -> tuple[str, float]:
    """``("R²", r2)`` for regression, ``("accuracy", fraction)`` otherwise."""
    if task == "regression":
        return "R²", r2(y_true, y_pred)
    return "accuracy", float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def format_score(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


# --------------------------------------------------------------------------------------------- training


def choose_task(y, loss: str | None, target_name: str):
    """Decide the loss from the target (unless ``loss`` is given) and the classes.

    Returns
    -------
    loss : str
    classes : ndarray or None
        Sorted class labels (classification) or None (regression).

    Raises
    ------
    ValueError
        The target has a single value, or does not fit the requested loss.
    """
    text = y.dtype.kind == "U"
    values = np.unique(y)
    n_distinct = values.size
    if n_distinct < 2:
        only = format_label(values[0])
        raise ValueError(f"target column {target_name!r} has a single value ({only}): nothing to learn")
    integral = (not text) and bool(np.all(np.asarray(values, dtype=np.float64) % 1 == 0))
    if loss is None:
        if n_distinct == 2:
            loss = "bce"
        elif text or (integral and 3 <= n_distinct <= MAX_INTEGER_CLASSES):
            loss = "ce"
        else:
            loss = "mse"
    if loss == "bce" and n_distinct != 2:
        raise ValueError(
            f"--loss bce needs a target with exactly 2 classes; column {target_name!r} has {n_distinct} distinct values"
        )
    if loss == "mse":
        if text:
            raise ValueError(f"--loss mse needs a numeric target; column {target_name!r} holds text labels")
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


def split_rows(m: int, val_fraction: float, seed) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (training rows, validation rows): a seeded permutation, ``round(m * val_fraction)`` held out
    (at least one when ``val_fraction > 0`` and ``m > 1``)."""
    perm = np.random.RandomState(seed).permutation(m)
    n_val = int(round(m * val_fraction))
    if val_fraction > 0 and n_val == 0 and m > 1:
        n_val = 1
    if m - n_val < 1:
        raise ValueError(f"{m} rows leave nothing to train on with --val-fraction {val_fraction}")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


@dataclasses.dataclass
class Prepared:
    """A table ready to train on (see :func:`prepare`)."""

    X: np.ndarray  # (m, n) standardised, samples as rows
    y: np.ndarray  # (m,) the target as read
    Y: np.ndarray  # (n_out, m) encoded targets, samples as columns
    train: np.ndarray  # row indices
    val: np.ndarray
    loss: str
    n_out: int
    out_activation: str
    pre: dict  # the preprocessing to save with the model

    @property
    def task(self) -> str:
        return self.pre["task"]

    def build_model(self, hidden, activation, seed, dtype):
        """A fresh :class:`fastmlp.MLP` for this table: ``[n_features, *hidden, n_out]``."""
        from fastmlp.model import MLP

        dims = [self.X.shape[1], *hidden, self.n_out]
        return MLP(dims, hidden_activation=activation, output_activation=self.out_activation, loss=self.loss,
                   seed=seed, dtype=dtype)

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """``(X (n, m_train), Y (n_out, m_train))``, samples as columns, as :meth:`MLP.fit` takes them."""
        return np.ascontiguousarray(self.X[self.train].T), np.ascontiguousarray(self.Y[:, self.train])

    def evaluate(self, model) -> tuple[str, float, float | None]:
        """``(metric name, training score, validation score or None)``."""
        pred, _ = decode_outputs(model.forward(np.ascontiguousarray(self.X.T)), self.pre)
        metric, train_score = score(self.task, self.y[self.train], pred[self.train])
        val_score = score(self.task, self.y[self.val], pred[self.val])[1] if self.val.size else None
        return metric, train_score, val_score


def prepare(X, y, names, target, *, loss=None, val_fraction=0.2, seed=0) -> Prepared:
    """Choose the task, split, standardise and encode a table (``X (m, n)``, ``y (m,)``)."""
    loss, classes = choose_task(y, loss, target)
    tr, va = split_rows(X.shape[0], val_fraction, seed)
    mean, std = fit_standardizer(X[tr])
    pre = {"mean": mean, "std": std, "feature_names": np.asarray(names, dtype=np.str_), "target_name": target}
    target_stats = None
    if loss == "mse":
        tmean, tstd = fit_standardizer(np.asarray(y[tr], dtype=np.float64).reshape(-1, 1))
        target_stats = (float(tmean[0]), float(tstd[0]))
        pre.update(task="regression", target_mean=target_stats[0], target_std=target_stats[1])
        n_out, out_act = 1, "linear"
    else:
        pre.update(task="binary" if loss == "bce" else "multiclass", classes=classes)
        n_out, out_act = (1, "sigmoid") if loss == "bce" else (classes.size, "softmax")
    return Prepared(standardize(X, mean, std), y, encode_targets(y, loss, classes, target_stats), tr, va, loss,
                    n_out, out_act, pre)


# ------------------------------------------------------------------------------------------- predicting


def check_preprocessing(pre: dict, info: dict) -> None:
    """Hold a loaded model's preprocessing to the table of the module docstring.

    ``info`` is :func:`fastmlp.io.read_model_info`'s description of the model. Raises ``ValueError`` naming
    the first entry that does not fit the network, so that a model that passes can predict.
    """
    n_in, n_out = info["n_features_in"], info["n_outputs"]

    def vector(name, kinds):
        a = np.asarray(pre[name])
        if a.ndim != 1 or a.shape[0] != n_in or a.dtype.kind not in kinds:
            raise ValueError(f"preprocessing {name!r} must hold {n_in} entries (one per input), got "
                             f"dtype {a.dtype} shape {a.shape}")
        return a

    if ("mean" in pre) != ("std" in pre):
        raise ValueError("preprocessing has only one of 'mean' and 'std'")
    if "mean" in pre:
        vector("mean", "iuf")
        if not np.all(vector("std", "iuf") > 0):
            raise ValueError("preprocessing 'std' must be positive")
    if "feature_names" in pre:
        names = vector("feature_names", "U")
        if np.unique(names).size != names.size:
            raise ValueError("preprocessing 'feature_names' names a column twice")
    for name in ("target_name", "task"):
        if name in pre and not isinstance(pre[name], str):
            raise ValueError(f"preprocessing {name!r} must be text")
    task = pre.get("task")
    if task is None:
        return
    if task not in TASKS:
        raise ValueError(f"preprocessing 'task' is {task!r}; expected one of {', '.join(TASKS)}")
    if info["kind"] != "MLP":
        raise ValueError(f"preprocessing 'task' is for an MLP, but the file holds a {info['kind']}")
    out_act = info["activations"][-1]
    if task == "regression":
        for name in ("target_mean", "target_std"):
            value = pre.get(name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"preprocessing {name!r} must be a finite number for a regression")
        if pre["target_std"] <= 0:
            raise ValueError("preprocessing 'target_std' must be positive")
        if n_out != 1:
            raise ValueError(f"a regression has one output, the network has {n_out}")
        return
    classes = np.asarray(pre.get("classes", []))
    if classes.ndim != 1 or classes.dtype.kind not in "biufU":
        raise ValueError("preprocessing 'classes' must be a 1-D array of labels")
    if np.unique(classes).size != classes.size:
        raise ValueError("preprocessing 'classes' holds a label twice")
    want = (2, 1, "sigmoid") if task == "binary" else (classes.size, classes.size, "softmax")
    if task == "multiclass" and classes.size < 2:
        raise ValueError("a multiclass model needs at least 2 classes")
    if (classes.size, n_out, out_act) != want:
        raise ValueError(f"a {task} model with {classes.size} classes needs {want[1]} {want[2]} output(s); "
                         f"the network has {n_out} {out_act} output(s)")


def select_features(X, names, pre, n_features, data_path):
    """Columns of ``X`` in the model's feature order (by name when the model knows the names)."""
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
            raise ValueError(
                f"{data_path!r} lacks column(s) {shown} that the model was trained on "
                f"(it has {X.shape[1]} feature column(s), the model expects {n_features})"
            )
    if X.shape[1] != n_features:
        raise ValueError(f"{data_path!r} has {X.shape[1]} feature column(s), the model expects {n_features}")
    return X


@dataclasses.dataclass
class Predictions:
    """What :func:`predict` returns."""

    values: np.ndarray  # (m,) labels or values, or (m, n_outputs)
    proba: np.ndarray | None  # (m, k) or None
    classes: np.ndarray | None
    task: str  # "regression" or "classification" or a pipeline task


def predict(info: dict, X) -> Predictions:
    """Predictions of the model in ``info`` (:func:`fastmlp.io.read_model_info`) for ``X`` (m, n) rows,
    already in the model's feature order; the saved standardisation is applied here."""
    pre, model, kind = info["preprocessing"], info["model"], info["kind"]
    if "mean" in pre and "std" in pre:
        X = standardize(X, pre["mean"], pre["std"])
    m = X.shape[0]
    proba = None
    if kind == "MLP":
        A = model.forward(np.ascontiguousarray(X.T))
        pred, proba = decode_outputs(A, pre)
        if pred is None:  # a model saved without the pipeline's preprocessing: its own predict
            pred = np.asarray(model.predict(np.ascontiguousarray(X.T)))
            pred = pred.reshape(-1, m).T if pred.ndim == 2 and pred.shape[0] > 1 else pred.reshape(m)
    else:
        pred = np.asarray(model.predict(X))
        if hasattr(model, "predict_proba") and pred.ndim == 1:
            proba = np.asarray(model.predict_proba(X))
    task = pre.get("task")
    if task is None:
        task = "regression" if kind == "MLPRegressor" or info.get("loss") == "mse" else "classification"
    classes = pre.get("classes")
    if classes is None and kind == "MLPClassifier":
        classes = model.classes_
    if proba is None or classes is None or proba.shape[1] != len(classes):
        proba = None
    return Predictions(pred, proba, None if classes is None else np.atleast_1d(classes), task)


def prediction_csv(p: Predictions) -> str:
    """The predictions as CSV text (the csv module's quoting): ``prediction`` (or ``prediction_<j>``) columns,
    then ``proba_<label>`` per class when there are probabilities."""
    values = p.values
    header = ["prediction"] if values.ndim == 1 else [f"prediction_{j}" for j in range(values.shape[1])]
    if p.proba is not None:
        header += [f"proba_{format_label(c)}" for c in p.classes]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    fmt = format_number if p.task == "regression" else format_label
    for i in range(values.shape[0]):
        row = [fmt(v) for v in np.atleast_1d(values[i])]
        if p.proba is not None:
            row += [format_number(q) for q in p.proba[i]]
        writer.writerow(row)
    return out.getvalue()
