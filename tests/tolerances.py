"""The one tolerance table: how close each fast path must be to its reference (docs/DESIGN.md §4)."""

import numpy as np

DTYPES = [np.float64, np.float32]
HIDDEN_NAMES = ["relu", "leaky_relu", "sigmoid", "tanh", "linear"]
#: one forward pass, one cost, one step
TOL = {
    np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-12},
    np.dtype(np.float32): {"rtol": 1e-5, "atol": 1e-6},
}
#: after several SGD steps: float32 rounding is amplified through the layers and the steps
TRAIN_TOL = {
    np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-12},
    np.dtype(np.float32): {"rtol": 1e-5, "atol": 1e-5},
}
#: float64 against scikit-learn's own estimators (its arithmetic runs in another order): weights, losses, scores
SKLEARN = {"rtol": 1e-8, "atol": 1e-12}
#: learning rates small enough that no generated problem diverges (deep linear chains with mse are the worst)
RATES = {"bce": 0.1, "ce": 0.1, "mse": 0.01, "half_mse": 0.02}


def tol(dtype):
    return TOL[np.dtype(dtype)]


def train_tol(dtype):
    return TRAIN_TOL[np.dtype(dtype)]
