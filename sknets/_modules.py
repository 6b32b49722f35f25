"""Plain PyTorch modules built by the estimators.

Nothing here knows about scikit-learn: a module takes the facts learnt from
the data (input width, number of outputs) and the architecture parameters,
and returns raw outputs (logits for classifiers, the linear predictor for
regressors). The output activation is applied by the estimator at prediction
time, and the matching loss works on the raw outputs for numerical stability.
"""

import functools
import math

import numpy as np
import torch
from torch import nn

from ._registry import ACTIVATIONS

_M32 = 0xFFFFFFFF


def _mul32(x, m):
    """``(x * m) mod 2**32`` for int64 tensors ``x`` in ``[0, 2**32)`` and an
    int ``m`` below ``2**32``, from 16-bit halves of ``m`` so that no product
    reaches ``2**63`` (torch's integer overflow is not defined)."""
    return ((((x * (m >> 16)) & 0xFFFF) << 16) + x * (m & 0xFFFF)) & _M32


def _mix32(x):
    """MurmurHash3's 32-bit finaliser, elementwise on int64 tensors holding
    values in ``[0, 2**32)``."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x85EBCA6B)
    x = x ^ (x >> 13)
    x = _mul32(x, 0xC2B2AE35)
    return x ^ (x >> 16)


def _mix32_light(x):
    """One multiply-xorshift round (the first half of lowbias32): enough to
    spread the XOR of two :func:`_mix32` hashes."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    return x ^ (x >> 15)


def _mix32_int(x):
    """:func:`_mix32` on a Python int."""
    x &= _M32
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & _M32
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & _M32
    return x ^ (x >> 16)


def row_keys(X):
    """A 32-bit key per row of ``X`` (shape ``(N, ...)``), from its bits.

    Rows with the same values get the same key, wherever they sit in the
    batch and whatever the batch holds: the key is a fixed multilinear hash
    of the row's 16-bit words (exact integer arithmetic), finalised with
    :func:`_mix32`. It draws no random numbers.
    """
    n = X.shape[0]
    flat = X.detach().reshape(n, -1).contiguous()
    if flat.dtype in (torch.float64, torch.float32):
        words = flat.view(torch.int32).to(torch.int64) & _M32
        halves = torch.stack((words & 0xFFFF, words >> 16), dim=2).reshape(n, -1)
    elif flat.dtype in (torch.float16, torch.bfloat16):
        halves = flat.view(torch.int16).to(torch.int64) & 0xFFFF
    else:
        halves = flat.to(torch.int64) & 0xFFFF
    position = torch.arange(halves.shape[1], device=X.device, dtype=torch.int64)
    # odd multipliers below 2**24: each product stays below 2**40 and a row
    # of up to 2**23 half-words sums below 2**63
    factors = (_mix32(position) & 0xFFFFFF) | 1
    total = (halves * factors).sum(dim=1)
    return _mix32((total & _M32) ^ _mix32((total >> 32) & _M32))


@functools.lru_cache(maxsize=64)
def _position_hashes(width, device):
    """:func:`_mix32` of the positions ``0 .. width - 1`` (cached)."""
    return _mix32(torch.arange(width, device=device, dtype=torch.int64) + 0x632BE5AB)


class RandomStream:
    """The randomness of one module's training, owned by the module.

    * :meth:`generator`: a seeded :class:`torch.Generator` per device, made
      on first use, for draws such as random shifts;
    * :meth:`advance` and :meth:`salt`: the counters of the keyed dropout
      masks (see :class:`Dropout`).

    Nothing comes from torch's global generators, so fits in several threads
    do not disturb each other or the caller's random state. It pickles as
    its seed and step: after unpickling the generator restarts from the seed.
    """

    def __init__(self, seed=0):
        self.reseed(seed)

    def reseed(self, seed):
        """Restart the stream from ``seed``."""
        self.seed = int(seed)
        self.step = 0
        self._generator = None

    def generator(self, device):
        generator = self._generator
        if generator is None or generator.device != device:
            generator = torch.Generator(device=device).manual_seed(self.seed)
            self._generator = generator
        return generator

    def advance(self):
        """Start the next training forward pass (new dropout masks)."""
        self.step += 1

    def salt(self, site):
        """A 32-bit salt for dropout site ``site`` in the current pass."""
        return _mix32_int(_mix32_int(_mix32_int(self.seed) ^ self.step) + 0x9E3779B9 * site)

    def __getstate__(self):
        # a generator does not pickle on every supported torch
        return {"seed": self.seed, "step": self.step, "_generator": None}

    def __setstate__(self, state):
        self.__dict__.update({"step": 0, **state})


class Dropout(nn.Module):
    """Inverted dropout with masks keyed by the sample.

    The arithmetic of :class:`torch.nn.Dropout` (in training, zero each value
    with probability ``p`` and scale the others by ``1 / (1 - p)``), but each
    mask value is a hash of the sample's :func:`row_keys` key, the position
    in the layer, the dropout site and the stream's seed and step. So:

    * no random generator is used, torch's global ones least of all;
    * equal samples get equal masks in a pass, which makes a sample of weight
      ``k`` exactly ``k`` copies of it (scikit-learn's meaning of
      ``sample_weight``), and a sample's mask does not depend on the order
      or the make-up of its batch.

    Called without ``keys`` it computes them from ``X``.
    """

    def __init__(self, p, stream, site=0):
        super().__init__()
        self.p = float(p)
        self.stream = stream
        self.site = int(site)

    def forward(self, X, keys=None, site=None):
        if not self.training or self.p == 0:
            return X
        if keys is None:
            keys = row_keys(X)
        salt = self.stream.salt(self.site if site is None else site)
        rows = _mix32(keys.view(-1, 1) ^ salt)
        draws = _mix32_light(rows ^ _position_hashes(X[0].numel(), X.device))
        keep = (draws >= int(round(self.p * 2**32))).view(X.shape)
        return X * keep.to(X.dtype).div_(1 - self.p)

    def extra_repr(self):
        return f"p={self.p}, site={self.site}"


def weighted_batch_norm(X, sample_weight, running_mean, running_var, weight, bias, momentum,
                        eps):
    """Batch normalisation of ``X`` (``(N, C, *spatial)``) in training, with
    the statistics of the samples weighted by ``sample_weight`` (``(N,)``):
    a sample of weight ``k`` counts as ``k`` copies, one of weight 0 not at
    all. The running statistics, when given, move towards the batch's by
    ``momentum``, the variance corrected with the total weight as the
    sample count; ``weight`` and ``bias`` (None: no affine map) are the
    affine parameters."""
    dims = [0, *range(2, X.dim())]
    shape = (1, -1, *[1] * (X.dim() - 2))
    positions = X[0, 0].numel()
    share = (sample_weight / sample_weight.sum()).to(X.dtype).view(-1, *[1] * (X.dim() - 1))
    mean = (X * share).sum(dims) / positions
    centred = X - mean.view(shape)
    var = (centred.square() * share).sum(dims) / positions
    if running_mean is not None:
        with torch.no_grad():
            count = sample_weight.sum().to(var.dtype) * positions
            unbias = torch.where(count > 1, count / (count - 1).clamp_min(1e-12), 1.0)
            running_mean.lerp_(mean.detach().to(running_mean.dtype), momentum)
            running_var.lerp_((var.detach() * unbias).to(running_var.dtype), momentum)
    out = centred * torch.rsqrt(var + eps).view(shape)
    if weight is not None:
        out = out * weight.view(shape) + bias.view(shape)
    return out


class _WeightedNorm:
    """Batch normalisation whose training statistics honour sample weights.

    With ``sample_weight`` in training, the batch mean and variance are the
    weighted ones (a sample of weight ``k`` counts as ``k`` copies, one of
    weight 0 not at all), and the running variance is corrected with the
    total weight as the sample count (:func:`weighted_batch_norm`). Without
    weights it is torch's.
    """

    def forward(self, X, sample_weight=None):
        if sample_weight is None or not self.training:
            return super().forward(X)
        running_mean = running_var = None
        momentum = 0.0
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
            momentum = (
                1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            )
            running_mean, running_var = self.running_mean, self.running_var
        affine = (self.weight, self.bias) if self.affine else (None, None)
        return weighted_batch_norm(X, sample_weight, running_mean, running_var, *affine,
                                   momentum, self.eps)


class BatchNorm1d(_WeightedNorm, nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` with sample-weighted training statistics."""


class BatchNorm2d(_WeightedNorm, nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` with sample-weighted training statistics."""


def glorot_uniform_(weight, bias, activation, generator):
    """Initialise a layer as scikit-learn's MLP does (Glorot uniform).

    The bound is ``sqrt(6 / (fan_in + fan_out))``, or ``sqrt(2 / ...)`` for
    the logistic activation; weights and biases are both drawn from it. For a
    convolution, fans count the receptive field as Glorot and He do.
    """
    fan_out, fan_in = weight.shape[0], weight.shape[1]
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    factor = ACTIVATIONS[activation].glorot_factor
    bound = math.sqrt(factor / (fan_in * receptive + fan_out * receptive))
    with torch.no_grad():
        w = torch.empty(weight.shape, dtype=torch.float64)
        w.uniform_(-bound, bound, generator=generator)
        weight.copy_(w)
        if bias is not None:
            b = torch.empty(bias.shape, dtype=torch.float64)
            b.uniform_(-bound, bound, generator=generator)
            bias.copy_(b)


class MLPModule(nn.Module):
    """Fully connected network: ``Linear -> activation [-> Dropout]`` blocks.

    Parameters
    ----------
    n_features : int
        Width of the input.
    hidden_layer_sizes : tuple of int
        Units of each hidden layer.
    n_outputs : int
        Width of the output layer (no output activation).
    activation : str, default='relu'
        Key of :data:`~sknets._registry.ACTIVATIONS`.
    dropout : float, default=0.0
        Dropout probability after each hidden activation.
    seed : int, default=0
        Seed of the initialisation: scikit-learn's Glorot uniform draws from
        ``numpy.random.RandomState(seed)``, on the CPU, so that the same seed
        gives the same weights on every device (and, for an int
        ``random_state``, scikit-learn's initial weights). Dropout
        draws from ``stream`` (or a :class:`RandomStream` of this seed).
    stream : RandomStream, default=None
        Where the dropout masks come from.
    """

    def __init__(
        self,
        n_features,
        hidden_layer_sizes,
        n_outputs,
        activation="relu",
        dropout=0.0,
        seed=0,
        stream=None,
    ):
        super().__init__()
        widths = [n_features, *hidden_layer_sizes, n_outputs]
        self.layers = nn.ModuleList(
            # skip_init: torch's own initialisation would draw from the global
            # generator; the seeded Glorot initialisation below replaces it
            nn.utils.skip_init(nn.Linear, fan_in, fan_out)
            for fan_in, fan_out in zip(widths, widths[1:])
        )
        self.activation = ACTIVATIONS[activation]()
        #: the activation's registry name (for the closed-form step)
        self.activation_name = activation
        self.stream = RandomStream(seed) if stream is None else stream
        self.dropout = Dropout(dropout, self.stream) if dropout > 0 else nn.Identity()
        # scikit-learn's initialisation, draw for draw: Glorot uniform from a
        # numpy RandomState(seed), coefs then intercepts, layer by layer, so
        # an int random_state starts from scikit-learn's very weights
        rng = np.random.RandomState(int(seed))
        factor = ACTIVATIONS[activation].glorot_factor
        with torch.no_grad():
            for layer in self.layers:
                fan_out, fan_in = layer.weight.shape
                bound = math.sqrt(factor / (fan_in + fan_out))
                coef = rng.uniform(-bound, bound, (fan_in, fan_out))
                layer.weight.copy_(torch.from_numpy(coef.T.copy()))
                layer.bias.copy_(torch.from_numpy(rng.uniform(-bound, bound, fan_out)))

    @property
    def draws_random(self):
        """Whether training draws random numbers (dropout)."""
        return isinstance(self.dropout, Dropout)

    def reseed(self, seed):
        """Restart the dropout masks from ``seed``."""
        self.stream.reseed(seed)

    def forward(self, X, sample_weight=None, keys=None, site=0):
        """Raw outputs. ``sample_weight`` is accepted for a uniform module
        signature (nothing here depends on it). ``keys`` are the samples'
        :func:`row_keys` for the dropout masks (computed when not given).
        A ``site`` above 0 means this network is another module's head: that
        module has started the pass, and the masks are keyed by its samples'
        ``keys``, from dropout site ``site`` on.
        """
        *hidden, last = self.layers
        dropping = self.training and isinstance(self.dropout, Dropout)
        if dropping and site == 0:
            keys = row_keys(X) if keys is None else keys
            self.stream.advance()
        for i, layer in enumerate(hidden):
            X = self.activation(layer(X))
            X = self.dropout(X, keys, site + i) if dropping else self.dropout(X)
        return last(X)


def shift_samples(X, offsets, s):
    """``X`` of shape ``(N, C, *spatial)`` with sample ``i`` translated by
    ``offsets[axis, i] - s`` positions along each spatial axis (``offsets``
    of shape ``(n_axes, N, 1)``, in ``[0, 2s]``), the edge values filling
    the vacated border (:meth:`ConvModule.shift`)."""
    n, spatial = X.shape[0], X.shape[2:]
    device = X.device
    padded = nn.functional.pad(X, (s, s) * len(spatial), mode="replicate")
    ndim = X.dim()
    index = [
        torch.arange(n, device=device).view(-1, *[1] * (ndim - 1)),
        torch.arange(X.shape[1], device=device).view(1, -1, *[1] * (ndim - 2)),
    ]
    for axis, size in enumerate(spatial):
        pos = torch.arange(size, device=device) + offsets[axis]
        shape = [n, *[1] * (ndim - 1)]
        shape[2 + axis] = size
        index.append(pos.view(shape))
    return padded[tuple(index)]


class ConvModule(nn.Module):
    """Small VGG-style convolutional network with a dense head.

    Each conv block is ``Conv -> [BatchNorm] -> activation -> MaxPool ->
    [Dropout]``; the head is an :class:`MLPModule` on the flattened features, or on their
    per-channel means with ``global_pool=True``.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)`` for images (2-D convolutions) or ``(C, L)`` for
        signals (1-D convolutions).
    filters : tuple of int
        Output channels of each conv block.
    kernel_size : int
        Side of every convolution kernel (``'same'`` padding).
    pool_size : int
        Max-pooling window after each block; a block whose spatial size is
        already smaller than the window is not pooled.
    hidden_layer_sizes : tuple of int
        Units of the dense head's hidden layers.
    n_outputs : int
        Width of the output layer.
    activation : str, default='relu'
    dropout : float, default=0.0
        Dropout probability in the dense head.
    batch_norm : bool, default=True
    conv_dropout : float, default=0.0
        Dropout probability at the end of each conv block.
    seed : int, default=0
        Seed of the initialisation (drawn on the CPU, so the same on every
        device) and of the random shifts.
    global_pool : bool, default=False
        Average each channel of the last feature map over its positions
        before the head, instead of flattening it.
    random_shift : int, default=0
        Data augmentation in training mode only: every sample of a batch is
        translated by its own random whole number of positions in
        ``[-random_shift, random_shift]`` along each spatial axis, the edge
        values filling the vacated border. The offsets are drawn from the
        module's own :class:`RandomStream` on the input's device, seeded
        with ``seed`` (see :meth:`reseed`), as are the dropout masks; torch's
        default generators are not used.

    Notes
    -----
    Older torch versions refuse draws from a generator other than torch's
    default ones during CUDA graph capture, so training steps with
    ``random_shift > 0`` should run eagerly, not as CUDA graphs
    (:class:`~sknets.ConvClassifier` does so).
    """

    def __init__(
        self,
        input_shape,
        filters,
        kernel_size,
        pool_size,
        hidden_layer_sizes,
        n_outputs,
        activation="relu",
        dropout=0.0,
        batch_norm=True,
        seed=0,
        global_pool=False,
        random_shift=0,
        conv_dropout=0.0,
    ):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.global_pool = bool(global_pool)
        self.random_shift = int(random_shift)
        # dropout masks and shifts draw from one stream of the module's own
        self.stream = RandomStream(seed)
        ndim = len(self.input_shape) - 1
        conv, norm, pool = {
            1: (nn.Conv1d, BatchNorm1d, nn.MaxPool1d),
            2: (nn.Conv2d, BatchNorm2d, nn.MaxPool2d),
        }[ndim]
        generator = torch.Generator().manual_seed(int(seed))
        blocks = []
        #: positions per channel each batch norm normalises over, per sample
        self.norm_positions = []
        channels, spatial = self.input_shape[0], list(self.input_shape[1:])
        for out_channels in filters:
            layer = nn.utils.skip_init(
                conv,
                channels,
                out_channels,
                kernel_size,
                padding=kernel_size // 2,
                bias=not batch_norm,
            )
            glorot_uniform_(layer.weight, layer.bias, activation, generator)
            blocks.append(layer)
            # 'same' padding keeps the size for odd kernels; even ones grow by 1
            spatial = [s + 2 * (kernel_size // 2) - kernel_size + 1 for s in spatial]
            if batch_norm:
                blocks.append(norm(out_channels))
                self.norm_positions.append(math.prod(spatial))
            blocks.append(ACTIVATIONS[activation]())
            if pool_size > 1 and min(spatial) >= pool_size:
                blocks.append(pool(pool_size))
                spatial = [s // pool_size for s in spatial]
            if conv_dropout > 0:
                blocks.append(Dropout(conv_dropout, self.stream, site=len(blocks)))
            channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.n_flat = channels if self.global_pool else channels * math.prod(spatial)
        self.head = MLPModule(
            self.n_flat,
            hidden_layer_sizes,
            n_outputs,
            activation=activation,
            dropout=dropout,
            seed=int(torch.randint(2**31 - 1, (1,), generator=generator)),
            stream=self.stream,
        )
        self._draws_random = self.random_shift > 0 or self.head.draws_random or any(
            isinstance(m, Dropout) for m in self.features
        )

    @property
    def draws_random(self):
        """Whether training draws random numbers (dropout, random shifts);
        fixed by the architecture, so found once (it is read every step)."""
        return self._draws_random

    def reseed(self, seed):
        """Restart the random shifts and dropout masks from ``seed``.

        The generator itself is created on the first draw, on that batch's
        device; the estimator reseeds it before each call of ``fit`` or
        ``partial_fit``.
        """
        self.stream.reseed(seed)

    def shift(self, X):
        """``X`` of shape ``(N, C, *spatial)``, each sample randomly translated."""
        s = self.random_shift
        device = X.device
        # one offset in [0, 2s] per sample and axis; offset s is no shift
        offsets = torch.randint(
            0,
            2 * s + 1,
            (X.dim() - 2, X.shape[0], 1),
            device=device,
            generator=self.stream.generator(device),
        )
        return shift_samples(X, offsets, s)

    def _samples(self, X):
        X = X.reshape(X.shape[0], *self.input_shape)
        if X.is_cuda and X.dim() == 4:
            X = X.contiguous(memory_format=torch.channels_last)
        return X

    @torch.no_grad()
    def refresh_batch_norm(self, batches):
        """Set the running statistics of the batch norms to those of ``batches``.

        During training each batch norm keeps exponential averages of the
        batch statistics, which mix in statistics of the weights of earlier
        steps. This recomputes them with the current weights ("precise
        batch norm"): the mean and variance of each batch norm's input over
        the samples of ``batches``, an iterable of input tensors, unshifted,
        or of ``(X, sample_weight)`` pairs for weighted statistics (a sample
        of weight ``k`` counts as ``k`` copies). Each batch is normalised
        with its own statistics, as in training, so batches should not be
        tiny. Dropout is off, as in prediction: the statistics are those of
        the inputs the batch norms see when the network predicts.
        """
        norms = [m for m in self.features if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        training = self.features.training
        for m in norms:
            m.reset_running_stats()
        self.features.train()
        for m in self.features:
            if isinstance(m, Dropout):
                m.eval()
        try:
            seen = 0.0
            for batch in batches:
                X, w = batch if isinstance(batch, (tuple, list)) else (batch, None)
                n = X.shape[0] if w is None else float(w.sum())
                if n <= 0:
                    continue
                seen += n
                # running = running + (n / seen) * (batch - running): the
                # average over the samples seen so far
                for m in norms:
                    m.momentum = n / seen
                self._features(self._samples(X), w, None)
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self.features.train(training)

    def _features(self, X, sample_weight, keys):
        for m in self.features:
            if isinstance(m, _WeightedNorm):
                X = m(X, sample_weight)
            elif isinstance(m, Dropout):
                X = m(X, keys)
            else:
                X = m(X)
        return X

    def forward(self, X, sample_weight=None, keys=None):
        """Raw outputs for ``X`` of shape ``(N, *input_shape)`` or flat.

        In training, ``sample_weight`` weights the batch-norm statistics, and
        the dropout masks are keyed by the samples: ``keys`` are their
        :func:`row_keys` (computed from the unshifted ``X`` when not given).
        """
        if self.training and self.draws_random:
            keys = row_keys(X) if keys is None else keys
            self.stream.advance()
        else:
            keys = None
        X = X.reshape(X.shape[0], *self.input_shape)
        if self.training and self.random_shift > 0:
            X = self.shift(X)
        X = self._features(self._samples(X), sample_weight, keys)
        X = X.mean(dim=tuple(range(2, X.dim()))) if self.global_pool else X.flatten(1)
        return self.head(X, keys=keys, site=len(self.features))


#: Layer types whose weights the L2 penalty applies to, with the names of
#: their penalised parameters: the weight matrices and kernels, never
#: biases or normalisation parameters.
PENALIZED_LAYERS = (
    (nn.Linear, lambda m: [m.weight]),
    (nn.Bilinear, lambda m: [m.weight]),
    (nn.modules.conv._ConvNd, lambda m: [m.weight]),
    (nn.RNNBase, lambda m: [p for name, p in m.named_parameters() if name.startswith("weight_")]),
    (nn.MultiheadAttention, lambda m: [
        p for name, p in m.named_parameters(recurse=False) if name.endswith("weight")
    ]),
)


def penalized_parameters(module):
    """The parameters that the L2 penalty ``alpha`` applies to.

    Chosen by layer type, not by parameter name: the weights of dense,
    bilinear and convolution layers, the input and hidden weights of
    recurrent layers (``weight_ih_l0``, ``weight_hh_l0``, ...) and the
    projections of attention (:data:`PENALIZED_LAYERS`); no biases, no
    normalisation parameters. A module with a ``penalized_parameters()``
    method declares its own, for itself and its children.
    """
    seen, params = set(), []

    def visit(m):
        if m is not module and hasattr(m, "penalized_parameters"):
            found = list(m.penalized_parameters())
        else:
            found = []
            for kind, select in PENALIZED_LAYERS:
                if isinstance(m, kind):
                    found = select(m)
                    break
            for child in m.children():
                visit(child)
        for p in found:
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)

    visit(module)
    return params
