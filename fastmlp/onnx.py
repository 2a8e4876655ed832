"""Export fastmlp models to ONNX, for serving from any ONNX runtime (C++, C#, Java, JavaScript, databases).

Needs the ``onnx`` extra (``pip install "fastmlp[onnx]"``: onnx, skl2onnx, onnxruntime).

- :func:`to_onnx` turns a :class:`fastmlp.MLP`, :class:`fastmlp.MLPClassifier` or
  :class:`fastmlp.MLPRegressor` into an ``onnx.ModelProto`` (only ``onnx`` is needed for that);
  :func:`save_onnx` writes it to a file atomically.
- Importing this module registers fastmlp's estimators with skl2onnx (when it is installed), so that
  ``skl2onnx.to_onnx(pipeline, X[:1])`` converts scikit-learn pipelines that contain them
  (:func:`register_skl2onnx` does it explicitly).
- ``fastmlp export MODEL.npz OUT.onnx`` exports a saved model file from the command line.

The graphs (opset :data:`OPSET`, standard operators only) take one input ``X`` of shape ``(N, n_features)``,
**samples as rows** (the ONNX convention, also for :class:`fastmlp.MLP`, whose own methods take samples as
columns), of element type float32 or float64 (``dtype``; the model's own by default). Outputs:

===================  =====================================================================================
model                outputs
===================  =====================================================================================
``MLPClassifier``    ``label`` ``(N,)`` (int64 for integer classes, string for text, double for real
                     numbers; ``(N, k)`` int64 indicators for multilabel targets) and ``probabilities``
                     ``(N, k)`` -- as skl2onnx's converter for scikit-learn's ``MLPClassifier``
``MLPRegressor``     ``variable`` ``(N, n_outputs)``
``MLP``              ``output`` ``(N, n_y)``: the output activations (``MLP.forward(X.T).T``), and for a
                     sigmoid output ``label`` ``(N, n_y)`` int64 (``MLP.predict``), for a softmax output
                     ``label`` ``(N,)`` int64, the index of the most probable class
===================  =====================================================================================

Every hidden activation (relu, leaky_relu with the model's slope, sigmoid/logistic, tanh, linear/identity)
and every output (logistic, softmax, identity, and ``exp`` for a Poisson regressor) is exported. The
float64 graph computes what fastmlp computes to about 1e-12 relative; float32 to about 1e-5.

A model saved by ``fastmlp train`` carries its preprocessing; :func:`to_onnx` with ``preprocessing=`` (as
``fastmlp export`` does) puts it into the graph: the input is then the raw feature columns in the training
order (the names are in the model's metadata, ``feature_names``), standardised inside the graph, and the
outputs are those of ``fastmlp predict``: ``label`` (class labels) and ``probabilities`` for a classifier,
``variable`` (in the target's units) for a regression.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["OPSET", "IR_VERSION", "to_onnx", "save_onnx", "export_model_file", "register_skl2onnx"]

#: the ONNX operator set the exported graphs use (any runtime from 2022 on reads it)
OPSET = 17
#: the ONNX file format version written (readable by onnxruntime >= 1.13 and onnx >= 1.13)
IR_VERSION = 8

#: activation names (fastmlp's and scikit-learn's) -> the names used below
_ACTIVATION_ALIASES = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "sigmoid": "sigmoid",
    "logistic": "sigmoid",
    "tanh": "tanh",
    "linear": "linear",
    "identity": "linear",
    "softmax": "softmax",
    "exp": "exp",
}
_FLOAT_TYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ------------------------------------------------------------------------------------------ what to export


class _Network:
    """What the graph computes: per layer ``Z = A @ coef + intercept``, ``A = g(Z)``.

    ``coefs[l]`` is ``(n_in, n_out)``, ``intercepts[l]`` ``(n_out,)``, ``activations[l]`` a name of
    ``_ACTIVATION_ALIASES``' values, ``leaky_slope`` the slope of ``leaky_relu``.
    """

    def __init__(self, coefs, intercepts, activations, leaky_slope):
        self.coefs = [np.asarray(c) for c in coefs]
        self.intercepts = [np.asarray(b).reshape(-1) for b in intercepts]
        self.activations = []
        for name in activations:
            if name not in _ACTIVATION_ALIASES:
                raise ValueError(f"cannot export activation {name!r} to ONNX (known: "
                                 f"{', '.join(sorted(_ACTIVATION_ALIASES))})")
            self.activations.append(_ACTIVATION_ALIASES[name])
        if "softmax" in self.activations[:-1] or "exp" in self.activations[:-1]:
            raise ValueError("softmax and exp are output activations only")
        self.leaky_slope = float(leaky_slope)
        for c in self.coefs + self.intercepts:
            if not np.all(np.isfinite(c)):
                raise ValueError("cannot export a model whose parameters are not finite")

    @property
    def n_features(self) -> int:
        return self.coefs[0].shape[0]


def _describe(model):
    """``(kind, _Network, model dtype)`` for a fastmlp model, with a clear error for anything else."""
    name = type(model).__name__
    if name in ("MLPClassifier", "MLPRegressor") and type(model).__module__.startswith("fastmlp"):
        if not hasattr(model, "coefs_"):
            raise ValueError(f"this {name} is not fitted yet: call fit before exporting it")
        out = getattr(model, "out_activation_", None)
        if out not in _ACTIVATION_ALIASES:
            raise ValueError(f"cannot export the output activation {out!r} of this {name}")
        n_hidden = len(model.coefs_) - 1
        net = getattr(model, "_net", None)
        slope = net.leaky_slope if net is not None else 0.01
        acts = [model.activation] * n_hidden + [out]
        dtype = np.asarray(model.coefs_[0]).dtype
        return name, _Network(model.coefs_, model.intercepts_, acts, slope), dtype
    if hasattr(model, "get_parameters") and hasattr(model, "layer_dims") and hasattr(model, "activations"):
        params = model.get_parameters()
        L = len(model.layer_dims) - 1
        coefs = [params[f"W{l}"].T for l in range(1, L + 1)]
        intercepts = [params[f"b{l}"] for l in range(1, L + 1)]
        return "MLP", _Network(coefs, intercepts, model.activations, model.leaky_slope), np.dtype(model.dtype)
    raise TypeError(f"cannot export a {name}: expected fastmlp.MLP, MLPClassifier or MLPRegressor")


# -------------------------------------------------------------------------------------- graph construction


class _Graph:
    """Nodes and constants of a graph under construction, written with :mod:`onnx.helper`."""

    def __init__(self):
        self.nodes = []
        self.initializers = []
        self._used: set[str] = set()

    def name(self, hint: str) -> str:
        name, i = hint, 0
        while name in self._used:
            i += 1
            name = f"{hint}_{i}"
        self._used.add(name)
        return name

    def const(self, hint: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs, hint: str | None = None, *, out: str | None = None, **attrs) -> str:
        from onnx import helper

        out = out if out is not None else self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=self.name(f"{op_type}_node"),
                                           **attrs))
        return out


class _Skl2OnnxGraph:
    """The same interface, adding to a skl2onnx conversion (``scope``, ``container``)."""

    def __init__(self, scope, container):
        self.scope, self.container = scope, container

    def name(self, hint: str) -> str:
        return self.scope.get_unique_variable_name(hint)

    def const(self, hint: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        tensor = numpy_helper.from_array(np.asarray(value))
        self.container.add_node("Constant", [], [name], name=self.scope.get_unique_operator_name("Constant"),
                                value=tensor)
        return name

    def op(self, op_type: str, inputs, hint: str | None = None, *, out: str | None = None, **attrs) -> str:
        out = out if out is not None else self.name(hint or op_type.lower())
        self.container.add_node(op_type, list(inputs), [out], name=self.scope.get_unique_operator_name(op_type),
                                **attrs)
        return out


def _emit_network(g, x: str, net: _Network, dtype: np.dtype) -> str:
    """Append the layers to ``g``, reading ``x`` ``(N, n_features)``; return the output activations' name."""
    a = x
    zero = None
    for l, (coef, intercept, act) in enumerate(zip(net.coefs, net.intercepts, net.activations, strict=True), 1):
        w = g.const(f"coef_{l}", coef.astype(dtype))
        b = g.const(f"intercept_{l}", intercept.astype(dtype))
        z = g.op("Gemm", [a, w, b], f"z_{l}")
        if act == "linear":
            a = z
        elif act == "relu":
            a = g.op("Relu", [z], f"a_{l}")
        elif act == "leaky_relu":
            # exactly as the kernels: z if z > 0 else slope * z, with the slope in the model's dtype
            # (ONNX's LeakyRelu holds its slope as a float32 attribute, which float64 would feel)
            if zero is None:
                zero = g.const("zero", np.zeros((), dtype))
                slope = g.const("leaky_slope", np.asarray(net.leaky_slope, dtype))
            positive = g.op("Greater", [z, zero], f"positive_{l}")
            scaled = g.op("Mul", [z, slope], f"scaled_{l}")
            a = g.op("Where", [positive, z, scaled], f"a_{l}")
        elif act == "sigmoid":
            a = g.op("Sigmoid", [z], f"a_{l}")
        elif act == "tanh":
            a = g.op("Tanh", [z], f"a_{l}")
        elif act == "softmax":
            a = g.op("Softmax", [z], f"a_{l}", axis=1)
        else:  # exp
            a = g.op("Exp", [z], f"a_{l}")
    return a


def _label_constant(classes) -> tuple[np.ndarray, str]:
    """``classes`` as an ONNX-storable array and its label kind (``"int64"``, ``"string"``, ``"double"``)."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "biu":
        return classes.astype(np.int64), "int64"
    if classes.dtype.kind in "US":
        return np.asarray([str(c) for c in classes], dtype=object), "string"
    if classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes):
        return np.asarray(list(classes), dtype=object), "string"
    if classes.dtype.kind == "f":
        return classes.astype(np.float64), "double"
    raise ValueError(f"cannot export class labels of dtype {classes.dtype} to ONNX (numbers or text only)")


def _emit_class_outputs(g, p: str, n_outputs: int, classes, *, multilabel: bool, label_out: str, proba_out: str,
                        dtype: np.dtype, label_kind: str | None = None) -> None:
    """Labels and probabilities from the output activations ``p`` ``(N, n_outputs)``.

    Binary (one logistic output): probabilities ``[1 - p, p]``, label ``classes[p > 0.5]``; multiclass:
    label ``classes[argmax]`` (the first on ties, as NumPy); multilabel: ``(p > 0.5)`` as int64 indicators.
    """
    if multilabel:
        g.op("Identity", [p], out=proba_out)
        half = g.const("half", np.asarray(0.5, dtype))
        g.op("Cast", [g.op("Greater", [p, half], "above_half")], out=label_out, to=7)  # INT64
        return
    table, kind = _label_constant(classes)
    if label_kind is not None and label_kind != kind:
        table = table.astype(np.int64) if label_kind == "int64" else np.asarray([str(c) for c in table],
                                                                                  dtype=object)
    if n_outputs == 1:
        one = g.const("one", np.ones((1, 1), dtype))
        q = g.op("Sub", [one, p], "negative_class_proba")
        proba = g.op("Concat", [q, p], "proba", axis=1)
    else:
        proba = p
    index = g.op("ArgMax", [proba], "class_index", axis=1, keepdims=0)
    g.op("Identity", [proba], out=proba_out)
    g.op("Gather", [g.const("classes", table), index], out=label_out, axis=0)


# ------------------------------------------------------------------------------------------------ export


def _onnx_elem_type(kind_or_dtype) -> int:
    from onnx import TensorProto

    return {
        "float32": TensorProto.FLOAT,
        "float64": TensorProto.DOUBLE,
        "int64": TensorProto.INT64,
        "string": TensorProto.STRING,
        "double": TensorProto.DOUBLE,
    }[str(kind_or_dtype)]


def _check_export_dtype(dtype, default: np.dtype) -> np.dtype:
    dt = default if dtype is None else np.dtype(dtype)
    if dt not in _FLOAT_TYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def to_onnx(model, *, dtype=None, preprocessing=None, name: str | None = None):
    """The ONNX graph of a fastmlp model.

    Parameters
    ----------
    model : fastmlp.MLP, fastmlp.MLPClassifier or fastmlp.MLPRegressor
        A fitted estimator, or an MLP (its current parameters).
    dtype : {"float32", "float64"}, optional
        Element type of the input, the weights and the computation (default: the model's).
    preprocessing : dict, optional
        The preprocessing a model file carries (``fastmlp.io.load_model(path, return_preprocessing=True)``):
        ``mean`` / ``std`` standardise the input inside the graph; ``task`` with ``classes`` (or
        ``target_mean`` / ``target_std``) decodes the outputs as ``fastmlp predict`` does (only for
        :class:`fastmlp.MLP`).
    name : str, optional
        The graph's name (default: the model's kind).

    Returns
    -------
    onnx.ModelProto
        Input ``X`` ``(N, n_features)``; outputs as described in :mod:`fastmlp.onnx`.

    Raises
    ------
    TypeError
        ``model`` is not a fastmlp model.
    ValueError
        An unfitted estimator, non-finite parameters, an unsupported ``dtype`` or class label type, or
        ``preprocessing`` that does not fit the model.
    ImportError
        The ``onnx`` package is missing.
    """
    _require("onnx")
    from onnx import helper

    from fastmlp._version import __version__

    kind, net, model_dtype = _describe(model)
    dt = _check_export_dtype(dtype, model_dtype)
    pre = dict(preprocessing or {})
    g = _Graph()
    x = "X"
    g._used.add(x)
    a = x
    if "mean" in pre or "std" in pre:
        mean = np.asarray(pre.get("mean", 0.0), dtype=np.float64).reshape(-1)
        std = np.asarray(pre.get("std", 1.0), dtype=np.float64).reshape(-1)
        if mean.size != net.n_features or std.size != net.n_features:
            raise ValueError(f"preprocessing mean/std have {mean.size}/{std.size} entries; the model has "
                             f"{net.n_features} features")
        a = g.op("Sub", [a, g.const("feature_mean", mean.astype(dt))], "centred")
        a = g.op("Div", [a, g.const("feature_std", std.astype(dt))], "standardised")
    out = _emit_network(g, a, net, dt)
    n_out = net.coefs[-1].shape[1]
    task = pre.get("task") if kind == "MLP" else None
    outputs = []  # (name, element kind, shape)

    if kind == "MLPClassifier":
        multilabel = getattr(getattr(model, "_label_binarizer", None), "y_type_", "") == "multilabel-indicator"
        _emit_class_outputs(g, out, n_out, model.classes_, multilabel=multilabel, label_out="label",
                            proba_out="probabilities", dtype=dt)
        k = n_out if (multilabel or n_out > 1) else 2
        label_kind = "int64" if multilabel else _label_constant(model.classes_)[1]
        outputs = [("label", label_kind, ["N", k] if multilabel else ["N"]), ("probabilities", dt.name, ["N", k])]
    elif kind == "MLPRegressor":
        g.op("Identity", [out], out="variable")
        outputs = [("variable", dt.name, ["N", n_out])]
    elif task in ("binary", "multiclass"):
        classes = np.atleast_1d(np.asarray(pre["classes"]))
        expected = 1 if task == "binary" else classes.size
        if n_out != expected:
            raise ValueError(f"preprocessing says {task} with {classes.size} classes; the model has {n_out} outputs")
        _emit_class_outputs(g, out, n_out, classes, multilabel=False, label_out="label",
                            proba_out="probabilities", dtype=dt)
        outputs = [("label", _label_constant(classes)[1], ["N"]), ("probabilities", dt.name, ["N", classes.size])]
    elif task == "regression":
        if n_out != 1:
            raise ValueError(f"preprocessing says regression (one target); the model has {n_out} outputs")
        scaled = g.op("Mul", [out, g.const("target_std", np.asarray(float(pre["target_std"]), dt))], "scaled")
        g.op("Add", [scaled, g.const("target_mean", np.asarray(float(pre["target_mean"]), dt))], out="variable")
        outputs = [("variable", dt.name, ["N", 1])]
    else:  # a plain MLP: output activations, and labels as MLP.predict gives them
        g.op("Identity", [out], out="output")
        outputs = [("output", dt.name, ["N", n_out])]
        if net.activations[-1] == "sigmoid":
            above = g.op("Greater", [out, g.const("half", np.asarray(0.5, dt))], "above_half")
            g.op("Cast", [above], out="label", to=_onnx_elem_type("int64"))
            outputs.append(("label", "int64", ["N", n_out]))
        elif net.activations[-1] == "softmax":
            g.op("ArgMax", [out], out="label", axis=1, keepdims=0)
            outputs.append(("label", "int64", ["N"]))

    graph = helper.make_graph(
        g.nodes,
        name or kind,
        [helper.make_tensor_value_info(x, _onnx_elem_type(dt.name), ["N", net.n_features])],
        [helper.make_tensor_value_info(n, _onnx_elem_type(k), shape) for n, k, shape in outputs],
        initializer=g.initializers,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="fastmlp", producer_version=__version__)
    onnx_model.ir_version = IR_VERSION
    sizes = [net.n_features] + [c.shape[1] for c in net.coefs]
    onnx_model.doc_string = f"fastmlp {kind}: {' -> '.join(map(str, sizes))}"
    meta = {"kind": kind, "activations": ",".join(net.activations)}
    if "feature_names" in pre:
        meta["feature_names"] = ",".join(str(f) for f in np.atleast_1d(pre["feature_names"]))
    elif hasattr(model, "feature_names_in_"):
        meta["feature_names"] = ",".join(str(f) for f in model.feature_names_in_)
    helper.set_model_props(onnx_model, meta)
    return onnx_model


def save_onnx(model, path, **kwargs) -> None:
    """Export ``model`` with :func:`to_onnx` (``kwargs`` passed on) and write it to ``path`` atomically."""
    from fastmlp.io import atomic_write

    proto = to_onnx(model, **kwargs)
    data = proto.SerializeToString()
    atomic_write(os.fspath(path), lambda fh: fh.write(data))


def export_model_file(model_path, onnx_path, *, dtype=None) -> None:
    """Export a model file written by :func:`fastmlp.io.save_model` (``fastmlp train``, ``model.save``) to
    ``onnx_path``, with the preprocessing it carries (``fastmlp export MODEL.npz OUT.onnx``)."""
    from fastmlp.io import load_model

    _require("onnx")
    model, pre = load_model(model_path, return_preprocessing=True)
    save_onnx(model, onnx_path, dtype=dtype, preprocessing=pre)


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"exporting to ONNX needs the {module!r} package: pip install \"fastmlp[onnx]\"") from exc


# --------------------------------------------------------------------------------------------- skl2onnx


def _skl2onnx_shape_calculator(operator):
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType, StringTensorType

    est = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    float_type = DoubleTensorType if isinstance(operator.inputs[0].type, DoubleTensorType) else FloatTensorType
    n_out = est.coefs_[-1].shape[1]
    if type(est).__name__ == "MLPRegressor":
        operator.outputs[0].type = float_type([n, n_out])
        return
    multilabel = est._label_binarizer.y_type_ == "multilabel-indicator"
    k = n_out if (multilabel or n_out > 1) else 2
    if multilabel:
        operator.outputs[0].type = Int64TensorType([n, k])
    elif _label_constant(est.classes_)[1] == "string":
        operator.outputs[0].type = StringTensorType([n])
    else:
        operator.outputs[0].type = Int64TensorType([n])
    operator.outputs[1].type = float_type([n, k])


def _skl2onnx_converter(scope, operator, container):
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    est = operator.raw_operator
    dt = np.dtype(np.float64) if isinstance(operator.inputs[0].type, DoubleTensorType) else np.dtype(np.float32)
    g = _Skl2OnnxGraph(scope, container)
    x = operator.inputs[0].full_name
    if not isinstance(operator.inputs[0].type, DoubleTensorType):
        x = g.op("Cast", [x], "cast_input", to=_onnx_elem_type("float32"))
    _, net, _ = _describe(est)
    out = _emit_network(g, x, net, dt)
    if type(est).__name__ == "MLPRegressor":
        g.op("Identity", [out], out=operator.outputs[0].full_name)
        return
    multilabel = est._label_binarizer.y_type_ == "multilabel-indicator"
    label_kind = "string" if isinstance(operator.outputs[0].type, StringTensorType) else "int64"
    _emit_class_outputs(g, out, net.coefs[-1].shape[1], est.classes_, multilabel=multilabel,
                        label_out=operator.outputs[0].full_name, proba_out=operator.outputs[1].full_name,
                        dtype=dt, label_kind=label_kind)


def register_skl2onnx() -> None:
    """Register fastmlp's estimators with skl2onnx so that ``skl2onnx.to_onnx`` converts them (also inside
    pipelines). Called when :mod:`fastmlp.onnx` is imported with skl2onnx installed; safe to call again.

    Classifiers accept skl2onnx's usual options (``zipmap``, ``nocl``, ``output_class_labels``); integer
    class labels become int64, any other labels strings, as skl2onnx does for scikit-learn's MLP.
    """
    _require("skl2onnx")
    from skl2onnx import update_registered_converter

    from fastmlp.estimators import MLPClassifier, MLPRegressor

    update_registered_converter(MLPClassifier, "FastmlpMLPClassifier", _skl2onnx_shape_calculator,
                                _skl2onnx_converter,
                                options={"zipmap": [True, False, "columns"], "nocl": [True, False],
                                         "output_class_labels": [False, True]})
    update_registered_converter(MLPRegressor, "FastmlpMLPRegressor", _skl2onnx_shape_calculator,
                                _skl2onnx_converter)


def _register_if_available() -> None:
    import importlib.util

    if importlib.util.find_spec("skl2onnx") is not None and importlib.util.find_spec("sklearn") is not None:
        register_skl2onnx()


_register_if_available()
