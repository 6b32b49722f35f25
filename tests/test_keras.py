"""The hints for Keras habits (sknets/_keras.py): Python's and
scikit-learn's own errors, with the scikit-learn name to use and the user
guide page, and scikit-learn's conventions untouched."""

import copy
import importlib.util
import inspect
import pickle
import re

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

import sknets
from sknets import ConvClassifier, ConvRegressor, MLPClassifier, MLPRegressor
from sknets._keras import ATTRIBUTES, CONSTRUCTOR, FIT, PAGE, VALUE_HINTS

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
    fit = inspect.signature(Est.fit).parameters
    assert list(fit)[:4] == ["self", "X", "y", "sample_weight"]
    assert all(p.kind is not p.VAR_KEYWORD for p in fit.values())


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
        (MLPClassifier, "activation", "softmax", "softmax for multiclass"),
        (ConvRegressor, "activation", "Softmax", "identity for regression"),
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


def test_validation_data_and_class_weight_hints_name_this_releases_way(data):
    """validation_data is fit(X, y, X_val=..., y_val=...) with
    early_stopping; class_weight is the classifiers' parameter (the
    constructor's hint is the regressors')."""
    for hint in (CONSTRUCTOR["validation_data"], FIT["validation_data"]):
        assert "X_val=X_val, y_val=y_val" in hint and "early_stopping=True" in hint
        assert "transform_input=['X_val']" in hint
    X, y = data
    with pytest.raises(TypeError, match=r"^MLPRegressor\.__init__\(\) .*'class_weight'\. ") as e:
        MLPRegressor(class_weight="balanced")
    assert "sample_weight" in str(e.value)
    with pytest.raises(TypeError, match=r"^MLPClassifier\.fit\(\) .*'class_weight'\. ") as e:
        MLPClassifier(**FAST).fit(X, y, class_weight={0: 1.0, 1: 2.0})
    assert "class_weight='balanced'" in str(e.value)


# -- Keras attributes and methods: Python's AttributeError, with the way -------


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return MLPClassifier(**{**FAST, "early_stopping": True}).fit(X, y)


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize(
    "name, expected",
    [
        ("summary", "print(est.net_.module_)"),
        ("history", "loss_curve_"),
        ("evaluate", "score(X, y)"),
        ("predict_classes", "predict(X)"),
        ("compile", "constructor"),
        ("layers", "hidden_layer_sizes"),
        ("save", "sknets.onnx"),
        ("count_params", "numel()"),
        ("get_weights", "coefs_"),
        ("save_weights", "load_weights"),
    ],
)
def test_keras_attribute_is_pythons_attribute_error_with_the_way(Est, name, expected):
    est = Est(**FAST)
    with pytest.raises(AttributeError) as exc:
        getattr(est, name)
    message = str(exc.value)
    assert message.startswith(f"'{Est.__name__}' object has no attribute {name!r}. Keras users: ")
    assert expected in message and PAGE in message
    assert exc.value.name == name and exc.value.obj is est  # as Python sets them
    assert not hasattr(est, name)
    assert getattr(est, name, None) is None


def test_keras_attributes_of_a_fitted_estimator(fitted):
    with pytest.raises(AttributeError, match="loss_curve_"):
        fitted.history  # noqa: B018
    with pytest.raises(AttributeError, match=re.escape("score(X, y)")):
        fitted.evaluate(np.zeros((2, 16)), [0, 1])
    assert not hasattr(fitted, "summary") and hasattr(fitted, "loss_curve_")


def test_other_missing_attributes_keep_pythons_words(fitted):
    est = MLPClassifier()
    for obj, name in [(est, "foo"), (est, "predict_clases"), (fitted, "coef_"), (est, "coefs_")]:
        with pytest.raises(AttributeError) as exc:
            getattr(obj, name)
        assert str(exc.value) == f"'MLPClassifier' object has no attribute {name!r}"
        assert exc.value.name == name and exc.value.obj is obj
    with pytest.raises(AttributeError) as exc:
        MLPRegressor().predict_proba  # noqa: B018
    assert str(exc.value) == "'MLPRegressor' object has no attribute 'predict_proba'"


def test_available_if_keeps_its_own_error():
    """partial_fit of a full-batch solver is scikit-learn's available_if
    error, not a hint nor a plain one of ours."""
    est = MLPClassifier(solver="lbfgs")
    assert not hasattr(est, "partial_fit")
    message = "^This 'MLPClassifier' has no attribute 'partial_fit'$"
    with pytest.raises(AttributeError, match=message):
        est.partial_fit  # noqa: B018
    assert hasattr(MLPClassifier(solver="adam"), "partial_fit")


def test_copies_and_bare_instances(fitted, data):
    """Copying and unpickling look attributes up before __dict__ is set:
    no recursion, and the copies predict as the original."""
    X, _ = data
    for copied in (pickle.loads(pickle.dumps(fitted)), copy.deepcopy(fitted), copy.copy(fitted)):
        np.testing.assert_array_equal(copied.predict(X), fitted.predict(X))
        assert not hasattr(copied, "history")
    bare = MLPClassifier.__new__(MLPClassifier)
    assert not hasattr(bare, "max_iter") and not hasattr(bare, "summary")


def test_every_attribute_hint_names_what_exists(fitted):
    """Each attribute hint names scikit-learn's way, and every attribute of
    the fitted estimator (est.x, net_.x) or of sknets it names exists."""
    params = set(MLPClassifier._get_param_names()) | set(dir(fitted))
    for name, hint in {**ATTRIBUTES, **VALUE_HINTS["activation"]}.items():
        words = set(re.findall(r"[A-Za-z_][\w.]*", hint))
        heads = {w.removeprefix("est.").split(".")[0] for w in words}
        assert heads & (params | {"sknets"}), name
        for word in words:
            path = word.rstrip(".").split(".")
            if path[0] == "sknets":  # sknets.onnx (needs skl2onnx), sknets.X
                assert importlib.util.find_spec(word) or hasattr(sknets, path[1]), word
                continue
            if path[0] == "est":
                path = path[1:]
            elif path[0] != "net_":
                continue
            obj = fitted
            for part in path:
                obj = getattr(obj, part)
        assert name not in dir(fitted)  # the estimators gain no Keras name
