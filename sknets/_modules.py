"""Plain PyTorch modules built by the estimators, and the string registries.

Nothing here knows about scikit-learn: a module takes the facts learnt from
the data (input width, number of outputs) and the architecture parameters,
and returns raw outputs (logits for classifiers, the linear predictor for
regressors). The output activation is applied by the estimator at prediction
time, and the matching loss works on the raw outputs for numerical stability.
"""

import math

import numpy as np
import torch
from torch import nn

#: Hidden-layer activations by name. ``'logistic'`` is scikit-learn's name
#: for the sigmoid; ``'sigmoid'`` is accepted as the Keras spelling.
ACTIVATIONS = {
    "identity": nn.Identity,
    "logistic": nn.Sigmoid,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


class RandomStream:
    """A seeded :class:`torch.Generator` per device, made on first use.

    The random draws of training (dropout masks, random shifts) come from
    here, never from torch's global generators, so fits in several threads
    do not disturb each other or the caller's random state. It pickles as
    its seed: after unpickling the stream restarts from the seed.
    """

    def __init__(self, seed=0):
        self.reseed(seed)

    def reseed(self, seed):
        """Restart the stream from ``seed``."""
        self.seed = int(seed)
        self._generator = None

    def generator(self, device):
        generator = self._generator
        if generator is None or generator.device != device:
            generator = torch.Generator(device=device).manual_seed(self.seed)
            self._generator = generator
        return generator

    def __getstate__(self):
        # a generator does not pickle on every supported torch
        return {"seed": self.seed, "_generator": None}


class Dropout(nn.Module):
    """Inverted dropout whose masks come from a :class:`RandomStream`.

    The same arithmetic as :class:`torch.nn.Dropout` (zero each value with
    probability ``p`` in training and scale the others by ``1 / (1 - p)``),
    drawn from the stream's generator rather than torch's global one.
    """

    def __init__(self, p, stream):
        super().__init__()
        self.p = float(p)
        self.stream = stream

    def forward(self, X):
        if not self.training or self.p == 0:
            return X
        keep = torch.empty_like(X).bernoulli_(1 - self.p, generator=self.stream.generator(X.device))
        return X * keep.div_(1 - self.p)

    def extra_repr(self):
        return f"p={self.p}"


def glorot_uniform_(weight, bias, activation, generator):
    """Initialise a layer as scikit-learn's MLP does (Glorot uniform).

    The bound is ``sqrt(6 / (fan_in + fan_out))``, or ``sqrt(2 / ...)`` for
    the logistic activation; weights and biases are both drawn from it. For a
    convolution, fans count the receptive field as Glorot and He do.
    """
    fan_out, fan_in = weight.shape[0], weight.shape[1]
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    factor = 2.0 if activation in ("logistic", "sigmoid") else 6.0
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
        Key of :data:`ACTIVATIONS`.
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
        self.stream = RandomStream(seed) if stream is None else stream
        self.dropout = Dropout(dropout, self.stream) if dropout > 0 else nn.Identity()
        # scikit-learn's initialisation, draw for draw: Glorot uniform from a
        # numpy RandomState(seed), coefs then intercepts, layer by layer, so
        # an int random_state starts from scikit-learn's very weights
        rng = np.random.RandomState(int(seed))
        factor = 2.0 if activation in ("logistic", "sigmoid") else 6.0
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

    def forward(self, X):
        *hidden, last = self.layers
        for layer in hidden:
            X = self.dropout(self.activation(layer(X)))
        return last(X)


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
            1: (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d),
            2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d),
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
                blocks.append(Dropout(conv_dropout, self.stream))
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

    @property
    def draws_random(self):
        """Whether training draws random numbers (dropout, random shifts)."""
        return self.random_shift > 0 or self.head.draws_random or any(
            isinstance(m, Dropout) for m in self.features
        )

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
        n, spatial = X.shape[0], X.shape[2:]
        device = X.device
        padded = nn.functional.pad(X, (s, s) * len(spatial), mode="replicate")
        # one offset in [0, 2s] per sample and axis; offset s is no shift
        offsets = torch.randint(
            0, 2 * s + 1, (len(spatial), n, 1), device=device, generator=self.stream.generator(device)
        )
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
        the samples of ``batches``, an iterable of input tensors, unshifted.
        Each batch is normalised with its own statistics, as in training, so
        batches should not be tiny. Dropout is off, as in prediction: the
        statistics are those of the inputs the batch norms see when the
        network predicts.
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
            seen = 0
            for X in batches:
                n = X.shape[0]
                seen += n
                # running = running + (n / seen) * (batch - running): the
                # average over the samples seen so far
                for m in norms:
                    m.momentum = n / seen
                self.features(self._samples(X))
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self.features.train(training)

    def forward(self, X):
        X = X.reshape(X.shape[0], *self.input_shape)
        if self.training and self.random_shift > 0:
            X = self.shift(X)
        X = self.features(self._samples(X))
        X = X.mean(dim=tuple(range(2, X.dim()))) if self.global_pool else X.flatten(1)
        return self.head(X)


def penalized_parameters(module):
    """Weights that the L2 penalty ``alpha`` applies to (no biases, no norms).

    These are the parameters of dense and convolution layers whose name ends
    in ``weight`` and that have at least two dimensions.
    """
    return [
        p for name, p in module.named_parameters() if name.endswith("weight") and p.dim() >= 2
    ]
