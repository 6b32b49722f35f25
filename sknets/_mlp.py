"""Multi-layer perceptrons: MLPClassifier and MLPRegressor."""

import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import StrOptions

from ._base import _ClassifierNet, _RegressorNet
from ._modules import MLPModule


class _MLPMixin:
    """Builds the :class:`~sknets._modules.MLPModule` for the MLP estimators."""

    #: as scikit-learn's MLPs: sparse X is densified one batch at a time
    _accept_sparse = ("csr", "csc")

    def _build_module(self, input_shape, n_outputs, seed):
        return MLPModule, {
            "n_features": int(input_shape[0]),
            "hidden_layer_sizes": tuple(self._hidden_sizes()),
            "n_outputs": n_outputs,
            "activation": self.activation,
            "dropout": self.dropout,
            "seed": self._init_seed,
        }

    def _layer_weights(self):
        """Each layer's ``(weight (out, in), bias)``, detached copies on the CPU."""
        return [
            (layer.weight.detach().cpu().clone(), layer.bias.detach().cpu().clone())
            for layer in self.net_.module_.layers
        ]

    def _load_layer_weights(self, layers):
        with torch.no_grad():
            for layer, (weight, bias) in zip(self.net_.module_.layers, layers):
                layer.weight.copy_(weight)
                layer.bias.copy_(bias)


class MLPClassifier(ClassifierMixin, _MLPMixin, _ClassifierNet):
    """Multi-layer perceptron classifier trained with PyTorch through skorch.

    A drop-in replacement for :class:`sklearn.neural_network.MLPClassifier`:
    the same parameters, defaults and fitted attributes (and two more,
    ``net_`` and ``validation_loss_curve_``), trained on the GPU when there
    is one. Binary, multiclass and multilabel (2-D indicator y)
    classification; labels of any type. A one-hot y (exactly one 1 per
    row) is multilabel, as in scikit-learn, and warns: pass class labels
    for a multiclass classifier.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of units in the ith hidden layer.
    activation : {'identity', 'logistic', 'sigmoid', 'tanh', 'relu', \
'leaky_relu', 'elu', 'gelu', 'silu'}, default='relu'
        Activation of the hidden layers. ``'logistic'`` and ``'sigmoid'``
        are the same function.
    solver : {'adam', 'sgd', 'lbfgs', 'rmsprop', 'adamw'}, default='adam'
        The optimizer. ``'sgd'`` uses ``momentum``, ``nesterovs_momentum`` and
        the ``learning_rate`` schedule; ``'adam'`` and ``'adamw'`` use
        ``beta_1``, ``beta_2`` and ``epsilon``; ``'rmsprop'`` uses a smoothing
        constant of 0.9 (Keras' default) and ``epsilon``; ``'lbfgs'`` is
        full-batch L-BFGS with a strong-Wolfe line search.
    alpha : float, default=0.0001
        Strength of the L2 penalty on the weight matrices, scaled as in
        scikit-learn (``0.5 * alpha * ||W||^2 / n_samples_in_batch``). With
        ``solver='adamw'`` it is the decoupled weight decay instead.
    batch_size : int or 'auto', default='auto'
        Size of the minibatches; ``'auto'`` is ``min(200, n_samples)``.
        Larger than the number of samples, it is clipped with a warning.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning-rate schedule of ``solver='sgd'``: constant, divided by
        ``(t + 1) ** power_t`` after each epoch (t = samples seen), or divided
        by 5 each time the loss stops improving.
    learning_rate_init : float, default=0.001
        The initial learning rate.
    power_t : float, default=0.5
        Exponent of the ``'invscaling'`` schedule.
    max_iter : int, default=200
        Maximum number of epochs (stochastic solvers) or iterations
        (``'lbfgs'``).
    shuffle : bool, default=True
        Whether to shuffle the samples in each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the batch order, dropout and the
        early-stopping split. An int gives the same model on every CPU fit;
        the global numpy and torch random states are left untouched.
    tol : float, default=1e-4
        Training stops when the loss (or validation score) does not improve
        by at least ``tol`` for ``n_iter_no_change`` consecutive epochs.
    verbose : bool or int, default=False
        ``1`` prints one line per epoch, as Keras' ``fit`` does: the training
        loss, the validation loss and score when ``early_stopping=True``, and
        the seconds taken. ``2`` adds a progress bar over the batches of
        epochs that last longer than half a second. Quiet by default.
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
    dropout : float, default=0.0
        Dropout probability after each hidden layer. The masks are keyed by
        the sample (equal samples get equal masks in a step), so
        ``sample_weight`` keeps its meaning of repeated samples.
    device : str or torch.device, default='auto'
        Where to train: ``'auto'`` picks CUDA when available, else the CPU;
        ``'cpu'``, ``'cuda'`` and ``'cuda:1'`` are also accepted.
    precision : {'auto', 'float32', 'float64', 'bfloat16'}, default='auto'
        Arithmetic of the network. ``'auto'`` follows the input on a CPU, as
        scikit-learn does: float64 X trains in float64 and float32 X in
        float32. On CUDA, ``'auto'`` trains in float32, many times faster
        than float64 there. ``'bfloat16'`` runs the forward pass under
        autocast with float32 weights. Fitted arrays (``coefs_``,
        ``intercepts_``, predictions) keep the dtype of the input.
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
    loss_ : float
        The loss at the end of training.
    best_loss_ : float or None
        The lowest training loss; None with ``early_stopping=True``.
    loss_curve_ : list of float
        The training loss after each epoch (stochastic solvers only).
    validation_scores_ : list of float or None
        Validation accuracy after each epoch with ``early_stopping=True``.
    validation_loss_curve_ : list of float or None
        The log loss on the validation rows after each epoch with
        ``early_stopping=True`` (without the L2 penalty); also
        ``valid_loss`` in ``net_.history``. Not an attribute of
        scikit-learn's MLPs.
    best_validation_score_ : float or None
        The best validation accuracy with ``early_stopping=True``.
    t_ : int
        Number of training samples seen.
    coefs_ : list of ndarray of shape (n_units_in, n_units_out)
        Weight matrices, as numpy copies (``coefs_[i][j, k]`` connects unit
        j of layer i to unit k of layer i + 1).
    intercepts_ : list of ndarray of shape (n_units_out,)
        Bias vectors, as numpy copies.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen during fit, when X has string column
        names.
    n_iter_ : int
        Number of epochs (or L-BFGS iterations) run.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        ``'logistic'`` (binary, multilabel) or ``'softmax'`` (multiclass).
    net_ : skorch.NeuralNet
        The trained skorch net; ``net_.module_`` is the torch module and
        ``net_.history`` the per-epoch history.

    See Also
    --------
    MLPRegressor : Multi-layer perceptron regressor.
    ConvClassifier : Convolutional network classifier.
    sklearn.neural_network.MLPClassifier : The CPU implementation of scikit-learn.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from sknets import MLPClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    >>> clf = make_pipeline(MinMaxScaler(), MLPClassifier(random_state=0))
    >>> bool(clf.fit(X_train, y_train).score(X_test, y_test) > 0.9)
    True
    >>> clf.predict_proba(X_test[:2]).shape
    (2, 2)
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
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
        device="auto",
        precision="auto",
        class_weight=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
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
        self.device = device
        self.precision = precision
        self.class_weight = class_weight

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _MLPMixin, _RegressorNet):
    """Multi-layer perceptron regressor trained with PyTorch through skorch.

    A drop-in replacement for :class:`sklearn.neural_network.MLPRegressor`:
    the same parameters, defaults and fitted attributes (and two more,
    ``net_`` and ``validation_loss_curve_``), trained on the GPU when there
    is one. 1-D y gives 1-D predictions; 2-D y is multi-output.

    Parameters
    ----------
    loss : {'squared_error', 'poisson', 'absolute_error', 'huber'}, \
default='squared_error'
        The loss. ``'squared_error'`` is half the mean squared error, as in
        scikit-learn; ``'poisson'`` is the Poisson deviance with a log link
        (predictions are ``exp`` of the output, y must be non-negative);
        ``'huber'`` uses ``delta=1``.
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of units in the ith hidden layer.
    activation : {'identity', 'logistic', 'sigmoid', 'tanh', 'relu', \
'leaky_relu', 'elu', 'gelu', 'silu'}, default='relu'
        Activation of the hidden layers.
    solver : {'adam', 'sgd', 'lbfgs', 'rmsprop', 'adamw'}, default='adam'
        The optimizer, as in :class:`MLPClassifier`.
    alpha : float, default=0.0001
        Strength of the L2 penalty on the weight matrices.
    batch_size : int or 'auto', default='auto'
        Size of the minibatches; ``'auto'`` is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning-rate schedule of ``solver='sgd'``.
    learning_rate_init : float, default=0.001
        The initial learning rate.
    power_t : float, default=0.5
        Exponent of the ``'invscaling'`` schedule.
    max_iter : int, default=200
        Maximum number of epochs (or L-BFGS iterations).
    shuffle : bool, default=True
        Whether to shuffle the samples in each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, batch order, dropout and the early-stopping
        split, without touching the global random states.
    tol : float, default=1e-4
        Tolerance of the stopping rule.
    verbose : bool or int, default=False
        ``1`` prints one line per epoch, as Keras' ``fit`` does: the training
        loss, the validation loss and score when ``early_stopping=True``, and
        the seconds taken. ``2`` adds a progress bar over the batches of
        epochs that last longer than half a second. Quiet by default.
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
        Dropout probability after each hidden layer. The masks are keyed by
        the sample (equal samples get equal masks in a step), so
        ``sample_weight`` keeps its meaning of repeated samples.
    device : str or torch.device, default='auto'
        ``'auto'`` (CUDA when available), ``'cpu'``, ``'cuda'``, ``'cuda:N'``.
    precision : {'auto', 'float32', 'float64', 'bfloat16'}, default='auto'
        Arithmetic of the network, as in :class:`MLPClassifier`: ``'auto'``
        follows the input's dtype on a CPU and is float32 on CUDA.

    Attributes
    ----------
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
        ``early_stopping=True`` (without the L2 penalty); also
        ``valid_loss`` in ``net_.history``. Not an attribute of
        scikit-learn's MLPs.
    best_validation_score_ : float or None
        The best validation R^2 with ``early_stopping=True``.
    t_ : int
        Number of training samples seen.
    coefs_ : list of ndarray of shape (n_units_in, n_units_out)
        Weight matrices, as numpy copies.
    intercepts_ : list of ndarray of shape (n_units_out,)
        Bias vectors, as numpy copies.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen during fit, when X has string column
        names.
    n_iter_ : int
        Number of epochs (or L-BFGS iterations) run.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        ``'identity'``, or ``'exp'`` with ``loss='poisson'``.
    net_ : skorch.NeuralNet
        The trained skorch net.

    See Also
    --------
    MLPClassifier : Multi-layer perceptron classifier.
    ConvRegressor : Convolutional network regressor.
    sklearn.neural_network.MLPRegressor : The CPU implementation of scikit-learn.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.model_selection import cross_val_score, KFold
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from sknets import MLPRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = make_pipeline(
    ...     MinMaxScaler(),
    ...     MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01,
    ...                  max_iter=300, random_state=0),
    ... )
    >>> scores = cross_val_score(reg, X, y, cv=KFold(5), scoring="r2")
    >>> bool(scores.mean() > 0.3)
    True
    """

    _parameter_constraints: dict = {
        **_RegressorNet._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson", "absolute_error", "huber"})],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
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
        device="auto",
        precision="auto",
    ):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
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
        self.device = device
        self.precision = precision
