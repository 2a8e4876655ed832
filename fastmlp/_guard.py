"""What keeps a training call safe from the world around it: Ctrl-C and other threads.

* :class:`DeferredInterrupt`: within ``with``, Ctrl-C (SIGINT) only sets a flag, which the training loop
  (:func:`fastmlp._engine.train_epochs`, through its ``stop`` argument) reads between kernel calls, about
  every 0.1 s. Training then ends at its last completed epoch, with every fitted attribute describing that
  state, and the caller reports the interrupt (``MLP.fit`` re-raises ``KeyboardInterrupt``; the estimators
  warn and return, as scikit-learn's do). Only the main thread receives signals: in another thread the
  handler is left alone.
* :func:`model_lock`: one re-entrant lock per model object, so that calls from several threads on one model
  (``fit`` in two threads, ``fit`` and ``partial_fit``, ``fit`` and ``predict``) run one after the other
  instead of interleaving their updates. The locks live here, not on the model: a lock cannot be pickled or
  deep-copied, and scikit-learn estimators may hold only their parameters after ``__init__``.
"""

from __future__ import annotations

import signal
import threading
import weakref

try:  # the C functions under `signal`: the same calls without its enum conversions (20 -> 2 us per fit)
    import _signal as _raw_signal
except ImportError:  # pragma: no cover - interpreters without it
    _raw_signal = signal

__all__ = ["DeferredInterrupt", "model_lock"]


class DeferredInterrupt:
    """Within ``with``: Ctrl-C sets :attr:`raised` instead of raising ``KeyboardInterrupt`` (main thread only).

    Nested uses share the outer handler. Call the instance (``stop()``) to read the flag.
    """

    def __init__(self):
        self.raised = False
        self._previous = None
        self._depth = 0  # > 0 while this instance's handler is installed

    def _handler(self, signum, frame):
        self.raised = True

    def __call__(self) -> bool:
        return self.raised

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            current = _raw_signal.getsignal(signal.SIGINT)
            if current == signal.SIG_IGN:  # the program ignores Ctrl-C: so does training
                return self
            outer = getattr(current, "__self__", None)
            if isinstance(outer, DeferredInterrupt) and outer._depth > 0:  # nested: share the outer flag
                outer._depth += 1
                return outer
            try:
                self._previous = _raw_signal.signal(signal.SIGINT, self._handler)
                self._depth = 1
            except ValueError:  # embedded interpreters without signal support
                pass
        return self

    def __exit__(self, *exc):
        if self._depth > 0:
            self._depth -= 1
            if self._depth == 0:
                _raw_signal.signal(signal.SIGINT, self._previous)
        return False


_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def model_lock(model) -> threading.RLock:
    """The re-entrant lock of ``model`` (created on first use): ``with model_lock(self): ...``."""
    with _LOCKS_LOCK:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock
