"""Training many convolutional networks at once as one batched network.

The members of :func:`~sknets.model_selection._batched.train_plans` that
are :class:`~sknets.ConvClassifier` or :class:`~sknets.ConvRegressor` fits
of one structure (the same blocks, filters, kernels, pooling, head widths,
batch size, input shape, ...) train together, as the MLPs of
:class:`~sknets.model_selection._batched._BatchedGroup` do:

- every member's parameters live in one ``(M, P)`` tensor, each of the
  module's parameters a view into it, so that the optimizer (Adam, AdamW,
  RMSprop or SGD, per member, as :class:`_BatchedGroup` runs it) is a
  handful of kernels, or torch's fused kernel on each member's row on a CPU;
- the blocks (convolution, batch normalisation, activation, pooling,
  dropout) run in one of two ways (:data:`CONV_PER_MEMBER`). On CUDA all
  members' blocks are one network: a convolution of all members is one
  grouped convolution (``groups=M``) over the members' batches side by side
  in the channels, ``(B, M * C, *spatial)``, and max pooling and the
  activations work on that layout as it is. On a CPU each member's blocks
  run on its own rows, as its separate fit runs them (plain convolutions in
  the fit's channels-last layout, activations of one fit's size, which stay
  in the caches); a grouped convolution costs more per member there than a
  plain one, and activations ``M`` times larger leave the caches;
- the dense head is batched matrix products, as the MLPs';
- batch normalisation normalises each member's channels over its own rows
  only (a step where every member has a full batch, or a member's blocks
  on its own rows, is torch's own kernel; otherwise the rows beyond a
  member's batch weigh 0, as a sample weight of 0 in
  :class:`~sknets._modules.BatchNorm2d`), and updates the running
  statistics of the members that take the step;
- the randomness of each member is its separate fit's: its batch order from
  a generator seeded as its fit's, its random shifts drawn from a generator
  of its module's stream seed, for its own rows, and its keyed dropout masks
  (:class:`~sknets._modules.Dropout`) from its rows' keys, its stream's seed
  and its own count of steps.

scikit-learn's per-epoch rules, early stopping (the validation score and
loss of each member in evaluation mode, on the running statistics) and the
best weights are the trainer's (:class:`~sknets._training.Trainer`). Each
member's result is its module's state dict, which the estimator loads; it
then recomputes its batch-norm statistics as its separate fit does
(:meth:`sknets._conv._ConvMixin._adopt_trained`). The results are those of
separate fits up to floating-point rounding (tested in float64).

The steps run eagerly (each member's shifts are drawn for its own rows;
no CUDA graphs). On a CPU the batched members gain what one loop, one
optimizer step and one batched head save over fits one after another
(``benchmarks/RESULTS.md``); the convolutions' arithmetic is the same.
"""

import functools
import math
import time
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from .._engine import StepGraphs
from .._modules import (
    ConvModule,
    Dropout,
    _mix32,
    _mix32_light,
    _position_hashes,
    penalized_parameters,
    row_keys,
    shift_samples,
    weighted_batch_norm,
)
from .._registry import LOSSES
from ._batched import _BatchedGroup

#: How the members' blocks run: each member's on its own rows, as its
#: separate fit runs them (True), or all members' as one network of grouped
#: convolutions (``groups=M``, False). None: per member on a CPU, where a
#: grouped convolution costs more per member than a plain one and the
#: members' activations together leave the caches (a 2x2 ConvClassifier
#: grid over 3 folds of the digits trained 0.59x to 0.79x as fast as one fit
#: after another with grouped convolutions), and grouped on CUDA, where one
#: kernel for all members is the point of batching.
CONV_PER_MEMBER = None

#: Values of one activation tensor of a chunk of members in evaluation
#: (validation): the validation rows are cut into chunks of at most this
#: many values per activation.
EVAL_VALUES = 2**24


def structure_key(plan):
    """What members of one conv network share beyond the estimator's shared
    parameters: the module's keyword arguments but its seed (the input
    shape among them)."""
    return repr(sorted((k, repr(v)) for k, v in plan.module.items() if k != "seed"))


def _feature_sizes(template):
    """The values per sample of each activation of ``template``'s blocks,
    the input's first."""
    shape = list(template.input_shape)
    sizes = [math.prod(shape)]
    with torch.no_grad():
        x = torch.zeros((2, *shape))
        for m in template.features:
            x = m.eval()(x) if not isinstance(m, Dropout) else x
            sizes.append(x[0].numel())
    return sizes


def members_per_chunk(group):
    """How many conv members fit in a quarter of the free device memory."""
    plan = group[0]
    template = ConvModule(**plan.module)
    n_params = sum(p.numel() for p in template.parameters())
    sizes = _feature_sizes(template)
    rows = max(len(p.X) for p in group)
    batch = min(rows, plan.batch_size)
    head = sum(layer.out_features for layer in template.head.layers)
    itemsize = torch.empty((), dtype=plan.dtype).element_size()
    # parameters, gradients, two moments and the best; about six tensors
    # of each activation while a step runs (its value, masks, gradients);
    # the member's training rows
    per_member = itemsize * (
        5 * n_params + 6 * batch * (sum(sizes) + head) + rows * sizes[0]
    ) + 8 * 2 * batch * max(sizes)  # int64 dropout hashes
    if plan.device.type == "cuda":
        free = torch.cuda.mem_get_info(plan.device)[0]
    else:
        free = 4 * 2**30
    return max(1, int(0.25 * free // per_member))


class _ConvGroup(_BatchedGroup):
    """Conv members of one structure, trained as one network (see the
    module docstring). The optimizer, the members' settings, the epoch loop
    and the validation scores are :class:`_BatchedGroup`'s."""

    def __init__(self, plans, slots):
        self.started = time.perf_counter()
        self.plans = plans
        first = plans[0]
        self.M = M = len(plans)
        self.device = device = first.device
        self.dtype = dtype = first.dtype
        # the structure, read from a module of the first member's
        template = ConvModule(**first.module)
        self.input_shape = template.input_shape
        self.n_axes = len(self.input_shape) - 1
        self.conv_fn = {1: F.conv1d, 2: F.conv2d}[self.n_axes]
        # on a CPU each member's convolution is its own plain one (see
        # CONV_PER_MEMBER); on CUDA one grouped convolution of all members
        self.conv_per_member = device.type == "cpu" if CONV_PER_MEMBER is None else bool(
            CONV_PER_MEMBER)
        # a member's convolution in its separate fit's layout: channels last
        # for images (sknets._engine.FastNet.initialize_module)
        self.conv_format = (
            torch.channels_last if self.n_axes == 2 else torch.contiguous_format)
        smoothing = float(first.params.get("label_smoothing", 0.0) or 0.0)
        loss = LOSSES[first.loss].fn
        self.loss_fn = functools.partial(loss, label_smoothing=smoothing) if smoothing else loss
        self.solver = first.solver
        self.shuffle = first.shuffle
        self.random_shift = template.random_shift
        self.keyed = any(isinstance(m, Dropout) for m in template.modules())

        # --- data: one slot per distinct training set, padded to n_max rows
        # (_BatchedGroup's; the training rows on the device, where the
        # batch orders are drawn)
        self._setup_data(plans, slots, rows_device=device)
        B = self.batch
        if self.keyed or self.random_shift:
            # each member's module is reseeded with its call's seed + 1 (_BaseNet._fit)
            seeds = [(int(p.seed) + 1) % (2**31 - 1) for p in plans]
        if self.keyed:
            self.keys = row_keys(self.X)
            self.stream_seed = _mix32(torch.tensor(seeds, dtype=torch.int64, device=device))
            self.stream_step = torch.zeros(M, dtype=torch.int64, device=device)
        if self.random_shift:
            # the module's own generator, on the device, from its stream's seed
            self.shift_generators = [
                torch.Generator(device=device).manual_seed(seed) for seed in seeds
            ]
        # each member's rows in each step of an epoch (its last batch is smaller)
        self.step_rows = [
            [min(max(n - s * B, 0), B) for n in self.n_list] for s in range(self.steps)
        ]

        # --- parameters: flat (M, P), each of the module's a view into it
        penalized = {id(p) for p in penalized_parameters(template)}
        self.layout, P = {}, 0
        decayed_names = set()
        for name, param in template.named_parameters():
            self.layout[name] = (P, param.numel(), tuple(param.shape))
            P += param.numel()
            if id(param) in penalized:
                decayed_names.add(name)
        flat = torch.zeros((M, P), dtype=dtype)
        decayed = torch.zeros(P, dtype=dtype)
        for name, (off, n, _) in self.layout.items():
            if name in decayed_names:
                decayed[off : off + n] = 1
            for i, p in enumerate(plans):
                flat[i, off : off + n] = p.layers[name].reshape(-1).to(dtype)
        self.decayed_names = decayed_names
        self.flat = flat.to(device)
        self.grad = torch.zeros_like(self.flat)
        self.decayed = decayed.to(device)
        self.leaf = {}
        for name, (off, n, shape) in self.layout.items():
            leaf = self.flat[:, off : off + n].view(M, *shape).detach().requires_grad_()
            leaf.grad = self.grad[:, off : off + n].view(M, *shape)
            self.leaf[name] = leaf
        # buffers (the batch norms' running statistics), stacked
        self.buffers = {}
        for name, buf in template.named_buffers():
            kind = dtype if buf.is_floating_point() else buf.dtype
            self.buffers[name] = torch.stack([p.layers[name].to(kind) for p in plans]).to(device)
        self.state_names = list(template.state_dict().keys())

        # --- the blocks, as ops on (rows, M * channels, *spatial)
        self.ops = []
        for i, m in enumerate(template.features):
            prefix = f"features.{i}."
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                self.ops.append(("conv", prefix, m))
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                self.ops.append(("norm", prefix, m))
            elif isinstance(m, Dropout):
                self.ops.append(("dropout", prefix, m))
            else:  # activation, max pooling: per channel, as they are
                self.ops.append(("apply", prefix, m))
        head = template.head
        self.head_layers = [f"head.layers.{j}." for j in range(len(head.layers))]
        self.head_act = head.activation
        self.head_dropout = head.dropout.p if isinstance(head.dropout, Dropout) else 0.0
        self.head_site = len(template.features)
        self.global_pool = template.global_pool
        self.feature_width = template.head.layers[0].in_features
        self.eval_rows = max(1, EVAL_VALUES // (M * max(_feature_sizes(template))))

        # --- per-member settings, optimizer state and rules (_BatchedGroup's)
        self._setup_members(plans)
        # batch orders: each member's generator, on the device, as its fit's
        # (sknets._engine.FastNet.new_generator)
        self.generators = [
            torch.Generator(device=device).manual_seed(int(p.seed)) for p in plans
        ]
        # (eager steps: the shifts are drawn for each member's own rows)
        self.runner = StepGraphs(self._body, self._zero_grad, capture=False)
        self._step = 0
        if self.early_stopping:
            self._setup_validation([p.val_rows for p in plans])
            self.best_buffers = {k: v.clone() for k, v in self.buffers.items()}

    # -- the optimizer's lists (AdamW: weights and the rest) -------------------------

    def _member_lists(self, i):
        rows = [t[i] for t in (self.flat, self.grad, self.state1, self.state2)]
        if self.solver != "adamw":
            return [[[r] for r in rows] + [[torch.zeros((), dtype=torch.float32)]]]
        lists = []
        for weights in (True, False):
            spans = [
                (off, off + n) for name, (off, n, _) in self.layout.items()
                if (name in self.decayed_names) == weights
            ]
            if not spans:
                continue
            tensors = [[r[a:b] for a, b in spans] for r in rows]
            steps = [torch.zeros((), dtype=torch.float32) for _ in spans]
            lists.append([*tensors, steps, weights])
        return lists

    # -- the forward pass -------------------------------------------------------------

    def _salts(self, site):
        """:meth:`~sknets._modules.RandomStream.salt` of each member, ``(M,)``."""
        salt = _mix32(self.stream_seed ^ self.stream_step)
        return _mix32((salt + 0x9E3779B9 * site) & 0xFFFFFFFF)

    def _keep(self, rows, width, p):
        """:class:`~sknets._modules.Dropout`'s kept values, scaled by ``1 /
        (1 - p)``, of samples with the salted keys ``rows`` (any shape),
        ``width`` values each: shape ``(*rows.shape, width)``."""
        draws = _mix32_light(_mix32(rows)[..., None] ^ _position_hashes(width, rows.device))
        return (draws >= int(round(p * 2**32))).to(self.dtype).div_(1 - p)

    def _norm(self, h, prefix, m, train):
        """Batch normalisation of ``h`` (``(R, M * C, *spatial)``) with each
        member's statistics: its batch's (``train``) or its running ones."""
        M, C = self.M, m.num_features
        mean_buf = self.buffers[prefix + "running_mean"]
        var_buf = self.buffers[prefix + "running_var"]
        weight, bias = self.leaf[prefix + "weight"], self.leaf[prefix + "bias"]
        if train is None:
            return F.batch_norm(h, mean_buf.view(-1), var_buf.view(-1), weight.reshape(-1),
                                bias.reshape(-1), False, 0.0, m.eps)
        run = train.running[:, None]
        self.buffers[prefix + "num_batches_tracked"] += train.running.to(torch.int64)
        if train.full:
            # every member has a full batch: torch's kernel, on copies of the
            # statistics (autograd keeps them), which the members that take
            # the step keep
            means, variances = mean_buf.clone(), var_buf.clone()
            out = F.batch_norm(h, means.view(-1), variances.view(-1), weight.reshape(-1),
                               bias.reshape(-1), True, m.momentum, m.eps)
            with torch.no_grad():
                mean_buf.copy_(torch.where(run, means, mean_buf))
                var_buf.copy_(torch.where(run, variances, var_buf))
            return out
        # the weighted statistics of sknets._modules._WeightedNorm, per member
        R, spatial = h.shape[0], h.shape[2:]
        ones = [1] * len(spatial)
        hv = h.reshape(R, M, C, *spatial)  # (channels-last h: a copy)
        positions = math.prod(spatial)
        share = (train.weights / train.total[:, None]).T.reshape(R, M, 1, *ones)
        dims = (0, *range(3, 3 + len(spatial)))
        mean = (hv * share).sum(dims) / positions
        centred = hv - mean.view(1, M, C, *ones)
        var = (centred.square() * share).sum(dims) / positions
        with torch.no_grad():
            count = (train.total * positions)[:, None]
            unbias = torch.where(count > 1, count / (count - 1).clamp_min(1e-12), 1.0)
            mean_buf.copy_(torch.where(run, mean_buf.lerp(mean.detach(), m.momentum), mean_buf))
            var_buf.copy_(torch.where(run, var_buf.lerp(var.detach() * unbias, m.momentum),
                                      var_buf))
        out = centred * torch.rsqrt(var + m.eps).view(1, M, C, *ones)
        out = out * weight.view(1, M, C, *ones) + bias.view(1, M, C, *ones)
        return out.view(h.shape)

    def _grouped_features(self, h, train):
        """The blocks of all members as one network on ``h`` of shape ``(R,
        M * C, *spatial)``, the members side by side in the channels (one
        grouped convolution per block): ``(R, M, n_features)``."""
        M, R = self.M, h.shape[0]
        for kind, prefix, m in self.ops:
            if kind == "conv":
                weight = self.leaf[prefix + "weight"]
                bias = self.leaf.get(prefix + "bias")
                h = self.conv_fn(
                    h, weight.reshape(M * weight.shape[1], *weight.shape[2:]),
                    None if bias is None else bias.reshape(-1), padding=m.padding, groups=M,
                )
            elif kind == "norm":
                h = self._norm(h, prefix, m, train)
            elif kind == "dropout":
                if train is not None:
                    salted = train.keys.T ^ self._salts(m.site)[None, :]
                    keep = self._keep(salted, h[0].numel() // M, m.p)
                    h = (h.reshape(R, M, -1) * keep).view(h.shape)
            else:
                h = m(h)
        if self.global_pool:
            return h.mean(dim=tuple(range(2, h.dim()))).view(R, M, -1)
        return h.reshape(R, M, -1)

    def _member_features(self, h, train):
        """The blocks of each member in turn on its own rows of ``h``
        (``(R, M, C, *spatial)``), exactly as its separate fit computes them:
        a plain convolution in the fit's memory layout, batch normalisation
        over the member's rows of the step only (its last batch is smaller),
        its dropout masks. ``(R, M, n_features)``, zero for the padding."""
        M, R = self.M, h.shape[0]
        counts = [R] * M if train is None else train.counts
        running = None if train is None else train.running.tolist()
        salts = {
            m.site: self._salts(m.site).tolist()
            for kind, _, m in self.ops if kind == "dropout" and train is not None
        }
        outs = []
        for i in range(M):
            n = counts[i]
            if n == 0:
                # no rows in this step (a smaller training set): nothing to run
                outs.append(h.new_zeros((R, self.feature_width)))
                continue
            hi = h[:n, i].contiguous()
            for kind, prefix, m in self.ops:
                if kind == "conv":
                    bias = self.leaf.get(prefix + "bias")
                    hi = self.conv_fn(
                        hi, self.leaf[prefix + "weight"][i].clone(memory_format=self.conv_format),
                        None if bias is None else bias[i], padding=m.padding,
                    )
                elif kind == "norm":
                    hi = self._member_norm(hi, prefix, m, train, i, running)
                elif kind == "dropout":
                    if train is not None and n:
                        keep = self._keep(train.keys[i, :n] ^ salts[m.site][i], hi[0].numel(),
                                          m.p)
                        hi = hi * keep.view(hi.shape)
                else:
                    hi = m(hi)
            hi = hi.mean(dim=tuple(range(2, hi.dim()))) if self.global_pool else hi.flatten(1)
            outs.append(F.pad(hi, (0, 0, 0, R - n)) if n < R else hi)
        return torch.stack(outs, dim=1)

    def _member_norm(self, h, prefix, m, train, i, running):
        """Member ``i``'s batch normalisation of its rows ``h``, as its
        separate fit's :class:`~sknets._modules.BatchNorm2d` computes it (the
        weighted statistics when the members have sample weights)."""
        mean_buf = self.buffers[prefix + "running_mean"][i]
        var_buf = self.buffers[prefix + "running_var"][i]
        weight, bias = self.leaf[prefix + "weight"][i], self.leaf[prefix + "bias"][i]
        if train is None:
            return F.batch_norm(h, mean_buf, var_buf, weight, bias, False, 0.0, m.eps)
        if not running[i]:
            # a member past its last step: its statistics stay as they are
            mean_buf, var_buf = mean_buf.clone(), var_buf.clone()
        else:
            self.buffers[prefix + "num_batches_tracked"][i] += 1
        if not self.weighted:
            # torch's kernel, on copies of the statistics (autograd keeps them)
            means, variances = mean_buf.clone(), var_buf.clone()
            out = F.batch_norm(h, means, variances, weight, bias, True, m.momentum, m.eps)
            with torch.no_grad():
                mean_buf.copy_(means)
                var_buf.copy_(variances)
            return out
        # sknets._modules._WeightedNorm's statistics
        return weighted_batch_norm(h, train.weights[i, : h.shape[0]], mean_buf, var_buf, weight,
                                   bias, m.momentum, m.eps)

    def _raw(self, x, train=None):
        """The members' raw outputs ``(M, R, n_outputs)`` for their rows
        ``x`` of shape ``(R, M, n_features)``: :class:`~sknets._modules.ConvModule`'s
        forward pass, batched over members; in training (``train``, the
        step's rows, weights, keys and shifts), as each member's training
        step computes it."""
        M = self.M
        R = x.shape[0]
        C, *spatial = self.input_shape
        h = x.reshape(R * M, C, *spatial)
        if train is not None and train.offsets is not None:
            h = shift_samples(h, train.offsets, self.random_shift)
        if self.conv_per_member:
            h = self._member_features(h.reshape(R, M, C, *spatial), train)
        else:
            h = self._grouped_features(h.reshape(R, M * C, *spatial), train)
        h = h.transpose(0, 1)
        last = len(self.head_layers) - 1
        for j, prefix in enumerate(self.head_layers):
            weight, bias = self.leaf[prefix + "weight"], self.leaf[prefix + "bias"]
            h = torch.baddbmm(bias[:, None, :], h, weight.transpose(1, 2))
            if j < last:
                h = self.head_act(h)
                if train is not None and self.head_dropout > 0:
                    salted = train.keys ^ self._salts(self.head_site + j)[:, None]
                    h = h * self._keep(salted, h.shape[-1], self.head_dropout)
        return h

    def _forward(self, x, keys=None):
        """Evaluation: the raw outputs ``(M, R, n_outputs)`` for each
        member's rows ``x`` (``(M, R, n_features)``), in chunks of rows."""
        x = x.transpose(0, 1)
        outs = [
            self._raw(x[start : start + self.eval_rows])
            for start in range(0, x.shape[0], self.eval_rows)
        ]
        return torch.cat(outs, dim=1)

    # -- one step ---------------------------------------------------------------------

    def _offsets(self, counts):
        """Each member's random shifts for its ``counts`` rows of this step,
        drawn as its module draws them; no shift for the padding."""
        s, B, M = self.random_shift, self.batch, self.M
        offsets = torch.full((self.n_axes, B, M), s, dtype=torch.int64, device=self.device)
        for i, n in enumerate(counts):
            if n:
                draw = torch.randint(0, 2 * s + 1, (self.n_axes, n, 1), device=self.device,
                                     generator=self.shift_generators[i])
                offsets[:, :n, i] = draw[..., 0]
        return offsets.view(self.n_axes, B * M, 1)

    def _body(self, idx):
        """One step of every member on its rows ``idx[m]`` (-1 = padding)."""
        self._zero_grad()
        counts = self.step_rows[self._step % self.steps]
        self._step += 1
        B = idx.shape[1]
        valid = idx >= 0
        rows = idx.clamp(min=0) + self.offset[:, None]
        weights, n_valid, total = self._batch_weights(idx, valid)
        # the members whose separate fits take this step
        running = valid.any(1) & (self.live[:, 0] > 0)
        keys = None
        if self.keyed:
            self.stream_step += running.to(torch.int64)
            keys = self.keys[rows]
        train = SimpleNamespace(
            weights=weights, total=total, running=running, keys=keys, counts=counts,
            full=not self.weighted and min(counts) == B,
            offsets=self._offsets(counts) if self.random_shift else None,
        )
        self._learn(self._raw(self.X[rows.T], train), rows, weights, n_valid, total)

    def _epoch_orders(self):
        """This epoch's ``(steps, M, batch)`` row indices (-1 = padding), each
        member's drawn on the device as its fit's batch order."""
        device = self.device
        rows = torch.full((self.M, self.steps * self.batch), -1, dtype=torch.int64,
                          device=device)
        for i, (train, gen) in enumerate(zip(self.train_rows, self.generators)):
            n = len(train)
            if self.shuffle:
                rows[i, :n] = train[torch.randperm(n, generator=gen, device=device)]
            else:
                rows[i, :n] = train
        return rows.view(self.M, self.steps, self.batch).transpose(0, 1).contiguous()

    # -- the members, as the trainer sees them ----------------------------------------

    def run_epoch(self, progress=None):
        self._step = 0
        return super().run_epoch(progress)

    def keep_best(self, improved):
        super().keep_best(improved)
        for name, buf in self.buffers.items():
            mask = improved.view(-1, *[1] * (buf.dim() - 1))
            self.best_buffers[name].copy_(torch.where(mask, buf, self.best_buffers[name]))

    def restore_best(self):
        super().restore_best()
        for name, buf in self.buffers.items():
            buf.copy_(self.best_buffers[name])

    def _results(self, trainer):
        """Each member's module state dict and record, with its share of
        the chunk's wall time (its epochs times its rows: the members'
        networks are alike)."""
        flat = self.flat.detach().cpu()
        buffers = {k: v.detach().cpu() for k, v in self.buffers.items()}
        states = []
        for i in range(self.M):
            state = {}
            for name in self.state_names:
                if name in self.layout:
                    off, n, shape = self.layout[name]
                    state[name] = flat[i, off : off + n].view(shape).clone()
                else:
                    state[name] = buffers[name][i].clone()
            states.append(state)
        results = trainer.results(states)
        n_iter = trainer.n_iter.cpu().numpy().astype(int)
        weights = [max(1, int(n)) * len(p.train_rows) for n, p in zip(n_iter, self.plans)]
        total = sum(weights)
        seconds = time.perf_counter() - self.started
        for result, weight in zip(results, weights):
            result.fit_time = seconds * weight / total
        return results
