"""The list-of-dicts architecture dialect, name for name: ``from fastmlp.architecture import *``.

Code written in the style of the "architecture" notebook (``nn_architecture`` as a list of
``{"input_dim", "output_dim", "activation"}`` dicts, ``init_layers``, ``full_forward_propagation``,
``get_cost_value``, ``full_backward_propagation``, ``update``, ``train``) keeps working when its own
definitions are replaced by this module, with the same numbers (to rounding), faster. The contract:

- the same names, signatures and return structures: ``sigmoid(Z)`` / ``relu(Z)`` return ``A``;
  ``sigmoid_backward(dA, Z)`` / ``relu_backward(dA, Z)`` take ``Z`` itself;
  ``single_layer_forward_propagation`` returns ``(A, Z)``; ``full_forward_propagation`` returns
  ``(A, memory)`` with exactly the keys ``A0, Z1, A1, Z2, ..., A{L-1}, ZL`` (in that order);
  ``full_backward_propagation`` returns ``dW{l}, db{l}`` for ``l = L..1``; ``update`` works in place and
  returns the same dict; ``train`` returns ``(params_values, cost_history, accuracy_history)``;
- the same seeds: ``init_layers(nn_architecture, seed=99)`` reseeds NumPy's global generator and draws, for
  each layer in order, ``W = randn(out, in) * 0.1`` then ``b = randn(out, 1) * 0.1``; ``train`` starts from
  ``init_layers(nn_architecture, 2)``;
- the same definitions: ``get_cost_value(Y_hat, Y)`` is ``squeeze((1/n) (Y_hat - Y)^2)`` with ``n`` the
  number of samples, a per-sample vector (the notebook's definition, kept as it is), while the gradient of
  ``full_backward_propagation`` is that of the binary cross-entropy (``dA = -(Y/Y_hat - (1-Y)/(1-Y_hat))``);
- the same edge cases: relu' at ``Z == 0`` is 0 (``dZ[Z <= 0] = 0``); ``grad_at_zero=1`` lets the gradient
  through instead. Activations are ``"relu"`` and ``"sigmoid"``; another name is a ``ValueError``.

Compiled: :func:`full_forward_propagation`, :func:`full_backward_propagation` (one call each) and
:func:`update` (one call), with O(1) checks for what a loop passes again and again (:mod:`fastmlp._steps`);
:func:`train` runs every epoch in compiled code.
"""

from __future__ import annotations

import operator

import numpy as np

from fastmlp import _checks, _engine, _steps
from fastmlp import reference as _ref

__all__ = [
    "convert_prob_into_class",
    "full_backward_propagation",
    "full_forward_propagation",
    "get_accuracy_value",
    "get_cost_value",
    "init_layers",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "single_layer_backward_propagation",
    "single_layer_forward_propagation",
    "train",
    "update",
]

_ACTIVATIONS = ("relu", "sigmoid")


def _check_activation(activation):
    _checks.check_choice(activation, _ACTIVATIONS,
                         "Non-supported activation function {value!r}; expected 'relu' or 'sigmoid'")


def _check_grad_at_zero(grad_at_zero) -> int:
    return _checks.check_relu_grad_at_zero(grad_at_zero, "grad_at_zero")


_LAYER_FIELDS = operator.itemgetter("input_dim", "output_dim", "activation")
_KNOWN: dict = {}


def _architecture(nn_architecture) -> tuple[tuple, tuple]:
    """``(sizes, activations)`` of a list of layer dicts (checked: chained sizes, relu or sigmoid); the
    check of an architecture already seen is one lookup."""
    try:
        signature = tuple(map(_LAYER_FIELDS, nn_architecture))
        found = _KNOWN.get(signature)
    except (TypeError, KeyError):
        signature = found = None
    if found is None:
        dims, acts = _checks.check_architecture(nn_architecture)
        for a in acts:
            _check_activation(a)
        found = (tuple(dims), tuple(acts))
        if signature is not None:
            if len(_KNOWN) > 256:
                _KNOWN.clear()
            _KNOWN[signature] = found
    return found


# --- activations --------------------------------------------------------------------------------------
def sigmoid(Z):
    """``1 / (1 + exp(-Z))``, elementwise, without overflow for any finite ``Z``."""
    return _ref.sigmoid(Z)


def relu(Z):
    """``max(0, Z)``, elementwise."""
    return np.maximum(0, Z)


def sigmoid_backward(dA, Z):
    """``dA * s * (1 - s)`` with ``s = sigmoid(Z)``."""
    s = _ref.sigmoid(Z)
    return dA * s * (1 - s)


def relu_backward(dA, Z, grad_at_zero=0):
    """``dA`` where ``Z > 0``, 0 where ``Z < 0``; at ``Z == 0`` zeroed (``grad_at_zero=0``, the notebook's
    ``dZ[Z <= 0] = 0``) or passed (``grad_at_zero=1``). ``dA`` is not modified."""
    dZ = np.array(dA, copy=True)
    dZ[(Z < 0) if _check_grad_at_zero(grad_at_zero) else (Z <= 0)] = 0
    return dZ


# --- initialisation -----------------------------------------------------------------------------------
def init_layers(nn_architecture, seed=99):
    """Parameters of ``nn_architecture``: ``np.random.seed(seed)``, then for each layer in order
    ``W = randn(output_dim, input_dim) * 0.1`` and ``b = randn(output_dim, 1) * 0.1``.

    Returns
    -------
    params_values : dict
        ``"W1", "b1", ...``, float64; the arrays are views into one flat vector, which the compiled
        functions of this module use as it is.
    """
    sizes, _ = _architecture(nn_architecture)
    # the notebook seeds NumPy's global generator and draws from it: so do we (the same draws afterwards too)
    np.random.seed(_checks.check_seed(seed))  # noqa: NPY002
    Ws, bs = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        Ws.append(np.random.randn(n_out, n_in) * 0.1)  # noqa: NPY002
        bs.append(np.random.randn(n_out, 1) * 0.1)  # noqa: NPY002
    return _steps.pack(Ws, bs, np.float64)


# --- forward ------------------------------------------------------------------------------------------
def single_layer_forward_propagation(A_prev, W_curr, b_curr, activation="relu"):
    """One layer: ``Z = W_curr @ A_prev + b_curr``; returns ``(g(Z), Z)``."""
    _check_activation(activation)
    Z_curr = np.dot(W_curr, A_prev) + b_curr
    return (relu if activation == "relu" else sigmoid)(Z_curr), Z_curr


class _Memory(_steps.Watched):
    """The ``memory`` of :func:`full_forward_propagation`, which also carries its forward pass."""

    __slots__ = ("_pass", "_items")

    def __reduce__(self):
        return dict, (dict(self),)


def _memory_keys(n_layers: int) -> tuple:
    keys = _MEMORY_KEYS.get(n_layers)
    if keys is None:
        keys = _MEMORY_KEYS[n_layers] = tuple(k for l in range(1, n_layers + 1) for k in (f"A{l - 1}", f"Z{l}"))
    return keys


_MEMORY_KEYS: dict = {}


def full_forward_propagation(X, params_values, nn_architecture):
    """Forward pass through every layer of ``nn_architecture``, in one compiled call.

    Parameters
    ----------
    X : (input_dim, m) array
    params_values : dict, ``"W1", "b1", ...``
    nn_architecture : list of ``{"input_dim", "output_dim", "activation"}`` dicts

    Returns
    -------
    A : (output_dim, m) array, the network's output
    memory : dict, ``"A0"`` (``X`` itself), ``"Z1"``, ``"A1"``, ..., ``"A{L-1}"``, ``"ZL"``
    """
    sizes, acts = _architecture(nn_architecture)
    fp, kept = _steps.forward_pass(X, params_values, acts, 0.01, 0, recycle="memory")
    layout = fp.layout
    if layout.sizes != sizes:
        raise ValueError(f"params_values have layer sizes {list(layout.sizes)} but nn_architecture describes "
                         f"{list(sizes)}")
    fresh = kept is None
    if fresh:
        kept = _new_memory(X, fp)
    else:  # an earlier result nobody holds any more, rewritten by this pass: only A0 changes
        memory = kept.value
        memory["A0"] = X
        kept.items = memory._items = tuple(memory.items())
        memory._changed = False
        del memory
    del fp  # (no local name may hold what the kept result's reference counts are taken of)
    _steps.keep_result("memory", kept, fresh)
    return kept.value._pass.AL, kept.value


def _new_memory(X, fp):
    ZA, layout = fp.ZA, fp.layout
    values = [X]  # A0 is the caller's own array, as the notebook stores it
    for z_rows, a_rows in zip(layout.z_rows, layout.a_rows[:-1], strict=False):
        values.append(ZA[z_rows])
        values.append(ZA[a_rows])
    values.append(ZA[layout.z_rows[-1]])
    memory = _Memory(zip(_memory_keys(layout.n_layers), values, strict=True))
    memory._pass = fp
    kept = _steps.kept_result(memory, ZA, values[1:] + [fp.AL, fp])
    memory._items = kept.items
    memory._changed = False
    return kept


# --- cost and accuracy --------------------------------------------------------------------------------
def get_cost_value(Y_hat, Y):
    """The notebook's cost: ``squeeze((1/n) * (Y_hat - Y)**2)``, ``n = Y_hat.shape[1]`` (a value per sample)."""
    n = Y_hat.shape[1]
    return np.squeeze((1 / n) * np.power(Y_hat - Y, 2))


def convert_prob_into_class(probs):
    """A copy of ``probs`` with values above 0.5 set to 1 and the others to 0."""
    classes = np.copy(probs)
    classes[classes > 0.5] = 1
    classes[classes <= 0.5] = 0
    return classes


def get_accuracy_value(Y_hat, Y):
    """The fraction of samples (columns) whose every output, thresholded at 0.5, equals ``Y``."""
    return (convert_prob_into_class(Y_hat) == Y).all(axis=0).mean()


# --- backward -----------------------------------------------------------------------------------------
def single_layer_backward_propagation(dA_curr, W_curr, b_curr, Z_curr, A_prev, activation="relu", grad_at_zero=0):
    """One layer backward: returns ``(dA_prev, dW_curr, db_curr)``, averaged over ``m = A_prev.shape[1]``."""
    _check_activation(activation)
    m = A_prev.shape[1]
    if activation == "relu":
        dZ_curr = relu_backward(dA_curr, Z_curr, grad_at_zero)
    else:
        dZ_curr = sigmoid_backward(dA_curr, Z_curr)
    return np.dot(W_curr.T, dZ_curr), np.dot(dZ_curr, A_prev.T) / m, np.sum(dZ_curr, axis=1, keepdims=True) / m


def _pass_of(memory, sizes, acts):
    """The forward pass behind ``memory`` when it is unchanged since and ran this architecture, else None."""
    if type(memory) is _Memory and _steps.unchanged(memory, memory._items):
        fp = memory._pass
        if fp.layout.activations == acts and fp.layout.sizes == sizes:
            return fp
    return None


def full_backward_propagation(Y_hat, Y, memory, params_values, nn_architecture, grad_at_zero=0):
    """Gradients of the binary cross-entropy through every layer, in one compiled call.

    A sigmoid output layer takes the delta ``Y_hat - Y`` (what ``dA = -(Y/Y_hat - (1-Y)/(1-Y_hat))`` times
    the sigmoid's derivative equals, without the divisions); a relu output layer goes through the NumPy
    functions above.

    Parameters
    ----------
    Y_hat : (output_dim, m) array; Y : array of the same size
    memory : from :func:`full_forward_propagation`
    params_values : dict; nn_architecture : list of dicts
    grad_at_zero : {0, 1}, relu' at ``Z == 0`` (see :func:`relu_backward`)

    Returns
    -------
    grads_values : dict, ``"dW{L}", "db{L}", ..., "dW1", "db1"``
    """
    relu0 = _check_grad_at_zero(grad_at_zero)
    sizes, acts = _architecture(nn_architecture)
    if acts[-1] != "sigmoid":
        return _numpy_backward(Y_hat, Y, memory, params_values, nn_architecture, relu0)
    def slow_caches():
        return _ref._caches_from_memory(memory, params_values, nn_architecture)[0]

    # memory's Z and A with params_values as they are now (the notebook's backward reads both at this point)
    fp = _pass_of(memory, sizes, acts)
    return _steps.backward(Y_hat, _flat_targets(Y, Y_hat), slow_caches() if fp is None else fp, acts, "bce", 0.01,
                           relu0, key_order="architecture", parameters_now=params_values, slow_caches=slow_caches)


def _flat_targets(Y, Y_hat):
    """``Y.reshape(Y_hat.shape)`` as the notebook does (no copy for a matching array)."""
    if type(Y) is np.ndarray and type(Y_hat) is np.ndarray and Y.shape != Y_hat.shape and Y.size == Y_hat.size:
        return Y.reshape(Y_hat.shape)
    return Y


def _numpy_backward(Y_hat, Y, memory, params_values, nn_architecture, relu0):
    Y = np.reshape(Y, np.shape(Y_hat))
    dA = -(np.divide(Y, Y_hat) - np.divide(1 - Y, 1 - Y_hat))
    grads = {}
    for l in range(len(nn_architecture), 0, -1):
        dA, dW, db = single_layer_backward_propagation(dA, params_values[f"W{l}"], params_values[f"b{l}"],
                                                       memory[f"Z{l}"], memory[f"A{l - 1}"],
                                                       nn_architecture[l - 1]["activation"], relu0)
        grads[f"dW{l}"] = dW
        grads[f"db{l}"] = db
    return grads


# --- update and training ------------------------------------------------------------------------------
def update(params_values, grads_values, nn_architecture, learning_rate):
    """``W[l] -= learning_rate * dW[l]`` and ``b[l] -= learning_rate * db[l]`` in place for every layer of
    ``nn_architecture``; returns ``params_values``."""
    p = _steps.as_packed(params_values)
    if p is not None:
        n_layers = len(p.sizes) - 1
    else:  # a plain dict of float arrays: checked (non-finite values refused) and compiled too
        found = _steps.plain_parameters(params_values)
        n_layers = -1 if found is None else len(found[0])
    if n_layers == len(nn_architecture):
        return _steps.update(params_values, grads_values, learning_rate, in_place=True)
    lr = _checks.check_positive_float(learning_rate, "learning_rate")
    for l in range(1, len(nn_architecture) + 1):
        for key in (f"W{l}", f"b{l}"):
            if key not in params_values or "d" + key not in grads_values:
                raise ValueError(f"params_values and grads_values need {key!r} and 'd{key}'")
            params_values[key] -= lr * grads_values["d" + key]
    return params_values


def train(X, Y, nn_architecture, epochs, learning_rate, verbose=False, callback=None):
    """Train from ``init_layers(nn_architecture, 2)`` by full-batch gradient descent, every epoch compiled.

    Each epoch: forward, ``get_cost_value`` and ``get_accuracy_value`` of that forward's output (recorded),
    backward, update. Every 50th epoch (0, 50, ...) ``callback(i, params_values)`` is called after the
    update and, with ``verbose``, the epoch's mean cost and accuracy are printed.

    Parameters
    ----------
    X : (input_dim, m) array; Y : (output_dim, m) array of labels in [0, 1]
    nn_architecture : list of dicts, with a sigmoid output layer
    epochs : int; learning_rate : float
    verbose : bool; callback : callable or None

    Returns
    -------
    params_values : dict
    cost_history : list of ``get_cost_value`` results, one per epoch
    accuracy_history : list of floats, one per epoch

    Raises
    ------
    FloatingPointError
        When an epoch gives a non-finite cost or weights (try a smaller learning rate).
    """
    sizes, acts = _architecture(nn_architecture)
    if acts[-1] != "sigmoid":
        raise ValueError("train needs a sigmoid output layer (its gradient is the binary cross-entropy's)")
    epochs = _checks.check_positive_int(epochs, "epochs")
    lr = _checks.check_positive_float(learning_rate, "learning_rate")
    params = init_layers(nn_architecture, 2)
    net = _engine.Network(list(sizes), list(acts), np.float64)
    net.params[:] = params.flat
    Xc = _engine.kernel_array(_checks.check_X(X, net.weights[0]))
    m = Xc.shape[1]
    Yc = _engine.kernel_array(_checks.check_Y(Y, sizes[-1], m, np.float64, "bce"))
    outputs = np.empty((epochs, sizes[-1], m))
    done = 0
    while done < epochs:
        chunk = min(epochs - done, 50 - (done - 1) % 50 if done else 1) if (verbose or callback is not None) else epochs
        _engine.train_recording_outputs(net, Xc, Yc, "bce", lr, outputs[done:done + chunk], epoch_offset=done)
        done += chunk
        i = done - 1
        if i % 50 == 0 and (verbose or callback is not None):
            params.flat[:] = net.params
            if verbose:
                cost = float(np.mean(get_cost_value(outputs[i], Y)))
                print(f"Iteration: {i:05} - cost: {cost:.5f} - accuracy: {get_accuracy_value(outputs[i], Y):.5f}")
            if callback is not None:
                callback(i, params)
    params.flat[:] = net.params
    Yb = np.reshape(Y, (sizes[-1], m)) if np.size(Y) == sizes[-1] * m else Y
    if sizes[-1] == 1:  # get_cost_value of every epoch at once: squeeze((1/m) (Y_hat - Y)^2)
        costs = ((1 / m) * np.power(outputs - Yb, 2)).reshape(epochs, m)
        cost_history = list(costs[:, 0]) if m == 1 else list(costs)
    else:
        cost_history = [get_cost_value(o, Y) for o in outputs]
    accuracy_history = (np.where(outputs > 0.5, 1.0, 0.0) == Yb).all(axis=1).mean(axis=1).tolist()
    return params, cost_history, accuracy_history
