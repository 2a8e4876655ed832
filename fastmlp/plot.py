"""Learning curves and speedup charts (matplotlib, the ``plot`` extra: ``pip install "fastmlp[plot]"``).

Functions that write a file (``path=...``) draw on a stand-alone :class:`matplotlib.figure.Figure`
rendered by the Agg backend -- no window opens, no display is needed, and pyplot's global state is left
alone -- and write the image atomically (temporary file, then rename). Without ``path`` and without
``ax`` they draw on a new pyplot figure, for notebooks and interactive sessions.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["loss_curve", "speedup_chart"]


def _import_matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "fastmlp.plot needs matplotlib, which is not installed; install the plot extra: "
            'pip install "fastmlp[plot]"'
        ) from exc
    return Figure


def _history(model) -> np.ndarray:
    if isinstance(model, (list, tuple, np.ndarray)):
        hist = model
    elif getattr(model, "history", None) is not None:
        hist = model.history
    elif getattr(model, "loss_curve_", None) is not None:
        hist = model.loss_curve_
    else:
        raise ValueError(
            f"{type(model).__name__} has no training history (expected MLP.history or an estimator's loss_curve_)"
        )
    hist = np.asarray(hist, dtype=np.float64).ravel()
    if hist.size == 0:
        raise ValueError("the model has not been trained yet: its history is empty")
    return hist


def _new_axes(ax, path, figsize=(6.0, 4.0)):
    if ax is not None:
        return ax
    if path is not None:
        Figure = _import_matplotlib()
        fig = Figure(figsize=figsize, layout="constrained")
        return fig.add_subplot()
    _import_matplotlib()
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def save_figure(fig, path, *, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` atomically; the format comes from the suffix (``.png`` when there is none)."""
    from fastmlp._atomic import atomic_write

    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"cannot write a .{fmt} image; supported: {', '.join(sorted(supported))}")
    atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))


def loss_curve(model, ax=None, path=None, *, label=None, logy: bool | None = None, title=None):
    """Plot the training cost per epoch.

    Parameters
    ----------
    model : fastmlp.MLP, estimator, or sequence of float
        An ``MLP`` (its ``history``), a fitted ``MLPClassifier``/``MLPRegressor`` (its ``loss_curve_``),
        or the costs themselves.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. By default a new figure.
    path : str or os.PathLike, optional
        Also save the figure there (PNG, or the format of the suffix), atomically.
    label : str, optional
        Legend label for the curve.
    logy : bool, optional
        Logarithmic cost axis; by default on when every cost is positive and they span more than a
        factor of 20.
    title : str, optional
        Axes title (default ``"Learning curve"``).

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ImportError
        matplotlib is missing (the message names the ``plot`` extra).
    ValueError
        The model has no training history yet.
    """
    hist = _history(model)
    ax = _new_axes(ax, path)
    epochs = np.arange(1, hist.size + 1)
    ax.plot(epochs, hist, marker="o" if hist.size <= 30 else None, label=label)
    if logy is None:
        logy = bool(np.all(hist > 0) and hist.max() > 20 * hist.min())
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training cost")
    ax.set_title("Learning curve" if title is None else title)
    ax.grid(True, alpha=0.3)
    if label is not None:
        ax.legend()
    if path is not None:
        save_figure(ax.figure, path)
    return ax


#: how the chart names the baselines
_BASELINE_NAMES = {"numpy": "course-style NumPy", "reference": "fastmlp.reference", "sklearn": "scikit-learn"}
_PEER_COLOURS = {"fastmlp": "tab:red", "reference": "0.6", "torch": "tab:orange", "jax": "tab:green",
                 "sklearn": "tab:blue", "numpy": "0.4"}


def speedup_chart(rows, ax=None, path=None, *, title=None):
    """Grouped horizontal bars: for each (workload, dtype), each peer's speedup over that row's baseline.

    Parameters
    ----------
    rows : sequence of dict
        Rows of ``fastmlp bench`` (:func:`fastmlp._bench.run_table`): ``"workload"``, ``"dtype"``,
        ``"baseline"`` and ``"speedups"`` (peer -> baseline time / peer time). A row may instead give one
        ``"speedup"`` (fastmlp's) and optionally ``"baseline"``.
    ax, path, title
        As in :func:`loss_curve`.

    Returns
    -------
    matplotlib.axes.Axes
    """
    groups = []
    for r in rows:
        speedups = r.get("speedups")
        if speedups is None:
            speedups = {"fastmlp": r.get("speedup")}
        base = r.get("baseline", "baseline")
        bars = {p: float(v) for p, v in speedups.items() if p != base and v is not None and np.isfinite(v) and v > 0}
        if bars:
            groups.append((f"{r['workload']} {r.get('dtype', '')}".strip(), base, bars))
    if not groups:
        raise ValueError("no speedups to plot")
    peers = list(dict.fromkeys(p for _, _, bars in groups for p in bars))
    height = 0.8 / len(peers)
    ax = _new_axes(ax, path, figsize=(7.0, 0.8 + 0.3 * len(groups) * len(peers)))
    labelled = set()
    for gi, (_, _, bars) in enumerate(groups):
        y0 = len(groups) - 1 - gi
        for pi, p in enumerate(peers):
            if p not in bars:
                continue
            y = y0 + 0.4 - height * (pi + 0.5)
            ax.barh(y, bars[p], height=height * 0.9, color=_PEER_COLOURS.get(p), label=None if p in labelled else p)
            labelled.add(p)
            ax.text(bars[p], y, f" {bars[p]:.3g}x", va="center", fontsize=7)
    ax.set_yticks(np.arange(len(groups))[::-1], [g[0] for g in groups], fontsize=8)
    ax.axvline(1.0, color="0.3", lw=1, ls="--")
    ax.set_xscale("log")
    bases = {}
    for label, base, _ in groups:
        bases.setdefault(_BASELINE_NAMES.get(base, base), []).append(label.split("-")[0])
    against = "; ".join(f"{name} for {', '.join(dict.fromkeys(ws))}" for name, ws in bases.items())
    ax.set_xlabel(f"speedup over the baseline (dashed line at 1: {against}); log scale", fontsize=8)
    ax.set_title("fastmlp speedup, epoch-time ratio measured in one run" if title is None else title, fontsize=9)
    if len(peers) > 1:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    if path is not None:
        save_figure(ax.figure, path)
    return ax
