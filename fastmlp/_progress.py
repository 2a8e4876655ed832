"""Progress reporting for ``MLP.fit(verbose=True)`` and the command line.

:func:`progress` returns an object with ``update(n_epochs, cost)`` and ``close()`` (also a context
manager). With tqdm installed (the ``progress`` extra) it is a tqdm bar counting epochs and showing the
current cost; without it, plain lines ``epoch 40/200  cost 0.1234`` are printed at most about once a second
(and for the last epoch). Output goes to stderr, like tqdm's, so results printed on stdout stay clean.
Setting the environment variable ``FASTMLP_PROGRESS=plain`` forces the plain lines, ``off`` silences both.
"""

from __future__ import annotations

import math
import os
import sys
import time

__all__ = ["progress"]


def _fmt_cost(cost) -> str:
    if cost is None:
        return "?"
    try:
        c = float(cost)
    except (TypeError, ValueError):
        return str(cost)
    return f"{c:.4g}" if math.isfinite(c) else str(c)


class _Silent:
    """Does nothing (``enabled=False``)."""

    def update(self, n_epochs: int = 1, cost=None) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Lines(_Silent):
    """Plain text lines, rate-limited to about one per ``interval`` seconds."""

    def __init__(self, total: int, desc: str | None, file, interval: float = 1.0):
        self.total = int(total)
        self.done = 0
        self.desc = f"{desc}: " if desc else ""
        self.file = file if file is not None else sys.stderr
        self.interval = float(interval)
        self._last = None
        self._last_cost = None
        self._printed_at = -1
        self._start = time.perf_counter()

    def _print(self) -> None:
        elapsed = time.perf_counter() - self._start
        width = len(str(self.total))
        print(
            f"{self.desc}epoch {self.done:>{width}}/{self.total}  cost {_fmt_cost(self._last_cost)}  "
            f"({elapsed:.1f}s)",
            file=self.file,
            flush=True,
        )
        self._printed_at = self.done
        self._last = time.perf_counter()

    def update(self, n_epochs: int = 1, cost=None) -> None:
        self.done += int(n_epochs)
        self._last_cost = cost
        now = time.perf_counter()
        if self._last is None or now - self._last >= self.interval or self.done >= self.total:
            self._print()

    def close(self) -> None:
        if self.done and self._printed_at != self.done:
            self._print()


class _Bar(_Silent):
    def __init__(self, tqdm, total: int, desc: str | None, file):
        self._bar = tqdm(
            total=int(total),
            desc=desc or "training",
            unit="epoch",
            file=file,
            dynamic_ncols=True,
            leave=True,
            mininterval=0.1,
        )
        self._closed = False

    def update(self, n_epochs: int = 1, cost=None) -> None:
        if cost is not None:
            self._bar.set_postfix_str(f"cost={_fmt_cost(cost)}", refresh=False)
        self._bar.update(int(n_epochs))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bar.close()


#: the reporter of ``enabled=False`` (stateless, so one serves every call)
_SILENT = _Silent()


def progress(total_epochs: int, enabled: bool = True, *, desc: str | None = None, file=None):
    """A progress reporter for ``total_epochs`` training epochs.

    Parameters
    ----------
    total_epochs : int
        Epochs the bar counts up to.
    enabled : bool, default True
        When false, a reporter that does nothing.
    desc : str, optional
        Label in front of the bar or lines (default ``"training"`` for the bar, nothing for lines).
    file : file object, optional
        Where to write (default ``sys.stderr``).

    Returns
    -------
    reporter
        ``reporter.update(n_epochs, cost)`` after each chunk of ``n_epochs`` epochs, ``cost`` being the
        latest epoch's cost; ``reporter.close()`` once training ends (also on error or interruption).
        Usable as a context manager.
    """
    if not enabled:  # the common case (every fit without verbose): no environment lookup
        return _SILENT
    mode = os.environ.get("FASTMLP_PROGRESS", "").strip().lower()
    if mode in {"off", "0", "none"}:
        return _Silent()
    if mode != "plain":
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            return _Bar(tqdm, total_epochs, desc, file)
    return _Lines(total_epochs, desc, file)
