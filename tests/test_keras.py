"""The hints for Keras habits (sknets/_keras.py): Python's and
scikit-learn's own errors, with the scikit-learn name to use and the user
guide page, and scikit-learn's conventions untouched."""

import inspect
import pickle
import re

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from sknets import ConvClassifier, ConvRegressor, MLPClassifier, MLPRegressor
from sknets._keras import CONSTRUCTOR, FIT, PAGE

ESTIMATORS = [MLPClassifier, MLPRegressor, ConvClassifier, ConvRegressor]
FAST = dict(hidden_layer_sizes=(4,), max_iter=2, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((40, 16)), np.arange(40) % 2


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize(
    "keyword, names",
    [("epochs", "max_iter"), ("optimizer", "solver"), ("validation_data", "early_stopping")],
)
def test_constructor_keyword_is_pythons_type_error_with_the_name(Est, keyword, names):
    with pytest.raises(TypeError) as exc:
        Est(**{keyword: 5})
    message = str(exc.value)
    assert message.startswith(
        f"{Est.__name__}.__init__() got an unexpected keyword argument {keyword!r}."
    )
    assert names in message and PAGE in message


def test_other_unknown_keywords_are_pythons_own_error():
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'n_epochs'$"):
        MLPClassifier(n_epochs=5)


def test_keras_loss_hint_only_where_there_is_no_loss_parameter():
    with pytest.raises(TypeError, match="log loss"):
        MLPClassifier(loss="categorical_crossentropy")
    assert MLPRegressor(loss="huber").loss == "huber"


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_conventions_are_untouched(Est):
    """__init__ keeps its signature (no **kwargs), clone, get_params and
    pickling work, and the class signature is __init__'s."""
    est = Est(max_iter=7)
    assert "max_iter" in inspect.signature(Est).parameters
    assert all(
        p.kind is not p.VAR_KEYWORD for p in inspect.signature(Est.__init__).parameters.values()
    )
    assert clone(est).get_params() == est.get_params()
    assert pickle.loads(pickle.dumps(est)).max_iter == 7
    assert list(inspect.signature(Est.fit).parameters) == ["self", "X", "y", "sample_weight"]


@pytest.mark.parametrize("Est", [MLPClassifier, ConvClassifier])
@pytest.mark.parametrize("keyword", ["epochs", "batch_size", "validation_data", "callbacks"])
def test_fit_keyword_names_the_class_and_the_parameter(Est, keyword, data):
    X, y = data
    est = Est(**FAST)
    with pytest.raises(TypeError) as exc:
        est.fit(X, y, **{keyword: 5})
    message = str(exc.value)
    assert message.startswith(
        f"{Est.__name__}.fit() got an unexpected keyword argument {keyword!r}."
    )
    assert "_BaseNet" not in message
    assert FIT[keyword].split(",")[0] in message and PAGE in message
    assert not hasattr(est, "net_")  # nothing fitted


def test_partial_fit_keyword_and_unknown_keywords(data):
    X, y = data
    with pytest.raises(TypeError, match=r"^MLPRegressor\.partial_fit\(\) .* 'epochs'\. "):
        MLPRegressor(**FAST).partial_fit(X, y, epochs=3)
    with pytest.raises(TypeError, match=r"^MLPClassifier\.fit\(\) .* 'foo'$"):
        MLPClassifier(**FAST).fit(X, y, foo=1)


@pytest.mark.parametrize(
    "Est, param, value, expected",
    [
        (MLPClassifier, "solver", "Adam", "solver='adam'"),
        (ConvClassifier, "solver", "SGD", "solver='sgd'"),
        (MLPRegressor, "solver", "RMSprop", "solver='rmsprop'"),
        (MLPRegressor, "loss", "mse", "loss='squared_error'"),
        (ConvRegressor, "loss", "mean_absolute_error", "loss='absolute_error'"),
        (MLPClassifier, "activation", "ReLU", "activation='relu'"),
        (MLPClassifier, "learning_rate", 0.01, "learning_rate_init"),
    ],
)
def test_keras_values_are_scikit_learns_error_with_the_name(Est, param, value, expected, data):
    X, y = data
    est = Est(**{**FAST, param: value})
    with pytest.raises(InvalidParameterError) as exc:
        est.fit(X, y)
    message = str(exc.value)
    assert message.startswith(f"The {param!r} parameter of {Est.__name__} must be")
    assert expected in message and PAGE in message
    assert not hasattr(est, "net_")


def test_other_invalid_values_keep_scikit_learns_words(data):
    X, y = data
    with pytest.raises(InvalidParameterError) as exc:
        MLPClassifier(solver="newton", **FAST).fit(X, y)
    assert str(exc.value).endswith("Got 'newton' instead.")


def test_set_params_and_grid_search_keyword(data):
    X, y = data
    est = MLPClassifier(**FAST)
    msg = "Invalid parameter 'epochs' for estimator"
    with pytest.raises(ValueError, match=re.escape(msg)) as e:
        est.set_params(max_iter=9, epochs=3)
    assert "max_iter" in str(e.value).split("Keras users:")[1]
    assert est.max_iter == 2  # nothing was set
    with pytest.raises(ValueError, match="Keras users"):
        GridSearchCV(est, {"epochs": [1, 2]}, cv=2).fit(X, y)
    assert est.set_params(max_iter=3).max_iter == 3


def test_every_hint_names_a_parameter_that_exists():
    """Each hint's scikit-learn name is a parameter of the estimators (or a
    fit argument), so that the hints cannot drift from the API."""
    params = set().union(*(Est._get_param_names() for Est in ESTIMATORS)) | {
        "sample_weight",
        "score",
        "loss_curve_",
    }
    for table in (CONSTRUCTOR, FIT):
        for hint in table.values():
            named = set(re.findall(r"[a-z_]+(?==|\b)", hint)) & params
            assert named, hint
