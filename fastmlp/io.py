"""Models on disk, data files, standardisation.

Model files
-----------
:func:`save_model` writes a ``.npz`` archive (NumPy's zip of ``.npy`` arrays) holding only plain numeric
and text arrays, so :func:`load_model` reads it with ``allow_pickle=False``: loading a model never runs code.
The archive holds (format version 1):

===================  ==========================================================================
key                  content
===================  ==========================================================================
``format``           the text ``"fastmlp-model"``
``format_version``   integer, currently 1
``kind``             ``"MLP"``, ``"MLPClassifier"`` or ``"MLPRegressor"``
``fastmlp_version``  the fastmlp version that wrote the file
``dtype``            ``"float32"`` or ``"float64"``
``history``          per-epoch training cost (``MLP.history`` / ``loss_curve_``), float64
``checksum``         SHA-256 of every other entry (names, dtypes, shapes, bytes)
``pre__<name>``      optional preprocessing (feature means/stds, names, class labels, ...)
---------------------------------------------------------------------------------------------------
``MLP`` only
---------------------------------------------------------------------------------------------------
``layer_dims``       int64, ``[n_x, n_1, ..., n_L]``
``activations``      text, one per layer
``loss``             ``"bce"``, ``"mse"`` or ``"ce"``
``leaky_slope``      float64
``W1, b1, ...``      parameters, ``W<l>`` ``(n_l, n_{l-1})``, ``b<l>`` ``(n_l, 1)``, in ``dtype``
---------------------------------------------------------------------------------------------------
estimators only
---------------------------------------------------------------------------------------------------
``params_json``      ``get_params()`` as JSON
``state_json``       the fitted scalar attributes (``n_iter_``, ``out_activation_``, ...) as JSON
``coef_<i>``         ``coefs_[i]``, ``(n_in, n_out)``
``intercept_<i>``    ``intercepts_[i]``, ``(n_out,)``
``classes_``         class labels (classifier)
===================  ==========================================================================

Saving is atomic: the archive is written to a temporary file in the destination's folder, flushed to disk
(``fsync``) and renamed over the destination with :func:`os.replace`. A save that fails half way (full disk,
a bad value, Ctrl-C) leaves any previous file untouched and no partial file behind.

Loading validates everything -- entry names, the checksum, the format version, the kind, the architecture,
every shape and dtype against the architecture, finiteness -- and raises ``ValueError`` naming the first
problem, so a corrupt, truncated or edited file is never turned into a model silently.

Data files
----------
:func:`read_table` reads the data the command line works on, samples as rows:

- ``.csv`` (``.tsv``): a header row of column names, then one sample per line, comma (tab) separated.
  Feature cells must be numbers; the target column may hold numbers or text labels.
- ``.npz``: an array ``X`` of shape ``(m, n)``, optionally ``feature_names`` (``n`` strings), and the target
  as a 1-D array of length ``m`` stored under the target's name (e.g. ``y``).
- ``.npy``: one 2-D array ``(m, n)``; columns are named ``col0, col1, ...`` and the target is chosen by
  that name or by its index (``"-1"`` for the last column).

Standardisation
---------------
:func:`fit_standardizer` / :func:`standardize`: z-scores with the training rows' mean and (population)
standard deviation; a constant column gets standard deviation 1, so it becomes all zeros.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fastmlp._checks import ACTIVATIONS, LOSSES, OUTPUT_ONLY_ACTIVATIONS, check_loss_output

__all__ = [
    "FORMAT_VERSION",
    "save_model",
    "load_model",
    "read_table",
    "fit_standardizer",
    "standardize",
    "atomic_write",
]

#: the model file format version this fastmlp writes (and the newest it reads)
FORMAT_VERSION = 1
_MAGIC = "fastmlp-model"
_KINDS = ("MLP", "MLPClassifier", "MLPRegressor")
_PRE = "pre__"
_COMMON_KEYS = {"format", "format_version", "kind", "fastmlp_version", "dtype", "history", "checksum"}


# --------------------------------------------------------------------------------------------------------
# atomic writes


def atomic_write(path, write) -> None:
    """Create or replace ``path`` atomically.

    ``write(fh)`` writes the content to ``fh``, a binary file object on a temporary file in the same folder.
    Only when it returns is the data flushed to disk and the temporary file renamed over ``path``; if it
    raises, the temporary file is removed and ``path`` is left exactly as it was.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Its folder must exist.
    write : callable
        ``write(fh) -> None``.
    """
    path = Path(os.fspath(path))
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} (for {str(path)!r}) does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder, not a file")
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        mode = 0o666 & ~mask
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# --------------------------------------------------------------------------------------------------------
# model files


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        if key == "checksum":
            continue
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode("utf-8") + b"\0")
        h.update(a.dtype.str.encode("ascii") + b"\0")
        h.update(repr(a.shape).encode("ascii") + b"\0")
        h.update(a.tobytes())
    return h.hexdigest()


def _text(value) -> np.ndarray:
    return np.array(str(value), dtype=np.str_)


def _pre_arrays(preprocessing) -> dict[str, np.ndarray]:
    if preprocessing is None:
        return {}
    if not isinstance(preprocessing, Mapping):
        raise TypeError(f"preprocessing must be a dict, got {type(preprocessing).__name__}")
    out = {}
    for name, value in preprocessing.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"preprocessing keys must be identifiers, got {name!r}")
        arr = np.asarray(value)
        if arr.dtype.kind not in "biufU":
            raise ValueError(
                f"preprocessing[{name!r}] must hold numbers or text, got dtype {arr.dtype} "
                "(model files never store pickled objects)"
            )
        if arr.dtype.kind in "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"preprocessing[{name!r}] contains NaN or inf")
        out[_PRE + name] = arr
    return out


def _jsonable(value, where):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise ValueError(f"{where} holds a {type(value).__name__}, which a model file cannot store")


def _mlp_arrays(model) -> dict[str, np.ndarray]:
    dims = [int(d) for d in model.layer_dims]
    params = model.get_parameters()
    dtype = np.dtype(model.dtype)
    arrays = {
        "layer_dims": np.asarray(dims, dtype=np.int64),
        "activations": np.asarray([str(a) for a in model.activations], dtype=np.str_),
        "loss": _text(model.loss),
        "leaky_slope": np.asarray(float(model.leaky_slope), dtype=np.float64),
    }
    for layer in range(1, len(dims)):
        arrays[f"W{layer}"] = np.asarray(params[f"W{layer}"], dtype=dtype)
        arrays[f"b{layer}"] = np.asarray(params[f"b{layer}"], dtype=dtype)
    arrays["history"] = np.asarray(list(getattr(model, "history", []) or []), dtype=np.float64)
    return arrays


# fitted scalar attributes of the estimators worth keeping (when present)
_EST_STATE = (
    "n_iter_",
    "t_",
    "n_layers_",
    "n_outputs_",
    "out_activation_",
    "n_features_in_",
    "best_loss_",
    "loss_",
    "feature_names_in_",
    "validation_scores_",
    "best_validation_score_",
)


def _estimator_arrays(est) -> dict[str, np.ndarray]:
    if not hasattr(est, "coefs_"):
        raise ValueError(f"{type(est).__name__} is not fitted: nothing to save")
    params = dict(est.get_params(deep=False))
    if params.get("random_state") is not None and not isinstance(params["random_state"], (int, np.integer)):
        params["random_state"] = None  # a RandomState instance: its state is not worth a pickle
    arrays = {"params_json": _text(json.dumps(_jsonable(params, "get_params()"), sort_keys=True))}
    state = {}
    for name in _EST_STATE:
        if hasattr(est, name):
            value = getattr(est, name)
            if value is not None and not isinstance(value, (str, bool, int, float, np.generic, list, tuple)):
                value = np.asarray(value).tolist()
            state[name] = _jsonable(value, name)
    binarizer = getattr(est, "_label_binarizer", None)
    if getattr(binarizer, "y_type_", None) is not None:
        state["_y_type"] = str(binarizer.y_type_)
    arrays["state_json"] = _text(json.dumps(state, sort_keys=True))
    coefs = [np.asarray(c) for c in est.coefs_]
    dtype = coefs[0].dtype if coefs[0].dtype.kind == "f" else np.dtype(np.float64)
    for i, (c, b) in enumerate(zip(coefs, est.intercepts_, strict=True)):
        arrays[f"coef_{i}"] = np.asarray(c, dtype=dtype)
        arrays[f"intercept_{i}"] = np.asarray(b, dtype=dtype)
    if hasattr(est, "classes_"):
        classes = np.asarray(est.classes_)
        if classes.dtype.kind == "O":
            classes = classes.astype(np.str_)
        arrays["classes_"] = classes
    arrays["dtype"] = _text(dtype.name)
    arrays["history"] = np.asarray(list(getattr(est, "loss_curve_", []) or []), dtype=np.float64)
    return arrays


def _model_kind(model) -> str:
    name = type(model).__name__
    if name in ("MLPClassifier", "MLPRegressor") and hasattr(model, "get_params"):
        return name
    if hasattr(model, "get_parameters") and hasattr(model, "layer_dims"):
        return "MLP"
    raise TypeError(f"cannot save a {name}: expected fastmlp.MLP, MLPClassifier or MLPRegressor")


def save_model(model, path, preprocessing=None) -> None:
    """Save a model to ``path`` (an ``.npz`` archive), atomically.

    Parameters
    ----------
    model : fastmlp.MLP, fastmlp.MLPClassifier or fastmlp.MLPRegressor
        The model; estimators must be fitted.
    path : str or os.PathLike
        Destination file, used exactly as given (no suffix is added). An existing file is replaced only
        once the new one is completely on disk.
    preprocessing : dict, optional
        Extra arrays or strings to keep with the model (numbers or text only), e.g. ``{"mean": (n_x,),
        "std": (n_x,), "feature_names": [...], "classes": [...]}``. :func:`load_model` gives it back.

    Raises
    ------
    TypeError
        ``model`` is not a fastmlp model.
    ValueError
        Something in the model or ``preprocessing`` cannot be stored.
    OSError
        The file could not be written (the destination is then unchanged).
    """
    from fastmlp._version import __version__

    kind = _model_kind(model)
    arrays = {
        "format": _text(_MAGIC),
        "format_version": np.asarray(FORMAT_VERSION, dtype=np.int64),
        "kind": _text(kind),
        "fastmlp_version": _text(__version__),
    }
    if kind == "MLP":
        arrays.update(_mlp_arrays(model))
        arrays["dtype"] = _text(np.dtype(model.dtype).name)
    else:
        arrays.update(_estimator_arrays(model))
    arrays.update(_pre_arrays(preprocessing))
    for key, arr in arrays.items():
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"cannot save: {key} contains NaN or inf")
    arrays["checksum"] = _text(_checksum(arrays))

    def write(fh):
        np.savez(fh, **arrays)

    atomic_write(path, write)


class _Bad(ValueError):
    pass


def _read_npz(path) -> dict[str, np.ndarray]:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"model file {path!r} is a folder")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":
        what = "it is empty" if not magic else "it is not an .npz archive"
        raise ValueError(f"{path!r} is not a fastmlp model file ({what})")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # BadZipFile (truncated), bad member headers, ...
        raise ValueError(f"{path!r} is corrupt or truncated: {exc}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path!r} is not a fastmlp model file (a single .npy array, not an .npz archive)")
    try:
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except Exception as exc:  # CRC errors, truncated members, object arrays
        raise ValueError(f"{path!r} is corrupt or truncated: {exc}") from None


def _scalar_text(data, key) -> str:
    a = data[key]
    if a.dtype.kind != "U" or a.ndim != 0:
        raise _Bad(f"entry {key!r} must be a text scalar, got dtype {a.dtype} shape {a.shape}")
    return str(a)


def _scalar_number(data, key, kind) -> float | int:
    a = data[key]
    if a.dtype.kind not in kind or a.ndim != 0:
        raise _Bad(f"entry {key!r} must be a number, got dtype {a.dtype} shape {a.shape}")
    value = a.item()
    if not np.isfinite(value):
        raise _Bad(f"entry {key!r} is not finite")
    return value


def _check_float_array(data, key, shape, dtype) -> np.ndarray:
    a = data[key]
    if a.dtype != dtype:
        raise _Bad(f"{key} has dtype {a.dtype}, expected {dtype}")
    if a.shape != tuple(shape):
        raise _Bad(f"{key} has shape {a.shape}, expected {tuple(shape)}")
    if not np.all(np.isfinite(a)):
        raise _Bad(f"{key} contains NaN or inf")
    return a


def _require(data, keys) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise _Bad(f"missing entr{'y' if len(missing) == 1 else 'ies'} {', '.join(map(repr, missing))}")


def _validate_common(data) -> tuple[str, np.dtype, np.ndarray]:
    _require(data, ["format", "format_version", "kind", "checksum"])
    if _scalar_text(data, "format") != _MAGIC:
        raise _Bad(f"format marker is {str(data['format'])!r}, expected {_MAGIC!r}")
    version = _scalar_number(data, "format_version", "iu")
    if version > FORMAT_VERSION:
        raise _Bad(
            f"written in model format {version} by a newer fastmlp; this fastmlp reads format {FORMAT_VERSION}"
            " (upgrade fastmlp)"
        )
    if version < 1:
        raise _Bad(f"unknown model format version {version}")
    if _scalar_text(data, "checksum") != _checksum(data):
        raise _Bad("checksum mismatch: the file was modified or damaged after it was saved")
    kind = _scalar_text(data, "kind")
    if kind not in _KINDS:
        raise _Bad(f"unknown model kind {kind!r}; expected one of {', '.join(_KINDS)}")
    _require(data, ["fastmlp_version", "dtype", "history"])
    _scalar_text(data, "fastmlp_version")
    dtype_name = _scalar_text(data, "dtype")
    if dtype_name not in ("float32", "float64"):
        raise _Bad(f"dtype is {dtype_name!r}, expected 'float32' or 'float64'")
    history = data["history"]
    if history.dtype != np.float64 or history.ndim != 1:
        raise _Bad(f"history must be a 1-D float64 array, got dtype {history.dtype} shape {history.shape}")
    if not np.all(np.isfinite(history)):
        raise _Bad("history contains NaN or inf")
    return kind, np.dtype(dtype_name), history


def _validate_pre(data) -> dict:
    pre = {}
    for key, arr in data.items():
        if not key.startswith(_PRE):
            continue
        name = key[len(_PRE) :]
        if not name.isidentifier():
            raise _Bad(f"bad preprocessing entry {key!r}")
        if arr.dtype.kind not in "biufU":
            raise _Bad(f"preprocessing entry {name!r} has unsupported dtype {arr.dtype}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise _Bad(f"preprocessing entry {name!r} contains NaN or inf")
        pre[name] = arr.item() if arr.ndim == 0 else arr
    return pre


def _validate_mlp(data, dtype) -> dict:
    _require(data, ["layer_dims", "activations", "loss", "leaky_slope"])
    dims_a = data["layer_dims"]
    if dims_a.dtype.kind not in "iu" or dims_a.ndim != 1 or dims_a.size < 2:
        raise _Bad(f"layer_dims must be a 1-D integer array of length >= 2, got {dims_a!r}")
    if np.any(dims_a < 1):
        raise _Bad(f"layer_dims must be positive, got {dims_a.tolist()}")
    dims = [int(d) for d in dims_a]
    n_layers = len(dims) - 1
    acts_a = data["activations"]
    if acts_a.dtype.kind != "U" or acts_a.shape != (n_layers,):
        raise _Bad(f"activations must be {n_layers} names (one per layer), got shape {acts_a.shape}")
    acts = [str(a) for a in acts_a]
    for i, a in enumerate(acts[:-1], start=1):
        if a not in ACTIVATIONS:
            raise _Bad(f"unknown activation {a!r} for layer {i}")
    if acts[-1] not in ACTIVATIONS + OUTPUT_ONLY_ACTIVATIONS:
        raise _Bad(f"unknown output activation {acts[-1]!r}")
    loss = _scalar_text(data, "loss")
    if loss not in LOSSES:
        raise _Bad(f"unknown loss {loss!r}")
    try:
        check_loss_output(loss, acts[-1])
    except ValueError as exc:
        raise _Bad(str(exc)) from None
    slope = float(_scalar_number(data, "leaky_slope", "f"))
    expected = {"layer_dims", "activations", "loss", "leaky_slope"}
    params = {}
    for layer in range(1, n_layers + 1):
        for name, shape in ((f"W{layer}", (dims[layer], dims[layer - 1])), (f"b{layer}", (dims[layer], 1))):
            _require(data, [name])
            params[name] = _check_float_array(data, name, shape, dtype)
            expected.add(name)
    unexpected = [k for k in data if k not in expected | _COMMON_KEYS and not k.startswith(_PRE)]
    if unexpected:
        raise _Bad(f"unexpected entr{'y' if len(unexpected) == 1 else 'ies'} {', '.join(map(repr, unexpected))}")
    return {"layer_dims": dims, "activations": acts, "loss": loss, "leaky_slope": slope, "params": params}


def _validate_estimator(data, dtype) -> dict:
    _require(data, ["params_json", "state_json"])
    try:
        params = json.loads(_scalar_text(data, "params_json"))
        state = json.loads(_scalar_text(data, "state_json"))
    except json.JSONDecodeError as exc:
        raise _Bad(f"estimator parameters are not valid JSON: {exc}") from None
    if not isinstance(params, dict) or not isinstance(state, dict):
        raise _Bad("estimator parameters must be JSON objects")
    unknown_state = set(state) - set(_EST_STATE) - {"_y_type"}
    if unknown_state:
        raise _Bad(f"unknown estimator attributes {sorted(unknown_state)}")
    n = 0
    while f"coef_{n}" in data:
        n += 1
    if n == 0:
        raise _Bad("missing entry 'coef_0'")
    coefs, intercepts = [], []
    for i in range(n):
        _require(data, [f"intercept_{i}"])
        c = data[f"coef_{i}"]
        if c.ndim != 2:
            raise _Bad(f"coef_{i} must be 2-D, got shape {c.shape}")
        if i and c.shape[0] != coefs[-1].shape[1]:
            raise _Bad(f"coef_{i} has {c.shape[0]} inputs but layer {i - 1} has {coefs[-1].shape[1]} outputs")
        coefs.append(_check_float_array(data, f"coef_{i}", c.shape, dtype))
        intercepts.append(_check_float_array(data, f"intercept_{i}", (c.shape[1],), dtype))
    expected = {"params_json", "state_json", "classes_"}
    expected |= {f"coef_{i}" for i in range(n)} | {f"intercept_{i}" for i in range(n)}
    unexpected = [k for k in data if k not in expected | _COMMON_KEYS and not k.startswith(_PRE)]
    if unexpected:
        raise _Bad(f"unexpected entr{'y' if len(unexpected) == 1 else 'ies'} {', '.join(map(repr, unexpected))}")
    classes = None
    if "classes_" in data:
        classes = data["classes_"]
        if classes.dtype.kind not in "biufU" or classes.ndim != 1:
            raise _Bad(f"classes_ must be a 1-D array of labels, got dtype {classes.dtype} shape {classes.shape}")
    if state.get("n_features_in_") not in (None, coefs[0].shape[0]):
        raise _Bad(f"n_features_in_ is {state['n_features_in_']} but coef_0 has {coefs[0].shape[0]} inputs")
    return {"params": params, "state": state, "coefs": coefs, "intercepts": intercepts, "classes": classes}


def _build_mlp(info, history):
    from fastmlp.model import MLP

    model = MLP(
        info["layer_dims"],
        activations=info["activations"],
        loss=info["loss"],
        dtype=info["dtype"],
        leaky_slope=info["leaky_slope"],
    )
    model.set_parameters(info["params"])
    model.history = [float(c) for c in history]
    return model


def _build_estimator(kind, info, history):
    import fastmlp

    cls = getattr(fastmlp, kind)
    params = dict(info["params"])
    if isinstance(params.get("hidden_layer_sizes"), list):  # JSON has no tuples
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    try:
        est = cls(**params)
    except TypeError as exc:
        raise _Bad(f"estimator parameters do not fit {kind}: {exc}") from None
    est.coefs_ = list(info["coefs"])
    est.intercepts_ = list(info["intercepts"])
    if info["classes"] is not None:
        est.classes_ = info["classes"]
    state = dict(info["state"])
    y_type = state.pop("_y_type", None)
    for name, value in state.items():
        if name == "feature_names_in_" and value is not None:
            value = np.asarray(value, dtype=object)
        setattr(est, name, value)
    est.loss_curve_ = [float(c) for c in history]
    try:
        est._restore_fitted_state(y_type)  # the estimator rebuilds its private state
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise _Bad(f"the saved {kind} is inconsistent: {exc}") from None
    return est


def load_model(path, *, kind: str | None = None, return_preprocessing: bool = False):
    """Load a model saved by :func:`save_model`, validating every entry.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.
    kind : {"MLP", "MLPClassifier", "MLPRegressor"}, optional
        When given, the file must hold a model of this kind.
    return_preprocessing : bool, default False
        Also return the ``preprocessing`` dict given to :func:`save_model` (``{}`` when there was none);
        0-d entries come back as Python scalars (``str``, ``int``, ``float``), others as arrays.

    Returns
    -------
    model : fastmlp.MLP or estimator
        With its parameters, its training history (``history`` / ``loss_curve_``) and hyper-parameters.
    preprocessing : dict
        Only when ``return_preprocessing`` is true.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a fastmlp model, is corrupt, truncated or was edited, was written by a newer
        fastmlp, or holds a model of another ``kind``. The message names the problem.
    """
    data = _read_npz(path)
    where = os.fspath(path)
    try:
        found, dtype, history = _validate_common(data)
        if kind is not None and found != kind:
            raise _Bad(f"holds a {found}, not a {kind}")
        pre = _validate_pre(data)
        if found == "MLP":
            info = _validate_mlp(data, dtype)
            info["dtype"] = dtype
            model = _build_mlp(info, history)
        else:
            info = _validate_estimator(data, dtype)
            model = _build_estimator(found, info, history)
    except _Bad as exc:
        raise ValueError(f"invalid model file {where!r}: {exc}") from None
    return (model, pre) if return_preprocessing else model


def read_model_info(path) -> dict:
    """Validate a model file without building the model (no Numba import); return its description.

    Returns a dict with ``kind``, ``dtype``, ``fastmlp_version``, ``history`` (array), ``preprocessing``
    and, for an ``MLP``, ``layer_dims``, ``activations``, ``loss``; for estimators ``n_features_in``.
    """
    data = _read_npz(path)
    try:
        found, dtype, history = _validate_common(data)
        pre = _validate_pre(data)
        out = {
            "kind": found,
            "dtype": dtype,
            "fastmlp_version": _scalar_text(data, "fastmlp_version"),
            "history": history,
            "preprocessing": pre,
        }
        if found == "MLP":
            info = _validate_mlp(data, dtype)
            out.update(layer_dims=info["layer_dims"], activations=info["activations"], loss=info["loss"])
            out["n_features_in"] = info["layer_dims"][0]
        else:
            info = _validate_estimator(data, dtype)
            out["n_features_in"] = info["coefs"][0].shape[0]
    except _Bad as exc:
        raise ValueError(f"invalid model file {os.fspath(path)!r}: {exc}") from None
    return out


# --------------------------------------------------------------------------------------------------------
# data files


def _parse_numeric_column(cells, name, first_line, *, allow_text=False):
    """Cells (strings) of one CSV column -> float64 array; or a text array when ``allow_text``."""
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        values = None
    if values is not None:
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"line {first_line + i}, column {name!r}: non-finite value {cells[i]!r}")
        return values
    # find the first cell that is not a number
    numeric = []
    for cell in cells:
        try:
            float(cell)
            numeric.append(True)
        except ValueError:
            numeric.append(False)
    i = numeric.index(False)
    if not cells[i].strip():
        raise ValueError(f"line {first_line + i}, column {name!r}: empty cell")
    if allow_text:
        if any(numeric):
            j = numeric.index(True) if not numeric[0] else i
            raise ValueError(
                f"target column {name!r} mixes numbers and text (line {first_line + j}: {cells[j]!r}); "
                "use all numbers or all text labels"
            )
        cells = [c.strip() for c in cells]
        empty = [k for k, c in enumerate(cells) if not c]
        if empty:
            raise ValueError(f"line {first_line + empty[0]}, column {name!r}: empty cell")
        return np.array(cells, dtype=np.str_)
    raise ValueError(f"line {first_line + i}, column {name!r}: non-numeric value {cells[i].strip()!r}")


def _read_csv_fast(path, delimiter, target, optional_target):
    """All-numeric CSV whose first line is the header: NumPy's C parser. None when that does not apply."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            first = fh.readline()
        header = [h.strip() for h in next(csv.reader([first], delimiter=delimiter))]
        if not header or any(not h for h in header) or len(set(header)) != len(header) or '"' in first:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" and the like: the slow path explains
            A = np.loadtxt(path, delimiter=delimiter, skiprows=1, ndmin=2, dtype=np.float64, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError, csv.Error, StopIteration):
        return None
    if A.shape[0] == 0 or A.shape[1] != len(header) or not np.all(np.isfinite(A)):
        return None
    t = _resolve_target(header, target, optional_target, path)
    keep = [j for j in range(len(header)) if j != t]
    if not keep:
        return None
    y = A[:, t].copy() if t is not None else None
    return np.ascontiguousarray(A[:, keep]), y, [header[j] for j in keep], (header[t] if t is not None else None)


def _read_csv(path, target, optional_target):
    delimiter = "\t" if str(path).lower().endswith(".tsv") else ","
    fast = _read_csv_fast(path, delimiter, target, optional_target)
    if fast is not None:
        return fast
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh, delimiter=delimiter))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not a UTF-8 text file ({exc.reason})") from None
    except csv.Error as exc:
        raise ValueError(f"{str(path)!r}: malformed CSV: {exc}") from None
    # keep line numbers (1-based, header is line 1); drop blank lines
    # keep line numbers (1-based, header is line 1); drop blank lines. Cells keep their spaces (the number
    # parser ignores them); text cells are stripped where they are used.
    numbered = [(i + 1, row) for i, row in enumerate(rows) if row and (len(row) > 1 or row[0].strip())]
    if not numbered:
        raise ValueError(f"{str(path)!r} is empty")
    header_line, header = numbered[0]
    header = [h.strip() for h in header]
    if any(not h for h in header):
        raise ValueError(f"line {header_line}: the header has an empty column name")
    seen = set()
    for h in header:
        if h in seen:
            raise ValueError(f"line {header_line}: column name {h!r} appears twice in the header")
        seen.add(h)
    body = numbered[1:]
    if not body:
        raise ValueError(f"{str(path)!r} has a header but no data rows")
    width = len(header)
    for line, row in body:
        if len(row) != width:
            raise ValueError(f"line {line}: {len(row)} cells, but the header has {width} columns")
    lines = [line for line, _ in body]
    contiguous = lines == list(range(lines[0], lines[0] + len(lines)))

    def column(j, name, allow_text=False):
        cells = [row[j] for _, row in body]
        if contiguous:
            return _parse_numeric_column(cells, name, lines[0], allow_text=allow_text)
        try:
            return _parse_numeric_column(cells, name, 0, allow_text=allow_text)
        except ValueError as exc:  # re-number: blank lines were skipped
            msg = str(exc)
            if msg.startswith("line "):
                idx, rest = msg[5:].split(",", 1)
                msg = f"line {lines[int(idx)]},{rest}"
            raise ValueError(msg) from None

    t = _resolve_target(header, target, optional_target, path)
    names = [h for j, h in enumerate(header) if j != t]
    if not names:
        raise ValueError(f"{str(path)!r} has no feature columns besides the target {header[t]!r}")
    cols = [column(j, h) for j, h in enumerate(header) if j != t]
    X = np.column_stack(cols)
    y = column(t, header[t], allow_text=True) if t is not None else None
    return X, y, names, (header[t] if t is not None else None)


def _resolve_target(columns, target, optional_target, path):
    if target is None:
        return None
    target = str(target)
    if target in columns:
        return columns.index(target)
    if optional_target:
        return None
    try:
        idx = int(target)
    except ValueError:
        idx = None
    if idx is not None and all(c == f"col{i}" for i, c in enumerate(columns)) and -len(columns) <= idx < len(columns):
        return idx % len(columns)
    shown = ", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")
    raise ValueError(f"target column {target!r} not found in {str(path)!r} (columns: {shown})")


def _check_array_data(X, name, path):
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{str(path)!r}: {name} must hold numbers, got dtype {X.dtype}")
    X = X.astype(np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{str(path)!r}: {name} row {r}, column {c} is not finite ({X[r, c]})")
    return X


def _read_npy(path, target, optional_target):
    try:
        A = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ValueError(f"{str(path)!r} is not a readable .npy file: {exc}") from None
    if not isinstance(A, np.ndarray) or A.ndim != 2:
        raise ValueError(f"{str(path)!r}: expected a 2-D array (samples as rows), got shape {np.shape(A)}")
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"{str(path)!r} is empty (shape {A.shape})")
    A = _check_array_data(A, "the array", path)
    columns = [f"col{i}" for i in range(A.shape[1])]
    t = _resolve_target(columns, target, optional_target, path)
    keep = [j for j in range(A.shape[1]) if j != t]
    if not keep:
        raise ValueError(f"{str(path)!r} has no feature columns besides the target")
    y = A[:, t].copy() if t is not None else None
    return np.ascontiguousarray(A[:, keep]), y, [columns[j] for j in keep], (columns[t] if t is not None else None)


def _read_data_npz(path, target, optional_target):
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:
        raise ValueError(f"{str(path)!r} is not a readable .npz file: {exc}") from None
    if "X" not in data:
        raise ValueError(f"{str(path)!r} has no array 'X' (found: {', '.join(sorted(data)) or 'nothing'})")
    X = data["X"]
    if X.ndim != 2 or X.size == 0:
        raise ValueError(f"{str(path)!r}: X must be a non-empty 2-D array (samples as rows), got shape {X.shape}")
    X = _check_array_data(X, "X", path)
    if "feature_names" in data:
        names = [str(n) for n in np.asarray(data["feature_names"]).ravel()]
        if len(names) != X.shape[1]:
            raise ValueError(f"{str(path)!r}: {len(names)} feature_names for {X.shape[1]} columns of X")
    else:
        names = [f"col{i}" for i in range(X.shape[1])]
    y = None
    tname = None
    if target is not None:
        tname = str(target)
        if tname not in data or tname in ("X", "feature_names"):
            if not optional_target:
                others = sorted(k for k in data if k not in ("X", "feature_names"))
                raise ValueError(
                    f"target {tname!r} not found in {str(path)!r} (arrays besides X: {', '.join(others) or 'none'})"
                )
            tname = None
        else:
            y = np.asarray(data[tname])
            if y.ndim == 2 and 1 in y.shape:
                y = y.ravel()
            if y.ndim != 1 or y.shape[0] != X.shape[0]:
                raise ValueError(f"{str(path)!r}: target {tname!r} must have shape ({X.shape[0]},), got {y.shape}")
            if y.dtype.kind in "biuf":
                y = y.astype(np.float64)
                if not np.all(np.isfinite(y)):
                    raise ValueError(f"{str(path)!r}: target {tname!r} contains NaN or inf")
            elif y.dtype.kind == "U":
                y = y.astype(np.str_)
            else:
                raise ValueError(f"{str(path)!r}: target {tname!r} must hold numbers or text, got dtype {y.dtype}")
    return X, y, names, tname


def read_table(path, target=None, *, optional_target: bool = False, return_target_name: bool = False):
    """Read a data file, samples as rows.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv``/``.tsv`` file with a header row, an ``.npz`` archive or an ``.npy`` array (layouts in the
        module docstring). Other suffixes are read as CSV.
    target : str, optional
        The target column (CSV header name; ``.npz`` array name; ``.npy`` column ``colK`` or index ``K``).
    optional_target : bool, default False
        When the target is not in the file, return ``y=None`` instead of raising.
    return_target_name : bool, default False
        Also return the target's resolved name (``None`` when absent).

    Returns
    -------
    X : ndarray of shape (m, n), float64
        The feature columns, finite.
    y : ndarray of shape (m,) or None
        The target: float64, or text labels (CSV/``.npz`` only).
    columns : list of str
        The names of the ``n`` feature columns.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Malformed content, naming the line and column of a bad cell, or a missing target.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"data file {p!r} does not exist")
    if os.path.isdir(p):
        raise IsADirectoryError(f"data file {p!r} is a folder")
    suffix = os.path.splitext(p)[1].lower()
    if suffix == ".npy":
        X, y, names, tname = _read_npy(p, target, optional_target)
    elif suffix == ".npz":
        X, y, names, tname = _read_data_npz(p, target, optional_target)
    else:
        try:
            X, y, names, tname = _read_csv(p, target, optional_target)
        except ValueError as exc:
            msg = str(exc)
            raise ValueError(msg if repr(p) in msg else f"{p!r}, {msg}") from None
    return (X, y, names, tname) if return_target_name else (X, y, names)


# --------------------------------------------------------------------------------------------------------
# standardisation


def fit_standardizer(X) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations of ``X`` (samples as rows); constant columns get std 1.

    Parameters
    ----------
    X : array_like of shape (m, n)

    Returns
    -------
    mean, std : ndarray of shape (n,), float64
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a non-empty 2-D array (samples as rows), got shape {X.shape}")
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    scale = np.maximum(np.abs(mean), 1.0)
    std = np.where(std <= 1e-12 * scale, 1.0, std)
    return mean, std


def standardize(X, mean, std) -> np.ndarray:
    """``(X - mean) / std`` column-wise (samples as rows); returns a new float64 array."""
    X = np.asarray(X, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != mean.shape[0] or mean.shape != std.shape:
        raise ValueError(f"X has {X.shape[-1] if X.ndim else 0} columns, the standardiser {mean.shape[0]}")
    return (X - mean) / std


class ModelFileMixin:
    """``save(path)`` / ``load(path)`` methods for fastmlp's models, through :func:`save_model` / :func:`load_model`."""

    def save(self, path) -> None:
        """Save to an ``.npz`` file, atomically (see :func:`fastmlp.io.save_model`)."""
        save_model(self, path)

    @classmethod
    def load(cls, path):
        """Load a model saved by :meth:`save`, validating everything (see :func:`fastmlp.io.load_model`)."""
        model = load_model(path)
        if not isinstance(model, cls):
            raise ValueError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model
