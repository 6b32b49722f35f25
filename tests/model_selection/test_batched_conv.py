"""Batched conv training: every member equals its separate fit."""

import warnings

import numpy as np
import pytest
from sklearn import model_selection as sk
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sknets import ConvClassifier, ConvRegressor, _seam
from sknets.model_selection import GridSearchCV, _batched_conv
from sknets.model_selection._batched import train_plans, why_not_batched

pytestmark = [
    pytest.mark.usefixtures("torch_one_thread"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

#: a tiny network, in float64, on 8x8 images
TINY = dict(
    input_shape=(1, 8, 8), filters=(4,), hidden_layer_sizes=(8,), batch_size=32, max_iter=3,
    precision="float64", random_state=0, device="cpu",
)


@pytest.fixture(scope="module")
def images(digits):
    X, y = digits
    return X[:240], y[:240]


class Members:
    """(estimator, split) fits planned as their separate fits would be; after
    :meth:`train`, ``ests`` hold the estimators that adopted the results."""

    def __init__(self, estimators, X, y, splits):
        self.plans, self.slots, self.data = [], [], []
        for est in estimators:
            for s, (train, _) in enumerate(splits):
                self.plans.append(_seam.plan(clone(est), X[train], y[train]))
                self.slots.append(s)
                self.data.append((est, X[train], y[train]))

    def train(self, **kwargs):
        """Train batched; returns the number of networks."""
        results, n = train_plans(self.plans, slots=self.slots, **kwargs)
        self.ests = [_seam.adopt(clone(est), X, y, result)
                     for (est, X, y), result in zip(self.data, results)]
        return n


def _members(estimators, X, y, splits):
    members = Members(estimators, X, y, splits)
    separate = [clone(est).fit(X[train], y[train]) for est in estimators for train, _ in splits]
    return members, separate


def _assert_same_fits(members, separate, atol=1e-6):
    """The same network (every parameter and batch-norm statistic), curves
    and counters as the separate fit."""
    for est, ref in zip(members.ests, separate):
        assert est.n_iter_ == ref.n_iter_
        assert est.t_ == ref.t_
        got, want = est.net_.module_.state_dict(), ref.net_.module_.state_dict()
        assert list(got) == list(want)
        for key in want:
            np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), rtol=0, atol=atol,
                                       err_msg=key)
        for a, b in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_):
            np.testing.assert_allclose(a, b, rtol=0, atol=atol)
        np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=1e-9, atol=1e-12)
        if ref.early_stopping:
            np.testing.assert_allclose(est.validation_scores_, ref.validation_scores_,
                                       rtol=0, atol=1e-9)
            np.testing.assert_allclose(est.validation_loss_curve_, ref.validation_loss_curve_,
                                       rtol=1e-7)
            assert est.best_validation_score_ == pytest.approx(ref.best_validation_score_,
                                                               abs=1e-9)
            assert est.best_loss_ is None and ref.best_loss_ is None
        else:
            assert est.best_loss_ == pytest.approx(ref.best_loss_, rel=1e-9)
            assert est.validation_scores_ is None


@pytest.mark.parametrize(
    "solver, extra",
    [
        ("adam", {}),  # batch norm, dropout 0.5, label smoothing
        ("adam", {"conv_dropout": 0.25}),
        ("adam", {"batch_norm": False, "dropout": 0.0}),
        ("sgd", {"momentum": 0.9, "batch_norm": False, "conv_dropout": 0.25}),
        ("sgd", {"momentum": 0.5, "nesterovs_momentum": False, "dropout": 0.0}),
        ("rmsprop", {"conv_dropout": 0.25, "dropout": 0.0}),
        ("adamw", {"dropout": 0.2}),
    ],
)
@pytest.mark.parametrize("per_member", [True, False], ids=["cpu-layout", "gpu-layout"])
def test_classifier_members_equal_separate_fits(images, solver, extra, per_member, monkeypatch):
    """Candidates of different learning rates, penalties and seeds over
    three folds (the last batches of different sizes): each member is its
    separate fit, with the CPU's per-member optimizer kernels and
    convolutions, and with the vectorised update and grouped convolutions
    of GPUs."""
    monkeypatch.setattr(_batched_conv._ConvGroup, "per_member_on_cpu", per_member)
    monkeypatch.setattr(_batched_conv, "CONV_PER_MEMBER", per_member)
    X, y = images
    splits = list(KFold(3, shuffle=True, random_state=0).split(X[:200]))
    base = ConvClassifier(**{**TINY, "solver": solver, **extra})
    estimators = [
        base.set_params(learning_rate_init=1e-2),
        clone(base).set_params(learning_rate_init=3e-3, alpha=1e-2, random_state=2),
    ]
    members, separate = _members(estimators, X[:200], y[:200], splits)
    assert members.train() == 1  # one network
    _assert_same_fits(members, separate)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_regressor_members_equal_separate_fits(images, batch_norm):
    """Multi-output regression, with and without batch normalisation."""
    X, y = images
    Y = np.column_stack([y / 9, (y % 3) / 2])
    splits = list(KFold(2, shuffle=True, random_state=0).split(X))
    base = ConvRegressor(**{**TINY, "batch_norm": batch_norm, "learning_rate_init": 1e-2,
                            "dropout": 0.1})
    estimators = [base, clone(base).set_params(alpha=0.1, learning_rate_init=3e-3)]
    members, separate = _members(estimators, X, Y, splits)
    assert members.train() == 1
    _assert_same_fits(members, separate)


@pytest.mark.parametrize("Est", [ConvClassifier, ConvRegressor])
def test_early_stopping_per_member(images, Est):
    """Each member holds out its own validation rows, scores them in
    evaluation mode (running batch-norm statistics), stops on its own and
    keeps its best weights."""
    X, y = images
    y = y if Est is ConvClassifier else y / 9
    splits = list(KFold(2, shuffle=True, random_state=0).split(X))
    base = Est(**{**TINY, "batch_norm": True, "early_stopping": True, "max_iter": 10,
                  "validation_fraction": 0.2, "n_iter_no_change": 1, "tol": 1e-3,
                  "learning_rate_init": 1e-2})
    estimators = [
        base,
        clone(base).set_params(learning_rate_init=0.1, random_state=3),
        clone(base).set_params(tol=0.0, n_iter_no_change=3, alpha=0.05),
    ]
    members, separate = _members(estimators, X, y, splits)
    members.train()
    _assert_same_fits(members, separate)
    assert len({est.n_iter_ for est in members.ests}) > 1  # they stop on their own


@pytest.mark.parametrize(
    "extra",
    [
        {"random_shift": 1, "conv_dropout": 0.25},  # each member's own shifts
        {"class_weight": "balanced", "early_stopping": True, "max_iter": 4},
        {"filters": (3, 5), "global_pool": True, "dropout": 0.0},
    ],
)
def test_shifts_weights_and_blocks(images, extra):
    X, y = images
    splits = list(KFold(3, shuffle=True, random_state=1).split(X))
    base = ConvClassifier(**{**TINY, **extra})
    estimators = [base, clone(base).set_params(learning_rate_init=1e-2, random_state=5)]
    members, separate = _members(estimators, X, y, splits)
    members.train()
    _assert_same_fits(members, separate)


def test_weighted_and_unweighted_members(images):
    """A class-weighted member (weighted batch-norm statistics, loss and
    penalty) beside an unweighted one in one network."""
    X, y = images
    splits = list(KFold(2, shuffle=True, random_state=0).split(X))
    base = ConvClassifier(**TINY)
    estimators = [base, clone(base).set_params(class_weight={c: 1.0 + c for c in range(10)})]
    members, separate = _members(estimators, X, y, splits)
    assert members.train() == 1
    _assert_same_fits(members, separate)


@pytest.mark.parametrize("per_member", [True, False], ids=["cpu-layout", "gpu-layout"])
@pytest.mark.parametrize("weighted", [False, True])
def test_members_with_fewer_steps(images, per_member, weighted, monkeypatch):
    """Training sets of 64 and 65 rows in batches of 32: the first member has
    no rows in the third step of an epoch, which the second takes alone
    (with one row: batch norm over a single sample's positions)."""
    monkeypatch.setattr(_batched_conv, "CONV_PER_MEMBER", per_member)
    X, y = images
    splits = [(np.arange(64), None), (np.arange(100, 165), None)]
    extra = {"class_weight": "balanced"} if weighted else {}
    base = ConvClassifier(**{**TINY, "conv_dropout": 0.25, **extra})
    members, separate = _members([base], X, y, splits)
    assert members.train() == 1
    _assert_same_fits(members, separate)


def test_signals_and_chunks(images):
    """1-D convolutions over signals; members split into chunks train as
    they would together."""
    X, y = images
    splits = list(KFold(4).split(X))
    base = ConvClassifier(**{**TINY, "input_shape": (1, 64), "filters": (3, 4),
                             "random_shift": 2})
    members, separate = _members([base], X, y, splits)
    members.train(chunk_members=3)  # 4 members: chunks of 3 and 1
    _assert_same_fits(members, separate)


def test_structures_train_as_separate_networks(images):
    X, y = images
    splits = [(np.arange(len(X)), None)]
    estimators = [
        ConvClassifier(**TINY),
        ConvClassifier(**{**TINY, "filters": (5,)}),
        ConvClassifier(**{**TINY, "hidden_layer_sizes": (6,)}),  # widths are not padded
        ConvClassifier(**{**TINY, "learning_rate_init": 0.01}),
    ]
    members, separate = _members(estimators, X, y, splits)
    assert members.train() == 3
    _assert_same_fits(members, separate)


def test_adopting_a_result_sets_what_a_fit_sets(images):
    """The adopting estimator has the attributes of a separate fit, its
    net's history a row per epoch, and its batch-norm statistics recomputed
    over its training data as the fit's."""
    X, y = images
    members, separate = _members([ConvClassifier(**TINY)], X, y, [(np.arange(len(X)), None)])
    members.train()
    est, ref = members.ests[0], separate[0]
    assert set(vars(est)) == set(vars(ref))
    assert [h["train_loss"] for h in est.net_.history] == est.loss_curve_
    np.testing.assert_allclose(est.predict_proba(X), ref.predict_proba(X), atol=1e-9)
    norm = est.net_.module_.features[1]
    assert int(norm.num_batches_tracked) == int(ref.net_.module_.features[1].num_batches_tracked)


def test_planning_raises_the_fits_error(images):
    """A batch that batch normalisation cannot train on is the separate
    fit's ValueError, raised by the plan."""
    X, y = images
    # the second block's feature map is one position
    est = ConvClassifier(**{**TINY, "input_shape": (1, 2, 2), "filters": (2, 2),
                            "batch_size": 1})
    X4 = X[:10, :4]
    with pytest.raises(ValueError) as planned:
        _seam.plan(clone(est), X4, y[:10])
    with pytest.raises(ValueError) as separate:
        clone(est).fit(X4, y[:10])
    assert str(planned.value) == str(separate.value)


def test_why_conv_fits_are_not_batched():
    """Conv fits train batched on a CPU as on CUDA; only L-BFGS, warm starts
    and bfloat16 fall back."""
    assert why_not_batched(ConvClassifier(device="cpu")) is None
    assert why_not_batched(ConvClassifier(device="cpu", solver="rmsprop", dropout=0.3,
                                          conv_dropout=0.2)) is None
    assert why_not_batched(ConvRegressor(device="cpu", solver="sgd")) is None
    assert "solver='lbfgs'" in why_not_batched(ConvClassifier(solver="lbfgs"))
    assert "warm_start" in why_not_batched(ConvClassifier(warm_start=True))
    assert "bfloat16" in why_not_batched(ConvRegressor(precision="bfloat16"))


def _grid_pipe():
    return make_pipeline(MinMaxScaler(), ConvClassifier(**{**TINY, "batch_norm": True}))


GRID = {
    "convclassifier__learning_rate_init": [3e-3, 1e-2],
    "convclassifier__alpha": [1e-4, 1e-2],
}


def test_grid_search_matches_scikit_learn(digits, adopted):
    """A ConvClassifier grid: scikit-learn's cv_results_ scores, its best
    candidate and refit, every (candidate, fold) fit adopted, no warning of
    fits trained one by one."""
    X, y = digits[0][:300] * 16, digits[1][:300]
    cv = KFold(3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GridSearchCV(_grid_pipe(), GRID, cv=cv, return_train_score=True).fit(X, y)
    assert adopted["n"] == 4 * 3  # (on a CPU the refit is an ordinary fit)
    theirs = sk.GridSearchCV(_grid_pipe(), GRID, cv=cv, return_train_score=True).fit(X, y)
    for key, want in theirs.cv_results_.items():
        if "score" in key and "time" not in key:
            np.testing.assert_allclose(ours.cv_results_[key], want, rtol=0, atol=1e-9,
                                       err_msg=key)
    assert ours.best_params_ == theirs.best_params_
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-9)
