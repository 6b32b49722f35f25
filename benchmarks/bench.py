#!/usr/bin/env python
"""Benchmark sknets against scikit-learn's MLP and plain skorch.

One run times eight workloads (W1-W8, described in ``benchmarks/README.md``)
for three implementations and prints a markdown table:

- ``sknets``: :class:`sknets.MLPClassifier` / :class:`sknets.ConvClassifier`
  on ``--device`` (``auto`` picks CUDA when there is one);
- ``sklearn``: :class:`sklearn.neural_network.MLPClassifier` (numpy, CPU);
- ``skorch``: a plain :class:`skorch.NeuralNetClassifier` with a module of
  the same shape, set up correctly out of the box (logits and
  ``CrossEntropyLoss``, float32 X, int64 y, Adam, ``train_split=None``,
  shuffled batches) on the same device as sknets.

Every fit runs exactly the requested number of epochs (``tol=0`` and
``n_iter_no_change=max_iter`` where early stopping exists).

By default (``--fresh``) every timing is taken in a fresh Python process:
for each workload, for each of the ``--repeats`` rounds, the implementations
take turns, each in a new process (``sys.executable``, the repository root on
``PYTHONPATH``) that runs one untimed warm-up fit of the workload (CUDA
context, cuBLAS / cuDNN initialisation, first-call costs) and then the timed
fit, and prints its measurements as one JSON line. No library's thread pool
(torch's intra-op workers, OpenBLAS's) is left spinning beside another's.
``--in-process`` is the former way: one process, every implementation warmed
up once, then the timed runs interleaved round by round.

The table gives the median of the ``--repeats`` timed runs and the ratio
``time / time of sknets``; a second table gives, for the workloads of the
CPU-speed issue (W1, W2, W6, W7), scikit-learn's time over sknets' (above 1:
sknets is faster) and W8's sknets time and accuracy.

Usage::

    python benchmarks/bench.py [--device auto|cpu|cuda] [--repeats 3]
        [--workloads W1,...,W8] [--impls sknets,sklearn,skorch]
        [--quick] [--warmup short|full|none] [--fresh | --in-process]
        [--load] [--out results.md] [--json results.json]

Self-contained: no network, no downloads, no tabulate.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import scipy.ndimage  # noqa: E402
import sklearn  # noqa: E402
import skorch  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits, make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    KFold,
    cross_val_score,
    train_test_split,
)
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler  # noqa: E402
from skorch import NeuralNetClassifier  # noqa: E402
from torch import nn  # noqa: E402

import sknets  # noqa: E402

IMPLS = ("sknets", "sklearn", "skorch")
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8")

# ----------------------------------------------------------------------------
# Workload sizes
# ----------------------------------------------------------------------------

#: Full sizes: the anchors of ../shared/notes/performance.md.
FULL = {
    "W1": {"hidden": (16, 32), "batch": 10, "epochs": 20, "lr": 1e-3},
    "W2": {"hidden": (100,), "batch": 64, "epochs": 30, "lr": 1e-3},
    "W3": {"n": 200_000, "hidden": (256, 256), "batch": 256, "epochs": 5, "lr": 1e-3},
    "W4": {
        "lrs": (1e-3, 3e-3, 1e-2),
        "widths": (32, 64, 128),
        "batch": 64,
        "epochs": 20,
    },
    "W5": {"n_train": 60_000, "n_test": 10_000, "batch": 128, "epochs": 2, "lr": 1e-3},
    # the rows of the CPU-speed issue's table beyond W1 and W2
    "W6": {"hidden": (32,), "epochs": 200, "lr": 1e-2},
    "W7": {"n": 12_000, "hidden": (512,), "batch": 128, "epochs": 5, "lr": 1e-3},
    # None: ConvClassifier's own max_iter (its tol rule ends the fits)
    "W8": {"epochs": None},
}

#: ``--quick`` overrides: the whole script in a minute or two on 2 CPU cores.
QUICK = {
    "W1": {"epochs": 10},
    "W2": {"epochs": 10},
    "W3": {"n": 20_000},
    "W4": {"epochs": 5},
    "W5": {"n_train": 6_000, "n_test": 2_000},
    "W6": {"epochs": 50},
    "W7": {"n": 3_000},
    "W8": {"epochs": 5},
}

DESCRIPTIONS = {
    "W1": "drug-trial lab: {n_rows} rows x 1 feature, MinMax, {hidden}, batch {batch}, "
    "{epochs} epochs; test accuracy (30% split)",
    "W2": "load_digits 5-fold CV, MinMax pipeline, {hidden}, batch {batch}, {epochs} epochs; "
    "time of the whole CV, mean CV accuracy",
    "W3": "make_classification {n} x 50, 4 classes, StandardScaler, {hidden}, batch {batch}, "
    "{epochs} epochs; test accuracy (20% split)",
    "W4": "GridSearchCV 3 lr x 3 widths x 5 folds (+ refit) on load_digits, MinMax pipeline, "
    "batch {batch}, {epochs} epochs, sequential; best_score_",
    "W5": "ConvClassifier, {n_train} synthetic 28x28 images, 10 classes, conv(32, 64) + BN + "
    "dense(128), batch {batch}, {epochs} epochs; test accuracy on {n_test}",
    "W6": "load_diabetes 5-fold CV, MLPRegressor {hidden}, MinMax pipeline, lr {lr}, default "
    "batch (200), {epochs} epochs; mean CV R^2",
    "W7": "{n} x 784 synthetic images (make_classification, 10 classes), {hidden}, batch "
    "{batch}, {epochs} epochs; test accuracy (20% split)",
    "W8": "ConvClassifier with its defaults (input_shape (1, 8, 8), max_iter {epochs}; None: "
    "the estimator's own) on "
    "load_digits, MinMax pipeline, 5-fold cross_val_score (cv=5); mean CV accuracy",
}

SEED = 0


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


def drug_trial_data(seed=SEED):
    """2,100 patients aged 13-100: 95% of those >= 65 have side effects.

    The data of the classic Keras 'drug trial' tutorial: 50 young patients
    with side effects and 50 old ones without (the 5%), then 1,000 young
    without and 1,000 old with (the 95%).
    """
    rng = np.random.default_rng(seed)
    young = lambda n: rng.integers(13, 65, n)  # noqa: E731
    old = lambda n: rng.integers(65, 101, n)  # noqa: E731
    ages = np.concatenate([young(50), old(50), young(1000), old(1000)])
    labels = np.concatenate([np.ones(50), np.zeros(50), np.zeros(1000), np.ones(1000)])
    return ages.reshape(-1, 1).astype(np.float64), labels.astype(np.int64)


def image_data(n, seed=SEED, n_classes=10, side=28, max_shift=3):
    """Blurred random prototypes, randomly shifted, scaled and noised.

    Returns float32 X of shape ``(n, side * side)`` in [0, 1] and int64 y.
    """
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((n_classes, side, side))
    protos = np.stack([scipy.ndimage.gaussian_filter(p, sigma=2.0, mode="wrap") for p in protos])
    lo = protos.min(axis=(1, 2), keepdims=True)
    hi = protos.max(axis=(1, 2), keepdims=True)
    protos = ((protos - lo) / (hi - lo)).astype(np.float32)
    padded = np.pad(protos, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)), mode="wrap")
    y = rng.integers(0, n_classes, n).astype(np.int64)
    X = np.empty((n, side * side), dtype=np.float32)
    ar = np.arange(side)
    for start in range(0, n, 10_000):
        stop = min(start + 10_000, n)
        m = stop - start
        dy = rng.integers(-max_shift, max_shift + 1, m)
        dx = rng.integers(-max_shift, max_shift + 1, m)
        rows = (max_shift + dy)[:, None, None] + ar[None, :, None]
        cols = (max_shift + dx)[:, None, None] + ar[None, None, :]
        img = padded[y[start:stop, None, None], rows, cols]
        scale = rng.uniform(0.6, 1.0, (m, 1, 1)).astype(np.float32)
        img = img * scale + rng.standard_normal(img.shape, dtype=np.float32) * 0.35
        X[start:stop] = np.clip(img, 0.0, 1.0).reshape(m, -1)
    return X, y


def digits_data():
    X, y = load_digits(return_X_y=True)
    return X, y.astype(np.int64)


# ----------------------------------------------------------------------------
# The three implementations
# ----------------------------------------------------------------------------


class TorchMLP(nn.Module):
    """The same network as sknets' / scikit-learn's MLP, returning logits."""

    def __init__(self, n_in, hidden, n_out):
        super().__init__()
        widths = [n_in, *hidden]
        layers = []
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, X):
        return self.net(X)


class TorchConvNet(nn.Module):
    """The same network as the ConvClassifier of W5 (filters (32, 64)), returning logits.

    ``(Conv3x3 -> BatchNorm -> ReLU -> MaxPool2) x 2 -> Linear -> ReLU ->
    Linear`` on flattened ``(C, H, W)`` samples.
    """

    def __init__(self, input_shape=(1, 28, 28), filters=(32, 64), hidden=(128,), n_out=10):
        super().__init__()
        self.input_shape = tuple(input_shape)
        c, h, w = self.input_shape
        blocks = []
        for f in filters:
            blocks += [
                nn.Conv2d(c, f, 3, padding=1, bias=False),
                nn.BatchNorm2d(f),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c, h, w = f, h // 2, w // 2
        self.features = nn.Sequential(*blocks)
        self.head = TorchMLP(c * h * w, hidden, n_out)

    def forward(self, X):
        X = X.reshape(X.shape[0], *self.input_shape)
        return self.head(self.features(X).flatten(1))


def _to_float32(X):
    return np.asarray(X, dtype=np.float32)


def skorch_net(module, lr, batch, epochs, device, **module_kwargs):
    """Plain skorch, the correct out-of-the-box setup."""
    return NeuralNetClassifier(
        module,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=lr,
        batch_size=batch,
        max_epochs=epochs,
        train_split=None,
        iterator_train__shuffle=True,
        device=device,
        verbose=0,
        **{f"module__{k}": v for k, v in module_kwargs.items()},
    )


def mlp(impl, ctx, hidden, lr, batch, epochs, n_in, n_out):
    """A fresh MLP classifier of one implementation (float32 cast for skorch)."""
    common = dict(
        hidden_layer_sizes=hidden,
        activation="relu",
        solver="adam",
        learning_rate_init=lr,
        batch_size=batch,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs,
        shuffle=True,
        random_state=SEED,
    )
    if impl == "sknets":
        return sknets.MLPClassifier(**common, device=ctx.sknets_device)
    if impl == "sklearn":
        return SkMLPClassifier(**common)
    if impl == "skorch":
        net = skorch_net(
            TorchMLP, lr, batch, epochs, ctx.torch_device, n_in=n_in, hidden=hidden, n_out=n_out
        )
        return Pipeline([("float32", FunctionTransformer(_to_float32)), ("net", net)])
    raise ValueError(impl)


def _seed_torch():
    # skorch draws its initialisation and batch order from torch's global RNG
    torch.manual_seed(SEED)


# ----------------------------------------------------------------------------
# Workloads: each returns a Task with a timed ``fit`` and an untimed ``score``
# ----------------------------------------------------------------------------


class Task:
    """One timed unit of work: ``fit()`` is timed, ``score()`` is not."""

    def __init__(self, fit, score, notes=None):
        self.fit = fit
        self.score = score
        self.notes = notes or {}


def _holdout_task(est, X_train, y_train, X_test, y_test):
    def fit():
        _seed_torch()
        est.fit(X_train, y_train)

    return Task(fit, lambda: float(est.score(X_test, y_test)))


def _subset(X, y, n):
    return (X, y) if n is None or len(X) <= n else (X[:n], y[:n])


class W1:
    name = "W1"

    def supports(self, impl):
        return True

    def __init__(self, cfg):
        self.cfg = cfg
        X, y = drug_trial_data()
        cfg["n_rows"] = len(X)
        X_train, X_test, self.y_train, self.y_test = train_test_split(
            X, y, test_size=0.3, random_state=SEED, stratify=y
        )
        scaler = MinMaxScaler().fit(X_train)
        self.X_train, self.X_test = scaler.transform(X_train), scaler.transform(X_test)

    def task(self, impl, ctx, epochs, max_rows=None):
        c = self.cfg
        est = mlp(impl, ctx, c["hidden"], c["lr"], c["batch"], epochs, 1, 2)
        X, y = _subset(self.X_train, self.y_train, max_rows)
        return _holdout_task(est, X, y, self.X_test, self.y_test)


class W3(W1):
    name = "W3"

    def __init__(self, cfg):
        self.cfg = cfg
        X, y = make_classification(
            n_samples=cfg["n"],
            n_features=50,
            n_informative=30,
            n_classes=4,
            random_state=SEED,
        )
        X_train, X_test, self.y_train, self.y_test = train_test_split(
            X, y.astype(np.int64), test_size=0.2, random_state=SEED
        )
        scaler = StandardScaler().fit(X_train)
        self.X_train, self.X_test = scaler.transform(X_train), scaler.transform(X_test)

    def task(self, impl, ctx, epochs, max_rows=None):
        c = self.cfg
        est = mlp(impl, ctx, c["hidden"], c["lr"], c["batch"], epochs, 50, 4)
        X, y = _subset(self.X_train, self.y_train, max_rows)
        return _holdout_task(est, X, y, self.X_test, self.y_test)


class W2:
    name = "W2"
    supports = W1.supports

    def __init__(self, cfg):
        self.cfg = cfg
        self.X, self.y = digits_data()

    def task(self, impl, ctx, epochs, max_rows=None):
        c = self.cfg
        batched = impl == "sknets_batched"
        name = "sknets" if batched else impl
        est = mlp(name, ctx, c["hidden"], c["lr"], c["batch"], epochs, 64, 10)
        pipe = Pipeline([("scale", MinMaxScaler()), ("clf", est)])
        cv = KFold(5, shuffle=True, random_state=SEED)
        score_fn = batched_cross_val_score() if batched else cross_val_score
        out = {}

        def fit():
            _seed_torch()
            # a failed fold must fail the benchmark, not become a nan score
            out["scores"] = score_fn(pipe, self.X, self.y, cv=cv, error_score="raise")

        return Task(fit, lambda: float(np.mean(out["scores"])))


class W4:
    name = "W4"
    supports = W1.supports

    def __init__(self, cfg):
        self.cfg = cfg
        self.X, self.y = digits_data()

    def _grid(self, impl):
        c = self.cfg
        widths = [(w,) for w in c["widths"]]
        if impl == "skorch":
            return {"clf__net__lr": list(c["lrs"]), "clf__net__module__hidden": widths}
        return {"clf__learning_rate_init": list(c["lrs"]), "clf__hidden_layer_sizes": widths}

    def task(self, impl, ctx, epochs, max_rows=None):
        c = self.cfg
        batched = impl == "sknets_batched"
        base = "sknets" if batched else impl
        est = mlp(base, ctx, (c["widths"][0],), c["lrs"][0], c["batch"], epochs, 64, 10)
        pipe = Pipeline([("scale", MinMaxScaler()), ("clf", est)])
        cv = KFold(5, shuffle=True, random_state=SEED)
        search_cls = batched_search_cls() if batched else GridSearchCV
        search = search_cls(pipe, self._grid(base), cv=cv, n_jobs=None, error_score="raise")

        def fit():
            _seed_torch()
            search.fit(self.X, self.y)

        notes = {"fits": 5 * len(c["lrs"]) * len(c["widths"]) + 1}
        return Task(fit, lambda: float(search.best_score_), notes)


class W5(W1):
    name = "W5"

    def supports(self, impl):
        return impl != "sklearn"  # scikit-learn has no convnet

    def __init__(self, cfg):
        self.cfg = cfg
        X, y = image_data(cfg["n_train"] + cfg["n_test"])
        n = cfg["n_train"]
        self.X_train, self.y_train = X[:n], y[:n]
        self.X_test, self.y_test = X[n:], y[n:]

    def task(self, impl, ctx, epochs, max_rows=None):
        c = self.cfg
        if impl in ("sknets", "sknets_bf16"):
            est = sknets.ConvClassifier(
                input_shape=(1, 28, 28),
                filters=(32, 64),
                kernel_size=3,
                pool_size=2,
                hidden_layer_sizes=(128,),
                batch_norm=True,
                dropout=0.0,
                conv_dropout=0.0,
                label_smoothing=0.0,
                solver="adam",
                learning_rate_init=c["lr"],
                max_iter=epochs,
                batch_size=c["batch"],
                tol=0.0,
                n_iter_no_change=epochs,
                random_state=SEED,
                device=ctx.sknets_device,
                precision="bfloat16" if impl == "sknets_bf16" else "float32",
            )
        else:
            net = skorch_net(TorchConvNet, c["lr"], c["batch"], epochs, ctx.torch_device)
            est = Pipeline([("float32", FunctionTransformer(_to_float32)), ("net", net)])
        X, y = _subset(self.X_train, self.y_train, max_rows)
        task = _holdout_task(est, X, y, self.X_test, self.y_test)
        task.notes["samples"] = len(X) * epochs
        return task


class W6:
    name = "W6"

    def supports(self, impl):
        return impl in ("sknets", "sklearn", "sknets_batched")

    def __init__(self, cfg):
        from sklearn.datasets import load_diabetes

        self.cfg = cfg
        self.X, self.y = load_diabetes(return_X_y=True)

    def task(self, impl, ctx, epochs, max_rows=None):
        from sklearn.neural_network import MLPRegressor as SkMLPRegressor

        c = self.cfg
        batched = impl == "sknets_batched"
        common = dict(hidden_layer_sizes=c["hidden"], learning_rate_init=c["lr"],
                      max_iter=epochs, tol=0.0, n_iter_no_change=epochs, random_state=SEED)
        if impl == "sklearn":
            est = SkMLPRegressor(**common)
        else:
            est = sknets.MLPRegressor(**common, device=ctx.sknets_device)
        pipe = Pipeline([("scale", MinMaxScaler()), ("reg", est)])
        score_fn = batched_cross_val_score() if batched else cross_val_score
        out = {}

        def fit():
            out["scores"] = score_fn(pipe, self.X, self.y, cv=5, error_score="raise")

        return Task(fit, lambda: float(np.mean(out["scores"])))


class W7(W1):
    name = "W7"

    def __init__(self, cfg):
        self.cfg = cfg
        X, y = make_classification(
            n_samples=cfg["n"], n_features=784, n_informative=100, n_classes=10,
            random_state=SEED,
        )
        X = MinMaxScaler().fit_transform(X).astype(np.float32)
        self.X_train, self.X_test, self.y_train, self.y_test = train_test_split(
            X, y.astype(np.int64), test_size=0.2, random_state=SEED
        )

    def task(self, impl, ctx, epochs, max_rows=None):
        c = self.cfg
        est = mlp(impl, ctx, c["hidden"], c["lr"], c["batch"], epochs, 784, 10)
        X, y = _subset(self.X_train, self.y_train, max_rows)
        return _holdout_task(est, X, y, self.X_test, self.y_test)


class W8:
    name = "W8"

    def supports(self, impl):
        return impl == "sknets"

    def __init__(self, cfg):
        self.cfg = cfg
        self.X, self.y = load_digits(return_X_y=True)

    def task(self, impl, ctx, epochs, max_rows=None):
        extra = {} if epochs is None else {"max_iter": epochs}
        est = sknets.ConvClassifier(input_shape=(1, 8, 8), random_state=SEED,
                                    device=ctx.sknets_device, **extra)
        pipe = Pipeline([("scale", MinMaxScaler()), ("clf", est)])
        out = {}

        def fit():
            out["scores"] = cross_val_score(pipe, self.X, self.y, cv=5, error_score="raise")

        return Task(fit, lambda: float(np.mean(out["scores"])))


WORKLOAD_CLASSES = {"W1": W1, "W2": W2, "W3": W3, "W4": W4, "W5": W5, "W6": W6, "W7": W7,
                    "W8": W8}


def batched_search_cls():
    """sknets' batched GridSearchCV, or None when it is not importable."""
    try:
        from sknets.model_selection import GridSearchCV as BatchedGridSearchCV
    except Exception:  # ImportError, or a half-written module
        return None
    return BatchedGridSearchCV


def batched_cross_val_score():
    from sknets.model_selection import cross_val_score as batched

    return batched


def extra_impls(workload, impls, ctx):
    """Rows beyond the three implementations, where they apply."""
    extra = []
    if "sknets" in impls:
        if workload in ("W2", "W4", "W6"):
            extra.append("sknets_batched")
        if workload == "W5" and ctx.on_cuda:
            extra.append("sknets_bf16")
    return extra


LABELS = {
    "sknets": "sknets",
    "sklearn": "scikit-learn",
    "skorch": "skorch",
    "sknets_batched": "sknets (batched)",
    "sknets_bf16": "sknets (bfloat16)",
}


# ----------------------------------------------------------------------------
# Measurement
# ----------------------------------------------------------------------------


class Context:
    def __init__(self, device):
        self.sknets_device = device
        if device == "auto":
            self.torch_device = "cuda" if torch.cuda.is_available() else "cpu"
        else:
            self.torch_device = device
        self.on_cuda = self.torch_device.startswith("cuda") and torch.cuda.is_available()

    def impl_device(self, impl):
        return "cpu" if impl == "sklearn" else self.torch_device

    def sync(self):
        if self.on_cuda:
            torch.cuda.synchronize()


@contextlib.contextmanager
def quiet():
    """Silence ConvergenceWarning (expected: every fit stops at max_iter)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message=".*batch_size.*clipped")
        yield


def timed(fn, ctx):
    """Wall-clock and process CPU seconds of ``fn()``."""
    ctx.sync()
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    ctx.sync()
    return time.perf_counter() - start, time.process_time() - cpu


def _error(exc):
    msg = " ".join(str(exc).split())
    if len(msg) > 160:
        msg = msg[:157] + "..."
    return f"{type(exc).__name__}: {msg}"


def new_result(name, impl, ctx):
    return {
        "workload": name,
        "impl": impl,
        "label": LABELS[impl],
        "device": ctx.impl_device(impl),
        "times": [],
        "cpu_times": [],
        "scores": [],
        "warmup_times": [],
        "warmup_s": None,
        "median_s": None,
        "score": None,
        "ratio": None,
        "notes": {},
        "error": None,
    }


def _guarded(res, args, fn):
    """Run ``fn``; an exception becomes the result's error and stops it."""
    if res["error"]:
        return
    try:
        with quiet():
            fn()
    except Exception as exc:  # report in the table and go on
        res["error"] = "error: " + _error(exc)
        if args.verbose:
            traceback.print_exc()


def warm_up(workload, impl, ctx, warmup):
    """One untimed warm-up fit; returns its wall-clock seconds (None for 'none')."""
    if warmup == "none":
        return None
    if warmup == "short":
        # same shapes and code paths: one epoch, at most 10k rows
        task = workload.task(impl, ctx, 1, max_rows=10_000)
    else:
        task = workload.task(impl, ctx, workload.cfg["epochs"])
    return timed(task.fit, ctx)[0]


def _mark_skipped(res, supports):
    """Set the error of a row that cannot run; True when it is skipped."""
    if res["impl"] == "sknets_batched" and batched_search_cls() is None:
        res["error"] = "skipped: sknets.model_selection.GridSearchCV is not importable"
    elif not supports(res["impl"]):
        res["error"] = "n/a"
    else:
        return False
    res["skipped"] = True
    return True


def measure_workload(workload, impls, ctx, args, log):
    """``--in-process``: warm up every implementation once, then time ``repeats`` rounds.

    The timed runs are interleaved (one run of each implementation per
    round), so that a machine whose load changes during the benchmark
    slows every implementation alike.
    """
    results = [new_result(workload.name, impl, ctx) for impl in impls]
    for res in results:
        if not _mark_skipped(res, workload.supports) and args.warmup != "none":

            def warm(res=res):
                res["warmup_s"] = warm_up(workload, res["impl"], ctx, args.warmup)
                res["warmup_times"].append(res["warmup_s"])

            _guarded(res, args, warm)
    for _ in range(args.repeats):
        for res in results:

            def run(res=res):
                task = workload.task(res["impl"], ctx, workload.cfg["epochs"])
                wall, cpu = timed(task.fit, ctx)
                res["times"].append(wall)
                res["cpu_times"].append(cpu)
                res["scores"].append(task.score())
                res["notes"].update(task.notes)

            _guarded(res, args, run)
    return summarise(results, log)


#: The prefix of the JSON line a fresh process prints.
CHILD_MARK = "BENCH-RUN "


def child_main(spec):
    """``--child``: one fresh-process measurement of one workload and implementation.

    Builds the workload's data, runs one untimed warm-up fit and then the
    timed fit, and prints the measurements as one JSON line after
    ``CHILD_MARK`` on stdout.
    """
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    ctx = Context(spec["device"])
    if ctx.on_cuda:
        torch.cuda.init()
    w, impl = spec["workload"], spec["impl"]
    record = {
        "workload": w,
        "impl": impl,
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads(),
        "warmup_s": None,
        "time_s": None,
        "cpu_s": None,
        "score": None,
        "notes": {},
        "error": None,
    }
    try:
        with quiet():
            workload = WORKLOAD_CLASSES[w](workload_cfg(w, spec["quick"], spec["w5_samples"]))
            record["warmup_s"] = warm_up(workload, impl, ctx, spec["warmup"])
            task = workload.task(impl, ctx, workload.cfg["epochs"])
            record["time_s"], record["cpu_s"] = timed(task.fit, ctx)
            record["score"] = task.score()
            record["notes"] = task.notes
    except Exception as exc:  # reported in the parent's table
        record["error"] = "error: " + _error(exc)
        traceback.print_exc()
    print(CHILD_MARK + json.dumps(record, default=str), flush=True)
    return 0


def run_child(script, spec, mark):
    """Run ``script --child <spec as JSON>`` in a new interpreter, the
    repository on its ``PYTHONPATH``; returns ``(record, process)``: the
    JSON record of its last output line starting with ``mark`` (None if
    there is none) and the finished process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, str(Path(script).resolve()), "--child", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(mark):
            return json.loads(line[len(mark):]), proc
    return None, proc


def run_fresh(w, impl, args):
    """Run :func:`child_main` in a new interpreter; returns its record."""
    spec = {
        "workload": w,
        "impl": impl,
        "device": args.device,
        "quick": args.quick,
        "w5_samples": args.w5_samples,
        "warmup": args.warmup,
        "threads": args.threads,
    }
    record, proc = run_child(__file__, spec, CHILD_MARK)
    if args.verbose and proc.stderr:
        sys.stderr.write(proc.stderr)
    if record is not None:
        return record
    tail = " ".join(proc.stderr.strip().splitlines()[-1:])
    return {"error": f"error: the fresh process exited with {proc.returncode}: {tail}"}


def measure_workload_fresh(w, impls, ctx, args, log):
    """``--fresh``: every timed run in a new process, after a warm-up fit there.

    For each of ``repeats`` rounds the implementations take turns, one
    process each, so that a machine whose load changes during the benchmark
    slows every implementation alike, and no library's thread pool spins
    beside another's.
    """
    cls = WORKLOAD_CLASSES[w]
    supports = cls.__new__(cls).supports  # no data needed in this process
    results = [new_result(w, impl, ctx) for impl in impls]
    for res in results:
        _mark_skipped(res, supports)
    for _ in range(args.repeats):
        for res in results:
            if res["error"]:
                continue
            rec = run_fresh(w, res["impl"], args)
            if rec.get("error"):
                res["error"] = rec["error"]
                continue
            res["times"].append(rec["time_s"])
            res["cpu_times"].append(rec["cpu_s"])
            res["scores"].append(rec["score"])
            if rec["warmup_s"] is not None:
                res["warmup_times"].append(rec["warmup_s"])
            res["notes"].update(rec["notes"])
            res.setdefault("torch_threads", rec["torch_threads"])
    for res in results:
        if res["warmup_times"]:
            res["warmup_s"] = statistics.median(res["warmup_times"])
    return summarise(results, log)


def summarise(results, log):
    """Medians and scores of each row, and a log line per row."""
    for res in results:
        if res["times"] and not res["error"]:
            res["median_s"] = statistics.median(res["times"])
            res["score"] = res["scores"][0]
            if "samples" in res["notes"]:
                res["notes"]["samples_per_s"] = res["notes"]["samples"] / res["median_s"]
        times = " ".join(f"{t:.3g}" for t in res["times"])
        warm = f"{res['warmup_s']:.3g} s" if res["warmup_s"] is not None else "-"
        status = res["error"] or f"score {res['score']:.4f}"
        log(f"  {res['label']:<18} warm-up {warm}; runs [{times}] s; {status}")
    return results


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------


def seed_summary(name, scores):
    """``name: mean ..., min ..., max ... over N seeds`` of one model's scores."""
    return (f"{name}: mean {np.mean(scores):.4f}, min {np.min(scores):.4f}, "
            f"max {np.max(scores):.4f} over {len(scores)} seeds")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average():
    """The 1, 5 and 15 minute load averages (None where unknown)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def environment(ctx):
    cores = os.cpu_count()
    cpu = f"{cpu_name()}, {cores} cores (torch threads: {torch.get_num_threads()})"
    if ctx.on_cuda:
        dev = torch.device(ctx.torch_device)
        gpu = torch.cuda.get_device_name(dev)
        device = f"GPU: {gpu} (CUDA {torch.version.cuda}); CPU: {cpu}"
    else:
        device = f"CPU: {cpu}"
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "skorch": skorch.__version__,
        "sknets": getattr(sknets, "__version__", "?"),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def fmt_time(t):
    if t is None:
        return ""
    return f"{t:.3g}" if t < 100 else f"{t:.0f}"


def fmt_notes(res):
    parts = []
    n = res["notes"]
    if "samples_per_s" in n:
        parts.append(f"{n['samples_per_s']:,.0f} samples/s")
    if "fits" in n and res["impl"] != "sknets_batched":
        parts.append(f"{n['fits']} fits")
    if res["impl"] == "sknets_batched" and res["times"]:
        parts.append("sknets.model_selection: the fits trained as batched networks")
    if len(res["times"]) > 1:
        parts.append(f"runs {min(res['times']):.3g}-{max(res['times']):.3g} s")
    if res["warmup_s"] is not None:
        parts.append(f"warm-up {res['warmup_s']:.3g} s")
    return "; ".join(parts)


def timing_note(args):
    """How the times were taken, for the table's header."""
    warm = "no warm-up" if args.warmup == "none" else f"an untimed {args.warmup} warm-up fit"
    if args.mode == "fresh":
        return (
            f"time = median of {args.repeats} timed run(s), each in a fresh Python process "
            f"after {warm} in that process, the implementations alternating (one process "
            "each per round)"
        )
    return (
        f"time = median of {args.repeats} timed run(s) in this one process after {warm} "
        "per implementation, the implementations interleaved round by round (--in-process)"
    )


def markdown(env, args, cfgs, results, total_s):
    lines = [
        "# sknets benchmark",
        "",
        f"- date: {env['date']}",
        f"- command: `{args.command}`",
        f"- device: {env['device']}",
        f"- versions: python {env['python']}, torch {env['torch']}, scikit-learn "
        f"{env['sklearn']}, skorch {env['skorch']}, sknets {env['sknets']}, numpy "
        f"{env['numpy']}",
        f"- mode: {'quick' if args.quick else 'full'}; {timing_note(args)}; "
        f"`x sknets` = time / time of sknets; total wall time {total_s:.0f} s",
        f"- load average (1, 5, 15 min) at start: {env.get('load_start')}, at end: "
        f"{env.get('load_end')} (other processes compete for the cores when the load is "
        "above the core count)",
        "",
        "Workloads:",
        "",
    ]
    for w, cfg in cfgs.items():
        lines.append(f"- **{w}**: " + DESCRIPTIONS[w].format(**cfg))
    lines += [
        "",
        "| workload | implementation | device | fit time (s) | x sknets | score | notes |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for res in results:
        if res["error"]:
            cells = ["", "", res["error"], ""]
        else:
            ratio = f"{res['ratio']:.2f}x" if res["ratio"] is not None else ""
            cells = [fmt_time(res["median_s"]), ratio, f"{res['score']:.4f}", fmt_notes(res)]
        row = [res["workload"], res["label"], res["device"], *cells]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in row) + " |")
    return "\n".join(lines) + "\n"


#: The CPU-speed issue's table: scikit-learn / sknets for these, and W8's
#: sknets time and accuracy.
SUMMARY_RATIOS = ("W1", "W2", "W6", "W7")
SUMMARY_SKNETS_ONLY = ("W8",)


def summary(results):
    """The rows of the scikit-learn / sknets table (dicts, also in the JSON)."""
    rows = {(r["workload"], r["impl"]): r for r in results}
    out = []
    for w in (*SUMMARY_RATIOS, *SUMMARY_SKNETS_ONLY):
        sk = rows.get((w, "sknets"))
        if sk is None:
            continue
        ours = sk["median_s"]
        row = {"workload": w, "sknets_s": ours, "sknets_score": sk["score"],
               "sknets_error": sk["error"], "sklearn_s": None, "sklearn_over_sknets": None,
               "batched_s": None, "sklearn_over_batched": None}
        if w in SUMMARY_RATIOS:
            theirs = rows.get((w, "sklearn"), {}).get("median_s")
            batched = rows.get((w, "sknets_batched"), {}).get("median_s")
            row["sklearn_s"], row["batched_s"] = theirs, batched
            if theirs and ours:
                row["sklearn_over_sknets"] = theirs / ours
            if theirs and batched:
                row["sklearn_over_batched"] = theirs / batched
        out.append(row)
    return out


def summary_table(rows):
    """Markdown: the scikit-learn / sknets table ('' when there is nothing to show)."""
    if not rows:
        return ""

    def cell(x, fmt):
        return "" if x is None else fmt(x)

    ratio = lambda x: f"{x:.2f}x"  # noqa: E731
    lines = [
        "",
        "## scikit-learn / sknets",
        "",
        "scikit-learn's median fit time divided by sknets' (above 1: sknets is faster), "
        "from the table above; W8 (ConvClassifier with its defaults, digits 5-fold) has "
        "no scikit-learn counterpart: sknets' time and mean CV accuracy.",
        "",
        "| workload | scikit-learn (s) | sknets (s) | scikit-learn / sknets | "
        "sknets (batched) (s) | scikit-learn / sknets (batched) | sknets score |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["sknets_error"]:
            cells = ["", r["sknets_error"], "", "", "", ""]
        else:
            cells = [
                fmt_time(r["sklearn_s"]) if r["workload"] in SUMMARY_RATIOS else "n/a",
                fmt_time(r["sknets_s"]),
                cell(r["sklearn_over_sknets"], ratio),
                fmt_time(r["batched_s"]),
                cell(r["sklearn_over_batched"], ratio),
                cell(r["sknets_score"], lambda x: f"{x:.4f}"),
            ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in [r["workload"], *cells])
                     + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs (default 3, quick 1)")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--impls", default=",".join(IMPLS))
    p.add_argument("--quick", action="store_true", help="shrink every workload")
    p.add_argument(
        "--warmup",
        choices=("short", "full", "none"),
        default="short",
        help="untimed warm-up per implementation and workload: 'short' runs the "
        "workload for 1 epoch (single fits on at most 10k rows), 'full' runs it "
        "whole (default short)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads for sknets and skorch on the CPU (default: torch's own)",
    )
    p.add_argument("--w5-samples", type=int, default=None, help="override W5's training images")
    p.add_argument(
        "--load",
        action="store_true",
        help="after the quiet runs, run every workload again while a background process "
        "started by the benchmark keeps one core busy, and print a second table with "
        "the slow-down of each row (loaded / quiet)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--fresh",
        dest="mode",
        action="store_const",
        const="fresh",
        help="time every run in a fresh Python process, after a warm-up fit in that "
        "process, the implementations alternating (the default)",
    )
    mode.add_argument(
        "--in-process",
        dest="mode",
        action="store_const",
        const="in-process",
        help="time every run in this one process, the implementations interleaved "
        "round by round after one warm-up each (the former way)",
    )
    p.set_defaults(mode="fresh")
    p.add_argument("--child", help=argparse.SUPPRESS)  # one run of --fresh: a JSON spec
    p.add_argument("--out", help="also write the markdown table to this file")
    p.add_argument("--json", help="write all measurements to this JSON file")
    p.add_argument("--verbose", action="store_true", help="print tracebacks of errors")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    args.workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    args.impls = [i.strip().lower() for i in args.impls.split(",") if i.strip()]
    for w in args.workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    for i in args.impls:
        if i not in IMPLS:
            p.error(f"unknown implementation {i!r}; choose from {', '.join(IMPLS)}")
    args.command = "python benchmarks/bench.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    return args


@contextlib.contextmanager
def one_busy_core():
    """A background process spinning on one core for the duration."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)  # let it reach the run queue (and the load average)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def workload_cfg(w, quick, w5_samples=None):
    """The sizes of workload ``w`` (``FULL``, with ``QUICK`` and ``--w5-samples``)."""
    cfg = dict(FULL[w])
    if quick:
        cfg.update(QUICK[w])
    if w == "W5" and w5_samples:
        cfg["n_train"] = w5_samples
    return cfg


def run_all(args, ctx, log):
    """Measure every workload; returns (cfgs, results)."""
    cfgs, results = {}, []
    for w in args.workloads:
        cfg = workload_cfg(w, args.quick, args.w5_samples)
        impls = [*args.impls, *extra_impls(w, args.impls, ctx)]
        if args.mode == "fresh":
            if w == "W1":  # the description's row count; the data live in the children
                cfg["n_rows"] = len(drug_trial_data()[0])
            cfgs[w] = cfg
            log(f"{w}: " + DESCRIPTIONS[w].format(**cfg))
            rows = measure_workload_fresh(w, impls, ctx, args, log)
        else:
            workload = WORKLOAD_CLASSES[w](cfg)
            cfgs[w] = cfg
            log(f"{w}: " + DESCRIPTIONS[w].format(**cfg))
            rows = measure_workload(workload, impls, ctx, args, log)
        base = next((r for r in rows if r["impl"] == "sknets" and r["median_s"]), None)
        for r in rows:
            if base is not None and r["median_s"] is not None:
                r["ratio"] = r["median_s"] / base["median_s"]
        results += rows
    return cfgs, results


def load_table(quiet_rows, loaded_rows):
    """Markdown: each row's median quiet and under one busy core, and the ratio."""
    lines = [
        "",
        "## Under load: one core kept busy by a background process",
        "",
        "| workload | implementation | quiet (s) | one busy core (s) | loaded / quiet | "
        "x sknets (loaded) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for q, r in zip(quiet_rows, loaded_rows):
        if q["median_s"] is None or r["median_s"] is None:
            continue
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
        lines.append(
            f"| {q['workload']} | {q['label']} | {fmt_time(q['median_s'])} | "
            f"{fmt_time(r['median_s'])} | {r['median_s'] / q['median_s']:.2f}x | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = Context(args.device)
    if ctx.on_cuda and args.mode == "in-process":
        torch.cuda.init()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    env = environment(ctx)
    log(f"device: {env['device']}")
    env["load_start"] = load_average()
    start = time.perf_counter()
    cfgs, results = run_all(args, ctx, log)
    loaded = None
    if args.load:
        log("again, with one core kept busy by a background process")
        with one_busy_core():
            env["load_loaded"] = load_average()
            _, loaded = run_all(args, ctx, log)
    total = time.perf_counter() - start
    env["load_end"] = load_average()
    table = markdown(env, args, cfgs, results, total)
    rows = summary(results)
    table += summary_table(rows)
    if loaded is not None:
        table += load_table(results, loaded)
    sys.stdout.write(table)
    if args.out:
        Path(args.out).write_text(table)
    if args.json:
        payload = {
            "meta": {**env, "command": args.command, "quick": args.quick,
                     "repeats": args.repeats, "warmup": args.warmup, "mode": args.mode,
                     "total_s": total},
            "config": {w: {k: list(v) if isinstance(v, tuple) else v for k, v in c.items()}
                       for w, c in cfgs.items()},
            "results": results,
            "summary": rows,
            "loaded_results": loaded,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
