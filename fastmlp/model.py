"""``fastmlp.MLP``: the fast model class, samples as columns like the course-style reference."""

from __future__ import annotations

import numpy as np

from fastmlp import _engine, _modelfile, reference
from fastmlp._checks import (
    ACTIVATIONS,
    LOSSES,
    OUTPUT_ONLY_ACTIVATIONS,
    as_float_array,
    check_activation,
    check_dtype,
    check_init,
    check_layer_dims,
    check_loss,
    check_loss_output,
    check_positive_float,
    check_positive_int,
    check_seed,
    check_slope,
    check_Y,
)
from fastmlp._guard import DeferredInterrupt, model_lock
from fastmlp._progress import progress

__all__ = ["MLP"]


class MLP(_modelfile.ModelFileMixin):
    """A multilayer perceptron trained by minibatch SGD in compiled code.

    Samples are columns, as in course-style NumPy code: ``X`` is ``(n_x, m)``, ``Y`` is ``(n_y, m)`` (or
    ``(m,)`` for one output), and the parameters are ``W1 (n1, n0), b1 (n1, 1), ...``. Training with
    ``shuffle=False`` equals :func:`fastmlp.reference.train` from the same parameters (to about 1e-10
    relative in float64, 1e-5 in float32).

    Parameters
    ----------
    layer_dims : sequence of int
        ``[n_x, n_1, ..., n_L]``.
    hidden_activation, output_activation : str
        ``"relu"``, ``"leaky_relu"``, ``"sigmoid"``, ``"tanh"``, ``"linear"``; the output may also be
        ``"softmax"`` (with ``loss="ce"``).
    loss : {"bce", "mse", "ce"}
        Binary cross-entropy needs a sigmoid output; categorical cross-entropy a softmax output.
    activations : list of str, optional
        One name per layer; overrides ``hidden_activation`` and ``output_activation``.
    init : {"he", "xavier", "deep"}
        Initialisation scheme of :func:`fastmlp.reference.initialize_parameters`.
    seed : int, optional
        Seed of the initialisation.
    dtype : str or dtype
        ``"float64"`` or ``"float32"``: parameters, inputs and every computation use it.
    leaky_slope : float
        Slope of ``leaky_relu`` for negative inputs.

    Attributes
    ----------
    history : list of float
        One cost per trained epoch: the mean of that epoch's minibatch costs.

    Models are saved with ``save(path)`` and read back with ``MLP.load(path)`` (``.npz``, atomic writes,
    validated reads; see :mod:`fastmlp.io`).
    """

    def __init__(self, layer_dims, hidden_activation="relu", output_activation="sigmoid", loss="bce", *,
                 activations=None, init="he", seed=None, dtype="float64", leaky_slope=0.01):
        dims = check_layer_dims(layer_dims)
        n_layers = len(dims) - 1
        if activations is None:
            check_activation(hidden_activation, where="hidden_activation")
            check_activation(output_activation, output=True, where="output_activation")
            activations = [hidden_activation] * (n_layers - 1) + [output_activation]
        else:
            activations = list(activations)
            if len(activations) != n_layers:
                raise ValueError(f"activations must hold {n_layers} names (one per layer), got {len(activations)}")
            for i, name in enumerate(activations):
                check_activation(name, output=i == n_layers - 1, where=f"activation of layer {i + 1}")
        check_loss(loss)
        check_loss_output(loss, activations[-1])
        dtype = check_dtype(dtype)
        self.loss = loss
        self.init = check_init(init)
        self.seed = check_seed(seed)
        self._net = _engine.Network(dims, activations, dtype, check_slope(leaky_slope, dtype))
        self.history: list[float] = []
        self._set_checked(reference._initialize_parameters(dims, self.init, self.seed, dtype))

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def from_architecture(cls, nn_architecture, seed=99, loss="bce", dtype="float64") -> MLP:
        """A model from a list of ``{"input_dim", "output_dim", "activation"}`` dicts, initialised with the
        "architecture" scheme of :func:`fastmlp.reference.init_layers` (``W`` then ``b``, both ``randn * 0.1``).
        """
        params = reference.init_layers(nn_architecture, seed=seed)
        dims = [nn_architecture[0]["input_dim"]] + [layer["output_dim"] for layer in nn_architecture]
        model = cls(dims, loss=loss, activations=[layer["activation"] for layer in nn_architecture],
                    init="deep", seed=0, dtype=dtype)
        model.init, model.seed = "architecture", seed
        return model.set_parameters(params)

    # --- attributes -----------------------------------------------------------------------------
    @property
    def layer_dims(self) -> list[int]:
        return list(self._net.layer_sizes)

    @property
    def activations(self) -> list[str]:
        return list(self._net.activations)

    @property
    def dtype(self) -> np.dtype:
        return self._net.dtype

    @property
    def leaky_slope(self) -> float:
        return self._net.leaky_slope

    @property
    def n_layers(self) -> int:
        return self._net.n_layers

    def __repr__(self) -> str:
        return (f"MLP(layer_dims={self.layer_dims}, activations={self.activations}, loss={self.loss!r}, "
                f"dtype={self.dtype.name!r}, epochs_trained={len(self.history)})")

    # --- parameters -----------------------------------------------------------------------------
    def get_parameters(self) -> dict[str, np.ndarray]:
        """Copies of the parameters: ``{"W1": (n1, n0), "b1": (n1, 1), ...}`` in the model dtype."""
        with model_lock(self):
            return self._net.course_parameters(copy=True)

    def set_parameters(self, params) -> MLP:
        """Replace the parameters (validated, copied, cast to the model dtype); returns ``self``.

        ``params`` needs exactly the keys ``W1, b1, ..., WL, bL`` with ``W{l}`` of shape ``(n_l, n_{l-1})``
        and ``b{l}`` of shape ``(n_l, 1)`` (or ``(n_l,)``), all finite. Nothing changes unless all are valid.
        """
        if not isinstance(params, dict):
            raise ValueError(f"params must be a dict of arrays, got {type(params).__name__}")
        dims = self._net.layer_sizes
        expected = {f"{k}{l}" for l in range(1, len(dims)) for k in "Wb"}
        if set(params) != expected:
            missing, extra = sorted(expected - set(params)), sorted(set(params) - expected)
            raise ValueError(f"params keys do not match the layers: missing {missing}, unexpected {extra}")
        checked = []
        for l in range(1, len(dims)):
            W = as_float_array(params[f"W{l}"], f"W{l}", ndim=None, dtype=self.dtype)
            b = as_float_array(params[f"b{l}"], f"b{l}", ndim=None, dtype=self.dtype)
            if W.shape != (dims[l], dims[l - 1]):
                raise ValueError(f"W{l} must have shape {(dims[l], dims[l - 1])}, got {W.shape}")
            if b.shape not in ((dims[l], 1), (dims[l],)):
                raise ValueError(f"b{l} must have shape {(dims[l], 1)}, got {b.shape}")
            checked.append((W, b))
        return self._set_checked({f"{k}{l}": v for l, (W, b) in enumerate(checked, start=1)
                                  for k, v in (("W", W), ("b", b))})

    def _set_checked(self, params) -> MLP:
        """Copy validated parameters of the model dtype into the network."""
        L = self._net.n_layers
        with model_lock(self):
            self._net.set_course_parameters([params[f"W{l}"] for l in range(1, L + 1)],
                                            [params[f"b{l}"] for l in range(1, L + 1)])
        return self

    # --- data -------------------------------------------------------------------------------------
    def _columns(self, X, name="X", magnitude: list | None = None) -> np.ndarray:
        X = as_float_array(X, name, dtype=self.dtype, magnitude=magnitude)
        if X.shape[0] != self._net.layer_sizes[0]:
            raise ValueError(f"{name} must have {self._net.layer_sizes[0]} rows (features; samples are columns), "
                             f"got shape {X.shape}")
        return _engine.kernel_array(X, self.dtype)

    def _target_columns(self, Y, m: int) -> np.ndarray:
        """``Y`` validated as the reference validates it (shape, finiteness, range for the loss)."""
        return _engine.kernel_array(check_Y(Y, self._net.layer_sizes[-1], m, self.dtype, self.loss))

    # --- training ---------------------------------------------------------------------------------
    def fit(self, X, Y, epochs=1, learning_rate=0.01, batch_size=None, shuffle=False, seed=None,
            verbose=False) -> MLP:
        """Train by minibatch SGD, continuing from the current parameters; returns ``self``.

        Parameters
        ----------
        X : (n_x, m) array
        Y : (n_y, m) array, or (m,) for one output
        epochs : int
        learning_rate : float
        batch_size : int or None
            Samples per minibatch (``None``: all of them); the last batch may be smaller.
        shuffle : bool
            Visit the samples in a new order each epoch, ``np.random.RandomState(seed).permutation(m)``
            drawn once per epoch (as :func:`fastmlp.reference.train` does).
        seed : int, optional
        verbose : bool
            Show a progress bar (tqdm when installed) with the current cost.

        Raises
        ------
        ValueError
            Bad input: shapes, non-finite values, targets outside [0, 1] for a cross-entropy loss,
            non-positive ``epochs``, ``learning_rate`` or ``batch_size``.
        FloatingPointError
            When an epoch produces a non-finite cost or weights; the model keeps the parameters of the last
            finite epoch and ``history`` the costs of the finished epochs.
        KeyboardInterrupt
            Re-raised after Ctrl-C once the running kernel call has returned (about 0.1 s; a call runs at
            least one minibatch): the model holds the parameters of its last completed epoch (an epoch cut
            short is rolled back) and ``history`` one cost per completed epoch.

        Training, prediction and ``set_parameters`` on one model from several threads run one after the
        other (a lock per model), never interleaved.
        """
        epochs = check_positive_int(epochs, "epochs")
        learning_rate = check_positive_float(learning_rate, "learning_rate")
        seed = check_seed(seed)
        with model_lock(self):
            x_top = []  # max |X|, read with the finiteness check, for the output check
            Xc = self._columns(X, magnitude=x_top)
            m = Xc.shape[1]
            Yc = self._target_columns(Y, m)
            batch_size = m if batch_size is None else min(check_positive_int(batch_size, "batch_size"), m)
            order = None
            if shuffle:
                rng = np.random.RandomState(seed)
                order = lambda n: np.stack([rng.permutation(m) for _ in range(n)])  # noqa: E731

            bar = progress(epochs, verbose)
            start = len(self.history)

            def record(costs):
                self.history.extend(costs.tolist())
                bar.update(len(costs), self.history[-1])

            try:
                with DeferredInterrupt() as interrupted:
                    try:
                        result = _engine.train_epochs(self._net, Xc, Yc, self.loss, learning_rate=learning_rate,
                                                      epochs=epochs, batch_size=batch_size, order=order,
                                                      epoch_offset=len(self.history), stop=interrupted,
                                                      progress=record, x_top=x_top[0] if x_top else None)
                    except FloatingPointError as exc:  # record the finished epochs not yet reported
                        self.history.extend(exc.completed.mean_batch_cost[len(self.history) - start:].tolist())
                        raise
            finally:
                bar.close()
        if result.interrupted:
            raise KeyboardInterrupt(f"training interrupted after {len(result.mean_batch_cost)} of {epochs} epochs")
        return self

    # --- inference --------------------------------------------------------------------------------
    def forward(self, X) -> np.ndarray:
        """Output activations ``AL`` of shape ``(n_y, m)`` for ``X`` of shape ``(n_x, m)``."""
        Xc = self._columns(X)
        with model_lock(self):
            return _engine.forward(self._net, Xc)

    def predict(self, X) -> np.ndarray:
        """Predictions for ``X`` ``(n_x, m)``.

        A sigmoid output gives 0/1 labels ``(n_y, m)`` (int64, threshold 0.5); a softmax output the
        index of the most probable class ``(m,)``; any other output its values ``(n_y, m)``.
        """
        AL = self.forward(X)
        if self._net.activations[-1] == "sigmoid":
            return (AL > 0.5).astype(np.int64)
        if self._net.activations[-1] == "softmax":
            return np.argmax(AL, axis=0)
        return AL

    def cost(self, X, Y) -> float:
        """The model's cost on ``(X, Y)``, computed as in training (cross-entropies from the logits)."""
        Xc = self._columns(X)
        Yc = self._target_columns(Y, Xc.shape[1])
        with model_lock(self):
            return _engine.cost(self._net, Xc, Yc, self.loss)


# --- model files: how an MLP is stored (see fastmlp._modelfile) ----------------------------------------
#
# ``layer_dims`` int64 ``[n_x, n_1, ..., n_L]``; ``activations`` text, one per layer; ``loss``; ``leaky_slope``
# float64; ``W<l>`` ``(n_l, n_{l-1})`` and ``b<l>`` ``(n_l, 1)`` in ``dtype``.

_MLP_KEYS = ("layer_dims", "activations", "loss", "leaky_slope")


def _mlp_to_entries(model: MLP) -> dict[str, np.ndarray]:
    dtype = np.dtype(model.dtype)
    entries = {
        "layer_dims": np.asarray(model.layer_dims, dtype=np.int64),
        "activations": np.asarray(model.activations, dtype=np.str_),
        "loss": _modelfile.text(model.loss),
        "leaky_slope": np.asarray(float(model.leaky_slope), dtype=np.float64),
        "dtype": _modelfile.text(dtype.name),
        "history": np.asarray(model.history, dtype=np.float64),
    }
    entries.update(model.get_parameters())
    return entries


def _mlp_from_entries(data, dtype, history) -> MLP:
    bad = _modelfile.ModelFileError
    data.require(*_MLP_KEYS)
    dims_a = data["layer_dims"]
    if dims_a.dtype.kind not in "iu" or dims_a.ndim != 1 or dims_a.size < 2:
        raise bad(f"layer_dims must be a 1-D integer array of length >= 2, got {dims_a!r}")
    if np.any(dims_a < 1):
        raise bad(f"layer_dims must be positive, got {dims_a.tolist()}")
    dims = [int(d) for d in dims_a]
    n_layers = len(dims) - 1
    acts_a = data["activations"]
    if acts_a.dtype.kind != "U" or acts_a.shape != (n_layers,):
        raise bad(f"activations must be {n_layers} names (one per layer), got shape {acts_a.shape}")
    acts = [str(a) for a in acts_a]
    for i, a in enumerate(acts[:-1], start=1):
        if a not in ACTIVATIONS:
            raise bad(f"unknown activation {a!r} for layer {i}")
    if acts[-1] not in ACTIVATIONS + OUTPUT_ONLY_ACTIVATIONS:
        raise bad(f"unknown output activation {acts[-1]!r}")
    loss = data.text("loss")
    if loss not in LOSSES:
        raise bad(f"unknown loss {loss!r}")
    try:
        check_loss_output(loss, acts[-1])
    except ValueError as exc:
        raise bad(str(exc)) from None
    slope = float(data.number("leaky_slope", "f"))
    params = {}
    for layer in range(1, n_layers + 1):  # every shape is checked before the model allocates anything
        params[f"W{layer}"] = data.floats(f"W{layer}", (dims[layer], dims[layer - 1]), dtype)
        params[f"b{layer}"] = data.floats(f"b{layer}", (dims[layer], 1), dtype)
    data.only(set(_MLP_KEYS) | set(params))
    try:
        model = MLP(dims, activations=acts, loss=loss, dtype=dtype, leaky_slope=slope)
        model.set_parameters(params)
    except ValueError as exc:
        raise bad(str(exc)) from None
    model.history = [float(c) for c in history]
    return model


def _mlp_describe(model: MLP) -> dict:
    return {"n_features_in": model.layer_dims[0], "n_outputs": model.layer_dims[-1], "dtype": model.dtype,
            "layer_dims": model.layer_dims, "activations": model.activations, "loss": model.loss}


_modelfile.register_kind(_modelfile.ModelKind("MLP", MLP, _mlp_to_entries, _mlp_from_entries, _mlp_describe))
