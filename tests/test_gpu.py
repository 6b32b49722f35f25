"""The CUDA paths: graph-captured steps, batched training, bfloat16 and the
convnet on a GPU. Marked ``gpu``: skipped where there is no CUDA device
(``conftest.py``), run by ``benchmarks/gpu_check.sh`` on a GPU machine."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV as SkGridSearchCV
from sklearn.model_selection import KFold
from sklearn.model_selection import cross_val_score as sk_cross_val_score

from sknets import ConvClassifier, MLPClassifier, MLPRegressor
from sknets.model_selection import GridSearchCV, cross_val_score

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def test_graph_captured_fit_matches_the_cpu_fit(digits):
    """On CUDA the steps replay as CUDA graphs; the model is the CPU fit's
    up to float32 rounding (same initial weights; batch orders drawn on the
    device differ, so compare quality, not weights)."""
    X, y = digits
    params = dict(hidden_layer_sizes=(64,), max_iter=15, random_state=0, precision="float32")
    gpu = MLPClassifier(device="cuda", **params).fit(X, y)
    cpu = MLPClassifier(device="cpu", **params).fit(X, y)
    assert gpu.net_.torch_device.type == "cuda"
    assert gpu.net_.cuda_graphs
    assert gpu.coefs_[0].shape == cpu.coefs_[0].shape
    assert abs(gpu.score(X, y) - cpu.score(X, y)) < 0.02
    assert gpu.predict_proba(X).dtype == np.float32


def test_batched_cross_validation_on_cuda_equals_separate_fits(digits):
    X, y = digits[0][:600], digits[1][:600]
    est = MLPClassifier(hidden_layer_sizes=(32,), max_iter=8, random_state=0, device="cuda")
    cv = KFold(4, shuffle=True, random_state=0)
    batched = cross_val_score(est, X, y, cv=cv)
    separate = sk_cross_val_score(clone(est), X, y, cv=cv)
    np.testing.assert_allclose(batched, separate, atol=0.02)


def test_batched_grid_search_on_cuda(diabetes):
    X, y = diabetes
    search = GridSearchCV(
        MLPRegressor(max_iter=20, random_state=0, device="cuda"),
        {"learning_rate_init": [1e-3, 1e-2], "hidden_layer_sizes": [(8,), (32,)]},
        cv=3,
    ).fit(X, y)
    assert search.best_estimator_.net_.torch_device.type == "cuda"
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_bfloat16_trains_and_predicts_float32(digits):
    X, y = digits
    clf = MLPClassifier(max_iter=10, random_state=0, device="cuda", precision="bfloat16")
    clf.fit(X, y)
    assert clf.score(X, y) > 0.9
    assert clf.predict_proba(X.astype(np.float32)).dtype == np.float32


def test_conv_classifier_on_cuda(digits):
    X, y = digits[0][:500], digits[1][:500]
    clf = ConvClassifier(input_shape=(1, 8, 8), max_iter=10, random_state=0, device="cuda")
    clf.fit(X, y)
    assert clf.net_.torch_device.type == "cuda"
    assert clf.score(X, y) > 0.8


def test_batched_conv_grid_on_cuda_equals_separate_fits(digits):
    """ConvClassifier fits batched on CUDA (grouped convolutions, each
    member's batch norm, shifts and dropout), in float64: the scores of
    scikit-learn's search of separate fits, and no fallback."""
    X, y = digits[0][:400], digits[1][:400]
    est = ConvClassifier(input_shape=(1, 8, 8), filters=(8,), hidden_layer_sizes=(16,),
                         batch_size=64, max_iter=4, random_shift=1, precision="float64",
                         random_state=0, device="cuda")
    grid = {"learning_rate_init": [1e-3, 1e-2], "alpha": [1e-4, 1e-2]}
    cv = KFold(3, shuffle=True, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = GridSearchCV(est, grid, cv=cv).fit(X, y)
    assert not [w for w in caught if "one by one" in str(w.message)]
    theirs = SkGridSearchCV(clone(est), grid, cv=cv).fit(X, y)
    for split in range(3):
        key = f"split{split}_test_score"
        np.testing.assert_allclose(ours.cv_results_[key], theirs.cv_results_[key], atol=1e-9)
    assert ours.best_params_ == theirs.best_params_


def test_cuda_tensors_stay_on_the_gpu_through_a_pipeline(digits, host_copies):
    """scikit-learn's array API: MinMaxScaler and the estimator on CUDA
    tensors, outputs on the GPU, no copy of X to the host."""
    import sklearn
    import torch
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    X, y = digits
    Xt = torch.asarray(X, device="cuda")
    yt = torch.asarray(y, device="cuda")
    copies = host_copies(Xt.numel())
    with sklearn.config_context(array_api_dispatch=True):
        model = make_pipeline(MinMaxScaler(), MLPClassifier(max_iter=5, random_state=0))
        model.fit(Xt, yt)
        proba = model.predict_proba(Xt)
        pred = model.predict(Xt)
        with pytest.raises(ValueError, match="device"):
            MLPClassifier(device="cpu").fit(Xt, yt)
    assert copies == []
    assert model[-1].net_.torch_device.type == "cuda"
    assert proba.device.type == "cuda" and pred.device.type == "cuda"
    assert model[-1].coefs_[0].device.type == "cuda"
