"""Numba's disk cache of fastmlp's kernels is keyed on the sources of every module compiled into them.

Numba checks only the stamp of the file that defines a cached function; fastmlp's kernels defined in
``_kernels.py`` hold code of ``_kernels_tiny.py`` and ``_small_products.py`` too. ``fastmlp._config`` gives
fastmlp's functions a stamp covering all of :data:`fastmlp._config.KERNEL_MODULES`: after an edit (or an
upgrade) of any of them, the old machine code is not loaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil

from child import describe, run_python

import fastmlp
from fastmlp import _config

PACKAGE = os.path.dirname(fastmlp.__file__)


def test_every_module_with_compiled_code_is_in_the_stamp():
    compiled = re.compile(r"^\s*@(jit|njit|jit_inline|jit_internal|overload|intrinsic|register_jitable)\b|njit\(",
                          re.MULTILINE)
    modules = {name for name in os.listdir(PACKAGE) if name.endswith(".py")
               and compiled.search(open(os.path.join(PACKAGE, name), encoding="utf-8").read())}
    assert modules  # the pattern finds the kernel modules
    assert modules <= set(_config.KERNEL_MODULES), sorted(modules - set(_config.KERNEL_MODULES))


_TRAIN = r"""
import json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))  # the copy, not the package in the current directory
import numpy as np
import fastmlp
from fastmlp import _envreport
X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], float)
Y = np.array([[0, 1, 1, 0]], float)
model = fastmlp.MLP([2, 2, 1], hidden_activation="sigmoid", seed=1)  # a tiny network: _kernels_tiny's step
model.fit(X, Y, epochs=3, learning_rate=0.5)
assert fastmlp.__file__.startswith(sys.argv[1]), fastmlp.__file__
print(json.dumps({"params": model.get_parameters()["W1"].tolist(), "cached": _envreport._cached_kernels()}))
"""


def test_a_changed_helper_module_is_compiled_again(tmp_path):
    """A copy of the package (with this session's compile cache) trains a tiny network; then the sigmoid
    derivative in ``_kernels_tiny.py`` (compiled into a kernel that ``_kernels.py`` defines) is doubled: the next
    process must run the new code, and the one after it must load that from the cache."""
    copy = tmp_path / "fastmlp"
    shutil.copytree(PACKAGE, copy)
    env = {"NUMBA_CACHE_DIR": None, "FASTMLP_CACHE": "1"}

    def train():
        proc = run_python(_TRAIN, str(copy), env=env)
        assert proc.returncode == 0, describe(proc)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    before = train()
    tiny = copy / "_kernels_tiny.py"
    source = tiny.read_text()
    line = "        return d * a * (one - a)\n"
    assert source.count(line) == 1
    tiny.write_text(source.replace(line, "        return d * a * (one - a) * (one + one)\n"))
    after = train()
    assert after["params"] != before["params"]  # a stale kernel would give the same numbers
    again = train()
    assert again["params"] == after["params"]
    assert "tiny networks: sgd/bce float64" in again["cached"], again["cached"]


def test_the_stamp_reads_a_package_imported_from_a_zip(tmp_path):
    """A zipped fastmlp (zipimport) with ``NUMBA_CACHE_DIR`` set: the stamp reads the sources through the
    package's loader, so importing works and the stamp is the one of the same sources on disk."""
    import zipfile

    archive = tmp_path / "fastmlp.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in sorted(os.listdir(PACKAGE)):
            if name.endswith(".py"):
                zf.write(os.path.join(PACKAGE, name), f"fastmlp/{name}")
    proc = run_python("""
        import sys
        sys.path.insert(0, sys.argv[1])
        from fastmlp import _config
        assert _config.__file__.startswith(sys.argv[1]), _config.__file__
        print(_config.source_digest().hex())
    """, str(archive), env={"NUMBA_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split()[-1] == _config.source_digest().hex()
