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


@pytest.fixture(autouse=True)
def only_this_thread(monkeypatch):
    """The per-step fast paths (no copies, reuse of results) are taken only while no other thread runs
    (``fastmlp._steps._guarded_entry``); a thread an earlier test leaves in this process (Dask's offload
    thread) would turn them off for every later test that checks them. Tests run in this one thread, so it
    is hidden; tests/test_step_threads.py checks what happens with threads, in children."""
    import threading

    from fastmlp import _steps

    monkeypatch.setattr(_steps, "_THREADS", {threading.get_ident(): threading.current_thread()})
    monkeypatch.setattr(_steps, "_STARTING", {})
