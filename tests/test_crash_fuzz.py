"""Crash fuzz in CI: random problems through every training path, each in a child process.

``scripts/fuzz.py`` runs the same generator for longer (and with the OpenBLAS variables unset too).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.crash_fuzz import PATHS, failure, make_case, run_case

#: a fixed set of cases: every path, twice, drawn from fixed seeds (the generator covers the rest)
CASES = [make_case(np.random.RandomState(1000 + i), path=PATHS[i % len(PATHS)]) for i in range(2 * len(PATHS))]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['path']}-{c['dtype']}-{c['blas']}-{i}" for i, c in enumerate(CASES)])
def test_random_problem_trains_or_refuses_cleanly(case):
    proc = run_case(case, timeout=240)
    assert proc.returncode == 0, failure(case, proc)
    assert proc.stdout.strip().splitlines()[-1].startswith(("trained", "refused")), failure(case, proc)
