"""Behaviour of MLPClassifier and MLPRegressor as scikit-learn estimators.

Expected values come from scikit-learn's own MLPs fitted on the same data,
from numpy computations on the fitted ``coefs_`` / ``intercepts_``, or from
reasoning about the data; never from the output under test.
"""

import inspect
import math
import pickle
import re
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy.special import expit, softmax
from sklearn import neural_network as sk_nn
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import BaggingClassifier, VotingClassifier
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    ParameterGrid,
    RandomizedSearchCV,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedKFold,
    cross_val_score,
    train_test_split,
)
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from skorch import NeuralNet

from sknets import MLPClassifier, MLPRegressor
from sknets._registry import ACTIVATIONS

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# Small networks, few epochs, CPU.
FAST = dict(
    hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=30, random_state=0, device="cpu"
)

ESTIMATORS = [MLPClassifier, MLPRegressor]
SKLEARN_TWIN = {MLPClassifier: sk_nn.MLPClassifier, MLPRegressor: sk_nn.MLPRegressor}


def _fast(**params):
    return {**FAST, **params}


@pytest.fixture(scope="module")
def raw_breast_cancer():
    return load_breast_cancer(return_X_y=True)


@pytest.fixture(scope="module")
def raw_diabetes():
    return load_diabetes(return_X_y=True)


@pytest.fixture(scope="module")
def small_digits(digits):
    X, y = digits
    return X[:400], y[:400]


@pytest.fixture(scope="module")
def regression(diabetes):
    """Diabetes with a standardised target."""
    X, y = diabetes
    return X, (y - y.mean()) / y.std()


def _data_for(Est, breast_cancer, regression):
    return breast_cancer if Est is MLPClassifier else regression


def _output(est, X):
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


def _np_forward(est, X, activation):
    """Forward pass in numpy from the fitted coefs_ / intercepts_."""
    act = {
        "relu": lambda a: np.maximum(a, 0),
        "tanh": np.tanh,
        "logistic": expit,
        "identity": lambda a: a,
    }[activation]
    a = np.asarray(X, dtype=np.float64)
    for W, b in zip(est.coefs_[:-1], est.intercepts_[:-1]):
        a = act(a @ W + b)
    return a @ est.coefs_[-1] + est.intercepts_[-1]


def _raised_outside_torch(excinfo):
    """The error is raised by sknets / scikit-learn code, not by torch."""
    path = str(excinfo.traceback[-1].path)
    package = re.split(r"[\\/]site-packages[\\/]", path)[-1]  # a venv may be named torch
    assert re.split(r"[\\/]", package)[0] not in ("torch", "skorch"), path


# ---------------------------------------------------------------------------
# drop-in parameters
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_same_parameters_and_defaults_as_sklearn(Est):
    ours, theirs = Est().get_params(), SKLEARN_TWIN[Est]().get_params()
    for name, default in theirs.items():
        assert name in ours
        assert ours[name] == default, name
    # the same positional parameters, in the same order
    def positional(cls):
        return [
            p.name
            for p in inspect.signature(cls).parameters.values()
            if p.kind is p.POSITIONAL_OR_KEYWORD
        ]

    assert positional(Est) == positional(SKLEARN_TWIN[Est])


# ---------------------------------------------------------------------------
# workflow: pipelines, cross-validation, searches, persistence, meta-estimators
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cv",
    [
        KFold(3),
        StratifiedKFold(3),
        RepeatedKFold(n_splits=3, n_repeats=2, random_state=0),
        RepeatedStratifiedKFold(n_splits=3, n_repeats=2, random_state=0),
    ],
    ids=["KFold", "StratifiedKFold", "RepeatedKFold", "RepeatedStratifiedKFold"],
)
def test_cross_val_score_pipeline(cv, raw_breast_cancer):
    X, y = raw_breast_cancer
    pipe = make_pipeline(MinMaxScaler(), MLPClassifier(**FAST))
    scores = cross_val_score(pipe, X, y, cv=cv)
    assert scores.shape == (cv.get_n_splits(),)
    assert scores.min() > 0.88


def test_cross_val_score_regressor_pipeline(raw_diabetes):
    X, y = raw_diabetes
    pipe = make_pipeline(
        MinMaxScaler(),
        TransformedTargetRegressor(
            MLPRegressor(**_fast(max_iter=60)), transformer=StandardScaler()
        ),
    )
    scores = cross_val_score(pipe, X, y, cv=KFold(3, shuffle=True, random_state=0), scoring="r2")
    assert scores.shape == (3,)
    assert scores.mean() > 0.3


GRID = {
    "mlpclassifier__learning_rate_init": [0.001, 0.01],
    "mlpclassifier__hidden_layer_sizes": [(4,), (16,)],
}


def test_grid_search(raw_breast_cancer):
    X, y = raw_breast_cancer
    pipe = make_pipeline(MinMaxScaler(), MLPClassifier(**_fast(max_iter=20)))
    search = GridSearchCV(pipe, GRID, cv=3).fit(X, y)
    assert search.best_params_ in list(ParameterGrid(GRID))
    assert len(search.cv_results_["params"]) == 4
    assert search.cv_results_["mean_test_score"].shape == (4,)
    assert search.cv_results_["split2_test_score"].shape == (4,)
    assert search.best_score_ > 0.85
    best = search.best_estimator_[-1]
    # the refitted model really has the chosen parameters
    (width,) = search.best_params_["mlpclassifier__hidden_layer_sizes"]
    assert best.coefs_[0].shape == (30, width)
    assert best.learning_rate_init == search.best_params_["mlpclassifier__learning_rate_init"]
    assert search.score(X, y) > 0.85


def test_randomized_search(raw_breast_cancer):
    X, y = raw_breast_cancer
    pipe = make_pipeline(MinMaxScaler(), MLPClassifier(**_fast(max_iter=20)))
    search = RandomizedSearchCV(pipe, GRID, n_iter=3, cv=3, random_state=0).fit(X, y)
    assert search.best_params_ in list(ParameterGrid(GRID))
    assert len(search.cv_results_["params"]) == 3
    assert all(p in list(ParameterGrid(GRID)) for p in search.cv_results_["params"])
    assert search.cv_results_["mean_test_score"].shape == (3,)
    assert search.best_score_ > 0.85


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_clone_pickle_joblib_round_trips(Est, breast_cancer, regression, tmp_path):
    X, y = _data_for(Est, breast_cancer, regression)
    est = Est(**_fast(max_iter=10, dropout=0.1)).fit(X, y)
    expected = _output(est, X)

    cloned = clone(est)
    assert not hasattr(cloned, "net_") and not hasattr(cloned, "coefs_")
    assert cloned.get_params() == est.get_params()
    # a clone refits to the very same model
    np.testing.assert_array_equal(_output(cloned.fit(X, y), X), expected)

    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(_output(restored, X), expected)
    np.testing.assert_array_equal(restored.predict(X), est.predict(X))
    for a, b in zip(restored.coefs_, est.coefs_):
        np.testing.assert_array_equal(a, b)

    joblib.dump(est, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(_output(loaded, X), expected)

    # a restored model keeps training
    loss_before = restored.loss_
    for _ in range(3):
        restored.partial_fit(X, y)
    assert restored.n_iter_ == est.n_iter_ + 3
    assert restored.loss_ < loss_before


def test_meta_estimators_classifier(breast_cancer):
    X, y = breast_cancer
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    mlp = MLPClassifier(**_fast(max_iter=20))

    bagging = BaggingClassifier(mlp, n_estimators=3, random_state=0).fit(X_train, y_train)
    assert bagging.score(X_test, y_test) > 0.9

    voting = VotingClassifier(
        [("mlp", mlp), ("lr", LogisticRegression())], voting="soft"
    ).fit(X_train, y_train)
    proba = voting.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    assert voting.score(X_test, y_test) > 0.9

    calibrated = CalibratedClassifierCV(mlp, cv=3).fit(X_train, y_train)
    proba = calibrated.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert calibrated.score(X_test, y_test) > 0.9


def test_one_vs_rest(small_digits):
    X, y = small_digits
    ovr = OneVsRestClassifier(MLPClassifier(**_fast(hidden_layer_sizes=(8,), max_iter=15)))
    ovr.fit(X, y)
    assert len(ovr.estimators_) == 10
    assert ovr.score(X, y) > 0.85


def test_meta_estimators_regressor(diabetes):
    X, y = diabetes
    Y = np.c_[y, np.log(y)]
    Y = (Y - Y.mean(0)) / Y.std(0)
    multi = MultiOutputRegressor(MLPRegressor(**_fast(max_iter=40))).fit(X, Y)
    pred = multi.predict(X)
    assert pred.shape == (len(X), 2)
    assert r2_score(Y, pred) > 0.3

    ttr = TransformedTargetRegressor(
        MLPRegressor(**_fast(max_iter=40)), transformer=StandardScaler()
    ).fit(X, y)
    pred = ttr.predict(X)
    assert pred.shape == y.shape
    # predictions are back on the scale of y (mean ~152), not standardised
    assert abs(pred.mean() - y.mean()) < 0.2 * y.std()
    assert r2_score(y, pred) > 0.3


# ---------------------------------------------------------------------------
# labels and outputs
# ---------------------------------------------------------------------------

BINARY_LABELS = {
    "strings": np.array(["yes", "no"]),  # 0 -> 'yes': classes_ order is not encoding order
    "5_7": np.array([5, 7]),
    "bool": np.array([False, True]),
    "1_2": np.array([1, 2]),
}


@pytest.mark.parametrize("labels", BINARY_LABELS.values(), ids=BINARY_LABELS.keys())
def test_binary_labels(labels, breast_cancer):
    X, y01 = breast_cancer
    y = labels[y01]
    clf = MLPClassifier(**FAST).fit(X, y)
    ref = sk_nn.MLPClassifier(hidden_layer_sizes=(2,), max_iter=1).fit(X, y)

    np.testing.assert_array_equal(clf.classes_, ref.classes_)
    assert clf.classes_.dtype == ref.classes_.dtype
    pred = clf.predict(X)
    assert pred.dtype == ref.predict(X).dtype
    assert pred.shape == y.shape
    assert set(np.unique(pred)) <= set(labels)
    assert np.mean(pred == y) > 0.9

    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    # column j is the probability of classes_[j]
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    for j, label in enumerate(clf.classes_):
        assert proba[y == label, j].mean() > 0.75
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba), rtol=1e-12)


def test_multiclass_string_labels(small_digits):
    X, y = small_digits
    names = "zero one two three four five six seven eight nine".split()
    names = np.array(names)  # sorted, they are not in the digits' order
    y_str = names[y]
    clf = MLPClassifier(**_fast(max_iter=40)).fit(X, y_str)
    np.testing.assert_array_equal(clf.classes_, np.sort(names))
    assert clf.out_activation_ == "softmax" and clf.n_outputs_ == 10
    pred = clf.predict(X)
    assert pred.dtype.kind == "U"
    assert np.mean(pred == y_str) > 0.9
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    for j, label in enumerate(clf.classes_):
        assert proba[y_str == label, j].mean() > 0.5
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba), rtol=1e-12)


def test_multilabel(small_digits):
    X, y = small_digits
    Y = np.c_[y % 2 == 0, y >= 5, y % 3 == 0].astype(int)
    clf = MLPClassifier(**_fast(max_iter=40)).fit(X, Y)
    ref = sk_nn.MLPClassifier(hidden_layer_sizes=(2,), max_iter=1).fit(X, Y)
    np.testing.assert_array_equal(clf.classes_, ref.classes_)
    assert clf.out_activation_ == ref.out_activation_ == "logistic"
    assert clf.n_outputs_ == 3

    pred = clf.predict(X)
    assert pred.shape == Y.shape
    assert pred.dtype == ref.predict(X).dtype
    assert set(np.unique(pred)) <= {0, 1}
    assert (pred == Y).mean(axis=0).min() > 0.85

    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    assert np.all((proba > 0) & (proba < 1))
    assert not np.allclose(proba.sum(axis=1), 1.0)  # independent labels
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba), rtol=1e-12)


def test_classifier_column_y_warns(breast_cancer):
    X, y = breast_cancer
    with pytest.warns(DataConversionWarning):
        clf = MLPClassifier(**_fast(max_iter=5)).fit(X, y.reshape(-1, 1))
    assert clf.predict(X).shape == y.shape


def test_regressor_output_shapes(regression):
    X, y = regression
    reg = MLPRegressor(**FAST).fit(X, y)
    assert reg.predict(X).shape == (len(X),)
    assert reg.n_outputs_ == 1

    Y = np.c_[y, -y, 2 * y]
    reg = MLPRegressor(**FAST).fit(X, Y)
    assert reg.n_outputs_ == 3
    pred = reg.predict(X)
    assert pred.shape == (len(X), 3)
    assert r2_score(Y, pred) > 0.3

    with pytest.warns(DataConversionWarning):
        reg = MLPRegressor(**FAST).fit(X, y.reshape(-1, 1))
    assert reg.predict(X).shape == (len(X),)
    assert reg.n_outputs_ == 1


@pytest.mark.parametrize("loss", ["squared_error", "poisson", "absolute_error", "huber"])
def test_regressor_losses(loss, diabetes):
    X, y = diabetes
    y = y / 100 if loss == "poisson" else (y - y.mean()) / y.std()
    reg = MLPRegressor(loss=loss, **_fast(max_iter=60)).fit(X, y)
    assert reg.loss_curve_[-1] < 0.9 * reg.loss_curve_[0]
    pred = reg.predict(X)
    assert r2_score(y, pred) > 0.25
    raw = _np_forward(reg, X, "relu").ravel()
    if loss == "poisson":
        assert reg.out_activation_ == "exp"
        assert np.all(pred > 0)
        np.testing.assert_allclose(pred, np.exp(raw), rtol=1e-5)
    else:
        assert reg.out_activation_ == "identity"
        np.testing.assert_allclose(pred, raw, rtol=1e-5, atol=1e-6)


def test_out_activation_matches_sklearn(diabetes):
    X, y = diabetes
    for loss in ("squared_error", "poisson"):
        ours = MLPRegressor(loss=loss, **_fast(max_iter=2)).fit(X, y / 100)
        ref = sk_nn.MLPRegressor(loss=loss, hidden_layer_sizes=(2,), max_iter=1).fit(X, y / 100)
        assert ours.out_activation_ == ref.out_activation_


def test_poisson_rejects_negative_y(regression):
    X, y = regression  # standardised: has negative values
    with pytest.raises(ValueError, match="negative") as excinfo:
        MLPRegressor(loss="poisson", **FAST).fit(X, y)
    _raised_outside_torch(excinfo)


# ---------------------------------------------------------------------------
# inputs: dtypes, lists, DataFrames
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_X_numeric_dtypes_and_lists_give_the_same_model(Est, breast_cancer, regression):
    X, y = _data_for(Est, breast_cancer, regression)
    X_int = np.round(X * 10).astype(np.int64)  # exactly representable in float32
    reference = _output(Est(**_fast(max_iter=8)).fit(X_int.astype(np.float64), y), X_int)
    # integers and lists become float64, as in scikit-learn (float32 X trains
    # in float32: see test_training_dtype_follows_the_input)
    for Xt in (
        X_int,
        X_int.astype(np.int32),
        X_int.astype(np.uint8),
        X_int.tolist(),
    ):
        est = Est(**_fast(max_iter=8)).fit(Xt, y)
        np.testing.assert_array_equal(_output(est, Xt), reference)
        np.testing.assert_array_equal(_output(est, X_int.astype(np.float64)), reference)
    # a DataFrame's values are column-major: products may differ in the last bit
    est = Est(**_fast(max_iter=8)).fit(pd.DataFrame(X_int), y)
    np.testing.assert_allclose(_output(est, pd.DataFrame(X_int)), reference, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_X_bool(Est, breast_cancer, regression):
    X, y = _data_for(Est, breast_cancer, regression)
    X_bool = X > 0.3
    est = Est(**_fast(max_iter=8)).fit(X_bool, y)
    ref = Est(**_fast(max_iter=8)).fit(X_bool.astype(np.float64), y)
    np.testing.assert_array_equal(_output(est, X_bool), _output(ref, X_bool.astype(float)))


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_dataframe_feature_names(Est, breast_cancer, regression):
    X, y = _data_for(Est, breast_cancer, regression)
    columns = [f"feature {i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=columns)
    est = Est(**_fast(max_iter=5)).fit(df, y)
    ref = SKLEARN_TWIN[Est](hidden_layer_sizes=(2,), max_iter=1).fit(df, y)
    np.testing.assert_array_equal(est.feature_names_in_, columns)
    assert est.n_features_in_ == X.shape[1]
    # the same model as from the bare array (a DataFrame's values are in
    # column-major order, so the float32 products may differ in the last bit)
    plain = Est(**_fast(max_iter=5)).fit(X, y)
    for a, b in zip(est.coefs_, plain.coefs_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(_output(est, df), _output(plain, X), rtol=1e-6, atol=1e-12)

    renamed = df.rename(columns=lambda c: c.upper())
    with pytest.raises(ValueError, match="feature names") as ref_info:
        ref.predict(renamed)
    with pytest.raises(ValueError, match="feature names") as excinfo:
        est.predict(renamed)
    assert str(excinfo.value).replace(type(est).__name__, "") == str(ref_info.value).replace(
        type(ref).__name__, ""
    )
    reordered = df[columns[::-1]]
    with pytest.raises(ValueError, match="feature names"):
        est.predict(reordered)
    # a plain array after a DataFrame fit: scikit-learn's warning
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        est.predict(X)


def test_numpy_fit_then_dataframe_predict_warns(breast_cancer):
    X, y = breast_cancer
    clf = MLPClassifier(**_fast(max_iter=3)).fit(X, y)
    assert not hasattr(clf, "feature_names_in_")
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    with pytest.warns(UserWarning, match="fitted without feature names"):
        clf.predict(df)


# ---------------------------------------------------------------------------
# fitted attributes
# ---------------------------------------------------------------------------


def _cases(breast_cancer, small_digits, regression):
    Xb, yb = breast_cancer
    Xd, yd = small_digits
    Xr, yr = regression
    return {
        "binary": (MLPClassifier, Xb, yb),
        "multiclass": (MLPClassifier, Xd, yd),
        "multilabel": (MLPClassifier, Xd, np.c_[yd % 2, yd > 4]),
        "regression": (MLPRegressor, Xr, yr),
        "multioutput": (MLPRegressor, Xr, np.c_[yr, yr**2]),
    }


@pytest.mark.parametrize(
    "case", ["binary", "multiclass", "multilabel", "regression", "multioutput"]
)
def test_fitted_attributes_like_sklearn(case, breast_cancer, small_digits, regression):
    Est, X, y = _cases(breast_cancer, small_digits, regression)[case]
    params = dict(hidden_layer_sizes=(7, 5), max_iter=6, random_state=0)
    ours = Est(device="cpu", learning_rate_init=0.01, **params).fit(X, y)
    ref = SKLEARN_TWIN[Est](**params).fit(X, y)

    for attr in ("n_features_in_", "n_outputs_", "n_layers_", "out_activation_"):
        assert getattr(ours, attr) == getattr(ref, attr), attr
    if Est is MLPClassifier:
        np.testing.assert_array_equal(ours.classes_, ref.classes_)
    assert [c.shape for c in ours.coefs_] == [c.shape for c in ref.coefs_]
    assert [b.shape for b in ours.intercepts_] == [b.shape for b in ref.intercepts_]
    assert all(isinstance(c, np.ndarray) and c.dtype == np.float64 for c in ours.coefs_)
    assert all(isinstance(b, np.ndarray) and b.dtype == np.float64 for b in ours.intercepts_)
    assert isinstance(ours.coefs_, list) and isinstance(ours.intercepts_, list)

    assert isinstance(ours.n_iter_, int) and ours.n_iter_ == 6
    assert isinstance(ours.t_, int) and ours.t_ == ours.n_iter_ * len(X) == ref.t_
    assert isinstance(ours.loss_, float) and np.isfinite(ours.loss_)
    assert isinstance(ours.loss_curve_, list) and len(ours.loss_curve_) == ours.n_iter_
    assert all(isinstance(v, float) for v in ours.loss_curve_)
    assert ours.loss_ == ours.loss_curve_[-1]
    assert ours.best_loss_ == min(ours.loss_curve_)
    assert ours.validation_scores_ is None and ref.validation_scores_ is None
    assert ours.best_validation_score_ is None and ref.best_validation_score_ is None

    assert isinstance(ours.net_, NeuralNet)
    assert len(ours.net_.history) == ours.n_iter_
    np.testing.assert_allclose(ours.net_.history[:, "train_loss"], ours.loss_curve_)
    # the exported weights are those of the torch module
    first = ours.net_.module_.layers[0] if hasattr(ours.net_.module_, "layers") else None
    if first is not None:
        np.testing.assert_array_equal(ours.coefs_[0], first.weight.detach().double().numpy().T)


def _public_fitted(est):
    return {k for k in vars(est) if k.endswith("_") and not k.startswith("_")}


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("Est", ESTIMATORS)
def test_same_fitted_attribute_names_as_sklearn(Est, solver, breast_cancer):
    """scikit-learn's names exactly, plus net_ and (beside validation_scores_)
    validation_loss_curve_; L-BFGS has no loss_curve_, best_loss_,
    validation_scores_, validation_loss_curve_ nor best_validation_score_."""
    X, y = breast_cancer
    ours = Est(**_fast(solver=solver, max_iter=3)).fit(X, y)
    ref = SKLEARN_TWIN[Est](hidden_layer_sizes=(2,), solver=solver, max_iter=3).fit(X, y)
    ours_only = {"net_"} | ({"validation_loss_curve_"} if solver != "lbfgs" else set())
    assert _public_fitted(ours) == _public_fitted(ref) | ours_only
    assert isinstance(ours.loss_, float) and isinstance(ours.n_iter_, int)
    assert ours.n_iter_ <= 3


def test_hidden_layer_sizes_int_and_list(breast_cancer):
    X, y = breast_cancer
    for sizes in (7, [7, 3], np.array([4, 4])):
        ours = MLPClassifier(**_fast(hidden_layer_sizes=sizes, max_iter=2)).fit(X, y)
        ref = sk_nn.MLPClassifier(hidden_layer_sizes=sizes, max_iter=1).fit(X, y)
        assert [c.shape for c in ours.coefs_] == [c.shape for c in ref.coefs_]
        assert ours.n_layers_ == ref.n_layers_


def test_loss_curve_is_scikit_learn_loss_at_full_batch_lbfgs(breast_cancer):
    """The reported loss is scikit-learn's objective: log loss + alpha penalty."""
    X, y = breast_cancer
    clf = MLPClassifier(
        **_fast(solver="lbfgs", alpha=0.5, max_iter=20, precision="float64")
    ).fit(X, y)
    p = expit(_np_forward(clf, X, "relu")).ravel()
    log_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    penalty = 0.5 * 0.5 * sum((W**2).sum() for W in clf.coefs_) / len(X)
    np.testing.assert_allclose(clf.loss_, log_loss + penalty, rtol=1e-8)


# ---------------------------------------------------------------------------
# the forward pass by hand
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_predict_proba_is_numpy_forward_pass(activation, task, breast_cancer, small_digits):
    if task == "binary":
        X, y = breast_cancer
    else:
        X, y = small_digits
        if task == "multilabel":
            y = np.c_[y % 2, y > 4, y == 0]
    clf = MLPClassifier(**_fast(hidden_layer_sizes=(12, 6), activation=activation, max_iter=5))
    clf.fit(X, y)
    raw = _np_forward(clf, X, activation)
    if task == "binary":
        p = expit(raw)
        expected = np.hstack([1 - p, p])
    elif task == "multiclass":
        expected = softmax(raw, axis=1)
    else:
        expected = expit(raw)
    np.testing.assert_allclose(clf.predict_proba(X), expected, rtol=1e-5, atol=1e-7)


def test_float64_precision_forward_pass_is_exact(small_digits):
    X, y = small_digits
    clf = MLPClassifier(**_fast(hidden_layer_sizes=(12, 6), precision="float64", max_iter=5))
    clf.fit(X, y)
    assert all(p.dtype == torch.float64 for p in clf.net_.module_.parameters())
    expected = softmax(_np_forward(clf, X, "relu"), axis=1)
    np.testing.assert_allclose(clf.predict_proba(X), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("activation", ["tanh", "logistic"])
def test_regressor_predict_is_numpy_forward_pass(activation, regression):
    X, y = regression
    Y = np.c_[y, -y]
    reg = MLPRegressor(**_fast(hidden_layer_sizes=(9, 4), activation=activation, max_iter=5))
    reg.fit(X, Y)
    expected = _np_forward(reg, X, activation)
    np.testing.assert_allclose(reg.predict(X), expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# solvers, activations, dropout
# ---------------------------------------------------------------------------

SOLVER_PARAMS = {
    "sgd-nesterov": dict(solver="sgd", learning_rate_init=0.1, momentum=0.9),
    "sgd-momentum": dict(
        solver="sgd", learning_rate_init=0.1, momentum=0.9, nesterovs_momentum=False
    ),
    "sgd-plain": dict(solver="sgd", learning_rate_init=0.3, momentum=0.0),
    "sgd-invscaling": dict(
        solver="sgd", learning_rate="invscaling", learning_rate_init=1.0, power_t=0.25
    ),
    "sgd-adaptive": dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.1),
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "lbfgs": dict(solver="lbfgs", max_iter=50),
    "rmsprop": dict(solver="rmsprop", learning_rate_init=0.005),
    "adamw": dict(solver="adamw", learning_rate_init=0.01, alpha=0.01),
}


@pytest.mark.parametrize("params", SOLVER_PARAMS.values(), ids=SOLVER_PARAMS.keys())
def test_solvers_reach_good_accuracy(params, breast_cancer):
    X, y = breast_cancer
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    clf = MLPClassifier(**_fast(**{"max_iter": 50, **params})).fit(X_train, y_train)
    # scikit-learn's own MLPs score 0.92 to 0.94 on this split
    assert clf.score(X_test, y_test) > 0.9
    assert 1 <= clf.n_iter_ <= clf.max_iter
    assert np.isfinite(clf.loss_)
    if params["solver"] != "lbfgs":
        assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_invscaling_learning_rate_schedule(breast_cancer):
    X, y = breast_cancer
    clf = MLPClassifier(
        **_fast(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5, max_iter=4)
    ).fit(X, y)
    # scikit-learn: lr = learning_rate_init / (t + 1) ** power_t after each epoch
    expected = 0.5 / (clf.t_ + 1) ** 0.5
    for group in clf.net_.optimizer_.param_groups:
        np.testing.assert_allclose(group["lr"], expected, rtol=1e-12)


@pytest.mark.parametrize("learning_rate", ["constant", "adaptive"])
def test_stopping_rule_matches_sklearn(learning_rate, breast_cancer):
    """With a huge tol no epoch improves: when training stops (and the
    'adaptive' learning rate after its divisions by 5) depends on the rule
    only, so scikit-learn's own MLP gives the expected values."""
    X, y = breast_cancer
    params = dict(
        solver="sgd",
        learning_rate=learning_rate,
        learning_rate_init=0.1,
        tol=10.0,
        n_iter_no_change=2,
        max_iter=100,
        random_state=0,
    )
    ref = sk_nn.MLPClassifier(hidden_layer_sizes=(4,), **params).fit(X, y)
    clf = MLPClassifier(hidden_layer_sizes=(4,), device="cpu", **params).fit(X, y)
    assert clf.n_iter_ == ref.n_iter_ < 100
    assert len(clf.loss_curve_) == ref.n_iter_
    np.testing.assert_allclose(
        clf.net_.optimizer_.param_groups[0]["lr"], ref._optimizer.learning_rate, rtol=1e-12
    )


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_activations_train(activation, breast_cancer):
    X, y = breast_cancer
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    clf = MLPClassifier(**_fast(activation=activation, max_iter=25)).fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.9


def test_dropout_trains_and_predicts_deterministically(breast_cancer):
    X, y = breast_cancer
    clf = MLPClassifier(**_fast(hidden_layer_sizes=(32,), dropout=0.5)).fit(X, y)
    assert clf.score(X, y) > 0.9
    first = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict_proba(X), first)
    np.testing.assert_allclose(clf.predict_proba(X[:7]), first[:7], rtol=1e-6)
    # dropout changed the training: other weights than without it
    plain = MLPClassifier(**_fast(hidden_layer_sizes=(32,), dropout=0.0)).fit(X, y)
    assert not np.array_equal(plain.coefs_[0], clf.coefs_[0])
    # and predictions use the whole network (no dropout mask at predict time)
    raw = _np_forward(clf, X, "relu")
    np.testing.assert_allclose(first[:, 1], expit(raw).ravel(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_dropout_sample_weight_is_repetition(Est):
    """With dropout, a sample of integer weight k trains exactly as k copies
    (scikit-learn's check), because each mask is keyed by the sample."""
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data

    check_sample_weight_equivalence_on_dense_data(
        Est.__name__, Est(**_fast(hidden_layer_sizes=(16,), dropout=0.3, max_iter=40))
    )


# ---------------------------------------------------------------------------
# early stopping, tol, convergence
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_early_stopping_restores_best_weights(Est, breast_cancer, regression):
    X, y = _data_for(Est, breast_cancer, regression)
    params = _fast(early_stopping=True, tol=0.0, n_iter_no_change=4, max_iter=200)
    if Est is MLPRegressor:
        params["learning_rate_init"] = 0.05  # a noisy validation R^2
    est = Est(**params).fit(X, y)
    n_train = len(X) - math.ceil(0.1 * len(X))

    assert len(est.validation_scores_) == est.n_iter_ < 200
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.best_loss_ is None
    assert est.t_ == est.n_iter_ * n_train
    ref = SKLEARN_TWIN[Est](hidden_layer_sizes=(2,), early_stopping=True, max_iter=2).fit(X, y)
    assert ref.t_ == ref.n_iter_ * n_train

    best_epoch = int(np.argmax(est.validation_scores_)) + 1
    assert best_epoch < est.n_iter_  # stopped after epochs without improvement
    # The same fit run for exactly best_epoch epochs follows the same path
    # (same split, batches and initialisation): its final weights are the best
    # weights, which the early-stopped fit must have restored.
    again = Est(**{**params, "max_iter": best_epoch, "n_iter_no_change": 10_000}).fit(X, y)
    assert again.validation_scores_ == est.validation_scores_[:best_epoch]
    for a, b in zip(est.coefs_, again.coefs_):
        np.testing.assert_array_equal(a, b)
    # the score of the restored weights on the training data is that of epoch best_epoch
    np.testing.assert_array_equal(_output(est, X), _output(again, X))


def test_no_early_stopping_holds_out_nothing(breast_cancer):
    X, y = breast_cancer
    clf = MLPClassifier(**_fast(max_iter=5)).fit(X, y)
    assert clf.t_ == clf.n_iter_ * len(X)
    assert clf.validation_scores_ is None
    assert clf.best_validation_score_ is None
    ref = sk_nn.MLPClassifier(hidden_layer_sizes=(2,), max_iter=5).fit(X, y)
    assert clf.t_ == ref.t_


def test_tol_stops_before_max_iter(breast_cancer):
    X, y = breast_cancer
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = MLPClassifier(**_fast(tol=1e-2, n_iter_no_change=2, max_iter=500)).fit(X, y)
    # stopped by the rule: n_iter_no_change + 1 epochs without improvement
    assert 3 <= clf.n_iter_ < 500
    curve = np.array(clf.loss_curve_)
    best_before = np.minimum.accumulate(curve)[:-1]
    no_improvement = curve[1:] > best_before - 1e-2
    assert no_improvement[-3:].all()


def test_n_iter_no_change_inf_runs_max_iter(breast_cancer):
    X, y = breast_cancer
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier(**_fast(tol=10.0, n_iter_no_change=np.inf, max_iter=6)).fit(X, y)
    assert clf.n_iter_ == 6


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_convergence_warning_when_max_iter_hit(solver, breast_cancer):
    X, y = breast_cancer
    with pytest.warns(ConvergenceWarning, match=r"\(3\)|max_iter=3"):
        clf = MLPClassifier(**_fast(solver=solver, max_iter=3)).fit(X, y)
    assert clf.n_iter_ == 3


def test_batch_size_larger_than_n_samples_warns(breast_cancer):
    X, y = breast_cancer
    with pytest.warns(UserWarning, match="batch_size"):
        clf = MLPClassifier(**_fast(batch_size=10_000, max_iter=3)).fit(X, y)
    assert clf.t_ == 3 * len(X)


# ---------------------------------------------------------------------------
# partial_fit and warm_start
# ---------------------------------------------------------------------------


def test_partial_fit_classifier(breast_cancer):
    X, y = breast_cancer
    with pytest.raises(ValueError) as ref_info:
        sk_nn.MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError) as excinfo:
        MLPClassifier(**FAST).partial_fit(X, y)
    assert str(excinfo.value) == str(ref_info.value)

    clf = MLPClassifier(**FAST)
    losses = []
    for i in range(1, 11):
        clf.partial_fit(X, y, classes=np.array([0, 1]) if i == 1 else None)
        losses.append(clf.loss_)
        assert clf.n_iter_ == i
        assert clf.t_ == i * len(X)
    assert losses[-1] < 0.7 * losses[0]
    assert clf.score(X, y) > 0.9

    # a class that was not announced
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X[:3], np.array([0, 1, 2]))
    # classes can be announced before they are seen
    clf = MLPClassifier(**FAST).partial_fit(X[y == 0], y[y == 0], classes=[0, 1])
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    assert clf.predict_proba(X).shape == (len(X), 2)


def test_partial_fit_regressor(regression):
    X, y = regression
    reg = MLPRegressor(**FAST)
    for i in range(1, 6):
        reg.partial_fit(X, y)
        assert reg.n_iter_ == i
    first = MLPRegressor(**FAST).partial_fit(X, y).loss_
    assert reg.loss_ < first


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_partial_fit_unavailable_with_lbfgs(Est):
    assert not hasattr(Est(solver="lbfgs"), "partial_fit")
    assert hasattr(Est(solver="sgd"), "partial_fit")


def test_partial_fit_with_early_stopping_raises(breast_cancer):
    X, y = breast_cancer
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(**_fast(early_stopping=True)).partial_fit(X, y, classes=[0, 1])


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_warm_start_continues(Est, breast_cancer, regression):
    X, y = _data_for(Est, breast_cancer, regression)
    est = Est(**_fast(max_iter=5)).fit(X, y)
    cold_curve = list(est.loss_curve_)
    coefs_after_first = [c.copy() for c in est.coefs_]

    est.set_params(warm_start=True)
    est.fit(X, y)
    # scikit-learn: the curve goes on, n_iter_ counts this fit, t_ all samples
    assert len(est.loss_curve_) == 10
    assert est.loss_curve_[:5] == cold_curve
    assert est.n_iter_ == 5
    assert est.t_ == 10 * len(X)
    # the second fit started from the first one's weights: its first epoch
    # is much better than the first epoch from scratch
    assert est.loss_curve_[5] < est.loss_curve_[4] * 1.05
    assert est.loss_curve_[5] < cold_curve[0]
    assert not np.array_equal(est.coefs_[0], coefs_after_first[0])

    # without warm_start a second fit starts afresh: same model as a first fit
    est.set_params(warm_start=False)
    est.fit(X, y)
    assert est.loss_curve_ == cold_curve
    for a, b in zip(est.coefs_, coefs_after_first):
        np.testing.assert_array_equal(a, b)


def test_warm_start_classes_must_match(breast_cancer):
    X, y = breast_cancer
    clf = MLPClassifier(**_fast(max_iter=2, warm_start=True)).fit(X, y)
    with pytest.raises(ValueError, match="warm_start"):
        clf.fit(X, np.where(y == 1, 2, y))


# ---------------------------------------------------------------------------
# sample_weight
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_zero_sample_weight_equals_removing_rows(Est, breast_cancer, regression):
    X, y = _data_for(Est, breast_cancer, regression)
    X, y = X[:300], y[:300]
    w = np.ones(len(X))
    w[np.random.default_rng(0).choice(len(X), 60, replace=False)] = 0.0
    w[w > 0] = np.random.default_rng(1).integers(1, 4, size=int((w > 0).sum()))
    # few iterations: L-BFGS amplifies the last-bit differences of sums over
    # 300 and 240 rows, chaotically after a few dozen iterations
    params = _fast(solver="lbfgs", precision="float64", max_iter=12, alpha=1e-3)
    weighted = Est(**params).fit(X, y, sample_weight=w)
    removed = Est(**params).fit(X[w > 0], y[w > 0], sample_weight=w[w > 0])
    assert weighted.n_iter_ == removed.n_iter_
    for a, b in zip(weighted.coefs_ + weighted.intercepts_, removed.coefs_ + removed.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    # the weights matter at all
    unweighted = Est(**params).fit(X, y)
    assert not np.allclose(unweighted.coefs_[0], weighted.coefs_[0], atol=1e-3)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("Est", ESTIMATORS)
def test_unit_sample_weight_equals_none(Est, solver, breast_cancer, regression):
    X, y = _data_for(Est, breast_cancer, regression)
    params = _fast(solver=solver, max_iter=10, alpha=1e-2)
    a = Est(**params).fit(X, y)
    b = Est(**params).fit(X, y, sample_weight=np.ones(len(X)))
    np.testing.assert_array_equal(_output(a, X), _output(b, X))
    assert a.loss_ == b.loss_


def test_sample_weight_validation(breast_cancer):
    X, y = breast_cancer
    with pytest.raises(ValueError):
        MLPClassifier(**FAST).fit(X, y, sample_weight=np.ones(len(X) - 1))
    with pytest.raises(ValueError):
        MLPClassifier(**FAST).fit(X, y, sample_weight=np.ones((len(X), 2)))


def test_sample_weight_with_early_stopping(breast_cancer):
    X, y = breast_cancer
    w = np.random.default_rng(0).uniform(0.5, 2, size=len(X))
    clf = MLPClassifier(**_fast(early_stopping=True, max_iter=10)).fit(X, y, sample_weight=w)
    assert len(clf.validation_scores_) == clf.n_iter_


# ---------------------------------------------------------------------------
# reproducibility and global random state
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_same_seed_same_model(Est, breast_cancer, regression):
    X, y = _data_for(Est, breast_cancer, regression)
    params = _fast(max_iter=8, dropout=0.2, early_stopping=True)
    a, b = Est(**params).fit(X, y), Est(**params).fit(X, y)
    np.testing.assert_array_equal(_output(a, X), _output(b, X))
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(ca, cb)
    assert a.loss_curve_ == b.loss_curve_
    assert a.validation_scores_ == b.validation_scores_

    c = Est(**{**params, "random_state": 1}).fit(X, y)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])
    # a RandomState instance is accepted as well
    d = Est(**{**params, "random_state": np.random.RandomState(0)}).fit(X, y)
    assert d.coefs_[0].shape == a.coefs_[0].shape


@pytest.mark.parametrize("random_state", [0, None])
def test_fit_leaves_global_rng_untouched(random_state, breast_cancer):
    X, y = breast_cancer
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    params = _fast(max_iter=3, dropout=0.3, early_stopping=True, random_state=random_state)
    clf = MLPClassifier(**params).fit(X, y)
    clf.predict_proba(X)
    after = np.random.get_state()
    assert np_state[0] == after[0]
    np.testing.assert_array_equal(np_state[1], after[1])
    assert np_state[2:] == after[2:]
    assert torch.equal(torch_state, torch.get_rng_state())


def test_random_state_none_differs_between_fits(breast_cancer):
    X, y = breast_cancer
    a = MLPClassifier(**_fast(max_iter=2, random_state=None)).fit(X, y)
    b = MLPClassifier(**_fast(max_iter=2, random_state=None)).fit(X, y)
    assert not np.array_equal(a.coefs_[0], b.coefs_[0])


# ---------------------------------------------------------------------------
# errors, in scikit-learn's words
# ---------------------------------------------------------------------------


def _bad_inputs(X, y):
    X_nan, X_inf = X.copy(), X.copy()
    X_nan[3, 2] = np.nan
    X_inf[3, 2] = np.inf
    return {
        "nan": (X_nan, y, ValueError, "Input X contains NaN"),
        "inf": (X_inf, y, ValueError, "Input X contains infinity"),
        "empty": (X[:0], y[:0], ValueError, "0 sample"),
        "inconsistent": (X, y[:10], ValueError, "inconsistent numbers of samples"),
        "continuous_y": (X, y + 0.5, ValueError, "Unknown label type"),
    }


@pytest.mark.parametrize("case", ["nan", "inf", "empty", "inconsistent", "continuous_y"])
def test_bad_input_errors(case, breast_cancer):
    X, y = breast_cancer
    Xb, yb, error, match = _bad_inputs(X, y)[case]
    with pytest.raises(error, match=match) as excinfo:
        MLPClassifier(**FAST).fit(Xb, yb)
    _raised_outside_torch(excinfo)


def test_regressor_bad_y(regression):
    X, y = regression
    y_nan = y.copy()
    y_nan[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MLPRegressor(**FAST).fit(X, y_nan)
    with pytest.raises(ValueError):
        MLPRegressor(**FAST).fit(X, np.array(["a"] * len(X)))


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_predict_errors(Est, breast_cancer, regression):
    X, y = _data_for(Est, breast_cancer, regression)
    est = Est(**_fast(max_iter=2))
    methods = ["predict", "score"]
    if Est is MLPClassifier:
        methods += ["predict_proba", "predict_log_proba"]
    for method in methods:
        args = (X, y) if method == "score" else (X,)
        with pytest.raises(NotFittedError):
            getattr(est, method)(*args)
    est.fit(X, y)
    ref = SKLEARN_TWIN[Est](hidden_layer_sizes=(2,), max_iter=1).fit(X, y)
    with pytest.raises(ValueError) as ref_info:
        ref.predict(X[:, :3])
    with pytest.raises(ValueError) as excinfo:
        est.predict(X[:, :3])
    assert str(excinfo.value) == str(ref_info.value)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.predict(X_nan)
    # sparse X is accepted, as by scikit-learn, and predicts as dense X
    np.testing.assert_allclose(est.predict(sp.csr_matrix(X)), est.predict(X))
    # an empty X at predict time
    with pytest.raises(ValueError, match="0 sample"):
        est.predict(X[:0])


@pytest.mark.parametrize(
    "params",
    [
        dict(hidden_layer_sizes=(0,)),
        dict(hidden_layer_sizes=(5, -1)),
        dict(activation="foo"),
        dict(solver="foo"),
        dict(learning_rate="foo"),
        dict(learning_rate_init=0.0),
        dict(alpha=-1.0),
        dict(momentum=2.0),
        dict(validation_fraction=1.0),
        dict(batch_size=0),
        dict(max_iter=0),
        dict(dropout=1.0),
        dict(dropout=-0.1),
        dict(precision="float16"),
        dict(device="tpu"),
        dict(device="not a device"),
    ],
    ids=str,
)
@pytest.mark.parametrize("Est", ESTIMATORS)
def test_bad_parameters(Est, params, breast_cancer):
    X, y = breast_cancer
    with pytest.raises(ValueError) as excinfo:
        Est(**_fast(**params)).fit(X, y)
    _raised_outside_torch(excinfo)
    name = next(iter(params))
    if name in ("hidden_layer_sizes",):
        ref = SKLEARN_TWIN[Est](**{name: params[name]})
        with pytest.raises(ValueError) as ref_info:
            ref.fit(X, y)
        assert str(excinfo.value) == str(ref_info.value)
    elif name == "device":
        assert "device" in str(excinfo.value)
    else:
        assert isinstance(excinfo.value, InvalidParameterError)
        assert f"'{name}' parameter" in str(excinfo.value)


def test_bad_loss_parameter(regression):
    X, y = regression
    with pytest.raises(InvalidParameterError, match="'loss' parameter"):
        MLPRegressor(**_fast(loss="foo")).fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
@pytest.mark.parametrize("Est", ESTIMATORS)
def test_cuda_unavailable(Est, device, breast_cancer):
    X, y = breast_cancer
    with pytest.raises(ValueError, match="CUDA is not available") as excinfo:
        Est(**_fast(device=device)).fit(X, y)
    _raised_outside_torch(excinfo)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_diverging_fit_raises(Est, raw_breast_cancer, raw_diabetes):
    X, y = raw_breast_cancer if Est is MLPClassifier else raw_diabetes
    est = Est(
        solver="sgd", learning_rate_init=1e6, hidden_layer_sizes=(16,), max_iter=20,
        random_state=0, device="cpu", precision="float32",  # overflows within 20 epochs
    )
    with pytest.raises(ValueError, match="loss") as excinfo:
        est.fit(X, y)
    assert "diverge" in str(excinfo.value)
    _raised_outside_torch(excinfo)


# ---------------------------------------------------------------------------
# verbose
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_verbose_prints_one_line_per_epoch(Est, capsys, breast_cancer, regression):
    X, y = _data_for(Est, breast_cancer, regression)
    est = Est(**_fast(max_iter=4, verbose=1)).fit(X, y)
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == est.n_iter_ == 4
    for line, loss in zip(lines, est.loss_curve_):
        value = float(re.search(r"loss\W+([0-9.eE+-]+)", line).group(1))
        np.testing.assert_allclose(value, loss, rtol=1e-5)


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_verbose_zero_prints_nothing(Est, capsys, breast_cancer, regression):
    X, y = _data_for(Est, breast_cancer, regression)
    Est(**_fast(max_iter=3)).fit(X, y).predict(X)
    Est(**_fast(solver="lbfgs", max_iter=3)).fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_verbose_shows_validation_loss_and_score(Est, capsys, breast_cancer, regression):
    X, y = _data_for(Est, breast_cancer, regression)
    est = Est(**_fast(max_iter=3, verbose=1, early_stopping=True)).fit(X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    epoch_lines = [line for line in lines if line.startswith("Epoch")]
    assert len(epoch_lines) == est.n_iter_
    for line, score in zip(epoch_lines, est.validation_scores_):
        match = re.search(r"validation loss: ([0-9.eE+-]+) - validation score: ([0-9.eE+-]+)", line)
        assert match, line
        assert float(match.group(1)) >= 0
        np.testing.assert_allclose(float(match.group(2)), score, atol=1e-4)


def test_verbose_2_draws_a_progress_bar(capsys, monkeypatch, breast_cancer):
    from sknets import _engine

    # a long epoch, made long by drawing at once and on every step
    monkeypatch.setattr(_engine.ProgressBar, "__init__", _eager_bar_init)
    X, y = breast_cancer
    est = MLPClassifier(**_fast(max_iter=2, verbose=2, batch_size=100)).fit(X, y)
    out = capsys.readouterr().out
    n_batches = int(np.ceil(len(X) / 100))
    assert f"\rEpoch 1/2 {n_batches}/{n_batches} [{'=' * 30}]" in out
    assert "\rEpoch 2/2 1/6 [=====..." in out
    # the bar erases itself: each epoch ends with its summary line
    summaries = [line.split("\r")[-1] for line in out.split("\n") if line]
    assert [s.split(" - ")[0] for s in summaries] == ["Epoch 1/2", "Epoch 2/2"]
    assert est.n_iter_ == 2


def _eager_bar_init(self, label, stream=None, width=30, delay=0.5, interval=0.2):
    self.label, self.stream, self.width, self.delay, self.interval = label, stream, width, 0, 0


def test_verbose_1_draws_no_progress_bar(capsys, breast_cancer):
    X, y = breast_cancer
    MLPClassifier(**_fast(max_iter=2, verbose=1, batch_size=10)).fit(X, y)
    assert "\r" not in capsys.readouterr().out


def _validation_rows(est, X, y):
    """The rows ``est`` (fitted once, with early_stopping) validated on: its
    own split rule, ``_early_stopping_split``, with its first call's seed."""
    targets = est._encode_targets(y, first_call=False)[0]
    return est._early_stopping_split(targets, est._seed)[1]


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_validation_loss_curve_beside_validation_scores(Est, breast_cancer, regression):
    """With early_stopping, each epoch's validation loss is kept: its value at
    the best epoch is the loss of the restored weights on the held-out rows,
    computed here with scikit-learn's metrics (binary log loss; half the
    squared error for the regressor); net_.history has it as valid_loss."""
    from sklearn.metrics import log_loss, mean_squared_error

    X, y = _data_for(Est, breast_cancer, regression)
    est = Est(**_fast(early_stopping=True, tol=0.0, n_iter_no_change=4, max_iter=60)).fit(X, y)
    curve = est.validation_loss_curve_
    assert isinstance(curve, list) and all(isinstance(v, float) for v in curve)
    assert len(curve) == len(est.validation_scores_) == est.n_iter_
    assert est.net_.history[:, "valid_loss"] == curve
    assert est.net_.history[:, "train_loss"] == est.loss_curve_

    val = _validation_rows(est, X, y)
    if Est is MLPClassifier:
        expected = log_loss(y[val], est.predict_proba(X[val]))
    else:
        expected = 0.5 * mean_squared_error(y[val], est.predict(X[val]))
    best_epoch = int(np.argmax(est.validation_scores_))
    assert best_epoch < est.n_iter_ - 1  # the restored weights are not the last ones
    np.testing.assert_allclose(curve[best_epoch], expected, rtol=1e-6)
    assert curve[-1] != curve[best_epoch]


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_no_validation_loss_without_early_stopping(solver, breast_cancer):
    X, y = breast_cancer
    clf = MLPClassifier(**_fast(max_iter=3, solver=solver)).fit(X, y)
    if solver == "lbfgs":  # as validation_scores_: stochastic solvers only
        assert not hasattr(clf, "validation_loss_curve_")
    else:
        assert clf.validation_loss_curve_ is None
    assert all("valid_loss" not in row for row in clf.net_.history)


def test_validation_loss_curve_goes_on_with_warm_start(breast_cancer):
    X, y = breast_cancer
    clf = MLPClassifier(**_fast(max_iter=3, early_stopping=True, warm_start=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        first = list(clf.validation_loss_curve_)
        clf.fit(X, y)
    assert len(first) == 3
    assert clf.validation_loss_curve_[:3] == first
    assert len(clf.validation_loss_curve_) == len(clf.validation_scores_) == 6
    # a fresh fit starts a new curve
    clf.set_params(warm_start=False).fit(X, y)
    assert len(clf.validation_loss_curve_) == clf.n_iter_ == 3


def test_one_hot_y_is_multilabel_with_a_warning(small_digits):
    """A to_categorical-style y keeps scikit-learn's meaning (multilabel: the
    same fitted model as scikit-learn's kind of output), warns once per fit
    with the fix, and the labels it names train the multiclass model."""
    X, y = small_digits
    Y = np.eye(10, dtype=int)[y]
    with pytest.warns(UserWarning, match="one-hot") as record:
        clf = MLPClassifier(**_fast(max_iter=5)).fit(X, Y)
    messages = [str(w.message) for w in record if "one-hot" in str(w.message)]
    assert len(messages) == 1
    assert "treats it as multilabel" in messages[0]
    assert "y.argmax(axis=1)" in messages[0]
    ref = sk_nn.MLPClassifier(hidden_layer_sizes=(2,), max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref.fit(X, Y)
    assert clf.out_activation_ == ref.out_activation_ == "logistic"
    assert clf.predict(X[:3]).shape == (3, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        multiclass = MLPClassifier(**_fast(max_iter=5)).fit(X, Y.argmax(axis=1))
    assert multiclass.out_activation_ == "softmax"


def test_one_hot_partial_fit_warns_on_the_first_call_only(small_digits):
    X, y = small_digits
    Y = np.eye(10, dtype=int)[y]
    clf = MLPClassifier(**_fast())
    with pytest.warns(UserWarning, match="one-hot"):
        clf.partial_fit(X[:200], Y[:200], classes=np.arange(10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.partial_fit(X[200:], Y[200:])


def test_true_multilabel_y_does_not_warn(small_digits):
    X, y = small_digits
    Y = np.stack([y % 2, y > 4, y == 0], axis=1).astype(int)  # some rows 0 or 2 ones
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(**_fast(max_iter=3)).fit(X, Y)


@pytest.mark.parametrize("measured", [True, False])
def test_adopted_result_sets_the_validation_loss_curve(measured, breast_cancer):
    """A fit that adopts a batched trainer's result (sknets._seam.adopt) keeps
    the validation losses the trainer measured, in the curve and the history;
    a trainer that measured none leaves validation_loss_curve_ None."""
    from sknets import _seam

    X, y = breast_cancer
    base = MLPClassifier(**_fast(early_stopping=True, max_iter=200))
    ref = clone(base).fit(X, y)
    result = _seam.TrainingResult(
        layers=ref._layer_weights(),
        loss_curve=list(ref.loss_curve_),
        validation_scores=list(ref.validation_scores_),
        validation_losses=list(ref.validation_loss_curve_) if measured else None,
        best=ref.best_validation_score_,
        no_improvement=ref._no_improvement_count,
        t=ref.t_,
        converged=True,
        improved=True,
    )
    est = _seam.adopt(clone(base), X, y, result)
    assert set(vars(est)) == set(vars(ref))
    if measured:
        assert est.validation_loss_curve_ == ref.validation_loss_curve_
        assert est.net_.history[:, "valid_loss"] == ref.validation_loss_curve_
    else:
        assert est.validation_loss_curve_ is None
        assert all("valid_loss" not in row for row in est.net_.history)
    np.testing.assert_array_equal(est.predict_proba(X), ref.predict_proba(X))


@pytest.mark.parametrize("labels", [
    np.array([3, 1, 2, 1, 3, 2] * 5),
    np.array(["b", "c", "a", "c", "b", "a"] * 5, dtype=object),
    np.array([7.0, -1.0, 2.0, -1.0, 7.0, 2.0] * 5),
])
def test_multiclass_targets_are_the_class_indices(labels):
    """The encoded targets of a multiclass fit are the indices of the labels
    in ``classes_``, as LabelBinarizer's one-hot rows' argmax; so is a later
    ``partial_fit`` on a subset of the classes."""
    from sklearn.preprocessing import LabelBinarizer

    X = np.random.RandomState(0).rand(len(labels), 3)
    clf = MLPClassifier((4,), max_iter=1, random_state=0)
    targets, loss, out, n = clf._encode_targets(labels, first_call=True)
    want = LabelBinarizer().fit(labels).transform(labels).argmax(axis=1)
    assert targets.dtype == np.int64 and np.array_equal(targets, want)
    assert (loss, out, n) == ("log_loss", "softmax", 3)
    clf.partial_fit(X, labels, classes=np.unique(labels))
    subset = labels[labels != labels[0]]
    targets, *_ = clf._encode_targets(subset, first_call=False)
    assert np.array_equal(clf.classes_[targets], subset)


def test_param_names_are_read_once_per_class():
    """``get_params`` reads each class's own ``__init__``: a subclass with
    another parameter has it, its base class does not."""

    class Wider(MLPClassifier):
        def __init__(self, hidden_layer_sizes=(100,), *, extra=1, **kwargs):
            super().__init__(hidden_layer_sizes, **kwargs)
            self.extra = extra

    base = set(MLPClassifier().get_params())
    assert set(Wider().get_params()) == {"hidden_layer_sizes", "extra"}
    assert set(MLPClassifier().get_params()) == base and "extra" not in base
    assert MLPClassifier._get_param_names() == sorted(base)
    names = MLPClassifier._get_param_names()
    names.append("mutated")
    assert "mutated" not in MLPClassifier._get_param_names()
