"""The registries: one record per solver, loss, output activation and hidden
activation, the single source of truth for what each one is and does.

Adding one is one entry in its table below, with its docstring line; the
estimators' parameter validation, the optimizer set-up, the fit loop, the
prediction and the batched model selection all read these records:

* :data:`SOLVERS`: :class:`Solver` records (the optimizer and its keyword
  arguments, whether it trains in mini-batch epochs, its fused / capturable
  kernels, decoupled decay, learning-rate schedules, batched training);
* :data:`LOSSES`: :class:`Loss` records (the per-sample loss on the raw
  network output, its closed-form gradient, and whether it takes
  ``label_smoothing``);
* :data:`OUT_ACTIVATIONS`: :class:`OutActivation` records (the output
  activation in torch and in numpy);
* :data:`ACTIVATIONS`: :class:`Activation` records (the hidden-layer
  activation module, and its closed-form forward and backward where it has
  one).
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit, softmax
from torch import nn

from ._optim import LBFGS

# ----------------------------------------------------------------------------
# Solvers
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Solver:
    """What one ``solver`` name means.

    Attributes
    ----------
    name : str
    optimizer : callable
        ``optimizer(est) -> (torch optimizer class, kwargs)`` from the
        estimator's parameters.
    doc : str
        One line for the documentation.
    stochastic : bool
        Trains in mini-batch epochs (``batch_size``, ``loss_curve_``,
        ``partial_fit``); False for a full-batch solver run once (L-BFGS).
    fused : bool
        torch has a fused kernel for it (CPU and CUDA); else ``foreach``.
    capturable : bool
        Its optimizer keeps a step counter and needs ``capturable=True`` to
        be replayed as a CUDA graph.
    decoupled_decay : bool
        ``alpha`` is the optimizer's decoupled weight decay, not an L2 term
        of the loss.
    schedules : bool
        ``learning_rate='invscaling'`` / ``'adaptive'`` apply (scikit-learn:
        SGD only).
    batched : bool
        :mod:`sknets.model_selection` can train it as a batched network.
    """

    name: str
    optimizer: Callable
    doc: str
    stochastic: bool = True
    fused: bool = False
    capturable: bool = False
    decoupled_decay: bool = False
    schedules: bool = False
    batched: bool = False

    def optimizer_kwargs(self, est, graphed):
        """The optimizer class and keyword arguments for an estimator;
        ``graphed``: its steps will be replayed as CUDA graphs."""
        cls, kwargs = self.optimizer(est)
        if self.stochastic:
            kwargs["fused" if self.fused else "foreach"] = True
            if graphed and self.capturable:
                kwargs["capturable"] = True
        return cls, kwargs


def _sgd(est):
    nesterov = bool(est.nesterovs_momentum) and est.momentum > 0
    return torch.optim.SGD, {"momentum": est.momentum, "nesterov": nesterov}


def _adam(est):
    return torch.optim.Adam, {"betas": (est.beta_1, est.beta_2), "eps": est.epsilon}


def _adamw(est):
    return torch.optim.AdamW, {
        "betas": (est.beta_1, est.beta_2),
        "eps": est.epsilon,
        "weight_decay": est.alpha,
    }


def _rmsprop(est):
    return torch.optim.RMSprop, {"alpha": 0.9, "eps": est.epsilon}


def _lbfgs(est):
    return LBFGS, {"max_iter": est.max_iter, "max_fun": est.max_fun, "tol": est.tol}


#: Solvers by name.
SOLVERS = {
    s.name: s
    for s in (
        Solver("sgd", _sgd, "stochastic gradient descent, momentum and Nesterov's momentum",
               fused=True, schedules=True, batched=True),
        Solver("adam", _adam, "Adam (Kingma and Ba)", fused=True, capturable=True, batched=True),
        Solver("adamw", _adamw, "Adam with decoupled weight decay alpha (Loshchilov and Hutter)",
               fused=True, capturable=True, decoupled_decay=True, batched=True),
        Solver("rmsprop", _rmsprop, "RMSprop with Keras' decay 0.9", capturable=True,
               batched=True),
        Solver("lbfgs", _lbfgs, "scipy's full-batch L-BFGS-B, as scikit-learn's",
               stochastic=False),
    )
}


# ----------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Loss:
    """A per-sample loss on the raw network output: ``fn(z, y) -> (n,)``.

    ``smoothable`` losses (of class targets) take a ``label_smoothing``
    keyword. ``grad(z, y, label_smoothing) -> (loss, dloss_dz)`` gives the
    per-sample loss (as ``fn``) and its derivative with respect to each
    sample's raw output, in closed form, for the closed-form training step
    (:mod:`sknets._closed_form`); None: autograd only. ``numpy_grad(z, y)``
    is the same in numpy (without smoothing; it may overwrite ``z``), for
    the numpy step of small networks; None: torch only.
    """

    name: str
    fn: Callable
    doc: str
    smoothable: bool = False
    grad: Callable = None
    numpy_grad: Callable = None


def _cross_entropy(z, y, label_smoothing=0.0):
    # torch's smoothing: the target is (1 - eps) * one-hot + eps / n_classes
    return F.cross_entropy(z, y, reduction="none", label_smoothing=label_smoothing)


def _binary_cross_entropy(z, y, label_smoothing=0.0):
    if label_smoothing:
        # the same rule with two classes per output: y -> y (1 - eps) + eps / 2
        y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return F.binary_cross_entropy_with_logits(z, y, reduction="none").sum(1)


def _cross_entropy_grad(z, y, label_smoothing=0.0):
    logp = torch.log_softmax(z, dim=1)
    target = torch.zeros_like(z).scatter_(1, y[:, None], 1.0)
    if label_smoothing:
        target.mul_(1.0 - label_smoothing).add_(label_smoothing / z.shape[1])
    return -(target * logp).sum(1), logp.exp_().sub_(target)


def _binary_cross_entropy_grad(z, y, label_smoothing=0.0):
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
    loss = F.binary_cross_entropy_with_logits(z, y, reduction="none").sum(1)
    return loss, torch.sigmoid(z).sub_(y)


def _cross_entropy_grad_np(z, y):
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    total = e.sum(axis=1)
    rows = np.arange(len(y))
    loss = np.log(total) - z[rows, y]
    e /= total[:, None]
    e[rows, y] -= 1.0
    return loss, e


def _binary_cross_entropy_grad_np(z, y):
    # BCE with logits, as torch's: max(z, 0) - z y + log(1 + exp(-|z|))
    loss = (np.logaddexp(0.0, z) - z * y).sum(axis=1)
    d = expit(z)
    d -= y
    return loss, d


def _half_squared_error_grad_np(z, y):
    z -= y
    k = z.shape[1]
    loss = 0.5 * np.square(z).mean(axis=1) if k > 1 else 0.5 * np.square(z[:, 0])
    if k > 1:
        z /= k
    return loss, z


def _half_squared_error(z, y):
    return 0.5 * (z - y).square().mean(1)


def _poisson(z, y):
    # scikit-learn's Poisson deviance with the log link: the network outputs
    # z = log(mu); xlogy(y, y) - y keeps the minimum at zero.
    return (torch.xlogy(y, y) - y - y * z + torch.exp(z)).sum(1)


def _half_squared_error_grad(z, y, label_smoothing=0.0):
    diff = z - y
    k = z.shape[1]
    return 0.5 * diff.square().mean(1), diff if k == 1 else diff.div_(k)


def _poisson_grad(z, y, label_smoothing=0.0):
    mu = torch.exp(z)
    return (torch.xlogy(y, y) - y - y * z + mu).sum(1), mu.sub_(y)


def _absolute_error(z, y):
    return (z - y).abs().mean(1)


def _absolute_error_grad(z, y, label_smoothing=0.0):
    diff = z - y
    return diff.abs().mean(1), diff.sign_().div_(z.shape[1])


def _huber(z, y):
    return F.huber_loss(z, y, reduction="none", delta=1.0).mean(1)


def _huber_grad(z, y, label_smoothing=0.0):
    loss = _huber(z, y)
    return loss, (z - y).clamp_(-1.0, 1.0).div_(z.shape[1])


#: Per-sample losses by name.
LOSSES = {
    s.name: s
    for s in (
        Loss("log_loss", _cross_entropy, "softmax cross-entropy (multiclass)", smoothable=True,
             grad=_cross_entropy_grad, numpy_grad=_cross_entropy_grad_np),
        Loss("binary_log_loss", _binary_cross_entropy,
             "sigmoid cross-entropy summed over outputs (binary, multilabel)", smoothable=True,
             grad=_binary_cross_entropy_grad, numpy_grad=_binary_cross_entropy_grad_np),
        Loss("squared_error", _half_squared_error, "half the mean squared error over outputs",
             grad=_half_squared_error_grad, numpy_grad=_half_squared_error_grad_np),
        Loss("poisson", _poisson, "Poisson deviance with the log link", grad=_poisson_grad),
        Loss("absolute_error", _absolute_error, "mean absolute error over outputs",
             grad=_absolute_error_grad),
        Loss("huber", _huber, "Huber loss with delta 1, mean over outputs", grad=_huber_grad),
    )
}


# ----------------------------------------------------------------------------
# Output activations
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OutActivation:
    """An output activation, applied at prediction time, in torch (``torch``)
    and in numpy (``numpy``), by scikit-learn's name (``out_activation_``)."""

    name: str
    torch: Callable
    numpy: Callable
    doc: str


#: Output activations by scikit-learn's names.
OUT_ACTIVATIONS = {
    s.name: s
    for s in (
        OutActivation("identity", lambda z: z, lambda z: z, "none (regression)"),
        OutActivation("logistic", torch.sigmoid, expit, "sigmoid (binary, multilabel)"),
        OutActivation("softmax", lambda z: torch.softmax(z, dim=1),
                      lambda z: softmax(z, axis=1), "softmax (multiclass)"),
        OutActivation("exp", torch.exp, np.exp, "exponential (Poisson loss)"),
    )
}


# ----------------------------------------------------------------------------
# Hidden activations
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Activation:
    """A hidden-layer activation: ``module()`` makes the torch module.
    ``glorot_factor`` is the numerator of scikit-learn's Glorot bound
    ``sqrt(factor / (fan_in + fan_out))``.

    For the closed-form training step (:mod:`sknets._closed_form`),
    ``forward_(a)`` applies the activation in place to the pre-activation
    ``a`` and returns it, and ``backward(grad, out)`` is the gradient with
    respect to the pre-activation from the activation's *output* ``out``;
    None for activations whose derivative needs the input (autograd only).
    ``numpy_forward_`` and ``numpy_backward_(grad, out)`` (which may
    overwrite ``grad``) are the same in numpy, for the numpy step of small
    networks; None: torch only.
    """

    name: str
    module: Callable
    doc: str
    glorot_factor: float = 6.0
    forward_: Callable = None
    backward: Callable = None
    numpy_forward_: Callable = None
    numpy_backward_: Callable = None

    def __call__(self):
        return self.module()


def _expit_(a):
    return expit(a, out=a)


def _sigmoid_backward_np(g, out):
    g *= out
    g *= 1.0 - out
    return g


def _tanh_(a):
    return np.tanh(a, out=a)


def _tanh_backward_np(g, out):
    g *= 1.0 - np.square(out)
    return g


def _relu_(a):
    return np.maximum(a, 0.0, out=a)


def _relu_backward_np(g, out):
    return np.multiply(g, out > 0, out=g)


#: Hidden-layer activations by name. ``'logistic'`` is scikit-learn's name
#: for the sigmoid; ``'sigmoid'`` is accepted as the Keras spelling.
ACTIVATIONS = {
    s.name: s
    for s in (
        Activation("identity", nn.Identity, "no activation",
                   forward_=lambda a: a, backward=lambda g, out: g,
                   numpy_forward_=lambda a: a, numpy_backward_=lambda g, out: g),
        Activation("logistic", nn.Sigmoid, "the sigmoid, scikit-learn's name", glorot_factor=2.0,
                   forward_=torch.sigmoid_, backward=torch.ops.aten.sigmoid_backward,
                   numpy_forward_=_expit_, numpy_backward_=_sigmoid_backward_np),
        Activation("sigmoid", nn.Sigmoid, "the sigmoid, Keras' name", glorot_factor=2.0,
                   forward_=torch.sigmoid_, backward=torch.ops.aten.sigmoid_backward,
                   numpy_forward_=_expit_, numpy_backward_=_sigmoid_backward_np),
        Activation("tanh", nn.Tanh, "hyperbolic tangent",
                   forward_=torch.tanh_, backward=torch.ops.aten.tanh_backward,
                   numpy_forward_=_tanh_, numpy_backward_=_tanh_backward_np),
        Activation("relu", nn.ReLU, "rectified linear unit", forward_=torch.relu_,
                   backward=lambda g, out: torch.ops.aten.threshold_backward(g, out, 0),
                   numpy_forward_=_relu_, numpy_backward_=_relu_backward_np),
        Activation("leaky_relu", nn.LeakyReLU, "leaky ReLU, slope 0.01"),
        Activation("elu", nn.ELU, "exponential linear unit"),
        Activation("gelu", nn.GELU, "Gaussian error linear unit"),
        Activation("silu", nn.SiLU, "sigmoid linear unit (swish)"),
    )
}
