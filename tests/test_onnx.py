"""ONNX export (sknets.onnx): the exported graphs, run in onnxruntime, give
``predict`` and ``predict_proba``'s results.

Expected values are the estimators' own predictions on the same rows; the
ONNX graphs are built from the fitted weights and never see them.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

import sknets.onnx  # noqa: E402
from sknets import ConvClassifier, ConvRegressor, MLPClassifier, MLPRegressor  # noqa: E402
from sknets._registry import ACTIVATIONS  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

MLP = dict(hidden_layer_sizes=(8, 6), max_iter=5, learning_rate_init=0.01, device="cpu",
           random_state=0)
CONV = dict(filters=(3, 4), hidden_layer_sizes=(6,), max_iter=2, learning_rate_init=0.01,
            batch_size=10, device="cpu", random_state=0)
#: probabilities and values within 1e-4 relative; atol for values near 0
#: (float32 graphs against predict's float64 arithmetic)
RTOL, ATOL = 1e-4, 1e-6


def _make(cls, **params):
    return cls(**{**(CONV if cls in (ConvClassifier, ConvRegressor) else MLP), **params})


def _data(n=40, n_features=16, seed=0):
    """Random rows; 16 features are read as 4x4 images by the convnets."""
    return np.random.default_rng(seed).random((n, n_features))


def _targets(kind, n=40, seed=1):
    rng = np.random.default_rng(seed)
    if kind == "binary":
        return np.array(["no", "yes"])[np.arange(n) % 2]
    if kind == "multiclass":
        return (np.arange(n) % 3) * 10 - 5  # -5, 5, 15: integer labels not 0..k-1
    if kind == "multilabel":
        Y = (rng.random((n, 3)) < 0.5).astype(int)
        Y[0] = [1, 1, 0]  # not one 1 per row (which warns as a one-hot y)
        return Y
    if kind == "multioutput":
        return rng.standard_normal((n, 3))
    return rng.standard_normal(n)


def _session(onx):
    onnx.checker.check_model(onx)
    return ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(session, X):
    return session.run(None, {session.get_inputs()[0].name: X})


def _no_zipmap(model):
    est = model[-1] if hasattr(model, "steps") else model
    return {id(est): {"zipmap": False}}


def _check_classifier(model, X, **kwargs):
    """Export with X's dtype, then compare on batches of 1 and 7 rows."""
    onx = sknets.onnx.to_onnx(model, X[:1], options=_no_zipmap(model), **kwargs)
    session = _session(onx)
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    for rows in (X[:1], X[3:10]):
        label, proba = _run(session, rows)
        expected = model.predict(rows)
        assert label.shape == expected.shape
        if expected.dtype.kind in "US":
            assert label.dtype == object
            assert label.tolist() == expected.tolist()
        else:
            assert label.dtype == np.int64
            np.testing.assert_array_equal(label, expected)
        assert proba.dtype == X.dtype
        np.testing.assert_allclose(proba, model.predict_proba(rows), rtol=RTOL, atol=ATOL)
    return onx


def _check_regressor(model, X, **kwargs):
    onx = sknets.onnx.to_onnx(model, X[:1], **kwargs)
    session = _session(onx)
    assert [o.name for o in session.get_outputs()] == ["variable"]
    for rows in (X[:1], X[3:10]):
        (values,) = _run(session, rows)
        expected = model.predict(rows)
        assert values.dtype == X.dtype
        assert values.shape == (len(rows), expected.reshape(len(rows), -1).shape[1])
        np.testing.assert_allclose(
            values, expected.reshape(values.shape), rtol=RTOL, atol=ATOL
        )
    return onx


# -- classifiers and regressors, alone and in a pipeline ------------------------------


@pytest.mark.parametrize("cls", [MLPClassifier, ConvClassifier])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_classifier_pipeline(cls, kind, dtype):
    X, y = _data().astype(dtype), _targets(kind)
    model = make_pipeline(MinMaxScaler(), _make(cls)).fit(X, y)
    # the network trained in X's precision
    assert model[-1].net_.dtype == {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    _check_classifier(model, X)


@pytest.mark.parametrize("cls", [MLPRegressor, ConvRegressor])
@pytest.mark.parametrize("kind", ["single", "multioutput"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_regressor_pipeline(cls, kind, dtype):
    X, y = _data().astype(dtype), _targets(kind)
    model = make_pipeline(MinMaxScaler(), _make(cls)).fit(X, y)
    _check_regressor(model, X)


@pytest.mark.parametrize("cls", [MLPClassifier, ConvClassifier, MLPRegressor, ConvRegressor])
@pytest.mark.parametrize("fit_dtype, onnx_dtype", [(np.float64, np.float32),
                                                   (np.float32, np.float64)])
def test_alone_across_dtypes(cls, fit_dtype, onnx_dtype):
    """A network trained in one precision exports for inputs of the other."""
    X = _data()
    est = _make(cls).fit(X.astype(fit_dtype), _targets(
        "multiclass" if cls in (MLPClassifier, ConvClassifier) else "single"))
    check = _check_classifier if cls in (MLPClassifier, ConvClassifier) else _check_regressor
    onx = check(est, X.astype(onnx_dtype))
    if cls in (MLPClassifier, MLPRegressor) and onnx_dtype == np.float64:
        # a float64 graph of a dense network gives predict's float64 arithmetic
        # (on a CPU a float32 network predicts through a float64 copy of itself)
        outputs = _run(_session(onx), X[:7])
        expected = est.predict_proba(X[:7]) if cls is MLPClassifier else est.predict(X[:7])
        np.testing.assert_allclose(outputs[-1].reshape(expected.shape), expected, rtol=1e-12)


@pytest.mark.parametrize("cls", [MLPRegressor, ConvRegressor])
def test_poisson_regressor(cls):
    X = _data()
    y = np.random.default_rng(2).poisson(2.0, (40, 2)).astype(float)
    est = _make(cls, loss="poisson").fit(X, y)
    assert est.out_activation_ == "exp"
    _check_regressor(est, X.astype(np.float32))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_activations(activation):
    X, y = _data(), _targets("single")
    est = _make(MLPRegressor, activation=activation).fit(X, y)
    _check_regressor(est, X.astype(np.float32))
    _check_regressor(est, X)


@pytest.mark.parametrize("activation", ["gelu", "elu", "tanh"])
def test_conv_activations_and_options(activation):
    X, y = _data(), _targets("multiclass")
    est = _make(ConvClassifier, activation=activation, global_pool=True, batch_norm=True,
                dropout=0.2, conv_dropout=0.1, random_shift=1).fit(X, y)
    _check_classifier(est, X.astype(np.float32))


# -- labels and probabilities ------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [np.array([3, 7]), np.array(["cat", "dog", "emu"]), np.array([False, True]),
     np.array([1.0, 2.0, 4.0])],
    ids=["int", "str", "bool", "whole-float"],
)
def test_label_types(labels):
    X = _data()
    y = labels[np.arange(40) % len(labels)]
    est = _make(MLPClassifier).fit(X, y)
    onx = sknets.onnx.to_onnx(est, X[:1].astype(np.float32), options=_no_zipmap(est))
    label, proba = _run(_session(onx), X[:7].astype(np.float32))
    expected = est.predict(X[:7].astype(np.float32))
    if labels.dtype.kind == "U":
        assert label.tolist() == expected.tolist()
    else:
        # integer, boolean and whole float classes are int64 labels, as in skl2onnx
        assert label.dtype == np.int64
        np.testing.assert_array_equal(label, expected.astype(np.int64))
    np.testing.assert_allclose(proba, est.predict_proba(X[:7]), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("cls", [MLPClassifier, ConvClassifier])
def test_zipmap_default(cls):
    X, y = _data().astype(np.float32), _targets("binary")
    est = _make(cls).fit(X, y)
    session = _session(sknets.onnx.to_onnx(est, X[:1]))
    label, dicts = _run(session, X[:7])
    assert label.tolist() == est.predict(X[:7]).tolist()
    assert isinstance(dicts, list) and len(dicts) == 7
    proba = est.predict_proba(X[:7])
    for row, expected in zip(dicts, proba):
        assert list(row) == ["no", "yes"]
        np.testing.assert_allclose(list(row.values()), expected, rtol=RTOL, atol=ATOL)


def test_nocl_and_class_labels_options():
    X, y = _data().astype(np.float32), _targets("multiclass")
    est = _make(MLPClassifier).fit(X, y)
    options = {id(est): {"zipmap": False, "nocl": True, "output_class_labels": True}}
    label, proba, classes = _run(_session(sknets.onnx.to_onnx(est, X[:1], options=options)),
                                 X[:7])
    # nocl: labels are the class indices
    np.testing.assert_array_equal(label, np.searchsorted(est.classes_, est.predict(X[:7])))
    np.testing.assert_array_equal(classes, np.arange(3))


def test_skl2onnx_to_onnx_directly():
    X, y = _data().astype(np.float32), _targets("multiclass")
    model = make_pipeline(MinMaxScaler(), _make(ConvClassifier)).fit(X, y)
    onx = skl2onnx.to_onnx(model, X[:1], options=_no_zipmap(model))
    label, proba = _run(_session(onx), X[:7])
    np.testing.assert_array_equal(label, model.predict(X[:7]))
    np.testing.assert_allclose(proba, model.predict_proba(X[:7]), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("cls", [MLPRegressor, ConvRegressor])
def test_integer_input(cls):
    from skl2onnx.common.data_types import Int64TensorType

    X = np.random.default_rng(4).integers(0, 5, (40, 16))
    est = _make(cls).fit(X.astype(np.float32), _targets("single"))
    onx = sknets.onnx.to_onnx(est, initial_types=[("X", Int64TensorType([None, 16]))])
    (values,) = _run(_session(onx), X[:7])
    assert values.dtype == np.float32
    np.testing.assert_allclose(values.ravel(), est.predict(X[:7]), rtol=RTOL, atol=ATOL)


# -- how the convnets read X -------------------------------------------------------


def _layout_data(layout, n=40, seed=3):
    rng = np.random.default_rng(seed)
    if layout == "images-channels-last":
        return rng.random((n, 4, 5, 2)), dict(data_format="channels_last")
    if layout == "images-channels-first":
        return rng.random((n, 2, 4, 5)), {}
    if layout == "signals-channels-last":
        return rng.random((n, 10, 3)), dict(data_format="channels_last", signal=True)
    if layout == "signals-channels-first":
        return rng.random((n, 3, 10)), dict(signal=True)
    return rng.random((n, 10)), {}  # one-channel signals from a non-square width


@pytest.mark.parametrize(
    "layout",
    ["images-channels-last", "images-channels-first", "signals-channels-last",
     "signals-channels-first", "signals-flat"],
)
@pytest.mark.parametrize("cls", [ConvClassifier, ConvRegressor])
def test_conv_layouts(layout, cls):
    X, params = _layout_data(layout)
    y = _targets("multiclass" if cls is ConvClassifier else "multioutput")
    est = _make(cls, **params).fit(X, y)
    check = _check_classifier if cls is ConvClassifier else _check_regressor
    flat = X.reshape(len(X), -1).astype(np.float32)
    check(est, flat)  # rows, as after a scaler in a pipeline
    if X.ndim > 2:
        check(est, X.astype(np.float32))  # the samples' own shape


def test_channels_last_graph_reads_channels_last():
    """The same network read channels first would predict otherwise: the
    graph's transpose matters."""
    X, params = _layout_data("images-channels-last")
    y = _targets("multioutput")
    est = _make(ConvRegressor, **params).fit(X, y)
    flat = X.reshape(len(X), -1).astype(np.float32)
    (values,) = _run(_session(sknets.onnx.to_onnx(est, flat[:1])), flat[:7])
    swapped = X[:7].transpose(0, 3, 1, 2).reshape(7, -1)  # channels-first rows
    assert not np.allclose(est.predict(swapped), values, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("target_opset", [15, 20])
def test_conv_target_opset(target_opset):
    X, y = _data().astype(np.float32), _targets("multiclass")
    est = _make(ConvClassifier).fit(X, y)
    onx = _check_classifier(est, X, target_opset=target_opset)
    versions = {o.domain: o.version for o in onx.opset_import}
    assert versions[""] == target_opset


@pytest.mark.gpu
@pytest.mark.parametrize("cls", [MLPClassifier, ConvClassifier])
def test_gpu_trained_network(cls):
    X, y = _data().astype(np.float32), _targets("multiclass")
    est = _make(cls, device="cuda").fit(X, y)
    _check_classifier(est, X)


# -- what does not export ------------------------------------------------------------


def test_bfloat16_is_refused():
    X, y = _data(), _targets("multiclass")
    est = _make(MLPClassifier, precision="bfloat16").fit(X, y)
    with pytest.raises(NotImplementedError, match="precision='bfloat16'"):
        sknets.onnx.to_onnx(est, X[:1].astype(np.float32))


def test_single_class_is_refused():
    X = _data()
    est = _make(MLPClassifier).fit(X, np.zeros(40, dtype=int))
    with pytest.raises(ValueError, match="single class"):
        sknets.onnx.to_onnx(est, X[:1].astype(np.float32))


def test_activation_without_onnx_counterpart_is_refused():
    """A hidden activation that sknets.onnx cannot write is named in the error."""
    X, y = _data(), _targets("single")
    est = _make(MLPRegressor).fit(X, y)
    est.net_.module_.activation = torch.nn.Hardswish()
    est.net_.module_.activation_name = "hardswish"
    with pytest.raises(NotImplementedError, match="activation='hardswish'"):
        sknets.onnx.to_onnx(est, X[:1].astype(np.float32))


def test_wrong_width_is_refused():
    X, y = _data(), _targets("single")
    est = _make(MLPRegressor).fit(X, y)
    with pytest.raises(ValueError, match="n_features_in_=16"):
        sknets.onnx.to_onnx(est, X[:1, :10].astype(np.float32))


def test_unfitted_is_refused():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        sknets.onnx.to_onnx(MLPRegressor(), _data()[:1].astype(np.float32))


# -- registration --------------------------------------------------------------------


def test_register_is_idempotent():
    from skl2onnx._supported_operators import sklearn_operator_name_map

    sknets.onnx.register()
    sknets.onnx.register()
    for cls in (MLPClassifier, MLPRegressor, ConvClassifier, ConvRegressor):
        assert sklearn_operator_name_map[cls] == f"Sknets{cls.__name__}"


def test_import_sknets_does_not_import_skl2onnx():
    """Registration costs nothing to users who never import sknets.onnx."""
    code = "import sys, sknets; print('skl2onnx' in sys.modules, 'sknets.onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]
