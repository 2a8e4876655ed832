"""Input validation shared by the reference, the kernels' wrappers, the estimators and the CLI.

Every function raises ``ValueError`` whose message names the offending argument and the problem, so that
bad input never reaches a kernel.
"""

from __future__ import annotations

import numbers

import numpy as np

#: activations every layer may use
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "linear")
#: activations allowed only on the output layer
OUTPUT_ONLY_ACTIVATIONS = ("softmax",)
#: losses: binary cross-entropy (sigmoid output), mean squared error, categorical cross-entropy (softmax)
LOSSES = ("bce", "mse", "ce")
#: dtypes the kernels are compiled for
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_activation(name, *, output: bool = False, where: str = "activation") -> str:
    """Return ``name`` if it is a known activation, else raise ``ValueError`` listing the known ones."""
    allowed = ACTIVATIONS + (OUTPUT_ONLY_ACTIVATIONS if output else ())
    if not isinstance(name, str) or name not in allowed:
        raise ValueError(f"unknown {where} {name!r}; expected one of {', '.join(allowed)}")
    return name


def check_loss(name) -> str:
    """Return ``name`` if it is a known loss, else raise ``ValueError``."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    return name


def check_loss_output(loss: str, output_activation: str) -> None:
    """Cross-entropy losses need the output activation whose probabilities they score."""
    if loss == "bce" and output_activation != "sigmoid":
        raise ValueError(f"loss 'bce' needs a sigmoid output layer, got output activation {output_activation!r}")
    if loss == "ce" and output_activation != "softmax":
        raise ValueError(f"loss 'ce' needs a softmax output layer, got output activation {output_activation!r}")
    if output_activation == "softmax" and loss != "ce":
        raise ValueError(f"a softmax output layer needs loss 'ce', got {loss!r}")


def check_dtype(dtype) -> np.dtype:
    """Return the NumPy dtype for ``dtype`` (a string or dtype), which must be float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"unknown dtype {dtype!r}; expected 'float32' or 'float64'") from exc
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def as_float_array(x, name: str, *, ndim: int | None = 2, dtype=None, allow_empty: bool = False) -> np.ndarray:
    """Convert ``x`` to a finite floating array, without copying when it already is one.

    Integers and booleans become float64 (or ``dtype``); float32 stays float32 unless ``dtype`` says
    otherwise. The result may share memory with ``x``: callers must not write into it.
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to a numeric array: {exc}") from exc
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if dtype is not None:
        arr = arr.astype(check_dtype(dtype), copy=False)
    elif arr.dtype not in FLOAT_DTYPES:
        arr = arr.astype(np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")
    return arr


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as an int if it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_positive_float(value, name: str) -> float:
    """Return ``value`` as a float if it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_binary_targets(Y: np.ndarray, name: str = "Y") -> None:
    """Targets of a cross-entropy loss must lie in [0, 1]."""
    if Y.size and (Y.min() < 0 or Y.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1] for a cross-entropy loss, got values in [{Y.min()}, {Y.max()}]")
