"""The closed-form training step of a dense network on a CPU.

A small MLP's step on a CPU is a few microseconds of arithmetic buried
under tens of microseconds of framework work per operator: the module
call, the autograd graph and its engine, and the optimizer's Python
wrapper (profiled in ``benchmarks/RESULTS.md``). For an
:class:`~sknets._modules.MLPModule` without dropout, trained by Adam, AdamW
SGD or RMSprop, :class:`ClosedFormStep` runs the same step as a short, fixed list of
torch operators:

- the forward pass with ``addmm`` and the activation applied in place,
  keeping each layer's output;
- the loss and its gradient with respect to the raw output in closed form
  (:attr:`~sknets._registry.Loss.grad`);
- the backward pass as the textbook matrix products, the activation's
  derivative from its output (:attr:`~sknets._registry.Activation.backward`),
  and the L2 gradient folded into the weight gradient's ``addmm``;
- the optimizer's own fused kernel (``torch._fused_adam_`` /
  ``_fused_adamw_`` / ``_fused_sgd_``; RMSprop's foreach operators, as torch
  has no fused RMSprop) called directly on the optimizer's parameter groups
  and state, as ``optimizer.step()`` calls it.

For a small network (a step of at most :data:`NUMPY_STEP` multiply-adds)
even those operators cost more than their arithmetic: :class:`NumpyStep`
runs the same step with numpy's operators on numpy views of the torch
tensors (a few microseconds less per operator).

The network stays the skorch net's torch module, and the optimizer's state
stays in ``optimizer.state``: checkpoints, ``warm_start``, ``partial_fit``
and pickling see exactly what the autograd step leaves. The step computes
the same model as the autograd step up to floating-point rounding (tested in
``tests/test_closed_form.py``).
"""

import math

import numpy as np
import torch

from ._modules import MLPModule
from ._registry import ACTIVATIONS, LOSSES

#: torch optimizer classes whose fused kernel the closed-form step calls
#: (:func:`adam_update`, :func:`sgd_update`).
_FUSED = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)
#: ... and whose foreach update it calls (:func:`rmsprop_update`): torch has
#: no fused RMSprop.
_FOREACH = (torch.optim.RMSprop,)


#: the 1 added to the optimizers' CPU step counts, made once (a new 0-d
#: tensor per step costs as much as the addition)
_ONE = torch.tensor(1.0)


def adam_update(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, eps,
                weight_decay=0.0, decoupled=False):
    """torch's fused Adam (AdamW for ``decoupled``) on lists of tensors, as
    ``optimizer.step()`` runs it: the steps are incremented, then one kernel
    updates every tensor in place."""
    # one call with a tensor 1 made once: 4 µs for six 0-d steps, against
    # 17 µs for six in-place adds and 10 µs with a Python 1
    torch._foreach_add_(steps, _ONE, alpha=1.0)
    kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
    kernel(
        params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=lr, beta1=beta1,
        beta2=beta2, weight_decay=weight_decay, eps=eps, maximize=False,
        grad_scale=None, found_inf=None,
    )


def sgd_update(params, grads, buffers, lr, momentum, nesterov, weight_decay=0.0):
    """torch's fused SGD on lists of tensors. ``buffers`` hold the momentum
    (zeros before the first step: its update ``momentum * 0 + g`` is torch's
    first buffer ``g``); empty without momentum."""
    torch._fused_sgd_(
        params, grads, buffers if momentum else [], weight_decay=weight_decay,
        momentum=momentum, lr=lr, dampening=0.0, nesterov=bool(nesterov and momentum),
        maximize=False, is_first_step=False, grad_scale=None, found_inf=None,
    )


def rmsprop_update(params, grads, square_avgs, steps, lr, alpha, eps, weight_decay=0.0):
    """torch's foreach RMSprop (no momentum, not centered) on lists of
    tensors, operator for operator as ``optimizer.step()`` runs it."""
    torch._foreach_add_(steps, _ONE, alpha=1.0)
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_mul_(square_avgs, alpha)
    torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
    avg = torch._foreach_sqrt(square_avgs)
    torch._foreach_add_(avg, eps)
    torch._foreach_addcdiv_(params, grads, avg, value=-lr)


def why_not_closed_form(net):
    """The reason :class:`ClosedFormStep` cannot train ``net`` (a
    :class:`~sknets._engine.FastNet`), or None when it can."""
    module, optimizer = net.module_, net.optimizer_
    if net.torch_device.type != "cpu":
        return "not on a CPU (CUDA steps are captured as graphs)"
    if type(module) is not MLPModule:
        return f"{type(module).__name__} is not a plain MLPModule"
    if module.draws_random:
        return "dropout"
    activation = ACTIVATIONS.get(getattr(module, "activation_name", None))
    if activation is None or activation.backward is None:
        return f"activation {getattr(module, 'activation_name', None)!r} has no closed form"
    loss = LOSSES.get(getattr(net.criterion_, "loss", None))
    if loss is None or loss.grad is None:
        return "the loss has no closed-form gradient"
    if net.precision not in ("float32", "float64"):
        return f"precision={net.precision!r} runs under autocast"
    if type(optimizer) not in _FUSED + _FOREACH:
        return f"{type(optimizer).__name__} has no fused kernel here"
    foreach = type(optimizer) in _FOREACH
    for group in optimizer.param_groups:
        if not group.get("foreach" if foreach else "fused"):
            return "the optimizer is not fused (foreach for RMSprop)"
        if group.get("maximize") or group.get("amsgrad"):
            return "the optimizer maximizes, or uses AMSGrad"
        if foreach and (group.get("momentum") or group.get("centered")):
            return "RMSprop with momentum or centered"
        if group.get("capturable") or group.get("differentiable"):
            return "a capturable or differentiable optimizer"
        if group.get("dampening", 0) or isinstance(group["lr"], torch.Tensor):
            return "SGD dampening or a tensor learning rate"
    return None


class ClosedFormStep:
    """One training step of ``net`` on a batch, without autograd.

    Build it with :meth:`build`, which returns None (and the autograd step
    is used) when :func:`why_not_closed_form` gives a reason. Calling it on
    ``(X, y, w)`` trains one step and returns the batch's loss before the
    update, as :meth:`~sknets._engine.FastNet.step_on` does: the (weighted)
    mean loss plus ``0.5 * alpha * ||W||^2 / sum(w)``.
    """

    def __init__(self, net):
        module, optimizer = net.module_, net.optimizer_
        self.net = net
        layers = list(module.layers)
        self.weights = [layer.weight for layer in layers]
        self.biases = [layer.bias for layer in layers]
        activation = ACTIVATIONS[module.activation_name]
        self.act_forward, self.act_backward = activation.forward_, activation.backward
        criterion = net.criterion_
        self.loss_grad = LOSSES[criterion.loss].grad
        self.label_smoothing = criterion.label_smoothing
        self.alpha = float(net.alpha)
        # the gradient buffers, also the parameters' .grad
        for p in (*self.weights, *self.biases):
            if p.grad is None or p.grad.shape != p.shape:
                p.grad = torch.zeros_like(p)
        self.grad_w = [p.grad for p in self.weights]
        self.grad_b = [p.grad for p in self.biases]
        penalized = {id(p) for p in net._penalized()}
        self.penalized = [p for p in self.weights if id(p) in penalized]
        self.decayed = [id(p) in penalized for p in self.weights]
        # flat views of the penalised weights (their storage stays put: a
        # state dict is loaded into it in place)
        self.penalized_flat = [p.detach().view(-1) for p in self.penalized]
        # coupled L2 (FastNet's 'sknets_l2' group): the gradient of the
        # penalty is added here; decoupled decay stays the optimizer's
        self.coupled = bool(
            self.penalized and any(g.get("sknets_l2") for g in optimizer.param_groups)
        )
        self.kind = (
            "sgd" if type(optimizer) is torch.optim.SGD
            else "rmsprop" if type(optimizer) is torch.optim.RMSprop
            else "adam"
        )
        self.kernels = [
            type(optimizer) is torch.optim.AdamW or bool(g.get("decoupled_weight_decay"))
            for g in optimizer.param_groups
        ]
        self.groups = [self._group_lists(optimizer, g) for g in optimizer.param_groups]
        self.state_key = self._state_key(optimizer)
        self.calls = self._calls(optimizer.param_groups)

    def _calls(self, groups):
        """The fused calls of one update: ``(first group, lists, kernel)``.
        Groups whose settings are equal once the coupled L2 term is in the
        gradient share one call (one kernel, one increment of the steps)."""
        calls = []
        for group, lists, kernel in zip(groups, self.groups, self.kernels):
            # kernel: whether the group's decay is decoupled (AdamW's kernel)
            settings = self._settings(group)
            for call in calls:
                if call[3] == settings and call[2] == kernel:
                    call[1] = [a + b for a, b in zip(call[1], lists)]
                    call[4].append(group)
                    break
            else:
                calls.append([group, list(lists), kernel, settings, [group]])
        return calls

    @staticmethod
    def _settings(group):
        keys = ("lr", "betas", "eps", "momentum", "nesterov", "alpha")
        wd = 0.0 if group.get("sknets_l2") else group.get("weight_decay", 0.0)
        return tuple(group.get(k) for k in keys) + (wd,)

    @classmethod
    def build(cls, net):
        """A :class:`ClosedFormStep` for ``net`` (a :class:`NumpyStep` for a
        small one), or None."""
        if not getattr(net, "closed_form", True) or why_not_closed_form(net) is not None:
            return None
        if why_not_numpy(net) is None:
            return NumpyStep(net)
        return cls(net)

    def _group_lists(self, optimizer, group):
        """The lists the fused kernel takes for one parameter group, with the
        optimizer's state initialised as ``optimizer.step()`` does."""
        params = list(group["params"])
        grads = [p.grad for p in params]
        if self.kind == "adam":
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            optimizer._init_group(group, params, grads, exp_avgs, exp_avg_sqs, [], steps)
            return params, grads, exp_avgs, exp_avg_sqs, steps
        if self.kind == "rmsprop":
            params, grads, square_avgs, steps = [], [], [], []
            optimizer._init_group(group, params, grads, square_avgs, [], [], steps)
            return params, grads, square_avgs, steps
        buffers = []
        if group["momentum"] != 0:
            for p in params:
                state = optimizer.state[p]
                if state.get("momentum_buffer") is None:
                    # zero buffers: the first update momentum * 0 + g is the
                    # first step's buffer = g of torch's SGD
                    state["momentum_buffer"] = torch.zeros_like(p)
                buffers.append(state["momentum_buffer"])
        return params, grads, buffers

    @staticmethod
    def _state_key(optimizer):
        first = optimizer.param_groups[0]["params"][0]
        state = optimizer.state.get(first, {})
        return id(state.get("exp_avg", state.get("square_avg", state.get("momentum_buffer"))))

    def valid(self):
        """Whether the optimizer's state is still the one cached here (a
        ``load_state_dict`` replaces it)."""
        optimizer = self.net.optimizer_
        return self._state_key(optimizer) == self.state_key and all(
            p.grad is g for p, g in zip(self.weights, self.grad_w)
        )

    @torch.no_grad()
    def __call__(self, X, y, w=None):
        Ws, bs = self.weights, self.biases
        last = len(Ws) - 1
        outs = [X]
        h = X
        for i in range(last):
            h = self.act_forward(torch.addmm(bs[i], h, Ws[i].t()))
            outs.append(h)
        z = torch.addmm(bs[last], h, Ws[last].t())
        per_sample, dz = self.loss_grad(z, y, self.label_smoothing)
        n = X.shape[0]
        if w is None:
            total = float(n)
            loss = per_sample.sum() / total
            dz.div_(total)
        else:
            total = float(w.sum())
            loss = (per_sample * w).sum() / total
            dz.mul_((w / total)[:, None])
        if self.penalized:
            sq = sum(torch.dot(v, v) for v in self.penalized_flat)
            loss = loss + (0.5 * self.alpha / total) * sq
        decay = self.alpha / total if self.coupled else 0.0
        g = dz
        for i in range(last, -1, -1):
            if decay and self.decayed[i]:
                torch.addmm(Ws[i], g.t(), outs[i], beta=decay, out=self.grad_w[i])
            else:
                torch.mm(g.t(), outs[i], out=self.grad_w[i])
            torch.sum(g, 0, out=self.grad_b[i])
            if i:
                g = self.act_backward(g.mm(Ws[i]), outs[i])
        self._update()
        return loss

    def _update(self):
        """The optimizer's fused update, as its ``step()`` computes it."""
        for group, lists, kernel, settings, members in self.calls:
            # only the learning rate changes while a net trains (the rules
            # of sknets._rules, through FastNet.set_learning_rate)
            if any(g["lr"] != settings[0] for g in members):
                # the learning rate (or another setting) changed: regroup
                self.calls = self._calls(self.net.optimizer_.param_groups)
                return self._update()
            wd = settings[-1]
            if self.kind == "adam":
                beta1, beta2 = group["betas"]
                adam_update(*lists, group["lr"], beta1, beta2, group["eps"], wd, decoupled=kernel)
            elif self.kind == "rmsprop":
                rmsprop_update(*lists, group["lr"], group["alpha"], group["eps"], wd)
            else:
                sgd_update(*lists, group["lr"], group["momentum"], group["nesterov"], wd)
        return None


# ----------------------------------------------------------------------------
# The same step in numpy, for small networks
# ----------------------------------------------------------------------------

#: Steps of at most this many multiply-adds (batch rows times parameters)
#: run in numpy (:class:`NumpyStep`): there each torch operator's fixed
#: cost (5-10 µs) is most of the step, and numpy's is a fraction of it
#: (``benchmarks/epoch_cost.py``, ``benchmarks/RESULTS.md``).
NUMPY_STEP = 2**20


def why_not_numpy(net):
    """The reason :class:`NumpyStep` cannot train ``net``, or None (checked
    after :func:`why_not_closed_form`)."""
    if not getattr(net, "numpy_step", True):
        return "switched off"
    module = net.module_
    activation = ACTIVATIONS[module.activation_name]
    if activation.numpy_forward_ is None:
        return f"activation {module.activation_name!r} has no numpy closed form"
    loss = LOSSES[net.criterion_.loss]
    if loss.numpy_grad is None or net.criterion_.label_smoothing:
        return "the loss has no numpy closed form"
    n_params = sum(p.numel() for p in module.parameters())
    if int(getattr(net, "batch_size", 200)) * n_params > NUMPY_STEP:
        return "a large step (torch's operators pay for themselves)"
    return None


def _flat(tensors, dtype):
    """One flat tensor holding ``tensors`` one after the other, and a view of
    it per tensor, of its shape."""
    flat = torch.empty(sum(t.numel() for t in tensors), dtype=dtype)
    views, start = [], 0
    for t in tensors:
        view = flat[start : start + t.numel()].view(t.shape)
        view.copy_(t)
        views.append(view)
        start += t.numel()
    return flat, views


class NumpyStep:
    """:class:`ClosedFormStep` in numpy, for a small network on a CPU.

    The parameters, their gradients and the optimizer's state become views
    of one flat tensor each (the torch parameters and the optimizer's state
    tensors stay where skorch, checkpoints, ``partial_fit`` and saving look
    for them, in place in those flat tensors); each step works on numpy
    views of them. The forward and backward passes are those of
    :class:`ClosedFormStep` (numpy's operators,
    :attr:`~sknets._registry.Activation.numpy_forward_` and
    :attr:`~sknets._registry.Loss.numpy_grad`), and the update is the
    optimizer's (Adam, AdamW, SGD with or without momentum, RMSprop), as
    torch's kernels compute it, on each parameter group's span of the flat
    tensors at once. The same model as the torch step up to floating-point
    rounding (``tests/test_closed_form.py``).
    """

    _STATE_KEYS = {"adam": ("exp_avg", "exp_avg_sq"), "rmsprop": ("square_avg",),
                   "sgd": ("momentum_buffer",)}

    def __init__(self, net):
        module, optimizer = net.module_, net.optimizer_
        self.net = net
        layers = list(module.layers)
        activation = ACTIVATIONS[module.activation_name]
        self.act_forward_ = activation.numpy_forward_
        self.act_backward_ = activation.numpy_backward_
        self.loss_grad = LOSSES[net.criterion_.loss].numpy_grad
        self.alpha = float(net.alpha)
        torch_form = ClosedFormStep(net)  # the optimizer's state, initialised
        self.kind = torch_form.kind
        groups = optimizer.param_groups
        order = [p for g in groups for p in g["params"]]
        dtype = order[0].dtype
        with torch.no_grad():
            flat, views = _flat([p.detach() for p in order], dtype)
            for p, view in zip(order, views):
                p.data = view
            grads, views = _flat([p.grad for p in order], dtype)
            for p, view in zip(order, views):
                p.grad = view
            states = []
            keys = self._STATE_KEYS[self.kind]
            if self.kind == "sgd" and not any(g["momentum"] for g in groups):
                keys = ()
            for key in keys:
                state, views = _flat([optimizer.state[p][key] for p in order], dtype)
                for p, view in zip(order, views):
                    optimizer.state[p][key] = view
                states.append(state.numpy())
        self._tensors = (flat, grads)  # kept alive with their numpy views
        self.P, self.G, self.states = flat.numpy(), grads.numpy(), states
        self.steps = [
            optimizer.state[p]["step"].numpy() for p in order if "step" in optimizer.state[p]
        ]
        # each group's span of the flat tensors
        self.spans, start = [], 0
        for g in groups:
            size = sum(p.numel() for p in g["params"])
            self.spans.append((g, slice(start, start + size), self._decoupled(optimizer, g)))
            start += size
        self.updates = self._merged()
        # the layers' numpy views: W (out, in) and its transpose, b
        index = {id(p): i for i, p in enumerate(order)}
        offsets = [0]
        for p in order:
            offsets.append(offsets[-1] + p.numel())

        def view(p, a):
            i = index[id(p)]
            return a[offsets[i] : offsets[i + 1]].reshape(p.shape)

        self.W = [view(layer.weight, self.P) for layer in layers]
        self.Wt = [w.T for w in self.W]
        self.b = [view(layer.bias, self.P) for layer in layers]
        self.GW = [view(layer.weight, self.G) for layer in layers]
        self.Gb = [view(layer.bias, self.G) for layer in layers]
        # the penalised weights: the coupled-L2 group's span (FastNet's
        # 'sknets_l2' group), whose gradient gets alpha / total * W
        penalized = {id(p) for p in net._penalized()}
        self.penalty = None
        for g, span, _ in self.spans:
            if penalized and {id(p) for p in g["params"]} == penalized:
                self.penalty = (span, bool(g.get("sknets_l2")))
        if penalized and self.penalty is None:
            raise ValueError("the penalised weights are not one parameter group")
        self.state_key = ClosedFormStep._state_key(optimizer)
        self.params = order

    def _merged(self):
        """The update's calls: ``(groups, span, decoupled, settings)``, one
        per run of adjacent groups of equal settings (the coupled L2 term is
        in the gradient: Adam's weights and biases are one call)."""
        calls = []
        for group, span, decoupled in self.spans:
            settings = ClosedFormStep._settings(group) + (decoupled,)
            if calls and calls[-1][3] == settings:
                groups, last, _, _ = calls[-1]
                calls[-1] = (groups + [group], slice(last.start, span.stop), decoupled, settings)
            else:
                calls.append(([group], span, decoupled, settings))
        return calls

    @staticmethod
    def _decoupled(optimizer, group):
        return type(optimizer) is torch.optim.AdamW or bool(group.get("decoupled_weight_decay"))

    def valid(self):
        """Whether the parameters and the optimizer's state are still the
        flat views made here (a ``load_state_dict`` replaces the state)."""
        first = self.params[0]
        return (
            ClosedFormStep._state_key(self.net.optimizer_) == self.state_key
            and first.data_ptr() == self._tensors[0].data_ptr()
            and first.grad is not None
            and first.grad.data_ptr() == self._tensors[1].data_ptr()
        )

    def __call__(self, X, y, w=None):
        """One step on the batch ``(X, y, w)`` (tensors); its loss."""
        # a diverging network overflows quietly, as in torch: the fit's
        # checks report it
        with np.errstate(all="ignore"):
            return self._step(X.numpy(), y.numpy(), None if w is None else w.numpy())

    def on_rows(self, data, idx):
        """One step on the rows ``idx`` (an index tensor) of ``data`` (a
        dense :class:`~sknets._engine.DeviceData` on the CPU), gathered by
        numpy."""
        arrays = data.numpy_views()
        rows = idx.numpy()
        X, y, w = (None if a is None else a[rows] for a in arrays)
        with np.errstate(all="ignore"):
            return self._step(X, y, w)

    def _step(self, X, y, w):
        W, Wt, b = self.W, self.Wt, self.b
        last = len(W) - 1
        outs = [X]
        h = X
        for i in range(last):
            a = h @ Wt[i]
            a += b[i]
            h = self.act_forward_(a)
            outs.append(h)
        z = h @ Wt[last]
        z += b[last]
        per_sample, g = self.loss_grad(z, y)
        if w is None:
            total = float(X.shape[0])
            loss = float(per_sample.sum()) / total
            g /= total
        else:
            total = float(w.sum())
            loss = float(per_sample @ w) / total
            g *= (w / total)[:, None]
        for i in range(last, -1, -1):
            np.matmul(g.T, outs[i], out=self.GW[i])
            g.sum(axis=0, out=self.Gb[i])
            if i:
                g = self.act_backward_(g @ W[i], outs[i])
        if self.penalty is not None:
            span, coupled = self.penalty
            weights = self.P[span]
            loss += (0.5 * self.alpha / total) * float(np.dot(weights, weights))
            if coupled:
                self.G[span] += (self.alpha / total) * weights
        self._update()
        return loss

    def _update(self):
        for step in self.steps:
            step += 1
        self._update_groups()

    def _update_groups(self):
        for groups, span, decoupled, settings in self.updates:
            group = groups[0]
            if any(g["lr"] != settings[0] for g in groups):
                # a learning rate changed: regroup
                self.updates = self._merged()
                return self._update_groups()
            p, g = self.P[span], self.G[span]
            lr = group["lr"]
            wd = 0.0 if group.get("sknets_l2") else group.get("weight_decay", 0.0)
            if wd and decoupled:
                p *= 1.0 - lr * wd
            elif wd:
                g = g + wd * p
            if self.kind == "adam":
                m, v = (s[span] for s in self.states)
                beta1, beta2 = group["betas"]
                t = float(self.steps[0])
                m += (1.0 - beta1) * (g - m)
                v *= beta2
                v += (1.0 - beta2) * np.square(g)
                denom = np.sqrt(v)
                denom /= math.sqrt(1.0 - beta2**t)
                denom += group["eps"]
                np.divide(m, denom, out=denom)
                denom *= lr / (1.0 - beta1**t)
                p -= denom
            elif self.kind == "rmsprop":
                (v,) = (s[span] for s in self.states)
                alpha = group["alpha"]
                v *= alpha
                v += (1.0 - alpha) * np.square(g)
                denom = np.sqrt(v)
                denom += group["eps"]
                np.divide(g, denom, out=denom)
                denom *= lr
                p -= denom
            elif self.states:
                (buf,) = (s[span] for s in self.states)
                momentum = group["momentum"]
                buf *= momentum
                buf += g
                step = g + momentum * buf if group["nesterov"] else buf.copy()
                step *= lr
                p -= step
            else:
                p -= lr * g
