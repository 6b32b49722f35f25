"""The thread rule of CPU fits (sknets._threads)."""

import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
import torch

from sknets import MLPClassifier
from sknets import _threads as T


@pytest.fixture
def no_user_setting(monkeypatch):
    """As if nobody chose torch's threads."""
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(T, "_TORCH_DEFAULT", torch.get_num_threads())


def test_small_steps_run_on_one_thread(no_user_setting):
    assert T.fit_threads(T.SMALL_STEP - 1) == 1


def test_large_steps_take_the_usable_cores_up_to_torchs_default(no_user_setting, monkeypatch):
    monkeypatch.setattr(T, "usable_cores", lambda: 1)
    assert T.fit_threads(T.SMALL_STEP) == 1
    monkeypatch.setattr(T, "usable_cores", lambda: 64)
    assert T.fit_threads(T.SMALL_STEP) == torch.get_num_threads()


def test_the_load_does_not_change_a_fits_threads(no_user_setting, monkeypatch):
    """Float sums depend on the number of threads: a busy machine must not
    change the model."""
    quiet = [T.fit_threads(w) for w in (1, T.SMALL_STEP, 64 * T.SMALL_STEP)]
    monkeypatch.setattr(T.os, "getloadavg", lambda: (7.5, 7.0, 7.0), raising=False)
    assert [T.fit_threads(w) for w in (1, T.SMALL_STEP, 64 * T.SMALL_STEP)] == quiet


def test_the_users_setting_is_respected(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert T.fit_threads(1) == 3
    assert T.fit_threads(T.SMALL_STEP * 4) == 3


def test_set_num_threads_counts_as_a_choice(no_user_setting, monkeypatch):
    monkeypatch.setattr(T, "_TORCH_DEFAULT", torch.get_num_threads() + 1)
    assert T.user_threads() == torch.get_num_threads()


def test_a_thread_started_inside_another_fit_reads_the_users_setting(no_user_setting):
    """torch's count is per thread, and a new thread starts from the last
    count set anywhere: one started while a fit runs on 1 thread must not
    take that 1 for the user's choice."""
    seen = {}

    def inner():
        seen["threads"] = torch.get_num_threads()
        seen["rule"] = T.fit_threads(T.SMALL_STEP)

    with T.intra_op_threads(1):
        worker = threading.Thread(target=inner)
        worker.start()
        worker.join()
    assert seen["threads"] == 1  # what torch hands the new thread
    assert seen["rule"] == T.fit_threads(T.SMALL_STEP)
    assert torch.get_num_threads() == T._TORCH_DEFAULT


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("chosen", [1, 2])
def test_a_fit_restores_the_callers_threads(chosen, monkeypatch):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(chosen)
        X = np.random.RandomState(0).rand(40, 5)
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X, np.arange(40) % 2)
        assert torch.get_num_threads() == chosen
    finally:
        torch.set_num_threads(before)


def test_intra_op_threads_nest_and_restore():
    before = torch.get_num_threads()
    with T.intra_op_threads(1):
        assert torch.get_num_threads() == 1
        with T.intra_op_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_threads_nest_across_python_threads_and_restore():
    before = torch.get_num_threads()
    barrier = threading.Barrier(2)
    counts = []

    def fit_like(n):
        with T.intra_op_threads(n):
            barrier.wait()
            counts.append(torch.get_num_threads())
            barrier.wait()

    workers = [threading.Thread(target=fit_like, args=(n,)) for n in (1, 2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(counts) == [1, 2]  # each thread has its own count
    assert torch.get_num_threads() == before


# -- the same bits, alone or beside other fits, quiet or busy -------------------------


def _fit_outputs(dtype, kind):
    """Predictions of a small fit whose sums change with the number of
    threads: float32 MLP, and convolutions in float32 and float64."""
    from sklearn.datasets import load_digits

    from sknets import ConvClassifier

    X, y = load_digits(return_X_y=True)
    X, y = (X[:300] / 16).astype(dtype), y[:300]
    if kind == "conv":
        est = ConvClassifier(filters=(4, 8), hidden_layer_sizes=(16,), max_iter=2, random_state=0)
    else:
        est = MLPClassifier(max_iter=4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y).predict_proba(X)


@pytest.fixture
def busy_core():
    """Another process keeping one core busy."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def _concurrent_rounds(dtype, rounds):
    kinds = ["mlp", "conv", "mlp", "conv"]
    alone = {kind: _fit_outputs(dtype, kind) for kind in set(kinds)}
    for _ in range(rounds):
        outputs = [None] * len(kinds)
        # every thread has its torch count before the first fit begins
        barrier = threading.Barrier(len(kinds))

        def run(i, barrier=barrier, outputs=outputs):
            torch.get_num_threads()
            barrier.wait()
            outputs[i] = _fit_outputs(dtype, kinds[i])

        workers = [threading.Thread(target=run, args=(i,)) for i in range(len(kinds))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        for kind, out in zip(kinds, outputs):
            np.testing.assert_array_equal(out, alone[kind])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fits_in_threads_are_bit_identical_to_the_fit_alone(dtype, no_user_setting):
    _concurrent_rounds(dtype, rounds=2)
    assert torch.get_num_threads() == T._TORCH_DEFAULT


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fits_in_threads_beside_a_busy_core_are_bit_identical(dtype, no_user_setting, busy_core):
    _concurrent_rounds(dtype, rounds=5)


def test_a_small_networks_predictions_run_on_one_thread(no_user_setting, monkeypatch):
    """Predictions follow a fit's rule with a nominal batch of 200 rows,
    whatever the number of rows predicted: one thread for a small network
    (on a busy machine a second thread's wake-up cost 25 times the
    prediction), the same for every subset of rows."""
    rng = np.random.RandomState(0)
    X, y = rng.rand(50, 4), np.arange(50) % 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)
    seen = []
    forward = type(clf.net_.module_).forward

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(clf.net_.module_), "forward", spy)
    monkeypatch.setattr(T, "usable_cores", lambda: 2)
    before = torch.get_num_threads()
    clf.predict_proba(X)
    # 100,000 rows: two chunks
    clf.predict_proba(np.repeat(X, 2000, axis=0))
    assert seen == [1, 1, 1]
    assert torch.get_num_threads() == before
