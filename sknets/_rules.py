"""scikit-learn's per-epoch rules, written once, over tensors of members.

A fit's epochs end with scikit-learn's bookkeeping: the best training loss
(or, with ``early_stopping``, the best validation score), the count of
epochs without an improvement of more than ``tol``, and the learning-rate
schedules of SGD (``'invscaling'`` after every epoch, ``'adaptive'``
dividing the rate by 5 where another solver or schedule would stop).
:class:`EpochRules` applies them to ``M`` members at once, each a tensor of
shape ``(M,)`` in float64: a single fit is one member (on the CPU), the
batched trainer of :mod:`sknets.model_selection` runs all its members
through the very same code on its device.

What is *not* here is the driver's: how many epochs a call may run
(``max_iter`` per ``fit``, one per ``partial_fit``), what a diverged network
does (an error, or NaN scores to the end with ``early_stopping``) and what
is printed.
"""

import math

import torch


class EpochRules:
    """The state and settings of scikit-learn's per-epoch rules for ``M``
    members.

    Parameters
    ----------
    tol, n_iter_no_change, learning_rate_init, power_t : sequence of float
        Each member's setting (length ``M``).
    schedule : {'constant', 'invscaling', 'adaptive'}
        The learning-rate schedule in force (the same for all members).
    early_stopping : bool
        The rule counts on validation scores (higher is better) instead of
        training losses (lower is better).
    best, no_improvement, t, lr : sequence of float, default=None
        The state to continue from (a warm start or ``partial_fit``):
        the best loss or score so far, the count of epochs without
        improvement, the samples seen, the learning rate. None: a fresh fit
        (``inf`` or ``-inf``, 0, 0, ``learning_rate_init``).
    device : torch.device, default='cpu'
    """

    def __init__(
        self,
        tol,
        n_iter_no_change,
        learning_rate_init,
        power_t,
        schedule,
        early_stopping,
        best=None,
        no_improvement=None,
        t=None,
        lr=None,
        device="cpu",
    ):
        f64 = dict(dtype=torch.float64, device=device)
        self.tol = torch.as_tensor(tol, **f64).reshape(-1)
        M = self.tol.shape[0]
        self.patience = torch.as_tensor(n_iter_no_change, **f64).reshape(M)
        self.lr_init = torch.as_tensor(learning_rate_init, **f64).reshape(M)
        self.power_t = torch.as_tensor(power_t, **f64).reshape(M)
        self.schedule = schedule
        self.early_stopping = bool(early_stopping)
        start = -math.inf if early_stopping else math.inf
        self.best = torch.full((M,), start, **f64) if best is None else (
            torch.as_tensor(best, **f64).reshape(M).clone()
        )
        self.no_improvement = (
            torch.zeros(M, **f64)
            if no_improvement is None
            else torch.as_tensor(no_improvement, **f64).reshape(M).clone()
        )
        self.t = torch.zeros(M, **f64) if t is None else torch.as_tensor(t, **f64).reshape(M)
        self.lr = self.lr_init if lr is None else torch.as_tensor(lr, **f64).reshape(M)

    def end_epoch(self, loss, score, n_rows, running=None):
        """Apply the rules to the epoch that just ended.

        Parameters
        ----------
        loss : tensor of shape (M,)
            The epoch's training loss of each member.
        score : tensor of shape (M,) or None
            The validation score of each member (``early_stopping``).
        n_rows : tensor of shape (M,) or float
            Training samples of each member's epoch.
        running : bool tensor of shape (M,), default=None
            Members still training (the others are left unchanged); None:
            all of them.

        Returns
        -------
        improved : bool tensor of shape (M,)
            The validation score beat the best so far (keep these weights);
            always False without ``early_stopping``.
        shrunk : bool tensor of shape (M,)
            ``'adaptive'`` divided the learning rate by 5 instead of stopping.
        converged : bool tensor of shape (M,)
            No improvement for more than ``n_iter_no_change`` epochs: stop.
        """
        best = self.best
        run = torch.ones_like(best, dtype=torch.bool) if running is None else running
        loss = loss.to(torch.float64)
        if self.early_stopping:
            score = score.to(torch.float64)
            worse = score < best + self.tol
            improved = run & (score > best)
            self.best = torch.where(improved, score, best)
        else:
            worse = loss > best - self.tol
            improved = torch.zeros_like(run)
            self.best = torch.where(run & (loss < best), loss, best)
        count = self.no_improvement
        self.no_improvement = torch.where(run, torch.where(worse, count + 1, 0.0), count)
        self.t = torch.where(run, self.t + n_rows, self.t)
        if self.schedule == "invscaling":
            self.lr = torch.where(run, self.lr_init / (self.t + 1) ** self.power_t, self.lr)
        stalled = run & (self.no_improvement > self.patience)
        shrunk = torch.zeros_like(stalled)
        if self.schedule == "adaptive":
            shrunk = stalled & (self.lr > 1e-6)
            self.lr = torch.where(shrunk, self.lr / 5.0, self.lr)
            self.no_improvement = torch.where(shrunk, 0.0, self.no_improvement)
        return improved, shrunk, stalled & ~shrunk
