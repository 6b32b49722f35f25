"""The one trainer (sknets._training): epochs, scikit-learn's rules,
divergence, Ctrl-C and printing, for single and batched fits alike."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from sknets import MLPClassifier, MLPRegressor, _training
from sknets._rules import EpochRules
from sknets._training import Trainer
from sknets.model_selection import cross_val_score


class FakeMembers:
    """``M`` members whose epochs give the losses (and scores) of a script."""

    def __init__(self, losses, scores=None):
        self.losses = np.asarray(losses, dtype=np.float64)  # (epochs, M)
        self.scores = None if scores is None else np.asarray(scores, dtype=np.float64)
        self.M = self.losses.shape[1]
        self.epoch = 0
        self.kept, self.lrs, self.restored = [], [], False
        self.saved = None

    def run_epoch(self, progress=None):
        self.epoch += 1
        return self.losses[self.epoch - 1].copy()

    def validation(self):
        score = self.scores[self.epoch - 1].copy()
        return score, -score

    def keep_best(self, improved):
        self.kept.append(improved.copy())

    def restore_best(self):
        self.restored = True

    def set_running(self, running):
        self.running = running.copy()

    def set_lr(self, lr):
        self.lrs.append(lr.copy())

    def checkpoint(self):
        self.saved = self.epoch

    def rollback(self):
        self.epoch = self.saved


def _rules(M, early_stopping=False, patience=2, tol=0.0, schedule="constant"):
    return EpochRules([tol] * M, [patience] * M, [0.1] * M, [0.5] * M, schedule,
                      early_stopping, device=None)


def test_each_member_stops_on_its_own_rule_or_budget():
    # member 0 stops improving by more than tol=0.5 after epoch 2: with
    # n_iter_no_change=2 its count passes 2 at epoch 5; member 1 improves by
    # 1 every epoch until its budget of 4 epochs
    losses = [[3.0, 9.0], [2.0, 8.0], [2.0, 7.0], [2.0, 6.0], [2.0, 5.0], [2.0, 4.0], [2.0, 3.0]]
    members = FakeMembers(losses)
    trainer = Trainer(members, _rules(2, tol=0.5), max_iter=[10, 4], n_rows=10.0,
                      early_stopping=False).run()
    results = trainer.results()
    assert [len(r.loss_curve) for r in results] == [5, 4]
    assert results[0].converged and not results[1].converged
    assert results[0].loss_curve == [3.0, 2.0, 2.0, 2.0, 2.0]
    assert results[1].loss_curve == [9.0, 8.0, 7.0, 6.0]
    assert results[0].best == 2.0 and results[1].best == 6.0
    assert results[0].t == 50 and results[1].t == 40
    # the trainer stopped once both had stopped
    assert members.epoch == 5


def test_a_diverged_member_stops_and_says_so():
    members = FakeMembers([[1.0], [np.inf], [0.5]])
    result = Trainer(members, _rules(1), max_iter=[3], n_rows=4.0,
                     early_stopping=False).run().results()[0]
    assert members.epoch == 2
    assert result.diverged_loss == np.inf
    assert result.loss_curve == [1.0, np.inf]


def test_a_diverged_member_with_early_stopping_records_nans_to_its_budget():
    """As scikit-learn's loop would record it: NaN scores to max_iter, the
    count reset by them, the best weights kept, without training on NaN."""
    members = FakeMembers([[1.0], [0.9], [np.nan], [0.1]], scores=[[0.5], [0.7], [np.nan], [0.9]])
    trainer = Trainer(members, _rules(1, early_stopping=True), max_iter=[6], n_rows=4.0,
                      early_stopping=True).run()
    result = trainer.results()[0]
    assert members.epoch == 3 and members.restored
    assert result.diverged_loss is None
    assert len(result.loss_curve) == 6
    assert result.loss_curve[:2] == [1.0, 0.9] and all(np.isnan(result.loss_curve[2:]))
    assert result.validation_scores[:2] == [0.5, 0.7]
    assert all(np.isnan(result.validation_scores[2:]))
    assert result.improved and result.best == 0.7
    assert result.t == 6 * 4 and result.no_improvement == 0


def test_ctrl_c_goes_back_to_the_end_of_the_last_epoch():
    class Interrupting(FakeMembers):
        def run_epoch(self, progress=None):
            if self.epoch == 2:
                raise KeyboardInterrupt
            return super().run_epoch(progress)

    members = Interrupting([[3.0], [2.0], [1.0]])
    trainer = Trainer(members, _rules(1), max_iter=[3], n_rows=1.0, early_stopping=False,
                      interruptible=True).run()
    assert trainer.interrupted
    result = trainer.results()[0]
    assert result.loss_curve == [3.0, 2.0] and result.t == 2
    # before the first epoch ends there is nothing to go back to
    members = Interrupting([[3.0]])
    members.epoch = 2
    with pytest.raises(KeyboardInterrupt):
        Trainer(members, _rules(1), max_iter=[3], n_rows=1.0, early_stopping=False,
                interruptible=True).run()


def test_single_and_batched_fits_run_the_same_trainer(monkeypatch):
    runs = []
    original = Trainer.run

    def spy(self):
        runs.append(type(self.members).__name__)
        return original(self)

    monkeypatch.setattr(_training.Trainer, "run", spy)
    rng = np.random.RandomState(0)
    X, y = rng.rand(60, 4), rng.rand(60)
    est = MLPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        cross_val_score(est, X, y, cv=3)
    assert runs == ["NetMember", "_BatchedGroup"]


def test_warnings_of_training_point_at_the_users_call():
    rng = np.random.RandomState(0)
    X, y = rng.rand(40, 3), np.arange(40) % 2
    with pytest.warns(ConvergenceWarning) as record:
        MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(X, y)
    assert [w.filename for w in record] == [__file__]
    with pytest.warns(UserWarning, match="clipped") as record:
        MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, batch_size=100).partial_fit(
            X, y, classes=[0, 1]
        )
    assert [w.filename for w in record] == [__file__]
    with pytest.warns(UserWarning, match="one-hot") as record, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(X, np.eye(2)[y])
    assert [w.filename for w in record] == [__file__]


def test_the_history_has_a_row_per_epoch_as_skorch_writes_it():
    rng = np.random.RandomState(0)
    X, y = rng.rand(40, 3), np.arange(40) % 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier(hidden_layer_sizes=(3,), max_iter=4, early_stopping=True,
                            validation_fraction=0.25, random_state=0).fit(X, y)
        est.set_params(warm_start=True, max_iter=2).fit(X, y)
    history = est.net_.history
    assert history[:, "epoch"] == [1, 2, 3, 4, 5, 6]
    assert history[:, "train_loss"] == est.loss_curve_
    assert history[:, "valid_loss"] == est.validation_loss_curve_
    assert all(d >= 0 for d in history[:, "dur"])
