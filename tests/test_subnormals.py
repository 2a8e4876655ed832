"""The training kernels run with flush-to-zero (``FASTMLP_SUBNORMALS``, fastmlp/_config.py): their results are
never subnormal, the numbers stay within the tolerances of IEEE arithmetic with subnormals ("keep"), and the calling
thread's floating-point mode is what it was when a fit returns (also after a diverging one)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from numba import njit
from numpy.testing import assert_allclose
from tolerances import train_tol

from tests.child import describe, run_python

pytest.importorskip("sklearn")

import fastmlp  # noqa: E402
from fastmlp import _kernels as K  # noqa: E402

#: a problem whose third input is about 1e-19 (float32, no L2 penalty): Adam's second moment of its weights (their
#: squared gradients) falls below float32's smallest normal number (1.2e-38) in the first minibatch
PROBLEM = """
import warnings
import numpy as np
import fastmlp

def fit(weighted=False):
    rng = np.random.RandomState(0)
    X = rng.randn(96, 5).astype(np.float32)
    X[:, 2] *= np.float32(1e-19)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 3] > 0.5)
    est = fastmlp.MLPClassifier(hidden_layer_sizes=(8,), solver="adam", batch_size=16, max_iter=3, shuffle=False,
                                random_state=0, tol=0.0, n_iter_no_change=10**9, learning_rate_init=0.01, alpha=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # unequal sample weights take the general kernel (fastmlp._kernels_general)
        est.fit(X, y, sample_weight=1.0 + (np.arange(96) % 3) if weighted else None)
    state = est._optimizer.engine_optimizer
    arrays = [*est.coefs_, *est.intercepts_, state.state_1, state.state_2]
    tiny = np.finfo(np.float32).tiny
    subnormal = sum(int(np.sum((a != 0) & (np.abs(a) < tiny))) for a in arrays)
    return np.concatenate([a.ravel() for a in est.coefs_ + est.intercepts_]), subnormal
"""


def _fit(weighted=False):
    namespace: dict = {}
    exec(PROBLEM, namespace)
    return namespace["fit"](weighted)


def _subnormal_survives() -> bool:
    """Does arithmetic on this thread still produce a subnormal (flush-to-zero off)?"""
    return bool(np.array([np.finfo(np.float64).tiny]) * np.float64(0.5) != 0)


@pytest.mark.skipif(not K._X86, reason="flush-to-zero is set through x86's MXCSR")
def test_no_subnormal_result_and_the_same_numbers_as_keeping_them():
    weights, subnormal = _fit()
    assert subnormal == 0
    proc = run_python(PROBLEM + "\nw, s = fit()\nimport json\nprint(json.dumps([w.tolist(), s]))\n",
                      env={"FASTMLP_SUBNORMALS": "keep"}, timeout=600)
    assert proc.returncode == 0, describe(proc)
    kept, kept_subnormal = json.loads(proc.stdout.strip().splitlines()[-1])
    assert kept_subnormal > 0  # the problem does reach the subnormal range: the flush above did something
    assert_allclose(weights, np.array(kept, np.float32), **train_tol(np.float32))
    assert _fit(weighted=True)[1] == 0  # the general kernel (sample weights) flushes too


@njit
def _set_flush_to_zero(on):
    return K._flush_to_zero(on)


@njit
def _restore(previous):
    K._restore_flush_to_zero(previous)


@pytest.mark.parametrize("ftz_before", [False, True])
def test_a_fit_leaves_the_thread_s_mode_as_it_found_it(ftz_before):
    """Also when the fit diverges (the kernel returns early, rolling back) and in float64."""
    rng = np.random.RandomState(1)
    X = rng.randn(64, 4)
    y = (X[:, 0] > 0).astype(int)
    previous = _set_flush_to_zero(ftz_before)
    try:
        assert _subnormal_survives() == (not ftz_before or not K._X86)
        _fit()
        assert _subnormal_survives() == (not ftz_before or not K._X86)
        _fit(weighted=True)
        assert _subnormal_survives() == (not ftz_before or not K._X86)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = fastmlp.MLPClassifier(hidden_layer_sizes=(8,), solver="adam", max_iter=3, random_state=0,
                                        learning_rate_init=1e300)
            try:
                est.fit(X, y)
            except (ValueError, ArithmeticError):
                pass  # diverged: a clear error is fine here; the mode is what this test is about
        assert _subnormal_survives() == (not ftz_before or not K._X86)
    finally:
        _restore(previous)
    assert _subnormal_survives()
