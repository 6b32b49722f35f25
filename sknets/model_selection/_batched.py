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
import warnings
from collections import defaultdict

import numpy as np
import torch

from .._base import NON_FINITE, SMALL_STEP, intra_op_threads
from .._engine import LOSSES, OUT_ACTIVATIONS, StepGraphs
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
    if estimator.dropout > 0:
        return "dropout > 0"
    if estimator.warm_start:
        return "warm_start=True"
    if estimator.precision == "bfloat16":
        return "precision='bfloat16'"
    return None


def _structure(est, n_rows, n_features, targets, pad):
    """Members with equal structure keys train together."""
    params = est.get_params(deep=False)
    shared = tuple(sorted((k, repr(v)) for k, v in params.items() if k not in PER_MEMBER))
    device = est.net_.torch_device
    if pad is None:
        # a GPU runs padded members in parallel for free; on a CPU padding
        # is real work, so there only members of equal widths train together
        pad = device.type == "cuda"
    widths = () if pad else tuple(est._hidden_sizes())
    return (
        widths,
        type(est).__name__,
        shared,
        len(est._hidden_sizes()),
        est._resolved_batch_size(n_rows),
        n_features,
        est.n_outputs_,
        targets.dtype.str,
        str(est.net_.torch_device),
        str(est.net_.dtype),
    )


def _split(member):
    """The training and validation rows of a member's separate fit."""
    est = member.est
    if not est.early_stopping:
        return np.arange(len(member.X)), None
    return est._early_stopping_split(member.targets, member.seed)


class Member:
    """One fit: an estimator set up by ``_prepare_fit`` (initialised net) and
    its encoded training data."""

    def __init__(self, estimator, X, targets, seed, slot):
        self.est = estimator
        self.X = X
        self.targets = targets
        self.seed = seed
        self.slot = slot


def train_members(members, chunk_members=None, pad=None):
    """Train every member; results are written into each member's estimator.

    Returns the number of batched networks. ``pad`` says whether members of
    different hidden widths share a network (padded); None: on CUDA only.
    """
    groups = defaultdict(list)
    for m in members:
        try:
            train, val = _split(m)
        except ValueError as exc:  # the separate fit's error, raised when adopted
            m.est._sknets_error = exc
            m.est._sknets_converged = False
            continue
        groups[_structure(m.est, len(train), m.X.shape[1], m.targets, pad)].append(m)
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
    """Members of one structure, trained as one network.

    All parameters of all members live in one ``(M, P)`` tensor (and their
    gradients in another), so that the optimizer update is a handful of
    kernels whatever the depth; each layer's weights are views into it.
    scikit-learn's stopping rule runs on the device too, so an epoch needs
    no synchronisation: the per-epoch losses are read once, at the end (on
    CUDA) or once per epoch (on CPUs, where reading is free).
    """

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
        self.early_stopping = est0.early_stopping
        self.train_rows, val_rows = [], []
        for m in members:
            train, val = _split(m)
            self.train_rows.append(torch.as_tensor(train, dtype=torch.int64))
            val_rows.append(val)
        self.n_list = [len(rows) for rows in self.train_rows]
        self.n_rows = torch.tensor(self.n_list, dtype=torch.float64, device=device)
        n_max = max(len(m.X) for m in members)
        n_feat = first.X.shape[1]
        Xs = torch.zeros((len(slots), n_max, n_feat), dtype=dtype)
        t0 = first.targets
        y_dtype = torch.int64 if t0.dtype.kind in "iu" else dtype
        Ys = torch.zeros((len(slots), n_max, *t0.shape[1:]), dtype=y_dtype)
        for index, m in slots.values():
            Xs[index, : len(m.X)] = torch.as_tensor(np.asarray(m.X, dtype=np.float64), dtype=dtype)
            Ys[index, : len(m.X)] = torch.as_tensor(m.targets).to(Ys.dtype)
        self.X = Xs.reshape(-1, n_feat).to(device)
        self.Y = Ys.reshape(-1, *t0.shape[1:]).to(device)
        self.offset = (torch.tensor(slot_of) * n_max).to(device)
        self.batch = first.est._resolved_batch_size(self.n_list[0])
        self.steps = math.ceil(max(self.n_list) / self.batch)

        # --- parameters: flat (M, P), padded; copied from each member's net
        hidden = max_widths(members)
        widths = [n_feat, *hidden, est0.n_outputs_]
        self.layout, P = [], 0
        for fan_in, fan_out in zip(widths, widths[1:]):
            self.layout.append((P, fan_in, fan_out))
            P += fan_in * fan_out + fan_out
        flat = torch.zeros((M, P), dtype=dtype)
        decayed = torch.zeros(P, dtype=dtype)  # 1 on weight matrices, 0 on biases
        masks = []
        for layer, (off, fan_in, fan_out) in enumerate(self.layout):
            W = flat[:, off : off + fan_in * fan_out].view(M, fan_in, fan_out)
            b = flat[:, off + fan_in * fan_out : off + fan_in * fan_out + fan_out]
            decayed[off : off + fan_in * fan_out] = 1
            mask = torch.zeros((M, 1, fan_out), dtype=dtype)
            for i, m in enumerate(members):
                lin = m.est.net_.module_.layers[layer]
                W[i, : lin.in_features, : lin.out_features] = lin.weight.detach().T.cpu()
                b[i, : lin.out_features] = lin.bias.detach().cpu()
                mask[i, 0, : lin.out_features] = 1
            masks.append(mask.to(device))
        self.masks = masks
        self.flat = flat.to(device)
        self.grad = torch.zeros_like(self.flat)
        self.decayed = decayed.to(device)
        # leaves that share the flat storage; their gradients are views of
        # self.grad, into which autograd accumulates in place
        self.W, self.b = [], []
        for off, fan_in, fan_out in self.layout:
            end = off + fan_in * fan_out
            for dest, view, gview in (
                (self.W, self.flat[:, off:end].view(M, fan_in, fan_out),
                 self.grad[:, off:end].view(M, fan_in, fan_out)),
                (self.b, self.flat[:, end : end + fan_out].view(M, 1, fan_out),
                 self.grad[:, end : end + fan_out].view(M, 1, fan_out)),
            ):
                leaf = view.detach().requires_grad_()
                leaf.grad = gview
                dest.append(leaf)

        # --- per-member settings, as (M, 1) columns
        def per(name, dtype=dtype):
            values = [float(getattr(m.est, name)) for m in members]
            return torch.tensor(values, dtype=dtype, device=device)[:, None]

        self.lr_init = per("learning_rate_init", torch.float64)[:, 0]
        self.lr64 = self.lr_init.clone()
        self.lr = per("learning_rate_init")
        self.alpha = per("alpha")
        self.beta1, self.beta2, self.eps = per("beta_1"), per("beta_2"), per("epsilon")
        self.momentum = per("momentum")
        self.nesterov = torch.tensor(
            [bool(m.est.nesterovs_momentum) and m.est.momentum > 0 for m in members],
            device=device,
        )[:, None]
        self.live = torch.ones((M, 1), dtype=dtype, device=device)
        self.step_count = torch.zeros((M, 1), dtype=dtype, device=device)
        self.state1 = torch.zeros_like(self.flat)
        self.state2 = torch.zeros_like(self.flat)
        self.acc = torch.zeros(M, dtype=dtype, device=device)

        # --- scikit-learn's stopping rule, on the device, in float64
        f64 = dict(dtype=torch.float64, device=device)
        self.tol = per("tol", torch.float64)[:, 0]
        self.patience = per("n_iter_no_change", torch.float64)[:, 0]
        self.max_iter = per("max_iter", torch.float64)[:, 0]
        self.power_t = per("power_t", torch.float64)[:, 0]
        self.best = torch.full((M,), math.inf, **f64)
        self.no_improvement = torch.zeros(M, **f64)
        self.n_iter = torch.zeros(M, **f64)
        self.running = torch.ones(M, dtype=torch.bool, device=device)
        self.max_epochs = max(m.est.max_iter for m in members)
        self.curve = torch.zeros((self.max_epochs, M), **f64)

        # batch orders: one CPU generator per member, seeded as its separate
        # fit's, drawn on the host and copied to the device once per epoch
        self.generators = [torch.Generator().manual_seed(int(m.seed)) for m in members]
        capture = device.type == "cuda"
        self.runner = StepGraphs(self._body, self._zero_grad, capture=capture)
        if self.early_stopping:
            self._setup_validation(val_rows)

    def _setup_validation(self, val_rows):
        device, M = self.device, self.M
        nv_max = max(len(v) for v in val_rows)
        rows = torch.full((M, nv_max), -1, dtype=torch.int64)
        for i, v in enumerate(val_rows):
            rows[i, : len(v)] = torch.as_tensor(v, dtype=torch.int64)
        self.val_valid = (rows >= 0).to(device)
        self.val_rows = (rows.clamp(min=0).to(device) + self.offset[:, None])
        self.n_val = self.val_valid.sum(1).to(torch.float64)
        self.scores = torch.zeros((self.max_epochs, M), dtype=torch.float64, device=device)
        self.best = torch.full((M,), -math.inf, dtype=torch.float64, device=device)
        self.best_flat = self.flat.clone()
        est0 = self.members[0].est
        self.out_activation = est0.out_activation_
        self.is_classifier = isinstance(est0, MLPClassifier)

    @torch.no_grad()
    def _validation_scores(self):
        """Each member's validation score, as its separate fit computes it:
        accuracy (subset accuracy for multilabel) or R²."""
        h = self.X[self.val_rows]
        y = self.Y[self.val_rows]
        for layer in range(len(self.W)):
            h = torch.baddbmm(self.b[layer], h, self.W[layer])
            if layer < len(self.W) - 1:
                h = self.act(h) * self.masks[layer]
        valid = self.val_valid.to(torch.float64)
        if self.is_classifier:
            if self.out_activation == "softmax":
                correct = h.argmax(-1) == y
            else:
                correct = ((h > 0) == (y > 0.5)).all(-1)
            return (correct.to(torch.float64) * valid).sum(1) / self.n_val
        pred = OUT_ACTIVATIONS[self.out_activation](h).to(torch.float64)
        y = y.to(torch.float64)
        w = valid[:, :, None]
        mean = (y * w).sum(1, keepdim=True) / self.n_val[:, None, None]
        ss_res = (((y - pred) ** 2) * w).sum(1)
        ss_tot = (((y - mean) ** 2) * w).sum(1)
        # scikit-learn's r2_score with force_finite=True, averaged over outputs
        r2 = torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp(min=1e-300),
                         torch.where(ss_res > 0, 0.0, 1.0))
        return r2.mean(1)

    def _zero_grad(self):
        self.grad.zero_()

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
        with warnings.catch_warnings():
            # the leaves are strided views of the flat parameters, on purpose:
            # autograd warns that their layout is not dense
            warnings.filterwarnings("ignore", message="grad and param do not obey")
            member_loss.sum().backward()
        with torch.no_grad():
            decay = self.alpha / safe_n[:, None]
            sq = (self.flat.square() * self.decayed).sum(1)
            self.acc.add_((member_loss.detach() + 0.5 * decay[:, 0] * sq) * n_valid)
            live = self.live * (n_valid > 0).to(self.dtype)[:, None]
            self._update(live, decay)

    def _update(self, live, decay):
        """Adam or SGD as torch.optim computes them, for every member at
        once; members with ``live == 0`` are left unchanged."""
        p, g = self.flat, self.grad
        g.addcmul_(decay * self.decayed, p)  # the L2 penalty, on weights only
        if self.solver == "adam":
            self.step_count.add_(live)
            step = self.step_count.clamp(min=1)
            m, v = self.state1, self.state2
            m.addcmul_(g - m, (1 - self.beta1) * live)
            v.addcmul_(g * g - v, (1 - self.beta2) * live)
            bias1 = 1 - self.beta1**step
            bias2_sqrt = (1 - self.beta2**step).sqrt()
            denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
            p.sub_(m / denom * (self.lr / bias1 * live))
        else:
            buf = self.state1
            mom = self.momentum
            new_buf = mom * buf + g
            buf.copy_(torch.where(live > 0, new_buf, buf))
            direction = torch.where(self.nesterov, g + mom * new_buf, new_buf)
            p.sub_(direction * (self.lr * live))

    def _epoch_orders(self):
        """This epoch's ``(steps, M, batch)`` row indices (-1 = padding)."""
        rows = torch.full((self.M, self.steps * self.batch), -1, dtype=torch.int64)
        for i, (train, gen) in enumerate(zip(self.train_rows, self.generators)):
            n = len(train)
            rows[i, :n] = train[torch.randperm(n, generator=gen)] if self.shuffle else train
        rows = rows.view(self.M, self.steps, self.batch).transpose(0, 1).contiguous()
        if self.device.type == "cuda":
            return rows.pin_memory().to(self.device, non_blocking=True)
        return rows.to(self.device)

    def _epoch_end(self, epoch):
        """scikit-learn's per-epoch rule for every member, on the device."""
        loss = self.acc.to(torch.float64) / self.n_rows
        self.curve[epoch] = loss
        run = self.running
        if self.early_stopping:
            score = self._validation_scores()
            self.scores[epoch] = score
            worse = score < self.best + self.tol
            improved = run & (score > self.best)
            self.best = torch.where(improved, score, self.best)
            self.best_flat.copy_(torch.where(improved[:, None], self.flat, self.best_flat))
        else:
            worse = loss > self.best - self.tol
            self.best = torch.where(run & (loss < self.best), loss, self.best)
        self.no_improvement = torch.where(
            run, torch.where(worse, self.no_improvement + 1, 0.0), self.no_improvement
        )
        self.n_iter = self.n_iter + run.to(torch.float64)
        stalled = run & (self.no_improvement > self.patience)
        if self.solver == "sgd" and self.schedule == "adaptive":
            shrink = stalled & (self.lr64 > 1e-6)
            self.lr64 = torch.where(shrink, self.lr64 / 5.0, self.lr64)
            self.no_improvement = torch.where(shrink, 0.0, self.no_improvement)
            stalled = stalled & ~shrink
        if self.solver == "sgd" and self.schedule == "invscaling":
            t = self.n_iter * self.n_rows
            self.lr64 = torch.where(run, self.lr_init / (t + 1) ** self.power_t, self.lr64)
        stop = stalled | (self.n_iter >= self.max_iter) | ~torch.isfinite(loss)
        if self.early_stopping:
            stop = stop | ~torch.isfinite(score)
        self.running = run & ~stop
        self.live.copy_(self.running[:, None])
        self.lr.copy_(self.lr64[:, None])

    def train(self):
        if self.device.type == "cpu":
            P = self.flat.shape[1]
            threads = 1 if self.batch * P < SMALL_STEP else torch.get_num_threads()
            with intra_op_threads(threads):
                return self._train()
        return self._train()

    def _train(self):
        check_every = 1 if self.device.type == "cpu" else 8
        for epoch in range(self.max_epochs):
            if epoch % check_every == 0 and epoch and not bool(self.running.any()):
                break
            self.acc.zero_()
            self.runner.run_steps(self._epoch_orders())
            self._epoch_end(epoch)
        curve = self.curve.cpu().numpy()
        scores = self.scores.cpu().numpy() if self.early_stopping else None
        state = []
        for i, m in enumerate(self.members):
            s = _MemberState(m.est)
            for epoch in range(self.max_epochs):
                if not s.running:
                    break
                score = None if scores is None else float(scores[epoch, i])
                s.epoch_end(float(curve[epoch, i]), score, self.n_list[i])
            state.append(s)
        if self.early_stopping:
            # as a separate fit: the weights of the best validation score
            self.flat.copy_(self.best_flat)
        self._write_back(state)

    def _write_back(self, state):
        flat = self.flat.detach().cpu()
        for i, (m, s) in enumerate(zip(self.members, state)):
            est = m.est
            with torch.no_grad():
                for (off, fan_in, fan_out), lin in zip(self.layout, est.net_.module_.layers):
                    W = flat[i, off : off + fan_in * fan_out].view(fan_in, fan_out)
                    end = off + fan_in * fan_out
                    lin.weight.copy_(W[: lin.in_features, : lin.out_features].T)
                    lin.bias.copy_(flat[i, end : end + lin.out_features])
            s.finish(est)
            est._export_weights()


class _MemberState:
    """scikit-learn's per-epoch bookkeeping and stopping rule for one member."""

    def __init__(self, est):
        self.est = est
        self.lr = float(est.learning_rate_init)  # what 'adaptive' divides
        self.running = True
        self.converged = False
        self.improved = False
        self.error = None

    def epoch_end(self, loss, score, n_rows):
        """The epoch as the member's separate fit records it (the same
        :meth:`_record_epoch`), and whether the member goes on."""
        est = self.est
        diverged = not np.isfinite(loss) or (score is not None and not np.isfinite(score))
        if diverged and not est.early_stopping:
            try:
                est._check_finite(loss)
            except ValueError as exc:
                self.error = exc
            self.running = False
            return
        if diverged:
            # the separate fit goes on to max_iter with non-finite weights,
            # recording NaN, then keeps its best weights: record the same
            while est.n_iter_ < est.max_iter:
                est._record_epoch(float(loss), n_rows, np.nan)
            self.running = False
            return
        self.improved |= bool(est._record_epoch(loss, n_rows, score))
        if est._no_improvement_count > est.n_iter_no_change:
            if est.solver == "sgd" and est.learning_rate == "adaptive" and self.lr > 1e-6:
                self.lr /= 5.0
                est._no_improvement_count = 0
            else:
                self.running = False
                self.converged = True
                return
        if est.n_iter_ == est.max_iter:
            self.running = False

    def finish(self, est):
        if self.error is None and est.early_stopping and not self.improved:
            self.error = ValueError(
                f"{NON_FINITE} The validation score was never finite: the network "
                "diverged. Lower learning_rate_init or scale X."
            )
        if self.error is None:
            try:
                est._check_weights()
            except ValueError as exc:
                self.error = exc
        est._sknets_converged = self.converged
        est._sknets_error = self.error
        history = est.net_.history
        for loss in est.loss_curve_:
            history.new_epoch()
            history.record("epoch", len(history))
            history.record("train_loss", loss)
