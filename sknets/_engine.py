"""The fast skorch net that trains every sknets estimator.

:class:`FastNet` is a :class:`skorch.NeuralNet` whose data path is rewritten
for speed and kept inside skorch's own seams:

- ``get_dataset`` / ``get_iterator``: X, y and the sample weights move to the
  device once per fit (:class:`DeviceData`); batches are slices of an
  on-device permutation (:class:`DeviceBatches`), with no per-sample
  ``DataLoader`` collation and no host-to-device copy per batch.
- ``run_single_epoch``: the loss is accumulated on the device and read once
  per epoch (one synchronisation per epoch, not one per batch). Per-epoch
  history and the ``on_epoch_*`` callbacks work as in skorch; per-batch
  history and ``on_batch_*`` notifications are skipped on purpose.
- the steps (:meth:`FastNet.step_on`, run by ``run_single_epoch`` through
  :class:`GraphedStep`): on CUDA, each training step with a given batch size is
  captured once as a CUDA graph and replayed; the last,
  smaller batch of an epoch gets a graph of its own. Everywhere else (CPU,
  L-BFGS, a schedule that changes the learning rate every epoch) the same
  step runs eagerly.
- ``infer``: prediction runs in large on-device chunks.

The loss is scikit-learn's: the sample-weighted mean of the per-sample loss
plus ``0.5 * alpha * ||W||^2 / sum(weights)`` over the weight matrices.
"""

import contextlib
import copy
import functools
import math
import sys

import numpy as np
import scipy.sparse as sp
import torch
from skorch import NeuralNet
from skorch.callbacks import EpochTimer
from torch import nn
from tqdm import tqdm

from ._closed_form import ClosedFormStep, NumpyStep
from ._modules import penalized_parameters, row_keys
from ._optim import LBFGS
from ._registry import LOSSES
from ._threads import cpu_fit_state

# ----------------------------------------------------------------------------
# Precision and device
# ----------------------------------------------------------------------------


#: Training arithmetic by name: (parameter dtype, autocast dtype or None).
#: ``'auto'`` is resolved per fit by :func:`resolve_precision`.
PRECISIONS = {
    "float32": (torch.float32, None),
    "float64": (torch.float64, None),
    "bfloat16": (torch.float32, torch.bfloat16),
}


def resolve_precision(precision, X_dtype, device):
    """The concrete precision of a fit: ``'auto'`` follows the input dtype on
    CPUs, as scikit-learn does (float64 X trains in float64, float32 X in
    float32), and is float32 on CUDA, where float64 arithmetic is many times
    slower and CUDA graphs are tested in float32."""
    if precision != "auto":
        return precision
    if device.type == "cpu" and np.dtype(X_dtype) == np.float64:
        return "float64"
    return "float32"


def resolve_device(device):
    """Turn ``'auto'`` / a string / a :class:`torch.device` into a device.

    Raises a :class:`ValueError` naming the ``device`` parameter for a string
    torch does not know, for a device type sknets does not train on (only
    ``'cpu'`` and ``'cuda'``: ``'mps'``, ``'xpu'``, ``'meta'`` ... are
    refused), for a CUDA device when CUDA is not available and for a CUDA
    index this machine does not have.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid value of the 'device' parameter; use "
            "'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(
            f"device={device!r} is not a valid value of the 'device' parameter: sknets "
            "trains on 'cpu' or 'cuda' devices only; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested (the 'device' parameter) but CUDA is not "
            "available on this machine; use device='auto' or 'cpu'."
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} was requested (the 'device' parameter) but this "
            f"machine has {torch.cuda.device_count()} CUDA device(s)."
        )
    return dev


# ----------------------------------------------------------------------------
# Loss
# ----------------------------------------------------------------------------


class WeightedLoss(nn.Module):
    """Sample-weighted mean of a per-sample loss from
    :data:`~sknets._registry.LOSSES`.

    With ``w=None`` it is the plain mean (fewer kernels per step).
    ``label_smoothing`` (for the ``smoothable`` losses only) softens
    the class targets: ``eps`` of each target's mass is spread evenly over
    the classes (over the two values of each output for the binary loss).
    """

    def __init__(self, loss="squared_error", label_smoothing=0.0):
        super().__init__()
        self.loss = loss
        self.label_smoothing = float(label_smoothing)
        fn = LOSSES[loss].fn
        if self.label_smoothing:
            if not LOSSES[loss].smoothable:
                raise ValueError(f"label_smoothing needs a class loss, not {loss!r}.")
            fn = functools.partial(fn, label_smoothing=self.label_smoothing)
        self._fn = fn

    def forward(self, z, y, w=None):
        if w is None:
            return self._fn(z, y).mean()
        return (self._fn(z, y) * w).sum() / w.sum()


# ----------------------------------------------------------------------------
# Data on the device
# ----------------------------------------------------------------------------


def unweighted_as_none(w):
    """None for sample weights that are all one (or None): such a fit runs
    exactly the arithmetic of a fit without weights, on the cheaper
    unweighted path; ``w`` otherwise."""
    if w is not None and np.all(np.asarray(w) == 1):
        return None
    return w


class DeviceData:
    """X, y and sample weights held as tensors on one device.

    ``y`` is either class indices (``int64``, shape ``(n,)``) or float targets
    of shape ``(n, n_outputs)``. Weights that are all one are dropped
    (``w is None``), so a fit with unit weights runs exactly the arithmetic
    of a fit without weights, on the cheaper unweighted path.

    A scipy sparse X stays sparse, in CSR form on the host: :meth:`rows`
    densifies only the rows of each batch, so the whole matrix is never
    densified (``X`` is then None; use :meth:`rows`).
    """

    def __init__(self, X, y, w, device, dtype):
        self.device, self.dtype = torch.device(device), dtype
        self.n = X.shape[0]
        if sp.issparse(X):
            self.sparse = sp.csr_matrix(X)
            self.X = None
        else:
            self.sparse = None
            self.X = _to_tensor(X, device, dtype)
        if y is None:
            self.y = None
        elif y.dtype.kind in "iub" and y.ndim == 1:
            self.y = _to_tensor(y, device, torch.int64)
        else:
            self.y = _to_tensor(y, device, dtype)
        w = unweighted_as_none(w)
        self.w = None if w is None else _to_tensor(w, device, dtype)

    def __len__(self):
        return self.n

    _keys = None

    @property
    def keys(self):
        """The :func:`~sknets._modules.row_keys` of every row (computed once,
        on first use, for the keyed dropout masks)."""
        if self._keys is None:
            self._keys = torch.cat([row_keys(Xc) for Xc, _, _ in self.chunks()])
        return self._keys

    _numpy = None

    def numpy_views(self):
        """``(X, y, w)`` as numpy views of the tensors (a dense X on the CPU)."""
        if self._numpy is None:
            self._numpy = tuple(None if a is None else a.numpy() for a in (self.X, self.y, self.w))
        return self._numpy

    def rows(self, idx):
        """The rows ``idx`` (an index tensor) of X, dense, on the device."""
        if self.sparse is None:
            return self.X.index_select(0, idx)
        return _to_tensor(self.sparse[idx.cpu().numpy()].toarray(), self.device, self.dtype)

    def chunks(self, max_values=2**24):
        """``(X_chunk, y_chunk, w_chunk)`` over all rows in order, each X
        chunk dense and at most about ``max_values`` values (one chunk for a
        dense X)."""
        if self.sparse is None:
            yield self.X, self.y, self.w
            return
        width = max(1, self.sparse.shape[1])
        step = max(1, max_values // width)
        for start in range(0, self.n, step):
            idx = torch.arange(start, min(start + step, self.n), device=self.device)
            yield (self.rows(idx), None if self.y is None else self.y[idx],
                   None if self.w is None else self.w[idx])


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.int64: np.int64}


def _to_tensor(a, device, dtype):
    if isinstance(a, torch.Tensor):
        # a tensor (scikit-learn's array API) is read where it is: on its
        # device, and as it is when it has the dtype already (no copy)
        return a.to(device=device, dtype=dtype)
    # np.array copies, so read-only or memory-mapped input is never touched
    return torch.from_numpy(np.array(a, dtype=_NUMPY_DTYPES[dtype])).to(device)


class DeviceBatches:
    """Iterates over index batches of a :class:`DeviceData`.

    Every index batch is a slice of one permutation drawn on the device, so
    an epoch costs one ``randperm`` and no host-to-device copy. The last
    batch is smaller when ``batch_size`` does not divide the number of rows;
    it is never dropped.
    """

    def __init__(self, data, batch_size, shuffle, generator):
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def order(self):
        """This epoch's row order: a permutation drawn on the device."""
        n = len(self.data)
        device = self.data.device
        if self.shuffle:
            return torch.randperm(n, generator=self.generator, device=device)
        return torch.arange(n, device=device)

    def __iter__(self):
        order = self.order()
        for start in range(0, len(order), self.batch_size):
            yield order[start : start + self.batch_size]

    def __len__(self):
        return math.ceil(len(self.data) / self.batch_size)


# ----------------------------------------------------------------------------
# Training steps
# ----------------------------------------------------------------------------


class StepGraphs:
    """Runs a sequence of identical training steps, as CUDA graphs where it can.

    ``body(idx)`` performs one whole step (forward, loss, backward,
    optimizer update, loss accumulation) on the index tensor ``idx``; all
    steps given to :meth:`run_steps` at once have the same index shape.

    The first ``warmup`` steps run eagerly on a side stream (they initialise
    cuBLAS and the optimizer state, and they are real training steps). After
    that, ``chunk`` consecutive steps are captured once as one CUDA graph
    that reads its indices from a fixed ``(chunk, *shape)`` buffer; every
    later chunk copies its indices into that buffer and replays the graph.
    One graph is kept per chunk shape, so an epoch needs at most three:
    full chunks, a shorter last chunk, and the smaller last batch.

    With ``capture=False`` the same steps run eagerly, one by one: the path
    on CPUs and for L-BFGS, and how the logic is tested without CUDA.
    """

    def __init__(self, body, zero_grad, capture=True, warmup=3, chunk=16):
        self.body = body
        self.zero_grad = zero_grad
        self.capture = capture
        self.warmup = warmup
        self.chunk = chunk
        self.graphs = {}
        self.n_steps = 0

    def run_steps(self, steps, progress=None):
        """Run one step per leading row of ``steps``; ``progress(k)`` is
        called after every ``k`` steps launched."""
        if not self.capture:
            for row in steps:
                self.body(row)
                if progress is not None:
                    progress(1)
            return
        i, n = 0, steps.shape[0]
        while i < n:
            if self.n_steps < self.warmup:
                self._side_stream_step(steps[i])
                k = 1
            else:
                k = min(self.chunk, n - i)
                self._replay(steps[i : i + k])
            i += k
            if progress is not None:
                progress(k)

    def _side_stream_step(self, idx):
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self.body(idx)
        torch.cuda.current_stream().wait_stream(stream)
        self.n_steps += 1

    def _replay(self, steps):
        key = tuple(steps.shape)
        entry = self.graphs.get(key)
        if entry is None:
            static = steps.clone()
            graph = torch.cuda.CUDAGraph()
            self.zero_grad()
            with torch.cuda.graph(graph):
                for row in static:
                    self.body(row)
            entry = self.graphs[key] = (graph, static)
        graph, static = entry
        static.copy_(steps)
        graph.replay()
        self.n_steps += key[0]


class GraphedStep(StepGraphs):
    """The training steps of one :class:`FastNet` over a :class:`DeviceData`."""

    def __init__(self, net, data, accumulator, capture=True, warmup=3, chunk=16):
        super().__init__(
            self._body,
            lambda: net.optimizer_.zero_grad(set_to_none=True),
            capture=capture,
            warmup=warmup,
            chunk=chunk,
        )
        self.net = net
        self.data = data
        self.acc = accumulator
        self.host_acc = 0.0
        # whether the steps pass the rows' keys for keyed dropout masks
        self.keyed = bool(getattr(net.module_, "draws_random", False))

    def _body(self, idx):
        d = self.data
        numpy_step = self.net._closed
        if type(numpy_step) is NumpyStep and d.sparse is None:
            # a small network's step in numpy, on numpy's gathers of the rows;
            # its loss summed on the host
            self.host_acc += numpy_step.on_rows(d, idx) * idx.shape[0]
            return
        keys = d.keys[idx] if self.keyed else None
        loss = self.net.step_on(
            d.rows(idx), d.y.index_select(0, idx), None if d.w is None else d.w[idx], keys=keys
        )
        self.acc.add_(loss, alpha=idx.shape[0])

    def __call__(self, idx):
        """One step on the rows ``idx``."""
        self.run(idx, len(idx))

    def run(self, order, batch_size):
        """All the steps of one epoch over the rows in ``order``; the last,
        smaller batch is run too, never dropped."""
        n_full = order.shape[0] // batch_size
        progress = self.net.progress
        if progress is not None:
            progress.start(math.ceil(order.shape[0] / batch_size))
        self.run_steps(order[: n_full * batch_size].view(n_full, batch_size), progress)
        if n_full * batch_size < order.shape[0]:
            self.run_steps(order[n_full * batch_size :].view(1, -1), progress)
        if progress is not None:
            progress.close()


class NetCheckpoint:
    """What training changes in a :class:`FastNet`, to put back on failure:
    its attributes, the module's and the optimizer's state and the length of
    the history.

    :meth:`take` (again) refreshes the copies in place, with one
    ``_foreach_copy_`` over all tensors, when the net's tensors are the
    same objects as last time: a checkpoint per epoch costs a few
    microseconds, not a deep copy of the optimizer's state.
    """

    def __init__(self, net):
        self.net = net
        self._live = None
        self._module = (None, None)
        self.take()

    def _tensors(self):
        """The module's parameters and buffers, then the optimizer state's
        tensors, in a fixed order."""
        net = self.net
        module, tensors = self._module
        if module is not net.module_:
            # a module's tensors stay the same objects while it trains
            tensors = list(net.module_.state_dict(keep_vars=True).values())
            self._module = (net.module_, tensors)
        tensors = list(tensors)
        for state in net.optimizer_.state.values():
            tensors.extend(v for v in state.values() if isinstance(v, torch.Tensor))
        return tensors

    def _structure(self):
        """The optimizer state's keys per parameter (the tensors aside)."""
        return [
            (id(p), tuple((k, None if isinstance(v, torch.Tensor) else v) for k, v in st.items()))
            for p, st in self.net.optimizer_.state.items()
        ]

    @torch.no_grad()
    def take(self):
        """Save the net's state now (in place of the last one saved)."""
        net = self.net
        self.attrs = dict(net.__dict__)
        self.history = len(net.history)
        self.groups = [
            {k: v for k, v in g.items() if k != "params"} for g in net.optimizer_.param_groups
        ]
        live = self._tensors()
        if (
            self._live is not None
            and len(live) == len(self._live)
            and all(a is b for a, b in zip(live, self._live))
        ):
            # the same tensors (an optimizer state with new entries would
            # have more): refresh the copies in place
            torch._foreach_copy_(self.copies, live)
            return
        structure = self._structure()
        # references held: the identities compared above stay meaningful
        self._live, self.structure = live, structure
        self.copies = [t.detach().clone() for t in live]
        # the state's layout: its tensors are the copies after the module's
        self.optimizer_state = {p: dict(st) for p, st in net.optimizer_.state.items()}

    @torch.no_grad()
    def restore(self):
        net = self.net
        net.__dict__.clear()
        net.__dict__.update(self.attrs)
        optimizer = net.optimizer_
        for group, saved in zip(optimizer.param_groups, self.groups):
            group.update(saved)
        live = self._tensors()
        if (
            self._structure() == self.structure
            and len(live) == len(self._live)
            and all(a is b for a, b in zip(live, self._live))
        ):
            torch._foreach_copy_([t.detach() for t in live], self.copies)
        else:
            n_module = len(net.module_.state_dict())
            torch._foreach_copy_([t.detach() for t in live[:n_module]], self.copies[:n_module])
            # the optimizer's state changed shape: put the saved one back
            copies = iter(self.copies[n_module:])
            optimizer.state.clear()
            for p, st in self.optimizer_state.items():
                optimizer.state[p] = {
                    k: (next(copies).clone() if isinstance(v, torch.Tensor) else v)
                    for k, v in st.items()
                }
        del net.history[self.history :]
        net.reset_graphs()


class FastNet(NeuralNet):
    """skorch net with the on-device data path described in the module doc.

    Beyond :class:`skorch.NeuralNet`'s parameters:

    Parameters
    ----------
    alpha : float, default=0.0
        L2 penalty on the weight matrices, scaled as in scikit-learn.
    shuffle : bool, default=True
        Shuffle the rows each epoch.
    seed : int, default=0
        Seed of the batch permutations.
    precision : {'float32', 'float64', 'bfloat16'}, default='float32'
        Dtype of the parameters; ``'bfloat16'`` keeps float32 parameters and
        runs the forward pass under autocast.
    cuda_graphs : bool, default=True
        Capture training steps as CUDA graphs on CUDA devices.
    """

    def __init__(
        self,
        *args,
        alpha=0.0,
        shuffle=True,
        seed=0,
        precision="float32",
        cuda_graphs=True,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.alpha = alpha
        self.shuffle = shuffle
        self.seed = seed
        self.precision = precision
        self.cuda_graphs = cuda_graphs

    @property
    def _default_callbacks(self):
        # The train loss is recorded once per epoch by run_single_epoch, so
        # skorch's per-batch PassthroughScoring and table printer are left out.
        return [("epoch_timer", EpochTimer())]

    # -- set-up ---------------------------------------------------------------

    @property
    def torch_device(self):
        return torch.device(self.device)

    @property
    def dtype(self):
        return PRECISIONS[self.precision][0]

    def autocast(self):
        amp = PRECISIONS[self.precision][1]
        return torch.autocast(self.torch_device.type, dtype=amp, enabled=amp is not None)

    def initialize_module(self):
        super().initialize_module()
        self.module_.to(self.dtype)
        if any(isinstance(m, nn.Conv2d) for m in self.module_.modules()):
            # channels-last convolutions: oneDNN's fast layout on CPUs (18 %
            # less time for the digits defaults, benchmarks/RESULTS.md) and
            # cuDNN's on GPUs; 4-D weights only, so not for 1-D signals
            self.module_.to(memory_format=torch.channels_last)
        return self

    def _penalized(self):
        if self.alpha == 0:
            return []
        return penalized_parameters(self.module_)

    def new_generator(self, seed):
        """A generator on the net's device, for the batch permutations."""
        return torch.Generator(device=self.torch_device).manual_seed(int(seed))

    def start_training(self, batch_size, seed):
        """Set up a call of training: its batch size, and its batch orders
        drawn from a generator seeded with ``seed``."""
        self.batch_size = int(batch_size)
        self._generator = self.new_generator(seed)

    @property
    def learning_rate(self):
        """The optimizer's learning rate (of all its parameter groups)."""
        return self.optimizer_.param_groups[0]["lr"]

    def set_learning_rate(self, lr):
        """Set the learning rate of every parameter group (forgetting the
        captured graphs, which hold the old rate)."""
        groups = self.optimizer_.param_groups
        if groups[0]["lr"] != lr:
            for group in groups:
                group["lr"] = lr
            self.reset_graphs()

    def take_optimizer_state(self, old):
        """Continue from the state of ``old``, an optimizer of the same class
        on parameters of the same shapes, with this net's settings."""
        state = old.state_dict()
        fresh = self.optimizer_.state_dict()["param_groups"]
        for group, new in zip(state["param_groups"], fresh):
            group.update({k: v for k, v in new.items() if k != "params"})
        self.optimizer_.load_state_dict(state)

    # -- the step -------------------------------------------------------------

    def _penalty(self, w, n_rows):
        """``0.5 * alpha * ||W||^2 / sum(w)`` over the weight matrices."""
        penalized = self._penalized()
        sq = torch.stack(torch._foreach_norm(penalized)).square().sum()
        return 0.5 * self.alpha * sq / (n_rows if w is None else w.sum())

    def objective(self, z, y, w=None):
        """scikit-learn's loss: (weighted) data loss plus the scaled L2 penalty."""
        loss = self.criterion_(z.to(self.dtype), y, w)
        if self._penalized():
            loss = loss + self._penalty(w, z.shape[0])
        return loss

    def _decay_group(self):
        """The optimizer's group of penalised weights, if the L2 gradient can
        be left to its ``weight_decay`` (coupled decay is exactly the gradient
        of the penalty), else None."""
        groups = self.optimizer_.param_groups
        if self.alpha == 0 or len(groups) != 2 or not groups[0].get("sknets_l2"):
            return None
        return groups[0]

    def step_on(self, Xb, yb, wb=None, keys=None):
        """One optimisation step on a batch; returns the detached loss.

        ``keys`` are the batch's row keys for the keyed dropout masks (the
        module computes them when they are not given).

        Without sample weights the L2 gradient goes through the optimizer's
        fused weight decay (``alpha / batch_size``) and the penalty's value
        is added to the reported loss outside autograd; with weights, the
        penalty is differentiated with the loss.
        """
        closed = self._closed
        if closed is not None and keys is None:
            return closed(Xb, yb, wb)
        self.optimizer_.zero_grad(set_to_none=True)
        with self.autocast():
            if wb is None and keys is None:
                z = self.module_(Xb)
            else:
                z = self.module_(Xb, sample_weight=wb, keys=keys)
        group = self._decay_group()
        if group is not None and wb is None:
            group["weight_decay"] = self.alpha / Xb.shape[0]
            loss = self.criterion_(z.to(self.dtype), yb, None)
            loss.backward()
            with torch.no_grad():
                # the penalty of the weights this batch was computed with
                loss = loss.detach() + self._penalty(None, Xb.shape[0])
            self.optimizer_.step()
            return loss
        if group is not None:
            group["weight_decay"] = 0.0
        loss = self.objective(z, yb, wb)
        loss.backward()
        self.optimizer_.step()
        return loss.detach()

    def initialize_optimizer(self, triggered_directly=None):
        """Two parameter groups: the penalised weight matrices, and the rest.

        For coupled-L2 solvers the first group's ``weight_decay`` is set per
        batch to ``alpha / batch_size`` (see :meth:`step_on`); for decoupled
        ones (AdamW) it holds ``alpha`` and the second group has none.
        """
        args, kwargs = self.get_params_for_optimizer(
            "optimizer", self.get_all_learnable_params()
        )
        if self.optimizer is LBFGS:
            self.optimizer_ = self.optimizer(*args, **kwargs)
            return self
        params = list(self.module_.parameters())
        weights = {id(p) for p in penalized_parameters(self.module_)}
        decay = kwargs.pop("weight_decay", None)
        groups = [
            {"params": [p for p in params if id(p) in weights], "sknets_l2": decay is None},
            {"params": [p for p in params if id(p) not in weights], "weight_decay": 0.0},
        ]
        if decay is not None:
            groups[0]["weight_decay"] = decay
        kwargs.pop("params", None)
        self.optimizer_ = self.optimizer([g for g in groups if g["params"]], **kwargs)
        return self

    # -- epochs ---------------------------------------------------------------

    def get_dataset(self, X, y=None):
        if isinstance(X, DeviceData):
            return X
        y = None if y is None else np.asarray(y)
        return DeviceData(X, y, None, self.torch_device, self.dtype)

    def get_iterator(self, dataset, training=False):
        if isinstance(dataset, DeviceData) and not training:
            # skorch's own evaluation (predict_proba, forward_iter): (X, y) slices
            return _EvalBatches(dataset, self.batch_size)
        if isinstance(dataset, DeviceData):
            return DeviceBatches(
                dataset,
                min(self.batch_size, len(dataset)),
                shuffle=training and self.shuffle,
                generator=self._generator,
            )
        return super().get_iterator(dataset, training=training)

    #: whether CPU steps of a plain MLP may run in closed form
    #: (:mod:`sknets._closed_form`); tests switch it off to compare
    closed_form = True
    #: whether small ones among them run in numpy (:class:`~sknets._closed_form.NumpyStep`);
    #: tests switch it off to compare
    numpy_step = True
    _closed = None

    def _stepper(self, data):
        key = (id(data), self.optimizer_)
        closed = self._closed
        if getattr(self, "_stepper_key", None) != key or (
            closed is not None and not closed.valid()
        ):
            capture = (
                self.cuda_graphs
                and self.torch_device.type == "cuda"
                and not isinstance(self.optimizer_, LBFGS)
                # host work per batch, or draws from the module's own
                # generator, which graph capture does not replay
                and data.sparse is None
                and not getattr(self.module_, "draws_random", False)
            )
            self._acc = torch.zeros((), dtype=self.dtype, device=self.torch_device)
            self._step = GraphedStep(self, data, self._acc, capture=capture)
            self._closed = None if capture else ClosedFormStep.build(self)
            self._stepper_key = key
        return self._step

    def reset_graphs(self):
        """Forget captured graphs (call after changing the learning rate)."""
        self._stepper_key = None
        self._closed = None

    def release_data(self):
        """Forget the training steps of the last call, and with them every
        reference to its data (the steps, captured graphs and loss
        accumulator hold the call's :class:`DeviceData`)."""
        self.reset_graphs()
        for key in ("_step", "_acc", "_generator"):
            self.__dict__.pop(key, None)

    def _pass(self, iterator, training):
        """One pass of steps over ``iterator``; its mean loss. The loss is
        summed on the device and read once, at the end."""
        step = self._stepper(iterator.data)
        if self.module_.training != training or self.criterion_.training != training:
            self._set_training(training)
        self._acc.zero_()
        step.host_acc = 0.0
        step.run(iterator.order(), iterator.batch_size)
        return (self._acc.item() + step.host_acc) / len(iterator.data)

    def run_single_epoch(self, iterator, training, prefix, step_fn=None, **fit_params):
        """One pass over ``iterator``; records ``{prefix}_loss`` in the history.

        skorch's signature; the steps are always :meth:`step_on`, so
        ``step_fn`` (skorch's ``train_step``) is not used.
        """
        if iterator is None:
            return None
        loss = self._pass(iterator, training)
        self.history.record(f"{prefix}_loss", loss)
        return loss

    def run_epoch(self, data, progress=None, record=True):
        """One training epoch over ``data``; its mean training loss. The
        steps are counted on ``progress`` (a :class:`ProgressBar`), if any.

        With ``record``, as a skorch net: the ``on_epoch_*`` notifications
        and a history row. The trainer (:mod:`sknets._training`) passes
        False: it keeps the curves itself, and the estimator writes the
        history once the fit ends, as skorch users read it (``epoch``,
        ``train_loss``, ``valid_loss``, ``dur``).
        """
        if record:
            self.notify("on_epoch_begin", dataset_train=data, dataset_valid=None)
        if progress is not None:
            # (set only when there is one: skorch's __setattr__ costs
            # microseconds, every epoch)
            self.progress = progress
        try:
            loss = self._pass(self.get_iterator(data, training=True), training=True)
        finally:
            if progress is not None:
                self.progress = None
        if record:
            self.history.record("train_loss", loss)
            self.notify("on_epoch_end", dataset_train=data, dataset_valid=None)
        return loss

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """Train for ``epochs`` epochs on ``X, y`` with the fast data path."""
        self.check_training_readiness()
        data = self.get_dataset(X, y)
        self._generator = self.new_generator(self.seed)
        for _ in range(self.max_epochs if epochs is None else epochs):
            self.run_epoch(data)
        return self

    # -- L-BFGS -----------------------------------------------------------------

    def run_lbfgs(self, data):
        """Full-batch L-BFGS as scikit-learn runs it; returns (loss, n_iter).

        The loss and its gradient are summed over row chunks (one chunk for
        a dense X; a sparse X is densified one chunk at a time).
        """
        self._set_training(True)
        total = float(len(data)) if data.w is None else float(data.w.sum())

        def closure(backward=True):
            self.optimizer_.zero_grad(set_to_none=True)
            loss = 0.0
            for Xc, yc, wc in data.chunks():
                with self.autocast():
                    z = self.module_(Xc) if wc is None else self.module_(Xc, sample_weight=wc)
                part = self.criterion_(z.to(self.dtype), yc, wc)
                share = (len(Xc) if wc is None else float(wc.sum())) / total
                if backward:
                    (part * share).backward()
                loss += float(part.detach()) * share
            if self._penalized():
                penalty = self._penalty(data.w, len(data))
                if backward:
                    penalty.backward()
                loss += float(penalty.detach())
            return loss

        self.notify("on_epoch_begin", dataset_train=data, dataset_valid=None)
        n_iter = self.optimizer_.step(closure)
        with torch.no_grad():
            loss = closure(backward=False)
        self.history.record("train_loss", loss)
        self.notify("on_epoch_end", dataset_train=data, dataset_valid=None)
        return loss, n_iter

    # -- inference --------------------------------------------------------------

    #: a :class:`ProgressBar` while ``verbose=2`` trains, else None
    progress = None

    def data_loss(self, raw, y, w=None):
        """The criterion, without the penalty, of numpy outputs ``raw``."""
        z = torch.from_numpy(np.asarray(raw, dtype=np.float64))
        y = np.asarray(y)
        y = torch.from_numpy(y if y.dtype.kind in "iu" else y.astype(np.float64))
        w = None if w is None else torch.from_numpy(np.asarray(w, dtype=np.float64))
        with torch.no_grad():
            return float(self.criterion_(z, y, w))

    def forward_raw(self, X, chunk_rows=65536):
        """Raw outputs for a numpy array, in large on-device chunks, as float64.

        On the CPU a float32 network predicts through a float64 copy of
        itself: float32 matrix products round differently for different
        numbers of rows, and a sample's prediction must not depend on which
        other samples are predicted with it (scikit-learn checks this).
        """
        self._set_training(False)
        device = self.torch_device
        module, dtype = self.module_, self.dtype
        if device.type == "cpu" and dtype == torch.float32 and self.precision == "float32":
            module, dtype = copy.deepcopy(module).to(torch.float64), torch.float64
        outs = []
        # chunks of at most about 2**24 values, whatever the width
        chunk_rows = max(1, min(chunk_rows, 2**24 // max(1, X.shape[1] if X.ndim > 1 else 1)))
        if device.type == "cpu":
            # the threads of a fit's steps of a nominal 200 rows: as many for
            # every number of rows (a row's outputs never depend on how many
            # rows are predicted with it), one for a small network, where a
            # second thread's wake-up costs more than it computes (25 times
            # more on a busy machine)
            n_params = sum(p.numel() for p in module.parameters())
            state = cpu_fit_state(device, 200 * n_params)
        else:
            state = contextlib.nullcontext()
        with torch.inference_mode(), self.autocast(), state:
            for start in range(0, max(X.shape[0], 1), chunk_rows):
                xb = X[start : start + chunk_rows]
                xb = _to_tensor(xb.toarray() if sp.issparse(xb) else xb, device, dtype)
                outs.append(module(xb).to(torch.float64))
        return torch.cat(outs).cpu().numpy()

    def infer(self, x, **fit_params):
        if isinstance(x, torch.Tensor) and not fit_params:
            with self.autocast():
                return self.module_(x.to(self.torch_device, self.dtype))
        return super().infer(x, **fit_params)

    def __getstate__(self):
        state = super().__getstate__()
        for key in ("_generator", "_step", "_acc", "_stepper_key", "_closed"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        # Unpickling a net unpickles its modules, optimizer and criterion,
        # which torch.load can only do with weights_only=False: that adds no
        # risk to the pickle being loaded, which runs code anyway. Files read
        # by load_params keep torch_load_kwargs, whose default (None) is
        # skorch's weights_only=True: a weights file cannot run code.
        own = state.get("torch_load_kwargs")
        state = {**state, "torch_load_kwargs": {**(own or {}), "weights_only": False}}
        # skorch maps a CUDA net onto the CPU when there is no GPU
        super().__setstate__(state)
        self.torch_load_kwargs = own
        if self.torch_device.type == "cpu":
            self.cuda_graphs = False
            for group in getattr(self.optimizer_, "param_groups", []):
                if group.get("capturable"):
                    # capturable optimizers need CUDA tensors; on a CPU
                    # the same update is computed without it
                    group["capturable"] = False


class ProgressBar:
    """A one-line progress bar over the batches of an epoch (``verbose=2``),
    drawn by :mod:`tqdm`.

    It draws only for long epochs: nothing until ``delay`` seconds have
    passed, then at most every ``interval`` seconds, and it erases itself
    when the epoch ends (``leave=False``) so that the epoch's summary line
    takes its place. On a GPU it counts the steps launched, which run
    slightly ahead.
    """

    def __init__(self, label, stream=None, width=30, delay=0.5, interval=0.2):
        self.label = label
        self.stream = stream
        self.width = width
        self.delay = delay
        self.interval = interval
        self.bar = None

    def start(self, total):
        self.bar = tqdm(
            total=total,
            desc=self.label,
            file=self.stream or sys.stdout,
            bar_format="{desc} {n_fmt}/{total_fmt} [{bar:%d}]" % self.width,
            ascii=".=",
            leave=False,
            delay=self.delay,
            mininterval=self.interval,
            miniters=1,
            dynamic_ncols=False,
        )

    def __call__(self, k):
        self.bar.update(k)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _EvalBatches:
    """``(X, y)`` batch slices of a :class:`DeviceData`, in order."""

    def __init__(self, data, batch_size):
        self.data = data
        self.batch_size = max(1, min(batch_size, len(data)))

    def __iter__(self):
        d = self.data
        for start in range(0, len(d), self.batch_size):
            stop = start + self.batch_size
            yield d.X[start:stop], None if d.y is None else d.y[start:stop]

    def __len__(self):
        return math.ceil(len(self.data) / self.batch_size)
