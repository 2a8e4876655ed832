"""Run Python code in a child process, so that a crash (segfault, abort) is a test failure, not a dead run.

Children share the parent's Numba compile cache (the package's ``__pycache__`` or ``NUMBA_CACHE_DIR``), so
each kernel signature is compiled once per session, whichever process needs it first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

#: a child's environment: the parent's (OpenBLAS variables untouched), warnings silenced
BASE_ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "FASTMLP_PROGRESS": "off"}


def run_python(code: str, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` (with ``sys.argv[1:] == args``) in a fresh interpreter; return the finished process.

    ``env`` entries are added to the parent's environment; a value of ``None`` removes that variable.
    """
    merged = {**BASE_ENV, **(env or {})}
    merged = {key: value for key, value in merged.items() if value is not None}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          env=merged, timeout=timeout)


def describe(proc: subprocess.CompletedProcess) -> str:
    """Exit status and the tail of both streams, for assertion messages."""
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"
