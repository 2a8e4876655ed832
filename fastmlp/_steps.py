"""The fast per-step path shared by :mod:`fastmlp.functional`, :mod:`fastmlp.course` and :mod:`fastmlp.architecture`.

A user's own training loop calls forward, cost, backward and update once per step, usually on a small
network, so what costs is everything around the arithmetic: validation, conversions, copies, Python
objects. This module keeps that O(1) per call for the arrays a loop passes again and again:

- :class:`Packed` parameters: a ``{"W1", "b1", ...}`` dict whose arrays are views into one flat vector in
  the kernels' layout. The dialects' initialisers and updates return them, so a step hands the flat vector
  to the kernels as it is (no copy, no ``Network``). Whether a dict is still packed is an identity check of
  its items; any other dict goes the slow way (validated, then packed into a copy).
- :class:`Caches` carry the kernel's forward buffer, so backward reads it as it is.
- :class:`Grads` carry their flat gradient, so an update is one compiled call.
- Checks per call are structural (types, dtypes, shapes, contiguity). Finiteness is checked by the kernels,
  which read the data anyway; when they report a problem, the full validation of :mod:`fastmlp.reference`
  runs and raises its usual error (or, when the inputs were valid and the arithmetic overflowed, the
  result is returned as it is, as before).

Every function here takes the dialect's choices (activations, relu' at 0, key order, copy or in-place
update) as arguments; the dialect modules hold the names and signatures.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from fastmlp import _checks, _engine
from fastmlp._checks import as_float_array, check_positive_float

_LAYOUTS: dict = {}
_BLOCKS: dict = {}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def layout_for(sizes: tuple, activations: tuple, dtype, relu_grad_at_zero: int) -> _engine.StepLayout:
    """The cached :class:`fastmlp._engine.StepLayout` of an architecture."""
    key = (sizes, activations, dtype, relu_grad_at_zero)
    layout = _LAYOUTS.get(key)
    if layout is None:
        if len(_LAYOUTS) > 64:
            _LAYOUTS.clear()
        layout = _LAYOUTS[key] = _engine.StepLayout(sizes, activations, dtype, relu_grad_at_zero)
        layout.grad_plans = {}
        layout.siblings = {}
    return layout


def with_relu_grad_at_zero(layout, relu_grad_at_zero):
    """``layout`` with relu' at 0 set to ``relu_grad_at_zero`` (cached on the layout)."""
    if layout.relu_grad_at_zero == relu_grad_at_zero:
        return layout
    other = layout.siblings.get(relu_grad_at_zero)
    if other is None:
        other = layout.siblings[relu_grad_at_zero] = layout_for(layout.sizes, layout.activations, layout.dtype,
                                                                relu_grad_at_zero)
    return other


def _param_blocks(sizes: tuple) -> tuple:
    """``(keys, blocks)``: ``("W1", "b1", ...)`` and their ``(slice, shape)`` in a flat vector."""
    found = _BLOCKS.get(sizes)
    if found is None:
        if len(_BLOCKS) > 64:
            _BLOCKS.clear()
        layout = _engine.StepLayout(sizes, ["linear"] * (len(sizes) - 1), np.float64)
        keys = tuple(f"{k}{l}" for l in range(1, len(sizes)) for k in "Wb")
        found = _BLOCKS[sizes] = (keys, tuple(layout.param_blocks))
    return found


def check_slope(leaky_slope, dtype) -> float:
    """``leaky_slope`` checked: finite, also in ``dtype`` (the full check, with its errors, unless plainly so)."""
    if type(leaky_slope) is float and -3e38 < leaky_slope < 3e38:
        return leaky_slope
    return _checks.check_slope(leaky_slope, dtype)


def check_learning_rate(learning_rate) -> float:
    if type(learning_rate) is float and 0 < learning_rate < math.inf:
        return learning_rate
    return check_positive_float(learning_rate, "learning_rate")


# --- packed parameters and gradients -------------------------------------------------------------------
class Packed(dict):
    """Course-style parameters ``{"W1": (n1, n0), "b1": (n1, 1), ...}`` that are views into one flat vector.

    A plain ``dict`` in every way a user can see; ``copy.deepcopy`` gives a packed copy, ``pickle`` and
    ``copy.copy`` a plain dict.
    """

    __slots__ = ("flat", "sizes", "_items", "_Ws", "_bs", "_layout", "_reordered")

    def __reduce__(self):
        return dict, (dict(self),)

    def __deepcopy__(self, memo):
        return packed_view(self.flat.copy(), self.sizes, order=tuple(self))


class Grads(dict):
    """Gradients ``{"dW1", "db1", ..., "dA0", ...}`` whose ``dW`` / ``db`` are views into one flat vector."""

    __slots__ = ("flat", "sizes", "_items")

    def __reduce__(self):
        return dict, (dict(self),)

    def __deepcopy__(self, memo):
        return {k: v.copy() for k, v in self.items()}


def packed_view(flat: np.ndarray, sizes: tuple, order=None) -> Packed:
    """A :class:`Packed` dict of views into ``flat`` (keys ``W1, b1, ...``, or in the order ``order``)."""
    keys, blocks = _param_blocks(sizes)
    views = [flat[sl].reshape(shape) for sl, shape in blocks]
    p = Packed(zip(keys, views, strict=True))
    reordered = order is not None and tuple(order) != keys
    if reordered:
        p = Packed((key, p[key]) for key in order)
    p.flat, p.sizes, p._items, p._Ws, p._bs = flat, sizes, tuple(p.items()), views[0::2], views[1::2]
    p._layout, p._reordered = None, reordered
    return p


def pack(Ws, bs, dtype) -> Packed:
    """A :class:`Packed` copy of lists of ``W`` ``(n_out, n_in)`` and ``b`` ``(n_out, 1)`` arrays."""
    sizes = (int(Ws[0].shape[1]),) + tuple(int(W.shape[0]) for W in Ws)
    flat = np.empty(int(_engine.param_offsets(sizes)[-1]), dtype)
    p = packed_view(flat, sizes)
    for W, b, my_W, my_b in zip(Ws, bs, p._Ws, p._bs, strict=True):
        my_W[...] = W
        my_b[...] = np.reshape(b, my_b.shape)
    return p


def as_packed(parameters):
    """``parameters`` itself when it is a :class:`Packed` dict whose arrays are still its own views, else None."""
    if type(parameters) is Packed:
        items = parameters._items
        if len(parameters) == len(items):
            get = parameters.get
            for key, value in items:
                if get(key) is not value:
                    return None
            return parameters
    return None


def _as_grads(grads, sizes, dtype):
    if type(grads) is Grads and grads.sizes == sizes and grads.flat.dtype == dtype:
        get = grads.get
        for key, value in grads._items:
            if get(key) is not value:
                return None
        return grads
    return None


# --- forward ------------------------------------------------------------------------------------------
class Pass:
    """What a forward pass leaves for backward: the kernel's buffer ``ZA`` ``(2 S, m)``, the input the kernel
    read ``Xk``, the flat parameters (None when they were a copy of a plain dict), the layout, the output
    view ``AL`` and the parameters' ``W`` / ``b`` arrays."""

    __slots__ = ("ZA", "Xk", "flat", "layout", "AL", "Ws", "bs")


class Caches(list):
    """The list of ``((A_prev, W, b), Z)`` tuples of a forward pass, which also carries its :class:`Pass`."""

    __slots__ = ("_entries", "_pass")

    def __reduce__(self):
        return list, (list(self),)


_DEFAULT_ACTS: dict = {}
_CHECKED_ACTS: set = set()


def _activations(activations, n_layers, default_hidden, default_output) -> tuple:
    if activations is None:
        key = (n_layers, default_hidden, default_output)
        acts = _DEFAULT_ACTS.get(key)
        if acts is None:
            acts = _DEFAULT_ACTS[key] = (default_hidden,) * (n_layers - 1) + (default_output,)
        return acts
    if type(activations) in (list, tuple):
        acts = tuple(activations)
        if (acts, n_layers) in _CHECKED_ACTS:
            return acts
    acts = tuple(_checks.check_activations(activations, n_layers))
    if len(_CHECKED_ACTS) > 256:
        _CHECKED_ACTS.clear()
    _CHECKED_ACTS.add((acts, n_layers))
    return acts


def forward_pass(X, parameters, activations, leaky_slope, relu_grad_at_zero, default_hidden="relu",
                 default_output="sigmoid") -> Pass:
    """The compiled forward pass behind :func:`forward` (``activations`` None: the defaults)."""
    p = as_packed(parameters)
    if p is not None:
        Ws, bs, flat = p._Ws, p._bs, p.flat
        cached = p._layout
        if cached is not None and activations is cached[0] and relu_grad_at_zero == cached[1]:
            layout = cached[2]  # the same activations object (a tuple, or None) as last time: same layout
        else:
            layout = layout_for(p.sizes, _activations(activations, len(Ws), default_hidden, default_output),
                                flat.dtype, relu_grad_at_zero)
            if activations is None or type(activations) is tuple:
                p._layout = (activations, relu_grad_at_zero, layout)
    else:
        Ws, bs = _checks.check_parameters(parameters)
        sizes = (int(Ws[0].shape[1]),) + tuple(int(W.shape[0]) for W in Ws)
        flat = pack(Ws, bs, Ws[0].dtype).flat
        layout = layout_for(sizes, _activations(activations, len(Ws), default_hidden, default_output), flat.dtype,
                            relu_grad_at_zero)
    dtype = flat.dtype
    slope = check_slope(leaky_slope, dtype)
    n0 = layout.sizes[0]
    if (type(X) is np.ndarray and X.dtype == dtype and X.ndim == 2 and X.shape[0] == n0 and X.shape[1]
            and X.flags.c_contiguous and X.flags.writeable):
        Xk = X
    elif type(X) is np.ndarray and X.dtype.kind in "biu" and X.ndim == 2 and X.shape[0] == n0 and X.shape[1]:
        Xk = X.astype(dtype)  # integers: always finite, one conversion (a C-contiguous copy)
    else:
        Xk = _engine.kernel_array(_checks.check_X(X, Ws[0]))
    ZA, finite = _engine.step_forward(layout, Xk, flat, slope)
    if not finite:  # a non-finite input, or an overflow: the full checks raise for the former
        _checks.check_X(X, Ws[0])
        _checks.check_parameters(parameters)
    result = Pass()
    result.ZA, result.Xk, result.flat, result.layout, result.AL, result.Ws, result.bs = (
        ZA, Xk, flat if p is not None else None, layout, ZA[layout.a_rows[-1]], Ws, bs)
    return result


def forward(X, parameters, activations, leaky_slope, relu_grad_at_zero, *, default_hidden="relu",
            default_output="sigmoid"):
    """``(AL, caches)`` of a forward pass; see :func:`fastmlp.functional.L_model_forward`.

    ``activations`` None means ``default_hidden`` for the hidden layers and ``default_output`` last.
    """
    fp = forward_pass(X, parameters, activations, leaky_slope, relu_grad_at_zero, default_hidden, default_output)
    ZA, layout, Ws, bs = fp.ZA, fp.layout, fp.Ws, fp.bs
    caches = Caches()
    A_prev = X  # the caller's own array, as the course code caches it
    a_rows = layout.a_rows
    for l, z_rows in enumerate(layout.z_rows):
        caches.append(((A_prev, Ws[l], bs[l]), ZA[z_rows]))
        A_prev = ZA[a_rows[l]] if l < layout.n_layers - 1 else fp.AL
    caches._entries = tuple(caches)
    caches._pass = fp
    return fp.AL, caches


# --- backward -----------------------------------------------------------------------------------------
def _own_pass(caches, AL, activations):
    """The :class:`Pass` behind ``caches`` when they are our forward pass's for this ``AL``, unchanged since,
    run with packed parameters and these activations; else None. ``caches`` may also be a :class:`Pass`."""
    if type(caches) is Pass:
        fp = caches
        caches = None
    elif type(caches) is Caches:
        fp = caches._pass
    else:
        return None
    if AL is not fp.AL or fp.flat is None:
        return None
    layout = fp.layout
    if activations is not None and (type(activations) not in (list, tuple)
                                    or tuple(activations) != layout.activations):
        return None
    if caches is not None:
        entries = caches._entries
        if len(caches) != len(entries):
            return None
        for mine, theirs in zip(caches, entries, strict=True):
            if mine is not theirs:
                return None
    return fp


def backward(AL, Y, caches, activations, loss, leaky_slope, relu_grad_at_zero, *, key_order="reference",
             default_hidden="relu", default_output="sigmoid"):
    """Gradients of the mean cost; see :func:`fastmlp.functional.L_model_backward`.

    ``key_order``: ``"reference"`` (``dW{l}, db{l}, dA{l-1}`` for l = L..1), ``"course"`` (``dA{l-1}, dW{l},
    db{l}``) or ``"architecture"`` (``dW{l}, db{l}`` only).
    """
    own = _own_pass(caches, AL, activations)
    if own is not None:
        layout, ZA, Xk, flat = own.layout, own.ZA, own.Xk, own.flat
        if layout.relu_grad_at_zero != relu_grad_at_zero:  # the forward pass does not depend on it
            layout = with_relu_grad_at_zero(layout, relu_grad_at_zero)
    else:
        layout, ZA, Xk, flat = _gather(AL, caches, activations, relu_grad_at_zero, default_hidden, default_output)
    acts = layout.activations
    slope = check_slope(leaky_slope, layout.dtype)
    if not (loss == "bce" and acts[-1] == "sigmoid"):
        _check_loss_output(loss, acts[-1])
    dtype = layout.dtype
    m = ZA.shape[1]
    n_out = layout.sizes[-1]
    if (loss != "ce" and type(Y) is np.ndarray and Y.dtype == dtype and Y.shape == (n_out, m)
            and Y.flags.c_contiguous):
        Yk = Y
    else:
        Yk = _engine.kernel_array(_checks.check_Y(Y, n_out, m, dtype, loss))
    out, status = _engine.step_backward(layout, Xk, Yk, flat, slope, loss, ZA)
    if status:  # invalid targets or inputs raise here; an overflow is returned as it is
        _checks.check_Y(Y, n_out, m, dtype, loss)
        _checks.check_caches(caches)
        as_float_array(AL, "AL")
    arrays = [out[sl].reshape(shape) for sl, shape in layout.param_blocks]
    dA = out[layout.n_params:].reshape(layout.dA_height, m)
    arrays += [dA[rows] for rows in layout.dA_rows]
    keys, order, param_keys = _grad_plan(layout, key_order)
    g = Grads(zip(keys, [arrays[i] for i in order], strict=True))
    g.flat, g.sizes, g._items = out[:layout.n_params], layout.sizes, tuple(zip(param_keys, arrays, strict=False))
    return g


def _grad_plan(layout, key_order):
    """``(keys, order, param_keys)`` of a gradient dict: its keys in ``key_order``, the index of each in the
    list ``[dW1, db1, ..., dWL, dbL, dA0, ..., dA{L-1}]``, and ``("dW1", "db1", ...)``."""
    plans = layout.grad_plans
    plan = plans.get(key_order)
    if plan is None:
        L = layout.n_layers
        names = [f"d{k}{l}" for l in range(1, L + 1) for k in "Wb"] + [f"dA{l}" for l in range(L)]
        wanted = []
        for l in range(L, 0, -1):
            if key_order == "course":
                wanted += [f"dA{l - 1}", f"dW{l}", f"db{l}"]
            else:
                wanted += [f"dW{l}", f"db{l}"] + ([f"dA{l - 1}"] if key_order == "reference" else [])
        plan = plans[key_order] = (tuple(wanted), tuple(names.index(k) for k in wanted), tuple(names[:2 * L]))
    return plan


def _gather(AL, caches, activations, relu_grad_at_zero, default_hidden, default_output):
    """Layout, forward buffer, input and flat parameters of caches from elsewhere (validated, copied)."""
    checked = _checks.check_caches(caches)
    acts = _activations(activations, len(checked), default_hidden, default_output)
    Ws = [c[0][1] for c in checked]
    bs = [c[0][2] for c in checked]
    dtype = Ws[-1].dtype
    m = checked[0][0][0].shape[1]
    AL_checked = as_float_array(AL, "AL", dtype=dtype)
    if AL_checked.shape != (Ws[-1].shape[0], m):
        raise ValueError(f"AL must have shape {(Ws[-1].shape[0], m)} to match the caches, got {AL_checked.shape}")
    p = pack(Ws, bs, dtype)
    layout = layout_for(p.sizes, acts, dtype, relu_grad_at_zero)
    if type(caches) is Caches and AL is caches._pass.AL and caches._pass.layout.dtype == dtype:
        ZA = caches._pass.ZA  # our own forward buffer, with parameters that were a copy: re-packed above
    else:
        ZA = np.concatenate([np.asarray(c[1], dtype).reshape(-1, m) for c in checked]
                            + [np.asarray(c[0][0], dtype).reshape(-1, m) for c in checked[1:]]
                            + [AL_checked.reshape(-1, m)])
    return layout, ZA, _engine.kernel_array(checked[0][0][0], dtype), p.flat


def _check_loss_output(loss, output):
    _checks.check_loss(loss)
    _checks.check_loss_output(loss, output)


# --- update and cost ------------------------------------------------------------------------------------
def update(parameters, grads, learning_rate, *, in_place: bool):
    """One SGD step. ``in_place``: the arrays of ``parameters`` are updated and the same dict returned;
    otherwise a new dict is returned and ``parameters`` and its arrays are left untouched."""
    lr = check_learning_rate(learning_rate)
    p = as_packed(parameters)
    g = _as_grads(grads, p.sizes, p.flat.dtype) if p is not None else None
    if g is not None:
        if in_place:
            if _engine.scaled_difference(p.flat, g.flat, lr, p.flat):
                return parameters
        else:
            out = np.empty_like(p.flat)
            if _engine.scaled_difference(p.flat, g.flat, lr, out):
                new = packed_view(out, p.sizes, order=tuple(parameters) if p._reordered else None)
                new._layout = p._layout
                return new
    steps, lr = _checks.check_update_steps(parameters, grads, lr)  # raises on bad input
    if in_place:
        for P, G in steps:
            _engine.subtract_scaled(P, G, lr)
        return parameters
    new = copy.deepcopy(dict(parameters))
    for l in range(1, len(steps) // 2 + 1):
        for key, (P, G) in ((f"W{l}", steps[2 * l - 2]), (f"b{l}", steps[2 * l - 1])):
            new[key] = P - P.dtype.type(lr) * G
    return new


def bce_cost(AL, Y) -> float | None:
    """The cross-entropy cost of probabilities ``AL`` against ``Y`` compiled, or None when the inputs are not
    two C-contiguous arrays of one float dtype and shape with valid values (the caller's full path then runs)."""
    if (type(AL) is np.ndarray and type(Y) is np.ndarray and AL.dtype == Y.dtype and AL.ndim == 2
            and AL.shape == Y.shape and AL.dtype in _FLOATS and AL.size and AL.flags.c_contiguous
            and Y.flags.c_contiguous):
        cost = _engine.bce_of_probabilities(AL, Y)
        if cost == cost:
            return cost
    return None
