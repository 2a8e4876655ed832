"""The model-file format: a checked ``.npz`` container, and the registry through which model classes say how
they are written to and rebuilt from it.

This module knows the container, not the models. A model class registers a :class:`ModelKind` (its name in
files, how to turn a fitted model into arrays, how to check those arrays against each other and rebuild the
model); :mod:`fastmlp.model` and :mod:`fastmlp.estimators` do so when they are imported. Nothing here
imports them.

The container (format version 1)
--------------------------------
A zip archive of ``.npy`` members (NumPy's ``.npz``) holding only numbers and text, read with
``allow_pickle=False``: loading a model never runs code. Entries every file has:

===================  ==========================================================================
key                  content
===================  ==========================================================================
``format``           the text ``"fastmlp-model"``
``format_version``   integer, currently 1
``kind``             the registered kind: ``"MLP"``, ``"MLPClassifier"`` or ``"MLPRegressor"``
``fastmlp_version``  the fastmlp version that wrote the file
``dtype``            ``"float32"`` or ``"float64"``
``history``          per-epoch training cost (``MLP.history`` / ``loss_curve_``), float64
``checksum``         SHA-256 of every other entry (names, dtypes, shapes, bytes)
``pre__<name>``      optional preprocessing (numbers or text), given back by :func:`load_model`
===================  ==========================================================================

The other entries belong to the kind (see :mod:`fastmlp.model` and :mod:`fastmlp.estimators`).

Reading, in this order, and refusing with ``ValueError`` at the first problem:

1. the path is an existing regular file that starts like a zip archive;
2. the zip directory, before any member is read: at most :data:`MAX_MEMBERS` members, each named like an
   entry (``<identifier>.npy``, no folders, no duplicates), stored or deflated, and the declared sizes
   adding up to at most :data:`MAX_EXPANSION` times the file's size (so a small file that would inflate
   to gigabytes -- a "zip bomb" -- is refused at once, without reading it);
3. each member's ``.npy`` header: a plain numeric or text dtype, and a shape whose bytes are exactly the
   member's declared size (so no allocation is larger than the file says);
4. the checksum, the format version and the kind; then the kind's own checks: every shape, dtype and
   value against the network the file describes, so that a model that loads can predict.

The checksum detects accidental damage (a truncated copy, a flipped bit). It is not a signature: someone
who edits a file on purpose can recompute it, which is why step 4 checks the content itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import zipfile
from collections.abc import Callable, Mapping

import numpy as np

from fastmlp._atomic import atomic_write

__all__ = [
    "FORMAT_VERSION",
    "ModelFileError",
    "ModelKind",
    "Entries",
    "register_kind",
    "save_model",
    "load_model",
    "ModelFileMixin",
]

#: the model file format version this fastmlp writes (and the newest it reads)
FORMAT_VERSION = 1
#: most members a model file may hold (a network of about 2000 layers)
MAX_MEMBERS = 4096
#: the members' declared (uncompressed) sizes may add up to at most this many times the file's size
MAX_EXPANSION = 4
#: ... plus this many bytes (small files: zip and ``.npy`` headers)
_EXPANSION_SLACK = 1 << 16

_MAGIC = "fastmlp-model"
PRE = "pre__"
COMMON_KEYS = frozenset({"format", "format_version", "kind", "fastmlp_version", "dtype", "history", "checksum"})
_MEMBER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.npy")


class ModelFileError(ValueError):
    """A model file's content is wrong; :func:`load_model` adds the path to the message."""


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """How one model class is stored.

    Attributes
    ----------
    name : str
        The ``kind`` entry of its files.
    cls : type
        The class; :func:`save_model` uses the exact class to find the kind.
    to_entries : callable
        ``to_entries(model) -> dict[str, ndarray]``: the kind's entries, plus ``dtype`` (text) and
        ``history`` (float64, 1-D). Raises ``ValueError`` when the model cannot be stored (e.g. not fitted).
    from_entries : callable
        ``from_entries(entries: Entries, dtype: numpy.dtype, history: ndarray) -> model``: checks the
        kind's entries against each other (raising :class:`ModelFileError`) and rebuilds the model.
    describe : callable
        ``describe(model) -> dict``: at least ``n_features_in``; used by :func:`read_model_info`.
    """

    name: str
    cls: type
    to_entries: Callable
    from_entries: Callable
    describe: Callable


_REGISTRY: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> ModelKind:
    """Make ``kind`` savable and loadable (called by the module that defines the class)."""
    _REGISTRY[kind.name] = kind
    return kind


def _kind_of(model) -> ModelKind:
    for kind in _REGISTRY.values():
        if type(model) is kind.cls:
            return kind
    names = ", ".join(sorted(_REGISTRY)) or "none registered"
    raise TypeError(f"cannot save a {type(model).__name__}: expected one of fastmlp's models ({names})")


# --------------------------------------------------------------------------------------------------------
# writing


def text(value) -> np.ndarray:
    """A 0-d text array (how scalars of text are stored)."""
    return np.array(str(value), dtype=np.str_)


def checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over every entry but ``checksum``: names, dtypes, shapes and bytes, in name order."""
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
        out[PRE + name] = arr
    return out


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

    kind = _kind_of(model)
    arrays = {
        "format": text(_MAGIC),
        "format_version": np.asarray(FORMAT_VERSION, dtype=np.int64),
        "kind": text(kind.name),
        "fastmlp_version": text(__version__),
    }
    arrays.update(kind.to_entries(model))
    arrays.update(_pre_arrays(preprocessing))
    for key, arr in arrays.items():
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"cannot save: {key} contains NaN or inf")
    arrays["checksum"] = text(checksum(arrays))

    def write(fh):
        np.savez(fh, **arrays)

    atomic_write(path, write)


# --------------------------------------------------------------------------------------------------------
# reading


def _check_directory(zf: zipfile.ZipFile, file_size: int) -> list[zipfile.ZipInfo]:
    """Step 2: names, count and declared sizes, before any member is read."""
    members = zf.infolist()
    if len(members) > MAX_MEMBERS:
        raise ModelFileError(f"{len(members)} members; a model file has at most {MAX_MEMBERS}")
    seen = set()
    declared = 0
    for info in members:
        name = info.filename
        if not _MEMBER_NAME.fullmatch(name):
            raise ModelFileError(f"unexpected member {name[:80]!r} (entries are <identifier>.npy)")
        if name in seen:
            raise ModelFileError(f"member {name!r} appears twice")
        seen.add(name)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(f"member {name!r} uses an unsupported compression")
        declared += info.file_size
    limit = MAX_EXPANSION * file_size + _EXPANSION_SLACK
    if declared > limit:
        raise ModelFileError(
            f"its members declare {declared:,} bytes once inflated, more than {MAX_EXPANSION}x the file's "
            f"{file_size:,} bytes: refused unread"
        )
    return members


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """Step 3: the ``.npy`` header against the declared size, then the data."""
    key = info.filename[:-4]
    fmt = np.lib.format
    with zf.open(info) as fh:
        try:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(fh, max_header_size=4096)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = fmt.read_array_header_2_0(fh, max_header_size=4096)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as exc:
            raise ModelFileError(f"entry {key!r} has a bad header: {exc}") from None
        if dtype.kind not in "biufU" or dtype.hasobject:
            raise ModelFileError(f"entry {key!r} has dtype {dtype}; model files hold numbers and text only")
        count = 1
        for d in shape:
            count *= int(d)
        header = fh.tell()
        if header + count * dtype.itemsize != info.file_size:
            raise ModelFileError(
                f"entry {key!r} declares shape {shape} of {dtype} ({count * dtype.itemsize:,} bytes) but the "
                f"member holds {info.file_size - header:,}"
            )
        data = fh.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ModelFileError(f"entry {key!r} is truncated")
    arr = np.frombuffer(data, dtype=dtype, count=count)
    return arr.reshape(shape, order="F" if fortran else "C").copy()


def _read_container(path) -> dict[str, np.ndarray]:
    """Steps 1 to 3: the entries of the archive at ``path``."""
    where = os.fspath(path)
    if not os.path.exists(where):
        raise FileNotFoundError(f"model file {where!r} does not exist")
    if os.path.isdir(where):
        raise ValueError(f"{where!r} is a folder, not a fastmlp model file")
    if not os.path.isfile(where):
        raise ValueError(f"{where!r} is not a regular file, so not a fastmlp model file")
    with open(where, "rb") as fh:
        magic = fh.read(4)
        size = os.fstat(fh.fileno()).st_size
        if magic != b"PK\x03\x04":
            what = "it is empty" if not magic else "it is not an .npz archive"
            raise ValueError(f"{where!r} is not a fastmlp model file ({what})")
        try:
            with zipfile.ZipFile(fh) as zf:
                members = _check_directory(zf, size)
                return {info.filename[:-4]: _read_member(zf, info) for info in members}
        except ModelFileError as exc:
            raise ValueError(f"invalid model file {where!r}: {exc}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
            # truncated archives, CRC errors, bad member headers
            raise ValueError(f"{where!r} is corrupt or truncated: {exc}") from None


class Entries(Mapping):
    """The entries of a model file, with checking accessors that raise :class:`ModelFileError`."""

    def __init__(self, data: dict[str, np.ndarray]):
        self._data = data

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def require(self, *keys) -> None:
        """Raise when any of ``keys`` is missing."""
        missing = [k for k in keys if k not in self._data]
        if missing:
            raise ModelFileError(f"missing entr{'y' if len(missing) == 1 else 'ies'} {', '.join(map(repr, missing))}")

    def text(self, key) -> str:
        """A text scalar."""
        self.require(key)
        a = self._data[key]
        if a.dtype.kind != "U" or a.ndim != 0:
            raise ModelFileError(f"entry {key!r} must be a text scalar, got dtype {a.dtype} shape {a.shape}")
        return str(a)

    def number(self, key, kinds="iuf"):
        """A finite numeric scalar whose dtype kind is one of ``kinds``."""
        self.require(key)
        a = self._data[key]
        if a.dtype.kind not in kinds or a.ndim != 0:
            raise ModelFileError(f"entry {key!r} must be a number, got dtype {a.dtype} shape {a.shape}")
        value = a.item()
        if not np.isfinite(value):
            raise ModelFileError(f"entry {key!r} is not finite")
        return value

    def floats(self, key, shape, dtype) -> np.ndarray:
        """A finite float array of exactly ``shape`` and ``dtype``."""
        self.require(key)
        a = self._data[key]
        if a.dtype != dtype:
            raise ModelFileError(f"{key} has dtype {a.dtype}, expected {dtype}")
        if a.shape != tuple(shape):
            raise ModelFileError(f"{key} has shape {a.shape}, expected {tuple(shape)}")
        if not np.all(np.isfinite(a)):
            raise ModelFileError(f"{key} contains NaN or inf")
        return a

    def only(self, expected) -> None:
        """Raise when an entry is neither common, preprocessing, nor in ``expected``."""
        extra = [k for k in self._data if k not in COMMON_KEYS and k not in expected and not k.startswith(PRE)]
        if extra:
            raise ModelFileError(f"unexpected entr{'y' if len(extra) == 1 else 'ies'} {', '.join(map(repr, extra))}")


def _check_common(data: Entries) -> tuple[str, np.dtype, np.ndarray]:
    data.require("format", "format_version", "kind", "checksum")
    if data.text("format") != _MAGIC:
        raise ModelFileError(f"format marker is {str(data['format'])!r}, expected {_MAGIC!r}")
    version = data.number("format_version", "iu")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"written in model format {version} by a newer fastmlp; this fastmlp reads format {FORMAT_VERSION}"
            " (upgrade fastmlp)"
        )
    if version < 1:
        raise ModelFileError(f"unknown model format version {version}")
    if data.text("checksum") != checksum(data):
        raise ModelFileError("checksum mismatch: the file was modified or damaged after it was saved")
    kind = data.text("kind")
    data.require("fastmlp_version", "dtype", "history")
    data.text("fastmlp_version")
    dtype_name = data.text("dtype")
    if dtype_name not in ("float32", "float64"):
        raise ModelFileError(f"dtype is {dtype_name!r}, expected 'float32' or 'float64'")
    history = data["history"]
    if history.dtype != np.float64 or history.ndim != 1:
        raise ModelFileError(f"history must be a 1-D float64 array, got dtype {history.dtype} shape {history.shape}")
    if not np.all(np.isfinite(history)):
        raise ModelFileError("history contains NaN or inf")
    return kind, np.dtype(dtype_name), history


def _preprocessing(data: Entries) -> dict:
    pre = {}
    for key, arr in data.items():
        if not key.startswith(PRE):
            continue
        name = key[len(PRE):]
        if not name.isidentifier():
            raise ModelFileError(f"bad preprocessing entry {key!r}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ModelFileError(f"preprocessing entry {name!r} contains NaN or inf")
        pre[name] = arr.item() if arr.ndim == 0 else arr
    return pre


@dataclasses.dataclass(frozen=True)
class LoadedFile:
    """What :func:`read` found in a model file."""

    model: object
    preprocessing: dict
    kind: str
    dtype: np.dtype
    fastmlp_version: str
    history: np.ndarray


def read(path, *, kind: str | None = None, resolve=None) -> LoadedFile:
    """Read and check the model file at ``path`` (see :func:`load_model`); everything it holds."""
    where = os.fspath(path)
    data = Entries(_read_container(path))
    try:
        found, dtype, history = _check_common(data)
        if kind is not None and found != kind:
            raise ModelFileError(f"holds a {found}, not a {kind}")
        if found not in _REGISTRY and resolve is not None:
            resolve(found)
        if found not in _REGISTRY:
            raise ModelFileError(f"unknown model kind {found!r}; expected one of {', '.join(sorted(_REGISTRY))}")
        pre = _preprocessing(data)
        model = _REGISTRY[found].from_entries(data, dtype, history)
    except ModelFileError as exc:
        raise ValueError(f"invalid model file {where!r}: {exc}") from None
    return LoadedFile(model, pre, found, dtype, data.text("fastmlp_version"), history)


def load_model(path, *, kind: str | None = None, return_preprocessing: bool = False, resolve=None):
    """Load a model saved by :func:`save_model`, checking every entry (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.
    kind : str, optional
        When given, the file must hold a model of this kind (``"MLP"``, ``"MLPClassifier"``, ...).
    return_preprocessing : bool, default False
        Also return the ``preprocessing`` dict given to :func:`save_model` (``{}`` when there was none);
        0-d entries come back as Python scalars (``str``, ``int``, ``float``), others as arrays.
    resolve : callable, optional
        ``resolve(kind_name)``: called when the file's kind is not registered yet (e.g. imports the module
        that registers it). :func:`fastmlp.io.load_model` passes one.

    Returns
    -------
    model
        With its parameters, its training history (``history`` / ``loss_curve_``) and hyper-parameters.
    preprocessing : dict
        Only when ``return_preprocessing`` is true.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The path is a folder or not a fastmlp model file; the file is corrupt, truncated, inconsistent or
        was written by a newer fastmlp; or it holds a model of another ``kind``. The message names the problem.
    """
    loaded = read(path, kind=kind, resolve=resolve)
    return (loaded.model, loaded.preprocessing) if return_preprocessing else loaded.model


def describe(model) -> dict:
    """``kind`` and the kind's own description of a loaded model (``n_features_in`` at least)."""
    kind = _kind_of(model)
    return {"kind": kind.name, **kind.describe(model)}


class ModelFileMixin:
    """``save(path)`` / ``load(path)`` for a registered model class."""

    def save(self, path) -> None:
        """Save to an ``.npz`` file, atomically (see :func:`fastmlp.io.save_model`)."""
        save_model(self, path)

    @classmethod
    def load(cls, path):
        """Load a model saved by :meth:`save`, checking everything (see :func:`fastmlp.io.load_model`)."""
        names = [k.name for k in _REGISTRY.values() if k.cls is cls]
        if not names:
            raise TypeError(f"{cls.__name__} is not a registered model kind")
        return load_model(path, kind=names[0])
