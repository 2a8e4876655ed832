"""scikit-learn drop-ins: :class:`MLPClassifier` and :class:`MLPRegressor`, trained by fastmlp's kernels.

Change one import::

    from sklearn.neural_network import MLPClassifier   # before
    from fastmlp import MLPClassifier                  # after

and the estimator has the same constructor parameters, defaults, fitted attributes and methods as
scikit-learn's, follows the same update order (initialisation from ``random_state``, per-epoch shuffling,
optimiser formulas, learning-rate schedules, tolerance checks, early stopping) and so, from the same
``random_state``, ends with the same weights (float64: to about 1e-10 relative) -- only faster.

All training maths runs in compiled kernels reached through :mod:`fastmlp._engine`: unweighted dense
sgd/adam epochs in :func:`~fastmlp._engine.train_epochs`, epochs with sample weights, a sparse ``X`` or the
Poisson loss in :func:`~fastmlp._engine.train_epochs_general`, and L-BFGS's whole-data loss and gradient (one
compiled call per evaluation) from :func:`~fastmlp._engine.loss_gradient_function`, driven by
``scipy.optimize.minimize(method="L-BFGS-B")`` with scikit-learn's options. This module only validates,
converts, keeps scikit-learn's bookkeeping and drives the epochs.

Differences from scikit-learn, all deliberate:

- ``MLPRegressor(loss="poisson")`` refuses negative targets with a ``ValueError`` (scikit-learn's MLP computes
  a NaN loss for them).
- With ``solver="lbfgs"`` float32 input keeps float32 weights, loss and gradient (scikit-learn's L-BFGS turns
  its ``coefs_`` into float64); SciPy's optimiser itself works in float64 either way.
- A minibatch whose sample weights sum to zero contributes a zero loss and gradient (scikit-learn divides by
  that zero and ends with a ``ValueError`` about non-finite weights).
- ``activation="leaky_relu"`` (slope 0.01) is available for the hidden layers in addition to scikit-learn's.
- The log-loss is computed from the logits (log-sum-exp), not from probabilities clipped to
  ``[eps, 1 - eps]``; ``loss_`` and ``loss_curve_`` differ from scikit-learn's only for samples whose
  predicted probability of their true class rounds below ``eps`` (about 2e-16 in float64): scikit-learn
  counts ``-log(eps)`` (about 36) for such a sample, fastmlp its true, larger, loss. Weights are unaffected.
- float32 input trains entirely in float32 (scikit-learn mixes in float64 for some steps). A warm-started
  ``fit`` or a ``partial_fit`` keeps the dtype of the first fit and converts later input to it.
- A diverging run stops at the first epoch whose cost or weights are not finite, with the weights of the
  last finite epoch kept, and raises ``ValueError`` (scikit-learn trains on to ``max_iter`` with NaN
  weights and raises the same ``ValueError`` at the end). With ``early_stopping=True`` the best
  validation weights are restored instead and a ``ConvergenceWarning`` is issued (scikit-learn restores
  them too, silently apart from its ``max_iter`` warning).
- ``coefs_`` and ``intercepts_`` are views into one flat parameter vector. Assigning new arrays (or a new
  list) is supported: they are copied into that vector when ``predict`` or a warm-started ``fit`` /
  ``partial_fit`` runs.

Threads: the kernels are single-threaded compiled loops that call BLAS (SciPy's OpenBLAS) only for
large layers. Inside joblib's default (loky) workers, e.g. ``GridSearchCV(..., n_jobs=2)`` or
``cross_val_score(..., n_jobs=2)``, joblib limits every BLAS and OpenMP library of a worker to
``cpu_count // n_jobs`` threads before it loads, so parallel searches do not oversubscribe the cores.
Elsewhere use ``threadpoolctl.threadpool_limits`` to cap BLAS threads.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.optimize
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from fastmlp import _modelfile
from fastmlp._guard import DeferredInterrupt, model_lock

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def validate_data(estimator, X="no_validation", y="no_validation", **kwargs):
        return estimator._validate_data(X, y, **kwargs)


try:  # the options scikit-learn passes to L-BFGS-B besides maxfun/maxiter/gtol (iprint before SciPy 1.15)
    from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
except ImportError:  # pragma: no cover - older scikit-learn

    def _get_additional_lbfgs_options_dict(key, value):
        return {key: value}


__all__ = ["MLPClassifier", "MLPRegressor"]

#: scikit-learn's hidden activation names -> the engine's
_HIDDEN_ACTIVATIONS = {
    "identity": "linear",
    "logistic": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "leaky_relu": "leaky_relu",
}
#: scikit-learn's output activation names -> (engine activation, engine loss)
_OUTPUTS = {
    "logistic": ("sigmoid", "bce"),
    "softmax": ("softmax", "ce"),
    "identity": ("linear", "half_mse"),
    # Poisson: the network's output layer computes log(mean); the exponential is applied by the kernels' loss
    # and by _forward
    "exp": ("linear", "poisson"),
}
#: numeric scikit-learn solvers trained by minibatches
_STOCHASTIC_SOLVERS = ("sgd", "adam")
_LEAKY_SLOPE = 0.01
_NON_FINITE_MESSAGE = (
    "Solver produced non-finite parameter weights. The input data may contain large values and need to "
    "be preprocessed."
)


def _engine():
    """The training engine, imported on first use (keeps ``import fastmlp.estimators`` cheap)."""
    from fastmlp import _engine as engine

    return engine


def _as_engine_rows(a, dtype):
    """Dense ``a`` (samples as rows) as a C-contiguous, writable array of ``dtype`` (a copy only when needed)."""
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(a, dtype=dtype)
    if out.dtype != a.dtype:
        _check_cast(out, dtype)
    if not out.flags.writeable:
        out = out.copy()
    return out


def _as_engine_columns(a, dtype):
    """``a`` (samples as rows) as the kernels read it: samples as columns, C-contiguous, writable.

    Converted once per ``fit`` (the engine would otherwise transpose-copy on every call). Read-only inputs
    (memory maps, frozen arrays) are copied so that the compiled kernels see one array type only (Numba
    compiles a separate specialisation for read-only arrays).
    """
    if scipy.sparse.issparse(a):
        _check_cast(a.data, dtype)
        return _engine().SparseRows(a, dtype)  # the kernels read CSR rows; X is never densified
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(a.T, dtype=dtype)
    if out.dtype != a.dtype:
        _check_cast(out, dtype)
    if not out.flags.writeable:
        out = out.copy()
    return out


def _plain_training_arrays(estimator, X, y, reset):
    """``(X, y)`` as ``validate_data(estimator, X, y, multi_output=True, dtype=(np.float64, np.float32),
    reset=reset)`` returns them, without its cost, for the common case it leaves unchanged: ``X`` a 2-D
    float64/float32 ndarray (not a subclass) of finite values, ``y`` a 1-D ndarray of integers or booleans (or
    of finite floats) of as many samples, and, when not ``reset``, ``X`` with the fitted feature count and an
    estimator fitted without feature names; the same bookkeeping (``n_features_in_``, no
    ``feature_names_in_`` after a reset). None for anything else (scikit-learn's checks then run and raise their
    own errors). scikit-learn's checks cost about as much as two epochs of a digits-sized network."""
    if not (type(X) is np.ndarray and type(y) is np.ndarray and X.ndim == 2 and y.ndim == 1
            and X.dtype in (np.float64, np.float32) and X.shape[0] >= 1 and X.shape[1] >= 1
            and y.shape[0] == X.shape[0] and y.dtype.kind in "iubf"):
        return None
    state = estimator.__dict__
    if not reset and (X.shape[1] != state.get("n_features_in_") or "feature_names_in_" in state):
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        # (the sum overflows only for huge values)
        if not (np.isfinite(X.sum()) or np.isfinite(X).all()):
            return None
        if y.dtype.kind == "f" and not (np.isfinite(y.sum()) or np.isfinite(y).all()):
            return None
    if reset:
        state.pop("feature_names_in_", None)
        estimator.n_features_in_ = X.shape[1]
    return X, y


def _frozen_param(value):
    """A value of a parameter that can be compared with a later one to tell that it is the same value of the
    same type (None when it cannot: mutable or unusual values are validated afresh every time)."""
    if value is None or type(value) in (int, float, str, bool):
        return (type(value), value)
    if type(value) is tuple and all(type(v) is int for v in value):
        return (tuple, value)
    if type(value) is np.random.RandomState:
        return (np.random.RandomState, id(value), value)  # the same object (kept alive by the snapshot)
    return None


def _check_fitted(estimator):
    """``check_is_fitted(estimator)``, skipped when ``coefs_`` is set (which it would accept): it scans every
    attribute, which costs as much as a one-row prediction."""
    if "coefs_" not in estimator.__dict__:
        check_is_fitted(estimator)


def _argmax_labels(binarizer, n_outputs) -> bool:
    """Whether ``binarizer.inverse_transform`` of dense ``(n, n_outputs)`` scores is ``classes_`` at their
    argmax (a fitted multiclass binarizer with the default labels)."""
    return (not binarizer.sparse_input_ and (binarizer.pos_label, binarizer.neg_label) == (1, 0)
            and binarizer.y_type_ == "multiclass" and len(binarizer.classes_) == n_outputs > 1)


def _labels(binarizer, scores):
    """``binarizer.inverse_transform(scores)``: the same labels, without its per-call checks where the dense
    scores of a fitted binary or multiclass estimator cannot fail them (they cost more than a small forward)."""
    classes = binarizer.classes_
    if scores.ndim == 2 and _argmax_labels(binarizer, scores.shape[1]):
        return classes.take(scores.argmax(axis=1), mode="clip")
    if not binarizer.sparse_input_ and len(classes) > 1 and (binarizer.pos_label, binarizer.neg_label) == (1, 0):
        if binarizer.y_type_ == "binary" and scores.ndim == 1:
            return classes[(scores > 0.5).astype(np.intp)]
    return binarizer.inverse_transform(scores)


def _check_cast(converted, dtype):
    """Data of a float32 model given as float64 must stay finite once cast (1e39 would become inf)."""
    with np.errstate(over="ignore"):
        if not np.isfinite(np.asarray(converted, dtype=dtype)).all():
            raise ValueError(f"the data hold values too large for {np.dtype(dtype)}, this model's dtype "
                             f"(magnitude above {np.finfo(dtype).max:.4g}); scale them down")


class _Interrupted(Exception):
    """Ctrl-C during an L-BFGS function evaluation (caught in ``_fit_lbfgs``)."""


def _lbfgs_warning(result, max_iter):
    """scikit-learn's ``_check_optimize_result`` for L-BFGS: the iteration count, and its ConvergenceWarning."""
    n_iter = min(result.nit, max_iter)
    if result.status != 0:
        message = f"lbfgs failed to converge after {n_iter} iteration(s) (status={result.status}):\n{result.message}\n"
        if n_iter == max_iter:
            message += f"\nIncrease the number of iterations to improve the convergence (max_iter={max_iter})."
        message += (
            "\nYou might also want to scale the data as shown in:\n"
            "    https://scikit-learn.org/stable/modules/preprocessing.html"
        )
        warnings.warn(message, ConvergenceWarning, stacklevel=4)
    return n_iter


def _fast_binarize(binarizer, y):
    """``binarizer.transform(y).astype(bool)`` for 1-D labels that are all among its classes, quickly.

    Returns ``(Y, all_classes_present)``, or None when ``y`` is not such a case (the caller then takes
    scikit-learn's own, slower path, which also raises its errors). ``LabelBinarizer.transform`` checks the
    target type again on every call, which costs more than a training epoch on small data sets.
    """
    classes = binarizer.classes_
    k = len(classes)
    if (
        y.ndim != 1
        or binarizer.y_type_ not in ("binary", "multiclass")
        or k < 2
        or y.dtype.kind not in "biufU"
        or classes.dtype.kind not in "biufU"
        or (y.dtype.kind == "U") != (classes.dtype.kind == "U")
        or binarizer.neg_label != 0
        or binarizer.pos_label != 1
    ):
        return None
    idx = np.searchsorted(classes, y)
    np.minimum(idx, k - 1, out=idx)
    if not np.array_equal(classes[idx], y):
        return None
    if k == 2:
        Y = (idx == 1).reshape(-1, 1)
    else:
        Y = np.zeros((y.shape[0], k), dtype=bool)
        Y[np.arange(y.shape[0]), idx] = True
    return Y, bool(np.all(np.bincount(idx, minlength=k) > 0))


class _Schedule:
    """scikit-learn's optimiser bookkeeping that lives outside the update maths.

    Mirrors ``sklearn.neural_network._stochastic_optimizers``: the current learning rate of SGD, its
    ``invscaling`` update at the end of every epoch and the ``adaptive`` division by 5 in
    ``trigger_stopping``. The updates themselves (velocities, Adam moments and step count) are kept by
    the engine's :class:`~fastmlp._engine.Optimizer` in ``engine_optimizer``.
    """

    def __init__(self, engine_optimizer, solver, learning_rate_init, lr_schedule, power_t):
        self.engine_optimizer = engine_optimizer
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.power_t = power_t

    def iteration_ends(self, time_step):
        if self.solver == "sgd" and self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.solver != "sgd" or self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(f"{msg} Setting learning rate to {self.learning_rate:f}")
        return False

    def epoch_rates(self, n_epochs, time_step, n_samples):
        """The rates handed to the engine for the next ``n_epochs`` epochs (no stopping check among them).

        SGD: the current rate, then, with 'invscaling', the rates ``iteration_ends`` will set after each
        epoch (``time_step`` samples seen so far, ``n_samples`` per epoch). Adam: its base rate (the engine
        scales it per step).
        """
        if self.solver != "sgd":
            return np.full(n_epochs, float(self.learning_rate_init))
        rates = np.full(n_epochs, self.learning_rate)
        if self.lr_schedule == "invscaling":
            for j in range(1, n_epochs):
                rates[j] = float(self.learning_rate_init) / (time_step + j * n_samples + 1) ** self.power_t
        return rates


class _BaseMLP(_modelfile.ModelFileMixin, BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor` (do not use directly)."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_HIDDEN_ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"), Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    # ------------------------------------------------------------------ network <-> attributes
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        if np.any(np.array(sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _engine_activations(self):
        out = _OUTPUTS[self.out_activation_][0]
        return [_HIDDEN_ACTIVATIONS[self.activation]] * (self.n_layers_ - 2) + [out]

    def _restore_fitted_state(self, y_type=None):
        """Rebuild the network (and label binarizer) from ``coefs_`` / ``intercepts_`` (after loading a file).

        ``y_type`` is the target type seen at fit time (``"multilabel-indicator"`` or another).
        """
        coefs, intercepts = self.coefs_, self.intercepts_
        units = [c.shape[0] for c in coefs] + [coefs[-1].shape[1]]
        self.n_layers_ = len(units)
        self.n_outputs_ = units[-1]
        net = _engine().Network(units, self._engine_activations(), dtype=coefs[0].dtype, leaky_slope=_LEAKY_SLOPE)
        net.set_coefs(coefs, intercepts)
        self._net = net
        self._optimizer = None
        self._expose()
        if hasattr(self, "classes_"):
            binarizer = LabelBinarizer()
            if y_type == "multilabel-indicator":
                binarizer.fit(np.eye(len(self.classes_), dtype=int))
            else:
                binarizer.fit(self.classes_)
            self._label_binarizer = binarizer

    def _expose(self):
        """Point ``coefs_`` / ``intercepts_`` at the network's parameter views."""
        self.coefs_ = list(self._net.coefs)
        self.intercepts_ = list(self._net.intercepts)

    def _sync_to_net(self):
        """Copy ``coefs_`` / ``intercepts_`` into the network where they are not already its own views."""
        net = self._net
        for name, mine, theirs in (("coefs_", self.coefs_, net.coefs), ("intercepts_", self.intercepts_,
                                                                         net.intercepts)):
            if len(mine) != len(theirs):
                raise ValueError(f"{name} has {len(mine)} arrays; the network has {len(theirs)} layers")
            for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
                if a is b:
                    continue
                a = np.asarray(a)
                if a.shape != b.shape:
                    raise ValueError(f"{name}[{i}] has shape {a.shape}; expected {b.shape}")
                np.copyto(b, a, casting="unsafe")

    def _ensure_net(self, layer_units):
        """Make ``self._net`` match the current architecture and activation, keeping weights and state."""
        net = self._net
        acts = self._engine_activations()
        if list(net.layer_sizes) != list(layer_units):
            raise ValueError(
                f"with warm_start=True or partial_fit the network layout {list(layer_units)} must equal the "
                f"fitted one {list(net.layer_sizes)} (hidden_layer_sizes or the number of outputs changed)"
            )
        if list(net.activations) == acts:
            return
        new = _engine().Network(list(layer_units), acts, dtype=net.dtype, leaky_slope=_LEAKY_SLOPE)
        new.params[:] = net.params
        self._net = new
        self._expose()  # the optimiser's state has the layout of the parameters, not of the network: kept

    def _optimizer_kind(self):
        if self.solver == "adam":
            return "adam"
        if self.momentum == 0:
            return "sgd"  # momentum 0: v = -lr g, p += v -- exactly plain SGD, without the velocity work
        return "nesterov" if self.nesterovs_momentum else "momentum"

    def _make_engine_optimizer(self):
        return _engine().Optimizer(self._net, kind=self._optimizer_kind(), momentum=self.momentum,
                                   beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)

    # ------------------------------------------------------------------ initialisation
    def _initialize(self, y, layer_units, dtype, rng):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()

        net = _engine().Network(list(layer_units), self._engine_activations(), dtype=dtype,
                                leaky_slope=_LEAKY_SLOPE)
        # scikit-learn's _init_coef: Glorot uniform, float64 draws in this order, then cast
        factor = 2.0 if self.activation == "logistic" else 6.0
        coefs, intercepts = [], []
        for i in range(self.n_layers_ - 1):
            fan_in, fan_out = layer_units[i], layer_units[i + 1]
            bound = np.sqrt(factor / (fan_in + fan_out))
            coefs.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
            intercepts.append(rng.uniform(-bound, bound, fan_out))
        net.set_coefs(coefs, intercepts)
        self._net = net
        self._optimizer = None
        self._expose()
        self._best_params = net.params.copy()
        if self.solver in _STOCHASTIC_SOLVERS:
            self._reset_stochastic_bookkeeping()

    def _output_activation(self):
        if not is_classifier(self):
            return "exp" if self.loss == "poisson" else "identity"
        if self._label_binarizer.y_type_ == "multiclass":
            return "softmax"
        return "logistic"

    def _reset_stochastic_bookkeeping(self):
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, y, sample_weight=None, incremental=False):
        with model_lock(self):  # one thread at a time per estimator (see fastmlp._guard)
            return self._fit_locked(X, y, sample_weight, incremental)

    def _fit_locked(self, X, y, sample_weight, incremental):
        hidden = self._hidden_sizes()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)

        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            # scikit-learn's checks (shape, finite, not all zero); all-ones weights are no weights at all, and
            # take the unweighted kernels (identical results)
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
            if np.all(sample_weight == 1):
                sample_weight = None
        self._check_targets(y)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1]] + hidden + [self.n_outputs_]
        # scikit-learn creates this generator on every fit; it is only drawn from below when initialising,
        # shuffling or splitting, so skip building it (a RandomState costs ~0.1 ms) when none happens
        needs_rng = first_pass or (self.solver != "lbfgs" and (self.shuffle or self.early_stopping))
        rng = check_random_state(self.random_state) if needs_rng else None

        if first_pass:
            self._initialize(y, layer_units, X.dtype, rng)
        else:
            if not hasattr(self, "_net"):
                self._adopt_assigned_state(X.dtype)
            self._sync_to_net()
            self._ensure_net(layer_units)
            if self.solver in _STOCHASTIC_SOLVERS and not hasattr(self, "loss_curve_"):
                self._reset_stochastic_bookkeeping()  # warm start of sgd/adam after an L-BFGS fit

        try:
            if self.solver == "lbfgs":
                self._fit_lbfgs(X, y, sample_weight)
            else:
                self._fit_stochastic(X, y, sample_weight, rng, incremental)
        finally:
            self._expose()
        if not np.isfinite(self._net.params).all():
            raise ValueError(_NON_FINITE_MESSAGE)
        return self

    def _adopt_assigned_state(self, dtype):
        """Build the network from ``coefs_`` / ``intercepts_`` assigned by hand on an estimator fastmlp did not
        fit (scikit-learn's own tests do so), with defaults for the bookkeeping that was not assigned."""
        coefs = [np.asarray(c) for c in self.coefs_]
        intercepts = [np.asarray(b) for b in self.intercepts_]
        if len(coefs) != len(intercepts) or not coefs or any(c.ndim != 2 for c in coefs):
            raise ValueError("coefs_ and intercepts_ must be lists of as many 2-D and 1-D arrays, one per layer")
        if not hasattr(self, "out_activation_"):
            self.out_activation_ = self._output_activation()
        self.coefs_ = [c.astype(dtype) for c in coefs]
        self.intercepts_ = [b.astype(dtype) for b in intercepts]
        self._restore_fitted_state(
            getattr(getattr(self, "_label_binarizer", None), "y_type_", None))
        for name, default in (("n_iter_", 0), ("t_", 0)):
            if not hasattr(self, name):
                setattr(self, name, default)
        if self.solver in _STOCHASTIC_SOLVERS and not hasattr(self, "loss_curve_"):
            self._reset_stochastic_bookkeeping()
        self._best_params = self._net.params.copy()

    def _fit_lbfgs(self, X, y, sample_weight):
        """scikit-learn's L-BFGS fit: ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` on the loss of the
        whole data set and its gradient, computed by one compiled call per evaluation, over scikit-learn's packed
        parameter vector (so that the optimiser sees the same numbers in the same order)."""
        net = self._net
        loss = _OUTPUTS[self.out_activation_][1]
        perm = net.sklearn_order()
        loss_grad = _engine().loss_gradient_function(
            net, _as_engine_columns(X, net.dtype), _as_engine_columns(y, net.dtype), loss, alpha=float(self.alpha),
            sample_weight=sample_weight)

        x0 = net.params[perm].astype(np.float64)
        # the last iterate L-BFGS accepted (and its loss): where Ctrl-C leaves the weights
        accepted = {"x": x0, "fun": None, "nit": 0}

        def evaluate(theta):
            params = np.empty_like(theta)
            params[perm] = theta
            value, grad = loss_grad(params)
            return value, grad[perm]

        def fun(theta):
            if interrupt.raised:  # Ctrl-C: abandon the line search, go back to the accepted iterate
                raise _Interrupted
            value, grad = evaluate(theta)
            if accepted["fun"] is None:  # the first evaluation is at x0
                accepted["fun"] = value
            return value, grad

        def halt_on_interrupt(intermediate_result):
            accepted.update(x=intermediate_result.x.copy(), fun=float(intermediate_result.fun),
                            nit=accepted["nit"] + 1)
            if interrupt.raised:
                raise StopIteration

        iprint = 1 if (self.verbose is True or self.verbose >= 1) else -1
        with DeferredInterrupt() as interrupt:
            try:
                result = scipy.optimize.minimize(
                    fun, x0, method="L-BFGS-B", jac=True, callback=halt_on_interrupt,
                    options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol,
                             **_get_additional_lbfgs_options_dict("iprint", iprint)},
                )
            except _Interrupted:
                result = None
        if interrupt.raised:
            # the last accepted iterate, whichever way the run stopped: when the callback halts it, SciPy's
            # result is not guaranteed to be that iterate (with L-BFGS-B it may be the one before, still
            # counted in ``nit``), so the copy the callback took is used
            if accepted["fun"] is None:
                accepted["fun"] = evaluate(x0)[0]
            result = scipy.optimize.OptimizeResult(x=accepted["x"], fun=accepted["fun"], nit=accepted["nit"])
            warnings.warn("Training interrupted by user.", stacklevel=5)
            self.n_iter_ = min(result.nit, self.max_iter)
        else:
            self.n_iter_ = _lbfgs_warning(result, self.max_iter)
        self.loss_ = float(result.fun)
        net.params[perm] = result.x

    def _loss_grad_lbfgs(self, packed_coef_inter, X, y, sample_weight, activations=None, deltas=None,
                         coef_grads=None, intercept_grads=None):
        """Loss and gradient at scikit-learn's packed parameter vector (its private name and signature).

        Parameters
        ----------
        packed_coef_inter : (P,) every ``coef`` raveled in C order, then every intercept
        X : (n_samples, n_features) array or sparse matrix
        y : (n_samples, n_outputs) binarised targets (classification) or targets
        sample_weight : (n_samples,) or None
        activations, deltas, coef_grads, intercept_grads : ignored (scikit-learn's work buffers)

        Returns
        -------
        loss : float
        grad : (P,) float64, packed like ``packed_coef_inter``
        """
        net = self._net
        perm = net.sklearn_order()
        y = np.asarray(y)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        X = X if scipy.sparse.issparse(X) else np.asarray(X)
        work = net.copy()
        loss_grad = _engine().loss_gradient_function(
            work, _as_engine_columns(X, net.dtype), _as_engine_columns(y, net.dtype),
            _OUTPUTS[self.out_activation_][1], alpha=float(self.alpha), sample_weight=sample_weight)
        params = np.empty(perm.size, np.float64)
        params[perm] = packed_coef_inter
        value, grad = loss_grad(params)
        return value, grad[perm]

    def _fit_stochastic(self, X, y, sample_weight, rng, incremental):
        net = self._net
        dtype = net.dtype
        engine = _engine()
        if not incremental or getattr(self, "_optimizer", None) is None:
            self._optimizer = _Schedule(self._make_engine_optimizer(), self.solver, self.learning_rate_init,
                                        self.learning_rate, self.power_t)
        sched = self._optimizer

        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            # don't stratify in multilabel classification
            stratify = y if (is_classifier(self) and self.n_outputs_ == 1) else None
            if sample_weight is None:
                X_train, X_val, y_train, y_val = train_test_split(
                    X, y, random_state=rng, test_size=self.validation_fraction, stratify=stratify
                )
                sw_train = sw_val = None
            else:  # the same split (it depends only on the sample count, rng and stratify), weights alongside
                X_train, X_val, y_train, y_val, sw_train, sw_val = train_test_split(
                    X, y, sample_weight, random_state=rng, test_size=self.validation_fraction, stratify=stratify
                )
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the size of your "
                    "dataset."
                )
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
            X_val = _as_engine_columns(X_val, dtype)
        else:
            X_train, y_train, sw_train = X, y, sample_weight
            X_val = y_val = sw_val = None

        n_samples = X_train.shape[0]
        # sample weights, sparse X and the Poisson loss take the general kernels; the rest the fused fast path
        general = sw_train is not None or scipy.sparse.issparse(X) or self.out_activation_ == "exp"
        if self.shuffle and not general:
            # shuffled minibatches are gathered sample by sample: the fast kernel reads samples as rows, which
            # it is handed as these transposed views (the engine makes no copy of them)
            X_train = _as_engine_rows(X_train, dtype).T
            Y_train = _as_engine_rows(y_train, dtype).T
        else:
            X_train = _as_engine_columns(X_train, dtype)
            Y_train = _as_engine_columns(y_train, dtype)
        shuffled = [np.arange(n_samples, dtype=int)]  # sample_idx, shuffled afresh each epoch

        def draw_orders(n_epochs):
            # sklearn.utils.shuffle(sample_idx, random_state=rng) once per epoch, drawn the same way; called by
            # the engine a bounded number of epochs at a time (memory O(n_samples), whatever max_iter)
            orders = np.empty((n_epochs, n_samples), dtype=np.int64)
            for j in range(n_epochs):
                perm = np.arange(n_samples)
                rng.shuffle(perm)
                shuffled[0] = shuffled[0][perm]
                orders[j] = shuffled[0]
            return orders

        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                    stacklevel=5,
                )
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        loss = _OUTPUTS[self.out_activation_][1]
        alpha = float(self.alpha)
        train = engine.train_epochs_general if general else engine.train_epochs
        extra = {"sample_weight": sw_train} if general else {}
        engine_opt = sched.engine_optimizer
        diverged = None
        interrupt = DeferredInterrupt()
        try:
            interrupt = interrupt.__enter__()
            n_iter_before = getattr(self, "n_iter_", 0)
            self.n_iter_ = 0
            stop = False
            while not stop and self.n_iter_ < self.max_iter:
                # Epochs handed to the engine in one call. The per-epoch bookkeeping below can only stop
                # training (or change the rate, with 'adaptive') once the no-improvement count, which grows
                # by at most one per epoch, exceeds n_iter_no_change: until then nothing observes the
                # weights between epochs, so those epochs run in one kernel call and are booked afterwards,
                # with exactly scikit-learn's results. Early stopping scores every epoch: one at a time.
                n_epochs = self.max_iter - self.n_iter_
                if early_stopping or incremental:
                    n_epochs = 1
                elif np.isfinite(self.n_iter_no_change):
                    n_epochs = min(n_epochs, max(1, int(self.n_iter_no_change) + 1 - self._no_improvement_count))
                rates = sched.epoch_rates(n_epochs, self.t_, n_samples)
                try:
                    result = train(net, X_train, Y_train, loss, learning_rate=rates, epochs=n_epochs,
                                   batch_size=batch_size, alpha=alpha, optimizer=engine_opt,
                                   order=draw_orders if self.shuffle else None, stop=interrupt, **extra)
                    costs = result.sample_weighted_cost
                    if result.interrupted:  # the completed epochs are booked below, then training ends
                        stop = True
                except FloatingPointError as exc:
                    diverged = exc
                    completed = getattr(exc, "completed", None)
                    costs = completed.sample_weighted_cost if completed is not None else ()
                    stop = True

                for cost in costs:
                    self.n_iter_ += 1
                    self.loss_ = float(cost)
                    self.t_ += n_samples
                    self.loss_curve_.append(self.loss_)
                    if self.verbose:
                        print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")

                    self._update_no_improvement_count(early_stopping, X_val, y_val, sw_val)
                    sched.iteration_ends(self.t_)

                    if self._no_improvement_count > self.n_iter_no_change:
                        what = "Validation score" if early_stopping else "Training loss"
                        msg = (f"{what} did not improve more than tol={self.tol:f} for "
                               f"{self.n_iter_no_change:d} consecutive epochs.")
                        if sched.trigger_stopping(msg, self.verbose):
                            stop = True
                            break
                        self._no_improvement_count = 0

                    if incremental:
                        stop = True
                        break
                    if self.n_iter_ == self.max_iter:
                        warnings.warn(
                            f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                            "optimization hasn't converged yet.",
                            ConvergenceWarning,
                            stacklevel=5,
                        )
        except KeyboardInterrupt:  # outside the main thread, or raised by a verbose print
            interrupt.raised = True
        finally:
            interrupt.__exit__(None, None, None)
        if interrupt.raised:
            warnings.warn("Training interrupted by user.", stacklevel=5)

        if early_stopping:
            # restore the best weights; from here on the "best" weights are the live ones (as scikit-learn,
            # whose coefs_ then *is* its _best_coefs list)
            if self._best_params is not None:
                net.params[:] = self._best_params
            self._best_params = None
            if diverged is not None:
                # the diverged epoch is booked as scikit-learn, which does not stop, books it: its weights (rolled
                # back here) score NaN, and so does its loss
                self.n_iter_ += 1
                self.t_ += n_samples
                self.loss_ = float("nan")  # scikit-learn's loss_ is its last epoch's, here the NaN one
                self.loss_curve_.append(self.loss_)
                self.validation_scores_.append(float("nan"))
                warnings.warn(
                    f"Training diverged ({diverged}); the weights with the best validation score were "
                    "restored.",
                    ConvergenceWarning,
                    stacklevel=5,
                )
                diverged = None
        if diverged is not None:
            if incremental and self.n_iter_ == 0:  # partial_fit's one epoch diverged: nothing of it is kept
                self.n_iter_ = n_iter_before
            raise ValueError(_NON_FINITE_MESSAGE + f" ({diverged}; the weights of the last finite epoch "
                             "were kept)") from diverged

    def _update_no_improvement_count(self, early_stopping, X_val, y_val, sw_val=None):
        if early_stopping:
            val_score = self._score_converted(X_val, y_val, sw_val)
            self.validation_scores_.append(val_score)
            if self.verbose:
                print(f"Validation score: {self.validation_scores_[-1]:f}")
            last_valid_score = self.validation_scores_[-1]
            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                self._best_params = self._net.params.copy()
        else:
            best = np.inf if self.best_loss_ is None else self.best_loss_
            if self.loss_curve_[-1] > best - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < best:
                self.best_loss_ = self.loss_curve_[-1]

    # ------------------------------------------------------------------ prediction
    def _forward(self, X, check_input=True, argmax=False):
        """Output activations ``(n_samples, n_outputs)`` for ``X``; with ``argmax`` (a softmax output), the index
        of each sample's largest output instead (``(n_samples,)``, as ``argmax(axis=1)`` of the activations).

        ``X`` is validated unless ``check_input=False``, in which case it must already be in the kernels'
        layout (``_as_engine_columns``), as the early-stopping validation set is.
        """
        given = X
        if check_input:  # finiteness is left to the kernel where it can tell (dense rows)
            X = self._rows_to_predict(X, finite_later=True)
        with model_lock(self):
            if not hasattr(self, "_net"):  # coefs_ / intercepts_ assigned by hand
                self._adopt_assigned_state(np.asarray(self.coefs_[0]).dtype)
            self._sync_to_net()
            if check_input and isinstance(X, np.ndarray):  # samples as rows: one kernel call, no transposes
                # with argmax, no probabilities are computed (but where two logits are within rounding)
                out, finite = _engine().predict_rows(self._net, X, argmax=argmax)
                if not finite:  # a NaN or inf in X raises here; a finite X whose products overflowed passes
                    self._rows_to_predict(given)
                if argmax:
                    return out
            else:
                out = np.ascontiguousarray(_engine().forward_general(self._net, X).T)
        if argmax:
            return out.argmax(axis=1)
        if self.out_activation_ == "exp":
            np.exp(out, out=out)
        return out

    def _rows_to_predict(self, X, finite_later=False):
        """``X`` checked as ``validate_data(self, X, reset=False)`` checks it (feature count and names,
        finiteness, dtype), as the C-contiguous rows of the network's dtype that the forward kernel reads
        (or the kernels' sparse rows). An ndarray that already is that, without feature names to compare,
        takes a shortcut with the same checks (scikit-learn's cost more than a small network's forward); with
        ``finite_later``, its finiteness is left to the caller (see :func:`fastmlp._engine.predict_rows`)."""
        dtype = self._net.dtype
        state = self.__dict__
        if (type(X) is np.ndarray and X.dtype == dtype and X.ndim == 2 and X.shape[0] > 0
                and X.shape[1] == state.get("n_features_in_") and "feature_names_in_" not in state
                # (the sum overflows only for huge values)
                and (finite_later or np.isfinite(X.sum()) or np.isfinite(X).all())):
            if X.flags.c_contiguous and X.flags.writeable:
                return X
            return np.array(X, order="C")  # a private copy: C order and writable (one compiled array type)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False, dtype=(np.float64, np.float32))
        if scipy.sparse.issparse(X):
            return _as_engine_columns(X, dtype)
        with np.errstate(over="ignore"):
            out = np.ascontiguousarray(X, dtype=dtype)
        if out.dtype != X.dtype:
            _check_cast(out, dtype)
        return out if out.flags.writeable else out.copy()

    def _score_converted(self, X, y, sample_weight=None):
        """Validation score on already-converted ``X`` (NaN when the predictions are not finite)."""
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return self._score_function(y, y_pred, sample_weight=sample_weight)

    # ------------------------------------------------------------------ misc
    def _validate_params(self):
        """scikit-learn's parameter validation, which ``_fit_context`` runs on every ``fit``; skipped when every
        parameter is the same value, of the same type, as when it last passed (a fit on unchanged parameters
        would pass again). Any other value, and any value that cannot be compared so (a list, an array, a
        generator), is validated again."""
        snapshot = tuple((name, _frozen_param(value)) for name, value in sorted(vars(self).items())
                         if name in self._parameter_constraints)
        if all(frozen is not None for _, frozen in snapshot) and self.__dict__.get("_valid_params") == snapshot:
            return
        super()._validate_params()
        self._valid_params = snapshot

    def _check_targets(self, y):
        pass

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix ``X`` and targets ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data (CSR or CSC sparse matrices are used as they are). float32 trains in float32, float64
            in float64; other numbers become float64.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classification) or real targets (regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights: every loss (minibatch or whole-data) is ``sum_i w_i loss_i / sum_i w_i``, its L2
            term divided by the same sum.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is not stochastic."
            )
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def __getstate__(self):
        state = super().__getstate__()
        net = state.get("_net")
        if net is not None:
            # a Network's coefs/intercepts are views into its flat vector, which pickling would turn into
            # copies: store the architecture and the flat vector, and rebuild the views on unpickling
            state = dict(state)
            state["_net"] = (net.layer_sizes, net.activations, net.dtype.str, net.leaky_slope, net.params)
            own = all(a is b for a, b in zip(state.get("coefs_", ()), net.coefs, strict=False)) and all(
                a is b for a, b in zip(state.get("intercepts_", ()), net.intercepts, strict=False))
            if own:
                state["coefs_"] = state["intercepts_"] = None
        return state

    def __setstate__(self, state):
        packed = state.get("_net")
        if isinstance(packed, tuple):
            state = dict(state)
            sizes, acts, dtype, slope, params = packed
            net = _engine().Network(sizes, acts, dtype=dtype, leaky_slope=slope)
            net.params[:] = params
            state["_net"] = net
            if state.get("coefs_", 0) is None:
                state["coefs_"] = list(net.coefs)
                state["intercepts_"] = list(net.intercepts)
        super().__setstate__(state)


_COMMON_PARAMETERS_DOC = """
    hidden_layer_sizes : array-like of shape (n_layers - 2,) or int, default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu', 'leaky_relu'}, default='relu'
        Activation of the hidden layers (``leaky_relu`` has slope 0.01 and is a fastmlp extension).
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        ``'lbfgs'``: SciPy's L-BFGS-B on the whole data set (compiled loss and gradient); ``'sgd'``, ``'adam'``:
        minibatch epochs.
    alpha : float, default=0.0001
        Strength of the L2 penalty ``0.5 * alpha * sum(W ** 2) / batch_size`` added to every minibatch loss.
    batch_size : int or 'auto', default='auto'
        Minibatch size; ``'auto'`` is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Schedule of the SGD learning rate (ignored by Adam), exactly as scikit-learn's.
    learning_rate_init : float, default=0.001
        Initial learning rate.
    power_t : float, default=0.5
        Exponent of the ``'invscaling'`` schedule: ``learning_rate_init / (t_ + 1) ** power_t``.
    max_iter : int, default=200
        Maximum number of epochs.
    shuffle : bool, default=True
        Shuffle the samples in every epoch (the same permutations as scikit-learn's for the same
        ``random_state``).
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the shuffling and the early-stopping split.
    tol : float, default=1e-4
        Tolerance of the convergence checks.
    verbose : bool, default=False
        Print the progress messages scikit-learn prints.
    warm_start : bool, default=False
        Continue from the current (possibly assigned) ``coefs_`` / ``intercepts_``.
    momentum : float, default=0.9
        Momentum of SGD.
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for SGD.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its score stops improving.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's decay rates.
    epsilon : float, default=1e-8
        Adam's numerical-stability constant.
    n_iter_no_change : int, default=10
        Epochs without ``tol`` improvement before stopping (or, with ``'adaptive'``, dividing the rate by 5).
    max_fun : int, default=15000
        Maximum number of loss evaluations of L-BFGS (``solver='lbfgs'`` only).
"""

_COMMON_ATTRIBUTES_DOC = """
    loss_ : float
        Training loss of the last epoch (mean minibatch loss weighted by batch size), or, with L-BFGS, the final
        whole-data loss.
    best_loss_ : float or None
        Lowest ``loss_`` so far (None with early stopping).
    loss_curve_ : list of float
        ``loss_`` of every epoch.
    validation_scores_ : list of float or None
        Validation score of every epoch (early stopping only).
    best_validation_score_ : float or None
        Best validation score (early stopping only).
    t_ : int
        Number of training samples seen.
    coefs_ : list of ndarray of shape (n_in, n_out)
        Weight matrix of every layer (views into the network's parameters; may be assigned).
    intercepts_ : list of ndarray of shape (n_out,)
        Bias vector of every layer.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names seen during fit (only when ``X`` had string column names).
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        Output activation (``'logistic'``, ``'softmax'`` or ``'identity'``).
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = (
        """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier``, trained by fastmlp's kernels.

    Binary targets get a logistic output, multiclass a softmax output with categorical cross-entropy,
    multilabel indicator targets a logistic output per label.

    Parameters
    ----------"""
        + _COMMON_PARAMETERS_DOC
        + """
    Attributes
    ----------
    classes_ : ndarray or list of ndarray
        Class labels of every output."""
        + _COMMON_ATTRIBUTES_DOC
        + """
    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastmlp import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    """
    )

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    def _validate_input(self, X, y, incremental, reset):
        plain = _plain_training_arrays(self, X, y, reset)
        if plain is not None:
            X, y = plain
        else:
            X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                                 dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # the same class bookkeeping as scikit-learn (fit / warm_start / partial_fit)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
            fast = _fast_binarize(self._label_binarizer, y)
            return X, (fast[0] if fast is not None else self._label_binarizer.transform(y).astype(bool))
        fast = _fast_binarize(self._label_binarizer, y)
        if fast is not None and (not self.warm_start or fast[1]):
            return X, fast[0]  # labels all known (and, for warm_start, all present): nothing to check
        classes = unique_labels(y)
        if self.warm_start:
            if set(classes) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the previous call "
                    f"to fit. Previously got {self.classes_}, `y` has {classes}"
                )
        elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                f"'y' has {classes}."
            )
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def _score_function(self, y, y_pred, sample_weight=None):
        return accuracy_score(y, y_pred, sample_weight=sample_weight)

    def _predict(self, X, check_input=True):
        binarizer = self._label_binarizer
        if self.out_activation_ == "softmax" and _argmax_labels(binarizer, self.n_outputs_):
            return binarizer.classes_.take(self._forward(X, check_input=check_input, argmax=True), mode="clip")
        y_pred = self._forward(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return _labels(binarizer, y_pred)

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted classes (an indicator matrix for multilabel targets).
        """
        _check_fitted(self)
        return self._predict(X)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with one epoch over ``X``, ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            The target labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array of shape (n_classes,), default=None
            All classes across the calls; required on the first call (unless ``y`` is multilabel).

        Returns
        -------
        self : object
            The updated estimator.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            Probability of each class, in the order of ``classes_``.
        """
        _check_fitted(self)
        y_pred = self._forward(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"multilabel": True}


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = (
        """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor``, trained by fastmlp's kernels.

    Identity output with scikit-learn's half squared error (mean over samples and outputs), or, with
    ``loss="poisson"``, exponential output with the half Poisson deviance.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        ``'squared_error'``: identity output, half squared error. ``'poisson'``: exponential output, half Poisson
        deviance ``y log(y / p) - y + p`` (``y >= 0`` required)."""
        + _COMMON_PARAMETERS_DOC
        + """
    Attributes
    ----------"""
        + _COMMON_ATTRIBUTES_DOC
        + """
    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from fastmlp import MLPRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=20, random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    """
    )

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
    ):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    def _check_targets(self, y):
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson regression.")

    def _validate_input(self, X, y, incremental, reset):
        plain = _plain_training_arrays(self, X, y, reset)
        if plain is not None:
            X, y = plain
        else:
            X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                                 dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _score_function(self, y, y_pred, sample_weight=None):
        return r2_score(y, y_pred, sample_weight=sample_weight)

    def _predict(self, X, check_input=True):
        y_pred = self._forward(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def predict(self, X):
        """Predict targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values.
        """
        _check_fitted(self)
        return self._predict(X)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with one epoch over ``X``, ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)


# --- model files: how the estimators are stored (see fastmlp._modelfile) ---------------------------------
#
# ``params_json`` (``get_params()`` as JSON); ``state_json`` (the fitted scalar attributes below, and
# ``_y_type``, the target type seen by ``fit``); ``coef_<i>`` ``(n_in, n_out)`` and ``intercept_<i>``
# ``(n_out,)`` in ``dtype``; ``classes_`` (classifier only).

#: fitted scalar attributes kept in model files (when present)
_FILE_STATE = (
    "n_iter_",
    "t_",
    "n_layers_",
    "n_outputs_",
    "out_activation_",
    "n_features_in_",
    "best_loss_",
    "loss_",
    "feature_names_in_",
    "validation_scores_",
    "best_validation_score_",
)


def _jsonable(value, where):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise ValueError(f"{where} holds a {type(value).__name__}, which a model file cannot store")


def _estimator_to_entries(est) -> dict[str, np.ndarray]:
    import json

    if not hasattr(est, "coefs_"):
        raise ValueError(f"{type(est).__name__} is not fitted: nothing to save")
    params = dict(est.get_params(deep=False))
    if params.get("random_state") is not None and not isinstance(params["random_state"], (int, np.integer)):
        params["random_state"] = None  # a RandomState instance: its state is not worth a pickle
    entries = {"params_json": _modelfile.text(json.dumps(_jsonable(params, "get_params()"), sort_keys=True))}
    state = {}
    for name in _FILE_STATE:
        if hasattr(est, name):
            value = getattr(est, name)
            if value is not None and not isinstance(value, (str, bool, int, float, np.generic, list, tuple)):
                value = np.asarray(value).tolist()
            state[name] = _jsonable(value, name)
    binarizer = getattr(est, "_label_binarizer", None)
    if getattr(binarizer, "y_type_", None) is not None:
        state["_y_type"] = str(binarizer.y_type_)
    entries["state_json"] = _modelfile.text(json.dumps(state, sort_keys=True))
    coefs = [np.asarray(c) for c in est.coefs_]
    dtype = coefs[0].dtype if coefs[0].dtype.kind == "f" else np.dtype(np.float64)
    for i, (c, b) in enumerate(zip(coefs, est.intercepts_, strict=True)):
        entries[f"coef_{i}"] = np.asarray(c, dtype=dtype)
        entries[f"intercept_{i}"] = np.asarray(b, dtype=dtype)
    if hasattr(est, "classes_"):
        classes = np.asarray(est.classes_)
        if classes.dtype.kind == "O":
            classes = classes.astype(np.str_)
        entries["classes_"] = classes
    entries["dtype"] = _modelfile.text(dtype.name)
    entries["history"] = np.asarray(list(getattr(est, "loss_curve_", []) or []), dtype=np.float64)
    return entries


def _expected_output(classifier: bool, classes, y_type, loss=None):
    """(number of outputs, out_activation_) that a fit on these classes (or, for a regressor, with this loss)
    makes."""
    if not classifier:
        return None, "exp" if loss == "poisson" else "identity"
    k = len(classes)
    if y_type == "multilabel-indicator":
        return k, "logistic"
    if k <= 2:
        return 1, "logistic"
    return k, "softmax"


def _estimator_from_entries(cls, data, dtype, history):
    import json

    bad = _modelfile.ModelFileError
    classifier = issubclass(cls, ClassifierMixin)
    try:
        params = json.loads(data.text("params_json"))
        state = json.loads(data.text("state_json"))
    except json.JSONDecodeError as exc:
        raise bad(f"estimator parameters are not valid JSON: {exc}") from None
    if not isinstance(params, dict) or not isinstance(state, dict):
        raise bad("estimator parameters must be JSON objects")
    unknown = set(state) - set(_FILE_STATE) - {"_y_type"}
    if unknown:
        raise bad(f"unknown estimator attributes {sorted(unknown)}")
    n = 0
    while f"coef_{n}" in data:
        n += 1
    if n == 0:
        raise bad("missing entry 'coef_0'")
    coefs, intercepts = [], []
    for i in range(n):
        c = data[f"coef_{i}"]
        if c.ndim != 2 or 0 in c.shape:
            raise bad(f"coef_{i} must be a non-empty 2-D array, got shape {c.shape}")
        if i and c.shape[0] != coefs[-1].shape[1]:
            raise bad(f"coef_{i} has {c.shape[0]} inputs but layer {i - 1} has {coefs[-1].shape[1]} outputs")
        coefs.append(data.floats(f"coef_{i}", c.shape, dtype))
        intercepts.append(data.floats(f"intercept_{i}", (c.shape[1],), dtype))
    data.only({"params_json", "state_json", "classes_"} | {f"coef_{i}" for i in range(n)}
              | {f"intercept_{i}" for i in range(n)})
    n_in, n_out = coefs[0].shape[0], coefs[-1].shape[1]

    # the file must describe one network, consistently: what predict relies on
    classes = None
    y_type = state.pop("_y_type", None)
    if classifier:
        if "classes_" not in data:
            raise bad(f"a {cls.__name__} needs its classes_")
        classes = data["classes_"]
        if classes.dtype.kind not in "biufU" or classes.ndim != 1 or classes.size == 0:
            raise bad(f"classes_ must be a 1-D array of labels, got dtype {classes.dtype} shape {classes.shape}")
        if np.unique(classes).size != classes.size:
            raise bad("classes_ holds a label twice")
        if y_type not in (None, "binary", "multiclass", "multilabel-indicator"):
            raise bad(f"unknown target type {y_type!r}")
    elif "classes_" in data:
        raise bad(f"a {cls.__name__} has no classes_")
    want_out, want_act = _expected_output(classifier, classes, y_type, params.get("loss"))
    if want_out is not None and n_out != want_out:
        raise bad(f"{len(classes)} classes need {want_out} output(s), but the last layer has {n_out}")
    out_act = state.get("out_activation_", want_act)
    if out_act != want_act:
        raise bad(f"out_activation_ is {out_act!r}, but this {cls.__name__} needs {want_act!r}")
    state["out_activation_"] = want_act
    for name, want in (("n_features_in_", n_in), ("n_outputs_", n_out), ("n_layers_", n + 1)):
        if state.get(name, want) != want:
            raise bad(f"{name} is {state[name]!r} but the weights say {want}")
        state[name] = want
    names = state.get("feature_names_in_")
    if names is not None and (not isinstance(names, list) or len(names) != n_in
                              or not all(isinstance(v, str) for v in names)):
        raise bad(f"feature_names_in_ must be {n_in} names, one per input")

    if isinstance(params.get("hidden_layer_sizes"), list):  # JSON has no tuples
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    try:
        est = cls(**params)
        est._validate_params()
    except (TypeError, ValueError) as exc:
        raise bad(f"estimator parameters do not fit {cls.__name__}: {exc}") from None
    if est._hidden_sizes() != [c.shape[1] for c in coefs[:-1]]:
        raise bad(f"hidden_layer_sizes {list(est._hidden_sizes())} do not match the weights' "
                  f"{[c.shape[1] for c in coefs[:-1]]}")
    est.coefs_ = list(coefs)
    est.intercepts_ = list(intercepts)
    if classes is not None:
        est.classes_ = classes
    for name, value in state.items():
        if name == "feature_names_in_" and value is not None:
            value = np.asarray(value, dtype=object)
        setattr(est, name, value)
    est.loss_curve_ = [float(c) for c in history]
    try:
        est._restore_fitted_state(y_type)
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise bad(f"the saved {cls.__name__} is inconsistent: {exc}") from None
    return est


def _estimator_describe(est) -> dict:
    return {"n_features_in": est.coefs_[0].shape[0], "n_outputs": est.n_outputs_,
            "dtype": np.dtype(est.coefs_[0].dtype)}


for _cls in (MLPClassifier, MLPRegressor):
    _modelfile.register_kind(_modelfile.ModelKind(
        _cls.__name__, _cls, _estimator_to_entries,
        lambda data, dtype, history, _cls=_cls: _estimator_from_entries(_cls, data, dtype, history),
        _estimator_describe))
