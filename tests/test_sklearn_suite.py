"""scikit-learn's own MLP test file, run against fastmlp's estimators with only the import changed.

The installed scikit-learn ships ``sklearn/neural_network/tests/test_mlp.py``; this test copies it into a
temporary folder with ``from sklearn.neural_network import MLPClassifier, MLPRegressor`` replaced by fastmlp's
classes and runs pytest on the copy in a child process (``-p sklearn.conftest`` supplies the
``global_random_seed`` fixture outside scikit-learn's tree). Nothing of that file is kept in this project.
It takes about 20 s of CPU with a warm compile cache.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

import sklearn  # noqa: E402

import fastmlp  # noqa: E402

ORIGINAL_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
#: test_mlp.py of scikit-learn 1.9.1 holds 59 tests
EXPECTED_TESTS = {"1.9.1": 59}


def _installed_test_file() -> Path | None:
    try:
        spec = importlib.util.find_spec("sklearn.neural_network.tests.test_mlp")
    except ModuleNotFoundError:
        return None
    if spec is None or spec.origin is None or importlib.util.find_spec("sklearn.conftest") is None:
        return None
    return Path(spec.origin)


def test_sklearns_own_mlp_tests_pass_with_fastmlp(tmp_path):
    source = _installed_test_file()
    if source is None:
        pytest.skip("the installed scikit-learn ships no tests (or no sklearn.conftest)")
    text = source.read_text()
    assert text.count(ORIGINAL_IMPORT) == 1, "scikit-learn's test file imports its MLP classes differently"
    target = tmp_path / "test_mlp_with_fastmlp.py"
    target.write_text(text.replace(ORIGINAL_IMPORT, "from fastmlp import MLPClassifier, MLPRegressor"))

    package_root = str(Path(fastmlp.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
           "FASTMLP_PROGRESS": "off"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "sklearn.conftest", "-p", "no:cacheprovider", "-rfE",
         str(target)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|error|errors|skipped)", summary)}
    assert proc.returncode == 0 and not counts.get("failed") and not counts.get("error"), (
        f"{summary}\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}")
    expected = EXPECTED_TESTS.get(sklearn.__version__)
    if expected is not None:
        assert counts.get("passed") == expected, summary
    else:
        assert counts.get("passed", 0) > 0, summary
