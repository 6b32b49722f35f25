"""A fit never leaves a half-changed or unsafe model: atomic fits, warm
starts that follow set_params, randomness without global state, and the
validation of bad parameters and inputs (the drop-in parity issue)."""

import pickle
import threading
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from sknets import ConvClassifier, MLPClassifier, MLPRegressor

FAST = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, device="cpu")


def _quiet(est, *args, method="fit", **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return getattr(est, method)(*args, **kwargs)


def _snapshot(est):
    out = {k: v for k, v in vars(est).items() if k.endswith("_") and k != "net_"}
    out["weights"] = [p.detach().clone() for p in est.net_.module_.parameters()]
    return out


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if k == "weights":
            assert all(torch.equal(x, y) for x, y in zip(a[k], b[k]))
        else:
            np.testing.assert_equal(a[k], b[k])


# -- atomic fits ---------------------------------------------------------------------


def test_failed_refit_on_new_classes_keeps_the_old_model(breast_cancer):
    X, y = breast_cancer
    clf = _quiet(MLPClassifier(**FAST), X, y)
    before, pred = _snapshot(clf), clf.predict(X)
    with pytest.raises(ValueError):
        # new classes, and a validation set too small: raises after the labels
        clf.set_params(early_stopping=True, validation_fraction=0.001).fit(X, y + 5)
    _same(_snapshot(clf), before)
    np.testing.assert_array_equal(clf.predict(X), pred)
    np.testing.assert_array_equal(clf.classes_, [0, 1])


def test_failed_first_fit_leaves_an_unfitted_estimator(breast_cancer):
    X, y = breast_cancer
    clf = MLPClassifier(early_stopping=True, validation_fraction=0.001, **FAST)
    with pytest.raises(ValueError, match="test_size"):
        clf.fit(X, y)
    assert not [k for k in vars(clf) if k.endswith("_")]
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_failed_partial_fit_keeps_weights_and_optimizer(breast_cancer):
    X, y = breast_cancer
    clf = MLPClassifier(**FAST).partial_fit(X, y, classes=[0, 1])
    before = _snapshot(clf)
    state = {k: v["exp_avg"].clone() for k, v in clf.net_.optimizer_.state.items()}
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X, y + 7)
    _same(_snapshot(clf), before)
    for k, v in clf.net_.optimizer_.state.items():
        assert torch.equal(v["exp_avg"], state[k])


def test_diverged_fit_raises_and_keeps_the_old_model(diabetes):
    X, y = diabetes
    reg = _quiet(MLPRegressor(**FAST), X, y)
    before = _snapshot(reg)
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        reg.set_params(solver="sgd", learning_rate_init=1e10, precision="float32").fit(X, y * 1e5)
    _same(_snapshot(reg), before)
    assert np.isfinite(reg.predict(X)).all()


def test_keyboard_interrupt_keeps_the_last_finished_epoch(breast_cancer, monkeypatch):
    X, y = breast_cancer
    clf = MLPClassifier(**{**FAST, "max_iter": 10})
    net_cls = type(MLPClassifier(**FAST).fit(X[:20], y[:20]).net_)
    run_epoch, calls = net_cls.run_epoch, []

    def interrupting(self, data, *args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return run_epoch(self, data, *args)

    monkeypatch.setattr(net_cls, "run_epoch", interrupting)
    with pytest.warns(UserWarning, match="interrupted"):
        clf.fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3 and len(clf.net_.history) == 3
    assert len(clf.coefs_) == 2 and clf.predict(X).shape == y.shape
    # interrupted before any epoch finished: the estimator stays as it was
    calls.clear()
    calls.extend([1, 1, 1])
    with pytest.raises(KeyboardInterrupt):
        MLPClassifier(**FAST).fit(X, y)


# -- warm starts follow set_params ------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        dict(alpha=10.0),
        dict(solver="sgd"),
        dict(activation="tanh"),
        dict(beta_1=0.5),
        dict(epsilon=1e-2),
        dict(dropout=0.5),
        dict(precision="float32"),
    ],
)
def test_warm_start_applies_changed_parameters(breast_cancer, change):
    X, y = breast_cancer
    warm = _quiet(MLPClassifier(warm_start=True, **FAST), X, y)
    start = [w.copy() for w in warm.coefs_]
    _quiet(warm.set_params(**change), X, y)
    if "solver" in change:
        assert type(warm.net_.optimizer_).__name__ == "SGD"
    if "activation" in change:
        assert isinstance(warm.net_.module_.activation, torch.nn.Tanh)
    if "alpha" in change:
        assert warm.net_.alpha == 10.0
    if "beta_1" in change:
        assert warm.net_.optimizer_.param_groups[0]["betas"][0] == 0.5
    if "epsilon" in change:
        assert warm.net_.optimizer_.param_groups[0]["eps"] == 1e-2
    if "dropout" in change:
        assert warm.net_.module_.draws_random
    if "precision" in change:
        assert warm.net_.dtype == torch.float32 and warm.coefs_[0].dtype == np.float64
    # and it trained on from the old weights
    assert not all(np.array_equal(a, b) for a, b in zip(start, warm.coefs_))


def test_warm_start_refuses_a_changed_architecture(breast_cancer):
    X, y = breast_cancer
    warm = _quiet(MLPClassifier(warm_start=True, **FAST), X, y)
    before = _snapshot(warm)
    with pytest.raises(ValueError, match="warm_start=False"):
        warm.set_params(hidden_layer_sizes=(3,)).fit(X, y)
    _same(_snapshot(warm), before)


def test_warm_started_lbfgs_follows_max_iter(breast_cancer):
    X, y = breast_cancer
    est = MLPClassifier(solver="lbfgs", warm_start=True, tol=0, **{**FAST, "max_iter": 3})
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    with pytest.warns(ConvergenceWarning):
        est.set_params(max_iter=7).fit(X, y)
    assert est.n_iter_ == 7


# -- randomness without global state -------------------------------------------


def test_threads_give_the_serial_model_and_leave_global_rng(digits):
    X, y = digits[0][:400], digits[1][:400]
    est = MLPClassifier(hidden_layer_sizes=(16,), dropout=0.3, max_iter=4, random_state=3,
                        device="cpu")
    serial = _quiet(clone(est), X, y).coefs_
    state = torch.random.get_rng_state()
    results = [None] * 4

    def run(i):
        results[i] = _quiet(clone(est), X, y).coefs_

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.equal(torch.random.get_rng_state(), state)
    for coefs in results:
        for a, b in zip(coefs, serial):
            np.testing.assert_array_equal(a, b)


def test_int_random_state_initialises_as_scikit_learn(breast_cancer):
    from sklearn.neural_network import MLPClassifier as SkMLP

    X, y = breast_cancer
    ours = MLPClassifier(hidden_layer_sizes=(5,), max_iter=1, learning_rate_init=1e-12,
                         alpha=0, random_state=4, device="cpu")
    theirs = SkMLP(hidden_layer_sizes=(5,), max_iter=1, learning_rate_init=1e-12, alpha=0,
                   random_state=4)
    _quiet(ours, X, y)
    _quiet(theirs, X, y)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, atol=1e-9)


# -- numerics as scikit-learn ----------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_dtype_follows_the_input(diabetes, dtype):
    X, y = diabetes
    reg = _quiet(MLPRegressor(**FAST), X.astype(dtype), y)
    assert reg.net_.dtype == (torch.float64 if dtype == np.float64 else torch.float32)
    assert all(c.dtype == dtype for c in reg.coefs_ + reg.intercepts_)
    assert reg.predict(X.astype(dtype)).dtype == dtype


def test_sparse_input_trains_like_dense(breast_cancer):
    X, y = breast_cancer
    for solver in ("adam", "lbfgs"):
        dense = _quiet(MLPClassifier(solver=solver, **FAST), X, y)
        sparse = _quiet(MLPClassifier(solver=solver, **FAST), sp.csr_matrix(X), y)
        np.testing.assert_allclose(sparse.predict_proba(X), dense.predict_proba(X), rtol=1e-7)


def test_single_class_and_multilabel_partial_fit():
    X = np.random.RandomState(0).rand(30, 3)
    clf = _quiet(MLPClassifier(**FAST), X, np.full(30, 7))
    np.testing.assert_array_equal(clf.predict(X), np.full(30, 7))
    assert clf.predict_proba(X).shape == (30, 2)
    Y = (X > 0.5).astype(int)
    clf = MLPClassifier(**FAST)
    for _ in range(3):
        clf.partial_fit(X, Y, classes=[0, 1, 2])
    assert clf.predict(X).shape == Y.shape


def test_early_stopping_divergence_records_nan_and_keeps_best(diabetes):
    X, y = diabetes
    reg = _quiet(MLPRegressor(solver="sgd", learning_rate_init=1.0, early_stopping=True,
                              activation="identity", max_iter=15, random_state=0,
                              device="cpu"), X, y * 100)
    assert np.isnan(reg.validation_scores_[-1])
    assert np.isfinite(reg.predict(X)).all()


# -- validation ----------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(0.5,), (2.5,), (4, 1.5)])
def test_fractional_hidden_layer_sizes_are_refused(breast_cancer, sizes):
    X, y = breast_cancer
    with pytest.raises(ValueError, match="positive integers"):
        MLPClassifier(hidden_layer_sizes=sizes).fit(X, y)


@pytest.mark.parametrize("device", ["mps", "xpu", "meta", "cuda:7"])
def test_devices_torch_cannot_train_on_are_refused(breast_cancer, device):
    X, y = breast_cancer
    with pytest.raises(ValueError, match="'device' parameter"):
        MLPClassifier(device=device).fit(X, y)


def test_values_overflowing_float32_are_refused(breast_cancer):
    X, y = breast_cancer
    with pytest.raises(ValueError, match="float32"):
        MLPClassifier(precision="float32", **FAST).fit(X * 1e39, y)
    with pytest.raises(ValueError, match="float32"):
        MLPRegressor(solver="lbfgs", precision="float32", **FAST).fit(X[:, :2], y * 1e300)


def test_lbfgs_on_huge_values_gives_a_clear_error(diabetes):
    X, y = diabetes
    with pytest.raises(ValueError, match="non-finite"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            MLPRegressor(solver="lbfgs", **FAST).fit(X.astype(np.float32) * 1e30, y)


@pytest.mark.parametrize(
    "w, match", [([-1.0], "Negative"), ([0.0], "non-zero"), ([np.nan], "NaN")]
)
def test_sample_weights_are_checked(breast_cancer, w, match):
    X, y = breast_cancer
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**FAST).fit(X, y, sample_weight=np.full(len(y), w[0]))


@pytest.mark.parametrize("kwargs", [dict(batch_size=1), dict(batch_size=10)])
def test_conv_batch_norm_on_one_position_is_a_clear_error(kwargs):
    X = np.random.RandomState(0).rand(21, 4)  # 2x2 images: 1x1 after pooling
    y = np.arange(21) % 2
    clf = ConvClassifier(filters=(2, 2), max_iter=2, device="cpu", **kwargs)
    with pytest.raises(ValueError, match="batch_norm"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="batch_norm"):
        ConvClassifier(filters=(2, 2), device="cpu").partial_fit(X[:1], y[:1], classes=[0, 1])


# -- safe weights --------------------------------------------------------------------


class _Payload:
    def __reduce__(self):
        return (exec, ("import builtins; builtins._sknets_pwned = True",))


def test_load_params_refuses_a_malicious_file(breast_cancer, tmp_path):
    import builtins

    X, y = breast_cancer
    clf = _quiet(MLPClassifier(**FAST), X, y)
    path = tmp_path / "weights.pt"
    torch.save({"layers.0.weight": _Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        clf.net_.load_params(f_params=path)
    assert not getattr(builtins, "_sknets_pwned", False)


def test_weights_only_round_trip(breast_cancer, tmp_path):
    X, y = breast_cancer
    clf = _quiet(MLPClassifier(**FAST), X, y)
    path = tmp_path / "weights.pt"
    clf.net_.save_params(f_params=path)
    other = _quiet(MLPClassifier(**{**FAST, "random_state": 1}), X, y)
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict_proba(X), clf.predict_proba(X))
    for a, b in zip(other.coefs_, clf.coefs_):
        np.testing.assert_array_equal(a, b)
