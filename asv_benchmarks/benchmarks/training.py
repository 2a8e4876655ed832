"""Training benchmarks on the four workloads of docs/DESIGN.md §3 (sigmoid output, BCE, minibatch SGD).

One call trains ``epochs`` epochs of the workload (``fastmlp.workloads``: 2000 for W1-xor, 20 for W2-deep
and W3-cancer, 2 for W4-wide -- the table of docs/DESIGN.md §3) so that tiny workloads
are not dominated by the cost of one Python call; divide by that number for the time per epoch.
"""

from .common import DTYPES, IMPLEMENTATIONS, SPEEDUP_REPS, WORKLOAD_NAMES, get, workloads


class Train:
    """``fastmlp.reference.train`` and ``fastmlp.MLP.fit`` side by side, one table."""

    params = (WORKLOAD_NAMES, IMPLEMENTATIONS, DTYPES)
    param_names = ["workload", "implementation", "dtype"]
    timeout = 300
    repeat = (1, 10, 10.0)

    def setup(self, workload, implementation, dtype):
        # builds the runner and warms it up: data made, kernels compiled (or loaded from the cache)
        self.run = get(workload).build(implementation, dtype)
        self.run()

    def time_train(self, workload, implementation, dtype):
        """``epochs`` epochs of minibatch SGD (see the module docstring)."""
        self.run()

    def peakmem_train(self, workload, implementation, dtype):
        """Peak resident memory of the process that trains (data, parameters, workspaces)."""
        self.run()


class TrainSpeedup:
    """Reference time / fastmlp time, both measured in the same run (interleaved medians)."""

    params = (WORKLOAD_NAMES, DTYPES)
    param_names = ["workload", "dtype"]
    unit = "x"
    timeout = 300
    rounds = 1  # each value already is a median of interleaved repetitions

    def setup(self, workload, dtype):
        w = get(workload)
        self.reference = w.build("reference", dtype)
        self.fast = w.build("fastmlp", dtype)

    def track_speedup(self, workload, dtype):
        """How many times faster fastmlp trains than the reference (same data, parameters, epochs)."""
        return workloads.speedup(self.reference, self.fast, reps=SPEEDUP_REPS)


class ColdStart:
    """Import fastmlp and train W2-deep for one epoch in a fresh interpreter: the compile latency.

    ``cache="cold"`` points Numba at an empty cache directory (every kernel compiled, as on first use after
    install); ``"warm"`` uses the usual cache, filled in ``setup``.
    """

    params = (["cold", "warm"], DTYPES)
    param_names = ["cache", "dtype"]
    repeat = (1, 3, 30.0)  # cold: one sample (compiling takes tens of seconds); warm: three
    rounds = 1
    number = 1
    timeout = 600
    workload = "W2-deep"

    def setup(self, cache, dtype):
        workloads._import_attr("fastmlp.model", "MLP")  # skipped at commits without fastmlp.MLP
        if cache == "warm":  # fill the on-disk cache for this dtype (a no-op when it is already filled)
            get(self.workload).build("fastmlp", dtype, epochs=1)()

    def timeraw_import_and_first_fit(self, cache, dtype):
        w = get(self.workload)
        prelude = ""
        if cache == "cold":
            prelude = ("import atexit, os, shutil, tempfile\n"
                       "os.environ['NUMBA_CACHE_DIR'] = tempfile.mkdtemp(prefix='fastmlp-cold-')\n"
                       "atexit.register(shutil.rmtree, os.environ['NUMBA_CACHE_DIR'], True)\n")
        # self-contained (no registry import): the same data as the registry's "gaussian" workloads
        return prelude + (
            "import numpy as np\n"
            "import fastmlp\n"
            "rng = np.random.RandomState(0)\n"
            f"X = rng.randn({w.dims[0]}, {w.m}).astype({dtype!r})\n"
            f"Y = (rng.rand(1, {w.m}) < 0.5).astype({dtype!r})\n"
            f"model = fastmlp.MLP({list(w.dims)!r}, hidden_activation={w.hidden!r}, seed=1,"
            f" dtype={dtype!r})\n"
            f"model.fit(X, Y, epochs=1, learning_rate={w.lr!r}, batch_size={w.batch})\n"
        )
