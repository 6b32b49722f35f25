"""sknets.model_selection: scikit-learn's results, with batched fits."""

import re
import time
import warnings

import numpy as np
import pytest
from sklearn import model_selection as sk
from sklearn.datasets import load_digits
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import KFold, RepeatedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from sknets import MLPClassifier, MLPRegressor
from sknets.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    _distributed,
    cross_val_score,
    cross_validate,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def raw_digits():
    X, y = load_digits(return_X_y=True)
    return X[:450], y[:450]


def _pipe(**params):
    base = dict(
        hidden_layer_sizes=(10,), precision="float64", batch_size=64, max_iter=6,
        learning_rate_init=1e-2, random_state=0, device="cpu",
    )
    return make_pipeline(MinMaxScaler(), MLPClassifier(**{**base, **params}))


GRID = {
    "mlpclassifier__learning_rate_init": [1e-3, 1e-2],
    "mlpclassifier__hidden_layer_sizes": [(6,), (12,)],
}
CV = KFold(3, shuffle=True, random_state=0)


def _assert_same_cv_results(ours, theirs):
    assert sorted(ours.cv_results_) == sorted(theirs.cv_results_)
    for key, want in theirs.cv_results_.items():
        got = ours.cv_results_[key]
        assert type(got) is type(want), key
        if "time" in key:
            assert got.shape == want.shape and got.dtype == want.dtype
        elif key.startswith(("param", "rank")) or key == "params":
            assert np.array_equal(np.asarray(got, dtype=object), np.asarray(want, dtype=object))
            assert getattr(got, "dtype", None) == getattr(want, "dtype", None)
        else:
            assert got.dtype == want.dtype, key
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=key)


def test_grid_search_matches_scikit_learn(raw_digits, capsys):
    X, y = raw_digits
    ours = GridSearchCV(_pipe(), GRID, cv=CV, verbose=1, return_train_score=True).fit(X, y)
    out = capsys.readouterr().out
    assert "[sknets] trained 12 fit(s) as 2 batched network(s)" in out  # 2 widths
    theirs = sk.GridSearchCV(_pipe(), GRID, cv=CV, return_train_score=True).fit(X, y)
    _assert_same_cv_results(ours, theirs)
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_index_ == theirs.best_index_
    assert ours.best_score_ == pytest.approx(theirs.best_score_, abs=1e-6)
    # the refit is an ordinary fit on all rows, as in scikit-learn
    np.testing.assert_allclose(
        ours.best_estimator_[-1].coefs_[0], theirs.best_estimator_[-1].coefs_[0], atol=1e-6
    )
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)
    assert ours.n_splits_ == 3 and ours.multimetric_ is False


def test_multimetric_scoring_and_refit_by_name(raw_digits):
    X, y = raw_digits
    scoring = {"acc": "accuracy", "nll": "neg_log_loss"}
    ours = GridSearchCV(_pipe(), GRID, cv=CV, scoring=scoring, refit="nll").fit(X, y)
    theirs = sk.GridSearchCV(_pipe(), GRID, cv=CV, scoring=scoring, refit="nll").fit(X, y)
    _assert_same_cv_results(ours, theirs)
    assert ours.best_params_ == theirs.best_params_
    assert ours.multimetric_


def test_callable_scoring_and_no_refit(raw_digits):
    X, y = raw_digits

    def neg_errors(est, X, y):
        return -float(np.sum(est.predict(X) != y))

    ours = GridSearchCV(_pipe(), GRID, cv=CV, scoring=neg_errors, refit=False).fit(X, y)
    theirs = sk.GridSearchCV(_pipe(), GRID, cv=CV, scoring=neg_errors, refit=False).fit(X, y)
    _assert_same_cv_results(ours, theirs)
    assert not hasattr(ours, "best_estimator_")


def test_preprocessing_parameters_are_fitted_per_fold(raw_digits):
    """A grid over the scaler and the network: each scaler setting gets its
    own transformed folds."""
    X, y = raw_digits
    grid = {
        "minmaxscaler__feature_range": [(0, 1), (-1, 1)],
        "mlpclassifier__learning_rate_init": [1e-3, 1e-2],
    }
    ours = GridSearchCV(_pipe(), grid, cv=CV).fit(X, y)
    theirs = sk.GridSearchCV(_pipe(), grid, cv=CV).fit(X, y)
    _assert_same_cv_results(ours, theirs)


def test_unbatchable_fits_fall_back_with_the_reason(raw_digits, capsys):
    X, y = raw_digits
    grid = {"mlpclassifier__solver": ["adam", "lbfgs"]}
    with pytest.warns(UserWarning, match="3 of 6 fits are trained one by one in this process"):
        ours = GridSearchCV(_pipe(max_iter=5), grid, cv=CV, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert "trained 3 fit(s) as 1 batched network(s)" in out
    assert "3 fit(s) run one by one: solver='lbfgs'" in out
    theirs = sk.GridSearchCV(_pipe(max_iter=5), grid, cv=CV).fit(X, y)
    _assert_same_cv_results(ours, theirs)


def test_other_estimators_run_as_in_scikit_learn(raw_digits, capsys):
    from sklearn.linear_model import LogisticRegression

    X, y = raw_digits
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200))
    ours = GridSearchCV(est, {"logisticregression__C": [0.1, 1.0]}, cv=CV, verbose=1).fit(X, y)
    assert "LogisticRegression is not a sknets MLPClassifier" in capsys.readouterr().out
    theirs = sk.GridSearchCV(est, {"logisticregression__C": [0.1, 1.0]}, cv=CV).fit(X, y)
    np.testing.assert_array_equal(
        ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"]
    )


def test_error_score(raw_digits):
    """A fit that diverges gets error_score, as in scikit-learn."""
    X, y = raw_digits
    grid = {"mlpclassifier__learning_rate_init": [1e-2, 1e9]}
    pipe = _pipe(precision="float32", solver="sgd", momentum=0.0)
    with pytest.warns(FitFailedWarning, match="diverged"):
        ours = GridSearchCV(pipe, grid, cv=CV, error_score=-1.0).fit(X, y)
    assert ours.cv_results_["mean_test_score"][1] == -1.0
    with pytest.warns(FitFailedWarning, match="diverged"):
        theirs = sk.GridSearchCV(pipe, grid, cv=CV, error_score=-1.0).fit(X, y)
    _assert_same_cv_results(ours, theirs)
    with pytest.raises(ValueError, match="diverged"):
        GridSearchCV(pipe, grid, cv=CV, error_score="raise").fit(X, y)


def test_randomized_search_matches_scikit_learn(raw_digits):
    X, y = raw_digits
    dist = {
        "mlpclassifier__learning_rate_init": [1e-3, 3e-3, 1e-2, 3e-2],
        "mlpclassifier__alpha": [1e-4, 1e-2],
    }
    ours = RandomizedSearchCV(_pipe(), dist, n_iter=3, cv=CV, random_state=0).fit(X, y)
    theirs = sk.RandomizedSearchCV(_pipe(), dist, n_iter=3, cv=CV, random_state=0).fit(X, y)
    _assert_same_cv_results(ours, theirs)


def test_n_jobs_is_accepted_and_restored(raw_digits):
    X, y = raw_digits
    search = GridSearchCV(_pipe(), GRID, cv=CV, n_jobs=2).fit(X, y)
    assert search.n_jobs == 2
    theirs = sk.GridSearchCV(_pipe(), GRID, cv=CV).fit(X, y)
    _assert_same_cv_results(search, theirs)


def test_cross_val_score_repeated_kfold_batches_all_fits(diabetes, capsys):
    X, y = diabetes
    reg = MLPRegressor(
        hidden_layer_sizes=(8,), precision="float64", learning_rate_init=1e-2, max_iter=5,
        random_state=0, device="cpu",
    )
    cv = RepeatedKFold(n_splits=5, n_repeats=3, random_state=0)
    ours = cross_val_score(reg, X, y, cv=cv, scoring="neg_mean_absolute_error", verbose=1)
    assert "trained 15 fit(s) as 1 batched network(s)" in capsys.readouterr().out
    theirs = sk.cross_val_score(reg, X, y, cv=cv, scoring="neg_mean_absolute_error")
    assert ours.shape == (15,)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_cross_validate_returns_the_batched_estimators(raw_digits):
    X, y = raw_digits
    ours = cross_validate(
        _pipe(), X, y, cv=CV, return_estimator=True, return_train_score=True,
        return_indices=True, scoring=["accuracy", "neg_log_loss"],
    )
    theirs = sk.cross_validate(
        _pipe(), X, y, cv=CV, return_estimator=True, return_train_score=True,
        return_indices=True, scoring=["accuracy", "neg_log_loss"],
    )
    assert sorted(ours) == sorted(theirs)
    for key in ("test_accuracy", "train_accuracy", "test_neg_log_loss"):
        np.testing.assert_allclose(ours[key], theirs[key], atol=1e-6)
    for a, b in zip(ours["estimator"], theirs["estimator"]):
        np.testing.assert_allclose(a[-1].coefs_[1], b[-1].coefs_[1], atol=1e-6)
        assert a[-1].n_iter_ == b[-1].n_iter_


def test_fit_params_fall_back(raw_digits, capsys):
    X, y = raw_digits
    w = np.ones(len(y))
    w[:50] = 2.0
    match = r"all fits .* fit parameters \['mlpclassifier__sample_weight'\]"
    with pytest.warns(UserWarning, match=match):
        ours = cross_val_score(
            _pipe(), X, y, cv=CV, params={"mlpclassifier__sample_weight": w}, verbose=1
        )
    assert "are not batched" in capsys.readouterr().out
    theirs = sk.cross_val_score(_pipe(), X, y, cv=CV, params={"mlpclassifier__sample_weight": w})
    np.testing.assert_array_equal(ours, theirs)


def test_refit_trained_with_the_members(raw_digits, capsys, monkeypatch):
    """On a GPU the refit of every candidate trains with the members; the
    logic is the same on a CPU, forced here."""
    from sknets.model_selection import _search

    monkeypatch.setattr(_search, "_on_cuda", lambda estimator: True)
    X, y = raw_digits
    ours = GridSearchCV(_pipe(), GRID, cv=CV, verbose=1).fit(X, y)
    assert "trained 16 fit(s) as 2 batched network(s)" in capsys.readouterr().out
    theirs = sk.GridSearchCV(_pipe(), GRID, cv=CV).fit(X, y)
    _assert_same_cv_results(ours, theirs)
    best, want = ours.best_estimator_[-1], theirs.best_estimator_[-1]
    assert best.n_iter_ == want.n_iter_
    for got, expected in zip(best.coefs_, want.coefs_):
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_grid_search_with_early_stopping_matches_scikit_learn(raw_digits, capsys):
    X, y = raw_digits
    pipe = _pipe(early_stopping=True, max_iter=15, n_iter_no_change=2, validation_fraction=0.2)
    grid = {"mlpclassifier__learning_rate_init": [1e-2, 1e-1]}
    ours = GridSearchCV(pipe, grid, cv=CV, verbose=1).fit(X, y)
    assert "trained 6 fit(s) as 1 batched network(s)" in capsys.readouterr().out
    theirs = sk.GridSearchCV(pipe, grid, cv=CV).fit(X, y)
    _assert_same_cv_results(ours, theirs)


def test_batched_estimators_keep_their_validation_loss_curves(raw_digits):
    """cross_validate(return_estimator=True) with early_stopping: each
    batched member has the validation loss curve of its separate fit, also
    as valid_loss in its net's history."""
    X, y = raw_digits
    pipe = _pipe(early_stopping=True, max_iter=8, n_iter_no_change=2, validation_fraction=0.2)
    ours = cross_validate(pipe, X, y, cv=CV, return_estimator=True)
    theirs = sk.cross_validate(pipe, X, y, cv=CV, return_estimator=True)
    for got, want in zip(ours["estimator"], theirs["estimator"]):
        got, want = got[-1], want[-1]
        assert len(got.validation_loss_curve_) == got.n_iter_ == want.n_iter_
        np.testing.assert_allclose(got.validation_loss_curve_, want.validation_loss_curve_,
                                   rtol=1e-5)
        assert got.net_.history[:, "valid_loss"] == got.validation_loss_curve_


# ----------------------------------------------------------------------------
# Honest model selection: fit times, fallbacks
# ----------------------------------------------------------------------------


@pytest.fixture
def training_time(monkeypatch):
    """The seconds spent in batched training (``train_plans``), summed."""
    spent = {"seconds": 0.0, "calls": 0}
    train_plans = _distributed.train_plans

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return train_plans(*args, **kwargs)
        finally:
            spent["seconds"] += time.perf_counter() - start
            spent["calls"] += 1

    monkeypatch.setattr(_distributed, "train_plans", timed)
    return spent


def test_fit_times_are_the_members_shares_of_the_batched_training(raw_digits, training_time):
    """Each fit's time is its member's share of the batched training plus
    its own overhead: the times of all fits sum to the measured training
    time and a little more, never to more than the search took."""
    X, y = raw_digits
    start = time.perf_counter()
    search = GridSearchCV(_pipe(max_iter=30), GRID, cv=CV).fit(X, y)
    wall = time.perf_counter() - start
    assert training_time["calls"] == 1
    fit_times = search.cv_results_["mean_fit_time"] * search.n_splits_
    total = float(fit_times.sum())
    assert 0.95 * training_time["seconds"] <= total <= wall
    # every fit had its part: no fit of an adopted member reports ~0
    assert fit_times.min() > 0.2 * training_time["seconds"] / len(fit_times)
    assert np.all(search.cv_results_["std_fit_time"] >= 0)


def test_cross_validate_fit_times_are_the_members_shares(raw_digits, training_time):
    X, y = raw_digits
    start = time.perf_counter()
    result = cross_validate(_pipe(max_iter=30), X, y, cv=CV)
    wall = time.perf_counter() - start
    assert 0.95 * training_time["seconds"] <= result["fit_time"].sum() <= wall


def _ours(record):
    return [w for w in record if "sknets.model_selection" in str(w.message)]


def test_a_fallback_warns_once_naming_the_reason(raw_digits, capsys):
    X, y = raw_digits
    grid = {"mlpclassifier__solver": ["adam", "lbfgs", "sgd"], "mlpclassifier__dropout": [0.0]}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        GridSearchCV(_pipe(max_iter=4), grid, cv=CV).fit(X, y)
        RandomizedSearchCV(
            _pipe(max_iter=4), {"mlpclassifier__warm_start": [False, True]}, n_iter=2, cv=CV,
            random_state=0,
        ).fit(X, y)
    first, second = _ours(record)
    assert first.category is UserWarning
    assert str(first.message).startswith(
        "sknets.model_selection: 3 of 9 fits are trained one by one in this process"
    )
    assert "solver='lbfgs'" in str(first.message)
    assert "warm_start=True (3 fit(s))" in str(second.message)
    assert first.filename == __file__  # points at the user's call
    assert capsys.readouterr().out == ""  # verbose=0 prints nothing


def test_scikit_learn_estimators_get_no_fallback_warning(raw_digits):
    from sklearn.linear_model import LogisticRegression

    X, y = raw_digits
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=50))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        GridSearchCV(est, {"logisticregression__C": [0.1, 1.0]}, cv=CV).fit(X, y)
        cross_val_score(est, X, y, cv=CV)
    assert _ours(record) == []


@pytest.mark.parametrize(
    "grid", [{"mlpclassifier__alpha": [1e-4, 1e-3]}, {"mlpclassifier__solver": ["lbfgs"]}]
)
def test_no_empty_fit_count_lines(raw_digits, capsys, grid):
    X, y = raw_digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        GridSearchCV(_pipe(max_iter=3), grid, cv=CV, verbose=1).fit(X, y)
        cross_val_score(_pipe(max_iter=3, solver=grid.get("mlpclassifier__solver", ["adam"])[0]),
                        X, y, cv=CV, verbose=1)
    out = capsys.readouterr().out
    assert "[sknets]" in out
    assert not re.search(r"\b0 fit\(s\)|\b0 batched network", out)


def test_a_search_that_raises_is_left_as_it_was(raw_digits):
    X, y = raw_digits
    search = GridSearchCV(_pipe(), {"mlpclassifier__alpha": [1e-4]}, cv=CV).fit(X, y)
    before = dict(vars(search))
    pipe = _pipe(precision="float32", solver="sgd", momentum=0.0)
    search.set_params(estimator=pipe, param_grid={"mlpclassifier__learning_rate_init": [1e9]},
                      error_score="raise")
    before.update(estimator=search.estimator, param_grid=search.param_grid, error_score="raise")
    with pytest.raises(ValueError, match="diverged"):
        search.fit(X, y)
    assert vars(search).keys() == before.keys()
    assert all(vars(search)[k] is v for k, v in before.items())
