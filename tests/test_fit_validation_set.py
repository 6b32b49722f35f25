"""``fit(X, y, X_val=..., y_val=..., sample_weight_val=...)``: early stopping
on a validation set of the user's, with the semantics of scikit-learn's
HistGradientBoosting (the given set replaces the ``validation_fraction``
split, and all of X trains).

Expected values come from scikit-learn's metrics on the fitted model, from
the same fit without the validation set, or from the data; never from the
output under test.
"""

import warnings

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss, r2_score
from sklearn.model_selection import GridSearchCV as SkGridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

import sknets.model_selection as sms
from sknets import ConvClassifier, ConvRegressor, MLPClassifier, MLPRegressor


def _quiet(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


@pytest.fixture(scope="module")
def split_digits(digits):
    X, y = digits
    return X[:1000], y[:1000], X[1000:1400], y[1000:1400]


def _clf(**kw):
    params = dict(hidden_layer_sizes=(16,), early_stopping=True, max_iter=12,
                  random_state=0, device="cpu")
    return MLPClassifier(**{**params, **kw})


def test_scores_are_measured_on_the_given_set(split_digits):
    Xt, yt, Xv, yv = split_digits
    clf = _quiet(_clf(), Xt, yt, X_val=Xv, y_val=yv)
    # the best weights are restored: the final model scores the best score
    assert clf.score(Xv, yv) == clf.best_validation_score_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    best = int(np.argmax(clf.validation_scores_))
    # the loss on the given rows, of the weights kept (the log loss, no penalty)
    expected = log_loss(yv, clf.predict_proba(Xv), labels=clf.classes_)
    np.testing.assert_allclose(clf.validation_loss_curve_[best], expected, rtol=1e-6)
    history = [row["valid_loss"] for row in clf.net_.history]
    assert history == clf.validation_loss_curve_
    assert len(clf.validation_scores_) == clf.n_iter_


def test_last_epoch_best_scores_equal_score(split_digits):
    # the target: when the last epoch is the best one, its
    # validation score is the final model's score on the given set
    Xt, yt, Xv, yv = split_digits
    clf = _quiet(_clf(max_iter=8, learning_rate_init=1e-3), Xt, yt, X_val=Xv, y_val=yv)
    assert clf.validation_scores_[-1] == max(clf.validation_scores_)
    assert clf.validation_scores_[-1] == clf.score(Xv, yv)


def test_all_of_X_trains(split_digits):
    # the given set replaces the split: the training epochs are those of
    # a fit on all of X without early stopping (same seed, same batches)
    Xt, yt, Xv, yv = split_digits
    kw = dict(max_iter=6, n_iter_no_change=100)
    with_val = _quiet(_clf(**kw), Xt, yt, X_val=Xv, y_val=yv)
    plain = _quiet(_clf(early_stopping=False, **kw), Xt, yt)
    assert with_val.loss_curve_ == plain.loss_curve_
    assert with_val.t_ == plain.t_ == 6 * len(Xt)


def test_sample_weight_val_weights_the_score(split_digits):
    Xt, yt, Xv, yv = split_digits
    w = np.where(yv < 5, 3.0, 0.5)
    clf = _quiet(_clf(), Xt, yt, X_val=Xv, y_val=yv, sample_weight_val=w)
    assert clf.best_validation_score_ == accuracy_score(yv, clf.predict(Xv), sample_weight=w)
    unweighted = _quiet(_clf(), Xt, yt, X_val=Xv, y_val=yv)
    assert clf.validation_scores_ != unweighted.validation_scores_


def test_regressor_scores_r2_on_the_given_set(diabetes):
    X, y = diabetes
    reg = _quiet(
        MLPRegressor(hidden_layer_sizes=(16,), early_stopping=True, max_iter=30,
                     learning_rate_init=0.01, random_state=0, device="cpu"),
        X[:300], y[:300], X_val=X[300:], y_val=y[300:],
    )
    assert reg.best_validation_score_ == pytest.approx(
        r2_score(y[300:], reg.predict(X[300:])), rel=1e-12
    )


@pytest.mark.parametrize("Est", [ConvClassifier, ConvRegressor])
def test_conv_estimators_take_a_validation_set(Est, digits):
    X, y = digits
    X = X.reshape(-1, 8, 8)
    y = y if Est is ConvClassifier else y.astype(float)
    # (without batch norm: its statistics are recomputed over X after
    # training, so the final model is not the one validated during training)
    est = Est(filters=(4,), hidden_layer_sizes=(8,), max_iter=3, early_stopping=True,
              batch_norm=False, random_state=0, device="cpu")
    _quiet(est, X[:300], y[:300], X_val=X[300:400], y_val=y[300:400])
    assert len(est.validation_scores_) == est.n_iter_
    assert est.best_validation_score_ == pytest.approx(est.score(X[300:400], y[300:400]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"X_val": "X"}, "X_val is provided, but y_val was not provided."),
        ({"y_val": "y"}, "y_val is provided, but X_val was not provided."),
        ({"sample_weight_val": "w"}, "sample_weight_val is provided, but X_val and y_val"),
    ],
)
def test_incomplete_validation_set_is_an_error(kwargs, match, split_digits):
    Xt, yt, Xv, yv = split_digits
    data = {"X": Xv, "y": yv, "w": np.ones(len(yv))}
    with pytest.raises(ValueError, match=match):
        _clf().fit(Xt, yt, **{k: data[v] for k, v in kwargs.items()})


def test_validation_set_needs_early_stopping(split_digits):
    Xt, yt, Xv, yv = split_digits
    with pytest.raises(ValueError, match="early_stopping is False"):
        _clf(early_stopping=False).fit(Xt, yt, X_val=Xv, y_val=yv)
    with pytest.raises(ValueError, match="solver='lbfgs' does not stop early"):
        _clf(solver="lbfgs").fit(Xt, yt, X_val=Xv, y_val=yv)


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda Xv, yv: (Xv[:, :10], yv), "X has 10 features"),
        (lambda Xv, yv: (np.where(Xv > 0.5, np.nan, Xv), yv), "Input X contains NaN"),
        (lambda Xv, yv: (Xv, yv[:-1]), "inconsistent numbers of samples"),
        (lambda Xv, yv: (Xv, yv + 20), "y_val has classes not in `self.classes_`"),
        (lambda Xv, yv: (Xv, yv + 0.5), "Unknown label type"),
    ],
)
def test_bad_validation_set_leaves_the_estimator_as_it_was(bad, match, split_digits):
    Xt, yt, Xv, yv = split_digits
    clf = _quiet(_clf(max_iter=2), Xt, yt)
    before = {k: v for k, v in vars(clf).items() if k != "net_"}
    weights = [p.detach().clone() for p in clf.net_.module_.parameters()]
    with pytest.raises(ValueError, match=match):
        clf.fit(Xt, yt, X_val=bad(Xv, yv)[0], y_val=bad(Xv, yv)[1])
    assert before.keys() == {k for k in vars(clf) if k != "net_"}
    assert clf.loss_curve_ == before["loss_curve_"]
    for p, q in zip(clf.net_.module_.parameters(), weights):
        assert torch_equal(p, q)


def torch_equal(a, b):
    return bool((a.detach() == b).all())


def test_pipeline_and_searches_route_the_validation_set(split_digits):
    Xt, yt, Xv, yv = split_digits
    with sklearn.config_context(enable_metadata_routing=True):
        est = _clf(max_iter=4).set_fit_request(X_val=True, y_val=True)
        pipe = Pipeline([("scale", MinMaxScaler()), ("mlp", est)], transform_input=["X_val"])
        pipe.fit(Xt * 16, yt, X_val=Xv * 16, y_val=yv)
        # X_val went through the fitted scaler: scores on the scaled set
        assert pipe[-1].best_validation_score_ == pipe.score(Xv * 16, yv)
        grid = {"mlp__learning_rate_init": [1e-3, 1e-2]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            theirs = SkGridSearchCV(clone(pipe), grid, cv=2).fit(Xt, yt, X_val=Xv, y_val=yv)
            with pytest.warns(UserWarning, match=r"fit parameters \['X_val', 'y_val'\]"):
                ours = sms.GridSearchCV(clone(pipe), grid, cv=2).fit(
                    Xt, yt, X_val=Xv, y_val=yv
                )
    np.testing.assert_array_equal(
        ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"]
    )
    assert ours.best_params_ == theirs.best_params_
