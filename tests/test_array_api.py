"""scikit-learn's array API (sknets._array_api): torch tensors train and
predict where they are, other namespaces through numpy, outputs follow X.

scikit-learn's own array API checks run in tests/test_common.py (the
estimators declare ``array_api_support``); these tests add what they do not
check: equal values, bit for bit, no host copy of X, devices, pipelines and
model selection.
"""

import pickle
import warnings

import numpy as np
import pytest
import sklearn
import torch
from sklearn.datasets import make_classification
from sklearn.model_selection import KFold
from sklearn.model_selection import cross_val_score as sk_cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import sknets
from sknets import ConvClassifier, ConvRegressor, MLPClassifier, MLPRegressor
from sknets import model_selection as ms

FAST = {
    MLPClassifier: {"hidden_layer_sizes": (8,), "max_iter": 4},
    MLPRegressor: {"hidden_layer_sizes": (8,), "max_iter": 4},
    ConvClassifier: {"filters": (2, 3), "hidden_layer_sizes": (8,), "max_iter": 3},
    ConvRegressor: {"filters": (2, 3), "hidden_layer_sizes": (8,), "max_iter": 3},
}
REGRESSORS = (MLPRegressor, ConvRegressor)


def dispatch():
    return sklearn.config_context(array_api_dispatch=True)


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=80, n_features=16, n_classes=3, n_informative=5,
                               random_state=0)
    return X, y


def _target(Est, y):
    return (y * 1.5).astype(np.float64) if Est in REGRESSORS else y


def _make(Est, **params):
    return make_pipeline(MinMaxScaler(), Est(**FAST[Est], random_state=0, **params))


def _quiet_fit(model, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        return model.fit(X, y, **kw)


def _methods(est):
    return [m for m in ("predict", "predict_proba", "predict_log_proba") if hasattr(est, m)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("Est", list(FAST))
def test_a_tensor_pipeline_is_bit_equal_to_the_numpy_one(Est, dtype, data):
    X, y = data
    X, y = X.astype(dtype), _target(Est, y)
    reference = _quiet_fit(_make(Est), X, y)
    Xt, yt = torch.asarray(X), torch.asarray(y)
    with dispatch():
        model = _quiet_fit(_make(Est), Xt, yt)
        for method in _methods(model):
            out = getattr(model, method)(Xt)
            assert isinstance(out, torch.Tensor), method
            assert out.device == Xt.device
            expected = getattr(reference, method)(X)
            assert out.numpy().dtype == expected.dtype, method
            np.testing.assert_array_equal(out.numpy(), expected)
        score = model.score(Xt, yt)
    assert isinstance(score, float)
    assert score == pytest.approx(reference.score(X, y), abs=1e-6)
    net, ref_net = model[-1].net_.module_, reference[-1].net_.module_
    for a, b in zip(net.state_dict().values(), ref_net.state_dict().values()):
        assert torch.equal(a, b)


def test_fitted_arrays_follow_x(data):
    X, y = data
    with dispatch():
        est = _quiet_fit(MLPClassifier(**FAST[MLPClassifier], random_state=0),
                         torch.asarray(X), torch.asarray(y))
    assert all(isinstance(c, torch.Tensor) for c in est.coefs_ + est.intercepts_)
    assert est.coefs_[0].dtype == torch.float64
    assert isinstance(est.classes_, np.ndarray)  # as scikit-learn: classes_ may be strings


def test_string_classes_are_predicted_as_numpy(data):
    X, y = data
    labels = np.array(["a", "b", "c"])[y]
    Xt = torch.asarray(X)
    with dispatch():
        est = _quiet_fit(MLPClassifier(**FAST[MLPClassifier], random_state=0), Xt, labels)
        pred = est.predict(Xt)
        proba = est.predict_proba(Xt)
    assert isinstance(pred, np.ndarray) and pred.dtype.kind == "U"
    assert isinstance(proba, torch.Tensor)


def test_without_dispatch_tensors_give_numpy_as_before(data):
    X, y = data
    est = _quiet_fit(MLPClassifier(**FAST[MLPClassifier], random_state=0),
                     torch.asarray(X), torch.asarray(y))
    assert isinstance(est.predict(torch.asarray(X)), np.ndarray)
    assert isinstance(est.coefs_[0], np.ndarray)
    reference = _quiet_fit(MLPClassifier(**FAST[MLPClassifier], random_state=0), X, y)
    np.testing.assert_array_equal(est.predict_proba(X), reference.predict_proba(X))


@pytest.mark.parametrize("Est", [MLPClassifier, ConvRegressor])
def test_array_api_strict_goes_through_numpy_and_comes_back(Est, data):
    xps = pytest.importorskip("array_api_strict")
    X, y = data
    y = _target(Est, y)
    reference = _quiet_fit(Est(**FAST[Est], random_state=0), X, y)
    with dispatch():
        est = _quiet_fit(Est(**FAST[Est], random_state=0), xps.asarray(X), xps.asarray(y))
        pred = est.predict(xps.asarray(X))
    assert type(pred).__module__.startswith("array_api_strict")
    np.testing.assert_array_equal(np.asarray(pred._array), reference.predict(X))


def test_predicting_with_another_namespace_than_the_fit_is_an_error(data):
    X, y = data
    with dispatch():
        est = _quiet_fit(MLPClassifier(**FAST[MLPClassifier]), torch.asarray(X), torch.asarray(y))
        with pytest.raises(ValueError, match=r"MLPClassifier.predict\(\) must use the same"):
            est.predict(X)
        with pytest.raises(ValueError, match="same namespace"):
            est.partial_fit(X, y)


def test_an_explicit_device_other_than_xs_is_an_error():
    est = MLPClassifier(device="cpu")
    # a tensor on another device than the one asked for ('meta': no data needed)
    with pytest.raises(ValueError, match="X is a tensor on device 'meta', but device='cpu'"):
        est._fit_device(torch.empty((3, 2), device="meta"))
    assert MLPClassifier()._fit_device(torch.empty((3, 2))) == torch.device("cpu")
    assert MLPClassifier(device="cpu")._fit_device(torch.empty((3, 2))) == torch.device("cpu")


def test_partial_fit_and_sample_weight_on_tensors(data):
    X, y = data
    w = np.linspace(0.5, 2.0, len(y))
    ref = MLPClassifier(**FAST[MLPClassifier], random_state=0)
    ref.partial_fit(X, y, sample_weight=w, classes=np.unique(y))
    ref.partial_fit(X, y, sample_weight=w)
    est = MLPClassifier(**FAST[MLPClassifier], random_state=0)
    Xt, yt = torch.asarray(X), torch.asarray(y)
    with dispatch():
        # y, weights and classes may come in another namespace than X
        est.partial_fit(Xt, y, sample_weight=torch.asarray(w), classes=torch.asarray(np.unique(y)))
        est.partial_fit(Xt, yt, sample_weight=w)
        proba = est.predict_proba(Xt)
    np.testing.assert_array_equal(proba.numpy(), ref.predict_proba(X))


@pytest.mark.parametrize("Est", list(FAST))
def test_x_is_never_copied_to_the_host(Est, data, host_copies):
    X, y = data
    y = _target(Est, y)
    Xt = torch.asarray(X)
    copies = host_copies(Xt.numel())
    with dispatch():
        model = _quiet_fit(_make(Est, early_stopping=True, validation_fraction=0.25), Xt, y)
        for method in _methods(model):
            getattr(model, method)(Xt)
    assert copies == []
    # the spy sees a conversion where there is one
    np.asarray(Xt)
    assert "__array__" in copies


def test_cross_validation_and_searches_on_tensors(data):
    X, y = data
    Xt, yt = torch.asarray(X), torch.asarray(y)
    est = MLPClassifier(**FAST[MLPClassifier], random_state=0)
    cv = KFold(3, shuffle=True, random_state=0)
    expected = sk_cross_val_score(est, X, y, cv=cv)
    with dispatch(), warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        ours = ms.cross_val_score(est, Xt, yt, cv=cv)
        theirs = sk_cross_val_score(est, Xt, yt, cv=cv)
        search = ms.GridSearchCV(est, {"learning_rate_init": [0.001, 0.01]}, cv=cv).fit(Xt, yt)
        assert isinstance(search.predict(Xt), torch.Tensor)
    np.testing.assert_allclose(ours, expected, atol=1e-12)
    np.testing.assert_allclose(theirs, expected, atol=1e-12)


def test_a_tensor_fit_saves_and_loads(data):
    sio = pytest.importorskip("skops.io")
    X, y = data
    Xt = torch.asarray(X)
    with dispatch():
        est = _quiet_fit(MLPClassifier(**FAST[MLPClassifier], random_state=0), Xt, torch.asarray(y))
    blob = sio.dumps(est)
    assert sio.get_untrusted_types(data=blob) == ["sknets._mlp.MLPClassifier"]
    for loaded in (sio.loads(blob, trusted=sknets.TRUSTED_TYPES), pickle.loads(pickle.dumps(est))):
        assert isinstance(loaded.coefs_[0], torch.Tensor)
        with dispatch():
            assert torch.equal(loaded.predict_proba(Xt), est.predict_proba(Xt))


def test_scikit_learns_halving_search_on_tensors(data):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    X, y = data
    grid = {"learning_rate_init": [1e-3, 1e-2, 3e-2]}

    def search():
        return HalvingGridSearchCV(MLPClassifier(**FAST[MLPClassifier], random_state=0), grid,
                                   cv=3, random_state=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        reference = search().fit(X, y)
        with dispatch():
            ours = search().fit(torch.asarray(X), torch.asarray(y))
            pred = ours.predict(torch.asarray(X))
    assert isinstance(pred, torch.Tensor)
    assert ours.best_params_ == reference.best_params_
    # (scikit-learn's accuracy of tensors sums in torch: the last digits differ)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                               reference.cv_results_["mean_test_score"], rtol=1e-7)
