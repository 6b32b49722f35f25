"""The package-level seam between the estimators and model selection.

The estimator layer does not import :mod:`sknets.model_selection`. Model
selection reaches the estimators only through what is here:

* :func:`fit_source`: while it is active, each ``fit`` first asks the
  given source for an already trained model of that very fit (the batched
  members of :mod:`sknets.model_selection`), through :func:`pretrained`, and
  adopts it instead of training.
* :func:`plan`: an estimator describes one fit as a :class:`TrainingPlan`
  (its validated data, seeds, network and settings);
* :func:`adopt`: an estimator takes a :class:`TrainingResult` through the
  normal ``fit`` path, which sets exactly the fitted attributes a fit sets.
"""

import contextlib
import contextvars
from dataclasses import dataclass, field

import numpy as np
import torch

_SOURCE = contextvars.ContextVar("sknets_fit_source", default=None)


@contextlib.contextmanager
def fit_source(source):
    """Let ``source(estimator, X, y, sample_weight)`` provide trained models
    (or None) to the ``fit`` calls made inside the ``with`` block."""
    token = _SOURCE.set(source)
    try:
        yield
    finally:
        _SOURCE.reset(token)


def pretrained(estimator, X, y, sample_weight=None):
    """The trained model the active :func:`fit_source` holds for this fit of
    ``estimator``, or None."""
    source = _SOURCE.get()
    return None if source is None else source(estimator, X, y, sample_weight)


# ----------------------------------------------------------------------------
# Training plans and results: what a batched trainer gets and gives back
# ----------------------------------------------------------------------------


@dataclass
class TrainingPlan:
    """One fit of an MLP, validated and set up by its estimator exactly as
    its own ``fit`` would be, described for a trainer of many fits at once.

    Made by :func:`plan`; nothing here is read from the estimator again.
    """

    #: the estimator's class name and its parameters (``get_params``)
    estimator_type: str
    params: dict
    is_classifier: bool
    #: the validated X of the fit, the encoded targets, the fit's seed, and
    #: the rows that train and (``early_stopping``) validate
    X: np.ndarray
    targets: np.ndarray
    seed: int
    train_rows: np.ndarray
    val_rows: np.ndarray = None
    #: the weights of X's rows (``class_weight``), or None when unweighted
    sample_weight: np.ndarray = None
    #: the network: hidden widths, activation, loss, output activation and
    #: width, its initial ``(weight (out, in), bias)`` per layer (a
    #: convolutional network: its module's state dict), and where and in
    #: what dtype it trains
    hidden: tuple = ()
    activation: str = "relu"
    loss: str = "squared_error"
    out_activation: str = "identity"
    n_outputs: int = 1
    layers: list = field(default_factory=list)
    device: torch.device = None
    dtype: torch.dtype = None
    #: a convolutional network's module keyword arguments
    #: (:class:`~sknets._modules.ConvModule`); None for an MLP
    module: dict = None
    #: training settings
    solver: str = "adam"
    schedule: str = "constant"
    batch_size: int = 200
    shuffle: bool = True
    early_stopping: bool = False
    learning_rate_init: float = 0.001
    alpha: float = 0.0001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    momentum: float = 0.9
    nesterov: bool = True
    tol: float = 1e-4
    n_iter_no_change: int = 10
    max_iter: int = 200
    power_t: float = 0.5


@dataclass
class TrainingResult:
    """What training a :class:`TrainingPlan` gave: the final weights (with
    ``early_stopping``, those of the best validation score; in the form
    of the plan's ``layers``), scikit-learn's curves and counters, and how
    it ended."""

    layers: list
    loss_curve: list
    validation_scores: list = None
    #: with ``early_stopping``: the loss on the validation rows after each
    #: epoch (the criterion without the penalty), which both the separate
    #: and the batched trainers measure; a trainer that left it None would
    #: give the estimator no ``validation_loss_curve_`` values (None) nor
    #: ``valid_loss`` history
    validation_losses: list = None
    best: float = None
    no_improvement: int = 0
    t: int = 0
    converged: bool = False
    #: with ``early_stopping``: whether the validation score ever improved
    improved: bool = False
    #: without ``early_stopping``: the non-finite loss the network diverged
    #: to, which ends the fit with its error
    diverged_loss: float = None
    #: seconds of training this member's share
    fit_time: float = 0.0
    #: the seconds of each epoch, where the trainer timed them (single fits)
    epoch_seconds: list = None


def plan(estimator, X, y):
    """The :class:`TrainingPlan` of ``estimator.fit(X, y)``; raises what that
    fit raises before training (invalid data or parameters, too small an
    early-stopping split). Sets up ``estimator`` as that fit would."""
    return estimator._training_plan(X, y)


def adopt(estimator, X, y, result):
    """Fit ``estimator`` on ``X, y`` with ``result`` (of its :func:`plan`) in
    place of training: the fitted attributes, warnings and errors of a normal
    fit. A fit that raises leaves the estimator as it was."""
    return estimator._fit_with_result(X, y, result)
