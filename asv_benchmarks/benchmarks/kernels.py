"""Kernel-level benchmarks: the course-style functions on one minibatch of each workload.

``fastmlp.reference`` (pure NumPy) against ``fastmlp.functional`` (same names and signatures, Numba
kernels): ``L_model_forward``, ``L_model_backward`` and ``update_parameters`` (the SGD step), over the
network sizes of the four workloads (first minibatch: 4, 32, 32 and 256 samples) and both dtypes.
"""

from .common import DTYPES, IMPLEMENTATIONS, SPEEDUP_REPS, TINY, WORKLOAD_NAMES, get, workloads


class Kernels:
    """Time of one call, reference and fastmlp side by side."""

    params = (WORKLOAD_NAMES, IMPLEMENTATIONS, DTYPES)
    param_names = ["size", "implementation", "dtype"]

    def setup(self, size, implementation, dtype):
        w = get(size)
        # each build prepares its inputs and calls once: JIT compilation happens here, never when timed
        self.forward = w.build_kernel("forward", implementation, dtype)
        self.backward = w.build_kernel("backward", implementation, dtype)
        self.update = w.build_kernel("update", implementation, dtype)

    def time_forward(self, size, implementation, dtype):
        self.forward()

    def time_backward(self, size, implementation, dtype):
        self.backward()

    def time_sgd_step(self, size, implementation, dtype):
        self.update()


class KernelSpeedup:
    """Reference time / fastmlp time of one call, both measured in the same run."""

    params = (WORKLOAD_NAMES, DTYPES)
    param_names = ["size", "dtype"]
    unit = "x"
    rounds = 1  # each value already is a median of interleaved repetitions

    def setup(self, size, dtype):
        w = get(size)
        self.pairs = {
            op: (w.build_kernel(op, "reference", dtype), w.build_kernel(op, "fastmlp", dtype))
            for op in workloads.KERNEL_OPS
        }

    def _ratio(self, op):
        ref, fast = self.pairs[op]
        # one call is short: time batches of calls so the clock's resolution does not matter
        n = _calls_for(ref)

        def batch(f):
            def run():
                for _ in range(n):
                    f()
            return run

        return workloads.speedup(batch(ref), batch(fast), reps=SPEEDUP_REPS)

    def track_speedup_forward(self, size, dtype):
        return self._ratio("forward")

    def track_speedup_backward(self, size, dtype):
        return self._ratio("backward")

    def track_speedup_sgd_step(self, size, dtype):
        return self._ratio("update")


def _calls_for(f, target=0.001 if TINY else 0.02):
    """How many calls of ``f`` take about ``target`` seconds (at least 1)."""
    t = workloads.median_time(f, reps=3, warmup=False)
    return max(1, min(100_000, int(target / max(t, 1e-7))))
