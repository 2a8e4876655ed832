"""Thin Python layer over :mod:`fastmlp._kernels`: flat parameters, workspaces, optimiser state.

By default samples are rows here (scikit-learn's layout): ``X`` is ``(m, n0)``; with ``columns=True``
they are columns (the course layout, ``(n0, m)``), which is what the kernels use internally, so passing
columns saves a transposed copy per call. A layer's weights are ``coef`` of shape ``(n_in, n_out)``.
:class:`fastmlp.MLP` (samples as columns) and the scikit-learn estimators both drive training through
:func:`train_epochs`; callers validate user input, this module only checks the invariants the kernels
rely on (dtype, contiguity, shapes), so a mistake never reaches compiled code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastmlp import _config
from fastmlp import _kernels as K
from fastmlp._checks import check_activation, check_dtype

__all__ = ["Network", "Optimizer", "TrainResult", "train_epochs", "forward_rows", "cost_rows"]


class Network:
    """Layer sizes, activations and one flat parameter vector.

    Parameters
    ----------
    layer_sizes : sequence of int, ``[n0, n1, ..., nL]``
    activations : sequence of str, one per layer (``L`` names); the output may be ``"softmax"``
    dtype : str or dtype, float32 or float64
    leaky_slope : float, the slope of ``leaky_relu`` for negative inputs

    Attributes
    ----------
    params : (P,) array, layer by layer ``W`` (n_out, n_in) in C order, then ``intercept`` (n_out,)
    coefs : list of (n_in, n_out) writable views into ``params`` (``W.T``, so in Fortran order)
    intercepts : list of (n_out,) writable views into ``params``
    """

    def __init__(self, layer_sizes, activations, dtype="float64", leaky_slope=0.01):
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
        self.act_codes = np.asarray([K.ACTIVATION_CODES[a] for a in activations], dtype=np.int64)
        n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.params = np.zeros(n_params, dtype=self.dtype)
        self.coefs, self.intercepts = [], []
        offset = 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            # stored as the course-style W (n_out, n_in) in C order; coef is its transpose (a view)
            self.coefs.append(self.params[offset:offset + n_in * n_out].reshape(n_out, n_in).T)
            offset += n_in * n_out
            self.intercepts.append(self.params[offset:offset + n_out])
            offset += n_out
        self._workspaces: dict[int, dict[str, np.ndarray]] = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        for derived in ("coefs", "intercepts", "_workspaces", "_plain_sgd"):
            state.pop(derived, None)
        return state

    def __setstate__(self, state):
        """Rebuild the views into ``params`` (a pickle would otherwise turn them into independent copies)."""
        params = state.pop("params")
        self.__init__(state["layer_sizes"], state["activations"], state["dtype"], state["leaky_slope"])
        self.params[:] = params

    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes) - 1

    def copy(self) -> Network:
        """A network with the same architecture and a copy of the parameters."""
        other = Network(self.layer_sizes, self.activations, self.dtype, self.leaky_slope)
        other.params[:] = self.params
        return other

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
                "backup": np.empty(P, dt),
                "xbuf": np.empty(sizes[0] * batch_size, dt),
                "ybuf": np.empty(sizes[-1] * batch_size, dt),
                # arguments, not kernel locals: the kernel borrows them (see _kernels._borrow)
                "param_offsets": K._param_offsets(self.dims),
                "act_offsets": K._act_offsets(self.dims, batch_size),
                "scalars": np.zeros(2, dt),
            }
            self._workspaces = {batch_size: ws}  # keep only the latest size
        return ws

    def __repr__(self) -> str:
        return f"Network({self.layer_sizes}, {self.activations}, dtype={self.dtype.name})"


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
    """

    mean_batch_cost: np.ndarray
    sample_weighted_cost: np.ndarray


def _as_columns(net: Network, X, name: str, width: int, columns: bool) -> np.ndarray:
    """``X`` as the ``(width, m)`` C-contiguous array of ``net.dtype`` that the kernels read."""
    shape = (width, "m") if columns else ("m", width)
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[0 if columns else 1] != width:
        raise ValueError(f"{name} must be a 2-D array of shape {shape}, got {getattr(X, 'shape', None)}")
    if X.dtype != net.dtype:
        raise ValueError(f"{name} must be {net.dtype.name}, got {X.dtype} (the caller converts)")
    return kernel_array(X if columns else X.T)


def kernel_array(arr: np.ndarray, dtype=None) -> np.ndarray:
    """``arr`` as a C-contiguous, writable array (copied only when it is not one already).

    Kernels are compiled once per array type; a read-only array would make Numba compile a second
    version of every kernel it reaches.
    """
    arr = np.ascontiguousarray(arr, dtype=dtype)
    return arr if arr.flags.writeable else arr.copy()


def train_epochs(net: Network, X, Y, loss, *, learning_rate, epochs=1, batch_size=None, alpha=0.0,
                 optimizer: Optimizer | None = None, order=None, epoch_offset=0, blas_min_flops=None,
                 columns=False) -> TrainResult:
    """Train ``net`` in place for ``epochs`` epochs of minibatch gradient descent, all inside one kernel call.

    Parameters
    ----------
    net : Network
    X : (m, n0) array of ``net.dtype``, or (n0, m) with ``columns=True``
    Y : (m, nL) array of ``net.dtype``, or (nL, m) with ``columns=True``
    loss : {"bce", "mse", "ce", "half_mse"}
    learning_rate : float or (epochs,) array of per-epoch rates
    epochs : int
    batch_size : int or None (the full batch)
    alpha : float, L2 penalty (scikit-learn's ``alpha``)
    optimizer : Optimizer or None (plain SGD)
    order : None or (epochs, m) int array, the sample order of each epoch
    epoch_offset : int, added to epoch numbers in error messages
    blas_min_flops : int or None, overrides :data:`fastmlp._config.BLAS_MIN_FLOPS`
    columns : bool, samples are the columns of ``X`` and ``Y`` (no copy when they are C-contiguous)

    Returns
    -------
    TrainResult

    Raises
    ------
    FloatingPointError
        When an epoch gives a non-finite cost or weights; ``net.params`` is left as it was at the end of
        the last finite epoch, and the exception's ``completed`` attribute holds the finished epochs' costs.
    """
    Xc = _as_columns(net, X, "X", net.layer_sizes[0], columns)
    Yc = _as_columns(net, Y, "Y", net.layer_sizes[-1], columns)
    m = Xc.shape[1]
    if Yc.shape[1] != m:
        raise ValueError(f"X has {m} samples but Y has {Yc.shape[1]}")
    if loss not in K.LOSS_CODES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(K.LOSS_CODES)}")
    batch_size = m if batch_size is None else min(int(batch_size), m)
    if batch_size < 1 or epochs < 1:
        raise ValueError("batch_size and epochs must be positive")
    rates = np.broadcast_to(np.asarray(learning_rate, dtype=np.float64), (epochs,)).copy()
    if order is None:
        order = np.zeros((0, m), np.int64)
    else:
        order = np.ascontiguousarray(order, dtype=np.int64)
        if order.shape != (epochs, m) or order.min() < 0 or order.max() >= m:
            raise ValueError(f"order must be an ({epochs}, {m}) array of sample indices")
    if optimizer is None:  # plain SGD: one stateless optimiser per network
        if getattr(net, "_plain_sgd", None) is None:
            net._plain_sgd = Optimizer(net)
        optimizer = net._plain_sgd
    opt = optimizer
    dt = net.dtype.type
    ws = net.workspace(batch_size)
    mean_cost = np.empty(epochs, np.float64)
    weighted_cost = np.empty(epochs, np.float64)
    done = K._train_epochs(
        Xc, Yc, net.params, net.dims, net.act_codes, dt(net.leaky_slope), K.LOSS_CODES[loss], dt(alpha),
        batch_size, order, rates, K.OPTIMIZER_CODES[opt.kind], dt(opt.momentum), dt(opt.beta_1),
        dt(opt.beta_2), dt(opt.epsilon), opt.state_1, opt.state_2, opt.step,
        ws["Zbuf"], ws["Abuf"], ws["deltas"], ws["grad"], ws["xbuf"], ws["ybuf"], ws["backup"],
        ws["param_offsets"], ws["act_offsets"], ws["scalars"],
        _config.BLAS_MIN_FLOPS if blas_min_flops is None else int(blas_min_flops), mean_cost, weighted_cost)
    if done < epochs:
        exc = FloatingPointError(
            f"training diverged in epoch {epoch_offset + done + 1}: non-finite cost or weights "
            f"(try a smaller learning rate); parameters are left at the end of epoch {epoch_offset + done}")
        exc.completed = TrainResult(mean_cost[:done].copy(), weighted_cost[:done].copy())
        raise exc
    return TrainResult(mean_cost, weighted_cost)


def forward_rows(net: Network, X, *, logits=False, blas_min_flops=None, columns=False) -> np.ndarray:
    """Output activations (or, with ``logits=True``, the output layer's pre-activations) for every sample.

    Parameters
    ----------
    net : Network
    X : (m, n0) array of ``net.dtype``, or (n0, m) with ``columns=True``

    Returns
    -------
    (m, nL) array of ``net.dtype``, or (nL, m) C-contiguous with ``columns=True``
    """
    Xc = _as_columns(net, X, "X", net.layer_sizes[0], columns)
    m = Xc.shape[1]
    out = np.empty((net.layer_sizes[-1], m), net.dtype)
    buffer = np.empty((2, m * max(net.layer_sizes)), net.dtype)
    acts = net.act_codes
    if logits:
        acts = acts.copy()
        acts[-1] = K.ACT_LINEAR
    K._forward(Xc, net.params, net.dims, acts, net.dtype.type(net.leaky_slope), buffer, out,
               _config.BLAS_MIN_FLOPS if blas_min_flops is None else int(blas_min_flops))
    return out if columns else out.T


def cost_rows(net: Network, X, Y, loss, *, columns=False) -> float:
    """The cost of ``net`` on all of ``(X, Y)``, computed as in training (cross-entropies from the logits).

    Parameters
    ----------
    net : Network
    X, Y : (m, n0) and (m, nL) arrays of ``net.dtype``, or (n0, m) and (nL, m) with ``columns=True``
    loss : {"bce", "mse", "ce", "half_mse"}
    """
    Xc = _as_columns(net, X, "X", net.layer_sizes[0], columns)
    Yc = _as_columns(net, Y, "Y", net.layer_sizes[-1], columns)
    Z = forward_rows(net, Xc, logits=True, columns=True)
    if Z.shape != Yc.shape:
        raise ValueError(f"X has {Z.shape[1]} samples but Y has {Yc.shape[1]}")
    A = np.empty_like(Z)
    slope = net.dtype.type(net.leaky_slope)
    K._activate_columns(Z, A, net.act_codes[-1], slope)
    total = K._cost_columns(Z, A, Yc, net.act_codes[-1], K.LOSS_CODES[loss], slope, np.empty_like(Z))
    return float(total / Z.shape[1])
