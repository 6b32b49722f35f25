"""Small shared data sets and seeding for the tests."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.preprocessing import MinMaxScaler


@pytest.fixture(autouse=True)
def _seed_globals():
    """Every test starts from the same global RNG state."""
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits():
    X, y = load_digits(return_X_y=True)
    return MinMaxScaler().fit_transform(X), y


@pytest.fixture(scope="session")
def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return MinMaxScaler().fit_transform(X), y


@pytest.fixture(scope="session")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return MinMaxScaler().fit_transform(X), y


@pytest.fixture
def torch_one_thread():
    """Run torch on one thread for the test, then restore the thread count.

    The networks in the tests are tiny: one thread is faster than two, and
    far faster when other processes share the cores (two busy-waiting intra-op
    threads on two loaded cores slow every step down by an order of magnitude).
    """
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


#: scikit-learn's checks that refit on every sparse format, on the L-BFGS
#: settings of tests/test_common.py: 11 to 12 s each on 2 cores, 46 s of
#: the default suite in all, so they run with the slow tests
_SLOW_CHECKS = ("-check_estimator_sparse_array]", "-check_estimator_sparse_matrix]")


@pytest.hookimpl(tryfirst=True)  # before pytest's -m selection
def pytest_collection_modifyitems(config, items):
    """Marks the slowest estimator checks ``slow``; tests marked ``gpu`` run
    the CUDA paths, and without CUDA they are skipped."""
    for item in items:
        nodeid = item.nodeid
        if (nodeid.startswith("tests/test_common.py::test_sklearn_compatible_estimator")
                and "solver='lbfgs'" in nodeid and nodeid.endswith(_SLOW_CHECKS)):
            item.add_marker(pytest.mark.slow)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def host_copies(monkeypatch):
    """``host_copies(n)``: a list of the conversions of tensors of at least
    ``n`` values to host arrays (``__array__``, that is ``np.asarray``,
    ``.numpy()``, ``.cpu()``, ``.tolist()``) made from then on."""

    def spy_on(n):
        calls = []
        for name in ("__array__", "numpy", "cpu", "tolist"):
            original = getattr(torch.Tensor, name)

            def spy(t, *args, _name=name, _original=original, **kwargs):
                if t.numel() >= n:
                    calls.append(_name)
                return _original(t, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, spy)
        return calls

    return spy_on
