"""``class_weight`` of MLPClassifier and ConvClassifier, with scikit-learn's
semantics: ``compute_sample_weight(class_weight, y)`` multiplied into
``sample_weight``.

Expected values come from the same fit given those sample weights
(computed by scikit-learn), never from the output under test.
"""

import io
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV as SkGridSearchCV
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.class_weight import compute_sample_weight

import sknets.model_selection as sms
from sknets import ConvClassifier, MLPClassifier, MLPRegressor


def _quiet(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def _weights(est):
    return [p.detach().clone() for p in est.net_.module_.parameters()]


def _bit_equal(a, b):
    wa, wb = _weights(a), _weights(b)
    return len(wa) == len(wb) and all(torch.equal(p, q) for p, q in zip(wa, wb))


@pytest.fixture(scope="module")
def imbalanced():
    X, y = make_classification(
        240, 8, n_informative=5, n_classes=3, weights=[0.7, 0.2, 0.1], random_state=0
    )
    return X, np.array(["a", "b", "c"])[y]


CLASS_WEIGHTS = ["balanced", {"a": 1.0, "b": 3.0, "c": 7.5}]


@pytest.mark.parametrize("class_weight", CLASS_WEIGHTS)
@pytest.mark.parametrize("early_stopping", [False, True])
def test_mlp_trains_as_with_the_sample_weights(class_weight, early_stopping, imbalanced):
    X, y = imbalanced
    kw = dict(hidden_layer_sizes=(16,), max_iter=15, random_state=0,
              early_stopping=early_stopping, device="cpu")
    weighted = _quiet(MLPClassifier(class_weight=class_weight, **kw), X, y)
    expected = _quiet(MLPClassifier(**kw), X, y,
                      sample_weight=compute_sample_weight(class_weight, y))
    assert _bit_equal(weighted, expected)
    assert weighted.loss_curve_ == expected.loss_curve_
    # and not as the unweighted fit
    assert not _bit_equal(weighted, _quiet(MLPClassifier(**kw), X, y))


def test_class_weight_multiplies_sample_weight(imbalanced):
    X, y = imbalanced
    sw = np.linspace(0.5, 2.0, len(y))
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, device="cpu")
    weighted = _quiet(MLPClassifier(class_weight="balanced", **kw), X, y, sample_weight=sw)
    expected = _quiet(MLPClassifier(**kw), X, y,
                      sample_weight=sw * compute_sample_weight("balanced", y))
    assert _bit_equal(weighted, expected)


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_other_solvers(solver, imbalanced):
    X, y = imbalanced
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, solver=solver,
              device="cpu")
    weighted = _quiet(MLPClassifier(class_weight="balanced", **kw), X, y)
    expected = _quiet(MLPClassifier(**kw), X, y,
                      sample_weight=compute_sample_weight("balanced", y))
    assert _bit_equal(weighted, expected)


@pytest.mark.parametrize("class_weight", ["balanced", [{0: 1.0, 1: 4.0}] * 3])
def test_multilabel(class_weight):
    X, Y = make_multilabel_classification(120, 6, n_classes=3, random_state=0)
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, device="cpu")
    weighted = _quiet(MLPClassifier(class_weight=class_weight, **kw), X, Y)
    expected = _quiet(MLPClassifier(**kw), X, Y,
                      sample_weight=compute_sample_weight(class_weight, Y))
    assert _bit_equal(weighted, expected)


def test_conv_classifier(digits):
    X, y = digits
    X, y = X[:200].reshape(-1, 8, 8), y[:200]
    kw = dict(filters=(4,), hidden_layer_sizes=(8,), max_iter=2, random_state=0, device="cpu")
    weighted = _quiet(ConvClassifier(class_weight="balanced", **kw), X, y)
    expected = _quiet(ConvClassifier(**kw), X, y,
                      sample_weight=compute_sample_weight("balanced", y))
    assert _bit_equal(weighted, expected)


def test_partial_fit_with_a_dict(imbalanced):
    X, y = imbalanced
    cw = {"a": 1.0, "b": 3.0, "c": 7.5}
    kw = dict(hidden_layer_sizes=(8,), random_state=0, device="cpu")
    weighted, expected = MLPClassifier(class_weight=cw, **kw), MLPClassifier(**kw)
    # the second batch lacks class 'c'
    batches = [np.arange(100), np.flatnonzero(y[100:] != "c") + 100]
    for i, rows in enumerate(batches):
        classes = dict(classes=["a", "b", "c"]) if i == 0 else {}
        weighted.partial_fit(X[rows], y[rows], **classes)
        expected.partial_fit(X[rows], y[rows],
                             sample_weight=compute_sample_weight(cw, y[rows]), **classes)
    assert _bit_equal(weighted, expected)


def test_partial_fit_refuses_balanced(imbalanced):
    X, y = imbalanced
    clf = MLPClassifier(class_weight="balanced")
    with pytest.raises(ValueError, match="'balanced' is not supported for partial_fit"):
        clf.partial_fit(X, y, classes=["a", "b", "c"])
    assert not hasattr(clf, "net_")


def test_invalid_class_weight(imbalanced):
    X, y = imbalanced
    with pytest.raises(InvalidParameterError, match="'class_weight' parameter"):
        MLPClassifier(class_weight="balance").fit(X, y)
    # scikit-learn's own error for a label that is not a class
    with pytest.raises(ValueError, match="not in class"):
        MLPClassifier(class_weight={"z": 2.0}, max_iter=1).fit(X, y)


def test_regressors_have_no_class_weight():
    assert "class_weight" not in MLPRegressor().get_params()
    with pytest.raises(TypeError, match="class_weight"):
        MLPRegressor(class_weight="balanced")


def test_saved_and_loaded(imbalanced):
    skops_io = pytest.importorskip("skops.io")
    X, y = imbalanced
    clf = _quiet(MLPClassifier((8,), max_iter=3, random_state=0,
                               class_weight={"a": 1.0, "b": 2.0, "c": 3.0}), X, y)
    again = pickle.loads(pickle.dumps(clf))
    assert again.class_weight == clf.class_weight
    buffer = io.BytesIO(skops_io.dumps(clf))
    loaded = skops_io.loads(buffer.getvalue(), trusted=skops_io.get_untrusted_types(
        data=buffer.getvalue()))
    assert loaded.class_weight == clf.class_weight
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_grid_over_class_weight_equals_scikit_learns(imbalanced, capsys):
    X, y = imbalanced
    est = MLPClassifier((8,), max_iter=5, random_state=0, device="cpu")
    grid = {"class_weight": [None, "balanced"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = SkGridSearchCV(est, grid, cv=3, scoring="balanced_accuracy").fit(X, y)
        # trained batched: no warning of fits trained one by one
        warnings.filterwarnings("error", message="sknets.model_selection")
        ours = sms.GridSearchCV(est, grid, cv=3, scoring="balanced_accuracy",
                                verbose=1).fit(X, y)
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"],
        rtol=1e-6,
    )
    assert "trained 6 fit(s) as 1 batched network(s)" in capsys.readouterr().out
    assert ours.best_params_ == theirs.best_params_
