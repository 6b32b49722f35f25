"""scikit-learn's per-epoch rules, written once, over tensors of members.

A fit's epochs end with scikit-learn's bookkeeping: the best training loss
(or, with ``early_stopping``, the best validation score), the count of
epochs without an improvement of more than ``tol``, and the learning-rate
schedules of SGD (``'invscaling'`` after every epoch, ``'adaptive'``
dividing the rate by 5 where another solver or schedule would stop).
:class:`EpochRules` applies them to ``M`` members at once, each a tensor of
shape ``(M,)`` in float64: a single fit is one member, kept in numpy arrays
on the host (``device=None``: a handful of microseconds per epoch where
torch's per-operator overhead costs tens), and the batched trainer of
:mod:`sknets.model_selection` runs all its members through the very same
code as torch tensors on its device.

What is *not* here is the driver's: how many epochs a call may run
(``max_iter`` per ``fit``, one per ``partial_fit``), what a diverged network
does (an error, or NaN scores to the end with ``early_stopping``) and what
is printed.
"""

import math

import numpy as np
import torch


class _NumpyOps:
    """The few array functions the rules use, in numpy."""

    @staticmethod
    def as_array(x):
        return np.array(x, dtype=np.float64).reshape(-1)

    full = staticmethod(lambda shape, value: np.full(shape, value, dtype=np.float64))
    zeros = staticmethod(lambda shape: np.zeros(shape, dtype=np.float64))
    where = staticmethod(np.where)
    trues = staticmethod(lambda like: np.ones(like.shape, dtype=bool))
    falses = staticmethod(lambda like: np.zeros(like.shape, dtype=bool))
    isfinite = staticmethod(np.isfinite)
    copy = staticmethod(np.copy)
    to_float = staticmethod(lambda a: a.astype(np.float64))


class _TorchOps:
    """The same functions in torch, on one device."""

    def __init__(self, device):
        self.f64 = dict(dtype=torch.float64, device=device)

    def as_array(self, x):
        return torch.as_tensor(x, **self.f64).reshape(-1).clone()

    def full(self, shape, value):
        return torch.full(shape, value, **self.f64)

    def zeros(self, shape):
        return torch.zeros(shape, **self.f64)

    where = staticmethod(torch.where)
    trues = staticmethod(lambda like: torch.ones_like(like, dtype=torch.bool))
    falses = staticmethod(lambda like: torch.zeros_like(like, dtype=torch.bool))
    isfinite = staticmethod(torch.isfinite)
    copy = staticmethod(torch.clone)
    to_float = staticmethod(lambda a: a.to(torch.float64))


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
    device : torch.device or None, default='cpu'
        Where the state lives: torch tensors on this device, or numpy
        arrays for None (and then :meth:`end_epoch` takes numpy arrays).
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
        ops = self.ops = _NumpyOps() if device is None else _TorchOps(device)
        self.tol = ops.as_array(tol)
        M = self.tol.shape[0]
        self.patience = ops.as_array(n_iter_no_change).reshape(M)
        self.lr_init = ops.as_array(learning_rate_init).reshape(M)
        self.power_t = ops.as_array(power_t).reshape(M)
        self.schedule = schedule
        self.early_stopping = bool(early_stopping)
        start = -math.inf if early_stopping else math.inf
        self.best = ops.full((M,), start) if best is None else ops.as_array(best).reshape(M)
        self.no_improvement = (
            ops.zeros(M) if no_improvement is None else ops.as_array(no_improvement).reshape(M)
        )
        self.t = ops.zeros(M) if t is None else ops.as_array(t).reshape(M)
        self.lr = self.lr_init if lr is None else ops.as_array(lr).reshape(M)

    def end_epoch(self, loss, score, n_rows, running=None):
        """Apply the rules to the epoch that just ended.

        Parameters
        ----------
        loss : float64 tensor (numpy array for ``device=None``) of shape (M,)
            The epoch's training loss of each member.
        score : float64 tensor (numpy array) of shape (M,) or None
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
        ops, best = self.ops, self.best
        where = ops.where
        run = ops.trues(best) if running is None else running
        if self.early_stopping:
            worse = score < best + self.tol
            improved = run & (score > best)
            self.best = where(improved, score, best)
        else:
            worse = loss > best - self.tol
            improved = ops.falses(run)
            self.best = where(run & (loss < best), loss, best)
        count = self.no_improvement
        self.no_improvement = where(run, where(worse, count + 1, 0.0), count)
        self.t = where(run, self.t + n_rows, self.t)
        if self.schedule == "invscaling":
            self.lr = where(run, self.lr_init / (self.t + 1) ** self.power_t, self.lr)
        stalled = run & (self.no_improvement > self.patience)
        shrunk = ops.falses(stalled)
        if self.schedule == "adaptive":
            shrunk = stalled & (self.lr > 1e-6)
            self.lr = where(shrunk, self.lr / 5.0, self.lr)
            self.no_improvement = where(shrunk, 0.0, self.no_improvement)
        return improved, shrunk, stalled & ~shrunk
