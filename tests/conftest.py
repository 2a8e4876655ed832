"""Shared pytest configuration: a hypothesis profile that keeps the suite fast and deterministic."""

from __future__ import annotations

import os
import signal

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "fastmlp",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("FASTMLP_HYPOTHESIS_PROFILE", "fastmlp"))

# A shell without job control starts background commands with SIGINT ignored, and children inherit that: the
# Ctrl-C tests' children (test_bounded, test_tiny_kernel, test_cli) would then train for their full 100,000
# epochs instead of stopping. A handler (unlike SIG_IGN) is reset to the default in a child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


#: the test files that take longest on an empty compile cache, longest first (a cold run's ``--junitxml`` and
#: FASTMLP_COMPILE_REPORT). pytest-xdist hands each process the next file in collection order (pyproject's
#: ``-n auto --dist loadfile --no-loadscope-reorder``): started first, the long files do not end the run alone.
LONGEST_FIRST = ("test_sklearn_suite.py", "test_benchmarks.py", "test_tiny_kernel.py", "test_engine.py",
                 "test_estimators_equivalence.py", "test_bounded.py", "test_step_paths.py", "test_crash_fuzz.py",
                 "test_cli.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(autouse=True)
def only_this_thread(monkeypatch):
    """The per-step fast paths (no copies, reuse of results) are taken only while no other thread runs
    (``fastmlp._steps._guarded_entry``); a thread an earlier test leaves in this process (Dask's offload
    thread), or pytest-xdist's own (execnet's, started by ``_thread``), would turn them off for every test that
    checks them. Tests run in this one thread, so the others are hidden; tests/test_step_threads.py checks what
    happens with threads, in children."""
    import threading

    from fastmlp import _steps

    monkeypatch.setattr(_steps, "_THREADS", {threading.get_ident(): threading.current_thread()})
    monkeypatch.setattr(_steps, "_RUNNING", lambda: 0)


# FASTMLP_COMPILE_REPORT=path: write, per test, the Numba compilations it ran in this process (top-level ones,
# with the CPU time including what they compiled on the way) as JSON lines, to see where a cold suite's
# compile time goes (children of subprocess tests are not included).
_REPORT = os.environ.get("FASTMLP_COMPILE_REPORT")
if _REPORT:
    import json
    import time

    from numba.core import event as _event

    _current = {"test": "(collection)"}

    class _CompileReport(_event.Listener):
        depth = 0

        def on_start(self, ev):
            if self.depth == 0:
                self.started = time.process_time()
            self.depth += 1

        def on_end(self, ev):
            self.depth -= 1
            if self.depth == 0:
                dispatcher = ev.data["dispatcher"]
                with open(_REPORT, "a") as out:
                    out.write(json.dumps({"test": _current["test"], "kernel": dispatcher.py_func.__qualname__,
                                          "args": str(ev.data["args"])[:200],
                                          "seconds": time.process_time() - self.started}) + "\n")

    _event.register("numba:compile", _CompileReport())

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(item):
        _current["test"] = item.nodeid
