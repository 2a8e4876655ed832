"""The one door to :mod:`fastmlp._kernels`: flat parameters, workspaces, optimiser state, whole passes.

Samples are columns, as the kernels store them: ``X`` is ``(n0, m)`` and ``Y`` is ``(nL, m)``, C-contiguous
(the scikit-learn estimators transpose once per ``fit``). A layer's weights are the course-style ``W`` of
shape ``(n_out, n_in)``, stored in C order inside one flat parameter vector; :class:`Network` computes the
layer offsets into that vector (the only place they are computed in Python) and converts to and from
course-style ``{"W1", "b1", ...}`` dicts and scikit-learn's ``coefs`` / ``intercepts``.

:class:`fastmlp.MLP`, the estimators and :mod:`fastmlp.functional` reach the kernels only through this
module. Callers validate user input; this module checks only the invariants the kernels rely on (dtype,
contiguity, shapes), so a mistake never reaches compiled code.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np

from fastmlp import _bounds as B
from fastmlp import _config
from fastmlp import _kernels as K
from fastmlp import _kernels_general as KG
from fastmlp import _kernels_tiny as KT
from fastmlp._checks import check_activation, check_dtype, check_relu_grad_at_zero

__all__ = ["Network", "Optimizer", "TrainResult", "course_views", "param_offsets", "act_offsets", "activation_codes",
           "check_relu_grad_at_zero", "train_epochs", "forward", "forward_rows", "argmax_rows", "predict_rows", "cost",
           "forward_cached", "backward",
           "layer_blocks", "subtract_scaled", "kernel_array", "StepLayout", "train_recording_outputs",
           "step_forward", "step_backward", "scaled_difference", "bce_of_probabilities", "SparseRows",
           "loss_gradient_function", "train_epochs_general", "forward_general"]


def activation_codes(activations, relu_grad_at_zero=0) -> np.ndarray:
    """The kernels' int64 codes of activation names (checked by the caller)."""
    codes = [K.ACTIVATION_CODES[a] for a in activations]
    if relu_grad_at_zero:
        codes = [K.ACT_RELU_PASS_AT_ZERO if c == K.ACT_RELU else c for c in codes]
    return np.asarray(codes, dtype=np.int64)


def param_offsets(layer_sizes) -> np.ndarray:
    """Where each layer's ``W`` starts in a flat parameter vector (its ``b`` follows it); the last entry is
    the vector's length. The one definition of the layout, shared with the kernels (``_kernels._param_offsets``
    computes the same inside compiled code; a test holds the two equal). NumPy here: a compiled kernel would
    cost its compilation in the first fit."""
    sizes = np.asarray(layer_sizes, dtype=np.int64)
    return np.concatenate((np.zeros(1, np.int64), np.cumsum(sizes[:-1] * sizes[1:] + sizes[1:])))


def act_offsets(layer_sizes, cols: int) -> np.ndarray:
    """Where each layer's ``(n_l, cols)`` block starts in an activation workspace; the last entry is its
    length (as ``_kernels._act_offsets`` inside compiled code)."""
    sizes = np.asarray(layer_sizes, dtype=np.int64)
    return np.concatenate((np.zeros(1, np.int64), np.cumsum(cols * sizes[1:])))


class Network:
    """Layer sizes, activations and one flat parameter vector.

    Parameters
    ----------
    layer_sizes : sequence of int, ``[n0, n1, ..., nL]``
    activations : sequence of str, one per layer (``L`` names); the output may be ``"softmax"``
    dtype : str or dtype, float32 or float64
    leaky_slope : float, the slope of ``leaky_relu`` for negative inputs
    relu_grad_at_zero : {0, 1}, the derivative of ``relu`` at exactly 0 used by training (0 as in the
        design's maths; 1 as the course transcription's ``relu_backward``, ``dZ[Z < 0] = 0``)

    Attributes
    ----------
    params : (P,) array, layer by layer ``W`` (n_out, n_in) in C order, then ``intercept`` (n_out,)
    offsets : (L + 1,) int64, where layer ``l``'s ``W`` starts in ``params`` (its ``b`` follows it);
        ``offsets[L]`` is ``P``
    weights : list of (n_out, n_in) writable C-contiguous views into ``params`` (the course's ``W``)
    biases : list of (n_out, 1) writable views into ``params`` (the course's ``b``)
    coefs : list of (n_in, n_out) writable views into ``params`` (``W.T``, scikit-learn's ``coefs_``)
    intercepts : list of (n_out,) writable views into ``params`` (scikit-learn's ``intercepts_``)
    """

    def __init__(self, layer_sizes, activations, dtype="float64", leaky_slope=0.01, relu_grad_at_zero=0):
        sizes = [int(n) for n in layer_sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"layer sizes must be at least two positive integers, got {list(layer_sizes)}")
        activations = list(activations)
        if len(activations) != len(sizes) - 1:
            raise ValueError(f"expected {len(sizes) - 1} activations (one per layer), got {len(activations)}")
        for i, name in enumerate(activations):
            check_activation(name, output=i == len(activations) - 1, where=f"activation of layer {i + 1}")
        self.dtype = check_dtype(dtype)
        self.layer_sizes = sizes
        self.activations = activations
        self.leaky_slope = float(leaky_slope)
        self.dims = np.asarray(sizes, dtype=np.int64)
        self.relu_grad_at_zero = check_relu_grad_at_zero(relu_grad_at_zero)
        self.act_codes = activation_codes(activations, self.relu_grad_at_zero)
        self.offsets = param_offsets(self.dims)
        #: the largest layer's multiply-adds per sample (its weights; :func:`is_tiny` reads it)
        self.max_layer_product = max(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.params = np.zeros(int(self.offsets[-1]), dtype=self.dtype)
        self.weights, self.biases = course_views(self.params, self.offsets, sizes)
        self.coefs = [W.T for W in self.weights]
        self.intercepts = [b.reshape(n_out) for b, n_out in zip(self.biases, sizes[1:], strict=True)]
        self._workspaces: dict[int, dict[str, np.ndarray]] = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        for derived in ("offsets", "weights", "biases", "coefs", "intercepts", "_workspaces", "_plain_sgd"):
            state.pop(derived, None)
        return state

    def __setstate__(self, state):
        """Rebuild the views into ``params`` (a pickle would otherwise turn them into independent copies)."""
        params = state.pop("params")
        self.__init__(state["layer_sizes"], state["activations"], state["dtype"], state["leaky_slope"],
                      state.get("relu_grad_at_zero", 0))
        self.params[:] = params

    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes) - 1

    def copy(self) -> Network:
        """A network with the same architecture and a copy of the parameters."""
        other = Network(self.layer_sizes, self.activations, self.dtype, self.leaky_slope, self.relu_grad_at_zero)
        other.params[:] = self.params
        return other

    # --- conversions: the only place parameters are copied between layouts -------------------------
    def set_course_parameters(self, weights, biases) -> None:
        """Copy course-style ``W`` ``(n_out, n_in)`` and ``b`` ``(n_out, 1)`` (or ``(n_out,)``) arrays in.

        The caller has checked the shapes; values are cast to :attr:`dtype`.
        """
        for W, b, my_W, my_b in zip(weights, biases, self.weights, self.biases, strict=True):
            my_W[...] = W
            my_b[...] = np.reshape(b, my_b.shape)

    def course_parameters(self, copy: bool = True) -> dict[str, np.ndarray]:
        """``{"W1": (n1, n0), "b1": (n1, 1), ...}``: copies, or with ``copy=False`` views into :attr:`params`."""
        params = {}
        for l, (W, b) in enumerate(zip(self.weights, self.biases, strict=True), start=1):
            params[f"W{l}"] = W.copy() if copy else W
            params[f"b{l}"] = b.copy() if copy else b
        return params

    def set_coefs(self, coefs, intercepts) -> None:
        """Copy scikit-learn-style ``coefs`` ``(n_in, n_out)`` and ``intercepts`` ``(n_out,)`` in."""
        for c, b, my_c, my_b in zip(coefs, intercepts, self.coefs, self.intercepts, strict=True):
            my_c[...] = c
            my_b[...] = b

    def sklearn_order(self) -> np.ndarray:
        """Index array ``perm`` with ``params[perm]`` equal to scikit-learn's packed vector (every ``coef``
        ``(n_in, n_out)`` raveled in C order, then every intercept), as L-BFGS sees the parameters."""
        index = np.arange(self.params.size)
        coefs = [index[o:o + a * b].reshape(b, a).T for o, a, b in zip(self.offsets, self.layer_sizes[:-1],
                                                                         self.layer_sizes[1:], strict=False)]
        intercepts = [index[o + a * b:o + a * b + b] for o, a, b in zip(self.offsets, self.layer_sizes[:-1],
                                                                          self.layer_sizes[1:], strict=False)]
        return np.concatenate([c.ravel() for c in coefs] + intercepts)

    def workspace(self, batch_size: int) -> dict[str, np.ndarray]:
        """Training buffers for minibatches of up to ``batch_size`` rows, allocated once and reused."""
        ws = self._workspaces.get(batch_size)
        if ws is None:
            dt, sizes, P = self.dtype, self.layer_sizes, self.params.size
            rows_total = batch_size * sum(sizes[1:])
            ws = {
                "Zbuf": np.empty(rows_total, dt),
                "Abuf": np.empty(rows_total, dt),
                "deltas": np.empty(2 * batch_size * max(sizes), dt),
                "grad": np.zeros(P, dt),
                "backup": np.empty(P, dt),  # grown by train_epochs to hold the optimiser state too
                "xbuf": np.empty(sizes[0] * batch_size, dt),
                "ybuf": np.empty(sizes[-1] * batch_size, dt),
                # arguments, not kernel locals: the kernel borrows them (see _kernels._borrow)
                "param_offsets": self.offsets,
                "act_offsets": act_offsets(self.dims, batch_size),
                # BLAS's alpha and beta, then a row of the minibatch (softmax's per-sample scratch)
                "scalars": np.zeros(2 + batch_size, dt),
                # minibatches per kernel call that the last call measured (0: none yet); see _run_in_calls
                "batches_per_call": np.zeros(1, np.int64),
            }
            self._workspaces = {batch_size: ws}  # keep only the latest size
        return ws

    def __repr__(self) -> str:
        return f"Network({self.layer_sizes}, {self.activations}, dtype={self.dtype.name})"


def course_views(flat: np.ndarray, offsets: np.ndarray, sizes) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Course-style views ``W`` ``(n_out, n_in)`` and ``b`` ``(n_out, 1)`` of each layer of a flat vector
    laid out as :attr:`Network.params` (parameters, or a gradient) with :attr:`Network.offsets`."""
    weights, biases = [], []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        lo, hi = int(offsets[l]), int(offsets[l + 1])
        weights.append(flat[lo:hi - n_out].reshape(n_out, n_in))
        biases.append(flat[hi - n_out:hi].reshape(n_out, 1))
    return weights, biases


class Optimizer:
    """Optimiser state, in the layout of :attr:`Network.params`.

    Parameters
    ----------
    net : Network
    kind : {"sgd", "momentum", "nesterov", "adam"}
        ``sgd``: ``p -= lr g``. ``momentum`` / ``nesterov``: scikit-learn's SGD optimiser
        (``v = mu v - lr g``; ``p += v``, or ``p += mu v - lr g`` for Nesterov). ``adam``: scikit-learn's
        Adam (``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``; ``p -= lr_t m / (sqrt(v) + eps)``).
    momentum, beta_1, beta_2, epsilon : float
    """

    def __init__(self, net: Network, kind="sgd", momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        if kind not in K.OPTIMIZER_CODES:
            raise ValueError(f"unknown optimizer {kind!r}; expected one of {', '.join(K.OPTIMIZER_CODES)}")
        self.kind = kind
        self.momentum, self.beta_1, self.beta_2, self.epsilon = momentum, beta_1, beta_2, epsilon
        # velocity, or Adam's first moment, and Adam's second moment; plain SGD keeps no state
        self.state_1 = np.zeros_like(net.params) if kind != "sgd" else np.zeros(0, net.dtype)
        self.state_2 = np.zeros_like(net.params) if kind == "adam" else np.zeros(0, net.dtype)
        self.step = np.zeros(1, np.int64)

    @property
    def t(self) -> int:
        """Adam's update count."""
        return int(self.step[0])

    def reset(self) -> None:
        self.state_1[:] = 0
        self.state_2[:] = 0
        self.step[0] = 0

    def __repr__(self) -> str:
        return f"Optimizer({self.kind!r})"


@dataclass
class TrainResult:
    """Per-epoch costs of a :func:`train_epochs` call.

    Attributes
    ----------
    mean_batch_cost : (epochs,) float64, the mean of the epoch's minibatch costs
    sample_weighted_cost : (epochs,) float64, the minibatch costs weighted by batch size (scikit-learn's ``loss_``)
    interrupted : bool, ``stop`` asked to stop before every requested epoch ran: the arrays then hold the
        completed epochs only, and the network and optimiser are as they were at the end of the last of them
    """

    mean_batch_cost: np.ndarray
    sample_weighted_cost: np.ndarray
    interrupted: bool = False


#: a kernel call runs for about this long before control returns to Python (Ctrl-C, progress)
CHUNK_SECONDS = 0.1
#: the per-epoch costs of a training call are first given room for this many epochs, then grown as epochs finish
_FIRST_COSTS = 1024
#: shuffled training draws the sample orders of at most this many (epochs x samples) entries at once
#: (and at least one epoch's): memory O(n_samples), whatever the number of epochs
ORDER_ENTRIES = 1 << 18
#: first kernel call: sized for this pessimistic rate (multiply-adds per second), then timed
_PESSIMISTIC_RATE = 1e8


def _as_columns(net: Network, X, name: str, width: int, rows: bool = False) -> np.ndarray:
    """``X`` as the ``(width, m)`` C-contiguous array of ``net.dtype`` that the kernels read.

    With ``rows``, its transpose ``(m, width)`` C-contiguous instead: no copy when ``X`` is the transpose of a
    C-contiguous array of samples as rows (as the estimators pass it).
    """
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[0] != width:
        raise ValueError(f"{name} must be a 2-D array of shape {(width, 'm')}, got {getattr(X, 'shape', None)}")
    if X.dtype != net.dtype:
        raise ValueError(f"{name} must be {net.dtype.name}, got {X.dtype} (the caller converts)")
    return kernel_array(X.T if rows else X)


def kernel_array(arr: np.ndarray, dtype=None) -> np.ndarray:
    """``arr`` as a C-contiguous, writable array (copied only when it is not one already).

    Kernels are compiled once per array type; a read-only array would make Numba compile a second
    version of every kernel it reaches.
    """
    arr = np.ascontiguousarray(arr, dtype=dtype)
    return arr if arr.flags.writeable else arr.copy()


def train_epochs(net: Network, X, Y, loss, *, learning_rate, epochs=1, batch_size=None, alpha=0.0,
                 optimizer: Optimizer | None = None, order=None, epoch_offset=0, blas_min_flops=None, stop=None,
                 progress=None, kernel: str = "auto", x_top: float | None = None) -> TrainResult:
    """Train ``net`` in place for ``epochs`` epochs of minibatch gradient descent, in time-bounded kernel calls.

    Each kernel call runs about :data:`CHUNK_SECONDS` of minibatches (whole epochs when they are short, a
    run of minibatches inside an epoch when it is long), then ``stop`` and ``progress`` are consulted. The
    results do not depend on where the calls begin and end.

    Parameters
    ----------
    net : Network
    X : (n0, m) array of ``net.dtype`` (samples are columns; no copy when it is C-contiguous, or, with an
        ``order``, when it is the transpose of a C-contiguous ``(m, n0)`` array, which is what the kernel reads
        then)
    Y : (nL, m) array of ``net.dtype`` (the same)
    loss : {"bce", "mse", "ce", "half_mse"}
    learning_rate : float or (epochs,) array of per-epoch rates
    epochs : int
    batch_size : int or None (the full batch)
    alpha : float, L2 penalty (scikit-learn's ``alpha``)
    optimizer : Optimizer or None (plain SGD)
    order : None (the natural order), an (epochs, m) int array (the sample order of each epoch), or a
        callable ``order(n)`` returning the next ``n`` epochs' orders as an ``(n, m)`` array; it is called
        in epoch order with at most ``max(1, ORDER_ENTRIES // m)`` epochs at a time (memory O(m))
    epoch_offset : int, added to epoch numbers in error messages
    blas_min_flops : int or None, overrides :data:`fastmlp._config.BLAS_MIN_FLOPS`
    stop : callable or None, ``stop()`` true ends training after the running kernel call: an epoch left
        unfinished is rolled back (parameters and optimiser state), and the result is marked ``interrupted``
    progress : callable or None, ``progress(costs)`` after each kernel call that finished epochs, with
        those epochs' mean batch costs
    kernel : {"auto", "tiny", "general"}
        Which training kernel runs: ``"auto"`` takes :mod:`fastmlp._kernels_tiny` for narrow networks and
        small batches (:func:`is_tiny`), the general kernel otherwise; the others force one. Both agree with the
        reference within its tolerances (tests compare both), not bit for bit: their sums run in different orders
        (a last-digit difference that a very large learning rate can grow, as any change of summation order
        would).
    x_top : float or None
        ``max |X|`` when the caller has it (read as it checked ``X``); None reads it here (:func:`output_check`)

    Returns
    -------
    TrainResult

    Raises
    ------
    FloatingPointError
        When an epoch gives a non-finite cost or weights; ``net.params`` (and the optimiser state) are left
        as they were at the end of the last finite epoch, and the exception's ``completed`` attribute holds
        the finished epochs' costs.
    """
    # shuffled minibatches are gathered sample by sample: the kernel then reads samples as rows (contiguous)
    rows = order is not None
    Xc = _as_columns(net, X, "X", net.layer_sizes[0], rows)
    Yc = _as_columns(net, Y, "Y", net.layer_sizes[-1], rows)
    m = X.shape[1]
    if Y.shape[1] != m:
        raise ValueError(f"X has {m} samples but Y has {Y.shape[1]}")
    if loss not in K.LOSS_CODES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(K.LOSS_CODES)}")
    batch_size = m if batch_size is None else min(int(batch_size), m)
    if batch_size < 1 or epochs < 1:
        raise ValueError("batch_size and epochs must be positive")
    if optimizer is None:  # plain SGD: one stateless optimiser per network
        if getattr(net, "_plain_sgd", None) is None:
            net._plain_sgd = Optimizer(net)
        optimizer = net._plain_sgd
    opt = optimizer
    dt = net.dtype.type
    ws = net.workspace(batch_size)
    # the kernel's rollback copy: the parameters and the optimiser state at the start of each call
    backup_size = net.params.size + opt.state_1.size + opt.state_2.size
    if ws["backup"].size < backup_size:
        ws["backup"] = np.empty(backup_size, net.dtype)
    blas_min = _blas_min_flops(blas_min_flops)
    if kernel not in ("auto", "tiny", "general"):
        raise ValueError(f"unknown kernel {kernel!r}; expected 'auto', 'tiny' or 'general'")
    tiny = kernel == "tiny" or (kernel == "auto" and is_tiny(net, batch_size, blas_min))
    opt_code, loss_code = K.OPTIMIZER_CODES[opt.kind], K.LOSS_CODES[loss]
    # compiles only this optimiser and loss (and, for the usual networks, these activations)
    run = (KT.train_epochs_tiny_kernel(opt_code, loss_code, batch_size) if tiny
           else K.train_epochs_kernel(opt_code, loss_code, net.act_codes))
    fixed = (Xc, Yc, net.params, net.dims, net.act_codes, dt(net.leaky_slope), dt(alpha), batch_size)
    opt_args = (dt(opt.momentum), dt(opt.beta_1), dt(opt.beta_2), dt(opt.epsilon), opt.state_1, opt.state_2,
                opt.step, ws["Zbuf"], ws["Abuf"], ws["deltas"], ws["grad"], ws["xbuf"], ws["ybuf"], ws["backup"],
                ws["param_offsets"], ws["act_offsets"], ws["scalars"], blas_min)

    def call(order_rows, rates_now, span, partial, mean_out, weighted_out):
        return run(*fixed, order_rows, rates_now, *opt_args, span, partial, mean_out, weighted_out)

    outputs_finite = output_check(net, Xc, Yc, loss, alpha,
                                  lambda: cost(net, Xc.T if rows else Xc, Yc.T if rows else Yc, loss), x_top)
    return _run_in_calls(call, net, opt, m, batch_size, epochs, learning_rate, order, stop, progress, epoch_offset,
                         outputs_finite, ws["backup"], ws["batches_per_call"])


#: a network is tiny (:func:`is_tiny`) only while every layer has at most this many weights (``n_in * n_out``):
#: narrow enough that the tiny kernel's loops along the batch, a row at a time, beat the general kernel's products
#: (measured: 2-4-6-6-4-1 and 2-8-8-1 are faster on the tiny kernel, 2-16-16-1 no faster, 8-32-32-1 slower)
TINY_MAX_LAYER = 64
#: ... and while every layer's product of a batch stays within this many multiply-adds (measured: the
#: 2-4-6-6-4-1 network is 1.4x faster on the tiny kernel with batches of 32, as fast with 64, 10% slower with 128)
TINY_MAX_MACS = 4096


def is_tiny(net: Network, batch_size: int, blas_min_flops: int) -> bool:
    """Whether minibatches of ``batch_size`` train ``net`` with :mod:`fastmlp._kernels_tiny`: every layer has at most
    :data:`TINY_MAX_LAYER` weights and its product of a batch at most :data:`TINY_MAX_MACS` multiply-adds. A BLAS
    threshold of 0 (every product on BLAS: ``FASTMLP_BLAS_MIN_FLOPS=0``) keeps every network on the general kernel."""
    return (blas_min_flops > 0 and net.max_layer_product <= TINY_MAX_LAYER
            and batch_size * net.max_layer_product <= TINY_MAX_MACS)


def _run_in_calls(call, net: Network, opt: Optimizer, m: int, batch_size: int, epochs: int, learning_rate, order,
                  stop, progress, epoch_offset: int, outputs_finite, backup: np.ndarray | None,
                  batches_per_call: np.ndarray | None = None) -> TrainResult:
    """Drive a training kernel in calls of about :data:`CHUNK_SECONDS` (see :func:`train_epochs`).

    ``call(order_rows, rates, span, partial, mean_cost, weighted_cost)`` runs the kernel on the epochs whose
    orders and rates it is given, from minibatch ``span[0]`` of the first to ``span[1]`` of the last, and
    returns how many of those epochs (or pieces) completed.

    The kernels check each minibatch's cost, computed before its update, and the parameters. After each call,
    ``outputs_finite()`` (:func:`output_check`) checks the outputs and cost of the parameters it leaves on the
    data, before they are reported: when they are not finite, the call's last epoch is treated as a diverged
    one (:func:`_back_to_finite_outputs`). ``backup`` is the kernel's copy of the parameters and optimiser
    state at the start of its call (their concatenation); None when the kernel keeps no such copy (one is
    then made here before each call). ``batches_per_call`` (a (1,) int64 array kept with the workspace, or None)
    carries the call size measured by one training run over to the next: a warm-started ``fit`` then runs its
    epochs in as few calls as a long one (each call costs a dispatch, a rollback copy and an output check),
    instead of starting again from :data:`_PESSIMISTIC_RATE`.
    """
    # memory in proportion to the epochs run, not to those asked for (``epochs`` may be 10**10, to train until
    # interrupted): one rate is expanded per call, and the costs' arrays grow as epochs finish
    rate = learning_rate if isinstance(learning_rate, float) else np.asarray(learning_rate, dtype=np.float64)
    if not isinstance(rate, float):
        rate = float(rate.reshape(1)[0]) if rate.size == 1 else np.ascontiguousarray(np.broadcast_to(rate, (epochs,)))
    draw = _order_source(order, epochs, m)
    n_batches = -(-m // batch_size)
    max_epochs_per_call = max(1, ORDER_ENTRIES // m) if draw is not None else epochs
    mean_cost = np.empty(min(epochs, _FIRST_COSTS), np.float64)
    weighted_cost = np.empty_like(mean_cost)
    span = np.zeros(2, np.int64)
    partial = np.zeros(2, np.float64)
    done, batch = 0, 0  # epochs completed; minibatches of epoch `done` already run
    orders = None  # rows: the orders of epochs done, done + 1, ...
    snapshot = None  # parameters and optimiser state at the start of an epoch run in pieces
    per_call = max(1, int(CHUNK_SECONDS * _PESSIMISTIC_RATE / (3.0 * batch_size * net.params.size)))
    if batches_per_call is not None and batches_per_call[0] > 0:
        per_call = int(batches_per_call[0])
    interrupted = False
    while done < epochs:
        if stop is not None and stop():
            interrupted = True
            break
        if batch == 0 and per_call >= n_batches:  # whole epochs
            n_epochs = min(epochs - done, max_epochs_per_call, per_call // n_batches)
            span[0], span[1] = 0, n_batches
        else:  # a piece of one epoch
            n_epochs = 1
            span[0], span[1] = batch, min(n_batches, batch + per_call)
            if batch == 0:
                snapshot = (net.params.copy(), opt.state_1.copy(), opt.state_2.copy(), opt.step.copy())
        if draw is None:
            order_rows = np.zeros((0, m), np.int64)
        else:  # orders are drawn in epoch order, each exactly once, a bounded number at a time
            if orders is None or orders.shape[0] == 0:
                orders = draw(min(epochs - done, max_epochs_per_call), done)
            n_epochs = min(n_epochs, orders.shape[0])
            order_rows = orders[:n_epochs]
        if backup is None and batch == 0:
            start_state = (net.params.copy(), opt.state_1.copy(), opt.state_2.copy(), opt.step.copy())
        step_at_start = int(opt.step[0])
        rates = np.full(n_epochs, rate) if isinstance(rate, float) else rate[done:done + n_epochs]
        if done + n_epochs > mean_cost.shape[0]:
            grown = min(epochs, max(2 * mean_cost.shape[0], done + n_epochs))
            mean_cost = np.concatenate([mean_cost[:done], np.empty(grown - done)])
            weighted_cost = np.concatenate([weighted_cost[:done], np.empty(grown - done)])
        started = time.perf_counter()
        ran = call(order_rows, rates, span, partial, mean_cost[done:], weighted_cost[done:])
        elapsed = time.perf_counter() - started
        batches_run = int(span[1] - span[0]) + (n_epochs - 1) * n_batches
        finished = n_epochs if ran == n_epochs and span[1] == n_batches else 0
        if ran < n_epochs or (finished and not outputs_finite()):
            # a divergence: the kernel found it (and restored the start of that epoch, or of that piece), or the
            # outputs of the parameters the call left are not finite (the last update ran no forward pass)
            if batch > 0:  # a piece of an epoch: back to the epoch's start, which the last call checked
                _restore(net, opt, snapshot)
                ran = 0
            else:
                start = start_state if backup is None else _from_backup(net, opt, backup, step_at_start)
                replay = functools.partial(_replay, call, net, opt, start, order_rows, rates, span,
                                           n_batches, partial, mean_cost[done:], weighted_cost[done:])
                ran = _back_to_finite_outputs(min(ran, n_epochs - 1), ran == n_epochs, outputs_finite, replay)
            raise _diverged(done + ran, epoch_offset, mean_cost, weighted_cost)
        batch = 0 if finished else int(span[1])
        if finished:
            snapshot = None
            if orders is not None:
                orders = orders[n_epochs:]
            if progress is not None:
                progress(mean_cost[done:done + finished])
            done += finished
        per_call = max(1, min(4 * per_call, int(batches_run * CHUNK_SECONDS / max(elapsed, 1e-6))))
        if batches_per_call is not None:
            batches_per_call[0] = per_call
    if interrupted and batch > 0:  # roll back the unfinished epoch
        _restore(net, opt, snapshot)
    if done < mean_cost.shape[0]:
        mean_cost, weighted_cost = mean_cost[:done].copy(), weighted_cost[:done].copy()
    return TrainResult(mean_cost, weighted_cost, interrupted=done < epochs)


def _order_source(order, epochs: int, m: int):
    """``draw(n, first)``: the sample orders of epochs ``first .. first + n - 1`` as an (n, m) int64 array."""
    if order is None:
        return None
    if callable(order):
        def draw(n, first):
            rows = np.ascontiguousarray(order(n), dtype=np.int64)
            _check_order(rows, n, m)
            return rows
        return draw
    order = np.ascontiguousarray(order, dtype=np.int64)
    _check_order(order, epochs, m)
    return lambda n, first: order[first:first + n]


def _check_order(order, epochs, m):
    if order.shape != (epochs, m) or order.min() < 0 or order.max() >= m:
        raise ValueError(f"order must be an ({epochs}, {m}) array of sample indices")


def _back_to_finite_outputs(good: int, rerun: bool, outputs_finite, replay) -> int:
    """After a divergence in a call of whole epochs, bring the parameters back to the end of the call's last epoch
    whose outputs are finite; return how many of the call's epochs that keeps.

    ``good`` epochs of the call are candidates: when ``rerun``, the state must first be brought to the end of the
    ``good``-th (the call finished one more, whose outputs were not finite); otherwise it is there already (the
    kernel restored it). ``replay(n)`` restores the start of the call and runs its first ``n`` epochs again. The
    outputs of the ``good``-th epoch are checked (a cost overflowing in an epoch's first minibatch means that
    those of the epoch before did): if they are not finite either, one epoch fewer, and if those are not
    finite, the start of the call (which the call before checked, or the caller gave).
    """
    if rerun:
        replay(good)
    if good == 0 or outputs_finite():
        return good
    replay(good - 1)
    if good == 1 or outputs_finite():
        return good - 1
    replay(0)
    return 0


def _diverged(done: int, epoch_offset: int, mean_cost, weighted_cost) -> FloatingPointError:
    """The error for a divergence in epoch ``done + 1``; ``completed`` holds the costs of the ``done`` before."""
    exc = FloatingPointError(
        f"training diverged in epoch {epoch_offset + done + 1}: non-finite cost, outputs or weights "
        f"(try a smaller learning rate); parameters are left at the end of epoch {epoch_offset + done}")
    exc.completed = TrainResult(mean_cost[:done].copy(), weighted_cost[:done].copy())
    return exc


def output_check(net: Network, x: np.ndarray, y: np.ndarray, loss: str, alpha: float, real_check,
                 x_top: float | None = None):
    """``outputs_finite()``: whether ``net``'s outputs and cost on the training data ``(x, y)`` are finite now.

    ``x``, ``y`` hold every input and target value (arrays of ``net.dtype``, any shape; a sparse ``X``'s stored
    values), which must not change while the check is used (training reads them): their norms are read once,
    at the first check. Each check is first :func:`fastmlp._bounds.coarse` (a dot product and a loop over the
    layers), then :func:`fastmlp._bounds.per_unit` (one product per layer); only when neither shows the outputs
    and cost far below the dtype's overflow does ``real_check()``, the cost of a real forward pass, decide.
    ``x_top``, when given, is ``max |x|`` (the caller read it already).
    """
    static = net.__dict__.get("_bound_static")
    if static is None:  # what a network's bounds need of it, computed once
        sizes = net.layer_sizes
        static = net._bound_static = (B.layer_factors(net), B.LIMITS[net.dtype], sizes[-1], math.sqrt(sizes[0]),
                                      math.sqrt(sizes[-1]))
    factors, limit, n_out, root_in, root_out = static
    cost_limit = limit / max(1, y.size // n_out)  # a total cost sums one term per sample
    total_terms, dtype_max = 4.0 * max(1, y.size // n_out), float(np.finfo(net.dtype).max)
    kind = B.COST_KINDS.get(loss, B.COST_LOGITS)
    leak = max(1.0, abs(float(net.leaky_slope)))
    tops = []  # bounds of |x| and |y|, read at the first check
    known_x_top = x_top

    def outputs_finite() -> bool:
        # the sums of squares may overflow (a bound is then inf and the next check decides): no warning
        with np.errstate(all="ignore"):
            if not tops:
                tops.extend((B.largest_magnitude(x) if known_x_top is None else known_x_top,
                             B.largest_magnitude(y) if kind != B.COST_LOGITS else 0.0))
            x_top, y_top = tops
            # a sample's Euclidean norm is at most sqrt(its length) times its largest value
            if B.coarse(factors, leak, root_in * x_top, net.params, n_out, root_out * y_top, kind, alpha, limit,
                        cost_limit):
                return True
            if B.per_unit(net, x_top, y_top, kind, alpha, limit, cost_limit):
                return True
            # the mean cost of a real pass must also add up over the samples without overflow, with room for a
            # factor of 4 (a float32 half-mse of 2e37 over 13 samples is finite, but the sum of squares score()
            # adds up is not)
            mean_cost = float(real_check())
            return math.isfinite(mean_cost) and mean_cost * total_terms < dtype_max


    return outputs_finite


def _from_backup(net: Network, opt: Optimizer, backup: np.ndarray, step: int):
    """A :func:`_restore` snapshot from a training kernel's ``backup`` (parameters and optimiser state, one after
    the other) and Adam's ``step``."""
    n_p, n_1, n_2 = net.params.size, opt.state_1.size, opt.state_2.size
    return (backup[:n_p].copy(), backup[n_p:n_p + n_1].copy(), backup[n_p + n_1:n_p + n_1 + n_2].copy(),
            np.array([step], np.int64))


def _replay(call, net: Network, opt: Optimizer, start, order_rows, rates, span, n_batches: int, partial, mean_cost,
            weighted_cost, n: int) -> None:
    """Back to the ``start`` of a call of whole epochs and its first ``n`` epochs again (the same numbers)."""
    _restore(net, opt, start)
    if n:
        span[0], span[1] = 0, n_batches
        call(order_rows[:n], rates[:n], span, partial, mean_cost, weighted_cost)


def _restore(net: Network, opt: Optimizer, snapshot) -> None:
    params, state_1, state_2, step = snapshot
    net.params[:] = params
    opt.state_1[:] = state_1
    opt.state_2[:] = state_2
    opt.step[:] = step


def _blas_min_flops(value) -> int:
    return _config.BLAS_MIN_FLOPS if value is None else int(value)


def forward(net: Network, X, *, logits=False, blas_min_flops=None) -> np.ndarray:
    """Output activations (or, with ``logits=True``, the output layer's pre-activations) for every sample.

    Parameters
    ----------
    net : Network
    X : (n0, m) array of ``net.dtype``

    Returns
    -------
    (nL, m) C-contiguous array of ``net.dtype``
    """
    Xc = _as_columns(net, X, "X", net.layer_sizes[0])
    m = Xc.shape[1]
    out = np.empty((net.layer_sizes[-1], m), net.dtype)
    buffer = np.empty((2, m * max(net.layer_sizes)), net.dtype)
    acts = net.act_codes
    if logits:
        acts = acts.copy()
        acts[-1] = K.ACT_LINEAR
    K._forward(Xc, net.params, net.dims, acts, net.dtype.type(net.leaky_slope), buffer, out,
               _blas_min_flops(blas_min_flops))
    return out


#: ``forward_rows`` runs the rows through every layer in blocks. When blocks of at least _ROWS_PER_BLOCK_MIN rows
#: keep every layer's product within SMALL_BLOCK_MACS multiply-adds, blocks are that large: OpenBLAS runs such
#: products in its small-matrix kernels (one thread, no packing, no thread sync), which on digits (64 -> 128 ->
#: 10) are 1.3-1.5x faster than one product over all 1797 rows (kernel products alone, one thread: float64
#: 0.36 vs 0.53 ms, float32 0.16 vs 0.22 ms), and the block's activations stay in cache between layers.
#: Wider layers (a single row's product above the limit) get blocks of about FORWARD_BLOCK_VALUES activations
#: of the widest layer (at least _ROWS_PER_BLOCK_MIN rows), so that the workspace stays bounded (8 MB per
#: buffer in float64) however many rows are predicted: mid-sized blocks of large products were measured much
#: slower with BLAS threads on a busy machine (a thread sync per product per block).
SMALL_BLOCK_MACS = 1 << 19
FORWARD_BLOCK_VALUES = 1 << 20
_ROWS_PER_BLOCK_MIN = 64


def _rows_per_block(sizes, m: int) -> int:
    """Rows per block of :func:`forward_rows` for layer sizes ``sizes`` and ``m`` rows (see SMALL_BLOCK_MACS)."""
    largest = max(n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True))
    small = SMALL_BLOCK_MACS // largest
    if small >= _ROWS_PER_BLOCK_MIN:
        return min(m, small)
    return min(m, max(_ROWS_PER_BLOCK_MIN, FORWARD_BLOCK_VALUES // max(sizes[1:])))
_NO_LABELS = np.zeros(0, np.int64)


def _forward_rows_into(net: Network, X, labels, blas_min_flops) -> tuple[np.ndarray, bool]:
    if not (isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == net.layer_sizes[0]
            and X.dtype == net.dtype and X.flags.c_contiguous and X.flags.writeable):
        raise ValueError(f"X must be a C-contiguous, writable (m, {net.layer_sizes[0]}) array of "
                         f"{net.dtype.name}, got {getattr(X, 'shape', None)}")
    m = X.shape[0]
    width = max(net.layer_sizes[1:])
    block = _rows_per_block(net.layer_sizes, m)
    out = np.empty((m, net.layer_sizes[-1]), net.dtype)
    buffer = np.empty((2, block * width), net.dtype)
    finite = K._forward_rows(X, net.params, net.dims, net.act_codes, net.dtype.type(net.leaky_slope), net.offsets,
                             buffer, out, _blas_min_flops(blas_min_flops), labels)
    return out, finite


def forward_rows(net: Network, X, *, blas_min_flops=None) -> np.ndarray:
    """Output activations for every row (sample) of ``X``, in scikit-learn's layout, in one kernel call.

    Parameters
    ----------
    net : Network
    X : (m, n0) C-contiguous, writable array of ``net.dtype`` (the caller validates and converts)

    Returns
    -------
    (m, nL) C-contiguous array of ``net.dtype``
    """
    return _forward_rows_into(net, X, _NO_LABELS, blas_min_flops)[0]


def argmax_rows(net: Network, X, *, blas_min_flops=None) -> np.ndarray:
    """For a softmax output: the index of each row's largest probability (the first of equal ones, as
    ``forward_rows(net, X).argmax(axis=1)``), without computing the probabilities (but where two logits are
    within rounding of each other).

    Parameters
    ----------
    net : Network whose output activation is ``softmax``
    X : (m, n0) C-contiguous, writable array of ``net.dtype`` (the caller validates and converts)

    Returns
    -------
    (m,) int64
    """
    return predict_rows(net, X, argmax=True, blas_min_flops=blas_min_flops)[0]


def predict_rows(net: Network, X, *, argmax=False, blas_min_flops=None) -> tuple[np.ndarray, bool]:
    """:func:`forward_rows` (or, with ``argmax``, :func:`argmax_rows`) of ``X`` whose finiteness is not yet
    known, and whether ``X`` is finite: a non-finite value in ``X`` makes its row's first-layer outputs
    non-finite, which the kernel notices as it passes over them. False may also mean a finite ``X`` whose
    products overflowed: the caller then checks ``X`` itself. (What the estimators' ``predict`` calls: a
    separate pass over ``X`` to check it costs 5% of a digits prediction.)

    Returns
    -------
    ``(out, finite)``: out (m, nL), or (m,) int64 with ``argmax``; finite bool
    """
    if argmax and net.activations[-1] != "softmax":
        raise ValueError(f"argmax_rows needs a softmax output layer, not {net.activations[-1]!r}")
    labels = np.empty(X.shape[0] if argmax and isinstance(X, np.ndarray) and X.ndim == 2 else 0, np.int64)
    out, finite = _forward_rows_into(net, X, labels, blas_min_flops)
    return (labels if argmax else out), finite


def cost(net: Network, X, Y, loss) -> float:
    """The cost of ``net`` on all of ``(X, Y)``, computed as in training (cross-entropies from the logits).

    Parameters
    ----------
    net : Network
    X, Y : (n0, m) and (nL, m) arrays of ``net.dtype``
    loss : {"bce", "mse", "ce", "half_mse"}
    """
    Xc = _as_columns(net, X, "X", net.layer_sizes[0])
    Yc = _as_columns(net, Y, "Y", net.layer_sizes[-1])
    Z = forward(net, Xc, logits=True)
    if Z.shape != Yc.shape:
        raise ValueError(f"X has {Z.shape[1]} samples but Y has {Yc.shape[1]}")
    A = np.empty_like(Z)
    slope = net.dtype.type(net.leaky_slope)
    K._activate_columns(Z, A, net.act_codes[-1], slope)
    total = K._cost_columns(Z, A, Yc, net.act_codes[-1], K.LOSS_CODES[loss], slope, np.empty_like(Z))
    return float(total / Z.shape[1])


def layer_blocks(buffer: np.ndarray, sizes, m: int) -> list[np.ndarray]:
    """Consecutive packed ``(n, m)`` views of a flat buffer, one per entry of ``sizes``."""
    views, offset = [], 0
    for n in sizes:
        views.append(buffer[offset:offset + n * m].reshape(n, m))
        offset += n * m
    return views


def forward_cached(net: Network, X, *, blas_min_flops=None) -> tuple[np.ndarray, np.ndarray]:
    """Forward pass over every sample keeping each layer's ``Z`` and ``A`` (for :func:`backward`).

    Parameters
    ----------
    net : Network
    X : (n0, m) array of ``net.dtype``

    Returns
    -------
    Zbuf, Abuf : (m * sum(n1..nL),) arrays: layer ``l``'s packed ``(n_l, m)`` blocks in order
        (:func:`layer_blocks` of ``net.layer_sizes[1:]`` gives the views)
    """
    Xc = _as_columns(net, X, "X", net.layer_sizes[0])
    m = Xc.shape[1]
    Zbuf = np.empty(m * sum(net.layer_sizes[1:]), net.dtype)
    Abuf = np.empty_like(Zbuf)
    K._forward_cached(Xc, net.params, net.dims, net.act_codes, net.dtype.type(net.leaky_slope), Zbuf, Abuf,
                      _blas_min_flops(blas_min_flops))
    return Zbuf, Abuf


def backward(net: Network, X, Y, loss, Zbuf, Abuf, *, blas_min_flops=None) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the mean cost over all samples, nothing updated (the course's ``L_model_backward``).

    Parameters
    ----------
    net : Network
    X, Y : (n0, m) and (nL, m) arrays of ``net.dtype``
    loss : {"bce", "mse", "ce", "half_mse"}
    Zbuf, Abuf : as returned by :func:`forward_cached` for ``X``

    Returns
    -------
    grad : (P,) array in the layout of ``net.params``
    dAbuf : (m * sum(n0..n_{L-1}),) array: the packed blocks ``dA_l = W_{l+1}.T @ dZ_{l+1}``, l = 0..L-1
    """
    Xc = _as_columns(net, X, "X", net.layer_sizes[0])
    Yc = _as_columns(net, Y, "Y", net.layer_sizes[-1])
    m = Xc.shape[1]
    sizes = net.layer_sizes
    if Yc.shape[1] != m:
        raise ValueError(f"X has {m} samples but Y has {Yc.shape[1]}")
    for name, buf in (("Zbuf", Zbuf), ("Abuf", Abuf)):
        if (not isinstance(buf, np.ndarray) or buf.dtype != net.dtype or buf.shape != (m * sum(sizes[1:]),)
                or not buf.flags.c_contiguous):
            raise ValueError(f"{name} must be the flat buffer forward_cached wrote for these samples")
    grad = np.empty_like(net.params)
    dAbuf = np.empty(m * sum(sizes[:-1]), net.dtype)
    deltas = np.empty(2 * m * max(sizes), net.dtype)
    K._backward_full(Xc, Yc, net.params, net.dims, net.act_codes, net.dtype.type(net.leaky_slope),
                     K.LOSS_CODES[loss], kernel_array(Zbuf), kernel_array(Abuf), grad, dAbuf, deltas,
                     _blas_min_flops(blas_min_flops))
    return grad, dAbuf


def subtract_scaled(P: np.ndarray, G: np.ndarray, learning_rate) -> None:
    """``P -= learning_rate * G`` in place, ``P`` and ``G`` of the same shape and floating dtype."""
    if P.flags.c_contiguous and P.flags.writeable:
        K._subtract_scaled(P.reshape(-1), kernel_array(G, P.dtype).reshape(-1), P.dtype.type(learning_rate))
    else:
        P -= P.dtype.type(learning_rate) * G


# --- the general case of the scikit-learn estimators: sample weights, sparse X, Poisson, L-BFGS ---------------
class SparseRows:
    """A CSR matrix (samples as rows) in the form the general kernels read: ``data`` of the network's dtype,
    ``indices`` and ``indptr`` as int64 (copied only when they are not already; ``X`` is never densified).

    Parameters
    ----------
    X : scipy.sparse matrix or array of shape (m, n0), CSR or CSC (CSC is converted to CSR, still sparse)
    dtype : float32 or float64
    """

    def __init__(self, X, dtype):
        if X.format != "csr":
            X = X.tocsr()
        self.shape = X.shape
        self.data = kernel_array(X.data, dtype)
        self.indices = kernel_array(X.indices, np.int64)
        self.indptr = kernel_array(X.indptr, np.int64)
        # the kernels index without bounds checks: a malformed matrix must not reach them
        ptr = self.indptr
        if (ptr.shape[0] != self.shape[0] + 1 or ptr[0] != 0 or ptr[-1] != self.indices.shape[0]
                or self.data.shape != self.indices.shape or np.any(ptr[1:] < ptr[:-1])
                or (self.indices.size and (self.indices.min() < 0 or self.indices.max() >= self.shape[1]))):
            raise ValueError("X is not a valid CSR matrix (indptr or indices out of range)")
        self.rows = np.arange(self.shape[0], dtype=np.int64)


def _general_inputs(net: Network, X):
    """``(X_dense_columns, data, indices, indptr, sparse)`` for the general kernels; ``X`` is a :class:`SparseRows`
    or an ``(n0, m)`` array of columns."""
    if isinstance(X, SparseRows):
        if X.shape[1] != net.layer_sizes[0]:
            raise ValueError(f"X has {X.shape[1]} features; the network expects {net.layer_sizes[0]}")
        return np.zeros((net.layer_sizes[0], 0), net.dtype), X.data, X.indices, X.indptr, X.rows, True
    Xc = _as_columns(net, X, "X", net.layer_sizes[0])
    empty_i = np.zeros(1, np.int64)
    return Xc, np.zeros(0, net.dtype), empty_i, empty_i, np.arange(Xc.shape[1], dtype=np.int64), False


def _sparse_scratch(net: Network, sparse: bool, cols: int) -> np.ndarray:
    """Scratch of the sparse first layer: its transposed ``W`` and a ``(cols, n1)`` block (empty if dense)."""
    n_in, n_out = net.layer_sizes[0], net.layer_sizes[1]
    return np.empty(n_out * (n_in + cols) if sparse else 0, net.dtype)


def _general_loss_code(loss):
    if loss not in KG.GENERAL_LOSS_CODES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(KG.GENERAL_LOSS_CODES)}")
    return KG.GENERAL_LOSS_CODES[loss]


def _sample_weights(net: Network, sample_weight, m):
    if sample_weight is None:
        return np.ones(m, net.dtype)
    sw = kernel_array(sample_weight, net.dtype)
    if sw.shape != (m,):
        raise ValueError(f"sample_weight must have shape ({m},), got {sw.shape}")
    return sw


def loss_gradient_function(net: Network, X, Y, loss, *, alpha=0.0, sample_weight=None, blas_min_flops=None):
    """A function ``f(theta) -> (loss, gradient)`` over the whole data set, for ``scipy.optimize.minimize``.

    ``f`` copies ``theta`` (float64, the layout of ``net.params``) into ``net.params`` and runs one compiled
    call (:func:`fastmlp._kernels_general._loss_grad_full`): scikit-learn's weighted loss with the L2 term,
    and its gradient, returned as float64.

    Parameters
    ----------
    net : Network (for ``loss="poisson"`` its output layer is linear: the kernel applies the exponential)
    X : (n0, m) array of columns of ``net.dtype``, or :class:`SparseRows`
    Y : (nL, m) C-contiguous array of ``net.dtype``
    loss : {"bce", "ce", "half_mse", "poisson"}
    alpha : float; sample_weight : (m,) array or None
    """
    Xc, data, indices, indptr, rows, sparse = _general_inputs(net, X)
    Yc = _as_columns(net, Y, "Y", net.layer_sizes[-1])
    m = Yc.shape[1]
    if rows.shape[0] != m:
        raise ValueError(f"X has {rows.shape[0]} samples but Y has {m}")
    code = _general_loss_code(loss)
    sw = _sample_weights(net, sample_weight, m)
    dt = net.dtype.type
    sizes = net.layer_sizes
    Zbuf = np.empty(m * sum(sizes[1:]), net.dtype)
    Abuf = np.empty_like(Zbuf)
    deltas = np.empty(2 * m * max(sizes[1:]), net.dtype)
    grad = np.zeros(net.params.size, net.dtype)
    p_off = net.offsets
    a_off = act_offsets(net.dims, m)
    scalars = np.zeros(2, net.dtype)
    flops = _blas_min_flops(blas_min_flops)
    slope, alpha_t = dt(net.leaky_slope), dt(alpha)
    scratch = _sparse_scratch(net, sparse, m)

    def loss_and_gradient(theta):
        net.params[:] = theta
        value = KG._loss_grad_full(Xc, data, indices, indptr, rows, sparse, Yc, sw, net.params, net.dims,
                                   net.act_codes, slope, code, alpha_t, p_off, a_off, Zbuf, Abuf, deltas, grad,
                                   scalars, flops, scratch)
        return float(value), grad.astype(np.float64)

    return loss_and_gradient


def train_epochs_general(net: Network, X, Y, loss, *, learning_rate, epochs=1, batch_size=None, alpha=0.0,
                         optimizer: Optimizer | None = None, order=None, sample_weight=None, epoch_offset=0,
                         blas_min_flops=None, stop=None, progress=None) -> TrainResult:
    """:func:`train_epochs` with sample weights, a sparse ``X`` and the Poisson loss (samples as columns).

    Parameters
    ----------
    X : (n0, m) array of columns of ``net.dtype``, or :class:`SparseRows`
    Y : (nL, m) array of ``net.dtype``
    loss : {"bce", "ce", "half_mse", "poisson"}
    sample_weight : (m,) array or None (all ones)
    other parameters : as :func:`train_epochs`

    Returns
    -------
    TrainResult (``mean_batch_cost`` is not computed here: it holds ``sample_weighted_cost``)
    """
    Xc, data, indices, indptr, _, sparse = _general_inputs(net, X)
    Yc = _as_columns(net, Y, "Y", net.layer_sizes[-1])
    m = Yc.shape[1]
    if (X.shape[0] if sparse else Xc.shape[1]) != m:
        raise ValueError(f"X and Y have different numbers of samples ({m} in Y)")
    code = _general_loss_code(loss)
    sw = _sample_weights(net, sample_weight, m)
    batch_size = m if batch_size is None else min(int(batch_size), m)
    if batch_size < 1 or epochs < 1:
        raise ValueError("batch_size and epochs must be positive")
    if optimizer is None:
        if getattr(net, "_plain_sgd", None) is None:
            net._plain_sgd = Optimizer(net)
        optimizer = net._plain_sgd
    opt = optimizer
    dt = net.dtype.type
    sizes = net.layer_sizes
    ws = {
        "Zbuf": np.empty(batch_size * sum(sizes[1:]), net.dtype),
        "deltas": np.empty(2 * batch_size * max(sizes[1:]), net.dtype),
        "xbuf": np.empty(0 if sparse else sizes[0] * batch_size, net.dtype),
        "ybuf": np.empty(sizes[-1] * batch_size, net.dtype),
        "swbuf": np.empty(batch_size, net.dtype),
        "rows": np.empty(batch_size, np.int64),
    }
    fixed = (Xc, data, indices, indptr, sparse, Yc, sw, net.params, net.dims, net.act_codes, dt(net.leaky_slope),
             code, dt(alpha), batch_size)
    opt_args = (K.OPTIMIZER_CODES[opt.kind], dt(opt.momentum), dt(opt.beta_1), dt(opt.beta_2), dt(opt.epsilon),
                opt.state_1, opt.state_2, opt.step, ws["Zbuf"], np.empty_like(ws["Zbuf"]), ws["deltas"],
                np.zeros(net.params.size, net.dtype), ws["xbuf"], ws["ybuf"], ws["swbuf"], ws["rows"],
                np.empty(net.params.size + opt.state_1.size + opt.state_2.size, net.dtype), net.offsets,
                act_offsets(net.dims, batch_size),
                np.zeros(2, net.dtype), _blas_min_flops(blas_min_flops), _sparse_scratch(net, sparse, batch_size))

    def call(order_rows, rates_now, span, partial, mean_out, weighted_out):
        ran = KG._train_epochs_general(*fixed, order_rows, rates_now, *opt_args, span, partial, weighted_out)
        mean_out[:ran] = weighted_out[:ran]
        return ran

    def real_cost():
        value, _ = loss_gradient_function(net, X, Yc, loss, alpha=alpha, sample_weight=sample_weight,
                                          blas_min_flops=blas_min_flops)(net.params.copy())
        return value

    outputs_finite = output_check(net, data if sparse else Xc, Yc, loss, alpha, real_cost)
    # (its backup is the start of each epoch, not of the call)
    return _run_in_calls(call, net, opt, m, batch_size, epochs, learning_rate, order, stop, progress, epoch_offset,
                         outputs_finite, None)


def forward_general(net: Network, X, *, blas_min_flops=None) -> np.ndarray:
    """Output of the network's layers (no Poisson exponential) for every sample, as ``(nL, m)`` columns.

    ``X`` : :class:`SparseRows` (the first layer computed on the sparse matrix) or ``(n0, m)`` columns.
    """
    if not isinstance(X, SparseRows):
        return forward(net, X, blas_min_flops=blas_min_flops)
    if X.shape[1] != net.layer_sizes[0]:
        raise ValueError(f"X has {X.shape[1]} features; the network expects {net.layer_sizes[0]}")
    m = X.shape[0]
    out = np.empty((net.layer_sizes[-1], m), net.dtype)
    buffer = np.empty((2, m * max(net.layer_sizes[1:])), net.dtype)
    KG._forward_sparse(X.data, X.indices, X.indptr, X.rows, net.params, net.dims, net.act_codes,
                       net.dtype.type(net.leaky_slope), net.offsets, buffer, out,
                       np.zeros(2, net.dtype), _blas_min_flops(blas_min_flops), _sparse_scratch(net, True, m))
    return out


# --- per-step passes (a user's own loop: one call per forward, cost, backward, update) --------------
class StepLayout:
    """What the per-step kernels and their callers need about a network, computed once per architecture.

    Attributes
    ----------
    sizes : tuple of int, ``(n0, ..., nL)``
    activations : tuple of str
    relu_grad_at_zero : {0, 1}
    dtype : float dtype
    offsets : (L + 1,) int64, :func:`param_offsets`
    spec : (3 L + 2,) int64, the sizes, activation codes and offsets in one array (``_kernels._spec_parts``)
    n_params : int
    n_rows : int, ``S = sum(n1..nL)``: a forward buffer ``ZA`` is ``(2 S, m)``
    z_rows, a_rows : lists of slices, layer ``l``'s rows of ``Z`` and of ``A`` in ``ZA``
    param_blocks : list of ``(slice, shape)``, ``W1, b1, W2, ...`` in a flat vector of this layout
    dA_height : int, ``sum(n0..n_{L-1})``; dA_rows : list of slices, the rows of ``dA_l`` (l = 0..L-1)
    lazy_height, lazy_rows : the same for a backward pass without ``dA_0`` (:func:`step_backward`), whose
        first block holds ``dZ_1`` (``n1`` rows) instead
    """

    def __init__(self, sizes, activations, dtype, relu_grad_at_zero=0):
        self.sizes = tuple(int(n) for n in sizes)
        self.dtype = np.dtype(dtype)
        self.activations = tuple(activations)
        self.relu_grad_at_zero = check_relu_grad_at_zero(relu_grad_at_zero)
        self.n_layers = len(self.sizes) - 1
        self.offsets = param_offsets(self.sizes)
        self.n_params = int(self.offsets[-1])
        codes = activation_codes(activations, relu_grad_at_zero)
        self.spec = np.concatenate([np.asarray(self.sizes, np.int64), codes, self.offsets])
        S = sum(self.sizes[1:])
        bounds = np.cumsum((0,) + self.sizes).tolist()
        self.n_rows = S
        self.z_rows = [slice(bounds[l + 1] - self.sizes[0], bounds[l + 2] - self.sizes[0])
                       for l in range(self.n_layers)]
        self.a_rows = [slice(S + r.start, S + r.stop) for r in self.z_rows]
        self.dA_rows = [slice(bounds[l], bounds[l + 1]) for l in range(self.n_layers)]
        self.dA_height = bounds[-2]
        shift = self.sizes[1] - self.sizes[0]
        self.lazy_rows = [slice(0, self.sizes[1])] + [slice(r.start + shift, r.stop + shift) for r in self.dA_rows[1:]]
        self.lazy_height = self.dA_height + shift
        self.widest = max(self.sizes[1:])
        self.n0n1 = self.sizes[0] * self.sizes[1]
        self.param_blocks = []
        for l in range(self.n_layers):
            n_in, n_out = self.sizes[l], self.sizes[l + 1]
            lo, hi = int(self.offsets[l]), int(self.offsets[l + 1])
            self.param_blocks += [(slice(lo, hi - n_out), (n_out, n_in)), (slice(hi - n_out, hi), (n_out, 1))]

    def backward_length(self, m: int, with_dA0: bool = True) -> int:
        """Length of the ``out`` buffer of :func:`step_backward` for ``m`` samples: the gradient, the ``dA``
        blocks (``dA_height`` or ``lazy_height`` rows), and the kernel's scratch."""
        return self.n_params + (self.dA_height if with_dA0 else self.lazy_height) * m + 2 * m * self.widest + 2


def step_forward(layout: StepLayout, X: np.ndarray, params: np.ndarray, slope: float,
                 ZA=None) -> tuple[np.ndarray, bool]:
    """Forward pass for a per-step loop: ``(ZA, finite)``, ``ZA`` ``(2 S, m)`` (``layout.z_rows`` /
    ``a_rows`` give the layers' blocks; given, such a buffer is reused). ``X`` must be a C-contiguous
    ``(n0, m)`` array of the layout's dtype and ``params`` its flat parameters: the caller has checked both
    (O(1) checks)."""
    if ZA is None:
        ZA = np.empty((2 * layout.n_rows, X.shape[1]), layout.dtype)
    status = K._step_forward(X, params, layout.spec, slope, ZA, np.empty(2, layout.dtype), _config.BLAS_MIN_FLOPS)
    return ZA, status == 0


def step_backward(layout: StepLayout, X, Y, params, slope: float, loss: str, ZA, out=None,
                  with_dA0: bool = True) -> tuple[np.ndarray, int]:
    """Gradients for a per-step loop: ``(out, status)`` from a :func:`step_forward` buffer ``ZA``.

    ``out`` (length ``layout.backward_length(m, with_dA0)``) holds the gradient ``(P,)`` in the parameters'
    layout, then the ``dA`` blocks as a ``(dA_height, m)`` C array (``layout.dA_rows``), then the kernel's
    scratch; without ``with_dA0``, ``dA_0 = W_1.T @ dZ_1`` is not computed and the blocks form a
    ``(lazy_height, m)`` array whose first block is ``dZ_1`` (``layout.lazy_rows``). Status 0 when ``Y`` and
    every gradient were finite (and ``Y`` in [0, 1] for a cross-entropy), else the caller validates. Arrays
    as checked by the caller: C-contiguous, of the layout's dtype, matching shapes. ``out``
    may be given (such a buffer, reused).
    """
    if out is None:
        out = np.empty(layout.backward_length(ZA.shape[1], with_dA0), layout.dtype)
    status = K._step_backward(X, Y, params, layout.spec, slope, K.LOSS_CODES[loss], ZA, out, bool(with_dA0),
                              _config.BLAS_MIN_FLOPS)
    return out, status


def train_recording_outputs(net: Network, X, Y, loss, learning_rate: float, outputs: np.ndarray,
                            epoch_offset: int = 0) -> None:
    """Full-batch plain gradient descent for ``len(outputs)`` epochs, in calls of about :data:`CHUNK_SECONDS`,
    writing each epoch's network output (before its update) into ``outputs`` ``(epochs, nL, m)`` (C-contiguous,
    ``net.dtype``).

    Raises ``FloatingPointError`` when an epoch gives a non-finite cost or weights.
    """
    Xc = _as_columns(net, X, "X", net.layer_sizes[0])
    Yc = _as_columns(net, Y, "Y", net.layer_sizes[-1])
    m = Xc.shape[1]
    if Yc.shape[1] != m or outputs.shape[1:] != Yc.shape or outputs.dtype != net.dtype:
        raise ValueError("X, Y and outputs do not have matching shapes and dtype")
    if loss not in K.LOSS_CODES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(K.LOSS_CODES)}")
    ws = net.workspace(m)
    epochs = outputs.shape[0]
    done = 0
    outputs_finite = output_check(net, Xc, Yc, loss, 0.0, lambda: cost(net, Xc, Yc, loss))
    # in calls of about CHUNK_SECONDS, as train_epochs: Ctrl-C is raised between two of them
    per_call = max(1, int(CHUNK_SECONDS * _PESSIMISTIC_RATE / (3.0 * m * net.params.size)))
    while done < epochs:
        n = min(per_call, epochs - done)
        started = time.perf_counter()
        ran = K._train_full_batch_recording(
            Xc, Yc, net.params, net.dims, net.act_codes, net.dtype.type(net.leaky_slope), K.LOSS_CODES[loss],
            float(learning_rate), ws["Zbuf"], ws["Abuf"], ws["deltas"], ws["grad"], ws["param_offsets"],
            ws["act_offsets"], ws["scalars"], _config.BLAS_MIN_FLOPS, outputs[done:done + n])
        done += ran
        if ran < n:
            raise FloatingPointError(f"training diverged in epoch {epoch_offset + done + 1}: non-finite cost or "
                                     "weights (try a smaller learning rate)")
        # the last update ran no forward pass (see _run_in_calls)
        if not outputs_finite():
            raise FloatingPointError(f"training diverged in epoch {epoch_offset + done}: non-finite cost, outputs "
                                     "or weights (try a smaller learning rate)")
        per_call = max(1, min(4 * per_call, int(n * CHUNK_SECONDS / max(time.perf_counter() - started, 1e-6))))


#: ``scaled_difference(P, G, learning_rate, out)``: ``out = P - learning_rate * G`` for flat C-contiguous arrays
#: of one dtype and length (``out`` may be ``P``); False, nothing written, when ``P`` or ``G`` holds a
#: non-finite value. The kernel itself (its arguments are what the caller checked): a wrapper would cost
#: a loop step more than the update of a small network.
scaled_difference = K._scaled_difference


#: the per-step kernels themselves (``_kernels._step_forward``, ``_step_backward``), for :mod:`fastmlp._steps`,
#: which checks their arguments as :func:`step_forward` / :func:`step_backward` require: on a small network a
#: wrapper call costs a noticeable part of the step
step_forward_kernel = K._step_forward
step_backward_kernel = K._step_backward
#: the same passes and the update on the caller's own parameter arrays (``_kernels._step_forward_arrays``,
#: ``_step_backward_arrays``, ``_update_arrays``): no copy into one flat vector per call
step_forward_arrays_kernel = K._step_forward_arrays
step_backward_arrays_kernel = K._step_backward_arrays
update_arrays_kernel = K._update_arrays
LOSS_CODES = K.LOSS_CODES

#: ``bce_of_probabilities(AL, Y)``: the course's cross-entropy cost of C-contiguous ``(n, m)`` arrays of one
#: dtype (``_kernels._bce_of_probabilities``); NaN when an input is not finite or outside [0, 1]. The kernel
#: itself, as :data:`scaled_difference`.
bce_of_probabilities = K._bce_of_probabilities
