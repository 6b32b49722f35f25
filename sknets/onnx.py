"""Export fitted sknets estimators to ONNX through skl2onnx.

Importing this module registers a converter for each of
:class:`~sknets.MLPClassifier`, :class:`~sknets.MLPRegressor`,
:class:`~sknets.ConvClassifier` and :class:`~sknets.ConvRegressor` with
`skl2onnx <https://onnx.ai/sklearn-onnx/>`_, so that ``skl2onnx.to_onnx``
converts them, alone or in a scikit-learn pipeline with steps skl2onnx
knows (scalers, column transformers, ...). It needs the ``onnx`` extra
(``pip install sknets[onnx]``); ``import sknets`` never imports skl2onnx.

The graphs follow skl2onnx's own estimators:

* a classifier's outputs are ``label`` (labels from ``classes_``: int64 for
  integer and boolean classes, strings for string classes; an int64 0/1
  matrix of shape ``(n, n_labels)`` in multilabel classification) and
  ``probabilities``, ``predict_proba``'s columns, as a list of
  ``{class: probability}`` dicts (ZipMap) unless the option
  ``zipmap=False`` asks for a ``(n, n_classes)`` tensor;
* a regressor's output is ``variable``, of shape ``(n, n_outputs)``
  (``(n, 1)`` for one target).

The dense networks (MLPs) are ONNX operators written from ``coefs_`` and
``intercepts_``. The convolutional networks go through PyTorch's exporter
(its TorchScript-based one, ``dynamo=False``, which needs nothing beyond
torch) at the opset of the skl2onnx graph (exported at opset 20 at most,
then raised to the graph's by onnx's version converter), and the graph reads
X as ``predict`` does: flat rows (or ``(n, *sample_shape)`` arrays)
unflattened to ``input_shape_``, channels first or with
``data_format='channels_last'``. The batch axis is dynamic.

Arithmetic is that of the input type: float32 for a float32 input
(``FloatTensorType``), float64 for ``DoubleTensorType``, whatever the
precision the network was trained in, except that convolutional networks
always run in float32 (onnxruntime's CPU convolutions exist for float32
only), with casts around them for a float64 input. onnxruntime's ZipMap
takes float32 only: with a float64 input, ask for ``zipmap=False``, as for
skl2onnx's own classifiers.

Networks trained with ``precision='bfloat16'`` (autocast) and classifiers
fitted on a single class have no export and raise.
"""

import copy
import inspect
import io
import types
import warnings

import numpy as np
import onnx
import onnx.helper
import onnx.numpy_helper
import onnx.version_converter
import skl2onnx
import torch
from onnx import TensorProto
from skl2onnx.common.data_types import (
    DoubleTensorType,
    FloatTensorType,
    Int64TensorType,
    StringTensorType,
)
from skl2onnx.common.utils import check_input_and_output_numbers
from skl2onnx.common.utils_classifier import get_label_classes
from skl2onnx.helpers import add_onnx_graph
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._conv import ConvClassifier, ConvRegressor
from ._mlp import MLPClassifier, MLPRegressor

__all__ = ["register", "to_onnx"]

#: The options of skl2onnx's classifiers: with them, skl2onnx parses a
#: classifier into ``label`` and ``probabilities`` (and a ZipMap).
CLASSIFIER_OPTIONS = {
    "zipmap": [True, False, "columns"],
    "output_class_labels": [False, True],
    "nocl": [True, False],
}


def _torch_max_opset():
    """The highest opset of PyTorch's TorchScript-based exporter (20 in
    torch 2.13), from its private constants where they are, else 17."""
    constants = getattr(torch.onnx, "_constants", None)
    for name in ("ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", "ONNX_MAX_OPSET"):
        if hasattr(constants, name):
            return int(getattr(constants, name))
    return 17


#: The highest opset of PyTorch's TorchScript-based exporter.
TORCH_MAX_OPSET = _torch_max_opset()
#: The TorchScript-based exporter: the default before torch 2.9, which
#: added ``dynamo`` (its exporter needs onnxscript) in 2.5.
_LEGACY_EXPORTER = (
    {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
)


# -- registration -------------------------------------------------------------------


def register():
    """Register the converters of the sknets estimators with skl2onnx.

    Called when :mod:`sknets.onnx` is imported, after which
    ``skl2onnx.to_onnx`` converts the four estimators. Calling it again
    registers them again, the same way (it is idempotent): useful should
    other code have replaced a converter.

    See Also
    --------
    to_onnx : Register, and convert a model.

    Examples
    --------
    >>> import numpy as np
    >>> import skl2onnx
    >>> from sknets import MLPRegressor
    >>> from sknets.onnx import register
    >>> register()  # done when sknets.onnx is imported; harmless again
    >>> X = np.random.default_rng(0).random((20, 3)).astype(np.float32)
    >>> reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    >>> reg = reg.fit(X, X.sum(axis=1))
    >>> onx = skl2onnx.to_onnx(reg, X[:1])
    >>> [output.name for output in onx.graph.output]
    ['variable']
    """
    for cls in (MLPClassifier, ConvClassifier):
        skl2onnx.update_registered_converter(
            cls,
            f"Sknets{cls.__name__}",
            _classifier_shapes,
            _convert_classifier,
            options=CLASSIFIER_OPTIONS,
        )
    for cls in (MLPRegressor, ConvRegressor):
        skl2onnx.update_registered_converter(
            cls, f"Sknets{cls.__name__}", _regressor_shapes, _convert_regressor
        )


def to_onnx(model, X=None, **kwargs):
    """Convert a fitted estimator or pipeline to an ONNX model.

    :func:`register` then ``skl2onnx.to_onnx(model, X, **kwargs)``: the
    model may be an sknets estimator, or a pipeline of sknets estimators and
    steps that skl2onnx converts.

    Parameters
    ----------
    model : estimator
        The fitted estimator or pipeline.
    X : array-like, default=None
        An example of the input, such as ``X[:1].astype(np.float32)``: its
        type and width set the ONNX input (``float32`` or ``float64``; the
        batch size is left dynamic). Or give ``initial_types``.
    **kwargs : dict
        Passed on to ``skl2onnx.to_onnx``: ``options`` (``{id(clf):
        {"zipmap": False}}`` for a probability tensor instead of a list of
        dicts), ``target_opset``, ``initial_types``...

    Returns
    -------
    onx : onnx.ModelProto
        The ONNX model; ``onx.SerializeToString()`` gives its bytes for
        onnxruntime's ``InferenceSession``.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from sknets import MLPClassifier
    >>> from sknets.onnx import to_onnx
    >>> X, y = load_iris(return_X_y=True)
    >>> X = X.astype(np.float32)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=50, random_state=0)
    >>> model = make_pipeline(MinMaxScaler(), clf).fit(X, y)
    >>> onx = to_onnx(model, X[:1], options={id(clf): {"zipmap": False}})
    >>> session = ort.InferenceSession(onx.SerializeToString(),
    ...                                providers=["CPUExecutionProvider"])
    >>> label, proba = session.run(None, {"X": X[:5]})
    >>> bool(np.array_equal(label, model.predict(X[:5])))
    True
    >>> bool(np.allclose(proba, model.predict_proba(X[:5]), rtol=1e-4, atol=1e-6))
    True
    """
    register()
    return skl2onnx.to_onnx(model, X, **kwargs)


# -- what a fitted estimator exports --------------------------------------------------


def _check_exportable(est):
    """Raise for a fitted state the ONNX graph would not reproduce."""
    check_is_fitted(est)
    precision = getattr(est.net_, "precision", None)
    if precision == "bfloat16":
        raise NotImplementedError(
            f"{type(est).__name__} was trained with precision='bfloat16': its "
            "predictions run under bfloat16 autocast, which the ONNX export does not "
            "reproduce. Train with precision='float32' (or 'float64') to export it."
        )
    if hasattr(est, "classes_") and len(est.classes_) < 2:
        raise ValueError(
            f"{type(est).__name__} was fitted on a single class ({est.classes_!r}): "
            "its two columns of probabilities have no second label, and it has no "
            "ONNX export. Fit it on two classes or more."
        )


def _is_conv(est):
    return isinstance(est, (ConvClassifier, ConvRegressor))


def _is_multilabel(est):
    return est._label_binarizer.y_type_ == "multilabel-indicator"


def _n_probability_columns(est):
    """``predict_proba``'s width: two columns for one logistic output."""
    if est.n_outputs_ == 1 and not _is_multilabel(est):
        return 2
    return est.n_outputs_


def _labels(scope, est):
    """The labels of the ``label`` output, as an array for an ONNX tensor:
    int64 for integer, boolean and (whole) float classes, bytes for strings
    (``classes_``, or ``0 .. n - 1`` with the option ``nocl=True``)."""
    classes = np.asarray(get_label_classes(scope, est))
    if classes.dtype.kind in "biuf":
        # (scikit-learn takes float labels that are whole numbers only)
        return classes.astype(np.int64)
    if all(isinstance(c, str) for c in classes):
        return np.array([c.encode("utf-8") for c in classes])
    raise NotImplementedError(
        f"{type(est).__name__} has classes_ {classes!r}: ONNX labels are integers or "
        "strings, as in skl2onnx. Fit it on integer or string labels to export it."
    )


def _compute_type(variable):
    """The ONNX element type of the arithmetic for an input variable."""
    if isinstance(variable.type, DoubleTensorType):
        return TensorProto.DOUBLE
    return TensorProto.FLOAT


def _tensor_type(proto_type):
    return DoubleTensorType if proto_type == TensorProto.DOUBLE else FloatTensorType


def _check_input(operator):
    """The input's shape agrees with the samples the estimator was fitted on."""
    est = operator.raw_operator
    dims = list(operator.inputs[0].type.shape or [])
    name = type(est).__name__
    if len(dims) == 2:
        if isinstance(dims[1], int) and dims[1] != est.n_features_in_:
            raise ValueError(
                f"The ONNX input has {dims[1]} features, but {name} was fitted "
                f"with n_features_in_={est.n_features_in_}."
            )
        return
    if not _is_conv(est) or len(dims) < 2:
        raise ValueError(
            f"{name} takes an ONNX input of shape (n_samples, n_features), got {dims}."
        )
    sample = dims[1:]
    if not all(isinstance(d, int) for d in sample):
        raise ValueError(
            f"The sample shape of the ONNX input of {name} must be known, got {dims}."
        )
    shape = est._normalize_shape(sample, est._reading(fitted=True), "The samples of X")
    if shape != est.input_shape_:
        raise ValueError(
            f"The ONNX input has samples of shape {tuple(sample)}, but {name} was "
            f"fitted on samples of shape {est.input_shape_}."
        )


# -- shape calculators ---------------------------------------------------------------


def _classifier_shapes(operator):
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=2)
    est = operator.raw_operator
    _check_exportable(est)
    _check_input(operator)
    n = operator.inputs[0].get_first_dimension()
    labels = _labels(operator.scope_inst, est)
    label_type = StringTensorType if labels.dtype.kind == "S" else Int64TensorType
    label_shape = [n, est.n_outputs_] if _is_multilabel(est) else [n]
    operator.outputs[0].set_type(label_type(label_shape))
    proba_type = _tensor_type(_compute_type(operator.inputs[0]))
    operator.outputs[1].set_type(proba_type([n, _n_probability_columns(est)]))


def _regressor_shapes(operator):
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=1)
    est = operator.raw_operator
    _check_exportable(est)
    _check_input(operator)
    n = operator.inputs[0].get_first_dimension()
    out_type = _tensor_type(_compute_type(operator.inputs[0]))
    operator.outputs[0].set_type(out_type([n, est.n_outputs_]))


# -- converters ------------------------------------------------------------------------


def _node(scope, container, op_type, inputs, prefix, **attrs):
    """Add one node; return the name of its (single) output."""
    output = scope.get_unique_variable_name(prefix)
    container.add_node(
        op_type, inputs, output, name=scope.get_unique_operator_name(op_type), **attrs
    )
    return output


def _cast(scope, container, variable, proto_type):
    """The input variable's name, cast to ``proto_type`` if it is not of it."""
    if type(variable.type) is _tensor_type(proto_type):
        return variable.full_name
    return _node(scope, container, "Cast", variable.full_name, "cast_input", to=proto_type)


def _constant(scope, container, prefix, proto_type, values):
    """Add an initializer of ``values`` as ``proto_type``; return its name."""
    name = scope.get_unique_variable_name(prefix)
    if isinstance(values, torch.Tensor):
        # coefs_ of a fit on tensors (scikit-learn's array API), on any device
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if proto_type == TensorProto.STRING:
        content = values.ravel().tolist()
    else:
        # a tensor of raw bytes: no Python list of the weights on the way
        dtype = onnx.helper.tensor_dtype_to_np_dtype(proto_type)
        content = onnx.numpy_helper.from_array(values.astype(dtype))
    container.add_initializer(name, proto_type, list(values.shape), content)
    return name


def _convert_classifier(scope, operator, container):
    est = operator.raw_operator
    proto_type = _compute_type(operator.inputs[0])
    raw = _raw_output(scope, operator, container, proto_type)
    label, proba = operator.outputs[0].full_name, operator.outputs[1].full_name

    # probabilities: predict_proba's columns
    if est.out_activation_ == "softmax":
        container.add_node(
            "Softmax", raw, proba, axis=1, name=scope.get_unique_operator_name("Softmax")
        )
    elif _n_probability_columns(est) == 2:
        positive = _node(scope, container, "Sigmoid", raw, "positive")
        one = _constant(scope, container, "one", proto_type, [1.0])
        negative = _node(scope, container, "Sub", [one, positive], "negative")
        container.add_node(
            "Concat",
            [negative, positive],
            proba,
            axis=1,
            name=scope.get_unique_operator_name("Concat"),
        )
    else:
        container.add_node(
            "Sigmoid", raw, proba, name=scope.get_unique_operator_name("Sigmoid")
        )

    # labels, read from the raw outputs as predict reads them: the largest
    # logit (softmax), or a logit above 0 for each logistic output
    if est.out_activation_ == "softmax":
        index = _node(scope, container, "ArgMax", raw, "index", axis=1, keepdims=0)
    else:
        zero = _constant(scope, container, "zero", proto_type, [0.0])
        above = _node(scope, container, "Greater", [raw, zero], "above")
        if _is_multilabel(est):
            # predict's 0/1 indicator rows
            container.add_node(
                "Cast", above, label, to=TensorProto.INT64,
                name=scope.get_unique_operator_name("Cast"),
            )
            return
        column = _node(scope, container, "Cast", above, "column", to=TensorProto.INT64)
        flat = _constant(scope, container, "flat", TensorProto.INT64, [-1])
        index = _node(scope, container, "Reshape", [column, flat], "index")
    labels = _labels(scope, est)
    proto_labels = TensorProto.STRING if labels.dtype.kind == "S" else TensorProto.INT64
    classes = _constant(scope, container, "classes", proto_labels, labels)
    container.add_node(
        "Gather", [classes, index], label, axis=0, name=scope.get_unique_operator_name("Gather")
    )


def _convert_regressor(scope, operator, container):
    est = operator.raw_operator
    proto_type = _compute_type(operator.inputs[0])
    raw = _raw_output(scope, operator, container, proto_type)
    op_type = {"identity": "Identity", "exp": "Exp"}[est.out_activation_]
    container.add_node(
        op_type, raw, operator.outputs[0].full_name, name=scope.get_unique_operator_name(op_type)
    )


def _raw_output(scope, operator, container, proto_type):
    """The network's raw outputs (logits, or the linear predictor), shape
    ``(n, n_outputs)``, of element type ``proto_type``; returns its name."""
    if _is_conv(operator.raw_operator):
        return _conv_raw_output(scope, operator, container, proto_type)
    return _mlp_raw_output(scope, operator, container, proto_type)


# -- dense networks --------------------------------------------------------------------


def _activation(scope, container, module, x, proto_type, setting):
    """The ONNX nodes of a hidden activation module; returns the output name.

    onnxruntime's CPU kernels of LeakyRelu, Elu and Erf take float32 only:
    in a float64 graph the first two are written with elementary operators,
    and Erf (of GELU) runs in float32 between casts.
    """
    double = proto_type == TensorProto.DOUBLE

    def node(op_type, inputs, **attrs):
        return _node(scope, container, op_type, inputs, "hidden", **attrs)

    def constant(value):
        return _constant(scope, container, "constant", proto_type, [value])

    if isinstance(module, nn.Identity):
        return x
    simple = {nn.Sigmoid: "Sigmoid", nn.Tanh: "Tanh", nn.ReLU: "Relu"}
    if type(module) in simple:
        return node(simple[type(module)], x)
    if isinstance(module, nn.LeakyReLU) and 0 <= module.negative_slope <= 1:
        if not double:
            return node("LeakyRelu", x, alpha=module.negative_slope)
        # max(x, slope * x) for a slope in [0, 1]
        return node("Max", [x, node("Mul", [x, constant(module.negative_slope)])])
    if isinstance(module, nn.ELU):
        if not double:
            return node("Elu", x, alpha=module.alpha)
        # relu(x) + alpha * (exp(min(x, 0)) - 1)
        negative = node("Sub", [node("Exp", node("Min", [x, constant(0.0)])), constant(1.0)])
        return node("Add", [node("Relu", x), node("Mul", [negative, constant(module.alpha)])])
    if isinstance(module, nn.SiLU):
        return node("Mul", [x, node("Sigmoid", x)])
    if isinstance(module, nn.GELU) and module.approximate == "none":
        # x * (1 + erf(x / sqrt(2))) / 2, with Erf (opset 9) rather than
        # Gelu (opset 20)
        z = node("Mul", [x, constant(1 / np.sqrt(2))])
        if double:
            z = node("Cast", z, to=TensorProto.FLOAT)
        erf = node("Erf", z)
        if double:
            erf = node("Cast", erf, to=TensorProto.DOUBLE)
        gate = node("Mul", [node("Add", [erf, constant(1.0)]), constant(0.5)])
        return node("Mul", [x, gate])
    raise NotImplementedError(
        f"activation={setting!r} ({module!r}) has no ONNX export in sknets.onnx."
    )


def _mlp_raw_output(scope, operator, container, proto_type):
    est = operator.raw_operator
    module = est.net_.module_
    x = _cast(scope, container, operator.inputs[0], proto_type)
    n_layers = len(est.coefs_)
    for i, (coef, intercept) in enumerate(zip(est.coefs_, est.intercepts_)):
        w = _constant(scope, container, "coefficient", proto_type, coef)
        b = _constant(scope, container, "intercepts", proto_type, intercept.reshape(1, -1))
        x = _node(scope, container, "MatMul", [x, w], "mul_result")
        x = _node(scope, container, "Add", [x, b], "add_result")
        if i < n_layers - 1:
            setting = getattr(module, "activation_name", est.activation)
            x = _activation(scope, container, module.activation, x, proto_type, setting)
    return x


# -- convolutional networks -------------------------------------------------------------


class _ReadX(nn.Module):
    """A convolutional module that reads X as ``predict`` does: any
    ``(n, ...)`` input flattened to rows of ``n_features`` values, laid out
    channels last when ``channels_last``, reordered to the module's
    channels-first ``input_shape``."""

    def __init__(self, module, n_features, channels_last):
        super().__init__()
        self.module = module
        self.n_features = int(n_features)
        self.channels_last = bool(channels_last)

    def forward(self, X):
        X = X.reshape(-1, self.n_features)
        if self.channels_last:
            channels, *spatial = self.module.input_shape
            # explicit axes: movedim(-1, 1) exports a Transpose with a
            # negative axis in its perm, which ONNX does not allow
            last = len(spatial) + 1
            X = X.reshape(-1, *spatial, channels).permute(0, last, *range(1, last))
        return self.module(X)


def _export_conv(est, sample_shape, opset):
    """The float32 ONNX graph of a convolutional estimator's raw outputs:
    input ``X`` of shape ``(n_samples, *sample_shape)`` with a dynamic batch
    axis, output ``raw``."""
    reading = est._reading(fitted=True)
    channels_last = reading[1] == "channels_last" and est.input_shape_[0] > 1
    module = copy.deepcopy(est.net_.module_).to(device="cpu", dtype=torch.float32)
    module = module.to(memory_format=torch.contiguous_format)
    reader = _ReadX(module, est.n_features_in_, channels_last).eval()
    # a batch of two: the exporter would specialise a batch of one
    example = torch.zeros(2, *sample_shape)
    f = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript-based exporter is deprecated in favour of the
        # torch.export-based one (dynamo=True), which needs onnxscript; its
        # deprecation warnings say so and nothing about this graph
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            reader,
            (example,),
            f,
            **_LEGACY_EXPORTER,
            opset_version=opset,
            input_names=["X"],
            output_names=["raw"],
            dynamic_axes={"X": {0: "n_samples"}, "raw": {0: "n_samples"}},
            do_constant_folding=True,
        )
    onx = onnx.load_from_string(f.getvalue())
    if onx.functions or any(n.op_type in ("If", "Loop", "Scan") for n in onx.graph.node):
        raise NotImplementedError(
            f"PyTorch exported the network of {type(est).__name__} with control flow "
            "or local functions, which skl2onnx cannot splice into its graph."
        )
    return onx


def _conv_raw_output(scope, operator, container, proto_type):
    est = operator.raw_operator
    dims = operator.inputs[0].type.shape
    # (n, n_features) rows, or (n, *sample_shape) as _check_input checked it
    sample_shape = [est.n_features_in_] if len(dims) == 2 else [int(d) for d in dims[1:]]
    target = container.target_opset_any_domain("")
    onx = _export_conv(est, sample_shape, min(target, TORCH_MAX_OPSET))
    if target > TORCH_MAX_OPSET:
        # the opset of the rest of the graph: the opsets after 20 only add
        # element types to the operators the exporter writes, so should
        # onnx's converter lack an adapter, the graph stays valid as it is
        try:
            onx = onnx.version_converter.convert_version(onx, target)
        except Exception:  # noqa: BLE001 (any failure of the converter)
            pass
    x = _cast(scope, container, operator.inputs[0], TensorProto.FLOAT)
    raw32 = scope.get_unique_variable_name("raw")
    # add_onnx_graph wires the graph's input and output to an operator's
    # (onnx_name of each): here to the cast input and a raw output of ours
    ports = types.SimpleNamespace(
        inputs=[types.SimpleNamespace(onnx_name=x)],
        outputs=[types.SimpleNamespace(onnx_name=raw32)],
    )
    add_onnx_graph(scope, ports, container, onx)
    if proto_type == TensorProto.FLOAT:
        return raw32
    return _node(scope, container, "Cast", raw32, "raw", to=proto_type)


register()
