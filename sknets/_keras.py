"""Hints for Keras habits: the tables of Keras names and what they are
called here, read by the errors of the constructors, ``fit`` /
``partial_fit``, ``set_params``, parameter validation and attribute access
(``est.summary()``, ``est.history``).

Nothing here changes what is accepted: each hint is added to the error that
Python or scikit-learn raises anyway, after its own words. The estimators
gain no Keras method or attribute: ``hasattr(est, 'summary')`` stays False.
"""

import functools
import inspect

#: Where the mapping is explained (``docs/user_guide/keras.rst``).
PAGE = "'Coming from Keras' in the sknets user guide (docs/user_guide/keras.rst)"

#: Keras keywords of a model or layer, given to an estimator's constructor
#: (or ``set_params``) where it has no such parameter: what to use instead.
CONSTRUCTOR = {
    "epochs": "the number of epochs is max_iter (an upper bound: training also "
    "stops when the loss stops improving, see tol and n_iter_no_change)",
    "optimizer": "the optimizer is solver, by name: solver='adam' (or 'sgd', "
    "'rmsprop', 'adamw', 'lbfgs'), its learning rate learning_rate_init",
    "lr": "the learning rate is learning_rate_init",
    "validation_split": "hold out a validation fraction with early_stopping=True "
    "and validation_fraction=0.1",
    "validation_data": "pass a validation set of your own to fit, "
    "fit(X, y, X_val=X_val, y_val=y_val), with early_stopping=True (as "
    "scikit-learn's HistGradientBoosting estimators); in a Pipeline, "
    "Pipeline(..., transform_input=['X_val']) transforms X_val as X (with "
    "metadata routing enabled)",
    "callbacks": "there are no callbacks: early_stopping=True with "
    "n_iter_no_change is EarlyStopping (the best weights are kept), "
    "learning_rate='adaptive' with solver='sgd' is ReduceLROnPlateau, and the "
    "per-epoch history is loss_curve_ and net_.history",
    "loss": "the classifiers always train on the log loss (Keras' "
    "categorical / binary cross-entropy); pass class labels as y",
    "metrics": "score(X, y) gives the accuracy (R^2 for regressors); any other "
    "metric comes from sklearn.metrics or scoring= in model selection",
    "units": "the widths of the hidden layers are hidden_layer_sizes, for "
    "example hidden_layer_sizes=(64, 32) for Dense(64), Dense(32)",
    "layers": "the widths of the hidden layers are hidden_layer_sizes, for "
    "example hidden_layer_sizes=(64, 32) for Dense(64), Dense(32)",
    "kernel_regularizer": "the L2 penalty on the weights is alpha",
    # (a parameter of the classifiers: this hint is the regressors')
    "class_weight": "class weights apply to classification only "
    "(MLPClassifier(class_weight='balanced')); weight the samples of a "
    "regression with fit(X, y, sample_weight=...)",
}

#: Keras keywords of ``model.fit`` given to ``fit`` / ``partial_fit``.
FIT = {
    "epochs": "the number of epochs is the estimator's parameter max_iter, "
    "set in the constructor or with set_params(max_iter=...)",
    "batch_size": "the batch size is the estimator's parameter batch_size, set "
    "in the constructor or with set_params(batch_size=...)",
    "verbose": "verbose is the estimator's parameter, set in the constructor "
    "or with set_params(verbose=1)",
    "shuffle": "shuffle is the estimator's parameter, set in the constructor",
    "validation_split": "hold out a validation fraction with the estimator's "
    "parameters early_stopping=True and validation_fraction=0.1",
    "validation_data": "pass the validation set as fit(X, y, X_val=X_val, "
    "y_val=y_val), with the estimator's parameter early_stopping=True (as "
    "scikit-learn's HistGradientBoosting estimators); in a Pipeline, "
    "Pipeline(..., transform_input=['X_val']) transforms X_val as X (with "
    "metadata routing enabled)",
    "callbacks": CONSTRUCTOR["callbacks"],
    "class_weight": "class_weight is the classifiers' parameter, as elsewhere "
    "in scikit-learn: MLPClassifier(class_weight='balanced') or a dict "
    "{class: weight}, also in ConvClassifier; a regression weights its "
    "samples with sample_weight",
}

#: Keras attributes and methods of a model, looked up on an estimator that
#: has none of that name (``est.summary()``): what to use instead. The
#: AttributeError is Python's own, so ``hasattr`` stays False.
ATTRIBUTES = {
    "summary": "print(est.net_.module_) shows the fitted torch network layer "
    "by layer, sum(p.numel() for p in est.net_.module_.parameters()) counts "
    "its parameters; the widths of the hidden layers are hidden_layer_sizes "
    "(and filters in the convolutional estimators), the shapes of the dense "
    "weights [w.shape for w in est.coefs_]",
    "count_params": "sum(p.numel() for p in est.net_.module_.parameters()) "
    "counts the parameters of the fitted torch network net_.module_",
    "layers": "the fitted torch network is net_.module_ (print it to see its "
    "layers); the widths of the hidden layers are hidden_layer_sizes, the "
    "weights and biases of the dense layers coefs_ and intercepts_",
    "history": "the training loss of each epoch is loss_curve_ (Keras' "
    "history['loss']); with early_stopping=True, validation_loss_curve_ and "
    "validation_scores_ are val_loss and val_accuracy; the skorch net's "
    "history is net_.history",
    "evaluate": "score(X, y) gives the accuracy (R^2 for regressors); any "
    "other metric comes from sklearn.metrics, on predict(X) or predict_proba(X)",
    "predict_classes": "the classifiers' predict(X) returns the class labels "
    "(Keras' predict(X).argmax(axis=1)), and predict_proba(X) the "
    "probabilities (Keras' predict(X))",
    "compile": "there is nothing to compile: the constructor takes every "
    "setting (solver='adam', learning_rate_init, alpha, ...) and fit(X, y) "
    "builds and trains the network",
    "save": "save the estimator with skops (sknets.TRUSTED_TYPES as trusted=), "
    "pickle or joblib, or export it to ONNX with sknets.onnx: the user "
    "guide's 'Saving and loading' (docs/user_guide/persistence.rst)",
    "save_weights": "est.net_.save_params(f_params=path) saves the network's "
    "weights and load_weights(path) loads them into a fitted estimator",
    "get_weights": "the weights and biases of the dense layers are coefs_ and "
    "intercepts_ (arrays, as in scikit-learn's MLP); every tensor of the "
    "fitted torch network is in net_.module_.state_dict()",
    "optimizer": "the optimizer is the parameter solver (solver='adam'); the "
    "fitted torch optimizer is net_.optimizer_",
}
ATTRIBUTES["weights"] = ATTRIBUTES["get_weights"]

#: Keras spellings of parameter values: ``{parameter: {keras value: ours}}``,
#: beyond a mere difference of case ('Adam' for 'adam').
VALUES = {
    "loss": {
        "mse": "squared_error",
        "mean_squared_error": "squared_error",
        "mae": "absolute_error",
        "mean_absolute_error": "absolute_error",
        "huber_loss": "huber",
    },
    "activation": {"swish": "silu", "linear": "identity"},
}

#: Keras values with no counterpart: ``{parameter: {keras value: hint}}``.
VALUE_HINTS = {
    "activation": {
        "softmax": "activation is the hidden layers' activation; the output "
        "layer's is chosen from y, as in scikit-learn's MLP: softmax for "
        "multiclass, logistic (the sigmoid) for binary and multilabel "
        "targets, identity for regression (out_activation_ after fit)",
    },
}


def _see(hint):
    return f" Keras users: {hint}. See {PAGE}."


def constructor_hint(cls, kwargs):
    """Raise Python's TypeError for the first Keras keyword of ``kwargs``
    that ``cls`` does not take, with its hint; nothing otherwise."""
    for name in kwargs:
        if name in CONSTRUCTOR and name not in cls._get_param_names():
            raise TypeError(
                f"{cls.__name__}.__init__() got an unexpected keyword argument "
                f"{name!r}.{_see(CONSTRUCTOR[name])}"
            )


def set_params_hint(est, params):
    """Raise scikit-learn's ValueError for the first Keras keyword of
    ``params`` that ``est`` does not take, with its hint, before any
    parameter is set; nothing otherwise."""
    valid = est._get_param_names()
    for name in params:
        if name in CONSTRUCTOR and name not in valid:
            raise ValueError(
                f"Invalid parameter {name!r} for estimator {est}. "
                f"Valid parameters are: {valid!r}.{_see(CONSTRUCTOR[name])}"
            )


def value_hint(est, message):
    """The hint for an invalid parameter value named in scikit-learn's
    ``message`` ("The 'solver' parameter of ... Got 'Adam' instead."), or ''."""
    for name, constraints in est._parameter_constraints.items():
        if f"The {name!r} parameter" not in message:
            continue
        value = est.get_params(deep=False).get(name)
        if name == "learning_rate" and not isinstance(value, str):
            return _see(
                "the learning rate is learning_rate_init; learning_rate is the "
                "schedule of solver='sgd' ('constant', 'invscaling', 'adaptive')"
            )
        if not isinstance(value, str):
            return ""
        hint = VALUE_HINTS.get(name, {}).get(value.lower())
        if hint is not None:
            return _see(hint)
        options = set()
        for c in constraints:
            options |= set(getattr(c, "options", ()))
        options = {o for o in options if isinstance(o, str)}
        match = VALUES.get(name, {}).get(value.lower())
        if match is None:
            match = next((o for o in sorted(options) if o.lower() == value.lower()), None)
        if match in options:
            return f" Did you mean {name}={match!r}? See {PAGE}."
        return ""
    return ""


def fit_hints(method):
    """Wrap ``fit`` / ``partial_fit``: a keyword argument it does not take is
    Python's TypeError, naming the estimator's class (not the base class
    that defines the method) and, for Keras' ``fit`` keywords, what to use.
    The signature (``inspect.signature``) is the method's own."""
    names = set(inspect.signature(method).parameters)

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        for name in kwargs:
            if name not in names:
                hint = f".{_see(FIT[name])}" if name in FIT else ""
                raise TypeError(
                    f"{type(self).__name__}.{method.__name__}() got an unexpected "
                    f"keyword argument {name!r}{hint}"
                )
        return method(self, *args, **kwargs)

    return wrapper


class AttributeHints:
    """Mixin of the estimator base: a missing attribute is Python's
    AttributeError, with the scikit-learn way for a Keras name
    (:data:`ATTRIBUTES`).

    ``__getattr__`` is only consulted once the normal lookup has failed; it
    reads no attribute of the instance (unpickling and copying call it
    before ``__dict__`` is set), and a name of the class, a descriptor that
    raised AttributeError (``available_if``: ``partial_fit`` with L-BFGS),
    raises its own error again.
    """

    __slots__ = ()

    def __getattr__(self, name):
        cls = type(self)
        if hasattr(cls, name):
            return object.__getattribute__(self, name)
        message = f"'{cls.__name__}' object has no attribute '{name}'"
        if name in ATTRIBUTES:
            message += f".{_see(ATTRIBUTES[name])}"
        raise AttributeError(message)
