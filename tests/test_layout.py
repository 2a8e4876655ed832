"""The house rules: layers and import direction, no outside paths, an untouched environment, the BLAS report."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from child import describe, run_python

from fastmlp import _blas

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fastmlp"

#: each module's layer (docs/DESIGN.md, "Layout"); a module may import only from its own layer or below
LAYERS = {
    # 0: leaves -- settings, validation, files, timing; NumPy at most
    "_version": 0, "_config": 0, "_bounds": 0, "_checks": 0, "_atomic": 0, "_standardise": 0, "_tables": 0,
    "_timing": 0, "_progress": 0, "_blas": 0, "_guard": 0,
    # 1: the definition of correct, the kernels and their one door
    "reference": 1, "_kernels": 1, "_kernels_general": 1, "_kernels_tiny": 1, "_small_products": 1, "_elementary": 1,
    "_engine": 1,
    "_steps": 1,
    # 2: the model-file container (models register with it)
    "_modelfile": 2,
    # 3: what users import
    "model": 3, "functional": 3, "estimators": 3, "course": 3, "architecture": 3,
    # 4: built on the models: files door, pipeline, workloads, benchmarks, plots, reports, exports
    "io": 4, "_tabular": 4, "workloads": 4, "plot": 4, "_envreport": 4, "onnx": 4, "dask": 4, "_baseline": 4,
    "_demo": 5, "_bench": 5,
    # 6: the command line and the package's lazy front door
    "cli": 6, "__main__": 6, "__init__": 6,
}


def _imports(path: Path) -> set[str]:
    """fastmlp modules that ``path`` imports anywhere (module level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fastmlp":
            parts = node.module.split(".")
            out |= {a.name for a in node.names} if len(parts) == 1 else {parts[1]}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("fastmlp.")}
    return out


def _graph() -> dict[str, set[str]]:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    return {p.stem: (_imports(p) & modules) - {p.stem} for p in PACKAGE.glob("*.py")}


def test_every_module_has_a_layer():
    missing = sorted(set(_graph()) - set(LAYERS))
    assert not missing, f"give these modules a layer here and in docs/DESIGN.md: {missing}"


def test_no_import_points_up_a_layer():
    graph = _graph()
    upward = [(m, d) for m, deps in graph.items() for d in deps
              if m in LAYERS and d in LAYERS and LAYERS[d] > LAYERS[m] and d != "_version"]
    assert not upward, upward


def test_no_import_circle():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def _tracked_text_files():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout (an unpacked sdist): every file under the root
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    else:
        names = out.stdout.splitlines()
    for name in names:
        path = ROOT / name
        if path.suffix in {".py", ".md", ".toml", ".json", ".cfg", ".txt", ".yml", ".yaml", ""} and path.is_file():
            yield name, path.read_text(errors="replace")


def test_no_file_cites_a_path_outside_the_repository():
    outside = re.compile(r"\.\./shared|shared/bench|shared/seeds|/work/|(?<![\w/])DESIGN\.md")
    bad = []
    for name, text in _tracked_text_files():
        if name == "tests/test_layout.py":
            continue
        for i, line in enumerate(text.splitlines(), start=1):
            for match in outside.finditer(line):
                # the design document is cited by its path in the repository
                if match.group() == "DESIGN.md" and ("docs/DESIGN.md" in line or '"docs" / "DESIGN.md"' in line):
                    continue
                bad.append(f"{name}:{i}: {line.strip()[:100]}")
    assert not bad, "\n".join(bad)


def test_import_leaves_the_environment_alone():
    code = """
        import json, os, sys
        before = dict(os.environ)
        import fastmlp
        from fastmlp import functional, io, model, reference, cli  # noqa: F401
        fastmlp.MLP([2, 3, 1], seed=0)
        print(json.dumps([k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)]))
    """
    for env in ({}, {"OPENBLAS_CORETYPE": None}):  # as the machine has it, and as a user's machine has it
        proc = run_python(code, env=env)
        assert proc.returncode == 0, describe(proc)
        assert json.loads(proc.stdout.strip().splitlines()[-1]) == [], env


# ---------------------------------------------------------------------------------------- the BLAS report

AVX512 = {"sse2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl"}
AVX2 = {"sse2", "avx", "avx2", "fma"}


@pytest.mark.parametrize(
    "family, flags, coretype, slower",
    [
        ("Haswell", AVX512, "Haswell", True),
        ("Haswell", AVX512, None, True),
        ("SkylakeX", AVX512, None, False),
        ("Cooperlake", AVX512, None, False),
        ("Haswell", AVX2, None, False),
        ("Zen", AVX2, None, False),
        ("Sandybridge", AVX2, None, True),
        ("Prescott", {"sse2"}, None, False),
        ("neoversen1", AVX512, None, False),  # not an x86 family: not compared
        ("Haswell", set(), None, False),  # no CPU flags (not Linux): not compared
    ],
)
def test_blas_verdict(family, flags, coretype, slower):
    text = _blas.verdict(family, flags, coretype)
    assert (text is not None) == slower
    if slower:
        assert family in text and "slower than this CPU allows" in text
        assert (f"OPENBLAS_CORETYPE={coretype}" in text) == bool(coretype)


def test_info_reports_the_kernel_family_and_verdict():
    pytest.importorskip("threadpoolctl")
    proc = subprocess.run([sys.executable, "-m", "fastmlp", "info"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    rows = dict(line.split("  ", 1) for line in proc.stdout.splitlines() if "  " in line)
    rows = {k.strip(): v.strip() for k, v in rows.items()}
    # what this test process sees: SciPy's OpenBLAS, the one fastmlp's kernels call
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_info

    scipy_blas = [lib for lib in threadpool_info() if "scipy" in os.path.basename(os.path.dirname(lib["filepath"]))]
    family = scipy_blas[0]["architecture"] if scipy_blas else None
    assert f"kernels {family}" in rows["BLAS (SciPy, used by fastmlp)"]
    expected = _blas.verdict(family, _blas.cpu_flags(), os.environ.get("OPENBLAS_CORETYPE"))
    if expected is not None:
        assert rows["BLAS kernels"] == expected
    else:
        assert "slower" not in rows["BLAS kernels"]
    assert rows["OPENBLAS_CORETYPE"].startswith(os.environ.get("OPENBLAS_CORETYPE", "unset"))
