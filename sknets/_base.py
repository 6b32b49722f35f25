"""Shared estimator base: the scikit-learn face of every estimator.

Parameters and their validation, the data and targets (scikit-learn's array
API included, :mod:`sknets._array_api`), seeding, building ``net_``,
describing a fit for the trainer (:mod:`sknets._training`, which owns the
epoch loop and scikit-learn's rules) and adopting its result, prediction,
and the plain-data state that pickle and skops save (:mod:`sknets._state`).
"""

import contextlib
import os
import sys
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
)
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    type_of_target,
    unique_labels,
)
from sklearn.utils.validation import (
    _check_sample_weight,
    _check_y,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from . import _array_api, _keras, _seam, _state
from ._engine import (
    PRECISIONS,
    DeviceData,
    FastNet,
    NetCheckpoint,
    WeightedLoss,
    resolve_device,
    resolve_precision,
    unweighted_as_none,
)
from ._registry import ACTIVATIONS, OUT_ACTIVATIONS, SOLVERS
from ._rules import EpochRules
from ._threads import cpu_fit_state
from ._training import NetMember, Trainer

_FLOAT_DTYPES = (np.float64, np.float32)
#: where sknets' own files are: warnings point past them, at the user's call
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_SKLEARN_BASE = os.path.join("sklearn", "base.py")
_CURVES = (
    "loss_curve_",
    "best_loss_",
    "validation_scores_",
    "validation_loss_curve_",
    "best_validation_score_",
)

#: Parameters read by the training loop at each fit, never by the net: a
#: warm-started fit that changes only these keeps its net as it is.
_LOOP_PARAMS = frozenset(
    {
        "verbose",
        "warm_start",
        "early_stopping",
        "validation_fraction",
        "n_iter_no_change",
        "learning_rate",
        "power_t",
        "batch_size",
        "random_state",
        "class_weight",
    }
)

#: scikit-learn's words for a fit that ends with non-finite weights.
NON_FINITE = (
    "Solver produced non-finite parameter weights. The input data may contain "
    "large values and need to be preprocessed."
)
NEVER_FINITE = (
    f"{NON_FINITE} The validation score was never finite: the network diverged. "
    "Lower learning_rate_init or scale X."
)


def _draw_seed(random_state):
    """An int seed from ``random_state``, leaving numpy's global RNG alone."""
    if random_state is None:
        return int(np.random.default_rng().integers(np.iinfo(np.int32).max))
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


class _Rollback:
    """The state of an estimator before a fit, to put back if the fit raises.

    A shallow copy of its attributes (lists copied, so that appended curves
    come back as they were) and, when the fit trains the existing net in
    place (``warm_start`` or ``partial_fit``), a :class:`NetCheckpoint`.
    """

    def __init__(self, est, net=False):
        self.est = est
        self.attrs = dict(est.__dict__)
        self.lists = {k: list(v) for k, v in self.attrs.items() if isinstance(v, list)}
        old = self.attrs.get("net_")
        self.net = NetCheckpoint(old) if net and old is not None else None

    def restore(self):
        attrs = self.est.__dict__
        attrs.clear()
        attrs.update(self.attrs)
        attrs.update({k: list(v) for k, v in self.lists.items()})
        if self.net is not None:
            self.net.restore()


@contextlib.contextmanager
def _atomic(est, incremental=False):
    """A fit that raises (KeyboardInterrupt too) leaves ``est`` as it was."""
    saved = _Rollback(est, net=incremental or est.warm_start)
    try:
        yield
    except BaseException:
        saved.restore()
        raise


def _threads_for(net, X, est):
    """The CPU state of a fit (:func:`~sknets._threads.cpu_fit_state`):
    its threads, and flushed denormals."""
    n_params = sum(p.numel() for p in net.module_.parameters())
    n = X.shape[0]
    rows = est._resolved_batch_size(n) if SOLVERS[est.solver].stochastic else n
    return cpu_fit_state(net.torch_device, rows * n_params)


def _max_abs(X):
    if sp.issparse(X):
        X = X.data
    if isinstance(X, torch.Tensor):
        return float(X.abs().max()) if X.numel() else 0.0
    if X.size == 0:
        return 0.0
    return max(float(np.max(X)), -float(np.min(X)))


def _warn_user(message, category):
    """Warn at the first frame outside sknets and scikit-learn's ``fit``
    wrapper (``_fit_context``, in ``sklearn/base.py``): the user's call, or
    the library's that called ``fit`` (scikit-learn's cross-validation)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and (
        frame.f_code.co_filename.startswith(_PACKAGE)
        or frame.f_code.co_filename.endswith(_SKLEARN_BASE)
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


class _BaseNet(_keras.AttributeHints, BaseEstimator, metaclass=ABCMeta):
    """Base of every sknets estimator. Not for direct use."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions(set(SOLVERS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "device": [str, torch.device],
        "precision": [StrOptions({"auto", *PRECISIONS})],
    }

    #: sparse formats accepted for X (False: dense only)
    _accept_sparse = False

    @classmethod
    def _get_param_names(cls):
        # scikit-learn reads __init__'s signature at every get_params call
        # (a dozen per fit in a search); it is read once per class here
        names = cls.__dict__.get("_param_names")
        if names is None:
            names = tuple(super()._get_param_names())
            cls._param_names = names
        return list(names)

    def __new__(cls, *args, **kwargs):
        # A Keras keyword (epochs=, optimizer=, ...) is Python's TypeError with
        # a hint; __init__ stays scikit-learn's, storing its parameters only.
        if kwargs:
            _keras.constructor_hint(cls, kwargs)
        return super().__new__(cls)

    def set_params(self, **params):
        """Set the parameters of this estimator.

        As :meth:`sklearn.base.BaseEstimator.set_params`; a Keras name such
        as ``epochs`` is scikit-learn's ValueError with the name to use.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : estimator instance
            Estimator instance.
        """
        _keras.set_params_hint(self, params)
        return super().set_params(**params)

    def _validate_params(self):
        try:
            super()._validate_params()
        except InvalidParameterError as exc:
            hint = _keras.value_hint(self, str(exc))
            if not hint:
                raise
            raise InvalidParameterError(f"{exc}{hint}") from None

    # -- what subclasses provide -------------------------------------------------

    @abstractmethod
    def _build_module(self, n_features, n_outputs, seed):
        """Return ``(module_class, module_kwargs)`` for skorch."""

    @abstractmethod
    def _encode_targets(self, y, first_call, classes=None):
        """Validate y; return ``(targets, loss, out_activation, n_outputs)``."""

    @abstractmethod
    def _validation_score(self, raw, y, w):
        """Score of raw outputs against encoded targets (early stopping)."""

    def _check_batches(self, batch_rows):
        """Raise a ValueError before training if the network cannot train
        on batches of ``batch_rows`` rows (a list of sizes)."""

    def _validate_X(self, X, reset):
        """Validate X at predict time; subclasses may reshape."""
        return validate_data(
            self,
            X,
            dtype=_array_api.float_dtypes(X, _FLOAT_DTYPES),
            accept_sparse=self._accept_sparse,
            reset=reset,
        )

    def _validate_Xy(self, X, y, reset):
        return validate_data(
            self,
            X,
            y,
            multi_output=True,
            dtype=_array_api.float_dtypes(X, _FLOAT_DTYPES),
            accept_sparse=self._accept_sparse,
            reset=reset,
        )

    # -- fitting -------------------------------------------------------------------

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if not hasattr(sizes, "__iter__") else list(sizes)
        if any(
            isinstance(s, (bool, np.bool_)) or not isinstance(s, (Integral, Real)) for s in sizes
        ):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {sizes}.")
        if any(s <= 0 for s in sizes):
            # scikit-learn's words
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        if any(not isinstance(s, Integral) for s in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {sizes}: a layer "
                "of a fractional number of units does not exist."
            )
        return [int(s) for s in sizes]

    def _schedule(self):
        """The learning-rate schedule in force: ``learning_rate`` for a solver
        that takes schedules (scikit-learn: SGD only), else 'constant'."""
        return self.learning_rate if SOLVERS[self.solver].schedules else "constant"

    def _check_solver(self):
        if not SOLVERS[self.solver].stochastic:
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. "
                f"{self.solver} is not stochastic."
            )
        return True

    @_keras.fit_hints
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        """Fit the model to data matrix X and target(s) y.

        A fit that raises leaves the estimator as it was before the call.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values: class labels in classification, real numbers
            in regression.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights. The loss is the weighted mean of the per-sample
            losses, and a sample of integer weight ``k`` trains exactly as
            ``k`` copies of it (weight 0 as leaving it out), dropout and
            batch normalisation included: dropout masks are keyed by the
            sample, and batch-norm statistics are weighted.
        X_val : array-like of shape (n_val, n_features), default=None
            A validation set of your own for early stopping, as in
            scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingClassifier`:
            with ``early_stopping=True`` it replaces the ``validation_fraction``
            split, and all of X trains. ``validation_scores_``,
            ``validation_loss_curve_``, ``best_validation_score_`` and the
            history's ``valid_loss`` are measured on it, and the weights of
            the best validation score are kept. Needs ``y_val`` and
            ``early_stopping=True``. In a :class:`~sklearn.pipeline.Pipeline`,
            ``Pipeline(..., transform_input=["X_val"])`` transforms it as X
            (with metadata routing enabled).
        y_val : array-like of shape (n_val,) or (n_val, n_outputs), default=None
            The targets of ``X_val``.
        sample_weight_val : array-like of shape (n_val,), default=None
            Weights of the validation samples in the validation score and
            loss (``class_weight`` does not apply to them, as in scikit-learn).

        Returns
        -------
        self : object
            Returns a trained model.
        """
        with _atomic(self):
            validation = self._check_validation_args(X_val, y_val, sample_weight_val)
            # a model that sknets.model_selection trained for this very fit
            result = None if validation else _seam.pretrained(self, X, y, sample_weight)
            return self._fit(
                X, y, sample_weight=sample_weight, result=result, validation=validation
            )

    def _check_validation_args(self, X_val, y_val, sample_weight_val):
        """``(X_val, y_val, sample_weight_val)`` when a validation set is
        given, else None; scikit-learn's ValueErrors for an incomplete one or
        one that nothing would use."""
        if X_val is None and y_val is None:
            if sample_weight_val is not None:
                raise ValueError("sample_weight_val is provided, but X_val and y_val were not.")
            return None
        if y_val is None:
            raise ValueError("X_val is provided, but y_val was not provided.")
        if X_val is None:
            raise ValueError("y_val is provided, but X_val was not provided.")
        if not self.early_stopping:
            raise ValueError(
                "X_val and y_val are passed to fit while at the same time early_stopping "
                "is False. When passing X_val and y_val to fit, early_stopping should be "
                "set to True."
            )
        if not SOLVERS[self.solver].stochastic:
            raise ValueError(
                f"X_val and y_val are passed to fit, but solver={self.solver!r} does not "
                "stop early (as in scikit-learn, early_stopping is only effective with "
                "the stochastic solvers): use another solver, or leave out X_val and y_val."
            )
        return X_val, y_val, sample_weight_val

    def _net_spec(self, precision, device):
        """Everything the net is built from, beyond the data: a warm-started
        fit whose spec changed rebuilds its net (keeping the weights)."""
        params = self.get_params(deep=False)
        kept = sorted((k, repr(v)) for k, v in params.items() if k not in _LOOP_PARAMS)
        return repr((kept, precision, str(device)))

    def _prepare_fit(self, X, y, sample_weight=None, incremental=False, classes=None):
        """Validate the data and set up ``net_`` for this call: built anew
        on a first fit, rebuilt with the old weights when a warm-started or
        incremental fit changed a parameter of the net, else kept. Returns
        the validated ``X``, the encoded targets, the sample weights and this
        call's seed.
        """
        reuse = hasattr(self, "net_") and (incremental or self.warm_start)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        # under scikit-learn's array API dispatch: X where it is, the rest on the host
        space = _array_api.namespace_of(X)
        if reuse:
            _array_api.check_same_space(self, X, "partial_fit" if incremental else "fit")
        X = _array_api.training_input(X, space)
        y, classes = _array_api.host(y), _array_api.host(classes)
        X, y = self._validate_Xy(X, y, reset=not reuse)
        if sample_weight is not None:
            sample_weight = _array_api.host(sample_weight)
            sample_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        targets, loss, out_activation, n_outputs = self._encode_targets(
            y, first_call=not reuse, classes=classes
        )
        sample_weight = self._with_class_weight(y, sample_weight, incremental)
        hidden = self._hidden_sizes()
        device = self._fit_device(X)
        precision = resolve_precision(self.precision, _array_api.numpy_dtype(X.dtype), device)
        self._check_range(X, targets, precision)
        spec = self._net_spec(precision, device)

        if not reuse:
            self._array_space = _array_api.space_name(space)
            self._seed = _draw_seed(self.random_state)
            # an int random_state initialises as scikit-learn's MLP does
            self._init_seed = (
                int(self.random_state)
                if isinstance(self.random_state, Integral)
                else self._seed
            )
            self._n_calls = 0
            self.n_outputs_ = n_outputs
            self.out_activation_ = out_activation
            self.n_layers_ = len(hidden) + 2
            self.n_iter_ = 0
            self.t_ = 0
            self._no_improvement_count = 0
            for name in _CURVES:
                self.__dict__.pop(name, None)
            self.net_ = self._make_net(X.shape[1:], n_outputs, loss, device, precision)
        elif spec != self._spec:
            self.net_ = self._rebuild_net(X.shape[1:], loss, device, precision, incremental)
        elif not incremental:
            # a warm-started fit restarts the optimizer, as scikit-learn does
            self.net_.initialize_optimizer()
        self._spec = spec
        self._fit_dtype = _array_api.numpy_dtype(X.dtype)
        if SOLVERS[self.solver].stochastic and not hasattr(self, "loss_curve_"):
            self._init_curves()  # as scikit-learn: lbfgs fits have no curves
        self._n_calls += 1
        # each call of fit / partial_fit draws fresh batch orders and dropout
        seed = (self._seed + 7919 * (self._n_calls - 1)) % (2**31 - 1)
        return X, targets, sample_weight, seed

    def _fit_device(self, X):
        """The device of a fit: ``device``, or X's for a tensor of
        scikit-learn's array API with ``device='auto'``; an explicit device
        that is not X's is a ValueError."""
        if not isinstance(X, torch.Tensor):
            return resolve_device(self.device)
        here = X.device
        if isinstance(self.device, str) and self.device == "auto":
            return resolve_device(here)
        device = resolve_device(self.device)
        if device.type != here.type or (device.index or 0) != (here.index or 0):
            raise ValueError(
                f"X is a tensor on device {str(here)!r}, but device={self.device!r}. "
                "With scikit-learn's array API dispatch the fit trains where X is: "
                "set device='auto' (or the device of X), or move X."
            )
        return device

    def _rebuild_net(self, input_shape, loss, device, precision, incremental):
        """A net of the current parameters holding the old net's weights
        (and, for ``partial_fit`` with the same solver, its optimizer
        state); a ValueError if the weights no longer fit."""
        old = self.net_
        net = self._make_net(input_shape, self.n_outputs_, loss, device, precision)
        try:
            net.module_.load_state_dict(old.module_.state_dict())
        except RuntimeError as exc:
            raise ValueError(
                f"warm_start=True and partial_fit keep the fitted weights, but the "
                f"architecture parameters of this {type(self).__name__} changed since "
                "the last fit, so the weights no longer fit the network. Set "
                "warm_start=False (or fit a new estimator) to train from scratch."
            ) from exc
        if incremental and type(old.optimizer_) is type(net.optimizer_):
            net.take_optimizer_state(old.optimizer_)
        net.history = old.history
        return net

    def _check_range(self, X, targets, precision):
        """Values that overflow the training dtype are a ValueError."""
        if PRECISIONS[precision][0] == torch.float64:
            return
        limit = float(np.finfo(np.float32).max)
        for name, a in (("X", X), ("y", targets)):
            if a.dtype == np.float64 and _max_abs(a) > limit:
                raise ValueError(
                    f"{name} has values of magnitude up to {_max_abs(a):.3g}, more than "
                    f"float32 holds ({limit:.3g}), and this fit trains in float32 "
                    f"(precision={self.precision!r}). Scale {name} or use "
                    "precision='float64'."
                )

    def _init_curves(self):
        self.loss_curve_ = []
        if self.early_stopping:
            self.validation_scores_ = []
            self.validation_loss_curve_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.validation_loss_curve_ = None
            self.best_validation_score_ = None

    def _with_class_weight(self, y, sample_weight, incremental):
        """The sample weights of a fit (classifiers multiply in their
        ``class_weight``)."""
        return sample_weight

    def _prepare_validation(self, X, X_val, y_val, sample_weight_val):
        """The validation set given to ``fit``, validated as X and y are:
        ``(X_val, encoded targets, weights)``, X_val in X's array namespace."""
        space = _array_api.namespace_of(X_val)
        if _array_api.space_name(space) != _array_api.space_name(_array_api.namespace_of(X)):
            raise ValueError(
                "X_val must be in the same array namespace and on the same device as X."
            )
        X_val = self._validate_X(_array_api.training_input(X_val, space), reset=False)
        y_val = _check_y(
            _array_api.host(y_val), multi_output=True,
            y_numeric=not isinstance(self, _ClassifierNet), estimator=self,
        )
        check_consistent_length(X_val, y_val)
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = column_or_1d(y_val, warn=True)
        targets = self._encode_val_targets(y_val)
        if sample_weight_val is not None:
            sample_weight_val = _check_sample_weight(
                _array_api.host(sample_weight_val), X_val, ensure_non_negative=True
            )
        return X_val, targets, sample_weight_val

    def _encode_val_targets(self, y):
        """The encoded targets of ``y_val``, for the classes or outputs of
        the fit."""
        return self._encode_targets(y, first_call=False)[0]

    def _fit(self, X, y, sample_weight=None, incremental=False, classes=None, result=None,
             validation=None):
        """The fit: validate and set up, train (or adopt ``result``, a
        :class:`~sknets._seam.TrainingResult` of this very fit), check and
        export the weights. ``validation``: the ``(X_val, y_val,
        sample_weight_val)`` given to ``fit``, or None."""
        X, targets, sample_weight, seed = self._prepare_fit(
            X, y, sample_weight, incremental, classes
        )
        val = None if validation is None else self._prepare_validation(X, *validation)
        # dropout and random shifts restart from this call's seed
        self.net_.module_.reseed((seed + 1) % (2**31 - 1))
        try:
            with _threads_for(self.net_, X, self):
                if result is not None:
                    self._adopt_trained(result, X, sample_weight)
                elif not SOLVERS[self.solver].stochastic:
                    self._fit_lbfgs(X, targets, sample_weight)
                else:
                    self._fit_stochastic(X, targets, sample_weight, incremental, seed, val)
        finally:
            # a fitted model holds the model, not a copy of its training data
            self.net_.release_data()
        self._check_weights()
        # fitted arrays follow X (scikit-learn's array API): its namespace and device
        self._export_weights(_array_api.namespace_of(X))
        return self

    def _check_weights(self):
        """A fit whose final weights are not all finite is an error."""
        if not all(bool(torch.isfinite(p).all()) for p in self.net_.module_.parameters()):
            raise ValueError(NON_FINITE)

    # -- the seam with model selection (see sknets._seam) ----------------------------

    def _training_plan(self, X, y):
        """``fit(X, y)`` up to training, described as a
        :class:`~sknets._seam.TrainingPlan` (see :func:`sknets._seam.plan`)."""
        X, targets, sample_weight, seed = self._prepare_fit(X, y)
        # as the fit's DeviceData: unit weights are the unweighted fit
        sample_weight = unweighted_as_none(sample_weight)
        if sample_weight is not None and not np.all(sample_weight > 0):
            # a batch of zero weight is scikit-learn's ZeroDivisionError,
            # which the fit raises on its own
            raise ValueError("Fits with zero sample weights are not batched.")
        if self.early_stopping:
            train, val = self._early_stopping_split(targets, seed)
        else:
            train, val = np.arange(targets.shape[0]), None
        net = self.net_
        return _seam.TrainingPlan(
            estimator_type=type(self).__name__,
            params=self.get_params(deep=False),
            is_classifier=isinstance(self, _ClassifierNet),
            X=X,
            targets=targets,
            seed=seed,
            train_rows=train,
            val_rows=val,
            sample_weight=sample_weight,
            hidden=tuple(self._hidden_sizes()),
            activation=self.activation,
            loss=net.criterion_.loss,
            out_activation=self.out_activation_,
            n_outputs=self.n_outputs_,
            layers=self._layer_weights(),
            device=net.torch_device,
            dtype=net.dtype,
            solver=self.solver,
            schedule=self._schedule(),
            batch_size=self._resolved_batch_size(len(train)),
            shuffle=bool(self.shuffle),
            early_stopping=bool(self.early_stopping),
            learning_rate_init=float(self.learning_rate_init),
            alpha=float(self.alpha),
            beta_1=float(self.beta_1),
            beta_2=float(self.beta_2),
            epsilon=float(self.epsilon),
            momentum=float(self.momentum),
            nesterov=bool(self.nesterovs_momentum) and self.momentum > 0,
            tol=float(self.tol),
            n_iter_no_change=int(self.n_iter_no_change),
            max_iter=int(self.max_iter),
            power_t=float(self.power_t),
        )

    def _layer_weights(self):
        """The network's ``(weight, bias)`` tensors per layer, for a plan."""
        raise NotImplementedError(f"{type(self).__name__} does not train batched.")

    def _load_layer_weights(self, layers):
        raise NotImplementedError(f"{type(self).__name__} does not train batched.")

    def _fit_with_result(self, X, y, result):
        """``fit(X, y)`` with a :class:`~sknets._seam.TrainingResult` of its
        plan in place of training (see :func:`sknets._seam.adopt`)."""
        with _atomic(self):
            return self._fit(X, y, result=result)

    def _adopt_trained(self, result, X, sample_weight):
        """A fit's training, done by a batched trainer: adopt ``result``
        (its training data ``X``, ``sample_weight``) and end as that fit's
        training ends (:meth:`_fit_stochastic`)."""
        self._adopt_result(result)

    def _adopt_result(self, result, incremental=False):
        """Set what training sets, from ``result`` (a
        :class:`~sknets._seam.TrainingResult` of the trainer, single or
        batched): the weights (unless they are in ``net_`` already), the
        curves and counters (continued by a warm start or ``partial_fit``),
        the history; raise or warn as scikit-learn's training would."""
        done = self.n_iter_ if incremental else 0
        n = len(result.loss_curve)
        if result.diverged_loss is not None:
            self.n_iter_ = done + n - 1
            self._check_finite(result.diverged_loss)
        if self.early_stopping and not result.improved:
            raise ValueError(NEVER_FINITE)
        if result.layers is not None:
            self._load_layer_weights(result.layers)
        self.loss_curve_.extend(result.loss_curve)
        self.n_iter_ = done + n
        self.loss_ = self.loss_curve_[-1]
        self.t_ = int(result.t)
        self._no_improvement_count = int(result.no_improvement)
        valid_losses = [None] * n
        if self.early_stopping:
            self.validation_scores_.extend(result.validation_scores)
            self.best_validation_score_ = float(result.best)
            if result.validation_losses is not None and self.validation_loss_curve_ is not None:
                self.validation_loss_curve_.extend(result.validation_losses)
                valid_losses = result.validation_losses
            else:
                # a trainer that did not measure it (see TrainingResult)
                self.validation_loss_curve_ = None
        else:
            self.best_loss_ = float(result.best)
        # the history as skorch users read it: a row per epoch
        seconds = list(result.epoch_seconds or [result.fit_time / max(1, n)] * n)
        seconds += seconds[-1:] * (n - len(seconds))
        history = self.net_.history
        for loss, valid_loss, dur in zip(result.loss_curve, valid_losses, seconds):
            # the rows skorch's new_epoch and record would write, at once
            row = {"batches": [], "epoch": len(history) + 1, "train_loss": loss}
            if valid_loss is not None:
                row["valid_loss"] = valid_loss
            row["dur"] = dur
            history.append(row)
        if not incremental and not result.converged and self.n_iter_ == self.max_iter:
            _warn_user(
                "Stochastic Optimizer: Maximum iterations (%d) reached and the "
                "optimization hasn't converged yet." % self.max_iter,
                ConvergenceWarning,
            )

    def _make_net(self, input_shape, n_outputs, loss, device, precision):
        n_features = int(np.prod(input_shape))
        module, module_kwargs = self._build_module(input_shape, n_outputs, self._seed)
        graphed = device.type == "cuda" and not (
            self._schedule() == "invscaling"
        )
        solver = SOLVERS[self.solver]
        optimizer, opt_kwargs = solver.optimizer_kwargs(self, graphed)
        decoupled = solver.decoupled_decay
        net = FastNet(
            module=module,
            criterion=WeightedLoss,
            criterion__loss=loss,
            **{f"criterion__{k}": v for k, v in self._criterion_kwargs().items()},
            optimizer=optimizer,
            lr=self.learning_rate_init,
            max_epochs=self.max_iter,
            batch_size=200,
            train_split=None,
            device=str(device),
            verbose=0,
            alpha=0.0 if decoupled else self.alpha,
            shuffle=self.shuffle,
            seed=self._seed,
            precision=precision,
            cuda_graphs=graphed,
            **{f"module__{k}": v for k, v in module_kwargs.items()},
            **{f"optimizer__{k}": v for k, v in opt_kwargs.items()},
        )
        net.initialize()
        self._n_features_flat = n_features
        return net

    def _criterion_kwargs(self):
        """Keyword arguments of the loss beyond its name (see WeightedLoss)."""
        return {}

    def _resolved_batch_size(self, n_samples):
        """The batch size of a fit on ``n_samples`` rows (no warning)."""
        if self.batch_size == "auto":
            return min(200, n_samples)
        return int(np.clip(self.batch_size, 1, n_samples))

    def _batch_size(self, n_samples):
        if self.batch_size != "auto" and self.batch_size > n_samples:
            _warn_user(
                "Got `batch_size` less than 1 or larger than sample size. It is "
                "going to be clipped",
                UserWarning,
            )
        return self._resolved_batch_size(n_samples)

    def _fit_lbfgs(self, X, targets, sample_weight):
        net = self.net_
        self._check_batches([X.shape[0]])
        data = DeviceData(X, targets, sample_weight, net.torch_device, net.dtype)
        # scipy's L-BFGS-B warns as scikit-learn's does at max_iter / max_fun
        loss, n_iter = net.run_lbfgs(data)
        self._check_finite(loss)
        self.n_iter_ = n_iter
        self.t_ = X.shape[0]
        self.loss_ = loss

    def _check_finite(self, loss):
        if not np.isfinite(loss):
            raise ValueError(
                f"{NON_FINITE} The training loss became {loss} at epoch "
                f"{self.n_iter_ + 1}: the network diverged. Lower learning_rate_init, "
                "scale X (for example with MinMaxScaler or StandardScaler) or "
                "increase alpha."
            )

    def _stratify(self, targets):
        """The labels the early-stopping split is stratified on, or None:
        as scikit-learn, single-output classification only."""
        return None

    def _early_stopping_split(self, targets, seed):
        """Training and validation row indices of the ``early_stopping``
        split (the one rule of sequential and batched fits)."""
        train, val = train_test_split(
            np.arange(targets.shape[0]),
            random_state=seed,
            test_size=self.validation_fraction,
            stratify=self._stratify(targets),
        )
        if len(val) < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' "
                "or the size of your dataset."
            )
        return train, val

    def _fit_stochastic(self, X, targets, sample_weight, incremental, seed, val=None):
        """Describe this call's training (its data, validation set, rules
        and epoch budget), let the trainer (:mod:`sknets._training`) run it,
        and adopt its result. ``val``: the validation set given to ``fit``
        (see :meth:`_prepare_validation`), which replaces the split."""
        net = self.net_
        if val is None and self.early_stopping:
            train, rows = self._early_stopping_split(targets, seed)
            w_val = None if sample_weight is None else sample_weight[rows]
            val = (X[rows], targets[rows], w_val)
            X, targets = X[train], targets[train]
            sample_weight = None if sample_weight is None else sample_weight[train]

        n_samples = X.shape[0]
        batch_size = self._batch_size(n_samples)
        self._check_batches(self._batch_rows(n_samples, batch_size))
        data = DeviceData(X, targets, sample_weight, net.torch_device, net.dtype)
        net.start_training(batch_size, seed)
        if not incremental:
            self._no_improvement_count = 0
            self._set_lr(self.learning_rate_init)
        # a warm start keeps the best weights of the last fit until beaten
        keep_start = bool(self.early_stopping and self.validation_scores_)
        member = NetMember(net, data, val, self._validation_score, keep_start=keep_start)
        first = (self.n_iter_ if incremental else 0) + 1
        trainer = Trainer(
            member,
            self._epoch_rules(),
            max_iter=[1 if incremental else self.max_iter],
            n_rows=float(n_samples),
            early_stopping=self.early_stopping,
            interruptible=not incremental,
            report=self._reporter(first) if self.verbose else None,
            progress_label=(
                (lambda epoch: f"Epoch {first + epoch}/{self.max_iter}")
                if self.verbose >= 2 else None
            ),
        ).run()
        result = trainer.results()[0]
        result.improved = result.improved or keep_start
        result.epoch_seconds = trainer.seconds
        if trainer.interrupted:
            _warn_user("Training interrupted by user.", UserWarning)
        self._adopt_result(result, incremental=incremental)

    def _epoch_rules(self):
        """scikit-learn's per-epoch rules (:class:`~sknets._rules.EpochRules`)
        for this fit, one member, continuing from the estimator's state."""
        best = self.best_validation_score_ if self.early_stopping else self.best_loss_
        return EpochRules(
            [self.tol],
            [self.n_iter_no_change],
            [self.learning_rate_init],
            [self.power_t],
            self._schedule(),
            self.early_stopping,
            best=[best],
            no_improvement=[self._no_improvement_count],
            t=[self.t_],
            lr=[self._current_lr()],
            device=None,
        )

    def _reporter(self, first):
        """What ``verbose`` prints after each epoch (``first``: the number
        of this call's first epoch)."""
        what = "Validation score" if self.early_stopping else "Training loss"
        stalled = (
            f"{what} did not improve more than tol={self.tol:f} for "
            f"{self.n_iter_no_change} consecutive epochs."
        )

        def report(epoch, loss, score, val_loss, seconds, shrunk, converged, lr):
            line = f"Epoch {first + epoch}/{self.max_iter} - loss: {loss:.6f}"
            if score is not None:
                line += f" - validation loss: {val_loss:.6f} - validation score: {score:.4f}"
            print(f"{line} - {seconds:.3f}s", flush=True)
            if shrunk:
                print(stalled + " Learning rate set to %f" % lr)
            elif converged:
                print(stalled + " Stopping.")

        return report

    @staticmethod
    def _batch_rows(n_samples, batch_size):
        """The sizes of an epoch's batches (the last may be smaller)."""
        full, rest = divmod(n_samples, batch_size)
        return [batch_size] * full + ([rest] if rest else [])

    def _current_lr(self):
        return self.net_.learning_rate

    def _set_lr(self, lr):
        self.net_.set_learning_rate(lr)

    def _export_weights(self, space=None):
        """``coefs_`` / ``intercepts_`` as scikit-learn's (dense layers), in
        the dtype of the training data, in the array namespace ``space``
        (numpy when None)."""
        dtype = self._fit_dtype
        linear = [m for m in self.net_.module_.modules() if isinstance(m, torch.nn.Linear)]

        def export(t):
            array = t.detach().cpu().to(torch.float64).numpy().astype(dtype)
            return _array_api.to_caller(array, space)

        self.coefs_ = [export(m.weight.T) for m in linear]
        self.intercepts_ = [export(m.bias) for m in linear]

    def load_weights(self, f):
        """Load network weights saved with ``net_.save_params(f_params=f)``.

        The file is read with ``torch.load(weights_only=True)``: it can hold
        tensors only, so loading it never runs code. The estimator must be
        fitted with the same architecture (for example refitted briefly, or
        unpickled); ``coefs_`` and ``intercepts_`` follow the loaded weights.
        On error the estimator is left as it was.

        Parameters
        ----------
        f : str, path or file-like
            The saved weights.

        Returns
        -------
        self : object
            The estimator with the loaded weights.
        """
        check_is_fitted(self)
        state = torch.load(f, map_location=self.net_.torch_device, weights_only=True)
        with _atomic(self, incremental=True):
            self.net_.module_.load_state_dict(state)
            self._check_weights()
            self._export_weights(_array_api.namespace_of(self.coefs_[0]))
        return self

    # -- persistence ----------------------------------------------------------------

    def __getstate__(self):
        """The estimator's state as plain data (see :mod:`sknets._state`):
        the network is saved as arrays, and rebuilt by ``__setstate__``."""
        # (a copy: object.__getstate__ may return the instance's own dict)
        state = dict(super().__getstate__())
        net = state.get("net_")
        if isinstance(net, FastNet):
            state["net_"] = _state.net_state(net)
        if isinstance(state.get("device"), torch.device):
            state["device"] = {"torch.device": str(state["device"])}
        if isinstance(state.get("_fit_dtype"), np.dtype):
            state["_fit_dtype"] = state["_fit_dtype"].name
        for key in ("coefs_", "intercepts_"):
            # arrays of a fit on tensors (scikit-learn's array API) as numpy
            if key in state:
                state[key] = [_array_api.numpy_copy(a) for a in state[key]]
        return state

    def __setstate__(self, state):
        state = dict(state)
        if isinstance(state.get("net_"), dict):
            state["net_"] = _state.load_net(state["net_"])
        # (a pickle of an earlier release holds the FastNet itself)
        if isinstance(state.get("device"), dict):
            state["device"] = torch.device(state["device"]["torch.device"])
        if isinstance(state.get("_fit_dtype"), str):
            state["_fit_dtype"] = np.dtype(state["_fit_dtype"])
        net = state.get("net_")
        for key in ("coefs_", "intercepts_"):
            if key in state and net is not None:
                state[key] = [
                    _array_api.restore(a, state.get("_array_space"), net.torch_device)
                    for a in state[key]
                ]
        super().__setstate__(state)

    # -- prediction -----------------------------------------------------------------

    def _raw_output(self, X, method):
        """Raw network outputs (float64 numpy), the dtype of the predictions
        (the input's and the training data's, promoted, as in scikit-learn)
        and X's array namespace (see :mod:`sknets._array_api`): outputs go
        back to it through :func:`~sknets._array_api.to_caller`."""
        check_is_fitted(self)
        space = _array_api.namespace_of(X)
        _array_api.check_same_space(self, X, method)
        X = self._validate_X(_array_api.training_input(X, space), reset=False)
        dtype = np.result_type(_array_api.numpy_dtype(X.dtype), self._fit_dtype)
        return self.net_.forward_raw(X), dtype, space

    def _forward(self, X, method):
        """Network output after the output activation, and X's namespace."""
        raw, dtype, space = self._raw_output(X, method)
        out = OUT_ACTIVATIONS[self.out_activation_].numpy(raw)
        return out.astype(dtype, copy=False), space

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.input_tags.sparse = bool(self._accept_sparse)
        # torch tensors train where they are; other namespaces via numpy
        tags.array_api_support = True
        return tags


class _ClassifierNet(_BaseNet):
    """Label handling shared by the classifiers."""

    _parameter_constraints: dict = {
        **_BaseNet._parameter_constraints,
        "class_weight": [dict, list, StrOptions({"balanced"}), None],
    }

    def _validate_Xy(self, X, y, reset):
        X, y = super()._validate_Xy(X, y, reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        return X, y

    def _stratify(self, targets):
        # scikit-learn stratifies on the binarised labels when there is one
        # output (binary, or a single class); never in multiclass/multilabel
        if self.n_outputs_ == 1:
            return np.asarray(targets).reshape(-1, 1).astype(bool)
        return None

    def _encode_targets(self, y, first_call, classes=None):
        if first_call:
            # as scikit-learn: partial_fit's first call binarises over
            # `classes`, unless y is a multilabel indicator matrix
            lb = LabelBinarizer()
            if classes is not None and not type_of_target(y).startswith("multilabel"):
                lb.fit(classes)
                self._check_labels_known(unique_labels(y), lb.classes_)
            else:
                lb.fit(y)
            self._label_binarizer = lb
            if classes is None:
                self.classes_ = lb.classes_
            if lb.y_type_ == "multilabel-indicator":
                self._warn_one_hot(y)
        else:
            labels = unique_labels(y)
            if self.warm_start and set(labels) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as "
                    f"in the previous call to fit. Previously got {self.classes_}, "
                    f"`y` has {labels}"
                )
            if self._label_binarizer.y_type_ != "multilabel-indicator":
                self._check_labels_known(labels, self.classes_)
        return self._transform_labels(y)

    def _transform_labels(self, y):
        """``(targets, loss, out_activation, n_outputs)`` of labels known to
        the fitted label binarizer."""
        lb = self._label_binarizer
        if lb.y_type_ == "multiclass":
            # the class indices, as lb.transform(y).argmax(axis=1) without
            # the one-hot matrix (every label of y is one of the sorted
            # classes_, checked above)
            targets = np.searchsorted(lb.classes_, y).astype(np.int64)
            return targets, "log_loss", "softmax", len(lb.classes_)
        Y = lb.transform(y)
        # binary, multilabel, and a single class (all-zero targets, as in
        # scikit-learn: the network learns to predict that class)
        return Y.astype(np.float64), "binary_log_loss", "logistic", Y.shape[1]

    def _encode_val_targets(self, y):
        check_classification_targets(y)
        lb = self._label_binarizer
        if lb.y_type_ == "multilabel-indicator":
            if y.ndim != 2 or y.shape[1] != self.n_outputs_:
                raise ValueError(
                    f"y_val must be a multilabel indicator matrix of {self.n_outputs_} "
                    f"columns, as the y of the fit; got shape {y.shape}."
                )
        else:
            unknown = np.setdiff1d(unique_labels(y), self.classes_)
            if len(unknown):
                raise ValueError(
                    f"y_val has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y_val' has {unknown}."
                )
        return self._transform_labels(y)[0]

    def _with_class_weight(self, y, sample_weight, incremental):
        """``sample_weight`` times the weights of ``class_weight``, as
        scikit-learn's estimators apply it
        (:func:`~sklearn.utils.class_weight.compute_sample_weight` of y)."""
        if self.class_weight is None:
            return sample_weight
        if incremental and isinstance(self.class_weight, str):
            # scikit-learn's SGDClassifier's words
            raise ValueError(
                "class_weight 'balanced' is not supported for partial_fit. In order to "
                "use 'balanced' weights, use compute_class_weight('balanced', "
                "classes=classes, y=y). In place of y you can use a large enough sample "
                "of the full training set target to properly estimate the class "
                "frequency distributions. Pass the resulting weights as the "
                "class_weight parameter."
            )
        weights = compute_sample_weight(self.class_weight, y)
        return weights if sample_weight is None else sample_weight * weights

    def _warn_one_hot(self, y):
        """A multilabel y with exactly one 1 per row is most likely one-hot
        encoded class labels (Keras' ``to_categorical``): say what it means
        here and how to pass the labels."""
        if not np.all(np.asarray(y.sum(axis=1)).ravel() == 1):
            return
        _warn_user(
            f"y is a 2-D indicator matrix with exactly one 1 in each row, a one-hot "
            f"encoding such as Keras' to_categorical makes. As in scikit-learn, "
            f"{type(self).__name__} treats it as multilabel: one independent yes/no "
            f"output per column, predict returns indicator rows, predict_proba rows "
            f"need not sum to 1 and score is the subset accuracy. To train a "
            f"multiclass classifier, pass the class labels instead, for example "
            f"y.argmax(axis=1).",
            UserWarning,
        )

    @staticmethod
    def _check_labels_known(labels, classes):
        unknown = np.setdiff1d(labels, classes)
        if len(unknown):
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has "
                f"{classes}. 'y' has {labels}."
            )

    def _indicator(self, raw):
        if self.out_activation_ == "softmax":
            indicator = np.zeros(raw.shape, dtype=int)
            indicator[np.arange(raw.shape[0]), raw.argmax(axis=1)] = 1
            return indicator
        return (raw > 0).astype(int)

    def _validation_score(self, raw, y, w):
        pred = self._indicator(raw)
        if self.out_activation_ == "softmax":
            pred = pred.argmax(axis=1)
        return accuracy_score(y, pred.astype(y.dtype), sample_weight=w)

    def predict(self, X):
        """Predict the class labels of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input samples.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted labels, from ``classes_``; a 0/1 indicator matrix
            in multilabel classification.
        """
        raw, _, space = self._raw_output(X, "predict")
        labels = self._label_binarizer.inverse_transform(self._indicator(raw))
        return _array_api.to_caller(labels, space)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input samples.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            The probability of each class, in the order of ``classes_``. In
            multilabel classification, the probability of each label.
        """
        proba, space = self._proba(X, "predict_proba")
        return _array_api.to_caller(proba, space)

    def _proba(self, X, method):
        proba, space = self._forward(X, method)
        if self.n_outputs_ == 1 and self._label_binarizer.y_type_ != "multilabel-indicator":
            # binary (and, as in scikit-learn, a single class): two columns
            proba = np.hstack([1 - proba, proba])
        return proba, space

    def predict_log_proba(self, X):
        """Logarithm of the probability estimates.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input samples.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """
        proba, space = self._proba(X, "predict_log_proba")
        with np.errstate(divide="ignore"):
            return _array_api.to_caller(np.log(proba), space)

    @available_if(lambda est: est._check_solver())
    @_keras.fit_hints
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single epoch over the given data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array of shape (n_classes,), default=None
            All the classes that can appear in the calls to ``partial_fit``.
            Required on the first call, ignored afterwards.

        Returns
        -------
        self : object
            The trained model.
        """
        with _atomic(self, incremental=True):
            first = _check_partial_fit_first_call(self, classes)
            if first and hasattr(self, "net_"):
                del self.net_
            return self._fit(
                X,
                y,
                sample_weight=sample_weight,
                incremental=True,
                classes=classes if first else None,
            )


class _RegressorNet(_BaseNet):
    """Target handling shared by the regressors."""

    def _validate_Xy(self, X, y, reset):
        X, y = validate_data(
            self,
            X,
            y,
            multi_output=True,
            y_numeric=True,
            dtype=_array_api.float_dtypes(X, _FLOAT_DTYPES),
            accept_sparse=self._accept_sparse,
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _encode_targets(self, y, first_call, classes=None):
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(
                "Some value(s) of y are negative which is not allowed for Poisson "
                "regression."
            )
        y = np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)
        out = "exp" if self.loss == "poisson" else "identity"
        if not first_call and y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y.shape[1]} outputs, but {type(self).__name__} was fitted "
                f"with {self.n_outputs_}."
            )
        return y, self.loss, out, y.shape[1]

    def _validation_score(self, raw, y, w):
        pred = OUT_ACTIVATIONS[self.out_activation_].numpy(raw)
        if not np.isfinite(pred).all():
            return np.nan
        return r2_score(y, pred, sample_weight=w)

    def predict(self, X):
        """Predict using the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values, 1-D when the model was fitted on 1-D y.
        """
        pred, space = self._forward(X, "predict")
        return _array_api.to_caller(pred.ravel() if self.n_outputs_ == 1 else pred, space)

    @available_if(lambda est: est._check_solver())
    @_keras.fit_hints
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with a single epoch over the given data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            The trained model.
        """
        with _atomic(self, incremental=True):
            return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.positive_only = self.loss == "poisson"
        return tags
