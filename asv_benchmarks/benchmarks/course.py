"""Course-style loops, per step: the user's NumPy code and the same loop on fastmlp's dialects.

The rows of ``scripts/bench_course.py`` (which holds the workloads and documents them): ``time_step`` for
each side, ``track_speedup`` for their ratio measured in one run (interleaved medians).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import bench_course  # noqa: E402

TINY = os.environ.get("FASTMLP_BENCH_TINY") == "1"
NAMES = bench_course.SMALL if TINY else list(bench_course.WORKLOADS)


class CourseStep:
    """One step of each loop: ``numpy`` (the user's code), ``fastmlp`` (the same loop on fastmlp's dialect)."""

    params = (NAMES, ["numpy", "fastmlp"])
    param_names = ["workload", "side"]
    timeout = 300

    def setup(self, workload, side):
        self.step = bench_course.WORKLOADS[workload]()[side]
        self.step()

    def time_step(self, workload, side):
        """One call (the whole-loop rows run many steps per call: see ``bench_course``)."""
        self.step()


class CourseSpeedup:
    """Their NumPy time per step / fastmlp's, measured in the same run."""

    params = (NAMES,)
    param_names = ["workload"]
    unit = "x"
    timeout = 300
    rounds = 1

    def setup(self, workload):
        self.rows = bench_course.workloads([workload])

    def track_speedup(self, workload):
        times = bench_course.measure(self.rows, repeats=1 if TINY else 5, budget=0.005 if TINY else 0.05)
        return times[workload, "numpy"] / times[workload, "fastmlp"]
