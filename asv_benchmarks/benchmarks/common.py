"""What every benchmark module shares: the workload registry, the parameter grids, the tiny switch.

The registry is :mod:`fastmlp.workloads` of the fastmlp under test. A commit older than the registry
(asv benchmarks every commit of a range with the suite of the working tree) gets the registry file of this
checkout instead, so that the suite still imports; benchmarks of parts that commit lacks are skipped
(their ``setup`` raises ``NotImplementedError``, which asv reports as skipped).

``FASTMLP_BENCH_TINY=1`` switches every workload to its tiny variant and shortens the speedup
measurements: the smoke test (``tests/test_benchmarks.py``) sets it to run every benchmark once in seconds.
"""

import importlib.util
import os
import sys

_CHECKOUT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "fastmlp")


def _load_from_checkout(filename, name):
    spec = importlib.util.spec_from_file_location(name, os.path.abspath(os.path.join(_CHECKOUT, filename)))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


try:
    from fastmlp import workloads
except ImportError:  # a commit from before the registry: load this checkout's copy of it
    # with the leaf modules it imports (NumPy only), where that commit lacks them
    for _leaf in ("_timing", "_standardise"):
        try:
            importlib.import_module(f"fastmlp.{_leaf}")
        except ImportError:
            _load_from_checkout(f"{_leaf}.py", f"fastmlp.{_leaf}")
    workloads = _load_from_checkout("workloads.py", "_fastmlp_workloads")

TINY = os.environ.get("FASTMLP_BENCH_TINY", "0").strip().lower() not in {"", "0", "false", "no", "off"}

#: interleaved repetitions behind each ``track_speedup_*`` value
SPEEDUP_REPS = 1 if TINY else 5

WORKLOAD_NAMES = workloads.names("mlp")
ESTIMATOR_NAMES = workloads.names("estimator")
IMPLEMENTATIONS = list(workloads.IMPLEMENTATIONS)
ESTIMATOR_IMPLEMENTATIONS = list(workloads.ESTIMATOR_IMPLEMENTATIONS)
DTYPES = list(workloads.DTYPES)


def get(name):
    """The workload ``name`` (its tiny variant under ``FASTMLP_BENCH_TINY``)."""
    return workloads.get(name, tiny=TINY)
