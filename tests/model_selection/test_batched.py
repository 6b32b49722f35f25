"""Batched training: every member equals its separate fit."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from sknets import ConvClassifier, MLPClassifier, MLPRegressor, _seam
from sknets.model_selection._batched import train_plans, why_not_batched

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class Members:
    """(estimator, split) fits planned as their separate fits would be; after
    :meth:`train`, ``ests`` hold the estimators that adopted the results."""

    def __init__(self, estimators, X, y, splits):
        self.plans, self.slots, self.data, self.ests = [], [], [], []
        for est in estimators:
            for s, (train, _) in enumerate(splits):
                self.add(est, X[train], y[train], slot=s)

    def add(self, est, X, y, slot, at=None):
        at = len(self.plans) if at is None else at
        self.plans.insert(at, _seam.plan(clone(est), X, y))
        self.slots.insert(at, slot)
        self.data.insert(at, (est, X, y))

    def train(self, **kwargs):
        """Train batched; returns the number of networks. Each result is
        adopted by a fresh clone (``ests``), or is its error (``errors``)."""
        results, n = train_plans(self.plans, slots=self.slots, **kwargs)
        self.ests, self.errors = [], []
        for (est, X, y), result in zip(self.data, results):
            try:
                self.ests.append(_seam.adopt(clone(est), X, y, result))
                self.errors.append(None)
            except ValueError as exc:
                self.ests.append(None)
                self.errors.append(exc)
        return n


def _members(estimators, X, y, splits):
    """Each (estimator, split) pair planned, and fitted separately."""
    members = Members(estimators, X, y, splits)
    separate = [
        clone(est).fit(X[train], y[train]) for est in estimators for train, _ in splits
    ]
    return members, separate


def _assert_same_fits(members, separate, atol=1e-6):
    for est, ref in zip(members.ests, separate):
        assert est.n_iter_ == ref.n_iter_
        assert est.t_ == ref.t_
        assert len(est.coefs_) == len(ref.coefs_)
        for got, want in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=0, atol=atol)
        np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=1e-9, atol=1e-9)
        assert est.best_loss_ == pytest.approx(ref.best_loss_, rel=1e-9)


@pytest.mark.parametrize(
    "solver, extra",
    [
        ("adam", {}),
        ("sgd", {"momentum": 0.9, "nesterovs_momentum": True}),
        ("sgd", {"momentum": 0.5, "nesterovs_momentum": False}),
        ("sgd", {"momentum": 0.0}),
        ("rmsprop", {}),
        ("adamw", {}),
        ("adam", {"dropout": 0.3}),
        ("sgd", {"dropout": 0.2, "momentum": 0.9}),
    ],
)
@pytest.mark.parametrize("per_member", [True, False])
def test_members_equal_separate_fits_float64(digits, solver, extra, per_member, monkeypatch):
    """Candidates of different widths, learning rates and penalties, over
    three folds of different sizes: each member is its separate fit, with
    the CPU's per-member kernels and with the vectorised update of GPUs."""
    from sknets.model_selection import _batched

    monkeypatch.setattr(_batched._BatchedGroup, "per_member_on_cpu", per_member)
    X, y = digits[0][:400], digits[1][:400]
    splits = list(KFold(3, shuffle=True, random_state=0).split(X))
    base = MLPClassifier(
        solver=solver, precision="float64", batch_size=50, max_iter=6, random_state=1,
        device="cpu", **extra,
    )
    estimators = [
        clone(base).set_params(hidden_layer_sizes=(12,), learning_rate_init=1e-2),
        clone(base).set_params(hidden_layer_sizes=(20,), learning_rate_init=3e-3, alpha=1e-2),
        clone(base).set_params(hidden_layer_sizes=(7,), learning_rate_init=5e-2, random_state=2),
    ]
    members, separate = _members(estimators, X, y, splits)
    # one structure, widths padded to 20: one batched network
    assert members.train(pad=True) == 1
    _assert_same_fits(members, separate)


def test_members_stop_on_their_own(digits):
    """scikit-learn's tol / n_iter_no_change rule runs per member: members
    that stop early are frozen while the others go on."""
    X, y = digits[0][:300], digits[1][:300]
    splits = [(np.arange(300), None)]
    base = MLPClassifier(
        hidden_layer_sizes=(10,), precision="float64", batch_size=64, max_iter=40,
        random_state=0, n_iter_no_change=2, device="cpu",
    )
    estimators = [
        clone(base).set_params(learning_rate_init=0.3, tol=1e-2),  # stalls early
        clone(base).set_params(learning_rate_init=1e-3, tol=0.0),
        clone(base).set_params(learning_rate_init=1e-2, tol=1e-3, max_iter=25),
    ]
    members, separate = _members(estimators, X, y, splits)
    members.train(pad=True)
    _assert_same_fits(members, separate)
    n_iters = [est.n_iter_ for est in members.ests]
    assert len(set(n_iters)) == 3, n_iters  # they stopped at different epochs
    assert n_iters[0] < 40


def test_adaptive_and_invscaling_schedules(digits):
    X, y = digits[0][:300], digits[1][:300]
    splits = [(np.arange(300), None)]
    for schedule in ("adaptive", "invscaling"):
        base = MLPClassifier(
            hidden_layer_sizes=(10,), solver="sgd", learning_rate=schedule, precision="float64",
            batch_size=64, max_iter=30, n_iter_no_change=2, tol=1e-2, random_state=0,
            device="cpu",
        )
        estimators = [base, clone(base).set_params(learning_rate_init=0.1)]
        members, separate = _members(estimators, X, y, splits)
        members.train()
        _assert_same_fits(members, separate)


def test_regressor_members_multioutput(diabetes):
    X, y = diabetes
    Y = np.column_stack([y, -0.5 * y]) / 100
    splits = list(KFold(2).split(X))
    base = MLPRegressor(
        hidden_layer_sizes=(8, 6), precision="float64", batch_size=40, max_iter=5,
        learning_rate_init=1e-2, random_state=0, device="cpu",
    )
    estimators = [base, clone(base).set_params(hidden_layer_sizes=(5, 9), alpha=0.1)]
    members, separate = _members(estimators, X, Y, splits)
    assert members.train(pad=True) == 1
    _assert_same_fits(members, separate)


def test_on_a_cpu_only_equal_widths_share_a_network(digits):
    X, y = digits[0][:200], digits[1][:200]
    splits = list(KFold(2).split(X))
    base = MLPClassifier(precision="float64", batch_size=50, max_iter=2, random_state=0,
                         device="cpu")
    estimators = [clone(base).set_params(hidden_layer_sizes=(w,)) for w in (4, 8, 4)]
    members, separate = _members(estimators, X, y, splits)
    assert members.train() == 2
    _assert_same_fits(members, separate)


def test_structures_train_as_separate_groups(digits):
    X, y = digits[0][:200], digits[1][:200]
    splits = [(np.arange(200), None)]
    base = MLPClassifier(precision="float64", batch_size=50, max_iter=3, random_state=0,
                         device="cpu")
    estimators = [
        clone(base).set_params(hidden_layer_sizes=(8,)),
        clone(base).set_params(hidden_layer_sizes=(8, 8)),  # another depth
        clone(base).set_params(hidden_layer_sizes=(8,), activation="tanh"),
    ]
    members, separate = _members(estimators, X, y, splits)
    assert members.train() == 3
    _assert_same_fits(members, separate)


def test_chunks_of_members_give_the_same_result(digits):
    X, y = digits[0][:200], digits[1][:200]
    splits = list(KFold(4).split(X))
    base = MLPClassifier((9,), precision="float64", batch_size=32, max_iter=3, random_state=0,
                         device="cpu")
    members, separate = _members([base], X, y, splits)
    members.train(chunk_members=3)  # 4 members: chunks of 3 and 1
    _assert_same_fits(members, separate)


def test_a_diverging_member_reports_its_error(digits):
    X, y = digits[0][:200], digits[1][:200] * 1e4
    splits = [(np.arange(200), None)]
    # float32 overflows within the 8 epochs (float64 would take longer)
    base = MLPRegressor(hidden_layer_sizes=(8,), batch_size=50, max_iter=8, random_state=0,
                        device="cpu", solver="sgd", momentum=0.0, learning_rate_init=1e-5,
                        precision="float32")
    estimators = [clone(base).set_params(learning_rate_init=1e3), base]
    members, _ = _members(estimators[1:], X, y, splits)
    members.add(estimators[0], X, y, slot=0, at=0)
    members.train()
    with pytest.raises(ValueError) as separate:
        clone(estimators[0]).fit(X, y)
    assert isinstance(members.errors[0], ValueError)
    assert "diverged" in str(members.errors[0])
    # the same message and epoch; in float32 the batched sums may overflow
    # to nan where the separate fit's reach inf
    def same(message):
        return message.replace("became nan", "became inf")

    assert same(str(members.errors[0])) == same(str(separate.value))
    assert members.errors[1] is None
    assert np.all(np.isfinite(members.ests[1].coefs_[0]))


@pytest.mark.parametrize(
    "est, reason",
    [
        (MLPClassifier(solver="lbfgs"), "solver='lbfgs'"),
        (MLPClassifier(warm_start=True), "warm_start=True"),
        (LogisticRegression(), "LogisticRegression is not a sknets"),
        (ConvClassifier(precision="bfloat16"), "precision='bfloat16'"),
    ],
)
def test_why_not_batched(est, reason):
    assert reason in why_not_batched(est)


def test_batchable_estimators():
    assert why_not_batched(MLPClassifier()) is None
    assert why_not_batched(MLPRegressor(solver="sgd")) is None
    assert why_not_batched(MLPClassifier(early_stopping=True)) is None


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_early_stopping_per_member(Est, digits, diabetes):
    """Each member holds out its own validation rows, as its separate fit
    does, stops on its own validation scores and keeps its best weights."""
    if Est is MLPClassifier:
        X, y = digits[0][:400], digits[1][:400]
    else:
        X, y = diabetes[0], diabetes[1] / 100
    splits = list(KFold(2, shuffle=True, random_state=0).split(X))
    base = Est(
        hidden_layer_sizes=(10,), precision="float64", batch_size=32, max_iter=25,
        early_stopping=True, validation_fraction=0.2, n_iter_no_change=2, tol=1e-3,
        learning_rate_init=1e-2, random_state=0, device="cpu",
    )
    estimators = [
        base,
        clone(base).set_params(learning_rate_init=0.1, random_state=3),
        clone(base).set_params(hidden_layer_sizes=(5,), alpha=0.05),
    ]
    members, separate = _members(estimators, X, y, splits)
    members.train(pad=True)
    _assert_same_fits_early_stopping(members, separate)
    assert len({est.n_iter_ for est in members.ests}) > 1  # they stop on their own


def _assert_same_fits_early_stopping(members, separate):
    for est, ref in zip(members.ests, separate):
        assert est.n_iter_ == ref.n_iter_
        np.testing.assert_allclose(est.validation_scores_, ref.validation_scores_, atol=1e-9)
        # the validation loss too, per epoch, also as the history's valid_loss
        np.testing.assert_allclose(
            est.validation_loss_curve_, ref.validation_loss_curve_, rtol=1e-7
        )
        assert est.net_.history[:, "valid_loss"] == est.validation_loss_curve_
        assert est.best_validation_score_ == pytest.approx(ref.best_validation_score_, abs=1e-9)
        assert est.best_loss_ is None and ref.best_loss_ is None
        for got, want in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_early_stopping_member_that_diverges_keeps_its_best_weights():
    """A member whose outputs overflow after its first epoch goes on as its
    separate fit does: NaN validation scores and losses to max_iter, the
    best weights kept."""
    X, y = load_diabetes(return_X_y=True)
    X = 20 * X  # features of about unit scale: SGD at 0.003 overflows
    base = MLPRegressor(
        hidden_layer_sizes=(8,), activation="identity", solver="sgd", momentum=0.9,
        learning_rate_init=0.001, early_stopping=True, max_iter=6, n_iter_no_change=20,
        batch_size=32, precision="float64", random_state=0, device="cpu",
    )
    estimators = [clone(base).set_params(learning_rate_init=0.003), base]
    members, separate = _members(estimators, X, y, [(np.arange(len(X)), None)])
    members.train()
    diverged = members.ests[0]
    assert np.isfinite(diverged.validation_loss_curve_[0])
    assert np.isnan(diverged.validation_loss_curve_[-1])
    assert np.isfinite(members.ests[1].validation_loss_curve_).all()
    _assert_same_fits_early_stopping(members, separate)


def test_multilabel_early_stopping(digits):
    X = digits[0][:300]
    Y = np.column_stack([digits[1][:300] % 2, digits[1][:300] > 4]).astype(int)
    base = MLPClassifier(
        hidden_layer_sizes=(8,), precision="float64", batch_size=32, max_iter=8,
        early_stopping=True, n_iter_no_change=2, random_state=0, device="cpu",
    )
    members, separate = _members([base], X, Y, [(np.arange(300), None)])
    members.train()
    _assert_same_fits_early_stopping(members, separate)


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_a_split_that_fails_is_the_fits_error(Est):
    """Planning raises the separate fit's error (too small a validation set;
    for a classifier, too few rows to stratify), so that the search runs that
    fit on its own and gets it."""
    X, y = np.linspace(0, 1, 24).reshape(12, 2), np.arange(12) % 2
    base = Est(hidden_layer_sizes=(4,), early_stopping=True, validation_fraction=0.05,
               max_iter=2, device="cpu")
    with pytest.raises(ValueError) as planned:
        _seam.plan(clone(base), X, y)
    with pytest.raises(ValueError) as separate:
        clone(base).fit(X, y)
    assert str(planned.value) == str(separate.value)


def test_adopting_a_result_sets_what_a_fit_sets(digits):
    """The adopting estimator has the attributes of a separate fit, no more
    and no fewer, and its net's history has each epoch's loss and duration."""
    X, y = digits[0][:200], digits[1][:200]
    base = MLPClassifier((6,), precision="float64", batch_size=50, max_iter=3, random_state=0,
                         device="cpu")
    members, separate = _members([base], X, y, [(np.arange(200), None)])
    members.train()
    est, ref = members.ests[0], separate[0]
    assert set(vars(est)) == set(vars(ref))
    history = est.net_.history
    assert [h["train_loss"] for h in history] == est.loss_curve_
    assert all(h["dur"] >= 0 for h in history)


def test_fit_time_shares_sum_to_the_chunk_time(digits):
    """Each member's ``fit_time`` is its share of its chunk's wall time, in
    proportion to its epochs, rows and parameters."""
    import time

    X, y = digits[0][:300], digits[1][:300]
    splits = list(KFold(3).split(X))
    base = MLPClassifier((9,), precision="float64", batch_size=32, max_iter=8, random_state=0,
                         device="cpu")
    # one member stops early (tol): it did less and gets a smaller share
    members, _ = _members([base, clone(base).set_params(max_iter=2)], X, y, splits)
    start = time.perf_counter()
    results, n = train_plans(members.plans, slots=members.slots)
    seconds = time.perf_counter() - start
    assert n == 1
    total = sum(r.fit_time for r in results)
    assert 0.9 * seconds <= total <= seconds
    long, short = results[0].fit_time, results[3].fit_time
    assert short == pytest.approx(long * len(results[3].loss_curve) / len(results[0].loss_curve))


@pytest.mark.parametrize(
    "solver, extra",
    [("adam", {}), ("sgd", {"momentum": 0.9}), ("adam", {"dropout": 0.3})],
)
@pytest.mark.parametrize("per_member", [True, False])
def test_class_weight_members_equal_separate_fits(digits, solver, extra, per_member,
                                                  monkeypatch):
    """Weighted members (class_weight) in one network with an unweighted
    one: each is its separate fit (closed-form and autograd steps)."""
    from sknets.model_selection import _batched

    monkeypatch.setattr(_batched._BatchedGroup, "per_member_on_cpu", per_member)
    X, y = digits[0][:300], digits[1][:300]
    splits = list(KFold(3, shuffle=True, random_state=0).split(X))
    base = MLPClassifier(
        hidden_layer_sizes=(12,), solver=solver, precision="float64", batch_size=40,
        max_iter=5, random_state=1, alpha=1e-2, device="cpu", **extra,
    )
    estimators = [
        base,
        clone(base).set_params(class_weight="balanced"),
        clone(base).set_params(class_weight={c: 1.0 + c for c in range(10)},
                               learning_rate_init=3e-3),
    ]
    members, separate = _members(estimators, X, y, splits)
    assert members.train(pad=True) == 1  # class_weight is per member
    _assert_same_fits(members, separate)


def test_weighted_early_stopping_members(digits):
    """The validation rows weigh in the validation score and loss as in the
    separate fit (weighted accuracy and loss)."""
    X, y = digits[0][:300], digits[1][:300]
    splits = list(KFold(2, shuffle=True, random_state=0).split(X))
    base = MLPClassifier(
        hidden_layer_sizes=(10,), precision="float64", batch_size=32, max_iter=12,
        early_stopping=True, validation_fraction=0.25, n_iter_no_change=3,
        learning_rate_init=1e-2, random_state=0, device="cpu",
    )
    estimators = [base, clone(base).set_params(class_weight={c: 0.5 + c for c in range(10)})]
    members, separate = _members(estimators, X, y, splits)
    members.train(pad=True)
    _assert_same_fits_early_stopping(members, separate)
    assert members.ests[2].validation_scores_ != members.ests[0].validation_scores_


def test_zero_weights_are_not_planned(digits):
    X, y = digits[0][:100], digits[1][:100]
    with pytest.raises(ValueError, match="zero sample weights"):
        _seam.plan(MLPClassifier(class_weight={0: 0.0}), X, y)
