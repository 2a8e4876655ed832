"""Files: models on disk, data tables, standardisation -- the public door to the modules that do each job.

=====================================  ===============================================================
here                                   defined in (one job each)
=====================================  ===============================================================
:func:`save_model`, :func:`load_model`  :mod:`fastmlp._modelfile` -- the checked model-file container;
:func:`read_model_info`                 :mod:`fastmlp.model` / :mod:`fastmlp.estimators` say how each
                                        model class is stored and checked
:func:`read_table`                      :mod:`fastmlp._tables` -- CSV / NPZ / NPY data files
:func:`fit_standardizer`,               :mod:`fastmlp._standardise` -- z-scores
:func:`standardize`
:func:`atomic_write`                    :mod:`fastmlp._atomic` -- replace a file only once complete
=====================================  ===============================================================

Model files are ``.npz`` archives of plain numeric and text arrays, read with ``allow_pickle=False``;
loading checks the archive's directory before reading any member (a small file that would inflate to
gigabytes is refused unread), then every entry against the network the file describes, so that a model
that loads can predict. The checksum in each file detects accidental damage; it does not stop someone
who edits a file on purpose (they can recompute it) -- the content checks are what guard against that.
See :mod:`fastmlp._modelfile` for the format.
"""

from __future__ import annotations

import importlib

from fastmlp import _modelfile
from fastmlp._atomic import atomic_write
from fastmlp._modelfile import FORMAT_VERSION, ModelFileMixin, save_model
from fastmlp._standardise import fit_standardizer, standardize
from fastmlp._tables import read_table

__all__ = [
    "FORMAT_VERSION",
    "save_model",
    "load_model",
    "read_model_info",
    "read_table",
    "fit_standardizer",
    "standardize",
    "atomic_write",
    "ModelFileMixin",
]

#: the module whose import registers each kind of model file (a fixed list: a file never names a module)
_KIND_MODULES = {"MLP": "fastmlp.model", "MLPClassifier": "fastmlp.estimators", "MLPRegressor": "fastmlp.estimators"}


def _resolve(kind: str) -> None:
    module = _KIND_MODULES.get(kind)
    if module is not None:
        importlib.import_module(module)


def load_model(path, *, kind: str | None = None, return_preprocessing: bool = False):
    """Load a model saved by :func:`save_model`, checking every entry.

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
        ``path`` is a folder or not a fastmlp model file; the file is corrupt, truncated, inconsistent with
        the network it describes, or was written by a newer fastmlp; or it holds a model of another
        ``kind``. The message names the problem.
    """
    return _modelfile.load_model(path, kind=kind, return_preprocessing=return_preprocessing, resolve=_resolve)


def read_model_info(path) -> dict:
    """Load and check a model file; return its description.

    Returns a dict with ``kind``, ``dtype``, ``fastmlp_version``, ``history`` (array), ``preprocessing``,
    ``n_features_in``, ``n_outputs``, ``model`` (the loaded model) and, for an ``MLP``, ``layer_dims``,
    ``activations`` and ``loss``.
    """
    loaded = _modelfile.read(path, resolve=_resolve)
    info = _modelfile.describe(loaded.model)
    info.update(model=loaded.model, preprocessing=loaded.preprocessing, history=loaded.history,
                fastmlp_version=loaded.fastmlp_version, dtype=loaded.dtype)
    return info
