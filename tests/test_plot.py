"""Learning-curve plots (fastmlp.plot) and the progress reporter (fastmlp._progress)."""

from __future__ import annotations

import io as _io
import os
import sys

import numpy as np
import pytest

from fastmlp import _progress

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model():
    from fastmlp import MLP

    rng = np.random.RandomState(0)
    X = rng.randn(2, 32)
    return MLP([2, 4, 1], seed=0).fit(X, (X[0] > 0).astype(float), epochs=12, learning_rate=0.5)


def test_loss_curve_to_file(tmp_path, model):
    pytest.importorskip("matplotlib")
    from fastmlp import plot

    ax = plot.loss_curve(model, path=tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes().startswith(PNG)
    assert os.listdir(tmp_path) == ["curve.png"]
    line = ax.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 13))
    np.testing.assert_allclose(line.get_ydata(), model.history)
    assert ax.get_xlabel() == "epoch"
    plot.loss_curve(model, path=tmp_path / "curve.svg")
    assert b"<svg" in (tmp_path / "curve.svg").read_bytes()[:500]


def test_loss_curve_on_axes_and_estimator_curve():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from fastmlp import plot

    class Fitted:  # anything with scikit-learn's loss_curve_
        loss_curve_ = [1.0, 0.5, 0.25]

    ax = Figure().add_subplot()
    assert plot.loss_curve(Fitted(), ax=ax, label="run 1") is ax
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1.0, 0.5, 0.25])
    plot.loss_curve([0.9, 0.8], ax=ax, label="run 2")
    assert len(ax.get_lines()) == 2


def test_loss_curve_errors(tmp_path):
    pytest.importorskip("matplotlib")
    from fastmlp import plot

    with pytest.raises(ValueError, match="not been trained"):
        plot.loss_curve([], path=tmp_path / "c.png")
    with pytest.raises(ValueError, match="no training history"):
        plot.loss_curve(object(), path=tmp_path / "c.png")
    with pytest.raises(ValueError, match="cannot write a .xyz image"):
        plot.loss_curve([1.0, 0.5], path=tmp_path / "c.xyz")
    assert os.listdir(tmp_path) == []


def test_speedup_chart(tmp_path):
    pytest.importorskip("matplotlib")
    from fastmlp import plot

    rows = [{"workload": "W1-xor", "dtype": "float64", "speedup": 120.0},
            {"workload": "W3-cancer", "dtype": "float64", "speedup": 4.2}]
    plot.speedup_chart(rows, path=tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes().startswith(PNG)


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    from fastmlp import plot

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(ImportError, match=r"fastmlp\[plot\]"):
        plot.loss_curve([1.0, 0.5], path=tmp_path / "c.png")


# ------------------------------------------------------------------------------------------- progress


def test_progress_plain_lines(monkeypatch):
    monkeypatch.setenv("FASTMLP_PROGRESS", "plain")
    out = _io.StringIO()
    bar = _progress.progress(10, True, file=out)
    bar.update(4, 0.5)
    bar.update(6, 0.25)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("epoch  4/10  cost 0.5")
    assert lines[-1].startswith("epoch 10/10  cost 0.25")
    assert len(lines) == 2  # the last epoch is printed once, not again by close()


def test_progress_tqdm_shows_cost():
    pytest.importorskip("tqdm")
    out = _io.StringIO()
    with _progress.progress(5, True, file=out, desc="fit") as bar:
        bar.update(5, 0.125)
    text = out.getvalue()
    assert "5/5" in text and "cost=0.125" in text and "fit" in text


def test_progress_without_tqdm(monkeypatch):
    monkeypatch.delenv("FASTMLP_PROGRESS", raising=False)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    out = _io.StringIO()
    bar = _progress.progress(3, True, file=out)
    bar.update(3, float("nan"))
    bar.close()
    assert out.getvalue().startswith("epoch 3/3  cost nan")


def test_progress_disabled(monkeypatch, capsys):
    bar = _progress.progress(3, False)
    bar.update(3, 0.1)
    bar.close()
    monkeypatch.setenv("FASTMLP_PROGRESS", "off")
    _progress.progress(3, True).update(3, 0.1)
    assert capsys.readouterr() == ("", "")


def test_fit_verbose_reports_progress(monkeypatch, capsys):
    from fastmlp import MLP

    monkeypatch.setenv("FASTMLP_PROGRESS", "plain")
    rng = np.random.RandomState(1)
    X = rng.randn(2, 16)
    model = MLP([2, 3, 1], seed=1).fit(X, (X[1] > 0).astype(float), epochs=3, learning_rate=0.1, verbose=True)
    err = capsys.readouterr().err
    assert "epoch 3/3" in err and f"cost {model.history[-1]:.4g}" in err
