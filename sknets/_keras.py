"""Hints for Keras habits: the one table of Keras names and what they are
called here, read by the errors of the constructors, ``fit`` /
``partial_fit``, ``set_params`` and parameter validation.

Nothing here changes what is accepted: each hint is added to the error that
Python or scikit-learn raises anyway, after its own words.
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
    "validation_data": "the estimator holds out its own validation rows with "
    "early_stopping=True and validation_fraction; score a validation set of "
    "your own with score(X_val, y_val)",
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
    "class_weight": "weight the samples in fit(X, y, sample_weight=...), for "
    "example with sklearn.utils.class_weight.compute_sample_weight",
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
    "validation_data": "the estimator holds out its own validation rows with "
    "its parameters early_stopping=True and validation_fraction; score a "
    "validation set of your own with score(X_val, y_val)",
    "callbacks": CONSTRUCTOR["callbacks"],
    "class_weight": "pass per-sample weights as sample_weight, for example "
    "sample_weight=sklearn.utils.class_weight.compute_sample_weight('balanced', y)",
}

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
