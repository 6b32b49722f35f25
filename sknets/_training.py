"""One trainer: the epoch loop of every stochastic fit, single or batched.

A fit flows down once. The estimator validates its data and describes the
fit (:mod:`sknets._base` for one fit, :class:`~sknets._seam.TrainingPlan`
for the members that model selection batches); whoever knows how computes
the members' epochs (:class:`NetMember`: one network's steps, in closed
form, autograd or CUDA graphs; the batched group of
:mod:`sknets.model_selection._batched`: stacked members); :class:`Trainer`
runs their epochs with scikit-learn's rules and gives back one
:class:`~sknets._seam.TrainingResult` per member, which the estimator adopts.

The trainer owns, for ``M >= 1`` members at once:

- the epochs: a member trains until scikit-learn's rule says it converged
  (:class:`~sknets._rules.EpochRules`), until its ``max_iter``, or until it
  diverges (a loss, or a validation score, that is not finite);
- the curves and counters of each epoch, and the best weights of
  ``early_stopping`` (kept by the members, restored at the end);
- divergence: the result says how the member's fit ends, the same for single
  and batched fits (without ``early_stopping`` an error; with it, NaN scores
  to ``max_iter``, as scikit-learn's loop would have recorded them, and the
  best weights);
- Ctrl-C: with an interruptible member, a ``KeyboardInterrupt`` after the
  first epoch goes back to the end of the last finished epoch;
- progress and printing (``verbose``).

Members give the trainer their epochs through a small interface: ``M``,
``run_epoch(progress)`` (the epoch's mean training loss per member),
``validation()`` (score and loss per member), ``keep_best(improved)``,
``restore_best()``, ``set_running(running)``, ``set_lr(lr)``, and, for
interruptible members, ``checkpoint()`` and ``rollback()``.
"""

import time

import numpy as np
import torch

from ._engine import NetCheckpoint, ProgressBar
from ._seam import TrainingResult


class Trainer:
    """Runs the epochs of ``members`` with scikit-learn's ``rules``.

    Parameters
    ----------
    members : object
        The members (see the module docstring).
    rules : EpochRules
        The rules, with their state to continue from; numpy for one member
        on the host (``device=None``), torch tensors on the members' device
        for batched members.
    max_iter : sequence of int
        Each member's epoch budget for this call.
    n_rows : float or tensor of shape (M,)
        Training rows of each member's epoch.
    early_stopping : bool
        Count on validation scores.
    check_every : int, default=1
        Epochs between two looks at whether any member still runs (a
        synchronisation on CUDA).
    interruptible : bool, default=False
        Checkpoint the members at each epoch's start, for Ctrl-C.
    report : callable, default=None
        ``report(epoch, loss, score, val_loss, seconds, shrunk, converged,
        lr)`` after each epoch of a single member (``verbose``).
    progress_label : callable, default=None
        ``progress_label(epoch)``: the label of a per-epoch progress bar
        (``verbose >= 2``), or None for no bar.
    """

    def __init__(self, members, rules, max_iter, n_rows, early_stopping, check_every=1,
                 interruptible=False, report=None, progress_label=None):
        self.members = members
        self.rules = rules
        self.ops = ops = rules.ops
        M = members.M
        self.max_iter = ops.as_array(max_iter).reshape(M)
        self.max_epochs = int(max(max_iter))
        self.n_rows = n_rows
        self.early_stopping = bool(early_stopping)
        self.check_every = check_every
        self.interruptible = interruptible
        self.report = report
        self.progress_label = progress_label

    def run(self):
        """Train; returns ``self`` with the record of the epochs (see
        :meth:`results`)."""
        members, ops = self.members, self.ops
        M, E = members.M, self.max_epochs
        self.curve = ops.zeros((E, M))
        self.scores = ops.zeros((E, M)) if self.early_stopping else None
        self.val_losses = ops.zeros((E, M)) if self.early_stopping else None
        self.n_iter = ops.zeros(M)
        self.running = ops.trues(self.n_iter)
        self.converged = ops.falses(self.n_iter)
        self.improved = ops.falses(self.n_iter)
        self.seconds = []
        self.interrupted = False
        saved = None
        for epoch in range(E):
            if epoch and epoch % self.check_every == 0 and not bool(self.running.any()):
                break
            if self.interruptible and epoch:
                saved = self._checkpoint(saved)
            try:
                self._epoch(epoch)
            except KeyboardInterrupt:
                if saved is None:
                    raise
                self._rollback(saved)
                self.interrupted = True
                break
        if self.early_stopping:
            members.restore_best()
        return self

    def _epoch(self, epoch):
        members, rules, ops = self.members, self.rules, self.ops
        start = time.perf_counter()
        progress = None
        if self.progress_label is not None:
            progress = ProgressBar(self.progress_label(epoch))
        loss = members.run_epoch(progress)
        self.curve[epoch] = loss
        run = self.running
        score = val_loss = None
        if self.early_stopping:
            score, val_loss = members.validation()
            self.scores[epoch] = score
            self.val_losses[epoch] = val_loss
        improved, shrunk, converged = rules.end_epoch(loss, score, self.n_rows, run)
        if self.early_stopping:
            self.improved = self.improved | improved
            members.keep_best(improved)
        self.converged = self.converged | converged
        self.n_iter = self.n_iter + ops.to_float(run)
        stop = converged | (self.n_iter >= self.max_iter) | ~ops.isfinite(loss)
        if self.early_stopping:
            stop = stop | ~ops.isfinite(score)
        self.running = run & ~stop
        members.set_running(self.running)
        members.set_lr(rules.lr)
        seconds = time.perf_counter() - start
        self.seconds.append(seconds)
        if self.report is not None:
            self.report(epoch, loss[0], None if score is None else score[0],
                        None if val_loss is None else val_loss[0], seconds,
                        bool(shrunk[0]), bool(converged[0]), float(rules.lr[0]))

    # -- Ctrl-C ---------------------------------------------------------------------

    _STATE = ("n_iter", "running", "converged", "improved")
    _RULES = ("best", "no_improvement", "t", "lr")

    def _checkpoint(self, saved):
        self.members.checkpoint()
        copy = self.ops.copy
        return (
            {k: copy(getattr(self, k)) for k in self._STATE},
            {k: copy(getattr(self.rules, k)) for k in self._RULES},
            len(self.seconds),
        )

    def _rollback(self, saved):
        state, rules, n_epochs = saved
        self.members.rollback()
        self.__dict__.update(state)
        self.rules.__dict__.update(rules)
        del self.seconds[n_epochs:]

    # -- what each member's fit gave --------------------------------------------------

    def results(self, layers=None):
        """One :class:`~sknets._seam.TrainingResult` per member, as its
        separate fit would have ended. ``layers``: each member's final
        weights (None: they are in the member's network already)."""
        numpy = _to_numpy
        curve, n_iter = numpy(self.curve), numpy(self.n_iter).astype(int)
        scores = numpy(self.scores) if self.early_stopping else None
        val_losses = numpy(self.val_losses) if self.early_stopping else None
        best, t = numpy(self.rules.best), numpy(self.rules.t)
        count = numpy(self.rules.no_improvement).astype(int)
        converged, improved = numpy(self.converged), numpy(self.improved)
        max_iter = numpy(self.max_iter).astype(int)
        n_rows = np.broadcast_to(numpy(self.n_rows), n_iter.shape)
        results = []
        for i in range(self.members.M):
            n = int(n_iter[i])
            losses = [float(v) for v in curve[:n, i]]
            member_scores = member_losses = None
            if scores is not None:
                member_scores = [float(v) for v in scores[:n, i]]
                member_losses = [float(v) for v in val_losses[:n, i]]
            result = TrainingResult(
                layers=None if layers is None else layers[i],
                loss_curve=losses,
                validation_scores=member_scores,
                validation_losses=member_losses,
                best=float(best[i]),
                no_improvement=int(count[i]),
                t=int(t[i]),
                converged=bool(converged[i]),
                improved=bool(improved[i]),
            )
            diverged = n and (
                not np.isfinite(losses[-1])
                or (member_scores is not None and not np.isfinite(member_scores[-1]))
            )
            if diverged and not self.early_stopping:
                result.diverged_loss = losses[-1]
            elif diverged and not self.interrupted:
                # scikit-learn's loop goes on to max_iter with non-finite
                # weights, recording NaN scores (no improvement, and a count
                # that NaN resets), and keeps the best weights: the record
                # it would have made, without training on NaN
                extra = int(max_iter[i]) - n
                result.loss_curve = losses + [losses[-1]] * extra
                result.validation_scores = member_scores[:-1] + [np.nan] * (extra + 1)
                result.validation_losses = member_losses[:-1] + [np.nan] * (extra + 1)
                result.t += int(extra * float(n_rows[i]))
                result.no_improvement = 0
            results.append(result)
        return results


def _to_numpy(a):
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


class NetMember:
    """One network (a :class:`~sknets._engine.FastNet`) as the trainer's
    single member: its epochs over ``data``, its validation on ``val`` (an
    ``(X, targets, weights)`` tuple, or None) scored by ``score``
    (``score(raw, y, w)``), its best weights in memory, its checkpoints.
    """

    M = 1

    def __init__(self, net, data, val, score, keep_start=False):
        self.net = net
        self.data = data
        self.val = val
        self.score = score
        # a warm start that never beats the best score so far ends with the
        # weights it started from, the best of the last fit
        self.best_state = self._state() if keep_start else None
        self._saved = None

    def _state(self):
        return {k: v.detach().clone() for k, v in self.net.module_.state_dict().items()}

    def run_epoch(self, progress=None):
        # (positional: tests spy on run_epoch with (self, data, *args))
        return np.array([self.net.run_epoch(self.data, progress, False)], dtype=np.float64)

    def validation(self):
        """The validation score and loss: NaN for a diverged network, as
        scikit-learn scores it. The loss is the training loss on the
        validation rows (the criterion, sample-weighted, without the L2
        penalty)."""
        X_val, y_val, w_val = self.val
        raw = self.net.forward_raw(X_val)
        if not np.isfinite(raw).all():
            return np.array([np.nan]), np.array([np.nan])
        with np.errstate(over="ignore", invalid="ignore"):
            score = float(self.score(raw, y_val, w_val))
        return np.array([score]), np.array([float(self.net.data_loss(raw, y_val, w_val))])

    def keep_best(self, improved):
        if improved[0]:
            self.best_state = self._state()

    def restore_best(self):
        if self.best_state is not None:
            self.net.module_.load_state_dict(self.best_state)

    def set_running(self, running):
        pass

    def set_lr(self, lr):
        self.net.set_learning_rate(float(lr[0]))

    def checkpoint(self):
        if self._saved is None:
            self._saved = NetCheckpoint(self.net)
        else:
            self._saved.take()

    def rollback(self):
        self._saved.restore()
