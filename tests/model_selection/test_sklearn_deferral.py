"""sknets.model_selection defers to scikit-learn on the batched path too.

scikit-learn's own test files pass with sknets' classes swapped in
(``tools/sklearn_swap.py``), but with scikit-learn's estimators, which are
never batched. These tests run the same behaviours with a sknets MLP, whose
fits are pretrained as batched networks, and compare with scikit-learn's own
classes: a generator as ``cv``, estimators inside the grid, callbacks and
metadata routed to the splitter.
"""

import copy

import numpy as np
import pytest
import sklearn
from sklearn import model_selection as sk
from sklearn.callback.tests._utils import RecordingAutoPropagatedCallback, RecordingCallback
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, KFold
from sklearn.model_selection.tests.common import OneTimeSplitter
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from sknets import MLPClassifier
from sknets.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    cross_val_score,
    cross_validate,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

GRID = {"alpha": [1e-4, 1e-1]}


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    return X[:240] / 16, y[:240]


def _mlp(**params):
    return MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0, **params)


def _assert_same_cv_results(ours, theirs):
    assert sorted(ours) == sorted(theirs)
    for key, want in theirs.items():
        got = ours[key]
        if "time" in key:
            continue
        if key.startswith("param") or key == "params":
            assert list(got) == list(want), key
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("one_time", [False, True], ids=["generator", "one-time-splitter"])
def test_generator_cv_is_split_once(data, capsys, adopted, one_time):
    """A generator (or a splitter that splits only once) as ``cv``: the
    members are trained on its splits, which scikit-learn then uses."""
    X, y = data
    splits = list(KFold(3, shuffle=True, random_state=0).split(X, y))
    if one_time:
        cv = OneTimeSplitter(n_splits=3, n_samples=len(y))
        splits = list(KFold(3).split(X, y))
    else:
        cv = KFold(3, shuffle=True, random_state=0).split(X, y)
    ours = GridSearchCV(_mlp(), GRID, cv=cv, verbose=1).fit(X, y)
    assert "[sknets] trained 6 fit(s) as 1 batched network(s)" in capsys.readouterr().out
    assert adopted["n"] == 6
    with_list = GridSearchCV(_mlp(), GRID, cv=splits).fit(X, y)
    _assert_same_cv_results(ours.cv_results_, with_list.cv_results_)
    theirs = sk.GridSearchCV(_mlp(), GRID, cv=splits).fit(X, y)
    _assert_same_cv_results(ours.cv_results_, theirs.cv_results_)


def test_shuffled_splits_without_a_seed_pair_members_with_their_folds(data, adopted):
    """A KFold that shuffles anew at each split: scikit-learn's fits use the
    splits the members were trained on, and adopt every one of them."""
    X, y = data
    np.random.seed(0)
    ours = GridSearchCV(_mlp(), GRID, cv=KFold(3, shuffle=True)).fit(X, y)
    assert adopted["n"] == 6
    np.random.seed(0)
    theirs = sk.GridSearchCV(_mlp(), GRID, cv=KFold(3, shuffle=True)).fit(X, y)
    _assert_same_cv_results(ours.cv_results_, theirs.cv_results_)


@pytest.mark.parametrize(
    "Search, sk_Search, grid_name",
    [
        (GridSearchCV, sk.GridSearchCV, "param_grid"),
        (RandomizedSearchCV, sk.RandomizedSearchCV, "param_distributions"),
    ],
)
def test_estimators_in_the_grid_are_not_modified(data, capsys, Search, sk_Search, grid_name):
    X, y = data
    clf = _mlp()
    before = clf.get_params()
    grid = {"clf": [clf], "clf__alpha": [1e-4, 1e-1]}
    pipe = Pipeline([("scale", MinMaxScaler()), ("clf", None)])
    extra = {"n_iter": 2, "random_state": 0} if Search is RandomizedSearchCV else {}
    extra["scoring"] = "accuracy"
    ours = Search(pipe, cv=3, verbose=1, **{grid_name: grid}, **extra).fit(X, y)
    assert "[sknets] trained 6 fit(s) as 1 batched network(s)" in capsys.readouterr().out
    assert clf.get_params() == before
    assert not hasattr(clf, "coefs_")
    assert ours.best_estimator_.named_steps["clf"] is not clf
    theirs = sk_Search(pipe, cv=3, **{grid_name: grid}, **extra).fit(X, y)
    assert clf.get_params() == before
    _assert_same_cv_results(ours.cv_results_, theirs.cv_results_)


def _hooks(callback):
    return sorted((rec["name"], rec["context"].task_name) for rec in callback.record)


# sknets' estimators take no callbacks: scikit-learn warns that it does not
# propagate the auto-propagated one to them
@pytest.mark.filterwarnings("ignore:The estimator MLPClassifier does not support callbacks")
@pytest.mark.parametrize("refit", [True, False])
@pytest.mark.parametrize(
    "Search, sk_Search, extra",
    [
        (GridSearchCV, sk.GridSearchCV, {"param_grid": GRID}),
        (
            RandomizedSearchCV,
            sk.RandomizedSearchCV,
            {"param_distributions": GRID, "n_iter": 2, "random_state": 0},
        ),
    ],
)
def test_callbacks_fire_as_in_scikit_learn(data, capsys, refit, Search, sk_Search, extra):
    X, y = data
    ours_cbs = [RecordingCallback(), RecordingAutoPropagatedCallback()]
    theirs_cbs = [RecordingCallback(), RecordingAutoPropagatedCallback()]
    ours = Search(_mlp(), cv=3, refit=refit, verbose=1, **extra)
    ours.set_callbacks(*ours_cbs).fit(X, y)
    assert "[sknets] trained 6 fit(s) as 1 batched network(s)" in capsys.readouterr().out
    theirs = sk_Search(_mlp(), cv=3, refit=refit, **extra).set_callbacks(*theirs_cbs).fit(X, y)
    # root + search (+ refit) + one per (candidate, split)
    expected = 1 + 1 + refit + 2 * 3
    for mine, want in zip(ours_cbs, theirs_cbs):
        for hook in ("setup", "on_fit_task_begin", "on_fit_task_end", "teardown"):
            assert mine.count_hooks(hook) == want.count_hooks(hook), hook
        assert mine.count_hooks("on_fit_task_begin") == expected
        assert _hooks(mine) == _hooks(want)
    _assert_same_cv_results(ours.cv_results_, theirs.cv_results_)


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def _groups(y):
    return np.arange(len(y)) % 6


@pytest.mark.usefixtures("routing")
@pytest.mark.parametrize("alias", [None, "sample_groups"])
def test_search_routes_splitter_metadata(data, capsys, adopted, alias):
    X, y = data
    cv = GroupKFold(3)
    if alias is not None:
        cv.set_split_request(groups=alias)
    meta = {alias or "groups": _groups(y)}
    ours = GridSearchCV(_mlp(), GRID, cv=cv, verbose=1).fit(X, y, **meta)
    assert "[sknets] trained 6 fit(s) as 1 batched network(s)" in capsys.readouterr().out
    assert adopted["n"] == 6
    theirs = sk.GridSearchCV(_mlp(), GRID, cv=copy.deepcopy(cv)).fit(X, y, **meta)
    _assert_same_cv_results(ours.cv_results_, theirs.cv_results_)


@pytest.mark.usefixtures("routing")
@pytest.mark.parametrize(
    "ours, theirs", [(cross_validate, sk.cross_validate), (cross_val_score, sk.cross_val_score)]
)
def test_cross_validation_routes_splitter_metadata(data, capsys, adopted, ours, theirs):
    X, y = data
    params = {"groups": _groups(y)}
    got = ours(_mlp(), X, y, cv=GroupKFold(3), params=params, verbose=1)
    assert "[sknets] trained 3 fit(s) as 1 batched network(s)" in capsys.readouterr().out
    assert adopted["n"] == 3
    want = theirs(_mlp(), X, y, cv=GroupKFold(3), params=params)
    if ours is cross_validate:
        got, want = got["test_score"], want["test_score"]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # scikit-learn's error for `groups` under routing, not another one
    with pytest.raises(ValueError, match="`groups` can only be passed if"):
        ours(_mlp(), X, y, cv=GroupKFold(3), groups=_groups(y))


def test_cross_validation_without_routing_gives_groups_to_the_splitter(data, adopted):
    X, y = data
    got = cross_val_score(_mlp(), X, y, cv=GroupKFold(3), groups=_groups(y))
    assert adopted["n"] == 3
    want = sk.cross_val_score(_mlp(), X, y, cv=GroupKFold(3), groups=_groups(y))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_nothing_batchable_prints_no_trained_line(data, capsys, adopted):
    X, y = data
    with pytest.warns(UserWarning, match="solver='lbfgs'"):
        cross_val_score(_mlp(solver="lbfgs"), X, y, cv=3, verbose=1)
    out = capsys.readouterr().out
    assert "[sknets] trained" not in out
    assert "[sknets] 3 fit(s) run one by one: solver='lbfgs'" in out
    GridSearchCV(LogisticRegression(max_iter=50), {"C": [0.1, 1.0]}, cv=3, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert "[sknets] trained" not in out
    assert "[sknets] 6 fit(s) run one by one: LogisticRegression is not" in out
    assert adopted["n"] == 0
