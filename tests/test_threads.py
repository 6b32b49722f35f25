"""The thread rule of CPU fits (sknets._threads)."""

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


def test_small_steps_run_on_one_thread(no_user_setting, monkeypatch):
    monkeypatch.setattr(T, "free_cores", lambda: 8)
    assert T.fit_threads(T.SMALL_STEP - 1) == 1


def test_large_steps_take_the_free_cores_up_to_torchs_setting(no_user_setting, monkeypatch):
    n = torch.get_num_threads()
    monkeypatch.setattr(T, "free_cores", lambda: 1)
    assert T.fit_threads(T.SMALL_STEP) == 1
    monkeypatch.setattr(T, "free_cores", lambda: 64)
    assert T.fit_threads(T.SMALL_STEP) == n


def test_the_users_setting_is_respected(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(T, "free_cores", lambda: 1)
    assert T.fit_threads(1) == torch.get_num_threads()
    assert T.fit_threads(T.SMALL_STEP * 4) == torch.get_num_threads()


def test_set_num_threads_counts_as_a_choice(no_user_setting, monkeypatch):
    monkeypatch.setattr(T, "_TORCH_DEFAULT", torch.get_num_threads() + 1)
    assert T.user_threads() == torch.get_num_threads()


def test_busy_and_free_cores_are_sane():
    assert T._own_running() >= 1
    assert T.busy_cores() >= 0
    assert 1 <= T.free_cores() <= T.usable_cores()


def test_load_from_other_tasks_is_counted(monkeypatch):
    monkeypatch.setattr(T.os, "getloadavg", lambda: (3.2, 3.0, 3.0))
    assert T.busy_cores() >= 2


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
