"""Convolutional networks: ConvClassifier and ConvRegressor."""

import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import _ClassifierNet, _RegressorNet, _warn_user
from ._modules import ConvModule
from ._registry import SOLVERS


def _as_array_if_nested(X):
    """Lists of lists of lists become arrays, so that their ndim is known."""
    if isinstance(X, (list, tuple)):
        return np.asarray(X)
    return X


#: Sizes of a last axis that looks like channels (grey, RGB, RGBA).
_CHANNEL_SIZES = (1, 3, 4)


class _ConvMixin:
    """What the convolutional estimators share: the rules that read X as
    images or signals (``input_shape``), the :class:`~sknets._modules.ConvModule`
    they build, the batch checks of batch normalisation and the recomputation
    of its statistics at the end of ``fit``.

    It comes before :class:`~sknets._base._ClassifierNet` or
    :class:`~sknets._base._RegressorNet` in the bases of an estimator, whose
    ``_parameter_constraints`` merge the base's with this mixin's, which
    holds the convolution parameters only. What is not about convolutions
    stays with the estimator: ``label_smoothing`` (the classifier's
    ``_criterion_kwargs``), the multilabel tag, ``loss`` of the regressor.
    """

    _parameter_constraints: dict = {
        "input_shape": [tuple, list, None],
        "filters": ["array-like"],
        "kernel_size": [Interval(Integral, 1, None, closed="left")],
        "pool_size": [Interval(Integral, 1, None, closed="left")],
        "batch_norm": ["boolean"],
        "signal": ["boolean", StrOptions({"auto"})],
        "random_shift": [Interval(Integral, 0, None, closed="left")],
        "global_pool": ["boolean"],
        "conv_dropout": [Interval(Real, 0, 1, closed="left")],
        "data_format": [StrOptions({"channels_first", "channels_last"})],
    }

    # -- input shapes -----------------------------------------------------------------

    def _reading(self, fitted):
        """The ``(signal, data_format)`` that read X: the parameters in
        ``fit`` and ``partial_fit``, and in prediction those of the last fit,
        so that a ``set_params`` after fitting does not change how the
        fitted network reads its input."""
        if fitted:
            return getattr(self, "_x_reading", (self.signal, self.data_format))
        return self.signal, self.data_format

    def _normalize_shape(self, shape, reading, source="input_shape"):
        """``(C, H, W)`` for images, ``(C, L)`` for signals, from a sample
        shape in the order of the ``reading``'s ``data_format``."""
        shape = tuple(int(s) for s in shape)
        if any(s <= 0 for s in shape) or not 1 <= len(shape) <= 3:
            raise ValueError(
                f"{source} must be (C, H, W), (H, W), (C, L) or (L,) with positive "
                f"entries ((H, W, C) and (L, C) with data_format='channels_last'), "
                f"got {shape}."
            )
        if len(shape) == 1:
            return (1, shape[0])
        if len(shape) == 2 and not self._reads_signals(shape, reading):
            return (1, *shape)
        if reading[1] == "channels_last":
            return (shape[-1], *shape[:-1])
        return shape

    @staticmethod
    def _reads_signals(shape, reading):
        """Whether a two-axis sample ``shape`` is ``(C, L)`` signals rather
        than ``(H, W)`` images. ``signal='auto'`` reads it as one-channel
        signals when its channel axis (the first, or the last with
        ``data_format='channels_last'``) has one value: an image one pixel
        high is a signal, and 2-D convolutions could not pool it."""
        signal, data_format = reading
        if isinstance(signal, str):  # 'auto'
            channels = shape[-1] if data_format == "channels_last" else shape[0]
            return channels == 1
        return bool(signal)

    def _channels_first(self, X, reading):
        """Flat rows of ``data_format='channels_last'`` samples, reordered to
        the channels-first order of the network (``input_shape_``)."""
        shape = self.input_shape_
        if reading[1] != "channels_last" or shape[0] == 1:
            return X
        n = X.shape[0]
        X = X.reshape(n, *shape[1:], shape[0])
        if isinstance(X, torch.Tensor):  # scikit-learn's array API: where it is
            return X.movedim(-1, 1).contiguous().reshape(n, -1)
        return np.ascontiguousarray(np.moveaxis(X, -1, 1)).reshape(n, -1)

    def _warn_channels_last(self, reading):
        """Warn when a channels-first reading looks like Keras' channels-last
        layout: a last axis of 1, 3 or 4 values (grey, RGB, RGBA) after a
        first axis that is not, or, with ``signal='auto'``, one-channel images
        one pixel wide (Keras' ``(steps, 1)`` signals read as ``(H, W)``
        images)."""
        shape = self.input_shape_
        signal, data_format = reading
        if data_format != "channels_first":
            return
        one_wide = len(shape) == 3 and shape[0] == shape[2] == 1
        if one_wide and isinstance(signal, str) and shape[1] not in _CHANNEL_SIZES:
            shape = shape[1:]
            reading = f"one-channel {shape[0]}x1 images"
            layout = "signals: (n_samples, steps, channels)"
        elif shape[-1] not in _CHANNEL_SIZES or shape[0] in _CHANNEL_SIZES:
            return
        elif len(shape) == 3:
            reading = f"{shape[0]} channels of {shape[1]}x{shape[2]} images"
            layout = "images: (n_samples, height, width, channels)"
        else:
            reading = f"{shape[0]} channels of signals of length {shape[1]}"
            layout = "signals: (n_samples, steps, channels)"
        _warn_user(
            f"{type(self).__name__} reads samples of shape {shape} as {reading} "
            f"(data_format='channels_first', the default), but their last axis "
            f"looks like channels. If X is laid out channels last, as Keras lays "
            f"out {layout}, pass data_format='channels_last'.",
            UserWarning,
        )

    def _sample_shape(self, X, reset, reading):
        """Flatten an n-D X; return it with the sample shape it implies."""
        X = _as_array_if_nested(X)
        nd_shape = None
        if getattr(X, "ndim", 2) > 2:
            nd_shape = self._normalize_shape(X.shape[1:], reading, "The samples of X")
            X = X.reshape(X.shape[0], -1)
        if not reset:
            if nd_shape is not None and nd_shape != self.input_shape_:
                raise ValueError(
                    f"X has samples of shape {nd_shape}, but {type(self).__name__} "
                    f"was fitted on samples of shape {self.input_shape_}."
                )
            return X, self.input_shape_
        return X, nd_shape

    def _resolve_input_shape(self, n_features, nd_shape, reading):
        if self.input_shape is not None:
            shape = self._normalize_shape(self.input_shape, reading)
            if nd_shape is not None and nd_shape != shape:
                raise ValueError(
                    f"input_shape={tuple(self.input_shape)} does not match the "
                    f"samples of X, of shape {nd_shape}."
                )
            if math.prod(shape) != n_features:
                raise ValueError(
                    f"input_shape={tuple(self.input_shape)} has {math.prod(shape)} "
                    f"values per sample, but X has {n_features} features."
                )
            return shape
        if nd_shape is not None:
            return nd_shape
        side = math.isqrt(n_features)
        signal = reading[0]
        if side * side == n_features and (isinstance(signal, str) or not signal):
            return (1, side, side)
        return (1, n_features)

    def _validate_Xy(self, X, y, reset):
        reading = self._reading(fitted=False)
        X, nd_shape = self._sample_shape(X, reset, reading)
        X, y = super()._validate_Xy(X, y, reset)
        if reset:
            self.input_shape_ = self._resolve_input_shape(X.shape[1], nd_shape, reading)
            self._warn_channels_last(reading)
        self._x_reading = reading
        return self._channels_first(X, reading), y

    def _validate_X(self, X, reset):
        reading = self._reading(fitted=True)
        X, _ = self._sample_shape(X, False, reading)
        return self._channels_first(super()._validate_X(X, reset), reading)

    # -- the network ------------------------------------------------------------------

    def _build_module(self, input_shape, n_outputs, seed):
        filters = [int(f) for f in np.atleast_1d(self.filters)]
        if any(f <= 0 for f in filters):
            raise ValueError(f"filters must be > 0, got {list(self.filters)}.")
        self.n_layers_ = len(filters) + len(self._hidden_sizes()) + 2
        return ConvModule, {
            "input_shape": self.input_shape_,
            "filters": tuple(filters),
            "kernel_size": self.kernel_size,
            "pool_size": self.pool_size,
            "hidden_layer_sizes": tuple(self._hidden_sizes()),
            "n_outputs": n_outputs,
            "activation": self.activation,
            "dropout": self.dropout,
            "conv_dropout": self.conv_dropout,
            "batch_norm": self.batch_norm,
            "seed": seed,
            "global_pool": self.global_pool,
            # full-batch solvers see the data as they are
            "random_shift": self.random_shift if SOLVERS[self.solver].stochastic else 0,
        }

    def _check_batches(self, batch_rows):
        """Batch normalisation needs two values per channel: a batch of one
        sample whose feature map is a single position cannot train."""
        positions = self.net_.module_.norm_positions
        if positions and min(batch_rows) * min(positions) < 2:
            raise ValueError(
                f"{type(self).__name__} with batch_norm=True cannot train on a batch of "
                f"{min(batch_rows)} sample(s) here: a feature map of input_shape_="
                f"{self.input_shape_} shrinks to {min(positions)} position(s), which "
                "leaves one value per channel to normalise. Train on more samples, "
                "use another batch_size (the last batch of an epoch holds the "
                "remaining rows), fewer or smaller pool_size, or batch_norm=False."
            )

    def _fit_stochastic(self, X, targets, sample_weight, incremental, seed, val=None):
        super()._fit_stochastic(X, targets, sample_weight, incremental, seed, val)
        if self.batch_norm and not incremental:
            self._refresh_batch_norm(X, sample_weight)

    def _fit_lbfgs(self, X, targets, sample_weight):
        super()._fit_lbfgs(X, targets, sample_weight)
        if self.batch_norm:
            self._refresh_batch_norm(X, sample_weight)

    # -- the seam with model selection (see sknets._seam) ----------------------------

    def _training_plan(self, X, y):
        plan = super()._training_plan(X, y)
        # what the fit checks before its first step
        self._check_batches(self._batch_rows(len(plan.train_rows), plan.batch_size))
        plan.module = dict(self.net_.get_params_for("module"))
        return plan

    def _layer_weights(self):
        """The network's weights for a plan: its module's state dict."""
        return {k: v.detach().cpu().clone() for k, v in self.net_.module_.state_dict().items()}

    def _load_layer_weights(self, layers):
        self.net_.module_.load_state_dict(layers)

    def _adopt_trained(self, result, X, sample_weight):
        # as _fit_stochastic: the batch-norm statistics of the final weights
        super()._adopt_trained(result, X, sample_weight)
        if self.batch_norm:
            self._refresh_batch_norm(X, sample_weight)

    def _refresh_batch_norm(self, X, sample_weight=None, chunk_rows=1024):
        """Recompute the batch-norm statistics over X with the final weights
        (sample-weighted when ``sample_weight`` is given)."""
        net = self.net_
        chunks = np.array_split(np.arange(X.shape[0]), max(1, -(-X.shape[0] // chunk_rows)))

        def tensor(a):
            return torch.as_tensor(a, dtype=net.dtype).to(net.torch_device)

        if sample_weight is not None and np.all(np.asarray(sample_weight) == 1):
            sample_weight = None
        batches = (
            tensor(X[idx])
            if sample_weight is None
            else (tensor(X[idx]), tensor(sample_weight[idx]))
            for idx in chunks
        )
        with net.autocast():
            net.module_.refresh_batch_norm(batches)


class ConvClassifier(ClassifierMixin, _ConvMixin, _ClassifierNet):
    """Convolutional neural network classifier for images and 1-D signals.

    A small VGG-style network: conv blocks (``Conv -> BatchNorm -> ReLU ->
    MaxPool -> Dropout``) followed by a dense head with dropout, trained
    with PyTorch through skorch on the GPU when there is one. It takes
    flattened samples, so that it works after ``MinMaxScaler`` in a
    :class:`~sklearn.pipeline.Pipeline`, as well as image arrays.

    **How X is read.** A 2-D X holds one flattened sample per row (in C
    order) and ``input_shape`` says how to unflatten it. With
    ``input_shape=None``, a width that is a perfect square (64, 784, ...) is
    read as one-channel square images, and any other width as a one-channel
    1-D signal. A 3-D X of shape ``(n, H, W)`` is read as one-channel images,
    ``(n, 1, L)`` as one-channel signals (``(n, C, L)`` signals with
    ``signal=True``), and a 4-D X of shape ``(n, C, H, W)`` as ``C``-channel
    images. Images use 2-D convolutions and signals 1-D convolutions.
    Prediction takes X in the form of the training data or flattened, and
    reads it as the fit did (``signal`` and ``data_format`` changed after
    fitting take effect at the next fit). With
    ``data_format='channels_last'`` the channels come last instead, as in
    Keras: ``(n, H, W, C)`` images and ``(n, L, C)`` signals (and flattened
    rows of them). A channels-first reading whose last axis looks like
    channels (1, 3 or 4 values, when the first axis does not) warns, as does
    an ``(n, L, 1)`` X read as images one pixel wide.

    **Defaults.** The network is a small VGG-style convnet sized for small
    inputs: two conv blocks of 16 and 32 filters with batch normalisation,
    a dense head of 128 units with dropout 0.5, and label smoothing 0.1 on
    the log loss. On inputs such as the 8x8 digits and MNIST-1D's signals
    a 5-fold cross-validation takes seconds on a laptop's CPU; the accuracy
    and time it reaches there are measured in ``benchmarks/RESULTS.md``.
    Larger images can use more filters (``filters=(32, 64)`` and up) and
    ``conv_dropout=0.25``, the classic introductory convnet's. The training
    parameters are :class:`MLPClassifier`'s, but for
    ``learning_rate_init=0.003``, ``tol=1e-2`` and ``max_iter=100``. Under
    dropout the training loss moves by about a hundredth from one epoch to
    the next, so scikit-learn's ``tol=1e-4`` would rarely see it stop
    improving and every fit would run to ``max_iter``; with ``tol=1e-2``
    scikit-learn's stopping rule ends the fit once the loss has stopped
    falling. A lower ``tol`` trains longer. With ``early_stopping=True``
    the same ``tol`` applies to the validation accuracy (one percentage
    point). Dropout slows learning on small data sets: with a few hundred
    samples, ``dropout=0`` can score higher. With a dense head of many
    inputs (large images, long signals) the first epoch's loss can jump at
    this learning rate before it falls; ``learning_rate_init=0.001`` avoids
    that.

    Parameters
    ----------
    input_shape : tuple of int, default=None
        Shape of one sample, in the order of ``data_format``: ``(C, H, W)``
        or ``(H, W)`` for images, ``(1, L)``, ``(L,)`` or ``(C, L)`` (with
        ``signal=True``) for signals; ``(H, W, C)`` and ``(L, C)`` with
        ``data_format='channels_last'``. None infers it as described above.
        A shape that does not match X raises a ValueError.
    filters : tuple of int, default=(16, 32)
        Output channels of each conv block. The default suits small inputs
        (images of tens of pixels a side, signals of tens of values).
    kernel_size : int, default=3
        Side of the convolution kernels (``'same'`` zero padding).
    pool_size : int, default=2
        Max-pooling window after each block (skipped once the feature map is
        smaller than the window).
    hidden_layer_sizes : tuple of int, default=(128,)
        Units of the dense head's hidden layers.
    activation : {'identity', 'logistic', 'sigmoid', 'tanh', 'relu', \
'leaky_relu', 'elu', 'gelu', 'silu'}, default='relu'
        Activation of conv blocks and dense layers.
    batch_norm : bool, default=True
        Batch normalisation after each convolution. At the end of ``fit``
        the running statistics that prediction uses are recomputed over the
        training data with the final weights and without dropout ("precise
        batch norm"), rather than left as averages over the weights of the
        last few dozen steps; short or high-learning-rate fits predict much
        better for it. ``partial_fit`` keeps the running averages.
    signal : bool or 'auto', default='auto'
        How a two-axis sample shape (a 2-entry ``input_shape``, or the
        samples of a 3-D X) is read: True reads it as ``(C, L)`` signals
        (1-D convolutions), False as ``(H, W)`` one-channel images (2-D
        convolutions). ``'auto'`` reads it as one-channel signals when its
        channel axis has one value, ``(1, L)`` (``(L, 1)`` with
        ``data_format='channels_last'``), and as images otherwise: an image
        one pixel high is a signal, and could not be pooled as an image.
        Multichannel signals need ``signal=True``.
    data_format : {'channels_first', 'channels_last'}, default='channels_first'
        Where the channels are in each sample of X and in ``input_shape``:
        first, as in PyTorch (``(C, H, W)``, ``(C, L)``), or last, as in
        Keras (``(H, W, C)``, ``(L, C)``). The network itself is channels
        first, and so is ``input_shape_``.
    random_shift : int, default=0
        Data augmentation: in training only, each sample of each batch is
        translated by its own random whole number of positions in
        ``[-random_shift, random_shift]`` along every spatial axis, the edge
        values filling the vacated border. Helps where the pattern can be
        anywhere (signals, uncentred images), not on centred, size-normalised
        images such as the digits. The offsets come from a generator of the
        network's own on the training device, seeded by ``random_state``. On
        CUDA, training steps with shifts run eagerly rather than as CUDA
        graphs, so they are slower. Not used by ``solver='lbfgs'``.
    global_pool : bool, default=False
        Average each channel of the last feature map over its positions
        before the dense head (global average pooling) rather than flatten
        it: fewer weights, and invariance to where a pattern is.
    solver : {'adam', 'sgd', 'lbfgs', 'rmsprop', 'adamw'}, default='adam'
        The optimizer, as in :class:`MLPClassifier`.
    alpha : float, default=0.0001
        Strength of the L2 penalty on the convolution kernels and dense
        weights, scaled as in :class:`MLPClassifier` (the decoupled weight
        decay with ``solver='adamw'``).
    batch_size : int or 'auto', default='auto'
        Size of the minibatches; ``'auto'`` is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning-rate schedule of ``solver='sgd'``, as in
        :class:`MLPClassifier`.
    learning_rate_init : float, default=0.003
        The initial learning rate (see Defaults above).
    power_t : float, default=0.5
        Exponent of the ``'invscaling'`` schedule.
    max_iter : int, default=100
        Maximum number of epochs (or L-BFGS iterations). Lower than the
        MLPs' 200 because each epoch of a convnet does more; the ``tol``
        rule usually stops earlier (see Defaults above).
    shuffle : bool, default=True
        Whether to shuffle the samples in each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the batch order, dropout, the random
        shifts and the early-stopping split. An int gives the same model on
        every CPU fit; the global numpy and torch random states are left
        untouched.
    tol : float, default=1e-2
        Training stops when the loss (or validation score) does not improve
        by at least ``tol`` for ``n_iter_no_change`` consecutive epochs.
        Higher than :class:`MLPClassifier`'s ``1e-4``, for the dropout's
        noise (see Defaults above).
    verbose : bool or int, default=False
        ``1`` prints one line per epoch (the training loss, the validation
        loss and score with ``early_stopping=True``, the seconds taken);
        ``2`` adds a progress bar, as in :class:`MLPClassifier`.
    warm_start : bool, default=False
        Reuse the previous solution as initialisation of the next ``fit``.
    momentum : float, default=0.9
        Momentum of ``solver='sgd'``, between 0 and 1.
    nesterovs_momentum : bool, default=True
        Whether to use Nesterov's momentum with ``solver='sgd'``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified
        in binary classification, as in scikit-learn) and stop when its
        accuracy stops improving; the best weights are kept. Nothing is
        held out when False.
    validation_fraction : float, default=0.1
        Proportion of the training data held out for early stopping.
    beta_1 : float, default=0.9
        Decay of the first moment estimates of Adam.
    beta_2 : float, default=0.999
        Decay of the second moment estimates of Adam.
    epsilon : float, default=1e-8
        Numerical stability term of Adam and RMSprop.
    n_iter_no_change : int, default=10
        Epochs without improvement by ``tol`` before stopping.
    max_fun : int, default=15000
        Maximum number of loss evaluations of ``solver='lbfgs'``.
    dropout : float, default=0.5
        Dropout probability after each hidden layer of the dense head. The
        masks are keyed by the sample (equal samples get equal masks in a
        step), so ``sample_weight`` keeps its meaning of repeated samples.
    conv_dropout : float, default=0.0
        Dropout probability at the end of each conv block (after the
        pooling); 0.25 is the classic introductory convnet's. Set both
        dropouts to 0 for a network without dropout.
    label_smoothing : float in [0, 1), default=0.1
        Label smoothing ``eps`` of the training loss: the network is fitted
        to targets that give each class ``eps / n_classes`` and the true
        class the rest (for two classes or multilabel targets, each
        output's 0/1 target becomes ``eps / 2`` / ``1 - eps / 2``). It keeps
        the network from growing ever more confident on the training data,
        so ``predict_proba`` of a well-fitted model tops out near
        ``1 - eps + eps / n_classes``; ``loss_``, ``loss_curve_`` and
        ``validation_loss_curve_`` are the smoothed loss. 0 fits the plain
        log loss, as :class:`MLPClassifier` does.
    device : str or torch.device, default='auto'
        Where to train: ``'auto'`` picks CUDA when available, else the CPU;
        ``'cpu'``, ``'cuda'`` and ``'cuda:1'`` are also accepted.
    precision : {'auto', 'float32', 'float64', 'bfloat16'}, default='auto'
        ``'auto'`` follows the input's dtype on a CPU (float64 X trains in
        float64) and is float32 on CUDA; ``'bfloat16'`` runs the network
        under autocast (fastest on GPUs). Predictions keep the dtype of the
        input.
    class_weight : dict, list of dict or 'balanced', default=None
        Weights of the classes, multiplied into ``sample_weight`` as in
        scikit-learn's other classifiers
        (:func:`sklearn.utils.class_weight.compute_sample_weight`):
        ``{class_label: weight}``, or ``'balanced'`` for weights inversely
        proportional to the class frequencies in y,
        ``n_samples / (n_classes * np.bincount(y))``. Multilabel y takes a
        list of dicts, one per column, or ``'balanced'``. A fit with
        ``class_weight`` trains exactly as the same fit with those sample
        weights. ``partial_fit`` takes a dict (``'balanced'`` would change
        with every batch: compute the weights once with
        :func:`~sklearn.utils.class_weight.compute_class_weight`). None:
        all classes weigh one.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    input_shape_ : tuple of int
        The sample shape of the network, channels first: ``(C, H, W)`` or
        ``(C, L)``.
    loss_ : float
        The loss at the end of training.
    best_loss_ : float or None
        The lowest training loss; None with ``early_stopping=True``.
    loss_curve_ : list of float
        The training loss after each epoch (stochastic solvers only).
    validation_scores_ : list of float or None
        Validation accuracy after each epoch with ``early_stopping=True``.
    validation_loss_curve_ : list of float or None
        The loss on the validation rows after each epoch with
        ``early_stopping=True`` (the training loss without the L2 penalty);
        also ``valid_loss`` in ``net_.history``.
    best_validation_score_ : float or None
        The best validation accuracy with ``early_stopping=True``.
    t_ : int
        Number of training samples seen.
    coefs_ : list of ndarray
        Weight matrices of the dense head, as in :class:`MLPClassifier`
        (the convolution kernels are in ``net_.module_``).
    intercepts_ : list of ndarray
        Bias vectors of the dense head.
    n_features_in_ : int
        Number of values per sample.
    n_iter_ : int
        Number of epochs (or L-BFGS iterations) run.
    n_layers_ : int
        Conv blocks plus dense layers plus the input layer.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        ``'logistic'`` (binary, multilabel) or ``'softmax'`` (multiclass).
    net_ : skorch.NeuralNet
        The trained skorch net; ``net_.module_`` is the torch module and
        ``net_.history`` the per-epoch history.

    See Also
    --------
    MLPClassifier : Fully connected network classifier.
    ConvRegressor : Convolutional network regressor.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from sknets import ConvClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = make_pipeline(
    ...     MinMaxScaler(),
    ...     ConvClassifier(input_shape=(1, 8, 8), max_iter=10, random_state=0),
    ... )
    >>> clf = clf.fit(X[:1000], y[:1000])
    >>> bool(clf.score(X[1000:], y[1000:]) > 0.85)
    True
    >>> clf[-1].input_shape_
    (1, 8, 8)
    >>> clf.predict_proba(X[:2]).shape
    (2, 10)
    """

    _parameter_constraints: dict = {
        **_ClassifierNet._parameter_constraints,
        **_ConvMixin._parameter_constraints,
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        input_shape=None,
        filters=(16, 32),
        kernel_size=3,
        pool_size=2,
        hidden_layer_sizes=(128,),
        activation="relu",
        *,
        batch_norm=True,
        signal="auto",
        data_format="channels_first",
        random_shift=0,
        global_pool=False,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.003,
        power_t=0.5,
        max_iter=100,
        shuffle=True,
        random_state=None,
        tol=1e-2,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dropout=0.5,
        conv_dropout=0.0,
        label_smoothing=0.1,
        device="auto",
        precision="auto",
        class_weight=None,
    ):
        self.input_shape = input_shape
        self.filters = filters
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.batch_norm = batch_norm
        self.signal = signal
        self.data_format = data_format
        self.random_shift = random_shift
        self.global_pool = global_pool
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.conv_dropout = conv_dropout
        self.label_smoothing = label_smoothing
        self.device = device
        self.precision = precision
        self.class_weight = class_weight

    def _criterion_kwargs(self):
        # a classification matter: ConvRegressor's loss takes no smoothing
        return {"label_smoothing": self.label_smoothing}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class ConvRegressor(RegressorMixin, _ConvMixin, _RegressorNet):
    """Convolutional neural network regressor for images and 1-D signals.

    The network of :class:`ConvClassifier` (conv blocks ``Conv -> ReLU ->
    MaxPool``, with optional batch normalisation and dropout, then a dense
    head) with a linear output layer of one unit per target, trained with
    PyTorch through skorch on the GPU when there is one. 1-D y gives 1-D
    predictions; 2-D y is multi-output. It takes flattened samples, so that
    it works after ``MinMaxScaler`` in a :class:`~sklearn.pipeline.Pipeline`,
    as well as image arrays.

    **How X is read.** As in :class:`ConvClassifier`: a 2-D X holds one
    flattened sample per row (in C order) and ``input_shape`` says how to
    unflatten it. With ``input_shape=None``, a width that is a perfect square
    (64, 784, ...) is read as one-channel square images, and any other width
    as a one-channel 1-D signal. A 3-D X of shape ``(n, H, W)`` is read as
    one-channel images, ``(n, 1, L)`` as one-channel signals (``(n, C, L)``
    signals with ``signal=True``), and a 4-D X of shape ``(n, C, H, W)`` as
    ``C``-channel images. Images use 2-D convolutions and signals 1-D
    convolutions. Prediction takes X in the form of the training data or
    flattened, and reads it as the fit did. ``data_format='channels_last'``
    reads Keras' layouts, ``(n, H, W, C)`` images and ``(n, L, C)`` signals.

    **Defaults.** Those of :class:`ConvClassifier` (filters, kernels,
    pooling, dense head, ``learning_rate_init=0.003``) but for the length
    of training and the regularisation. Training takes at most
    ``max_iter=45`` epochs with :class:`MLPRegressor`'s ``tol=1e-4``: with
    no dropout the loss falls smoothly, and longer training overfits small
    data sets. Batch normalisation and dropout are off by default here
    (``batch_norm=False``, ``dropout=0``, ``conv_dropout=0``): on small
    regression data the noise of dropout costs accuracy, and with batch
    normalisation the first Adam steps can throw the dense head so far that
    the network never recovers. The measurements behind this are in
    ``benchmarks/RESULTS.md`` (ConvRegressor defaults). Scale y to a
    moderate range (unit variance, or a
    :class:`~sklearn.compose.TransformedTargetRegressor`): the output layer
    starts near 0 and the learning rate suits targets of order 1.

    Parameters
    ----------
    input_shape : tuple of int, default=None
        Shape of one sample, in the order of ``data_format``: ``(C, H, W)``
        or ``(H, W)`` for images, ``(1, L)``, ``(L,)`` or ``(C, L)`` (with
        ``signal=True``) for signals; ``(H, W, C)`` and ``(L, C)`` with
        ``data_format='channels_last'``. None infers it as described above.
        A shape that does not match X raises a ValueError.
    filters : tuple of int, default=(16, 32)
        Output channels of each conv block. The default suits small inputs
        (images of tens of pixels a side, signals of tens of values).
    kernel_size : int, default=3
        Side of the convolution kernels (``'same'`` zero padding).
    pool_size : int, default=2
        Max-pooling window after each block (skipped once the feature map is
        smaller than the window).
    hidden_layer_sizes : tuple of int, default=(128,)
        Units of the dense head's hidden layers.
    activation : {'identity', 'logistic', 'sigmoid', 'tanh', 'relu', \
'leaky_relu', 'elu', 'gelu', 'silu'}, default='relu'
        Activation of conv blocks and dense layers.
    loss : {'squared_error', 'poisson', 'absolute_error', 'huber'}, \
default='squared_error'
        The loss, as in :class:`MLPRegressor`. ``'squared_error'`` is half
        the mean squared error; ``'poisson'`` is the Poisson deviance with a
        log link (predictions are ``exp`` of the output, y must be
        non-negative); ``'huber'`` uses ``delta=1``.
    batch_norm : bool, default=False
        Batch normalisation after each convolution (see Defaults above). At
        the end of ``fit`` the running statistics that prediction uses are
        recomputed over the training data with the final weights and without
        dropout ("precise batch norm"), sample-weighted when
        ``sample_weight`` is given. ``partial_fit`` keeps the running
        averages. With it, a lower ``learning_rate_init`` (0.001) avoids the
        jump of the first epoch's loss.
    signal : bool or 'auto', default='auto'
        Whether a two-axis sample shape is read as ``(C, L)`` signals or
        ``(H, W)`` images, as in :class:`ConvClassifier`: ``'auto'`` reads
        ``(1, L)`` (``(L, 1)`` with ``data_format='channels_last'``) as
        one-channel signals and any other as images.
    data_format : {'channels_first', 'channels_last'}, default='channels_first'
        Where the channels are in each sample of X and in ``input_shape``,
        as in :class:`ConvClassifier`.
    random_shift : int, default=0
        Data augmentation: in training only, each sample of each batch is
        translated by its own random whole number of positions in
        ``[-random_shift, random_shift]`` along every spatial axis, the edge
        values filling the vacated border. Use it only where the target does
        not depend on where the pattern is. The offsets come from a
        generator of the network's own, seeded by ``random_state``. Not used
        by ``solver='lbfgs'``.
    global_pool : bool, default=False
        Average each channel of the last feature map over its positions
        before the dense head (global average pooling) rather than flatten
        it: fewer weights, and invariance to where a pattern is.
    solver : {'adam', 'sgd', 'lbfgs', 'rmsprop', 'adamw'}, default='adam'
        The optimizer, as in :class:`MLPRegressor`.
    alpha : float, default=0.0001
        Strength of the L2 penalty on the convolution kernels and dense
        weights, scaled as in :class:`MLPRegressor`.
    batch_size : int or 'auto', default='auto'
        Size of the minibatches; ``'auto'`` is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning-rate schedule of ``solver='sgd'``.
    learning_rate_init : float, default=0.003
        The initial learning rate (see Defaults above).
    power_t : float, default=0.5
        Exponent of the ``'invscaling'`` schedule.
    max_iter : int, default=45
        Maximum number of epochs (or L-BFGS iterations). Lower than the
        MLPs' 200 because each epoch of a convnet does more, and longer
        training overfits small data sets (see Defaults above); the ``tol``
        rule can stop earlier.
    shuffle : bool, default=True
        Whether to shuffle the samples in each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the batch order, dropout, the random
        shifts and the early-stopping split. An int gives the same model on
        every CPU fit; the global numpy and torch random states are left
        untouched.
    tol : float, default=1e-4
        Tolerance of the stopping rule.
    verbose : bool or int, default=False
        ``1`` prints one line per epoch, ``2`` adds a progress bar, as in
        :class:`MLPRegressor`.
    warm_start : bool, default=False
        Reuse the previous solution as initialisation of the next ``fit``.
    momentum : float, default=0.9
        Momentum of ``solver='sgd'``.
    nesterovs_momentum : bool, default=True
        Whether to use Nesterov's momentum with ``solver='sgd'``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its R^2
        stops improving; the best weights are kept.
    validation_fraction : float, default=0.1
        Proportion of the training data held out for early stopping.
    beta_1 : float, default=0.9
        Decay of the first moment estimates of Adam.
    beta_2 : float, default=0.999
        Decay of the second moment estimates of Adam.
    epsilon : float, default=1e-8
        Numerical stability term of Adam and RMSprop.
    n_iter_no_change : int, default=10
        Epochs without improvement by ``tol`` before stopping.
    max_fun : int, default=15000
        Maximum number of loss evaluations of ``solver='lbfgs'``.
    dropout : float, default=0.0
        Dropout probability after each hidden layer of the dense head (see
        Defaults above). The masks are keyed by the sample (equal samples
        get equal masks in a step), so ``sample_weight`` keeps its meaning
        of repeated samples.
    conv_dropout : float, default=0.0
        Dropout probability at the end of each conv block (after the
        pooling).
    device : str or torch.device, default='auto'
        ``'auto'`` (CUDA when available), ``'cpu'``, ``'cuda'``, ``'cuda:N'``.
    precision : {'auto', 'float32', 'float64', 'bfloat16'}, default='auto'
        ``'auto'`` follows the input's dtype on a CPU (float64 X trains in
        float64) and is float32 on CUDA; ``'bfloat16'`` runs the network
        under autocast. Predictions keep the dtype of the input.

    Attributes
    ----------
    input_shape_ : tuple of int
        The sample shape of the network, channels first: ``(C, H, W)`` or
        ``(C, L)``.
    loss_ : float
        The loss at the end of training.
    best_loss_ : float or None
        The lowest training loss; None with ``early_stopping=True``.
    loss_curve_ : list of float
        The training loss after each epoch (stochastic solvers only).
    validation_scores_ : list of float or None
        Validation R^2 after each epoch with ``early_stopping=True``.
    validation_loss_curve_ : list of float or None
        The loss on the validation rows after each epoch with
        ``early_stopping=True`` (the training loss without the L2 penalty);
        also ``valid_loss`` in ``net_.history``.
    best_validation_score_ : float or None
        The best validation R^2 with ``early_stopping=True``.
    t_ : int
        Number of training samples seen.
    coefs_ : list of ndarray
        Weight matrices of the dense head, as in :class:`MLPRegressor`
        (the convolution kernels are in ``net_.module_``).
    intercepts_ : list of ndarray
        Bias vectors of the dense head.
    n_features_in_ : int
        Number of values per sample.
    n_iter_ : int
        Number of epochs (or L-BFGS iterations) run.
    n_layers_ : int
        Conv blocks plus dense layers plus the input layer.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        ``'identity'``, or ``'exp'`` with ``loss='poisson'``.
    net_ : skorch.NeuralNet
        The trained skorch net; ``net_.module_`` is the torch module.

    See Also
    --------
    ConvClassifier : Convolutional network classifier.
    MLPRegressor : Fully connected network regressor.

    Examples
    --------
    >>> import numpy as np
    >>> from sknets import ConvRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = 0.1 * rng.standard_normal((200, 32))  # 200 noisy signals
    >>> y = rng.uniform(0.5, 2, 200)  # the height of a bump somewhere in each
    >>> for row, height, start in zip(X, y, rng.integers(0, 24, 200)):
    ...     row[start : start + 8] += height * np.hanning(8)
    >>> reg = ConvRegressor(filters=(8,), hidden_layer_sizes=(16,), batch_size=32,
    ...                     learning_rate_init=0.01, max_iter=20, random_state=0,
    ...                     device="cpu")
    >>> reg = reg.fit(X[:150], y[:150])
    >>> reg.input_shape_
    (1, 32)
    >>> bool(reg.score(X[150:], y[150:]) > 0.9)
    True
    >>> reg.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        **_RegressorNet._parameter_constraints,
        **_ConvMixin._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson", "absolute_error", "huber"})],
    }

    def __init__(
        self,
        input_shape=None,
        filters=(16, 32),
        kernel_size=3,
        pool_size=2,
        hidden_layer_sizes=(128,),
        activation="relu",
        *,
        loss="squared_error",
        batch_norm=False,
        signal="auto",
        data_format="channels_first",
        random_shift=0,
        global_pool=False,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.003,
        power_t=0.5,
        max_iter=45,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dropout=0.0,
        conv_dropout=0.0,
        device="auto",
        precision="auto",
    ):
        self.input_shape = input_shape
        self.filters = filters
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.loss = loss
        self.batch_norm = batch_norm
        self.signal = signal
        self.data_format = data_format
        self.random_shift = random_shift
        self.global_pool = global_pool
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.conv_dropout = conv_dropout
        self.device = device
        self.precision = precision
