"""Standardisation (z-scores), the one definition fastmlp uses: the command line's features and targets,
the demo and the benchmark workloads.

The mean and the population standard deviation of each column (samples as rows); a column whose standard
deviation is zero -- or within rounding of zero, ``std <= 1e-12 * max(|mean|, 1)`` -- gets 1, so it
becomes all zeros instead of NaN.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_standardizer", "standardize", "standardise"]


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


def standardise(X) -> np.ndarray:
    """``X`` (samples as rows) standardised with its own columns' mean and standard deviation."""
    mean, std = fit_standardizer(X)
    return standardize(X, mean, std)
