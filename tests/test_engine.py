"""Tests of sknets._engine: the data path, the steps, the loss and FastNet."""

import numpy as np
import pytest
import torch
from scipy.special import expit, log_softmax, xlogy
from skorch import NeuralNet

from sknets._engine import (
    DeviceBatches,
    DeviceData,
    FastNet,
    GraphedStep,
    WeightedLoss,
    resolve_device,
)
from sknets._modules import MLPModule
from sknets._registry import LOSSES

pytestmark = pytest.mark.usefixtures("torch_one_thread")

CPU = torch.device("cpu")


def _data(n=10, n_features=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    y = rng.integers(0, 2, size=n)
    return DeviceData(X, y, None, CPU, torch.float32)


def _net(n_features=4, n_outputs=3, loss="log_loss", alpha=0.0, seed=0, **kwargs):
    params = dict(
        module=MLPModule,
        module__n_features=n_features,
        module__hidden_layer_sizes=(5,),
        module__n_outputs=n_outputs,
        module__seed=seed,
        criterion=WeightedLoss,
        criterion__loss=loss,
        optimizer=torch.optim.SGD,
        optimizer__momentum=0.9,
        lr=0.1,
        batch_size=16,
        max_epochs=3,
        train_split=None,
        device="cpu",
        alpha=alpha,
        seed=seed,
        verbose=0,
    )
    params.update(kwargs)
    return FastNet(**params).initialize()


# -- resolve_device -------------------------------------------------------------


def test_resolve_device_auto_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_resolve_device_rejects_unknown_device():
    with pytest.raises(ValueError, match="device='tpu'"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
def test_resolve_device_cuda_unavailable():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:1")


# -- DeviceData / DeviceBatches -------------------------------------------------


def test_device_data_dtypes_and_default_weights():
    X = np.arange(12, dtype=np.float64).reshape(6, 2)
    data = DeviceData(X, np.array([0, 1, 2, 0, 1, 2]), None, CPU, torch.float32)
    assert data.X.dtype == torch.float32 and data.X.shape == (6, 2)
    assert data.y.dtype == torch.int64
    # no weights: either none at all or unit weights
    assert data.w is None or torch.equal(data.w, torch.ones(6))
    assert len(data) == 6
    # float targets (regression, multilabel) keep the float dtype
    data = DeviceData(X, np.ones((6, 2)), np.arange(6.0), CPU, torch.float64)
    assert data.y.dtype == torch.float64 and data.y.shape == (6, 2)
    assert torch.equal(data.w, torch.arange(6.0, dtype=torch.float64))


def test_device_data_copies_read_only_input():
    X = np.ones((4, 2))
    X.setflags(write=False)
    data = DeviceData(X, np.zeros(4, dtype=int), None, CPU, torch.float64)
    data.X.add_(1)  # must not touch (nor fail on) the caller's array
    assert np.all(X == 1)


@pytest.mark.parametrize("n, batch_size", [(10, 4), (10, 5), (10, 10), (7, 3), (1, 4)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_device_batches_cover_every_row_once(n, batch_size, shuffle):
    data = _data(n)
    gen = torch.Generator().manual_seed(0)
    batches = DeviceBatches(data, batch_size, shuffle=shuffle, generator=gen)
    expected_sizes = [batch_size] * (n // batch_size)
    if n % batch_size:
        expected_sizes.append(n % batch_size)  # the last, smaller batch is kept
    for _ in range(3):  # several epochs
        idx = list(batches)
        assert [len(b) for b in idx] == expected_sizes
        assert len(batches) == len(expected_sizes)
        assert sorted(torch.cat(idx).tolist()) == list(range(n))
        if not shuffle:
            assert torch.cat(idx).tolist() == list(range(n))


def test_device_batches_shuffle_deterministic_per_generator():
    data = _data(50)

    def orders(seed, epochs=3):
        gen = torch.Generator().manual_seed(seed)
        batches = DeviceBatches(data, 8, shuffle=True, generator=gen)
        return [torch.cat(list(batches)).tolist() for _ in range(epochs)]

    first = orders(0)
    assert first == orders(0)  # same seed, same orders
    assert first != orders(1)  # another seed, other orders
    assert first[0] != first[1]  # a fresh permutation each epoch
    assert first[0] != list(range(50))


def test_device_batches_do_not_use_global_rng():
    data = _data(20)
    state = torch.get_rng_state()
    list(DeviceBatches(data, 6, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(state, torch.get_rng_state())


# -- WeightedLoss ---------------------------------------------------------------


def _np_losses(z, y):
    """Per-sample losses computed with numpy / scipy, independently."""
    r = z - y if y.ndim == 2 else None
    return {
        "log_loss": lambda: -log_softmax(z, axis=1)[np.arange(len(y)), y],
        "binary_log_loss": lambda: -(y * np.log(expit(z)) + (1 - y) * np.log(expit(-z))).sum(1),
        "squared_error": lambda: 0.5 * (r**2).mean(1),
        # Poisson deviance / 2 with mu = exp(z): y log(y / mu) - y + mu
        "poisson": lambda: (xlogy(y, y) - y * z - y + np.exp(z)).sum(1),
        "absolute_error": lambda: np.abs(r).mean(1),
        "huber": lambda: np.where(np.abs(r) <= 1, 0.5 * r**2, np.abs(r) - 0.5).mean(1),
    }


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_weighted_loss_is_weighted_mean(loss):
    rng = np.random.default_rng(0)
    n = 12
    z = rng.normal(scale=2, size=(n, 3))
    if loss == "log_loss":
        y = rng.integers(0, 3, size=n)
    elif loss == "binary_log_loss":
        y = rng.integers(0, 2, size=(n, 3)).astype(float)
    elif loss == "poisson":
        y = rng.poisson(2.0, size=(n, 3)).astype(float)  # zeros included
    else:
        y = rng.normal(scale=2, size=(n, 3))
    w = rng.uniform(0, 3, size=n)
    w[3] = 0.0
    per_sample = _np_losses(z, y)[loss]()
    expected = (per_sample * w).sum() / w.sum()
    criterion = WeightedLoss(loss)
    got = criterion(torch.from_numpy(z), torch.from_numpy(y), torch.from_numpy(w))
    np.testing.assert_allclose(got.item(), expected, rtol=1e-10)
    # unit weights: the plain mean
    ones = torch.ones(n, dtype=torch.float64)
    got = criterion(torch.from_numpy(z), torch.from_numpy(y), ones)
    np.testing.assert_allclose(got.item(), per_sample.mean(), rtol=1e-10)


@pytest.mark.parametrize("eps", [0.1, 0.4])
def test_weighted_loss_label_smoothing(eps):
    """Smoothing moves eps of each target's mass evenly over the classes:
    (1 - eps) of the log loss plus eps of the mean of -log p over the
    classes; for the binary loss, each output's target becomes y (1 - eps) +
    eps / 2."""
    rng = np.random.default_rng(2)
    n, k = 12, 4
    z = rng.normal(scale=2, size=(n, k))
    w = rng.uniform(0, 3, size=n)
    y = rng.integers(0, k, size=n)
    logp = log_softmax(z, axis=1)
    per_sample = -(1 - eps) * logp[np.arange(n), y] - eps * logp.mean(1)
    got = WeightedLoss("log_loss", label_smoothing=eps)(
        torch.from_numpy(z), torch.from_numpy(y), torch.from_numpy(w)
    )
    np.testing.assert_allclose(got.item(), (per_sample * w).sum() / w.sum(), rtol=1e-10)

    Y = rng.integers(0, 2, size=(n, k)).astype(float)
    T = Y * (1 - eps) + eps / 2
    per_sample = -(T * np.log(expit(z)) + (1 - T) * np.log(expit(-z))).sum(1)
    got = WeightedLoss("binary_log_loss", label_smoothing=eps)(
        torch.from_numpy(z), torch.from_numpy(Y), torch.from_numpy(w)
    )
    np.testing.assert_allclose(got.item(), (per_sample * w).sum() / w.sum(), rtol=1e-10)


def test_weighted_loss_label_smoothing_needs_a_class_loss():
    with pytest.raises(ValueError, match="label_smoothing needs a class loss"):
        WeightedLoss("squared_error", label_smoothing=0.1)
    # no smoothing: any loss
    assert WeightedLoss("squared_error", label_smoothing=0.0).label_smoothing == 0.0


def test_weighted_loss_integer_weights_equal_repeated_rows():
    rng = np.random.default_rng(1)
    z, y = torch.from_numpy(rng.normal(size=(5, 2))), torch.from_numpy(rng.normal(size=(5, 2)))
    w = torch.tensor([1.0, 2.0, 0.0, 3.0, 1.0], dtype=torch.float64)
    rep = torch.repeat_interleave(torch.arange(5), w.long())
    criterion = WeightedLoss("squared_error")
    torch.testing.assert_close(
        criterion(z, y, w), criterion(z[rep], y[rep], torch.ones(len(rep), dtype=torch.float64))
    )


# -- the objective: loss + L2 penalty --------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_objective_l2_penalty(alpha):
    net = _net(n_features=4, n_outputs=3, loss="log_loss", alpha=alpha, precision="float64")
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.normal(size=(9, 4)))
    y = torch.from_numpy(rng.integers(0, 3, size=9))
    w = torch.from_numpy(rng.uniform(0.5, 2, size=9))
    z = net.module_(X)
    got = net.objective(z, y, w).item()

    zn = z.detach().numpy()
    data_loss = (-log_softmax(zn, axis=1)[np.arange(9), y.numpy()] * w.numpy()).sum()
    data_loss /= w.sum().item()
    weights = [layer.weight.detach().numpy() for layer in net.module_.layers]
    penalty = 0.5 * alpha * sum((W**2).sum() for W in weights) / w.sum().item()
    np.testing.assert_allclose(got, data_loss + penalty, rtol=1e-10)


def test_objective_penalty_ignores_biases():
    net = _net(alpha=1.0, precision="float64")
    X = torch.zeros(3, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    w = torch.ones(3, dtype=torch.float64)
    before = net.objective(net.module_(X), y, w) - net.criterion_(net.module_(X), y, w)
    with torch.no_grad():
        for layer in net.module_.layers:
            layer.bias.add_(5.0)
    after = net.objective(net.module_(X), y, w) - net.criterion_(net.module_(X), y, w)
    torch.testing.assert_close(before, after)
    assert before.item() > 0


# -- GraphedStep ----------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 1e-2])
def test_graphed_step_uncaptured_equals_eager_steps(alpha, weighted):
    rng = np.random.default_rng(0)
    n = 37  # batches of 16, 16 and 5
    X, y = rng.normal(size=(n, 4)), rng.integers(0, 3, size=n)
    w = rng.uniform(0.5, 2.0, size=n) if weighted else None

    graphed_net, eager_net = _net(alpha=alpha), _net(alpha=alpha)
    for p, q in zip(graphed_net.module_.parameters(), eager_net.module_.parameters()):
        assert torch.equal(p, q)

    data = DeviceData(X, y, w, CPU, torch.float32)
    acc = torch.zeros((), dtype=torch.float32)
    step = GraphedStep(graphed_net, data, acc, capture=False)

    gen = torch.Generator().manual_seed(3)
    batches = [idx for _ in range(4) for idx in DeviceBatches(data, 16, True, gen)]
    assert [len(b) for b in batches] == [16, 16, 5] * 4
    eager_losses = []
    Xt, yt = torch.from_numpy(X).float(), torch.from_numpy(y)
    wt = None if w is None else torch.from_numpy(w).float()
    for idx in batches:
        step(idx)
        loss = eager_net.step_on(Xt[idx], yt[idx], None if wt is None else wt[idx])
        eager_losses.append(loss * idx.shape[0])

    for p, q in zip(graphed_net.module_.parameters(), eager_net.module_.parameters()):
        assert torch.equal(p, q)
    # the parameters did move
    assert not torch.equal(graphed_net.module_.layers[0].weight, _net().module_.layers[0].weight)
    # the accumulator holds the sum of loss * batch size
    torch.testing.assert_close(acc, torch.stack(eager_losses).sum(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_step_on_is_a_gradient_step_on_the_sklearn_objective(alpha, weighted):
    """One plain SGD step moves every parameter by -lr * gradient of
    mean_w(loss) + 0.5 * alpha * sum ||W||^2 / sum(w), computed here with autograd
    on a copy of the module."""
    rng = np.random.default_rng(0)
    n = 11
    X = torch.from_numpy(rng.normal(size=(n, 4)))
    y = torch.from_numpy(rng.integers(0, 3, size=n))
    w = torch.from_numpy(rng.uniform(0.5, 2.0, size=n)) if weighted else None
    net = _net(alpha=alpha, precision="float64", optimizer__momentum=0.0, lr=0.3)

    params = [p.detach().clone().requires_grad_(True) for p in net.module_.parameters()]
    W1, b1, W2, b2 = params
    z = torch.relu(X @ W1.T + b1) @ W2.T + b2
    per_sample = torch.nn.functional.cross_entropy(z, y, reduction="none")
    w_ = torch.ones(n, dtype=torch.float64) if w is None else w
    objective = (per_sample * w_).sum() / w_.sum()
    objective = objective + 0.5 * alpha * (W1.square().sum() + W2.square().sum()) / w_.sum()
    grads = torch.autograd.grad(objective, params)

    reported = net.step_on(X, y, w)
    for p, p0, g in zip(net.module_.parameters(), params, grads):
        torch.testing.assert_close(p.detach(), p0.detach() - 0.3 * g, rtol=1e-10, atol=1e-12)
    # the reported loss is the objective at the weights that produced it,
    # before the step, as in scikit-learn's loss_curve_
    torch.testing.assert_close(reported, objective.detach(), rtol=1e-10, atol=0)


def test_run_epoch_loss_is_mean_over_rows():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(37, 4)), rng.integers(0, 3, size=37)
    net = _net(lr=0.0)  # no movement: the epoch loss is the loss of the fixed model
    data = net.get_dataset(X, y)
    net._generator = net.new_generator(0)
    loss = net.run_epoch(data)
    with torch.no_grad():
        expected = net.criterion_(net.module_(data.X), data.y, data.w).item()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert net.history[-1, "train_loss"] == loss


# -- FastNet as a skorch net ------------------------------------------------------


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    centers = np.array([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    y = rng.integers(0, 3, size=150)
    X = (centers[y] + rng.normal(scale=0.5, size=(150, 4))).astype(np.float32)
    return X, y


def test_fastnet_is_a_skorch_net():
    assert issubclass(FastNet, NeuralNet)


def test_fastnet_fit_on_numpy_records_history(blobs):
    X, y = blobs
    net = _net(max_epochs=6, lr=0.05)
    net.fit(X, y)
    assert len(net.history) == 6
    losses = net.history[:, "train_loss"]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert all("dur" in row for row in net.history)
    # fit_loop with an explicit number of epochs appends to the history
    net.fit_loop(X, y, epochs=2)
    assert len(net.history) == 8
    assert net.history[-1, "epoch"] == 8


def test_fastnet_fit_loop_is_reproducible(blobs):
    X, y = blobs
    a = _net(max_epochs=3).fit(X, y)
    b = _net(max_epochs=3).fit(X, y)
    assert a.history[:, "train_loss"] == b.history[:, "train_loss"]
    for p, q in zip(a.module_.parameters(), b.module_.parameters()):
        assert torch.equal(p, q)
    c = _net(max_epochs=3, seed=1).fit(X, y)
    assert a.history[:, "train_loss"] != c.history[:, "train_loss"]


def test_fastnet_calls_epoch_callbacks(blobs):
    from skorch.callbacks import Callback

    class Count(Callback):
        def initialize(self):
            self.begin = self.end = 0
            return self

        def on_epoch_begin(self, net, **kwargs):
            self.begin += 1

        def on_epoch_end(self, net, **kwargs):
            self.end += 1

    X, y = blobs
    count = Count()
    _net(max_epochs=4, callbacks=[count]).fit(X, y)
    assert count.begin == count.end == 4


def test_fastnet_forward_raw_matches_module(blobs):
    X, y = blobs
    net = _net(max_epochs=2).fit(X, y)
    raw = net.forward_raw(X, chunk_rows=64)  # several chunks
    assert raw.dtype == np.float64 and raw.shape == (150, 3)
    with torch.no_grad():
        expected = net.module_(torch.from_numpy(X)).numpy()
    # float32 module against its float64 copy
    np.testing.assert_allclose(raw, expected, rtol=1e-5, atol=1e-7)
    assert net.forward_raw(X[:0]).shape == (0, 3)


def test_fastnet_predict_proba_on_numpy(blobs):
    """skorch's own prediction API works on the net after a numpy fit."""
    X, y = blobs
    net = _net(max_epochs=5, lr=0.05).fit(X, y)
    with torch.no_grad():
        logits = net.module_(torch.from_numpy(X))
    proba = net.predict_proba(X)
    assert proba.shape == (150, 3)
    # a plain NeuralNet with a custom criterion returns the module output
    np.testing.assert_allclose(proba, logits.numpy(), rtol=1e-5)
    np.testing.assert_allclose(net.predict(X), proba)


def test_progress_bar_draws_after_its_delay_and_erases_itself():
    import io

    from sknets._engine import ProgressBar

    stream = io.StringIO()
    bar = ProgressBar("Epoch 1/3", stream=stream, width=10, delay=0, interval=0)
    bar.start(4)
    bar(1)
    bar(2)
    assert stream.getvalue().endswith("\rEpoch 1/3 3/4 [=======...]")
    bar(1)
    assert stream.getvalue().endswith("\rEpoch 1/3 4/4 [==========]")
    bar.close()
    assert stream.getvalue().endswith("\r" + " " * len("Epoch 1/3 4/4 [==========]") + "\r")

    quiet = io.StringIO()
    slow = ProgressBar("Epoch 1/3", stream=quiet, delay=60)
    slow.start(4)
    slow(4)
    slow.close()
    assert quiet.getvalue() == ""  # a short epoch draws nothing


def test_a_cuda_net_loaded_on_a_cpu_can_train_again(breast_cancer):
    """A model fitted on a GPU (graphs, capturable optimizer) is loaded on a
    machine without one: skorch maps it to the CPU, and sknets turns off
    what only works on CUDA, so that partial_fit still runs."""
    import pickle

    from sknets import MLPClassifier

    X, y = breast_cancer
    # rmsprop: a foreach optimizer, which refuses CPU tensors when capturable
    clf = MLPClassifier(max_iter=2, random_state=0, device="cpu", solver="rmsprop").fit(X, y)
    # what a fit on CUDA leaves behind, minus the CUDA tensors
    clf.net_.cuda_graphs = True
    for group in clf.net_.optimizer_.param_groups:
        group["capturable"] = True
    loaded = pickle.loads(pickle.dumps(clf))
    assert loaded.net_.cuda_graphs is False
    assert not any(g["capturable"] for g in loaded.net_.optimizer_.param_groups)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    loaded.partial_fit(X, y)
    assert loaded.n_iter_ == 3


def test_fits_and_predictions_flush_denormals_then_restore(breast_cancer, monkeypatch):
    """On the CPU, training and prediction run with denormals flushed to 0
    (they slow x86 arithmetic down many times once the loss is small), and
    the caller's setting comes back afterwards, also after an error."""
    from sknets import MLPClassifier
    from sknets._threads import _denormals_flushed, flushed_denormals

    X, y = breast_cancer
    assert not _denormals_flushed()
    with flushed_denormals():
        assert _denormals_flushed()
        with flushed_denormals():
            assert _denormals_flushed()
        assert _denormals_flushed()  # the outer block still holds
    assert not _denormals_flushed()

    seen = []
    run_epoch = FastNet.run_epoch

    def spying(self, data, *args):
        seen.append(_denormals_flushed())
        return run_epoch(self, data, *args)

    monkeypatch.setattr(FastNet, "run_epoch", spying)
    clf = MLPClassifier(max_iter=2, random_state=0, device="cpu").fit(X, y)
    assert seen == [True, True]
    assert not _denormals_flushed()
    # an error inside restores the setting too
    with pytest.raises(RuntimeError):
        with flushed_denormals():
            raise RuntimeError
    assert not _denormals_flushed()
    # a caller who flushes keeps it
    torch.set_flush_denormal(True)
    try:
        clf.predict(X)
        assert _denormals_flushed()
    finally:
        torch.set_flush_denormal(False)


# -- a fitted model holds the model, not its data -------------------------------------


def _held_memory():
    """benchmarks/held_memory.py: ``held_bytes`` (every tensor and array
    reachable from an object) and ``model_bytes`` (an estimator's weights
    and optimizer state)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "held_memory.py"
    spec = importlib.util.spec_from_file_location("held_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("how", ["fit", "partial_fit", "warm_start", "lbfgs", "early_stopping"])
def test_a_fitted_model_holds_no_copy_of_its_training_data(how):
    from sknets import MLPRegressor

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20_000, 40)), rng.normal(size=20_000)
    params = {"hidden_layer_sizes": (4,), "max_iter": 2, "random_state": 0}
    if how == "lbfgs":
        params["solver"] = "lbfgs"
    if how == "early_stopping":
        params.update(early_stopping=True, max_iter=3)
    est = MLPRegressor(**params, warm_start=how == "warm_start")
    if how == "partial_fit":
        est.partial_fit(X, y)
    else:
        est.fit(X, y)
    if how == "warm_start":
        est.fit(X, y)
    held = _held_memory()
    extra = held.held_bytes(est) - held.model_bytes(est)
    # X is 6.4 MB: what is held beyond the model is a few kB of bookkeeping
    assert extra < X.nbytes / 100, extra
