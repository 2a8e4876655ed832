"""The fast per-step path shared by :mod:`fastmlp.functional`, :mod:`fastmlp.course` and :mod:`fastmlp.architecture`.

A user's own training loop calls forward, cost, backward and update once per step, usually on a small
network, so what costs is everything around the arithmetic: validation, conversions, copies, Python
objects. This module keeps that O(1) per call for the arrays a loop passes again and again:

- :class:`Packed` parameters: a ``{"W1", "b1", ...}`` dict whose arrays are views into one flat vector in
  the kernels' layout. The dialects' initialisers and updates return them, so a step hands the flat vector
  to the kernels as it is (no copy, no ``Network``). Whether a dict is still packed is O(1) while nothing
  changed it through its methods (:class:`Watched`), an identity check of its items after. A plain dict of
  float arrays gets O(L) structural checks and a copy into that layout per kernel call
  (:func:`plain_parameters`); anything else is validated in full (converted, or refused with its error).
- :class:`Caches` carry the kernel's forward buffer, so backward reads it as it is.
- :class:`Grads` carry their flat gradient, so an update is one compiled call; on a wide input layer
  ``dA0`` is computed only when it is read (:class:`LazyGrads`).
- Kernels are called through their compiled entry points when the arguments are known to have exactly their
  types (``_ENTRIES``).
- Checks per call are structural (types, dtypes, shapes, contiguity). Finiteness is checked by the kernels,
  which read the data anyway; when they report a problem, the full validation of :mod:`fastmlp.reference`
  runs and raises its usual error (or, when the inputs were valid and the arithmetic overflowed, the
  result is returned as it is, as before).

Every function here takes the dialect's choices (activations, relu' at 0, key order, copy or in-place
update) as arguments; the dialect modules hold the names and signatures.
"""

from __future__ import annotations

import copy
import operator
import sys
from _thread import get_ident as _get_ident

import numpy as np

from fastmlp import _checks, _config, _engine
from fastmlp._checks import as_float_array, check_positive_float

# the per-step kernels, called as they are (a wrapper costs a noticeable part of a small network's step):
# every call below passes what :func:`fastmlp._engine.step_forward` / ``step_backward`` document
_forward_kernel = _engine.step_forward_kernel
_backward_kernel = _engine.step_backward_kernel
_forward_arrays_kernel = _engine.step_forward_arrays_kernel
_backward_arrays_kernel = _engine.step_backward_arrays_kernel
_update_arrays_kernel = _engine.update_arrays_kernel
_scaled_difference = _engine.scaled_difference
_bce_of_probabilities = _engine.bce_of_probabilities
_LOSS_CODES = _engine.LOSS_CODES

# Calling a compiled kernel through its dispatcher first resolves the types of its arguments, which on a tiny
# network costs about a quarter of the call. Where every argument is known to have exactly the types of one
# compiled version -- C-contiguous, aligned, writable arrays of the layout's dtype that this module made or
# checked so, Python floats, ints and bools -- that version's entry point is called instead: the same call the
# dispatcher would make next. ``_ENTRIES`` maps ``(kernel, dtype)`` to it, learnt from the first such call.
_ENTRIES: dict = {}


def _call_arrays(kernel, direct, dtype, args, Wb, layout=None, slot=0):
    """``kernel(*args)`` for a kernel that takes the caller's own parameter arrays ``Wb`` (``(W1, b1, ...)``,
    part of ``args``, checked by :func:`plain_arrays` or :func:`_arrays_still`: NumPy arrays, 2-D, of ``dtype``):
    through its entry point when ``direct`` (the other arrays of ``args`` have exactly their compiled types)
    and that is known -- the kernel itself checks the arrays' shapes, strides and alignment, which the caller
    can change at any time -- else through the dispatcher when every array of ``Wb`` has exactly the compiled
    type (C-contiguous, aligned, writable). None otherwise: the caller copies them instead."""
    if direct:
        run = _ENTRIES.get((kernel, (dtype, len(Wb))))
        if run is not None:
            return run(*args)  # (a _guarded_entry: views of its own while other threads run)
    if not _alone():  # (another thread can reshape the caller's arrays: the kernel gets views of its own)
        private = _private(args)
        Wb = private[next(i for i, a in enumerate(args) if a is Wb)]
        args = private
    for a in Wb:
        flags = a.flags
        if not (flags.c_contiguous and flags.aligned and flags.writeable):
            return None
    status = _dispatch(kernel, args)  # (re-typed since they were checked: a ValueError, not Numba's TypingError)
    if direct:
        _learn_entry(kernel, (dtype, len(Wb)), args)
        if layout is not None:  # (where the caller looks first)
            layout.arrays_entries[slot] = _ENTRIES[kernel, (dtype, len(Wb))]
    return status


def _arrays_still(Wb, dtype):
    """``Wb``, arrays :func:`_exact_arrays` found exact before, when they still are, else None: the caller can
    change their shape, dtype and flags in place, not their type."""
    exact = _EXACT.get(len(Wb))
    found = exact.get(_fingerprint(Wb)) if exact is not None else None
    if found is None or found[0] != dtype or tuple(map(_DTYPE, Wb)) != found[2]:
        return None
    return Wb


def _learn_entry(kernel, dtype, args) -> None:
    """Note ``kernel``'s compiled entry point for the types of ``args`` (a call just made with them), guarded
    by :func:`_guarded_entry`."""
    try:
        from numba import typeof

        entry = kernel.overloads[tuple(map(typeof, args))].entry_point
        types = None if kernel in _UNCHECKED else _fingerprint(args)
    except (AttributeError, KeyError, TypeError, NotImplementedError):  # NUMBA_DISABLE_JIT: plain functions
        _ENTRIES[kernel, dtype] = kernel
        return
    _ENTRIES[kernel, dtype] = _guarded_entry(kernel, entry, types)


#: the kernels called with arrays only this module can reach (flat vectors it made, views whose ``base`` is
#: another array) or the caller's checked right before the call, with no code of anyone's in between: their
#: entry points are called without taking the fingerprint again
_UNCHECKED = {_scaled_difference, _bce_of_probabilities}


try:  # the interpreter's threads: those ``threading`` lists, and those ``_thread`` runs
    from _thread import _count as _RUNNING
    from threading import _active as _THREADS
except ImportError:  # pragma: no cover - another Python
    _THREADS = {None: None, 0: None}  # (two: always the dispatcher)

    def _RUNNING():
        return 0


def _alone() -> bool:
    """Whether this is the interpreter's only thread: only then is a compiled entry point called on the arrays
    checked a moment before, and are results kept in lists shared by all callers (otherwise another thread
    could reshape an array in between, or take a result in the moment it is back in its list before it is
    handed out). While other threads run, the kernels get views made for the call (:func:`_private`) and
    each thread keeps its own results. ``_thread._count()`` counts every thread started by
    ``_thread.start_new_thread`` (``threading``'s too) from before it runs any Python code until it ends; those
    started directly are not listed by ``threading``, which lists the main thread and the foreign threads that
    asked it for their ``Thread``. (A ``Thread`` in ``threading._limbo`` is being started by a thread that
    ``start()`` blocks until the new one runs: either this one, not in fastmlp meanwhile, or one counted here.)"""
    return len(_THREADS) + _RUNNING() == 1


def _thread_key():
    """None while this is the interpreter's only thread, else this thread's identifier: whose kept results a
    list holds (see :func:`_reusable`) and whose a hot path's record is."""
    return None if len(_THREADS) + _RUNNING() == 1 else _get_ident()


def _changed_while_used():
    """Raise the error for a kernel that found an array of other shapes than checked a moment before."""
    raise ValueError("an array changed its shape while fastmlp was using it (another thread, or code run during "
                     "the call?)")


def _dispatch(kernel, args):
    """``kernel(*args)`` through Numba's dispatcher; arguments Numba cannot type for it (an array reshaped or
    re-typed in place while in use) give a ValueError."""
    try:
        return kernel(*args)
    except _TypingError as exc:
        raise ValueError("an array changed its number of dimensions or its dtype while fastmlp was using it "
                         f"(another thread, or code run during the call?): {str(exc).splitlines()[0]}") from None


_VIEW = np.ndarray.view


def _private(args) -> tuple:
    """``args`` with every NumPy array in it (also in a tuple of them) replaced by a new view of it: an object
    that no other thread can reach, so its shape, strides and dtype stay those it was made with until the
    kernel has read them, whatever another thread does to the caller's array meanwhile (the memory is the
    same: results and in-place updates land where they would have)."""
    out = []
    for a in args:
        kind = type(a)
        if kind is np.ndarray:
            a = _VIEW(a)
        elif kind is tuple:
            a = tuple([_VIEW(x) if type(x) is np.ndarray else x for x in a])
        out.append(a)
    return tuple(out)


try:
    from numba.core.errors import TypingError as _TypingError
except ImportError:  # pragma: no cover - NUMBA_DISABLE_JIT still has it; another Numba may not
    class _TypingError(Exception):
        pass


def _guarded_entry(kernel, entry, types):
    """``kernel``'s compiled ``entry`` point, for arguments of the Numba type fingerprint ``types`` (None: see
    :data:`_UNCHECKED`).

    An entry point trusts its arguments' types: an array of more dimensions than compiled for overruns the C
    stack as it is unpacked, one of a smaller dtype is read past its end. The callers' checks run earlier, and
    in between the caller's own code can run (a float subclass converted, a finaliser, another thread) and
    reshape or re-type an array in place (its own, or one of fastmlp's it reached). So the fingerprint of all
    the arguments (as cheap as that of the first few) is taken again just before the call. While other threads
    run, the interpreter may switch to one of them between those two steps (or while Numba's dispatcher works
    out a type in Python): the arrays are then first replaced by views made for this call (:func:`_private`),
    which no other thread can reach, so what is fingerprinted is what the kernel unpacks.
    """

    def run(*args):
        if not _alone():
            args = _private(args)
        try:
            if _fingerprint(args) == types:
                return entry(*args)
        except NotImplementedError:  # (a value Numba has no type for: the dispatcher says so)
            pass
        return _dispatch(kernel, args)

    def run_unchecked(*args):
        if not _alone():
            return _dispatch(kernel, _private(args))
        return entry(*args)

    if types is None:
        run = run_unchecked

    run.__doc__ = f"{kernel.__name__} through its entry point, for exactly the types it was compiled for"
    run.entry = entry
    return run
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)

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
        layout.rings = {}
        layout.arrays_entries = [None, None]  # the entry points of the array kernels (forward, backward)
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


#: ``len(Wb) -> [float32 entry, float64 entry]`` of :func:`_kernels._update_arrays` (see ``_ENTRIES``)
_UPDATE_ENTRIES: dict = {}
_UPDATE_SEEN: set = set()
_NO_ENTRY = (None, None)
#: the ``out`` of an in-place :func:`_kernels._update_arrays` (empty), per dtype
_NO_OUTPUT = {_F32: np.empty(0, _F32), _F64: np.empty(0, _F64)}
_PARAM_SPECS: dict = {}


def _param_spec(sizes: tuple) -> np.ndarray:
    """The ``spec`` of a :class:`fastmlp._engine.StepLayout` of ``sizes`` (its activation codes unused)."""
    spec = _PARAM_SPECS.get(sizes)
    if spec is None:
        if len(_PARAM_SPECS) > 64:
            _PARAM_SPECS.clear()
        spec = _PARAM_SPECS[sizes] = _engine.StepLayout(sizes, ["linear"] * (len(sizes) - 1), np.float64).spec
    return spec


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


# --- packed parameters and gradients -------------------------------------------------------------------
class Watched(dict):
    """A dict that notes a change made through any of its methods (``_changed`` becomes True), so that a check
    that it still holds what it was made with costs O(1) until then. Its maker sets ``_changed = False`` once
    it has recorded the contents; a check that finds them unchanged sets it again."""

    __slots__ = ("_changed",)

    def __init__(self, *args, **kwargs):
        dict.__init__(self, *args, **kwargs)
        self._changed = True

    def __setitem__(self, key, value):
        self._changed = True
        dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        self._changed = True
        dict.__delitem__(self, key)

    def __ior__(self, other):
        self._changed = True
        return dict.__ior__(self, other)

    def update(self, *args, **kwargs):
        self._changed = True
        dict.update(self, *args, **kwargs)

    def setdefault(self, *args):
        self._changed = True
        return dict.setdefault(self, *args)

    def pop(self, *args):
        self._changed = True
        return dict.pop(self, *args)

    def popitem(self):
        self._changed = True
        return dict.popitem(self)

    def clear(self):
        self._changed = True
        dict.clear(self)


def unchanged(d, items) -> bool:
    """Whether the :class:`Watched` dict ``d`` holds exactly ``items`` (``(key, value)`` pairs, values by
    identity): O(1) while nothing changed it; then it compares, and marks it unchanged when it is."""
    if not d._changed:
        return True
    if len(d) != len(items):
        return False
    get = d.get
    for key, value in items:
        if get(key) is not value:
            return False
    d._changed = False
    return True


class Packed(Watched):
    """Course-style parameters ``{"W1": (n1, n0), "b1": (n1, 1), ...}`` that are views into one flat vector.

    A plain ``dict`` in every way a user can see; ``copy.deepcopy`` gives a packed copy, ``pickle`` and
    ``copy.copy`` a plain dict.
    """

    __slots__ = ("flat", "sizes", "_items", "_Ws", "_bs", "_layout", "_reordered", "_views")

    def __reduce__(self):
        return dict, (dict(self),)

    def __deepcopy__(self, memo):
        if as_packed(self) is None:  # no longer only its own views: an ordinary deep copy
            return {k: copy.deepcopy(v, memo) for k, v in self.items()}
        return packed_view(self.flat.copy(), self.sizes, order=tuple(self))


class Grads(Watched):
    """Gradients ``{"dW1", "db1", ..., "dA0", ...}`` whose ``dW`` / ``db`` are views into one flat vector."""

    __slots__ = ("flat", "sizes", "_items", "_Wb", "_spec")

    def __reduce__(self):
        return dict, (dict(self),)

    def __deepcopy__(self, memo):
        return {k: copy.deepcopy(v, memo) for k, v in self.items()}


class _Pending:
    """What a :class:`LazyGrads` holds under ``"dA0"`` until that is first asked for (never handed out)."""

    __slots__ = ()

    def __repr__(self):
        return "<dA0, computed when first read>"


_PENDING = _Pending()


class LazyGrads(Grads):
    """:class:`Grads` whose ``"dA0"`` (``W1.T @ dZ1``, ``(n0, m)``: on a wide input layer as costly as the rest
    of the backward pass, and needed by no update) is computed when it is first read.

    It holds a copy of ``W1`` as it was at the backward pass and ``dZ1``, so the value is the one an eager
    computation would have given whatever happens to the parameters meanwhile. Reading the key, ``get``,
    ``values``, ``items``, comparing, printing, copying, pickling, merging into another dict (``dict(g)``,
    ``{**g}``, ``f(**g)``, ``d.update(g)``, ``|``) all see the computed array; the keys, their order and
    ``len`` are those of an eager result throughout.
    """

    __slots__ = ("_dA0",)

    def _resolve(self):
        """The value of ``"dA0"``, computed and stored now if it was still pending."""
        state = self._dA0
        if state is not None:
            W1, dZ1 = state
            if dict.get(self, "dA0") is _PENDING:
                dict.__setitem__(self, "dA0", np.dot(W1.T, dZ1))
            self._dA0 = None
        return dict.__getitem__(self, "dA0")

    def _resolved(self):
        if self._dA0 is not None:
            self._resolve()
        return self

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        return self._resolve() if value is _PENDING else value

    def get(self, key, default=None):
        value = dict.get(self, key, default)
        return self._resolve() if value is _PENDING else value

    def __iter__(self):  # (defined, so that dict(g), {**g}, f(**g) and d.update(g) go through __getitem__)
        return dict.__iter__(self)

    def values(self):
        return dict.values(self._resolved())

    def items(self):
        return dict.items(self._resolved())

    def copy(self):
        return dict(self._resolved())

    def pop(self, *args):
        return Watched.pop(self._resolved(), *args)

    def popitem(self):
        return Watched.popitem(self._resolved())

    def setdefault(self, *args):
        return Watched.setdefault(self._resolved(), *args)

    def __eq__(self, other):
        return dict.__eq__(self._resolved(), other)

    def __ne__(self, other):
        return dict.__ne__(self._resolved(), other)

    __hash__ = None

    def __repr__(self):
        return dict.__repr__(self._resolved())

    def __or__(self, other):
        return dict.__or__(self._resolved(), other)

    def __ror__(self, other):
        return dict.__ror__(self._resolved(), other)

    def __reduce__(self):
        return dict, (dict(self._resolved()),)


def packed_view(flat: np.ndarray, sizes: tuple, order=None) -> Packed:
    """A :class:`Packed` dict of views into ``flat`` (keys ``W1, b1, ...``, or in the order ``order``)."""
    keys, blocks = _param_blocks(sizes)
    if flat.base is None:  # (the kernels get a view: the arrays' ``base``, which the caller can reshape or re-type
        flat = flat[:]     # in place, is then the buffer behind it, not the vector the kernels trust)
    views = [flat[sl].reshape(shape) for sl, shape in blocks]
    p = Packed(zip(keys, views, strict=True))
    reordered = order is not None and tuple(order) != keys
    if reordered:
        p = Packed((key, p[key]) for key in order)
    p.flat, p.sizes, p._items, p._Ws, p._bs = flat, sizes, tuple(p.items()), views[0::2], views[1::2]
    p._views = tuple(views)
    p._layout, p._reordered, p._changed = None, reordered, False
    return p


def _new_packed(flat, sizes, order):
    p = packed_view(flat, sizes, order)
    return p, p.flat, p._Ws + p._bs


_PACKED_RINGS: dict = {}


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
    if type(parameters) is Packed and unchanged(parameters, parameters._items):
        return parameters
    return None


_PLAIN_KEYS: dict = {}


def plain_parameters(parameters):
    """``(Ws, bs)`` (lists) of a parameter dict that needs no conversion (see :func:`plain_arrays`), else None."""
    found = plain_arrays(parameters)
    if found is None:
        return None
    Wb = found[0]
    return list(Wb[0::2]), list(Wb[1::2])


try:  # the C function behind Numba's dispatcher that describes the types of a value (a bytes "fingerprint")
    from numba._dispatcher import compute_fingerprint as _fingerprint
except ImportError:  # pragma: no cover - another Numba: the structural checks below do it all
    _fingerprint = None
_DTYPE = operator.attrgetter("dtype")
_IS = operator.is_
_EXACT: dict = {}


def _exact_table(n):
    """``{fingerprint: (dtype, types, dtypes)}`` of tuples of ``n`` arrays of the kernels' types, one per float
    dtype (None without Numba's fingerprint)."""
    if _fingerprint is None or n > 4096:
        return None
    if len(_EXACT) > 64:
        _EXACT.clear()
    _EXACT[n] = {_fingerprint(tuple(np.empty((1, 1), dtype) for _ in range(n))):
                 (dtype, (np.ndarray,) * n, (dtype,) * n) for dtype in _FLOATS}
    return _EXACT[n]


def _exact_arrays(Wb):
    """The dtype of the arrays ``Wb`` when every one of them is a NumPy array (not a subclass), 2-D,
    C-contiguous and writable, of one float dtype in native byte order; else None. Three calls into C
    (Numba's type fingerprint of the tuple, then the types and dtypes) however many arrays."""
    exact = _EXACT.get(len(Wb)) or _exact_table(len(Wb))
    if exact is None:
        return None
    try:
        found = exact.get(_fingerprint(Wb))
    except NotImplementedError:  # (a value Numba has no type for)
        return None
    if found is None or tuple(map(type, Wb)) != found[1] or tuple(map(_DTYPE, Wb)) != found[2]:
        return None
    return found[0]


#: ``ids of (W1, b1, ...) -> [sizes, dtype, (activations as given, relu' at 0, layout) of the last forward pass]``
#: for the arrays of plain dicts :func:`plain_arrays` found exact: what the next step with the same arrays
#: (the usual loop) need not work out again. Only sizes and layouts come from here: the arrays are checked
#: again at every call (Python: :func:`_exact_arrays`; the kernels: shapes, strides, alignment)
_PLAIN_MEMO: dict = {}


def _plain_again(parameters):
    """``(Wb, memo)`` for a plain dict whose arrays (by identity) :func:`plain_arrays` found exact before and
    still are (:data:`_PLAIN_MEMO`), else None."""
    keys = _PLAIN_KEYS.get(len(parameters))
    if keys is None:
        return None
    Wb = tuple(map(parameters.get, keys))
    memo = _PLAIN_MEMO.get(tuple(map(id, Wb)))
    if memo is None or _exact_arrays(Wb) is not memo[1]:
        return None
    return Wb, memo


def plain_arrays(parameters):
    """``(Wb, sizes, dtype, exact)`` of a parameter dict that needs no conversion: exactly the keys ``W1, b1, ...,
    WL, bL``, holding non-empty 2-D NumPy arrays of one float dtype; ``Wb`` is the tuple ``(W1, b1, ..., WL, bL)``
    of those arrays, ``sizes`` the layer sizes ``(n0, ..., nL)`` their shapes give, ``exact`` whether they all
    have exactly the kernels' types (C-contiguous and writable: :func:`_exact_arrays`). Such arrays are read
    where they are, and their shapes (chained, ``b`` ``(n_l, 1)``) are checked by the kernels, which see them
    as they are at the call; the shapes of the others are checked here (they are copied). Finiteness is left to
    the kernels, which read the values anyway. None for anything else (the full validation then runs,
    converting or raising its usual errors)."""
    if not isinstance(parameters, dict):
        return None
    n = len(parameters)
    keys = _PLAIN_KEYS.get(n)
    if keys is None:
        if n % 2 or not n or n > 2048:
            return None
        if len(_PLAIN_KEYS) > 64:
            _PLAIN_KEYS.clear()
        keys = _PLAIN_KEYS[n] = tuple(f"{k}{l}" for l in range(1, n // 2 + 1) for k in "Wb")
    Wb = tuple(map(parameters.get, keys))
    dtype = _exact_arrays(Wb)
    if dtype is not None:
        sizes = (Wb[0].shape[1],) + tuple(map(len, Wb[0::2]))
        if 0 not in sizes:
            if len(_PLAIN_MEMO) > 64:
                _PLAIN_MEMO.clear()
            _PLAIN_MEMO[tuple(map(id, Wb))] = [sizes, dtype, None]
            return Wb, sizes, dtype, True
        return None
    W = Wb[0]
    if type(W) is not np.ndarray or W.ndim != 2 or not W.size:
        return None
    dtype = W.dtype
    if dtype != _F64 and dtype != _F32:
        return None
    shape = W.shape
    sizes = [shape[1]]
    for i in range(0, n, 2):
        W, b = Wb[i], Wb[i + 1]
        if type(W) is not np.ndarray or type(b) is not np.ndarray or W.ndim != 2 or b.ndim != 2:
            return None
        shape = W.shape
        if shape[1] != sizes[-1] or not shape[0] or W.dtype != dtype or b.dtype != dtype or b.shape != (shape[0], 1):
            return None
        sizes.append(shape[0])
    return Wb, tuple(sizes), _F64 if dtype == _F64 else _F32, False


def _flat_copy(Ws, bs, sizes=None, dtype=None) -> np.ndarray:
    """The values of ``W1, b1, W2, ...`` (arrays of one dtype) in one new flat vector: the kernels' layout.

    With ``sizes`` and ``dtype`` (what the caller checked the arrays against), a ValueError when the copy does
    not have that dtype and the length of those sizes' parameters: another thread (or code run in between)
    changed an array's shape or dtype in place after the check. The kernels read the copy by ``sizes``
    without checking its length, so this is what keeps them within it."""
    flat = np.concatenate([a.ravel() for pair in zip(Ws, bs, strict=True) for a in pair])
    if sizes is not None and (flat.dtype != dtype or flat.shape[0] != _n_params(sizes)):
        raise ValueError("a parameter array changed its shape or dtype while fastmlp was copying it "
                         "(another thread?)")
    return flat


def _n_params(sizes) -> int:
    """How many parameters a network of layer sizes ``sizes`` (n0, ..., nL) has."""
    return sum(sizes[l + 1] * (sizes[l] + 1) for l in range(len(sizes) - 1))


def _flat_now(Ws, bs, layout):
    """:func:`_flat_copy` of ``Ws``, ``bs`` when they are NumPy arrays of ``layout``'s dtype and shapes, else None."""
    dtype, blocks = layout.dtype, layout.param_blocks
    if len(Ws) != layout.n_layers or len(bs) != layout.n_layers:
        return None
    for l, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        if (type(W) is not np.ndarray or type(b) is not np.ndarray or W.dtype != dtype or b.dtype != dtype
                or W.shape != blocks[2 * l][1] or b.shape != blocks[2 * l + 1][1]):
            return None
    return _flat_copy(Ws, bs, layout.sizes, dtype)


def _as_grads(grads, sizes, dtype):
    if (type(grads) is Grads or type(grads) is LazyGrads) and grads.sizes == sizes and grads.flat.dtype == dtype:
        if not grads._changed:
            return grads
        get = grads.get  # (only the dW, db: no change of state, the dA may differ)
        for key, value in grads._items:
            if get(key) is not value:
                return None
        return grads
    return None


# --- forward ------------------------------------------------------------------------------------------
class Pass:
    """What a forward pass leaves for backward: the kernel's buffer ``ZA`` ``(2 S, m)``, the input the kernel
    read ``Xk``, the flat parameters (None when they were a copy of a plain dict), the layout, the output
    view ``AL``, the parameters' ``W`` / ``b`` arrays, the list its result is kept in for reuse (or None) and
    whether ``Xk`` may go to a kernel's entry point (see ``_ENTRIES``); ``hot``: the record of the call that
    made it (:data:`_HOT_FORWARD`) when the next call with the same objects may reuse it, else None."""

    __slots__ = ("ZA", "scalars", "Xk", "flat", "layout", "AL", "Ws", "bs", "ring", "direct", "x_meta", "Wb", "hot")


class Caches(list):
    """The list of ``((A_prev, W, b), Z)`` tuples of a forward pass, which also carries its :class:`Pass`."""

    __slots__ = ("_entries", "_pass", "_Ws", "_bs", "_Wb")

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
                 default_output="sigmoid", recycle=None, arrays=True):
    """The compiled forward pass behind :func:`forward` (``activations`` None: the defaults).

    Returns a :class:`Pass`; with ``recycle`` (a name), ``(Pass, kept)`` where ``kept`` is a free
    :class:`_Kept` result of an earlier call kept under that name whose ``value._pass`` was rewritten with
    this pass (or None: the caller makes a new result and keeps it with :func:`keep_result`).
    """
    if type(leaky_slope) is not float:  # converted first: code of the caller's (a float subclass's __float__) then runs
        leaky_slope = _checks.check_slope(leaky_slope)  # before the checks, not between them and the kernel call
    p = as_packed(parameters)
    again = None
    if p is not None:
        Ws, bs, flat = p._Ws, p._bs, p.flat
        cached = p._layout  # (activations as given: None or a tuple, relu' at 0, layout) of the last call
        if cached is not None and relu_grad_at_zero == cached[1] and (
                activations is cached[0] or activations is not None and cached[0] is not None
                and type(activations) in (list, tuple) and tuple(activations) == cached[0]):
            layout = cached[2]
        else:
            acts = _activations(activations, len(Ws), default_hidden, default_output)
            layout = layout_for(p.sizes, acts, flat.dtype, relu_grad_at_zero)
            p._layout = (None if activations is None else acts, relu_grad_at_zero, layout)
    else:  # a plain dict: its own arrays, by structural checks (the rest by the kernel), or converted (a copy)
        again = _plain_again(parameters) if arrays and type(parameters) is dict else None
        if again is not None:
            Wb, memo = again
            sizes, dtype, cached = memo
            if cached is not None and relu_grad_at_zero == cached[1] and (
                    activations is cached[0] or activations is not None and cached[0] is not None
                    and type(activations) in (list, tuple) and tuple(activations) == cached[0]):
                layout = cached[2]
            else:
                acts = _activations(activations, len(Wb) // 2, default_hidden, default_output)
                layout = layout_for(sizes, acts, dtype, relu_grad_at_zero)
                memo[2] = (None if activations is None else acts, relu_grad_at_zero, layout)
            Ws, bs, flat = Wb[0::2], Wb[1::2], None
            found = None
        else:
            found = plain_arrays(parameters)
        flat = None
        if again is not None:
            pass
        elif found is not None and found[3] and arrays:
            Wb, sizes, dtype, _ = found
            Ws, bs = Wb[0::2], Wb[1::2]
        elif found is not None and not found[3]:  # (plain_arrays checked their shapes)
            Wb, sizes, dtype, _ = found
            Ws, bs = Wb[0::2], Wb[1::2]
            flat = _flat_copy(Ws, bs, sizes, dtype)
        elif found is not None:  # exact arrays not to be read where they are (another thread runs, or the kernel
            # found their shapes or alignment wrong): copied when their shapes fit, checked here, else validated
            Wb, sizes, dtype, _ = found
            Ws, bs = Wb[0::2], Wb[1::2]
            layout = layout_for(sizes, _activations(activations, len(Ws), default_hidden, default_output), dtype,
                                relu_grad_at_zero)
            flat = _flat_now(Ws, bs, layout)
            if flat is None:
                found = None
        if found is None and again is None:
            Ws, bs = _checks.check_parameters(parameters)
            sizes = (int(Ws[0].shape[1]),) + tuple(int(W.shape[0]) for W in Ws)
            dtype = Ws[0].dtype
            flat = _flat_copy(Ws, bs, sizes, dtype)
        if again is None:
            layout = layout_for(sizes, _activations(activations, len(Ws), default_hidden, default_output), dtype,
                                relu_grad_at_zero)
    if flat is not None:
        dtype = flat.dtype
        Wb = None
    # (check_slope's own first test, inline: this runs every step)
    slope = leaky_slope if type(leaky_slope) is float and -3e38 < leaky_slope < 3e38 else _checks.check_slope(
        leaky_slope, dtype)
    n0 = layout.sizes[0]
    direct = True  # (see _ENTRIES; an X of another kind clears it)
    if type(X) is np.ndarray and X.dtype == dtype and X.ndim == 2 and X.shape[0] == n0 and X.shape[1] and (
            flags := X.flags).c_contiguous and flags.writeable and flags.aligned:
        Xk = X
        x_meta = (X.shape, X.strides, X.dtype)  # (the caller may reshape or re-type X in place before backward)
    elif type(X) is np.ndarray and X.dtype.kind in "biu" and X.ndim == 2 and X.shape[0] == n0 and X.shape[1]:
        Xk = X.astype(dtype)  # integers: always finite, one conversion (a C-contiguous copy)
        x_meta = None
    else:
        Xk = _engine.kernel_array(_checks.check_X(X, Ws[0]))
        direct = False
        x_meta = (Xk.shape, Xk.strides, Xk.dtype) if Xk is X else None  # (a read-only X is read as it is)
    kept = ring = None
    if recycle is not None:
        key = (recycle, Xk.shape[1], _thread_key())
        ring = layout.rings.get(key)
        if ring is None:
            ring = _ring(layout, key)
        kept = _reusable(ring)
    if kept is not None:
        result = kept.value._pass
        ZA = result.ZA
    else:
        # (a view of a buffer of its own: the caller's arrays view that buffer, so their ``base`` is not ZA, whose
        # shape the kernels trust -- ``AL.base.shape = (ZA.size, 1)`` would have made them write past its end)
        ZA = np.empty(2 * layout.n_rows * Xk.shape[1], dtype).reshape(2 * layout.n_rows, Xk.shape[1])
        result = Pass()
        result.ZA, result.layout, result.AL = ZA, layout, ZA[layout.a_rows[-1]]
        result.scalars = np.empty(2, dtype)  # (the forward kernel's scratch: BLAS takes alpha and beta by address)
    result.hot = None
    if Wb is not None:  # the caller's own arrays, read where they are
        run = layout.arrays_entries[0] if direct else None
        if run is not None:
            status = run(Xk, Wb, layout.spec, slope, ZA, result.scalars, _config.BLAS_MIN_FLOPS)
        else:
            status = _call_arrays(_forward_arrays_kernel, direct, dtype, (Xk, Wb, layout.spec, slope, ZA,
                                  result.scalars, _config.BLAS_MIN_FLOPS), Wb, layout, 0)
        if status is None or status == 2:  # the shapes do not fit, or an array is not aligned: validated, copied
            if again is not None:  # (sizes noted for arrays at the same addresses before: worked out anew next time)
                _PLAIN_MEMO.pop(tuple(map(id, Wb)), None)
            del ZA, result, kept
            return forward_pass(X, parameters, activations, leaky_slope, relu_grad_at_zero, default_hidden,
                                default_output, recycle, arrays=False)
        finite = status == 0
    if Wb is None:
        args = (Xk, flat, layout.spec, slope, ZA, result.scalars, _config.BLAS_MIN_FLOPS)
        run = _ENTRIES.get((_forward_kernel, dtype)) if direct else _forward_kernel
        if run is None:
            status = _forward_kernel(*args)
            _learn_entry(_forward_kernel, dtype, args)
        else:
            status = run(*args)
        del args
        if status == 2:
            _changed_while_used()
        finite = status == 0
    del ZA
    if not finite:  # a non-finite input, or an overflow: the full checks raise for the former
        _checks.check_X(X, Ws[0])
        _checks.check_parameters(parameters)
    result.Xk, result.flat, result.Ws, result.bs, result.ring = Xk, flat if p is not None else None, Ws, bs, ring
    result.direct, result.x_meta, result.Wb = direct, x_meta, Wb
    return result if recycle is None else (result, kept)


def keep_result(name, kept: _Kept, fresh: bool) -> None:
    """Keep a result of :func:`forward_pass` with ``recycle=name`` for reuse (see :class:`_Kept`)."""
    _keep(kept.value._pass.ring, kept, fresh)  # (no local name may hold the pass: its reference count is taken)


def kept_result(value, buffer, arrays) -> _Kept:
    """A new :class:`_Kept` for ``value`` (a dict) whose arrays (``arrays``) view ``buffer``."""
    return _kept(value, buffer, arrays)


def forward(X, parameters, activations, leaky_slope, relu_grad_at_zero, *, default_hidden="relu",
            default_output="sigmoid", recycle=False, hot=True):
    """``(AL, caches)`` of a forward pass; see :func:`fastmlp.functional.L_model_forward`.

    ``activations`` None means ``default_hidden`` for the hidden layers and ``default_output`` last. With
    ``recycle``, caches nobody holds any more are reused (for loops that update their parameters in place:
    caches hold the parameters' arrays, which would otherwise stay referenced); ``hot=False``: the caller has
    just tried :func:`forward_again`.
    """
    if not recycle:
        fp = forward_pass(X, parameters, activations, leaky_slope, relu_grad_at_zero, default_hidden,
                          default_output)
        return fp.AL, _fill_caches(Caches(), X, fp, fp.layout.z_rows, fp.layout.a_rows)
    if hot:
        again = forward_again(X, parameters, activations, leaky_slope, relu_grad_at_zero, default_hidden,
                              default_output)
        if again is not None:
            return again
    fp, kept = forward_pass(X, parameters, activations, leaky_slope, relu_grad_at_zero, default_hidden,
                            default_output, recycle="caches")
    fresh = kept is None
    if fresh:
        kept = _new_caches(X, fp)
    else:  # rewritten by this pass: the tuples are made again when X, W or b are other arrays now
        caches = kept.value
        entries = caches._entries
        # (the W and b lists of packed parameters are the same objects from call to call; a plain dict's arrays
        # are compared in one C-level pass)
        same = entries[0][0][0] is X and (caches._Ws is fp.Ws and caches._bs is fp.bs or (
            all(map(_IS, fp.Wb, caches._Wb)) if fp.Wb is not None and caches._Wb is not None
            else _same_parameters(entries, fp)))
        if same:
            caches[:] = entries  # as handed out the first time, whatever was done to the list since
        else:  # new tuples: noted, with their counts
            _fill_caches(caches, X, fp, None, None)
            del caches, entries
            _cache_objects(kept)
            fresh = True
        caches = entries = None
    del fp  # (no local name may hold what the kept result's reference counts are taken of)
    keep_result("caches", kept, fresh)
    _note_forward(X, parameters, activations, leaky_slope, relu_grad_at_zero, default_hidden, default_output, kept)
    return kept.value._pass.AL, kept.value


def _same_parameters(entries, fp) -> bool:
    """Whether the cache tuples ``entries`` hold the W and b arrays of the pass ``fp``."""
    for entry, W, b in zip(entries, fp.Ws, fp.bs, strict=True):
        if entry[0][1] is not W or entry[0][2] is not b:
            return False
    return True


def _fill_caches(caches, X, fp, z_rows, a_rows):
    """Fill ``caches`` with the ``((A_prev, W, b), Z)`` tuples of ``fp``, from new views of its buffer, or
    (``z_rows`` None) from the views the caches already hold."""
    Ws, bs = fp.Ws, fp.bs
    if z_rows is None:
        Zs = [entry[1] for entry in caches]
        As = [entry[0][0] for entry in caches[1:]]
    else:
        ZA = fp.ZA
        Zs = [ZA[rows] for rows in z_rows]
        As = [ZA[rows] for rows in a_rows[:-1]]
    A_prevs = [X] + As  # the caller's own X, as the course code caches it
    caches[:] = [((A_prev, W, b), Z) for A_prev, W, b, Z in zip(A_prevs, Ws, bs, Zs, strict=True)]
    caches._entries = tuple(caches)
    caches._pass, caches._Ws, caches._bs, caches._Wb = fp, Ws, bs, fp.Wb
    return caches


def _new_caches(X, fp) -> _Kept:
    caches = _fill_caches(Caches(), X, fp, fp.layout.z_rows, fp.layout.a_rows)
    kept = _Kept()
    kept.value, kept.buffer, kept.items = caches, fp.ZA, None
    _cache_objects(kept)
    return kept


def _cache_objects(kept) -> None:
    """Note every object of the caches ``kept.value`` the caller could hold: the list, the buffer, its views,
    the pass and the ``((A_prev, W, b), Z)`` tuples (outer and inner) it holds."""
    caches = kept.value
    entries = caches._entries
    kept.objects = ((caches, _owner(kept.buffer)) + tuple(entry[1] for entry in entries)
                    + tuple(entry[0][0] for entry in entries[1:]) + (caches._pass.AL, caches._pass) + entries
                    + tuple(entry[0] for entry in entries))


# --- results recycled once the caller has let go of them ---------------------------------------------
# A loop rebinds its names every step (``grads = L_model_backward(...)``), so the result of the step before
# last is garbage by the time the next one is made. Making its dict and array views costs more than the
# arithmetic of a small network; instead such a result is kept (at most two per kind and shape) and reused
# when reference counts show that nothing but this module holds it or any of its arrays -- not a dict, not
# an array, not a view of one (a view holds its base). Nobody can then tell the new result from a fresh one.
class _Kept:
    """A result kept for reuse: ``value`` (what the caller got), ``buffer`` (the array its arrays view),
    ``objects`` (every object the caller could have kept) and their reference counts when only we held them."""

    __slots__ = ("value", "buffer", "objects", "counts", "items")

    def free(self) -> bool:
        if tuple(map(_REFCOUNT, self.objects)) != self.counts:  # first: a local name would count
            return False
        if self.items is None:  # rewritten whole on reuse: what it holds does not matter
            return True
        return unchanged(self.value, self.items)


_REFCOUNT = sys.getrefcount


def _kept(value, buffer, arrays) -> _Kept:
    kept = _Kept()
    kept.value, kept.buffer, kept.items = value, buffer, tuple(value.items())
    kept.objects = (value, _owner(buffer)) + tuple(arrays)
    return kept


def _owner(buffer):
    """The array that owns the memory of ``buffer`` (the ``base`` of every view of it a caller can hold)."""
    return buffer if buffer.base is None else buffer.base


#: results larger than this are not kept: making them anew costs little next to their arithmetic, and a
#: finished loop should not leave large buffers behind
_KEEP_MAX_BYTES = 1 << 20


def _keep(ring: list, kept: _Kept, fresh: bool) -> None:
    """Keep ``kept`` in ``ring`` again; a ``fresh`` one first records its reference counts (the caller
    holds only ``kept``)."""
    if fresh:
        if kept.buffer.nbytes > _KEEP_MAX_BYTES:
            return
        kept.counts = tuple(map(_REFCOUNT, kept.objects))
    if len(ring) >= 2:
        del ring[0]
    ring.append(kept)


def _reusable(ring: list):
    """A kept result nobody else holds, taken out of ``ring`` while it is being reused (so that another
    thread cannot take it too), or None.

    While other threads run, each thread has lists of its own (the callers key them by thread): a result is
    back in its list, at the reference counts of nobody holding it, a moment before its function hands it out,
    and another thread taking it then would write into buffers the first caller is about to read.
    """
    for kept in ring:  # (the older one first: in a loop, the result before last)
        # (free(), inline: this runs twice a step; the counts first, as a local name would count)
        if tuple(map(_REFCOUNT, kept.objects)) == kept.counts and (kept.items is None
                                                                    or unchanged(kept.value, kept.items)):
            try:  # (one call into C: of two threads that both found it free, only one takes it)
                ring.remove(kept)
            except ValueError:  # another thread took it first
                return None
            return kept
    return None


# --- backward -----------------------------------------------------------------------------------------
def _own_pass(caches, AL, activations, default_hidden="relu", default_output="sigmoid"):
    """The :class:`Pass` behind ``caches`` when they are our forward pass's for this ``AL``, unchanged since,
    run with these activations (``None``: the defaults, as the reference reads it); else None. ``caches`` may
    also be a :class:`Pass`.

    The input the forward pass read may be the caller's own ``X`` (no copy), which the caller can reshape or
    re-type in place (``X.shape = ...``, ``X.dtype = ...``) between the two calls: the pass only counts while
    that array still has the dtype, shape and memory layout the kernel's buffers were sized for (a kernel
    given another shape would write outside them).
    """
    if type(caches) is Pass:
        fp = caches
        caches = None
    elif type(caches) is Caches:
        fp = caches._pass
    else:
        return None
    if AL is not fp.AL:
        return None
    layout = fp.layout
    if activations is None:
        if layout.activations != _activations(None, len(layout.activations), default_hidden, default_output):
            return None
    elif type(activations) not in (list, tuple) or tuple(activations) != layout.activations:
        return None
    if fp.x_meta is not None:  # the caller's own X: as the forward pass saw it (same object, so same memory)
        Xk = fp.Xk
        if (Xk.shape, Xk.strides, Xk.dtype) != fp.x_meta:
            return None
    if caches is not None:
        entries = caches._entries
        if len(caches) != len(entries) or not all(map(_IS, caches, entries)):
            return None
    return fp


def backward(AL, Y, caches, activations, loss, leaky_slope, relu_grad_at_zero, *, key_order="reference",
             default_hidden="relu", default_output="sigmoid", parameters_now=None, slow_caches=None, arrays=True,
             hot=True):
    """Gradients of the mean cost; see :func:`fastmlp.functional.L_model_backward`.

    ``key_order``: ``"reference"`` (``dW{l}, db{l}, dA{l-1}`` for l = L..1), ``"course"`` (``dA{l-1}, dW{l},
    db{l}``) or ``"architecture"`` (``dW{l}, db{l}`` only). ``caches`` may be a :class:`Pass`, with
    ``parameters_now`` the parameter dict to use (as it is now; by default the ``W``, ``b`` of ``caches``) and
    ``slow_caches()`` making validated caches when the pass or the parameters do not fit. Plain parameter
    dicts are read where they are (their arrays); ``arrays=False`` copies them instead.
    """
    if hot and parameters_now is None and slow_caches is None:
        again = backward_again(AL, Y, caches, activations, loss, leaky_slope, relu_grad_at_zero, key_order,
                               default_hidden, default_output)
        if again is not None:
            return again
    if type(leaky_slope) is not float:  # converted first: code of the caller's (a float subclass's __float__) then runs
        leaky_slope = _checks.check_slope(leaky_slope)  # before the checks, not between them and the kernel call
    own = _own_pass(caches, AL, activations, default_hidden, default_output)
    flat = Wb = None
    if own is not None:
        layout, ZA, Xk = own.layout, own.ZA, own.Xk
        private = True  # whether flat is our own copy
        if parameters_now is not None:
            p = as_packed(parameters_now)
            if p is not None and p.sizes == layout.sizes and p.flat.dtype == layout.dtype:
                flat, private = p.flat, False
            else:
                again = _plain_again(parameters_now) if arrays and type(parameters_now) is dict else None
                found = ((again[0],) + tuple(again[1][:2]) + (True,) if again is not None
                         else plain_arrays(parameters_now))
                if found is not None and found[1] == layout.sizes and found[2] == layout.dtype:
                    Wb = found[0]
                    if not (arrays and found[3]):
                        flat = _flat_now(Wb[0::2], Wb[1::2], layout)
                        Wb = None
        elif own.flat is not None:
            flat, private = own.flat, False
        else:  # the forward pass ran on a plain dict: W and b as they are now (the reference reads the cached
            # arrays at this point, so a change since the forward pass counts)
            if own.Wb is not None and arrays:  # (the same arrays as the caches': _own_pass found those unchanged)
                Wb = _arrays_still(own.Wb, layout.dtype)
            if Wb is None:
                entries = caches._entries
                flat = _flat_now([e[0][1] for e in entries], [e[0][2] for e in entries], layout)
        if layout.relu_grad_at_zero != relu_grad_at_zero:  # the forward pass does not depend on it
            layout = with_relu_grad_at_zero(layout, relu_grad_at_zero)
    if flat is None and Wb is None:
        if slow_caches is not None and type(caches) is Pass:
            caches = slow_caches()
        own = None
        layout, ZA, Xk, flat = _gather(AL, caches, activations, relu_grad_at_zero, default_hidden, default_output)
        private = True
    acts = layout.activations
    slope = leaky_slope if type(leaky_slope) is float and -3e38 < leaky_slope < 3e38 else _checks.check_slope(
        leaky_slope, layout.dtype)
    if not (loss == "bce" and acts[-1] == "sigmoid"):
        _check_loss_output(loss, acts[-1])
    dtype = layout.dtype
    m = ZA.shape[1]
    n_out = layout.sizes[-1]
    if (loss != "ce" and type(Y) is np.ndarray and Y.dtype == dtype and Y.shape == (n_out, m)
            and (flags := Y.flags).c_contiguous and flags.writeable):
        Yk, direct = Y, own is not None and own.direct and flags.aligned
    else:
        Yk, direct = _engine.kernel_array(_checks.check_Y(Y, n_out, m, dtype, loss)), False
    if layout.n0n1 * m >= LAZY_DA0_MIN and key_order != "architecture":
        g, out, _ = _grads_views(layout, m, key_order, lazy=True)
        if Wb is not None:
            status = _call_arrays(_backward_arrays_kernel, direct, dtype, (Xk, Yk, Wb, layout.spec, slope,
                                  _LOSS_CODES[loss], ZA, out, False, _config.BLAS_MIN_FLOPS), Wb)
            if status is None or status == 3:  # not C-contiguous and aligned, or changed: copied instead
                return backward(AL, Y, caches, activations, loss, leaky_slope, relu_grad_at_zero, key_order=key_order,
                                default_hidden=default_hidden, default_output=default_output,
                                parameters_now=parameters_now, slow_caches=slow_caches, arrays=False)
        else:
            status = _run_backward(direct, dtype, (Xk, Yk, flat, layout.spec, slope, _LOSS_CODES[loss], ZA, out,
                                                   False, _config.BLAS_MIN_FLOPS))
            if status == 3:
                _changed_while_used()
        if status:
            _invalid_backward(Y, n_out, m, dtype, loss, caches, AL, slow_caches)
        W1 = Wb[0] if Wb is not None else flat[layout.param_blocks[0][0]].reshape(layout.param_blocks[0][1])
        # W1 as it is now (the caller may change it before reading dA0): gathered parameters are our own copy
        g._dA0 = (W1 if private and Wb is None else W1.copy(),
                  out[layout.n_params:layout.n_params + layout.sizes[1] * m].reshape(layout.sizes[1], m))
        return g
    key = (key_order, m, _thread_key())
    ring = layout.rings.get(key)
    if ring is None:
        ring = _ring(layout, key)
    kept = _reusable(ring)
    fresh = kept is None
    if fresh:
        kept = _new_grads(layout, m, key_order)
    if Wb is not None:
        run = layout.arrays_entries[1] if direct else None
        if run is not None:
            status = run(Xk, Yk, Wb, layout.spec, slope, _LOSS_CODES[loss], ZA, kept.buffer,
                         key_order != "architecture", _config.BLAS_MIN_FLOPS)
        else:
            status = _call_arrays(_backward_arrays_kernel, direct, dtype, (Xk, Yk, Wb, layout.spec, slope,
                                  _LOSS_CODES[loss], ZA, kept.buffer, key_order != "architecture",
                                  _config.BLAS_MIN_FLOPS), Wb, layout, 1)
        if status is None or status == 3:  # not C-contiguous and aligned, or changed: copied instead
            del kept
            return backward(AL, Y, caches, activations, loss, leaky_slope, relu_grad_at_zero, key_order=key_order,
                            default_hidden=default_hidden, default_output=default_output,
                            parameters_now=parameters_now, slow_caches=slow_caches, arrays=False)
    else:
        args = (Xk, Yk, flat, layout.spec, slope, _LOSS_CODES[loss], ZA, kept.buffer, key_order != "architecture",
                _config.BLAS_MIN_FLOPS)
        run = _ENTRIES.get((_backward_kernel, dtype)) if direct else None  # (_run_backward, inline)
        status = run(*args) if run is not None else _run_backward(direct, dtype, args)
        del args
        if status == 3:
            _changed_while_used()
    if status:
        _invalid_backward(Y, n_out, m, dtype, loss, caches, AL, slow_caches)
    kept.value._Wb = Wb  # (an update of the same arrays need not check them all again)
    _keep(ring, kept, fresh)
    if not status and direct and Yk is Y and own is not None and own.hot is not None and parameters_now is None:
        _note_backward(own, Y, loss, leaky_slope, relu_grad_at_zero, key_order, default_hidden, default_output,
                       layout, flat, Wb, kept)
    return kept.value


#: how many sample counts (per kind of result) a layout keeps results for reuse: a loop over a sliding or
#: growing window of columns would otherwise keep one set of buffers per width it ever saw
MAX_RINGS = 8


def _ring(layout, key) -> list:
    """A new, empty list of reusable results of ``layout`` for ``key`` (which has none yet); the oldest list is
    dropped beyond :data:`MAX_RINGS`, its results then freed with their last reference."""
    rings = layout.rings
    if len(rings) >= MAX_RINGS:
        del rings[next(iter(rings))]
    ring = rings[key] = []
    return ring


def _run_backward(direct, dtype, args):
    """The backward kernel's status for ``args``, through its entry point when ``direct`` (see ``_ENTRIES``)."""
    run = _ENTRIES.get((_backward_kernel, dtype)) if direct else _backward_kernel
    if run is None:
        status = _backward_kernel(*args)
        _learn_entry(_backward_kernel, dtype, args)
        return status
    return run(*args)


#: a backward pass leaves ``dA0 = W1.T @ dZ1``, the one product its gradient does not need, to be computed
#: when it is first read (:class:`LazyGrads`) once ``n0 * n1 * m`` reaches this; below, computing it costs
#: less than deferring it
LAZY_DA0_MIN = 1 << 17


def _invalid_backward(Y, n_out, m, dtype, loss, caches, AL, slow_caches):
    """After a backward kernel reported a problem: invalid targets or inputs raise here; an overflow of valid
    inputs returns (the result is handed out as it is)."""
    _checks.check_Y(Y, n_out, m, dtype, loss)
    _checks.check_caches(slow_caches() if type(caches) is Pass and slow_caches is not None else caches)
    as_float_array(AL, "AL")


def _new_grads(layout, m, key_order) -> _Kept:
    """A :class:`Grads` dict of views into a new buffer, not yet written (see :func:`_grads_views`)."""
    g, out, arrays = _grads_views(layout, m, key_order)
    return _kept(g, out, arrays + [g.flat])


def _grads_views(layout, m, key_order, lazy=False):
    """``(grads, buffer, arrays)``: a :class:`Grads` dict of views into a new buffer (gradient, then the ``dA``
    blocks), not yet written, and every view. For the ``"architecture"`` key order (no ``dA``) and ``lazy``
    (a :class:`LazyGrads`, ``"dA0"`` pending) the buffer has the layout of a backward pass without ``dA0``."""
    with_dA0 = key_order != "architecture" and not lazy
    height, rows = (layout.dA_height, layout.dA_rows) if with_dA0 else (layout.lazy_height, layout.lazy_rows)
    # (the kernel's scratch at the end; a view, so that the ``base`` of the gradients is not what the kernels get)
    out = np.empty(layout.backward_length(m, with_dA0), layout.dtype)[:]
    arrays = [out[sl].reshape(shape) for sl, shape in layout.param_blocks]
    dA = out[layout.n_params:layout.n_params + height * m].reshape(height, m)
    arrays += [dA[r] for r in rows]
    keys, order, param_keys = _grad_plan(layout, key_order)
    values = [arrays[i] for i in order]
    if lazy:
        values[keys.index("dA0")] = _PENDING
    g = (LazyGrads if lazy else Grads)(zip(keys, values, strict=True))
    g.flat, g.sizes, g._items = out[:layout.n_params], layout.sizes, tuple(zip(param_keys, arrays, strict=False))
    g._Wb, g._spec = None, layout.spec
    g._changed = False
    if lazy:
        g._dA0 = None
    return g, out, arrays


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
def _all_writeable(p) -> bool:
    """Whether every ``W`` and ``b`` of the :class:`Packed` dict ``p`` may be written (the caller can clear
    the flag of one view while the flat vector behind it stays writable): one C-level look at them all
    (Numba's type fingerprint says writable, 2-D, C-contiguous), one by one otherwise."""
    views = p._views
    exact = _EXACT.get(len(views)) or _exact_table(len(views))
    if exact is not None and _fingerprint(views) in exact:
        return True
    for a in views:
        if not a.flags.writeable:
            return False
    return True


def update(parameters, grads, learning_rate, *, in_place: bool, hot=True):
    """One SGD step. ``in_place``: the arrays of ``parameters`` are updated and the same dict returned;
    otherwise a new dict is returned and ``parameters`` and its arrays are left untouched. ``hot=False``: the
    caller has just tried :func:`update_again`."""
    if hot and in_place and update_again(parameters, grads, learning_rate):
        return parameters
    # (check_positive_float's own first test, inline: this runs every step)
    lr = learning_rate if type(learning_rate) is float and 0 < learning_rate < np.inf else check_positive_float(
        learning_rate, "learning_rate")
    p = as_packed(parameters)
    if p is None:
        done = _update_plain(parameters, grads, lr, in_place)
        if done is not None:
            return done
        G = None
    else:
        g = _as_grads(grads, p.sizes, p.flat.dtype)
        G = g.flat if g is not None else _plain_grads(grads, p._Ws, p._bs)
    if G is not None and in_place and not _all_writeable(p):
        G = None  # (the full validation below names the read-only array, as the reference does)
    if G is not None:
        if in_place:
            run = _ENTRIES.get((_scaled_difference, p.flat.dtype))  # (_subtract, inline)
            if run(p.flat, G, lr, p.flat) if run is not None else _subtract(p.flat, G, lr, p.flat):
                if g is not None and type(learning_rate) is float:
                    _note_update(parameters, g, learning_rate, None, None)
                return parameters
        else:
            if len(_PACKED_RINGS) > 64:
                _PACKED_RINGS.clear()
            key = (p.sizes, p.flat.dtype, _thread_key())
            ring = _PACKED_RINGS.get(key)
            if ring is None:
                ring = _PACKED_RINGS[key] = []
            kept = _reusable(ring)
            fresh = kept is None or p._reordered
            if fresh:
                out = np.empty_like(p.flat)
                kept = _kept(*_new_packed(out, p.sizes, tuple(parameters) if p._reordered else None))
                del out
            if _subtract(p.flat, G, lr, kept.buffer):
                kept.value._layout = p._layout
                _keep(ring, kept, fresh)
                return kept.value
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


def _subtract(P, G, lr, out) -> bool:
    """``_engine.scaled_difference`` of flat arrays this module made (of one float dtype) and a float."""
    run = _ENTRIES.get((_scaled_difference, P.dtype))
    if run is None:
        done = _scaled_difference(P, G, lr, out)
        _learn_entry(_scaled_difference, P.dtype, (P, G, lr, out))
        return done
    return run(P, G, lr, out)


_GRAD_KEYS: dict = {}


def _plain_grads(grads, Ws, bs):
    """``dW1, db1, ...`` of a gradient dict in one new flat vector when they are NumPy arrays of the
    parameters' dtype and shapes (other keys are ignored); else None."""
    if not isinstance(grads, dict):
        return None
    keys = _GRAD_KEYS.get(len(Ws))
    if keys is None:
        if len(_GRAD_KEYS) > 64:
            _GRAD_KEYS.clear()
        keys = _GRAD_KEYS[len(Ws)] = tuple((f"dW{l}", f"db{l}") for l in range(1, len(Ws) + 1))
    get = grads.get
    arrays = []
    for (key_W, key_b), W, b in zip(keys, Ws, bs, strict=True):
        gW, gb = get(key_W), get(key_b)
        if (type(gW) is not np.ndarray or type(gb) is not np.ndarray or gW.dtype != W.dtype or gb.dtype != W.dtype
                or gW.shape != W.shape or gb.shape != b.shape):
            return None
        arrays += (gW, gb)
    return np.concatenate(arrays, axis=None)


def _update_plain(parameters, grads, lr, in_place):
    """:func:`update` of a plain parameter dict by structural checks and one compiled call (which checks that
    every value is finite before it writes anything); None when that does not apply or a value is not
    finite (the full validation then runs)."""
    if (type(grads) is Grads or type(grads) is LazyGrads) and grads._Wb is not None and not grads._changed and (
            isinstance(parameters, dict)):
        # the gradient of the backward pass that read these very arrays (the usual loop): checked as they are now
        Wb = grads._Wb
        keys = _PLAIN_KEYS.get(len(parameters))
        if keys is not None and len(keys) == len(Wb) and all(map(_IS, map(parameters.get, keys), Wb)):
            dtype = grads.flat.dtype
            exact = _EXACT.get(len(Wb))
            found = exact.get(_fingerprint(Wb)) if exact is not None else None
            # (_arrays_still, inline: the same arrays as the backward pass read, checked again as they are now)
            if found is not None and found[0] is dtype and tuple(map(_DTYPE, Wb)) == found[2]:
                out = _NO_OUTPUT[dtype] if in_place else np.empty_like(grads.flat)
                run = _UPDATE_ENTRIES.get(len(Wb), _NO_ENTRY)[dtype is _F64]
                if run is not None:
                    if run(Wb, grads._spec, grads.flat, lr, out) == 0:
                        if in_place and type(lr) is float:
                            _note_update(parameters, grads, lr, keys, Wb)
                        return parameters if in_place else packed_view(out, grads.sizes, order=tuple(parameters))
                    return None  # (a value not finite, the shapes do not fit, or an array not aligned: the full path)
    found = plain_arrays(parameters)
    if found is None:
        return None
    Wb, sizes, dtype, exact = found
    Ws, bs = Wb[0::2], Wb[1::2]
    g = _as_grads(grads, sizes, dtype)
    G = g.flat if g is not None else _plain_grads(grads, Ws, bs)
    if G is None:
        return None
    if exact:  # the arrays where they are: one compiled call (which checks their shapes and alignment, and that
        # every value is finite before it writes anything; in place, one array after the other, in order)
        out = _NO_OUTPUT[dtype] if in_place else np.empty_like(G)
        status = _call_arrays(_update_arrays_kernel, True, dtype, (Wb, _param_spec(sizes), G, lr, out), Wb)
        if (len(Wb), dtype) not in _UPDATE_SEEN and (_update_arrays_kernel, (dtype, len(Wb))) in _ENTRIES:
            entries = _UPDATE_ENTRIES.setdefault(len(Wb), [None, None])
            entries[dtype is _F64] = _ENTRIES[_update_arrays_kernel, (dtype, len(Wb))]
            _UPDATE_SEEN.add((len(Wb), dtype))
        if status == 0:
            return parameters if in_place else packed_view(out, sizes, order=tuple(parameters))
        if status is not None:
            return None  # (a value not finite, the shapes do not fit, or an array is not aligned: the full path)
        # an array no longer C-contiguous, aligned and writable (changed since it was checked): through a copy,
        # their shapes checked here (the kernel would have)
        blocks = _param_blocks(sizes)[1]
        for a, (_, shape) in zip(Wb, blocks, strict=True):
            if a.shape != shape:
                return None
    # not C-contiguous, or read-only: through a copy
    arrays = list(Wb)
    bases = set()
    for a in arrays:
        if in_place and not a.flags.writeable:
            return None  # (the full validation names the read-only array)
        bases.add(id(a if a.base is None else a.base))
    new = np.concatenate([a.ravel() for a in arrays])
    if new.dtype != G.dtype or new.shape != G.shape:
        return None  # (an array changed its shape or dtype since it was checked: the full path)
    if not _subtract(new, G, lr, new):
        return None
    if not in_place:
        return packed_view(new, sizes, order=tuple(parameters))
    blocks = _param_blocks(sizes)[1]
    if len(bases) == len(arrays):
        for a, (sl, shape) in zip(arrays, blocks, strict=True):
            a[...] = new[sl].reshape(shape)
    else:  # arrays that may share memory: one after the other, as the reference's in-place updates do
        step = Ws[0].dtype.type(lr)
        for a, (sl, shape) in zip(arrays, blocks, strict=True):
            a -= step * G[sl].reshape(shape)
    return parameters


def bce_cost(AL, Y) -> float | None:
    """The cross-entropy cost of probabilities ``AL`` against ``Y`` compiled, or None when the inputs are not
    two C-contiguous arrays of one float dtype and shape with valid values (the caller's full path then runs)."""
    hot = _HOT_COST
    if hot is not None and Y is hot[0] and type(AL) is np.ndarray:
        # (the same Y as the call before, checked as it is now; AL's shape and alignment: the kernel checks them)
        _, types, dtype, entry = hot
        args = (AL, Y) if _alone() else (_VIEW(AL), _VIEW(Y))  # (_private)
        try:
            same = _fingerprint(args) == types
        except NotImplementedError:
            same = False
        if same and args[0].dtype is dtype and args[1].dtype is dtype:
            cost = entry(*args)
            return cost if cost == cost else None
    if type(AL) is np.ndarray and type(Y) is np.ndarray:
        exact = _EXACT.get(2) or _exact_table(2)
        # (Numba's fingerprint: both 2-D, C-contiguous, writable, of a float type; then native byte order and
        # shapes: such arrays have exactly the kernel's types, but for alignment, which the kernel checks)
        try:
            found = exact.get(_fingerprint((AL, Y))) if exact is not None else None
        except NotImplementedError:  # (a dtype Numba has no type for)
            found = None
        if found is not None and AL.dtype is (dtype := found[0]) and Y.dtype is dtype and AL.shape == Y.shape:
            run = _BCE_ENTRIES.get(dtype)
            if run is None:
                cost = _bce_of_probabilities(AL, Y)
                _learn_entry(_bce_of_probabilities, dtype, (AL, Y))
                _BCE_ENTRIES[dtype] = _ENTRIES[_bce_of_probabilities, dtype]
            else:
                cost = run(AL, Y)
            if cost == cost:
                _note_cost(AL, Y, dtype)
        elif ((dtype := AL.dtype) is _F64 or dtype is _F32) and Y.dtype is dtype and AL.ndim == 2 and (
                AL.shape == Y.shape and AL.flags.c_contiguous and Y.flags.c_contiguous):
            cost = _bce_of_probabilities(AL, Y)  # (read-only, unaligned: the dispatcher)
        else:
            return None
        if cost == cost:
            return cost
    return None


_BCE_ENTRIES: dict = {}


# --- the hot path: a loop's next step with the very objects of the step before --------------------------
# A loop calls forward, cost, backward and update with the same objects step after step: its X, Y, parameter
# dict, activation list and arrays; the kernels' buffers alternate between two kept results. The general paths
# above note, after a call that went through them, what they worked out for those objects (one record per
# function: the last call's). A call that passes the very same objects then re-checks only what the caller
# can change in place between two calls -- the arrays' Numba types, all of them in one fingerprint of the
# kernel's argument tuple (dimensions, layout, writability, item type: what an entry point trusts), the shapes
# the kernel does not check itself, the byte order (``dtype is``, which the fingerprint does not see), the
# dicts (watched, or their arrays by identity) and the activation list (its items by identity) -- and calls
# the kernel's entry point for exactly those types. Anything else -- another object, a change, another thread
# alive, a result still held, a kernel reporting a problem -- takes the general path, which raises the usual
# errors. The records hold what the kept results hold already (X, the parameters' arrays).
_HOT_FORWARD = None
_HOT_BACKWARD = None
_HOT_UPDATE = None
_HOT_COST = None
_FP_ENTRIES: dict = {}


def _entry_for(kernel, args):
    """``(fingerprint, entry)``: Numba's type fingerprint of the tuple ``args`` and ``kernel``'s compiled entry
    point for exactly their types; None when it has none (or Numba cannot type a value)."""
    if _fingerprint is None:
        return None
    if not _alone():  # (types and entry from one snapshot of the arrays, which another thread cannot change)
        args = _private(args)
    try:
        types = _fingerprint(args)
    except NotImplementedError:
        return None
    entry = _FP_ENTRIES.get((kernel, types))
    if entry is None:
        try:
            from numba import typeof

            entry = kernel.overloads[tuple(map(typeof, args))].entry_point
        except (AttributeError, KeyError, TypeError, ValueError, NotImplementedError):  # (NUMBA_DISABLE_JIT too)
            return None
        if len(_FP_ENTRIES) > 256:
            _FP_ENTRIES.clear()
        _FP_ENTRIES[kernel, types] = entry
    return types, entry


def _same_arrays(parameters, getter, n_keys, Wb, dtype) -> bool:
    """Whether the plain dict ``parameters`` still holds exactly the arrays ``Wb`` under its ``n_keys`` keys
    (``getter`` reads them) and every one still has the ``dtype`` object ``dtype`` (its byte order too)."""
    if len(parameters) != n_keys:
        return False
    try:
        now = getter(parameters)
    except KeyError:
        return False
    if not all(map(_IS, now, Wb)):
        return False
    for a in Wb:
        if a.dtype is not dtype:
            return False
    return True


def forward_again(X, parameters, activations, leaky_slope, relu_grad_at_zero, default_hidden, default_output):
    """:func:`forward`'s ``(AL, caches)`` (``recycle``) when this call passes the objects the call
    :data:`_HOT_FORWARD` records and a result kept for them is free; else None (the general path runs).
    The dialects call it first, then :func:`forward` with ``hot=False`` when it gives None."""
    h = _HOT_FORWARD
    if h is None:
        return None
    (h_parameters, h_X, h_activations, items, h_slope, h_relu, h_hidden, h_output, getter, n_keys, Wb, arg, dtype,
     x_shape, ring, types, entry, spec, ok, owner) = h
    # (the activation list's items by identity; the parameter dict's arrays by identity and their dtype objects
    # (byte order): _same_arrays, inline)
    if not (X is h_X and parameters is h_parameters and activations is h_activations and leaky_slope is h_slope
            and relu_grad_at_zero is h_relu and default_hidden is h_hidden and default_output is h_output
            and (items is None or len(activations) == len(items) and all(map(_IS, activations, items)))):
        return None
    if getter is None:
        if parameters._changed:  # (a Packed dict: its views, as long as nothing was set in it)
            return None
    else:
        if len(parameters) != n_keys:
            return None
        try:
            now = getter(parameters)
        except KeyError:
            return None
        if not all(map(_IS, now, Wb)):
            return None
        for a in Wb:
            if a.dtype is not dtype:
                return None
    if X.shape != x_shape or X.dtype is not dtype or owner != _thread_key():  # (ring: this thread's results)
        return None
    for kept in ring:  # (_reusable, inline: no local name holds any of the kept objects here)
        if tuple(map(_REFCOUNT, kept.objects)) == kept.counts:
            break
    else:
        return None
    caches = kept.value
    fp = caches._pass
    if fp.hot is not h:
        return None
    if owner is None:
        args = (X, arg, spec, leaky_slope, fp.ZA, fp.scalars, _config.BLAS_MIN_FLOPS)
    else:  # (_private, for the arrays the caller can reach)
        args = (_VIEW(X), _VIEW(arg) if getter is None else tuple(map(_VIEW, arg)), spec, leaky_slope, fp.ZA,
                fp.scalars, _config.BLAS_MIN_FLOPS)
    if _fingerprint(args) != types or entry(*args) != ok:  # (the kernel also checks Wb's shapes and alignment)
        return None  # (an array changed, or a value is not finite: the general path)
    caches[:] = caches._entries  # as handed out the first time, whatever was done to the list since
    if ring[0] is kept:  # the one reused goes last (a ring holds at most two: see _keep)
        ring.reverse()
    return fp.AL, caches


def _note_forward(X, parameters, activations, leaky_slope, relu_grad_at_zero, default_hidden, default_output,
                  kept) -> None:
    """Record a :func:`forward` call (``recycle``) that read ``X`` and the parameters where they are, for
    :func:`forward_again`, and mark its result as made for it."""
    global _HOT_FORWARD
    fp = kept.value._pass
    ring = fp.ring
    if (not fp.direct or fp.Xk is not X or fp.x_meta is None or type(leaky_slope) is not float
            or type(relu_grad_at_zero) is not int or ring is None or not any(map(_IS, ring, (kept,) * len(ring)))):
        return
    if activations is None:
        items = None
    elif type(activations) in (list, tuple):
        items = tuple(activations)
    else:
        return
    layout = fp.layout
    dtype = layout.dtype
    if X.dtype is not dtype:
        return
    if fp.flat is not None and type(parameters) is Packed and fp.flat is parameters.flat:
        getter = n_keys = Wb = None
        arg, kernel, ok = fp.flat, _forward_kernel, 0
    elif fp.Wb is not None and type(parameters) is dict:
        keys = _PLAIN_KEYS.get(len(parameters))
        Wb = fp.Wb
        if keys is None or len(keys) != len(Wb):
            return
        getter, n_keys = operator.itemgetter(*keys), len(keys)
        if not _same_arrays(parameters, getter, n_keys, Wb, dtype):
            return
        arg, kernel, ok = Wb, _forward_arrays_kernel, 0
    else:
        return
    found = _entry_for(kernel, (X, arg, layout.spec, leaky_slope, fp.ZA, fp.scalars, _config.BLAS_MIN_FLOPS))
    if found is None:
        return
    h = _HOT_FORWARD
    owner = _thread_key()
    if not (h is not None and h[0] is parameters and h[1] is X and h[2] is activations and h[3] == items
            and h[19] == owner
            and h[4] is leaky_slope and h[5] is relu_grad_at_zero and h[6] is default_hidden
            and h[7] is default_output and h[12] is dtype and h[13] == X.shape and h[14] is ring
            and h[15] == found[0] and h[17] is layout.spec
            and (Wb is None and h[10] is None or Wb is not None and h[10] is not None
                 and all(map(_IS, Wb, h[10])))):
        h = _HOT_FORWARD = (parameters, X, activations, items, leaky_slope, relu_grad_at_zero, default_hidden,
                            default_output, getter, n_keys, Wb, arg, dtype, X.shape, ring, found[0], found[1],
                            layout.spec, ok, owner)
    fp.hot = h
    if Wb is not None:
        fp.Wb = h[10]  # (the same arrays: the record's tuple, which backward and update recognise)


def backward_again(AL, Y, caches, activations, loss, leaky_slope, relu_grad_at_zero, key_order, default_hidden,
                   default_output):
    """:func:`backward`'s gradients when this call passes the caches of a hot forward pass (unchanged) and the
    objects the call :data:`_HOT_BACKWARD` records, and a result kept for them is free; else None. The dialects
    call it first, then :func:`backward` with ``hot=False`` when it gives None."""
    hb = _HOT_BACKWARD
    if hb is None or type(caches) is not Caches:
        return None
    (h, h_Y, h_loss, h_slope, h_relu, h_key_order, h_hidden, h_output, y_shape, ring, types, entry, spec, code,
     with_dA0, arg) = hb
    fp = caches._pass
    items = h[3]
    if not (fp.hot is h and AL is fp.AL and Y is h_Y and loss is h_loss and leaky_slope is h_slope
            and relu_grad_at_zero is h_relu and key_order is h_key_order and default_hidden is h_hidden
            and default_output is h_output and activations is h[2]
            and (items is None or len(activations) == len(items) and all(map(_IS, activations, items)))):
        return None
    entries = caches._entries
    if len(caches) != len(entries) or not all(map(_IS, caches, entries)):
        return None
    X, Wb, dtype = h[1], h[10], h[12]
    if X.shape != h[13] or X.dtype is not dtype or Y.shape != y_shape or Y.dtype is not dtype:
        return None
    if Wb is not None:
        for a in Wb:
            if a.dtype is not dtype:
                return None
    owner = h[19]
    if owner != _thread_key():  # (ring: this thread's results)
        return None
    for kept in ring:  # (_reusable, inline)
        if tuple(map(_REFCOUNT, kept.objects)) == kept.counts and unchanged(kept.value, kept.items):
            break
    else:
        return None
    if owner is None:
        args = (X, Y, arg, spec, leaky_slope, code, fp.ZA, kept.buffer, with_dA0, _config.BLAS_MIN_FLOPS)
    else:  # (_private, for the arrays the caller can reach)
        args = (_VIEW(X), _VIEW(Y), _VIEW(arg) if Wb is None else tuple(map(_VIEW, arg)), spec, leaky_slope, code,
                fp.ZA, kept.buffer, with_dA0, _config.BLAS_MIN_FLOPS)
    if _fingerprint(args) != types or entry(*args) != 0:
        return None  # (an array changed, or a value is not finite: the general path, which raises)
    grads = kept.value
    grads._Wb = Wb
    if ring[0] is kept:  # the one reused goes last (a ring holds at most two: see _keep)
        ring.reverse()
    return grads


def _note_backward(own, Y, loss, leaky_slope, relu_grad_at_zero, key_order, default_hidden, default_output,
                   layout, flat, Wb, kept) -> None:
    """Record a :func:`backward` call on a hot forward pass (``own``) for :func:`backward_again`."""
    global _HOT_BACKWARD
    h = own.hot
    m = own.ZA.shape[1]
    owner = _thread_key()
    ring = layout.rings.get((key_order, m, owner))
    if (type(leaky_slope) is not float or type(relu_grad_at_zero) is not int or h[19] != owner
            or type(Y) is not np.ndarray or Y.dtype is not layout.dtype or ring is None
            or not any(map(_IS, ring, (kept,) * len(ring)))):
        return
    if Wb is not None:
        if Wb is not h[10]:
            return
        arg, kernel = Wb, _backward_arrays_kernel
    else:
        if flat is None or flat is not h[11]:
            return
        arg, kernel = flat, _backward_kernel
    code, with_dA0 = _LOSS_CODES[loss], key_order != "architecture"
    found = _entry_for(kernel, (own.Xk, Y, arg, layout.spec, leaky_slope, code, own.ZA, kept.buffer, with_dA0,
                                _config.BLAS_MIN_FLOPS))
    if found is not None:
        _HOT_BACKWARD = (h, Y, loss, leaky_slope, relu_grad_at_zero, key_order, default_hidden, default_output,
                         Y.shape, ring, found[0], found[1], layout.spec, code, with_dA0, arg)


def update_again(parameters, grads, lr) -> bool:
    """An in-place :func:`update` of the parameters the call :data:`_HOT_UPDATE` records, done; False when it
    does not apply or a value is not finite (nothing written: the general path runs). The dialects call it
    first, then :func:`update` with ``hot=False`` when it gives False."""
    h = _HOT_UPDATE
    if h is None or parameters is not h[0]:
        return False
    (_, getter, n_keys, Wb, dtype, sizes, types, entry, spec, out, flat) = h
    if not (type(lr) is float and 0 < lr < _INF and type(grads) is Grads and not grads._changed):
        return False
    G = grads.flat
    if getter is None:  # a Packed dict: its flat vector, its views' flags (a read-only one refuses)
        if parameters._changed or grads.sizes is not sizes:
            return False
        if _alone():
            return _fingerprint((parameters._views, flat, G, lr)) == types and entry(flat, G, lr, flat)
        args = (tuple(map(_VIEW, parameters._views)), _VIEW(flat), _VIEW(G), lr)  # (_private)
        return _fingerprint(args) == types and entry(args[1], args[2], lr, args[1])
    # (the dict's arrays by identity and their dtype objects (byte order): _same_arrays, inline)
    if grads._Wb is not Wb or len(parameters) != n_keys:
        return False
    try:
        now = getter(parameters)
    except KeyError:
        return False
    if not all(map(_IS, now, Wb)):
        return False
    for a in Wb:
        if a.dtype is not dtype:
            return False
    args = (Wb, spec, G, lr, out) if _alone() else (tuple(map(_VIEW, Wb)), spec, _VIEW(G), lr, out)  # (_private)
    return _fingerprint(args) == types and entry(*args) == 0  # (the kernel checks the shapes and G's length)


_INF = float("inf")


def _note_update(parameters, grads, lr, keys, Wb) -> None:
    """Record an in-place :func:`update` just done by a compiled call, for :func:`update_again`: of a
    :class:`Packed` dict (``keys`` None) or of the plain dict's arrays ``Wb`` under ``keys``."""
    global _HOT_UPDATE
    if type(grads) is not Grads or grads._changed:
        return
    G = grads.flat
    if keys is None:
        flat = parameters.flat
        dtype = flat.dtype
        found = _entry_for(_scaled_difference, (flat, G, lr, flat))
        if found is None or G.dtype is not dtype:
            return
        views = (parameters._views, flat, G, lr)
        _HOT_UPDATE = (parameters, None, None, None, dtype, grads.sizes,
                       _fingerprint(views if _alone() else _private(views)), found[1], None, None, flat)
        return
    dtype = G.dtype
    getter = operator.itemgetter(*keys)
    if not _same_arrays(parameters, getter, len(keys), Wb, dtype):
        return
    out = _NO_OUTPUT[dtype]
    found = _entry_for(_update_arrays_kernel, (Wb, grads._spec, G, lr, out))
    if found is not None:
        _HOT_UPDATE = (parameters, getter, len(keys), Wb, dtype, None, found[0], found[1], grads._spec, out, None)


def _note_cost(AL, Y, dtype) -> None:
    """Record a compiled :func:`bce_cost` call (exact arrays of ``dtype``) for its next call with the same ``Y``."""
    global _HOT_COST
    if AL.dtype is dtype and Y.dtype is dtype:
        found = _entry_for(_bce_of_probabilities, (AL, Y))
        if found is not None:
            _HOT_COST = (Y, found[0], dtype, found[1])
