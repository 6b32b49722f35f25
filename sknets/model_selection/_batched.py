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
import time
import warnings
from collections import defaultdict

import numpy as np
import torch

from .._closed_form import adam_update, rmsprop_update, sgd_update
from .._conv import ConvClassifier, ConvRegressor
from .._engine import StepGraphs
from .._mlp import MLPClassifier, MLPRegressor
from .._modules import _mix32, _mix32_light, _position_hashes, row_keys
from .._registry import ACTIVATIONS, LOSSES, OUT_ACTIVATIONS, SOLVERS
from .._rules import EpochRules
from .._threads import cpu_fit_state
from .._training import Trainer

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
    "class_weight",
}

#: Estimators whose fits can be batched (the conv networks by
#: :mod:`sknets.model_selection._batched_conv`).
BATCHABLE = (MLPClassifier, MLPRegressor, ConvClassifier, ConvRegressor)

#: On a CPU, each training step of each member costs, beyond the
#: multiply-adds of its forward and backward passes, about as much as this
#: many multiply-adds: its own optimizer update and batch gathers (about
#: 50 µs, at about 11 multiply-adds per ns; ``benchmarks/member_cost.py``
#: fitted 518,000 over 5 widths, 2 batch sizes and 5 to 45 members, and an
#: earlier probe 670,000, benchmarks/RESULTS.md). On a GPU the members' steps are
#: the same few kernels, and it is 0.
CPU_MEMBER_STEP = 600_000


def n_parameters(widths):
    """The weights and biases of a network of layer ``widths``."""
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def training_cost(epochs, rows, batch, widths, cpu=True):
    """An estimate of the work of training one member, in multiply-adds:
    ``epochs`` epochs over ``rows`` rows in batches of ``batch``, of a
    network of layer ``widths`` (input, hidden..., output), forward and
    backward, plus :data:`CPU_MEMBER_STEP` per step on a CPU (``cpu``).

    It weighs the members' shares of a chunk's wall time
    (:func:`train_plans`) and sizes the chunks of a search on several
    workers (:func:`sknets.model_selection._distributed.chunk_members`).
    """
    steps = math.ceil(rows / max(1, batch))
    return int(epochs) * (3 * rows * n_parameters(widths) + (steps * CPU_MEMBER_STEP if cpu else 0))


def why_not_batched(estimator):
    """The reason a fit of ``estimator`` cannot be batched, or None."""
    if type(estimator) not in BATCHABLE:
        names = ", ".join(cls.__name__ for cls in BATCHABLE[:-1])
        return f"{type(estimator).__name__} is not a sknets {names} or {BATCHABLE[-1].__name__}"
    if not SOLVERS[estimator.solver].batched:
        batched = [name for name, s in SOLVERS.items() if s.batched]
        return f"solver={estimator.solver!r} (batched: {', '.join(map(repr, batched))})"
    if estimator.warm_start:
        return "warm_start=True"
    if estimator.precision == "bfloat16":
        return "precision='bfloat16'"
    return None


def _structure(plan, pad):
    """Members with equal structure keys train together."""
    shared = tuple(sorted((k, repr(v)) for k, v in plan.params.items() if k not in PER_MEMBER))
    conv = None
    if plan.module is not None:
        # a conv network: its members share their widths and their module
        from ._batched_conv import structure_key

        conv, pad = structure_key(plan), False
    if pad is None:
        # a GPU runs padded members in parallel for free; on a CPU padding
        # is real work, so there only members of equal widths train together
        pad = plan.device.type == "cuda"
    return (
        () if pad else plan.hidden,
        plan.estimator_type,
        shared,
        len(plan.hidden),
        plan.batch_size,
        plan.X.shape[1],
        plan.n_outputs,
        plan.targets.dtype.str,
        str(plan.device),
        str(plan.dtype),
        conv,
    )


def train_plans(plans, slots=None, chunk_members=None, pad=None):
    """Train every :class:`~sknets._seam.TrainingPlan` as batched networks.

    Returns ``(results, n_structures)``: a :class:`~sknets._seam.TrainingResult`
    per plan, in order, and the number of structures (networks, before
    splitting them into chunks of members). ``slots`` names
    each plan's training set (plans of one slot share their rows on the
    device; default: one slot per plan). ``pad`` says whether members of
    different hidden widths share a network (padded); None: on CUDA only.

    Each result's ``fit_time`` is its member's share of the wall time of the
    chunk it trained in (set-up, epochs and read-back), in proportion to its
    :func:`training_cost` over the epochs it trained: the shares of a chunk
    sum to its time.
    """
    slots = list(range(len(plans))) if slots is None else list(slots)
    groups = defaultdict(list)
    for i, plan in enumerate(plans):
        groups[_structure(plan, pad)].append(i)
    results = [None] * len(plans)
    for indices in groups.values():
        group = [plans[i] for i in indices]
        if group[0].module is not None:
            from ._batched_conv import _ConvGroup, members_per_chunk

            trainer, size = _ConvGroup, chunk_members or members_per_chunk(group)
        else:
            trainer, size = _BatchedGroup, chunk_members or _members_per_chunk(group)
        for start in range(0, len(indices), size):
            chunk = indices[start : start + size]
            trained = trainer([plans[i] for i in chunk], [slots[i] for i in chunk]).train()
            for i, result in zip(chunk, trained):
                results[i] = result
    return results, len(groups)


def _members_per_chunk(group):
    """How many members fit in a quarter of the free device memory."""
    plan = group[0]
    widths = [plan.X.shape[1], *max_widths(group), plan.n_outputs]
    n_params = n_parameters(widths)
    rows = max(len(p.X) for p in group)
    batch = min(rows, plan.batch_size)
    per_member = 8 * (5 * n_params + 4 * batch * sum(widths) + rows * widths[0])
    if plan.device.type == "cuda":
        free = torch.cuda.mem_get_info(plan.device)[0]
    else:
        free = 4 * 2**30
    return max(1, int(0.25 * free // per_member))


def max_widths(group):
    return [max(p.hidden[i] for p in group) for i in range(len(group[0].hidden))]


def _device_rows(X, dtype, device):
    """A plan's X on the device: a tensor (scikit-learn's array API) goes
    there as it is, without a copy through the host."""
    if isinstance(X, torch.Tensor):
        return X.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(X, dtype=np.float64), dtype=dtype).to(device)


class _BatchedGroup:
    """Members of one structure, trained as one network.

    All parameters of all members live in one ``(M, P)`` tensor (and their
    gradients in another), so that the optimizer update is a handful of
    kernels whatever the depth; each layer's weights are views into it.
    scikit-learn's stopping rule runs on the device too, so an epoch needs
    no synchronisation: the per-epoch losses are read once, at the end (on
    CUDA) or once per epoch (on CPUs, where reading is free).
    """

    def __init__(self, plans, slots):
        # the chunk's wall time counts from here: set-up, epochs, read-back
        self.started = time.perf_counter()
        self.plans = plans
        first = plans[0]
        self.M = M = len(plans)
        self.device = device = first.device
        self.dtype = dtype = first.dtype
        self.act = ACTIVATIONS[first.activation]()
        self.loss_fn = LOSSES[first.loss].fn
        # the closed-form backward pass (as sknets._closed_form's), where the
        # activation and the loss have one; autograd otherwise
        self.act_backward = ACTIVATIONS[first.activation].backward
        self.loss_grad = LOSSES[first.loss].grad
        self.closed_form = self.act_backward is not None and self.loss_grad is not None
        self.solver = first.solver
        self.shuffle = first.shuffle
        # keyed dropout (sknets._modules.Dropout): the masks of each member's
        # separate fit, from its rows' keys, its stream's seed and its steps
        self.dropout = float(first.params.get("dropout", 0.0))
        if self.dropout > 0:
            self.closed_form = False  # autograd, through the masks

        # --- data: one slot per distinct training set, padded to n_max rows
        self._setup_data(plans, slots)
        n_feat = first.X.shape[1]
        if self.dropout > 0:
            self.keys = row_keys(self.X)
            # each member's module is reseeded with its call's seed + 1 (_BaseNet._fit)
            seeds = [(int(p.seed) + 1) % (2**31 - 1) for p in plans]
            self.stream_seed = _mix32(torch.tensor(seeds, dtype=torch.int64, device=device))
            self.stream_step = torch.zeros(M, dtype=torch.int64, device=device)

        # --- parameters: flat (M, P), padded; copied from each member's net
        hidden = max_widths(plans)
        widths = [n_feat, *hidden, first.n_outputs]
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
            for i, p in enumerate(plans):
                weight, bias = p.layers[layer]
                out_features, in_features = weight.shape
                W[i, :in_features, :out_features] = weight.T
                b[i, :out_features] = bias
                mask[i, 0, :out_features] = 1
            masks.append(mask.to(device))
        self.masks = masks
        self.padded = any(bool((m < 1).any()) for m in masks)
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

        self._setup_members(plans)

        # batch orders: one CPU generator per member, seeded as its separate
        # fit's, drawn on the host and copied to the device once per epoch
        self.generators = [torch.Generator().manual_seed(int(p.seed)) for p in plans]
        capture = device.type == "cuda"
        self.runner = StepGraphs(self._body, self._zero_grad, capture=capture)
        if self.early_stopping:
            self._setup_validation([p.val_rows for p in plans])

    def _setup_data(self, plans, slots, rows_device="cpu"):
        """The members' data on the device: one slot per distinct training
        set (``slots``), padded to the longest, as ``self.X`` / ``self.Y``
        rows with each member's ``offset`` into them; each member's
        training rows (on ``rows_device``), their counts, its sample
        weights (``class_weight``: the weighted mean loss and the penalty
        over the batch's weight of its separate fit), and the batch size and
        steps of an epoch."""
        M, dtype, device, first = self.M, self.dtype, self.device, plans[0]
        index_of, slot_of = {}, []
        for plan, slot in zip(plans, slots):
            slot_of.append(index_of.setdefault(slot, (len(index_of), plan))[0])
        self.early_stopping = first.early_stopping
        self.train_rows = [
            torch.as_tensor(p.train_rows, dtype=torch.int64).to(rows_device) for p in plans
        ]
        self.n_list = [len(rows) for rows in self.train_rows]
        self.n_rows = torch.tensor(self.n_list, dtype=torch.float64, device=device)
        n_max = max(len(p.X) for p in plans)
        n_feat = first.X.shape[1]
        Xs = torch.zeros((len(index_of), n_max, n_feat), dtype=dtype, device=device)
        t0 = first.targets
        y_dtype = torch.int64 if t0.dtype.kind in "iu" else dtype
        Ys = torch.zeros((len(index_of), n_max, *t0.shape[1:]), dtype=y_dtype)
        for index, p in index_of.values():
            Xs[index, : len(p.X)] = _device_rows(p.X, dtype, device)
            Ys[index, : len(p.X)] = torch.as_tensor(p.targets).to(Ys.dtype)
        self.X = Xs.reshape(-1, n_feat)
        self.Y = Ys.reshape(-1, *t0.shape[1:]).to(device)
        self.weighted = any(p.sample_weight is not None for p in plans)
        if self.weighted:
            Wt = torch.ones((M, n_max), dtype=dtype)
            for i, p in enumerate(plans):
                if p.sample_weight is not None:
                    Wt[i, : len(p.X)] = torch.as_tensor(p.sample_weight, dtype=dtype)
            self.Wt = Wt.to(device)
        self.offset = (torch.tensor(slot_of) * n_max).to(device)
        self.batch = first.batch_size
        self.steps = math.ceil(max(self.n_list) / self.batch)

    def _setup_members(self, plans):
        """Each member's settings as ``(M, 1)`` columns, the optimizer's
        state, and scikit-learn's per-epoch rules (:mod:`sknets._rules`),
        on the device (with the flat parameters ``self.flat`` in place)."""
        M, dtype, device, first = self.M, self.dtype, self.device, plans[0]

        def per(name, dtype=dtype):
            values = [float(getattr(p, name)) for p in plans]
            return torch.tensor(values, dtype=dtype, device=device)[:, None]

        self.lr = per("learning_rate_init")
        # the L2 penalty (in the loss and its gradient), or AdamW's
        # decoupled decay of the weights (in the update, not the loss)
        decoupled = SOLVERS[self.solver].decoupled_decay
        self.wd = per("alpha") if decoupled else None
        self.alpha = torch.zeros_like(self.lr) if decoupled else per("alpha")
        self.beta1, self.beta2, self.eps = per("beta_1"), per("beta_2"), per("epsilon")
        self.momentum = per("momentum")
        self.nesterov = torch.tensor([p.nesterov for p in plans], device=device)[:, None]
        self.live = torch.ones((M, 1), dtype=dtype, device=device)
        self.step_count = torch.zeros((M, 1), dtype=dtype, device=device)
        self.state1 = torch.zeros_like(self.flat)
        self.state2 = torch.zeros_like(self.flat)
        self.acc = torch.zeros(M, dtype=dtype, device=device)
        # on a CPU, each member's update is torch's fused kernel on its row
        # of the flat tensors (one pass over its parameters, as its separate
        # fit's optimizer.step()); elsewhere the vectorised update below
        self.per_member = device.type == "cpu" and self.per_member_on_cpu
        if self.per_member:
            self.rows_of = [self._member_lists(i) for i in range(M)]
            self.settings = [
                (p.beta_1, p.beta_2, p.epsilon, p.momentum, bool(p.nesterov),
                 float(p.alpha)) for p in plans
            ]

        # --- scikit-learn's per-epoch rules (sknets._rules), on the device
        def column(name):
            return [getattr(p, name) for p in plans]

        self.rules = EpochRules(
            column("tol"),
            column("n_iter_no_change"),
            column("learning_rate_init"),
            column("power_t"),
            first.schedule,
            first.early_stopping,
            device=device,
        )
        self.max_iter = column("max_iter")

    def _setup_validation(self, val_rows):
        device, M = self.device, self.M
        nv_max = max(len(v) for v in val_rows)
        rows = torch.full((M, nv_max), -1, dtype=torch.int64)
        for i, v in enumerate(val_rows):
            rows[i, : len(v)] = torch.as_tensor(v, dtype=torch.int64)
        self.val_valid = (rows >= 0).to(device)
        # each validation row's weight (0 for padding), and their sums
        self.val_w = self.val_valid.to(torch.float64)
        if self.weighted:
            own = self.Wt.gather(1, rows.clamp(min=0).to(device)).to(torch.float64)
            self.val_w = self.val_w * own
        self.val_rows = (rows.clamp(min=0).to(device) + self.offset[:, None])
        self.n_val = self.val_w.sum(1)
        self.best_flat = self.flat.clone()
        self.out_activation = self.plans[0].out_activation
        self.is_classifier = self.plans[0].is_classifier

    @torch.no_grad()
    def _validation_metrics(self):
        """Each member's validation score and loss, as its separate fit
        computes them: accuracy (subset accuracy for multilabel) or R², and
        the criterion on the validation rows without the penalty, in float64
        (NaN where the member's outputs are not finite)."""
        h = self._forward(self.X[self.val_rows])
        y = self.Y[self.val_rows]
        valid = self.val_w
        M, V = valid.shape
        z = h.to(torch.float64)
        target = y.to(torch.float64) if y.is_floating_point() else y
        per_row = self.loss_fn(z.reshape(M * V, -1), target.reshape(M * V, *y.shape[2:]))
        loss = (per_row.view(M, V) * valid).sum(1) / self.n_val
        finite = (torch.isfinite(z).all(-1) | ~self.val_valid).all(1)
        loss = torch.where(finite, loss, torch.full_like(loss, float("nan")))
        if self.is_classifier:
            if self.out_activation == "softmax":
                correct = h.argmax(-1) == y
            else:
                correct = ((h > 0) == (y > 0.5)).all(-1)
            return (correct.to(torch.float64) * valid).sum(1) / self.n_val, loss
        pred = OUT_ACTIVATIONS[self.out_activation].torch(h).to(torch.float64)
        y = y.to(torch.float64)
        w = valid[:, :, None]
        mean = (y * w).sum(1, keepdim=True) / self.n_val[:, None, None]
        ss_res = (((y - pred) ** 2) * w).sum(1)
        ss_tot = (((y - mean) ** 2) * w).sum(1)
        # scikit-learn's r2_score with force_finite=True, averaged over outputs
        r2 = torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp(min=1e-300),
                         torch.where(ss_res > 0, 0.0, 1.0))
        return r2.mean(1), loss

    def _forward(self, h, keys=None):
        """The members' raw outputs for their rows ``h`` (shape ``(M, B,
        n_features)``): :class:`~sknets._modules.MLPModule`'s forward pass,
        batched over members, padded units masked; in training, with the
        rows' ``keys``, dropout."""
        last = len(self.W) - 1
        for layer in range(last + 1):
            h = torch.baddbmm(self.b[layer], h, self.W[layer])
            if layer < last:
                h = self.act(h) * self.masks[layer]
                if keys is not None:
                    h = h * self._dropout_keep(keys, layer, h.shape[-1])
        return h

    def _dropout_keep(self, keys, site, width):
        """:class:`~sknets._modules.Dropout`'s kept units, scaled by ``1 /
        (1 - p)``, for each member's rows (``keys``, shape ``(M, B)``) at
        dropout site ``site``: the salt of ``RandomStream.salt``, per member."""
        salt = _mix32(self.stream_seed ^ self.stream_step)
        salt = _mix32((salt + 0x9E3779B9 * site) & 0xFFFFFFFF)
        rows = _mix32(keys ^ salt[:, None])
        draws = _mix32_light(rows[..., None] ^ _position_hashes(width, keys.device))
        keep = draws >= int(round(self.dropout * 2**32))
        return keep.to(self.dtype).div_(1 - self.dropout)

    def _zero_grad(self):
        self.grad.zero_()

    def _batch_weights(self, idx, valid):
        """``(weights, rows, total)`` of each member's batch: the weight of
        each of its rows (0 for padding), its number of rows, and the sum
        of the weights (the divisor of its mean loss and of its penalty, at
        least 1 for a member with no rows in this step)."""
        validf = valid.to(self.dtype)
        n_valid = validf.sum(1)
        if not self.weighted:
            return validf, n_valid, n_valid.clamp(min=1)
        weights = self.Wt.gather(1, idx.clamp(min=0)) * validf
        total = weights.sum(1)
        return weights, n_valid, torch.where(n_valid > 0, total, torch.ones_like(total))

    def _body(self, idx):
        """One step of every member on its rows ``idx[m]`` (-1 = padding)."""
        if self.closed_form:
            return self._closed_body(idx)
        self._zero_grad()
        valid = idx >= 0
        rows = idx.clamp(min=0) + self.offset[:, None]
        keys = None
        if self.dropout > 0:
            # a member's stream advances with each step its separate fit takes
            self.stream_step += (valid.any(1) & (self.live[:, 0] > 0)).to(torch.int64)
            keys = self.keys[rows]
        h = self._forward(self.X[rows], keys)
        self._learn(h, rows, *self._batch_weights(idx, valid))

    def _learn(self, h, rows, weights, n_valid, total):
        """The rest of an autograd step, from the members' raw outputs ``h``
        (``(M, B, n_outputs)``) for their ``rows``: each member's weighted
        mean loss, the backward pass, the epoch's loss sums (with the L2
        penalty) and the update of the members that have rows in the step
        (``weights``, ``n_valid``, ``total``: :meth:`_batch_weights`)."""
        M, B = rows.shape
        y = self.Y[rows]
        per_row = self.loss_fn(h.reshape(M * B, -1), y.reshape(M * B, *y.shape[2:]))
        member_loss = (per_row.view(M, B) * weights).sum(1) / total
        with warnings.catch_warnings():
            # the leaves are strided views of the flat parameters, on purpose:
            # autograd warns that their layout is not dense
            warnings.filterwarnings("ignore", message="grad and param do not obey")
            member_loss.sum().backward()
        with torch.no_grad():
            decay = self.alpha / total[:, None]
            sq = (self.flat.square() * self.decayed).sum(1)
            self.acc.add_((member_loss.detach() + 0.5 * decay[:, 0] * sq) * n_valid)
            live = self.live * (n_valid > 0).to(self.dtype)[:, None]
            self._update(live, decay)

    @torch.no_grad()
    def _closed_body(self, idx):
        """:meth:`_body` with the backward pass in closed form: the matrix
        products of back-propagation, batched over members, instead of
        autograd (the same gradients up to rounding)."""
        valid = idx >= 0
        rows = idx.clamp(min=0) + self.offset[:, None]
        M, B = idx.shape
        h = self.X.index_select(0, rows.view(-1)).view(M, B, -1)
        outs = [h]
        last = len(self.W) - 1
        for layer in range(last):
            h = self.act(torch.baddbmm(self.b[layer], h, self.W[layer]))
            if self.padded:
                h = h * self.masks[layer]
            outs.append(h)
        z = torch.baddbmm(self.b[last], h, self.W[last])
        y = self.Y.index_select(0, rows.view(-1))
        per_row, dz = self.loss_grad(z.reshape(M * B, -1), y)
        validf, n_valid, safe_n = self._batch_weights(idx, valid)
        share = validf / safe_n[:, None]
        member_loss = (per_row.view(M, B) * share).sum(1)
        g = dz.view(M, B, -1) * share[:, :, None]
        for layer in range(last, -1, -1):
            h = outs[layer]
            self.W[layer].grad.copy_(torch.bmm(h.transpose(1, 2), g))
            self.b[layer].grad.copy_(g.sum(1, keepdim=True))
            if layer:
                g = torch.bmm(g, self.W[layer].transpose(1, 2))
                if self.padded:
                    g = g * self.masks[layer - 1]
                g = self.act_backward(g, h)
        decay = self.alpha / safe_n[:, None]
        sq = torch.mv(self.flat.square(), self.decayed)
        self.acc.add_((member_loss + 0.5 * decay[:, 0] * sq) * n_valid)
        live = self.live * (n_valid > 0).to(self.dtype)[:, None]
        self._update(live, decay)

    #: on a CPU, update each member with torch's own kernel on its row (as
    #: its separate fit); tests switch it off to check the vectorised update
    per_member_on_cpu = True

    def _member_lists(self, i):
        """Member ``i``'s tensors for torch's kernels: its rows of the flat
        parameters, gradients and states, and a step count per list. AdamW
        decays the weights only, so its weights and biases are two lists,
        as the two parameter groups of its separate fit."""
        rows = [t[i] for t in (self.flat, self.grad, self.state1, self.state2)]
        if self.solver != "adamw":
            return [[[r] for r in rows] + [[torch.zeros((), dtype=torch.float32)]]]
        lists = []
        for weights in (True, False):
            spans = [
                (off, off + fan_in * fan_out) if weights
                else (off + fan_in * fan_out, off + fan_in * fan_out + fan_out)
                for off, fan_in, fan_out in self.layout
            ]
            tensors = [[r[a:b] for a, b in spans] for r in rows]
            steps = [torch.zeros((), dtype=torch.float32) for _ in spans]
            lists.append([*tensors, steps, weights])
        return lists

    def _update(self, live, decay):
        """Adam, AdamW, RMSprop or SGD as torch.optim computes them, for
        every member at once; members with ``live == 0`` are left unchanged."""
        p, g = self.flat, self.grad
        g.addcmul_(decay * self.decayed, p)  # the L2 penalty, on weights only
        if self.per_member:
            return self._update_per_member(live)
        if self.wd is not None:
            # AdamW: the weights decay before the Adam step
            p.mul_(1 - self.lr * self.wd * self.decayed * live)
        if self.solver == "rmsprop":
            self.step_count.add_(live)
            v = self.state1
            v.copy_(torch.where(live > 0, v * 0.9 + 0.1 * g * g, v))
            p.sub_(g / (v.sqrt() + self.eps) * (self.lr * live))
        elif self.solver in ("adam", "adamw"):
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

    def _update_per_member(self, live):
        """The update on a CPU: torch's fused Adam / SGD kernel on each live
        member's row, with its own settings and learning rate."""
        lrs = self.lr[:, 0].tolist()
        solver = self.solver
        for i, alive in enumerate(live[:, 0].tolist()):
            if not alive:
                continue
            beta1, beta2, eps, momentum, nesterov, alpha = self.settings[i]
            if solver == "adamw":
                for p, g, m, v, steps, weights in self.rows_of[i]:
                    adam_update(p, g, m, v, steps, lrs[i], beta1, beta2, eps,
                                alpha if weights else 0.0, decoupled=True)
                continue
            (p, g, m, v, steps), = self.rows_of[i]
            if solver == "adam":
                adam_update(p, g, m, v, steps, lrs[i], beta1, beta2, eps)
            elif solver == "rmsprop":
                # Keras' decay 0.9, as the registry's RMSprop (sknets._registry)
                rmsprop_update(p, g, m, steps, lrs[i], 0.9, eps)
            else:
                sgd_update(p, g, m, lrs[i], momentum, nesterov)

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

    # -- the members, as the trainer (sknets._training) sees them ----------------------

    def run_epoch(self, progress=None):
        """One epoch of every member; their mean training losses, on the
        device (no synchronisation)."""
        self.acc.zero_()
        self.runner.run_steps(self._epoch_orders())
        return self.acc.to(torch.float64) / self.n_rows

    def validation(self):
        return self._validation_metrics()

    def keep_best(self, improved):
        self.best_flat.copy_(torch.where(improved[:, None], self.flat, self.best_flat))

    def restore_best(self):
        # as a separate fit: the weights of the best validation score
        self.flat.copy_(self.best_flat)

    def set_running(self, running):
        self.live.copy_(running[:, None])

    def set_lr(self, lr):
        self.lr.copy_(lr[:, None])

    def train(self):
        """Train the members; returns their :class:`~sknets._seam.TrainingResult`."""
        # the work of one step of all the members
        with cpu_fit_state(self.device, self.batch * self.flat.numel()):
            trainer = Trainer(
                self,
                self.rules,
                max_iter=self.max_iter,
                n_rows=self.n_rows,
                early_stopping=self.early_stopping,
                # reading whether any member runs is a synchronisation on CUDA
                check_every=1 if self.device.type == "cpu" else 8,
            ).run()
        return self._results(trainer)

    def _results(self, trainer):
        """Each member's result, as its separate fit would have ended, with
        its share of the chunk's wall time (see :func:`train_plans`)."""
        flat = self.flat.detach().cpu()
        layers = []
        for i, plan in enumerate(self.plans):
            member = []
            for (off, fan_in, fan_out), (weight, _) in zip(self.layout, plan.layers):
                out_features, in_features = weight.shape
                end = off + fan_in * fan_out
                W = flat[i, off:end].view(fan_in, fan_out)[:in_features, :out_features]
                member.append((W.T.clone(), flat[i, end : end + out_features].clone()))
            layers.append(member)
        results = trainer.results(layers)
        n_iter = trainer.n_iter.cpu().numpy().astype(int)
        # each member's share: the cost of its epochs (a member that stopped
        # early, or is narrower than the widest, did less)
        cpu = self.device.type != "cuda"
        weights = [
            training_cost(max(1, int(n)), len(p.train_rows), p.batch_size,
                          [p.X.shape[1], *p.hidden, p.n_outputs], cpu)
            for n, p in zip(n_iter, self.plans)
        ]
        total = sum(weights)
        seconds = time.perf_counter() - self.started
        for result, weight in zip(results, weights):
            result.fit_time = seconds * (weight / total if total else 1 / self.M)
        return results
