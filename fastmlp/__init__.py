"""fastmlp: train multilayer perceptrons on the CPU as fast as the hardware allows.

Public surface:

- :class:`fastmlp.MLP` -- samples as columns, parameters ``W1, b1, ...`` like course-style code;
- :mod:`fastmlp.functional` -- the course-style functions backed by the Numba kernels;
- :mod:`fastmlp.reference` -- the pure-NumPy reference that defines what correct means;
- :class:`fastmlp.MLPClassifier`, :class:`fastmlp.MLPRegressor` -- scikit-learn drop-ins
  (need the ``sklearn`` extra; imported on first use).
"""

from fastmlp._version import __version__

__all__ = ["__version__", "MLP", "MLPClassifier", "MLPRegressor", "reference", "functional"]

_LAZY = {
    "MLP": ("fastmlp.model", "MLP"),
    "MLPClassifier": ("fastmlp.estimators", "MLPClassifier"),
    "MLPRegressor": ("fastmlp.estimators", "MLPRegressor"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in {"reference", "functional"}:
        import importlib

        return importlib.import_module(f"fastmlp.{name}")
    raise AttributeError(f"module 'fastmlp' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
