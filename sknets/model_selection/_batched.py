"""Training many MLPs at once as one batched network.

A *member* is one (candidate parameters, training fold) fit. Members that
share their structure (depth, activation, solver, batch size, output width,
...) are trained together: their weights are stacked into tensors of shape
``(M, fan_in, fan_out)`` and multiplied with ``torch.baddbmm``, hidden
widths are padded to the largest with masked units, each member draws its
batches from its own fold's rows with its own seeded permutation, and a
hand-written Adam / SGD takes per-member learning rates and settings. Each
member stops on scikit-learn's ``tol`` / ``n_iter_no_change`` rule on its
own; a stopped member's weights are frozen.

Every member starts from the exact initialisation, batch order and
arithmetic of a separate fit with the same parameters, so the results are
those of separate fits up to floating-point rounding (tested in float64).
"""

import math
from collections import defaultdict

import numpy as np
import torch

from .._engine import LOSSES, StepGraphs
from .._mlp import MLPClassifier, MLPRegressor
from .._modules import ACTIVATIONS

#: Parameters that may differ between the members trained together.
PER_MEMBER = {
    "learning_rate_init",
    "hidden_layer_sizes",
    "alpha",
    "beta_1",
    "beta_2",
    "epsilon",
    "momentum",
    "tol",
    "n_iter_no_change",
    "max_iter",
    "random_state",
    "power_t",
    "verbose",
}

#: Estimators whose fits can be batched.
BATCHABLE = (MLPClassifier, MLPRegressor)


def why_not_batched(estimator):
    """The reason a fit of ``estimator`` cannot be batched, or None."""
    if type(estimator) not in BATCHABLE:
        return f"{type(estimator).__name__} is not a sknets MLPClassifier or MLPRegressor"
    if estimator.solver not in ("adam", "sgd"):
        return f"solver={estimator.solver!r} (batched: 'adam' and 'sgd')"
    if estimator.early_stopping:
        return "early_stopping=True"
    if estimator.dropout > 0:
        return "dropout > 0"
    if estimator.warm_start:
        return "warm_start=True"
    if estimator.precision == "bfloat16":
        return "precision='bfloat16'"
    return None


def resolved_batch_size(est, n_rows):
    """The batch size a separate fit on ``n_rows`` rows uses."""
    return min(200, n_rows) if est.batch_size == "auto" else min(est.batch_size, n_rows)


def _structure(est, n_rows, n_features, targets):
    """Members with equal structure keys train together."""
    params = est.get_params(deep=False)
    shared = tuple(sorted((k, repr(v)) for k, v in params.items() if k not in PER_MEMBER))
    return (
        type(est).__name__,
        shared,
        len(est._hidden_sizes()),
        resolved_batch_size(est, n_rows),
        n_features,
        est.n_outputs_,
        targets.dtype.str,
        str(est.net_.torch_device),
        str(est.net_.dtype),
    )


class Member:
    """One fit: an estimator set up by ``_prepare_fit`` (initialised net) and
    its encoded training data."""

    def __init__(self, estimator, X, targets, seed, slot):
        self.est = estimator
        self.X = X
        self.targets = targets
        self.seed = seed
        self.slot = slot


def train_members(members, chunk_members=None):
    """Train every member; results are written into each member's estimator."""
    groups = defaultdict(list)
    for m in members:
        groups[_structure(m.est, len(m.X), m.X.shape[1], m.targets)].append(m)
    for group in groups.values():
        size = chunk_members or _members_per_chunk(group)
        for start in range(0, len(group), size):
            _BatchedGroup(group[start : start + size]).train()
    return len(groups)


def _members_per_chunk(group):
    """How many members fit in a quarter of the free device memory."""
    est = group[0].est
    widths = [group[0].X.shape[1], *max_widths(group), est.n_outputs_]
    n_params = sum(a * b + b for a, b in zip(widths, widths[1:]))
    rows = max(len(m.X) for m in group)
    batch = min(rows, 200 if est.batch_size == "auto" else est.batch_size)
    per_member = 8 * (5 * n_params + 4 * batch * sum(widths) + rows * widths[0])
    device = est.net_.torch_device
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        free = 4 * 2**30
    return max(1, int(0.25 * free // per_member))


def max_widths(group):
    sizes = [m.est._hidden_sizes() for m in group]
    return [max(s[i] for s in sizes) for i in range(len(sizes[0]))]


class _BatchedGroup:
    """Members of one structure, trained as one network."""

    def __init__(self, members):
        self.members = members
        first = members[0]
        est0 = first.est
        self.M = M = len(members)
        self.device = device = est0.net_.torch_device
        self.dtype = dtype = est0.net_.dtype
        self.act = ACTIVATIONS[est0.activation]()
        self.loss_fn = LOSSES[est0.net_.criterion_.loss]
        self.solver = est0.solver
        self.shuffle = est0.shuffle
        self.schedule = est0.learning_rate

        # --- data: one slot per distinct training set, padded to n_max rows
        slots, slot_of = {}, []
        for m in members:
            slot_of.append(slots.setdefault(m.slot, (len(slots), m))[0])
        self.n_rows = torch.tensor([len(m.X) for m in members], device=device)
        self.n_list = [len(m.X) for m in members]
        n_max = max(self.n_list)
        n_feat = first.X.shape[1]
        Xs = torch.zeros((len(slots), n_max, n_feat), dtype=dtype)
        t0 = first.targets
        Ys = torch.zeros((len(slots), n_max, *t0.shape[1:]), dtype=torch.int64 if t0.dtype.kind in "iu" else dtype)
        for index, m in slots.values():
            Xs[index, : len(m.X)] = torch.as_tensor(np.asarray(m.X, dtype=np.float64), dtype=dtype)
            Ys[index, : len(m.X)] = torch.as_tensor(m.targets).to(Ys.dtype)
        self.X = Xs.reshape(-1, n_feat).to(device)
        self.Y = Ys.reshape(-1, *t0.shape[1:]).to(device)
        self.offset = (torch.tensor(slot_of) * n_max).to(device)
        self.batch = resolved_batch_size(first.est, len(first.X))
        self.steps = math.ceil(n_max / self.batch)

        # --- parameters, padded; copied from each member's initialised net
        hidden = max_widths(members)
        widths = [n_feat, *hidden, est0.n_outputs_]
        self.W, self.b, self.masks = [], [], []
        for layer, (fan_in, fan_out) in enumerate(zip(widths, widths[1:])):
            W = torch.zeros((M, fan_in, fan_out), dtype=dtype)
            b = torch.zeros((M, 1, fan_out), dtype=dtype)
            mask = torch.zeros((M, 1, fan_out), dtype=dtype)
            for i, m in enumerate(members):
                lin = m.est.net_.module_.layers[layer]
                W[i, : lin.in_features, : lin.out_features] = lin.weight.detach().T.cpu()
                b[i, 0, : lin.out_features] = lin.bias.detach().cpu()
                mask[i, 0, : lin.out_features] = 1
            self.W.append(W.to(device).requires_grad_())
            self.b.append(b.to(device).requires_grad_())
            self.masks.append(mask.to(device))
        self.params = [p for pair in zip(self.W, self.b) for p in pair]

        # --- per-member settings
        def per(name):
            values = [float(getattr(m.est, name)) for m in members]
            return torch.tensor(values, dtype=dtype, device=device)

        self.lr = per("learning_rate_init")
        self.alpha = per("alpha")
        self.beta1, self.beta2, self.eps = per("beta_1"), per("beta_2"), per("epsilon")
        self.momentum = per("momentum")
        self.nesterov = torch.tensor(
            [bool(m.est.nesterovs_momentum) and m.est.momentum > 0 for m in members],
            device=device,
        )
        self.active = torch.ones(M, dtype=dtype, device=device)
        self.step_count = torch.zeros(M, dtype=dtype, device=device)
        self.state1 = [torch.zeros_like(p) for p in self.params]
        self.state2 = [torch.zeros_like(p) for p in self.params]
        self.acc = torch.zeros(M, dtype=dtype, device=device)
        self.generators = [
            torch.Generator(device=device).manual_seed(int(m.seed)) for m in members
        ]
        capture = device.type == "cuda" and self.schedule != "invscaling"
        self.runner = StepGraphs(self._body, self._zero_grad, capture=capture)

    def _zero_grad(self):
        for p in self.params:
            p.grad = None

    def _view(self, t, like):
        return t.view(-1, *([1] * (like.dim() - 1)))

    def _body(self, idx):
        """One step of every member on its rows ``idx[m]`` (-1 = padding)."""
        self._zero_grad()
        valid = idx >= 0
        rows = idx.clamp(min=0) + self.offset[:, None]
        h = self.X[rows]
        y = self.Y[rows]
        n_layers = len(self.W)
        for layer in range(n_layers):
            h = torch.baddbmm(self.b[layer], h, self.W[layer])
            if layer < n_layers - 1:
                h = self.act(h) * self.masks[layer]
        M, B = idx.shape
        per_row = self.loss_fn(h.reshape(M * B, -1), y.reshape(M * B, *y.shape[2:]))
        validf = valid.to(self.dtype)
        n_valid = validf.sum(1)
        safe_n = n_valid.clamp(min=1)
        member_loss = (per_row.view(M, B) * validf).sum(1) / safe_n
        member_loss.sum().backward()
        with torch.no_grad():
            sq = sum(W.square().sum(dim=(1, 2)) for W in self.W)
            penalty = 0.5 * self.alpha * sq / safe_n
            self.acc.add_((member_loss.detach() + penalty) * n_valid)
            live = self.active * (n_valid > 0).to(self.dtype)
            self._update(live, self.alpha / safe_n)

    def _update(self, live, decay):
        """Adam or SGD as torch.optim computes them, per member; members
        with ``live == 0`` are left unchanged."""
        self.step_count.add_(live)
        for j, (p, s1, s2) in enumerate(zip(self.params, self.state1, self.state2)):
            # params alternate W, b: the L2 penalty is on the weight matrices only
            g = p.grad + self._view(decay, p) * p if j % 2 == 0 else p.grad
            keep = self._view(live, p)
            if self.solver == "adam":
                b1, b2 = self._view(self.beta1, p), self._view(self.beta2, p)
                step = self._view(self.step_count.clamp(min=1), p)
                m_new = s1 + (1 - b1) * (g - s1)
                v_new = s2 * b2 + (1 - b2) * g * g
                denom = (v_new.sqrt() / (1 - b2**step).sqrt()) + self._view(self.eps, p)
                update = self._view(self.lr, p) / (1 - b1**step) * m_new / denom
                s1.copy_(torch.where(keep > 0, m_new, s1))
                s2.copy_(torch.where(keep > 0, v_new, s2))
            else:
                mom = self._view(self.momentum, p)
                buf = mom * s1 + g
                direction = torch.where(self._view(self.nesterov, p), g + mom * buf, buf)
                update = self._view(self.lr, p) * direction
                s1.copy_(torch.where(keep > 0, buf, s1))
            p.sub_(update * keep)

    def _epoch_indices(self):
        rows = torch.full((self.M, self.steps * self.batch), -1, device=self.device)
        for i, (n, gen) in enumerate(zip(self.n_list, self.generators)):
            if self.shuffle:
                rows[i, :n] = torch.randperm(n, generator=gen, device=self.device)
            else:
                rows[i, :n] = torch.arange(n, device=self.device)
        return rows.view(self.M, self.steps, self.batch).transpose(0, 1).contiguous()

    def train(self):
        members = self.members
        state = [_MemberState(m.est) for m in members]
        max_epochs = max(m.est.max_iter for m in members)
        for _ in range(max_epochs):
            if not any(s.running for s in state):
                break
            self.acc.zero_()
            self.runner.run_steps(self._epoch_indices())
            losses = (self.acc / self.n_rows).tolist()
            new_lr = self.lr.tolist()
            for i, s in enumerate(state):
                if s.running:
                    s.epoch_end(losses[i], self.n_list[i], new_lr, i)
            self.lr.copy_(torch.tensor(new_lr, dtype=self.dtype))
            self.active.copy_(torch.tensor([float(s.running) for s in state], dtype=self.dtype))
        self._write_back(state)

    def _write_back(self, state):
        for i, (m, s) in enumerate(zip(self.members, state)):
            est = m.est
            with torch.no_grad():
                for layer, lin in enumerate(est.net_.module_.layers):
                    W = self.W[layer][i, : lin.in_features, : lin.out_features]
                    lin.weight.copy_(W.T)
                    lin.bias.copy_(self.b[layer][i, 0, : lin.out_features])
            s.finish(est)
            est._export_weights()


class _MemberState:
    """scikit-learn's per-epoch bookkeeping and stopping rule for one member."""

    def __init__(self, est):
        self.est = est
        self.running = True
        self.converged = False
        self.error = None

    def epoch_end(self, loss, n_rows, lrs, i):
        est = self.est
        if not np.isfinite(loss):
            try:
                est._check_finite(loss)
            except ValueError as exc:
                self.error = exc
            self.running = False
            return
        est.n_iter_ += 1
        est.loss_ = loss
        est.t_ += n_rows
        est.loss_curve_.append(loss)
        if loss > est.best_loss_ - est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if loss < est.best_loss_:
            est.best_loss_ = loss
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            lrs[i] = est.learning_rate_init / (est.t_ + 1) ** est.power_t
        if est._no_improvement_count > est.n_iter_no_change:
            if est.solver == "sgd" and est.learning_rate == "adaptive" and lrs[i] > 1e-6:
                lrs[i] = lrs[i] / 5.0
                est._no_improvement_count = 0
            else:
                self.running = False
                self.converged = True
                return
        if est.n_iter_ == est.max_iter:
            self.running = False

    def finish(self, est):
        est._sknets_converged = self.converged
        est._sknets_error = self.error
        history = est.net_.history
        for loss in est.loss_curve_:
            history.new_epoch()
            history.record("epoch", len(history))
            history.record("train_loss", loss)
