"""MLP.fit's progress display and its handling of Ctrl-C."""

import os
import signal
import threading

import numpy as np
import pytest
from numpy.testing import assert_allclose

import fastmlp


def _data(m=400, n=20, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, m)
    Y = (X[:1] + 0.3 * rng.randn(1, m) > 0).astype(float)
    return X, Y


def test_verbose_fit_reports_progress(capsys, monkeypatch):
    monkeypatch.setenv("FASTMLP_PROGRESS", "plain")
    X, Y = _data()
    model = fastmlp.MLP([20, 8, 1], seed=0)
    model.fit(X, Y, epochs=5, learning_rate=0.1, batch_size=50, verbose=True)
    err = capsys.readouterr().err
    assert "5/5" in err and "cost" in err
    assert len(model.history) == 5


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_ctrl_c_stops_at_a_finished_epoch():
    X, Y = _data(m=2000, n=40)
    model = fastmlp.MLP([40, 64, 64, 1], seed=1)
    start = model.get_parameters()
    model.fit(X, Y, epochs=1, learning_rate=0.01, batch_size=8)  # compile before timing the signal
    model.set_parameters(start)
    model.history.clear()
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt, match="interrupted after"):
            model.fit(X, Y, epochs=100000, learning_rate=0.01, batch_size=8)
    finally:
        timer.cancel()
    done = len(model.history)
    assert 0 < done < 100000
    # the model holds exactly the parameters of its last completed epoch (uninterrupted training of
    # that many epochs, itself held to the reference in test_model.py)
    again = fastmlp.MLP([40, 64, 64, 1], seed=1).set_parameters(start)
    again.fit(X, Y, epochs=done, learning_rate=0.01, batch_size=8)
    for key, value in model.get_parameters().items():
        assert_allclose(value, again.get_parameters()[key], rtol=0, atol=0)
    assert_allclose(model.history, again.history, rtol=0, atol=0)
    # and the previous SIGINT handler is back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
