"""scikit-learn comparison (issue 5): ``fastmlp.MLPClassifier`` against scikit-learn's ``MLPClassifier``.

Same constructor arguments (``fastmlp.workloads.ESTIMATOR_WORKLOADS``): breast cancer with hidden (64, 32),
batch 32, SGD with momentum; digits with hidden (128,), batch 32, Adam. One call fits ``epochs`` more
epochs with ``warm_start``. Skipped (asv: n/a) where a side is not installed or not written yet.
"""

from .common import DTYPES, ESTIMATOR_IMPLEMENTATIONS, ESTIMATOR_NAMES, SPEEDUP_REPS, get, workloads


def _need_sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise NotImplementedError("scikit-learn is not installed") from exc


class Estimators:
    """Time of ``epochs`` epochs, scikit-learn and fastmlp side by side."""

    params = (ESTIMATOR_NAMES, ESTIMATOR_IMPLEMENTATIONS, DTYPES)
    param_names = ["workload", "implementation", "dtype"]
    timeout = 300
    repeat = (1, 10, 10.0)

    def setup(self, workload, implementation, dtype):
        _need_sklearn()
        self.run = get(workload).build(implementation, dtype)

    def time_fit_epochs(self, workload, implementation, dtype):
        self.run()

    def peakmem_fit_epochs(self, workload, implementation, dtype):
        self.run()


class EstimatorSpeedup:
    """scikit-learn time / fastmlp time, both measured in the same run."""

    params = (ESTIMATOR_NAMES, DTYPES)
    param_names = ["workload", "dtype"]
    unit = "x"
    timeout = 300
    rounds = 1  # each value already is a median of interleaved repetitions

    def setup(self, workload, dtype):
        _need_sklearn()
        w = get(workload)
        self.fast = w.build("fastmlp", dtype)  # first: skips before the slow side is built
        self.sklearn = w.build("sklearn", dtype)

    def track_speedup_vs_sklearn(self, workload, dtype):
        return workloads.speedup(self.sklearn, self.fast, reps=SPEEDUP_REPS)


class EstimatorPredict:
    """``predict`` / ``predict_proba`` of a fitted estimator on all the workload's rows or on one row."""

    params = (ESTIMATOR_NAMES, ESTIMATOR_IMPLEMENTATIONS, DTYPES, ["predict", "predict_proba"], ["all", "one"])
    param_names = ["workload", "implementation", "dtype", "method", "rows"]
    timeout = 300

    def setup(self, workload, implementation, dtype, method, rows):
        _need_sklearn()
        w = get(workload)
        if not hasattr(w, "build_predict"):
            raise NotImplementedError("this commit's registry has no inference runner")
        self.run = w.build_predict(implementation, dtype, method, rows)

    def time_predict(self, workload, implementation, dtype, method, rows):
        self.run()


class EstimatorPredictSpeedup:
    """scikit-learn time / fastmlp time of ``predict`` / ``predict_proba``, both measured in the same run."""

    params = (ESTIMATOR_NAMES, DTYPES, ["predict", "predict_proba"], ["all", "one"])
    param_names = ["workload", "dtype", "method", "rows"]
    unit = "x"
    timeout = 300
    rounds = 1  # each value already is a median of interleaved repetitions

    def setup(self, workload, dtype, method, rows):
        _need_sklearn()
        w = get(workload)
        if not hasattr(w, "build_predict"):
            raise NotImplementedError("this commit's registry has no inference runner")
        self.fast = w.build_predict("fastmlp", dtype, method, rows)
        self.sklearn = w.build_predict("sklearn", dtype, method, rows)

    def track_speedup_vs_sklearn(self, workload, dtype, method, rows):
        return workloads.speedup(self.sklearn, self.fast, reps=SPEEDUP_REPS)
