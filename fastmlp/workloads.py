"""The one registry of benchmark workloads: what "fast" is measured on.

Used by the asv suite (``asv_benchmarks/benchmarks``), the tests, ``scripts/bench.py`` and
``fastmlp bench`` -- there is no other copy of these numbers. The training workloads are the table of
docs/DESIGN.md §3 (``tests/test_benchmarks.py`` holds this registry to it):

=========  ==================  =======  =========================================  =====  =====  ============
name       layer dims          hidden   samples                                    batch  lr     epochs/rep
=========  ==================  =======  =========================================  =====  =====  ============
W1-xor     2-2-1               sigmoid  4 (XOR)                                    4      0.1    2000
W2-deep    2-4-6-6-4-1         relu     1024 (Gaussian, random labels)             32     0.05   20
W3-cancer  30-64-32-1          relu     569 (breast cancer, standardised)          32     0.05   20
W4-wide    784-512-256-1       relu     4096 (Gaussian, random labels)             256    0.01   2
=========  ==================  =======  =========================================  =====  =====  ============

Output sigmoid, binary cross-entropy, minibatch SGD walking the samples in order. Every workload starts
from the same "he" parameters (``RandomState(1)``), whatever the implementation.

The scikit-learn comparison workloads (issue 5) train scikit-learn-style estimators (samples as rows):

==============  =============  ========  ==============================  =====  ==========
name            data           hidden    solver                          batch  epochs/rep
==============  =============  ========  ==============================  =====  ==========
S1-cancer-sgd   breast cancer  (64, 32)  SGD, momentum 0.9 (Nesterov)    32     20
S2-digits-adam  digits         (128,)    Adam                            32     10
==============  =============  ========  ==============================  =====  ==========

Every workload has a ``tiny`` variant (:meth:`Workload.shrink`, or ``get(name, tiny=True)``): the same
kind of network and data, a few dozen samples, one epoch -- for smoke tests.

Examples
--------
>>> from fastmlp import workloads
>>> w = workloads.get("W2-deep")
>>> X, Y = w.make_data("float32")        # X (2, 1024), Y (1, 1024)
>>> train = w.build("fastmlp", "float32")  # warmed up; each call trains w.epochs epochs
>>> train()
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import warnings
from collections.abc import Callable

import numpy as np

from fastmlp._standardise import standardise
from fastmlp._timing import median_time, speedup  # noqa: F401  (part of this module's API: asv uses them)

#: the implementations every training workload is timed for, side by side
IMPLEMENTATIONS = ("reference", "fastmlp")
#: the implementations every estimator workload is timed for
ESTIMATOR_IMPLEMENTATIONS = ("sklearn", "fastmlp")
#: dtypes every workload runs in
DTYPES = ("float64", "float32")
#: the kernel-level operations (course-style functions) timed for each workload's first minibatch
KERNEL_OPS = ("forward", "backward", "update")

# the learning rate of the kernel-level "update" benchmark: small, so that repeating the step millions
# of times never moves the weights far
_KERNEL_UPDATE_LR = 1e-6

# tiny variants: at most this many samples, this batch, this many units in a layer
_TINY_M = 64
_TINY_BATCH = 16
_TINY_WIDTH = 16


def _import_optional(module: str):
    """Import a part of fastmlp that may not exist yet at this commit.

    A missing fastmlp module raises ``NotImplementedError`` (which asv reports as a skipped benchmark);
    any other import error propagates, so that a broken module still fails loudly.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module or module.startswith(exc.name + ".")):
            raise NotImplementedError(f"{module} is not available in this version of fastmlp") from exc
        raise


def _import_attr(module: str, attr: str):
    """``module.attr``, or ``NotImplementedError`` when this version of fastmlp lacks either."""
    mod = _import_optional(module)
    try:
        return getattr(mod, attr)
    except AttributeError as exc:
        raise NotImplementedError(f"{module}.{attr} is not available in this version of fastmlp") from exc


# ---------------------------------------------------------------------------------------------- data


def _xor():
    X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], dtype=np.float64)
    Y = np.array([[0, 1, 1, 0]], dtype=np.float64)
    return X, Y


def _load_sklearn(loader: str, rng: np.random.RandomState, m: int, n: int, n_classes: int):
    """(X (m, n) standardised, y (m,) int): scikit-learn's bundled data, or synthetic of that shape."""
    try:
        from sklearn import datasets

        d = getattr(datasets, loader)()
        Xr, y = np.asarray(d.data, dtype=np.float64), np.asarray(d.target)
    except ImportError:  # scikit-learn is optional: same shape, synthetic
        Xr = rng.randn(m, n)
        y = rng.randint(0, n_classes, size=m)
    return standardise(Xr), y.astype(np.int64)


@functools.cache
def _columns_data(kind: str, n0: int, m: int, seed: int):
    """Float64 (X (n0, m), Y (1, m)), made exactly as ``peers.py`` makes them. Cached; callers copy."""
    rng = np.random.RandomState(seed)
    if kind == "xor":
        X, Y = _xor()
    elif kind == "breast_cancer":
        Xr, y = _load_sklearn("load_breast_cancer", rng, 569, 30, 2)
        X, Y = np.ascontiguousarray(Xr.T), y.reshape(1, -1).astype(np.float64)
    elif kind == "gaussian":
        X = rng.randn(n0, m)
        Y = (rng.rand(1, m) < 0.5).astype(np.float64)
    else:
        raise ValueError(f"unknown data kind {kind!r}")
    X, Y = X[:n0, :m], Y[:, :m]
    X.setflags(write=False)
    Y.setflags(write=False)
    return X, Y


@functools.cache
def _rows_data(kind: str, m: int, seed: int):
    """Float64 X (m, n) standardised and int y (m,) for the estimator workloads. Cached; callers copy."""
    rng = np.random.RandomState(seed)
    if kind == "breast_cancer":
        X, y = _load_sklearn("load_breast_cancer", rng, 569, 30, 2)
    elif kind == "digits":
        X, y = _load_sklearn("load_digits", rng, 1797, 64, 10)
    else:
        raise ValueError(f"unknown data kind {kind!r}")
    X, y = X[:m], y[:m]
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def he_parameters(layer_dims, dtype="float64", seed: int = 1) -> dict[str, np.ndarray]:
    """The workloads' starting parameters: :func:`fastmlp.reference.initialize_parameters` with
    ``init="he"`` -- ``RandomState(seed)``, then for each layer ``W = randn(n_l, n_{l-1}) * sqrt(2 / n_{l-1})``
    and ``b = zeros((n_l, 1))``, drawn in float64 and cast to ``dtype``."""
    from fastmlp import reference

    return reference.initialize_parameters(list(layer_dims), init="he", seed=seed, dtype=np.dtype(dtype))


# ------------------------------------------------------------------------------------------ timing


# -------------------------------------------------------------------------------------- workloads


@dataclasses.dataclass(frozen=True)
class Workload:
    """A training workload: course-style MLP, samples as columns, sigmoid output, BCE, minibatch SGD.

    Attributes
    ----------
    name : str
        e.g. ``"W2-deep"``.
    dims : tuple of int
        Layer sizes ``(n_x, n_1, ..., n_y)``.
    hidden : str
        Activation of every hidden layer; the output layer is ``sigmoid`` with the ``bce`` loss.
    m : int
        Number of samples.
    batch : int
        Minibatch size.
    lr : float
        Learning rate.
    epochs : int
        Epochs per timing repetition (one call of a built runner), as in ``peers.py``.
    data : str
        ``"xor"``, ``"gaussian"`` or ``"breast_cancer"``.
    tiny : bool
        Whether this is the shrunken smoke-test variant.
    """

    name: str
    dims: tuple[int, ...]
    hidden: str
    m: int
    batch: int
    lr: float
    epochs: int
    data: str
    description: str = ""
    tiny: bool = False
    kind = "mlp"

    @property
    def activations(self) -> list[str]:
        """One activation per layer: ``hidden`` for the hidden layers, ``sigmoid`` for the output."""
        return [self.hidden] * (len(self.dims) - 2) + ["sigmoid"]

    @property
    def n_batches(self) -> int:
        return -(-self.m // self.batch)

    @property
    def flops_per_epoch(self) -> int:
        """Multiply-adds x2 of the matrix products one epoch must do (forward, dW, and dA below layer 1)."""
        per_sample = 0
        for l in range(1, len(self.dims)):
            per_sample += 2 * self.dims[l] * self.dims[l - 1] * (3 if l > 1 else 2)
        return per_sample * self.m

    def shrink(self) -> Workload:
        """The tiny variant: same network shape family, at most 64 samples, 16 units, one epoch."""
        if self.tiny:
            return self
        n0 = self.dims[0] if self.data in ("xor", "breast_cancer") else min(self.dims[0], 2 * _TINY_WIDTH)
        dims = (n0, *(min(d, _TINY_WIDTH) for d in self.dims[1:-1]), self.dims[-1])
        m = min(self.m, _TINY_M)
        return dataclasses.replace(self, dims=dims, m=m, batch=min(self.batch, _TINY_BATCH, m), epochs=1,
                                   tiny=True)

    def make_data(self, dtype="float64") -> tuple[np.ndarray, np.ndarray]:
        """Deterministic ``(X (n_x, m), Y (1, m))`` in ``dtype`` (fresh, writable, C-contiguous arrays)."""
        X, Y = _columns_data(self.data, self.dims[0], self.m, 0)
        dt = np.dtype(dtype)
        return np.array(X, dtype=dt, order="C"), np.array(Y, dtype=dt, order="C")

    def first_batch(self, dtype="float64") -> tuple[np.ndarray, np.ndarray]:
        """The first minibatch, ``(X (n_x, batch), Y (1, batch))``: the kernel-level benchmarks' input."""
        X, Y = self.make_data(dtype)
        return np.ascontiguousarray(X[:, : self.batch]), np.ascontiguousarray(Y[:, : self.batch])

    def init_parameters(self, dtype="float64") -> dict[str, np.ndarray]:
        """The starting parameters every implementation uses (see :func:`he_parameters`)."""
        return he_parameters(self.dims, dtype, seed=1)

    # -- runners: zero-argument callables; each call trains `epochs` more epochs, continuing ---------

    def build_reference(self, dtype="float64", epochs: int | None = None) -> Callable[[], object]:
        """``fastmlp.reference.train`` on this workload; each call trains ``epochs`` (default
        ``self.epochs``) epochs, continuing from the previous call's parameters."""
        reference = _import_optional("fastmlp.reference")
        X, Y = self.make_data(dtype)
        params = self.init_parameters(dtype)
        acts, lr, batch, n = self.activations, self.lr, self.batch, epochs or self.epochs

        def run():
            reference.train(params, X, Y, activations=acts, loss="bce", learning_rate=lr, epochs=n,
                            batch_size=batch)

        run.parameters = params
        return run

    def build_fastmlp(self, dtype="float64", epochs: int | None = None, *, warm: bool = True
                      ) -> Callable[[], object]:
        """``fastmlp.MLP(...).fit(...)`` on this workload, from the same parameters as the reference.

        With ``warm`` (the default) one epoch is trained on a throw-away model first, so that the
        kernels are compiled (or loaded from the cache) before the first timed call.
        """
        X, Y = self.make_data(dtype)
        n = epochs or self.epochs
        if warm:
            self._fastmlp_model(dtype).fit(X, Y, epochs=1, learning_rate=self.lr, batch_size=self.batch,
                                           shuffle=False)
        model = self._fastmlp_model(dtype)

        def run():
            model.fit(X, Y, epochs=n, learning_rate=self.lr, batch_size=self.batch, shuffle=False)

        run.model = model
        return run

    def _fastmlp_model(self, dtype):
        model_cls = _import_attr("fastmlp.model", "MLP")
        model = model_cls(list(self.dims), hidden_activation=self.hidden, output_activation="sigmoid",
                          loss="bce", seed=1, dtype=str(np.dtype(dtype)))
        model.set_parameters(self.init_parameters(dtype))
        return model

    def build(self, impl: str, dtype="float64", epochs: int | None = None) -> Callable[[], object]:
        """The runner of ``impl``: ``"reference"`` (:meth:`build_reference`) or ``"fastmlp"``
        (:meth:`build_fastmlp`)."""
        if impl == "reference":
            return self.build_reference(dtype, epochs)
        if impl == "fastmlp":
            return self.build_fastmlp(dtype, epochs)
        raise ValueError(f"unknown implementation {impl!r}; expected one of {IMPLEMENTATIONS}")

    def build_kernel(self, op: str, impl: str, dtype="float64") -> Callable[[], object]:
        """One course-style function call on the first minibatch: ``op`` is ``"forward"``
        (``L_model_forward``), ``"backward"`` (``L_model_backward``) or ``"update"``
        (``update_parameters``, in place); ``impl`` is ``"reference"`` (``fastmlp.reference``) or
        ``"fastmlp"`` (``fastmlp.functional``). Inputs are prepared and the call made once here (warm-up)."""
        if op not in KERNEL_OPS:
            raise ValueError(f"unknown kernel op {op!r}; expected one of {KERNEL_OPS}")
        module = {"reference": "fastmlp.reference", "fastmlp": "fastmlp.functional"}.get(impl)
        if module is None:
            raise ValueError(f"unknown implementation {impl!r}; expected one of {IMPLEMENTATIONS}")
        mod = _import_optional(module)
        X, Y = self.first_batch(dtype)
        params = self.init_parameters(dtype)
        acts = self.activations
        AL, caches = mod.L_model_forward(X, params, activations=acts)
        if op == "forward":
            def run():
                return mod.L_model_forward(X, params, activations=acts)
        else:
            grads = mod.L_model_backward(AL, Y, caches, activations=acts, loss="bce")
            if op == "backward":
                def run():
                    return mod.L_model_backward(AL, Y, caches, activations=acts, loss="bce")
            else:
                def run():
                    return mod.update_parameters(params, grads, _KERNEL_UPDATE_LR)
        run()
        return run


@dataclasses.dataclass(frozen=True)
class EstimatorWorkload:
    """A scikit-learn-style workload (samples as rows): ``MLPClassifier`` with these settings.

    ``sklearn_params()`` are the constructor arguments shared by ``sklearn.neural_network.MLPClassifier``
    and ``fastmlp.MLPClassifier``; a built runner refits with ``warm_start=True`` so that each call trains
    ``epochs`` more epochs from where the last one stopped (``shuffle=False``, no early stopping).
    """

    name: str
    data: str
    m: int
    n_features: int
    hidden_layer_sizes: tuple[int, ...]
    solver: str
    batch: int
    lr: float
    epochs: int
    activation: str = "relu"
    momentum: float = 0.9
    nesterovs_momentum: bool = True
    alpha: float = 1e-4
    description: str = ""
    tiny: bool = False
    kind = "estimator"

    def shrink(self) -> EstimatorWorkload:
        if self.tiny:
            return self
        m = min(self.m, _TINY_M)
        hidden = tuple(min(h, _TINY_WIDTH) for h in self.hidden_layer_sizes)
        return dataclasses.replace(self, m=m, batch=min(self.batch, _TINY_BATCH), hidden_layer_sizes=hidden,
                                   epochs=1, tiny=True)

    def make_data(self, dtype="float64") -> tuple[np.ndarray, np.ndarray]:
        """Deterministic ``(X (m, n_features) standardised, y (m,) integer labels)``."""
        X, y = _rows_data(self.data, self.m, 0)
        return np.array(X, dtype=np.dtype(dtype), order="C"), np.array(y)

    def sklearn_params(self, epochs: int | None = None) -> dict:
        params = dict(hidden_layer_sizes=self.hidden_layer_sizes, activation=self.activation,
                      solver=self.solver, alpha=self.alpha, batch_size=self.batch, learning_rate="constant",
                      learning_rate_init=self.lr, max_iter=epochs or self.epochs, shuffle=False,
                      random_state=0, tol=0.0, n_iter_no_change=10**9, early_stopping=False,
                      warm_start=True)
        if self.solver == "sgd":
            params.update(momentum=self.momentum, nesterovs_momentum=self.nesterovs_momentum)
        return params

    def estimator_class(self, impl: str):
        if impl == "sklearn":
            from sklearn.neural_network import MLPClassifier
        elif impl == "fastmlp":
            MLPClassifier = _import_attr("fastmlp.estimators", "MLPClassifier")
        else:
            raise ValueError(f"unknown implementation {impl!r}; expected one of {ESTIMATOR_IMPLEMENTATIONS}")
        return MLPClassifier

    def build(self, impl: str, dtype="float64", epochs: int | None = None) -> Callable[[], object]:
        """A warmed-up runner: each call fits ``epochs`` (default ``self.epochs``) more epochs."""
        cls = self.estimator_class(impl)
        X, y = self.make_data(dtype)
        est = cls(**self.sklearn_params(epochs))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls(**self.sklearn_params(1)).fit(X, y)  # warm-up: compile, allocate, import lazily
            est.set_params(max_iter=1).fit(X, y)
            est.set_params(max_iter=epochs or self.epochs)

        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter, by design
                est.fit(X, y)

        run.estimator = est
        return run

    def build_predict(self, impl: str, dtype="float64", method="predict", rows="all") -> Callable[[], object]:
        """A runner for inference: each call runs ``method`` (``predict`` or ``predict_proba``) of an estimator
        fitted for one epoch on all ``m`` samples (``rows="all"``) or on the first one (``rows="one"``)."""
        cls = self.estimator_class(impl)
        X, y = self.make_data(dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = cls(**self.sklearn_params(1)).fit(X, y)
        X_run = X if rows == "all" else X[:1].copy()
        call = getattr(est, method)
        call(X_run)  # warm-up: compile the forward kernel

        def run():
            return call(X_run)

        run.estimator = est
        return run


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("W1-xor", (2, 2, 1), "sigmoid", m=4, batch=4, lr=0.1, epochs=2000, data="xor",
                 description="XOR, 2-2-1 sigmoid, full batch: per-call and per-step overhead"),
        Workload("W2-deep", (2, 4, 6, 6, 4, 1), "relu", m=1024, batch=32, lr=0.05, epochs=20, data="gaussian",
                 description="narrow deep relu net: many tiny layers, loop-bound"),
        Workload("W3-cancer", (30, 64, 32, 1), "relu", m=569, batch=32, lr=0.05, epochs=20,
                 data="breast_cancer", description="breast cancer (standardised), small dense layers"),
        Workload("W4-wide", (784, 512, 256, 1), "relu", m=4096, batch=256, lr=0.01, epochs=2, data="gaussian",
                 description="MNIST-sized wide net: GEMM-bound"),
    )
}

ESTIMATOR_WORKLOADS: dict[str, EstimatorWorkload] = {
    w.name: w
    for w in (
        EstimatorWorkload("S1-cancer-sgd", "breast_cancer", m=569, n_features=30, hidden_layer_sizes=(64, 32),
                          solver="sgd", batch=32, lr=0.01, epochs=20, momentum=0.9, nesterovs_momentum=True,
                          description="breast cancer, hidden (64, 32), SGD with momentum"),
        EstimatorWorkload("S2-digits-adam", "digits", m=1797, n_features=64, hidden_layer_sizes=(128,),
                          solver="adam", batch=32, lr=1e-3, epochs=10,
                          description="digits (10 classes), hidden (128,), Adam"),
    )
}


def names(kind: str = "all") -> list[str]:
    """Workload names: ``"mlp"`` (W1..W4), ``"estimator"`` (S1, S2) or ``"all"``."""
    if kind == "mlp":
        return list(WORKLOADS)
    if kind == "estimator":
        return list(ESTIMATOR_WORKLOADS)
    if kind == "all":
        return list(WORKLOADS) + list(ESTIMATOR_WORKLOADS)
    raise ValueError(f"unknown workload kind {kind!r}; expected 'mlp', 'estimator' or 'all'")


def get(name: str, tiny: bool = False) -> Workload | EstimatorWorkload:
    """The workload called ``name`` -- also accepted: its prefix before the dash (``"W2"``, ``"S1"``),
    case-insensitive. ``tiny=True`` gives its smoke-test variant."""
    table = {**WORKLOADS, **ESTIMATOR_WORKLOADS}
    key = name.strip().lower()
    matches = [w for n, w in table.items() if key in (n.lower(), n.split("-")[0].lower())]
    if not matches:
        raise ValueError(f"unknown workload {name!r}; expected one of {', '.join(table)}")
    w = matches[0]
    return w.shrink() if tiny else w
