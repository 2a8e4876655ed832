"""All input validation of fastmlp, in one place: the reference, the model, the functional API, the
estimators' extra checks, the command line's argument types and the environment variables use it.

Every function raises ``ValueError`` whose message names the offending argument (or environment
variable) and the problem, so that bad input never reaches a kernel. Arrays are checked *after* their
conversion to the dtype they will be computed in: a float64 value that overflows float32 is refused, not
trained on as inf.
"""

from __future__ import annotations

import math
import numbers
import re

import numpy as np

from fastmlp._bounds import largest_magnitude

#: activations every layer may use
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "linear")
#: activations allowed only on the output layer
OUTPUT_ONLY_ACTIVATIONS = ("softmax",)
#: losses: binary cross-entropy (sigmoid output), mean squared error, categorical cross-entropy (softmax)
LOSSES = ("bce", "mse", "ce")
#: dtypes the kernels are compiled for
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_activation(name, *, output: bool = False, where: str = "activation") -> str:
    """Return ``name`` if it is a known activation, else raise ``ValueError`` listing the known ones."""
    allowed = ACTIVATIONS + (OUTPUT_ONLY_ACTIVATIONS if output else ())
    if not isinstance(name, str) or name not in allowed:
        raise ValueError(f"unknown {where} {name!r}; expected one of {', '.join(allowed)}")
    return name


def check_loss(name) -> str:
    """Return ``name`` if it is a known loss, else raise ``ValueError``."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    return name


def check_loss_output(loss: str, output_activation: str) -> None:
    """Cross-entropy losses need the output activation whose probabilities they score."""
    if loss == "bce" and output_activation != "sigmoid":
        raise ValueError(f"loss 'bce' needs a sigmoid output layer, got output activation {output_activation!r}")
    if loss == "ce" and output_activation != "softmax":
        raise ValueError(f"loss 'ce' needs a softmax output layer, got output activation {output_activation!r}")
    if output_activation == "softmax" and loss != "ce":
        raise ValueError(f"a softmax output layer needs loss 'ce', got {loss!r}")


def check_dtype(dtype) -> np.dtype:
    """Return the NumPy dtype for ``dtype`` (a string or dtype), which must be float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"unknown dtype {dtype!r}; expected 'float32' or 'float64'") from exc
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def as_float_array(x, name: str, *, ndim: int | None = 2, dtype=None, allow_empty: bool = False,
                   magnitude: list | None = None) -> np.ndarray:
    """Convert ``x`` to a finite floating array, without copying when it already is one.

    Integers and booleans become float64 (or ``dtype``); float32 stays float32 unless ``dtype`` says
    otherwise; float16 and longdouble become float64 (or ``dtype``). Finiteness is checked *after* the
    conversion: a finite value too large for ``dtype`` (e.g. 1e39 in float32) is refused as such. The result
    may share memory with ``x``: callers must not write into it.

    With a list ``magnitude``, finiteness is read from the result's largest and smallest values (NaN and inf
    show there), and ``max |result|`` is appended to the list: a caller that needs that bound too (the output
    check of a ``fit``, :func:`fastmlp._engine.output_check`) then reads the data once, not twice.
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to a numeric array: {exc}") from exc
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if dtype is not None:
        target = check_dtype(dtype)
    else:  # float32 and float64 keep their precision in either byte order (converted to the native one)
        native = arr.dtype.newbyteorder("=")
        target = native if native in FLOAT_DTYPES else np.dtype(np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if arr.dtype == target:  # nothing to convert (and no floating-point state to save and restore)
        converted = arr
    else:
        with np.errstate(over="ignore"):
            converted = arr.astype(target, copy=False)
    if magnitude is not None and converted.size:
        top = largest_magnitude(converted)  # NaN when a value is NaN, inf when one is infinite
        finite = math.isfinite(top)
        if finite:
            magnitude.append(top)
    else:
        finite = bool(np.isfinite(converted).all())
    if not finite:
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")
        raise ValueError(f"{name} holds values too large for {target} (magnitude above "
                         f"{np.finfo(target).max:.4g}); scale them down or use float64")
    return converted


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as an int if it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_positive_float(value, name: str) -> float:
    """Return ``value`` as a float if it is a finite number > 0."""
    if type(value) is float and 0 < value < np.inf:  # the common case, checked at per-step cost
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_seed(seed, name: str = "seed"):
    """``seed`` for ``np.random.RandomState``: None or an integer in [0, 2**32 - 1]."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise ValueError(f"{name} must be None or an integer in [0, 2**32 - 1], got {seed!r}")
    return int(seed)


def check_relu_grad_at_zero(value, name: str = "relu_grad_at_zero") -> int:
    """The derivative of relu at exactly 0: 0 or 1."""
    if type(value) is int and (value == 0 or value == 1):
        return value
    if isinstance(value, bool) or value not in (0, 1):
        raise ValueError(f"{name} must be 0 or 1 (relu' at Z == 0), got {value!r}")
    return int(value)


def check_choice(value, allowed, message: str):
    """``value`` if it is one of ``allowed``, else ``ValueError(message.format(value=value))`` (the course dialects
    word their errors as their seeds do)."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(message.format(value=value))
    return value


#: initialisation schemes of ``initialize_parameters``
INITS = ("he", "xavier", "deep")


def check_init(init) -> str:
    """Return ``init`` if it names an initialisation scheme."""
    if not isinstance(init, str) or init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")
    return init


def parse_int(text: str, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer written as text (a command-line argument, an environment variable), within bounds."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name} must be an integer {bounds}, got {text!r}")
    return value


def parse_positive_float(text: str, name: str) -> float:
    """A positive finite number written as text."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"{name} must be a positive number, got {text!r}") from None
    return check_positive_float(value, name)


def check_binary_targets(Y: np.ndarray, name: str = "Y") -> None:
    """Targets of a cross-entropy loss must lie in [0, 1]."""
    if Y.size and (Y.min() < 0 or Y.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1] for a cross-entropy loss, got values in [{Y.min()}, {Y.max()}]")


# ----------------------------------------------------------------------------------------------------
# the course-style API (reference and functional): parameters, activations, data, caches
# ----------------------------------------------------------------------------------------------------


def check_slope(leaky_slope, dtype=None) -> float:
    """``leaky_slope`` as a float: a finite real number, also finite in ``dtype`` when one is given."""
    if type(leaky_slope) is float and -3e38 < leaky_slope < 3e38:  # finite in float32 and float64: per-step cost
        return leaky_slope
    if isinstance(leaky_slope, bool) or not isinstance(leaky_slope, numbers.Real) or not np.isfinite(leaky_slope):
        raise ValueError(f"leaky_slope must be a finite number, got {leaky_slope!r}")
    if dtype is not None:
        dt = check_dtype(dtype)
        with np.errstate(over="ignore"):
            if not np.isfinite(dt.type(leaky_slope)):
                raise ValueError(f"leaky_slope={leaky_slope!r} is too large for {dt} (it would become inf)")
    return float(leaky_slope)


def check_layer_dims(layer_dims, name="layer_dims") -> list[int]:
    try:
        dims = list(layer_dims)
    except TypeError as exc:
        raise ValueError(f"{name} must be a sequence of positive integers, got {layer_dims!r}") from exc
    if len(dims) < 2:
        raise ValueError(f"{name} needs at least 2 entries (input and output size), got {dims!r}")
    return [check_positive_int(d, f"{name}[{i}]") for i, d in enumerate(dims)]


def count_layers(parameters) -> int:
    """Number of layers L of a parameter dict whose keys are exactly W1, b1, ..., WL, bL."""
    if not isinstance(parameters, dict):
        raise ValueError(f"parameters must be a dict with keys 'W1', 'b1', ..., got {type(parameters).__name__}")
    L = 0
    while f"W{L + 1}" in parameters:
        L += 1
    if L == 0:
        raise ValueError("parameters has no 'W1'" + (f" (keys: {_key_list(parameters)})" if parameters else ""))
    if len(parameters) == 2 * L and all(f"b{l}" in parameters for l in range(1, L + 1)):
        return L
    # how deep the caller meant the network to be: of the unbroken chain W1, W2, ... and the highest layer key,
    # the one that explains the keys with fewer missing or unexpected ones (W2 deleted from 3 layers is one
    # missing key, not three unexpected ones; a stray W9 is one unexpected key, not thirteen missing ones)
    deepest = max(int(k[1:]) for k in parameters if isinstance(k, str) and _LAYER_KEY.fullmatch(k))

    def problems(depth):
        return len({f"{p}{l}" for l in range(1, depth + 1) for p in "Wb"} ^ set(parameters))

    L = deepest if problems(deepest) < problems(L) else L
    expected = {f"{p}{l}" for l in range(1, L + 1) for p in "Wb"}
    missing = sorted(expected - set(parameters), key=_layer_order)
    if missing:
        raise ValueError(f"parameters is missing {missing}; a network of {L} layers needs exactly "
                         f"'W1', 'b1', ..., 'W{L}', 'b{L}' (keys: {_key_list(parameters)})")
    extra = sorted(map(str, set(parameters) - expected))
    raise ValueError(f"parameters has unexpected keys {extra}; expected exactly 'W1', 'b1', ..., 'W{L}', 'b{L}'")


_LAYER_KEY = re.compile(r"[Wb][1-9][0-9]*")


def _layer_order(key: str) -> tuple:
    return int(key[1:]), key[0] == "b"


def _key_list(parameters) -> str:
    keys = [k for k in parameters if isinstance(k, str)]
    layer = sorted((k for k in keys if _LAYER_KEY.fullmatch(k)), key=_layer_order)
    return ", ".join(repr(k) for k in layer + sorted(set(keys) - set(layer)))


def check_parameters(parameters, *, writable: bool = False) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Validate a parameter dict and return its lists of weights and biases (not copies).

    All arrays must be finite, 2-D, of one float dtype, with chained shapes. With ``writable`` they must
    be writable float NumPy arrays already (they will be updated in place).
    """
    L = count_layers(parameters)
    Ws, bs = [], []
    for l in range(1, L + 1):
        for key in (f"W{l}", f"b{l}"):
            value = parameters[key]
            if writable:
                if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
                    raise ValueError(
                        f"parameters[{key!r}] must be a float NumPy array to be updated in place, "
                        f"got {type(value).__name__}"
                        + (f" of dtype {value.dtype}" if isinstance(value, np.ndarray) else "")
                    )
                if not value.flags.writeable:
                    raise ValueError(f"parameters[{key!r}] is read-only and cannot be updated in place")
                if value.dtype not in FLOAT_DTYPES:
                    # converting would train a copy and leave the caller's array unchanged
                    raise ValueError(
                        f"parameters[{key!r}] has dtype {value.dtype}; training and updates run in float32 or "
                        f"float64 and write into the arrays themselves: convert the parameters first, e.g. "
                        f"{{k: v.astype(np.float32) for k, v in parameters.items()}}")
            arr = as_float_array(value, f"parameters[{key!r}]")
            (Ws if key[0] == "W" else bs).append(arr)
    dtype = Ws[0].dtype
    for l in range(1, L + 1):
        W, b = Ws[l - 1], bs[l - 1]
        for key, arr in ((f"W{l}", W), (f"b{l}", b)):
            if arr.dtype != dtype:
                raise ValueError(f"parameters[{key!r}] has dtype {arr.dtype} but 'W1' has {dtype}; use one dtype")
        if b.shape != (W.shape[0], 1):
            raise ValueError(f"parameters['b{l}'] must have shape {(W.shape[0], 1)} to match W{l}, got {b.shape}")
        if l > 1 and W.shape[1] != Ws[l - 2].shape[0]:
            raise ValueError(f"parameters['W{l}'] has {W.shape[1]} columns but W{l - 1} has {Ws[l - 2].shape[0]} rows")
    return Ws, bs


def check_activations(activations, L: int) -> list[str]:
    if activations is None:
        return ["relu"] * (L - 1) + ["sigmoid"]
    if isinstance(activations, str):
        raise ValueError(f"activations must be a list of {L} names (one per layer), got the string {activations!r}")
    acts = list(activations)
    if len(acts) != L:
        raise ValueError(f"activations has {len(acts)} entries but the network has {L} layers")
    for i, a in enumerate(acts):
        check_activation(a, output=(i == L - 1), where=f"activation of layer {i + 1}")
    return acts


def check_X(X, W1: np.ndarray, name: str = "X") -> np.ndarray:
    X = as_float_array(X, name, dtype=W1.dtype)
    if X.shape[0] != W1.shape[1]:
        raise ValueError(f"{name} has {X.shape[0]} rows (features) but W1 expects {W1.shape[1]}")
    return X


def check_Y(Y, n_out: int, m: int, dtype, loss: str | None, name: str = "Y") -> np.ndarray:
    """Targets as an ``(n_out, m)`` array of ``dtype``; ``(m,)`` is allowed when ``n_out == 1``."""
    Y = as_float_array(Y, name, ndim=None, dtype=dtype)
    if Y.ndim == 1 and n_out == 1:
        Y = Y.reshape(1, -1)
    if Y.ndim != 2:
        raise ValueError(f"{name} must be 2-dimensional (n_y, m), or (m,) for one output, got shape {Y.shape}")
    if Y.shape[1] != m:
        raise ValueError(f"{name} has shape {Y.shape}: {Y.shape[1]} columns (samples) but the input has {m}")
    if Y.shape[0] != n_out:
        raise ValueError(f"{name} has shape {Y.shape}: {Y.shape[0]} rows but the output layer has {n_out} units")
    if loss in ("bce", "ce"):
        check_binary_targets(Y, name)
    if loss == "ce":
        # dZ[L] = AL - Y is the softmax + ce gradient only when every target column sums to 1
        tol = np.sqrt(np.finfo(Y.dtype).eps)
        worst = float(np.max(np.abs(Y.sum(axis=0) - 1)))
        if worst > tol:
            raise ValueError(
                f"{name} columns must sum to 1 for loss 'ce' (one distribution per sample); "
                f"the worst column is off by {worst:.3g}"
            )
    return Y


def check_layer(A, W, b, name="A_prev"):
    W = as_float_array(W, "W")
    b = as_float_array(b, "b")
    if b.dtype != W.dtype:
        raise ValueError(f"b has dtype {b.dtype} but W has {W.dtype}; use one dtype")
    if b.shape != (W.shape[0], 1):
        raise ValueError(f"b must have shape {(W.shape[0], 1)} to match W {W.shape}, got {b.shape}")
    A = as_float_array(A, name, dtype=W.dtype)
    if A.shape[0] != W.shape[1]:
        raise ValueError(f"{name} has {A.shape[0]} rows but W has {W.shape[1]} columns")
    return W, b, A


def check_linear_cache(cache):
    try:
        A_prev, W, b = cache
    except (TypeError, ValueError) as exc:
        raise ValueError("cache must be the (A_prev, W, b) tuple returned by linear_forward") from exc
    W, b, A_prev = check_layer(A_prev, W, b, name="cache A_prev")
    return A_prev, W, b


def check_caches(caches):
    if not isinstance(caches, (list, tuple)) or len(caches) == 0:
        raise ValueError("caches must be the non-empty list returned by L_model_forward")
    out = []
    prev_rows = None
    m = None
    for i, cache in enumerate(caches):
        try:
            linear_cache, Z = cache
            A_prev, W, b = linear_cache
        except (TypeError, ValueError) as exc:
            raise ValueError(f"caches[{i}] must be a ((A_prev, W, b), Z) tuple") from exc
        W, b, A_prev = check_layer(A_prev, W, b, name=f"caches[{i}] A_prev")
        Z = as_float_array(Z, f"caches[{i}] Z", dtype=W.dtype)
        if m is None:
            m = A_prev.shape[1]
        if A_prev.shape[1] != m or Z.shape != (W.shape[0], m):
            raise ValueError(f"caches[{i}] holds arrays whose shapes do not match {m} samples")
        if prev_rows is not None and W.shape[1] != prev_rows:
            raise ValueError(f"caches[{i}] W has {W.shape[1]} columns but the previous layer has {prev_rows} units")
        if i > 0 and W.dtype != out[0][0][1].dtype:
            raise ValueError(f"caches[{i}] W has dtype {W.dtype} but caches[0] has {out[0][0][1].dtype}")
        prev_rows = W.shape[0]
        out.append(((A_prev, W, b), Z))
    return out


def check_architecture(nn_architecture) -> tuple[list[int], list[str]]:
    if isinstance(nn_architecture, dict) or not hasattr(nn_architecture, "__len__") or len(nn_architecture) == 0:
        raise ValueError("nn_architecture must be a non-empty list of {'input_dim', 'output_dim', 'activation'} dicts")
    dims: list[int] = []
    acts: list[str] = []
    L = len(nn_architecture)
    for i, layer in enumerate(nn_architecture):
        if not isinstance(layer, dict):
            raise ValueError(f"nn_architecture[{i}] must be a dict, got {type(layer).__name__}")
        for key in ("input_dim", "output_dim", "activation"):
            if key not in layer:
                raise ValueError(f"nn_architecture[{i}] has no {key!r}")
        n_in = check_positive_int(layer["input_dim"], f"nn_architecture[{i}]['input_dim']")
        n_out = check_positive_int(layer["output_dim"], f"nn_architecture[{i}]['output_dim']")
        if i == 0:
            dims.append(n_in)
        elif n_in != dims[-1]:
            raise ValueError(f"nn_architecture[{i}]['input_dim'] is {n_in} but layer {i - 1} has output_dim {dims[-1]}")
        dims.append(n_out)
        acts.append(check_activation(layer["activation"], output=(i == L - 1), where=f"activation of layer {i + 1}"))
    return dims, acts


def check_params_architecture(params_values, nn_architecture):
    dims, acts = check_architecture(nn_architecture)
    Ws, bs = check_parameters(params_values)
    if len(Ws) != len(acts):
        raise ValueError(f"params_values has {len(Ws)} layers but nn_architecture has {len(acts)}")
    for l, W in enumerate(Ws, start=1):
        if W.shape != (dims[l], dims[l - 1]):
            raise ValueError(
                f"params_values['W{l}'] has shape {W.shape} but nn_architecture says {(dims[l], dims[l - 1])}"
            )
    return Ws, bs, acts


def check_update_steps(parameters, grads, learning_rate):
    """Validate an SGD step: the ``(parameter, gradient)`` pairs (gradients in the parameters' dtype) and lr."""
    Ws, bs = check_parameters(parameters, writable=True)
    lr = check_positive_float(learning_rate, "learning_rate")
    if not isinstance(grads, dict):
        raise ValueError(f"grads must be a dict with keys 'dW1', 'db1', ..., got {type(grads).__name__}")
    steps = []
    for l in range(1, len(Ws) + 1):
        for key, P in ((f"W{l}", Ws[l - 1]), (f"b{l}", bs[l - 1])):
            if "d" + key not in grads:
                raise ValueError(f"grads is missing 'd{key}'")
            G = as_float_array(grads["d" + key], f"grads['d{key}']", dtype=P.dtype)
            if G.shape != P.shape:
                raise ValueError(f"grads['d{key}'] has shape {G.shape} but parameters[{key!r}] has {P.shape}")
            steps.append((P, G))
    return steps, lr
