"""The closed-form CPU step (sknets._closed_form) trains the model of the
autograd step."""

import contextlib
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning

from sknets import ConvClassifier, MLPClassifier, MLPRegressor
from sknets._closed_form import (
    NUMPY_STEP,
    ClosedFormStep,
    NumpyStep,
    why_not_closed_form,
    why_not_numpy,
)
from sknets._engine import FastNet

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(params=["torch", "numpy"])
def calls(request, monkeypatch):
    """Counts the closed-form steps taken, of each kind in turn: torch's
    operators (:class:`ClosedFormStep`) and numpy's (:class:`NumpyStep`,
    which small networks take)."""
    counter = {"n": 0, "kind": request.param}
    kind = ClosedFormStep if request.param == "torch" else NumpyStep
    # (the numpy step's one path: tensors, or the rows of the fit's data)
    original = kind.__call__ if kind is ClosedFormStep else kind._step

    def spy(self, *args, **kwargs):
        counter["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(kind, "__call__" if kind is ClosedFormStep else "_step", spy)
    monkeypatch.setattr(FastNet, "numpy_step", request.param == "numpy")
    return counter


def _fit(make, X, y, closed, monkeypatch, **fit_kw):
    monkeypatch.setattr(FastNet, "closed_form", closed)
    est = make().fit(X, y, **fit_kw)
    monkeypatch.setattr(FastNet, "closed_form", True)
    return est


def _params(est):
    return [*est.coefs_, *est.intercepts_]


def _data(task):
    if task == "multiclass":
        return make_classification(120, 6, n_informative=4, n_classes=3, random_state=0)
    if task == "binary":
        return make_classification(120, 6, random_state=1)
    if task == "multilabel":
        X, _ = make_classification(120, 6, random_state=2)
        rng = np.random.RandomState(0)
        return X, (X[:, :3] + rng.normal(0, 0.5, (120, 3)) > 0).astype(int)
    X, y = make_regression(120, 6, n_targets=2, random_state=0)
    return X, y / 100


@pytest.mark.parametrize("solver", ["adam", "sgd", "adamw", "rmsprop"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel", "regression"])
@pytest.mark.parametrize("weighted", [False, True])
def test_same_model_as_autograd_float64(solver, activation, task, weighted, calls, monkeypatch):
    X, y = _data(task)
    cls = MLPRegressor if task == "regression" else MLPClassifier
    fit_kw = {}
    if weighted:
        fit_kw["sample_weight"] = np.random.RandomState(0).uniform(0.5, 2.0, len(X))

    def make():
        return cls(hidden_layer_sizes=(7, 5), solver=solver, activation=activation,
                   alpha=0.01, batch_size=32, max_iter=6, random_state=0,
                   momentum=0.9, nesterovs_momentum=True)

    with _no_check():
        a = _fit(make, X, y, False, monkeypatch, **fit_kw)
        assert calls["n"] == 0
        b = _fit(make, X, y, True, monkeypatch, **fit_kw)
    assert calls["n"] == 6 * 4  # 6 epochs of 4 batches (the last one smaller)
    for pa, pb in zip(_params(a), _params(b)):
        np.testing.assert_allclose(pa, pb, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10)


@contextlib.contextmanager
def _no_check():
    """Short fits on purpose: their ConvergenceWarnings are not the point."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.mark.parametrize("loss", ["squared_error", "poisson", "absolute_error", "huber"])
def test_regression_losses_same_model(loss, calls, monkeypatch):
    if calls["kind"] == "numpy" and loss != "squared_error":
        pytest.skip(f"{loss} has no numpy closed form: torch's step trains it")
    X, y = make_regression(100, 5, random_state=0)
    y = np.abs(y) / 100 if loss == "poisson" else y / 100

    def make():
        return MLPRegressor(hidden_layer_sizes=(6,), loss=loss, max_iter=5, batch_size=25,
                            random_state=0)

    with _no_check():
        a = _fit(make, X, y, False, monkeypatch)
        b = _fit(make, X, y, True, monkeypatch)
    assert calls["n"] == 5 * 4
    for pa, pb in zip(_params(a), _params(b)):
        np.testing.assert_allclose(pa, pb, rtol=1e-10, atol=1e-12)


def test_float32_within_tolerance(calls, monkeypatch):
    X, y = _data("multiclass")
    X = X.astype(np.float32)

    def make():
        return MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0)

    with _no_check():
        a = _fit(make, X, y, False, monkeypatch)
        b = _fit(make, X, y, True, monkeypatch)
    assert calls["n"] > 0
    assert a.coefs_[0].dtype == np.float32
    for pa, pb in zip(_params(a), _params(b)):
        np.testing.assert_allclose(pa, pb, rtol=1e-4, atol=1e-5)


def test_optimizer_state_matches_and_training_continues(calls, monkeypatch):
    """The closed form leaves torch's optimizer state as optimizer.step()
    does, so partial_fit and warm_start continue from it on either path."""
    X, y = _data("binary")
    nets = []
    for closed in (False, True):
        monkeypatch.setattr(FastNet, "closed_form", closed)
        est = MLPClassifier(hidden_layer_sizes=(5,), random_state=0)
        est.partial_fit(X, y, classes=[0, 1])
        est.partial_fit(X, y)
        nets.append(est)
    a, b = (est.net_.optimizer_ for est in nets)
    for pa, pb in zip(a.param_groups, b.param_groups):
        for p, q in zip(pa["params"], pb["params"]):
            sa, sb = a.state[p], b.state[q]
            # two partial_fit calls, each one batch of all 120 rows
            assert float(sa["step"]) == float(sb["step"]) == 2
            torch.testing.assert_close(sa["exp_avg"], sb["exp_avg"])
            torch.testing.assert_close(sa["exp_avg_sq"], sb["exp_avg_sq"])
    for pa, pb in zip(_params(nets[0]), _params(nets[1])):
        np.testing.assert_allclose(pa, pb, rtol=1e-10, atol=1e-12)


def test_failed_fit_restores_the_state_the_closed_form_caches(monkeypatch):
    """After a fit that raises, the restored optimizer state is new tensors:
    the next fit must not step the stale ones."""
    X, y = _data("binary")
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0, warm_start=True)
    with _no_check():
        est.fit(X, y)
        before = _params(est)
        bad = X.copy()
        bad[0, 0] = np.nan
        with pytest.raises(ValueError):
            est.fit(bad, y)
        for pa, pb in zip(before, _params(est)):
            np.testing.assert_array_equal(pa, pb)
        est.fit(X, y)
    ref = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0, warm_start=True)
    with _no_check():
        ref.fit(X, y)
        ref.fit(X, y)
    for pa, pb in zip(_params(ref), _params(est)):
        np.testing.assert_allclose(pa, pb, rtol=1e-12)


def _net(est, X, y):
    with _no_check():
        est.set_params(max_iter=1).fit(X, y)
    return est.net_


@pytest.mark.parametrize(
    "est, reason",
    [
        (MLPClassifier(dropout=0.2), "dropout"),
        (MLPClassifier(activation="gelu"), "no closed form"),
        (MLPClassifier(solver="lbfgs"), "no fused kernel"),
        (MLPClassifier(precision="bfloat16"), "autocast"),
    ],
)
def test_reasons_it_does_not_apply(est, reason):
    X, y = _data("binary")
    assert reason in why_not_closed_form(_net(est, X, y))


def test_not_for_conv_modules():
    rng = np.random.RandomState(0)
    X, y = rng.rand(20, 16), np.arange(20) % 2
    net = _net(ConvClassifier(input_shape=(1, 4, 4), filters=(2,), hidden_layer_sizes=(3,)), X, y)
    assert "not a plain MLPModule" in why_not_closed_form(net)


def test_plain_mlp_applies():
    X, y = _data("binary")
    assert why_not_closed_form(_net(MLPClassifier(), X, y)) is None


def test_small_networks_take_the_numpy_step():
    X, y = _data("binary")
    assert why_not_numpy(_net(MLPClassifier(hidden_layer_sizes=(8,)), X, y)) is None
    big = MLPClassifier(hidden_layer_sizes=(NUMPY_STEP // 100,), batch_size=100)
    assert "large step" in why_not_numpy(_net(big, X, y))
    assert "no numpy closed form" in why_not_numpy(
        _net(MLPRegressor(loss="huber"), *_data("regression"))
    )


def test_numpy_step_keeps_the_state_where_torch_looks(monkeypatch):
    """The parameters and the optimizer's state live in flat tensors, but
    stay the module's and the optimizer's: saving, checkpoints and
    partial_fit see them, whichever step trained them."""
    import pickle

    X, y = _data("multiclass")
    fitted = []
    for numpy_step in (True, False):
        monkeypatch.setattr(FastNet, "numpy_step", numpy_step)
        est = MLPClassifier(hidden_layer_sizes=(6,), random_state=0, batch_size=40)
        est.partial_fit(X, y, classes=[0, 1, 2])
        # a pickled copy continues as the original does
        copy = pickle.loads(pickle.dumps(est))
        est.partial_fit(X, y)
        copy.partial_fit(X, y)
        for pa, pb in zip(_params(est), _params(copy)):
            np.testing.assert_array_equal(pa, pb)
        fitted.append(est)
    a, b = fitted
    for p, q in zip(a.net_.module_.parameters(), b.net_.module_.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
    for sa, sb in zip(a.net_.optimizer_.state.values(), b.net_.optimizer_.state.values()):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(sa[key], sb[key], rtol=1e-10, atol=1e-14)
