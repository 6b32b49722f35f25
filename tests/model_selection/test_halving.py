"""sknets.model_selection's halving searches: scikit-learn's successive
halving, each iteration's fits trained as batched networks."""

import re
import time
import warnings

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.datasets import load_digits
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV as SkHalvingGridSearchCV
from sklearn.model_selection import HalvingRandomSearchCV as SkHalvingRandomSearchCV
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sknets import MLPClassifier
from sknets.model_selection import (
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    _distributed,
    _search,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def raw_digits():
    X, y = load_digits(return_X_y=True)
    return X[:450], y[:450]


BASE = dict(
    hidden_layer_sizes=(10,), precision="float64", batch_size=32, max_iter=6,
    learning_rate_init=1e-2, random_state=0, device="cpu",
)


def _pipe(**params):
    return make_pipeline(MinMaxScaler(), MLPClassifier(**{**BASE, **params}))


#: 8 candidates of one structure: with factor=2 on 450 rows and 3 folds,
#: 3 iterations of 8, 4 and 2 candidates on 60, 120 and 240 rows
GRID = {
    "mlpclassifier__learning_rate_init": [1e-3, 3e-3, 1e-2, 3e-2],
    "mlpclassifier__alpha": [1e-4, 1e-2],
}
CV = KFold(3, shuffle=True, random_state=0)

#: what the halving searches set, beyond cv_results_
ATTRIBUTES = (
    "n_resources_", "n_candidates_", "n_remaining_candidates_", "n_iterations_",
    "n_possible_iterations_", "n_required_iterations_", "min_resources_", "max_resources_",
    "n_splits_", "best_index_", "best_params_", "multimetric_",
)


@pytest.fixture
def training(monkeypatch):
    """The batched trainings (``train_plans`` calls): their number of
    members and their seconds."""
    calls = []
    train_plans = _distributed.train_plans

    def spy(plans, *args, **kwargs):
        start = time.perf_counter()
        try:
            return train_plans(plans, *args, **kwargs)
        finally:
            calls.append((len(plans), time.perf_counter() - start))

    monkeypatch.setattr(_distributed, "train_plans", spy)
    return calls


def _assert_same_search(ours, theirs):
    """The same candidates kept at each iteration, the same scores (float
    tolerance), the same best candidate and attributes."""
    assert sorted(ours.cv_results_) == sorted(theirs.cv_results_)
    for key, want in theirs.cv_results_.items():
        got = ours.cv_results_[key]
        assert type(got) is type(want), key
        if "time" in key:
            assert got.shape == want.shape and got.dtype == want.dtype, key
        elif key.startswith(("param", "rank")) or key in ("params", "iter", "n_resources"):
            assert np.array_equal(
                np.asarray(got, dtype=object), np.asarray(want, dtype=object)
            ), key
            assert getattr(got, "dtype", None) == getattr(want, "dtype", None), key
        else:
            assert got.dtype == want.dtype, key
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=key)
    for name in ATTRIBUTES:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.best_score_ == pytest.approx(theirs.best_score_, abs=1e-6)


def _ours(record):
    return [w for w in record if "sknets.model_selection" in str(w.message)]


def _trained_lines(out):
    return re.findall(r"\[sknets\] trained (\d+) fit\(s\) as (\d+) batched network", out)


def test_halving_on_rows_matches_scikit_learn_one_batched_network_an_iteration(
    raw_digits, capsys, adopted, training
):
    X, y = raw_digits
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ours = HalvingGridSearchCV(_pipe(), GRID, cv=CV, factor=2, random_state=0, verbose=1)
        ours.fit(X, y)
    assert _ours(record) == []  # no fallback warning
    out = capsys.readouterr().out
    # every (candidate, fold) fit of an iteration in one batched network,
    # all adopted by scikit-learn's fits; the refit is an ordinary fit
    assert _trained_lines(out) == [("24", "1"), ("12", "1"), ("6", "1")]
    assert [n for n, _ in training] == [24, 12, 6]
    assert adopted["n"] == 42
    theirs = SkHalvingGridSearchCV(_pipe(), GRID, cv=CV, factor=2, random_state=0).fit(X, y)
    assert ours.n_resources_ == [60, 120, 240] and ours.n_candidates_ == [8, 4, 2]
    _assert_same_search(ours, theirs)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)
    # each fit's time counts its member's share of its iteration's training
    fit_times = ours.cv_results_["mean_fit_time"] * ours.n_splits_
    assert fit_times.sum() >= 0.95 * sum(seconds for _, seconds in training)


def test_halving_on_max_iter_matches_scikit_learn(raw_digits, capsys, training):
    X, y = raw_digits
    kwargs = dict(cv=CV, factor=2, resource="mlpclassifier__max_iter", max_resources=8)
    ours = HalvingGridSearchCV(_pipe(), GRID, verbose=1, **kwargs).fit(X, y)
    assert _trained_lines(capsys.readouterr().out) == [
        ("24", "1"), ("12", "1"), ("6", "1"), ("3", "1"),
    ]
    theirs = SkHalvingGridSearchCV(_pipe(), GRID, **kwargs).fit(X, y)
    assert ours.n_resources_ == [1, 2, 4, 8]
    assert list(ours.cv_results_["param_mlpclassifier__max_iter"][-3:]) == [4, 4, 8]
    _assert_same_search(ours, theirs)
    assert ours.best_estimator_[-1].n_iter_ == theirs.best_estimator_[-1].n_iter_ == 8


def test_halving_random_search_matches_scikit_learn(raw_digits, capsys):
    """The random variant, on a bare MLPClassifier."""
    X, y = raw_digits
    X = X / 16
    distributions = {"learning_rate_init": loguniform(1e-3, 1e-1), "alpha": [1e-4, 1e-2]}
    kwargs = dict(n_candidates=6, cv=CV, random_state=0, min_resources=90)
    ours = HalvingRandomSearchCV(MLPClassifier(**BASE), distributions, verbose=1, **kwargs)
    ours.fit(X, y)
    assert _trained_lines(capsys.readouterr().out) == [("18", "1"), ("6", "1")]
    theirs = SkHalvingRandomSearchCV(MLPClassifier(**BASE), distributions, **kwargs).fit(X, y)
    assert ours.n_resources_ == [90, 270]
    _assert_same_search(ours, theirs)


def test_unbatchable_fits_fall_back_with_one_warning(raw_digits, capsys):
    X, y = raw_digits
    grid = {
        "mlpclassifier__solver": ["adam", "lbfgs"],
        "mlpclassifier__learning_rate_init": [1e-3, 1e-2],
    }
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ours = HalvingGridSearchCV(_pipe(max_iter=5), grid, cv=CV, factor=2, random_state=0,
                                   verbose=1).fit(X, y)
    ours_warnings = _ours(record)
    assert len(ours_warnings) == 1  # one for the whole search, all iterations together
    message = str(ours_warnings[0].message)
    n_lbfgs = 3 * sum(p["mlpclassifier__solver"] == "lbfgs" for p in ours.cv_results_["params"])
    assert ours.n_candidates_ == [4, 2, 1]
    assert message.startswith(
        f"sknets.model_selection: {n_lbfgs} of 21 fits are trained one by one in this process"
    )
    assert "solver='lbfgs'" in message
    assert ours_warnings[0].filename == __file__
    assert "run one by one: solver='lbfgs'" in capsys.readouterr().out
    theirs = SkHalvingGridSearchCV(_pipe(max_iter=5), grid, cv=CV, factor=2,
                                   random_state=0).fit(X, y)
    _assert_same_search(ours, theirs)


def test_refits_of_the_last_iteration_train_with_its_members(raw_digits, capsys, adopted,
                                                             monkeypatch):
    """On a GPU the last iteration's refits train with its members (only the
    best of that iteration can be refitted); forced here on a CPU."""
    monkeypatch.setattr(_search, "_on_cuda", lambda estimator: True)
    X, y = raw_digits
    ours = HalvingGridSearchCV(_pipe(), GRID, cv=CV, factor=2, random_state=0, verbose=1)
    ours.fit(X, y)
    assert _trained_lines(capsys.readouterr().out) == [("24", "1"), ("12", "1"), ("8", "1")]
    assert adopted["n"] == 43  # the refit too
    theirs = SkHalvingGridSearchCV(_pipe(), GRID, cv=CV, factor=2, random_state=0).fit(X, y)
    _assert_same_search(ours, theirs)
    best, want = ours.best_estimator_[-1], theirs.best_estimator_[-1]
    assert best.n_iter_ == want.n_iter_
    for got, expected in zip(best.coefs_, want.coefs_):
        np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.slow  # joblib's worker processes start and import torch: 10 s on 2 cores
def test_n_jobs_trains_on_local_processes_and_is_restored(raw_digits, capsys):
    X, y = raw_digits
    kwargs = dict(cv=CV, factor=2, random_state=0)
    ours = HalvingGridSearchCV(_pipe(), GRID, n_jobs=2, verbose=1, **kwargs).fit(X, y)
    assert "on 2 joblib worker(s)" in capsys.readouterr().out
    assert ours.n_jobs == 2
    theirs = SkHalvingGridSearchCV(_pipe(), GRID, **kwargs).fit(X, y)
    _assert_same_search(ours, theirs)


def test_a_search_that_raises_is_left_as_it_was(raw_digits):
    X, y = raw_digits
    search = HalvingGridSearchCV(_pipe(), GRID, cv=CV, factor=2, random_state=0).fit(X, y)
    before = dict(vars(search))
    pipe = _pipe(precision="float32", solver="sgd", momentum=0.0)
    grid = {"mlpclassifier__learning_rate_init": [1e-2, 1e9]}
    search.set_params(estimator=pipe, param_grid=grid, error_score="raise")
    before.update(estimator=search.estimator, param_grid=search.param_grid, error_score="raise")
    with pytest.raises(ValueError, match="diverged"):
        search.fit(X, y)
    assert vars(search).keys() == before.keys()
    assert all(vars(search)[k] is v for k, v in before.items())
