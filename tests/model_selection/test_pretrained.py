"""The hand-over of pretrained members: exact matches only."""

import numpy as np

from sknets import MLPClassifier
from sknets.model_selection import _pretrained


def _pool_with(est, X, y):
    pool = {}
    fitted = object()
    _pretrained.add(pool, est, X, y, fitted)
    return pool, fitted


def test_take_returns_the_member_for_identical_data():
    X, y = np.arange(600.0).reshape(200, 3), np.arange(200) % 2
    est = MLPClassifier(max_iter=3)
    pool, fitted = _pool_with(est, X, y)
    with _pretrained.members(pool):
        assert _pretrained.take(MLPClassifier(max_iter=3), X.copy(), y.copy()) is fitted
        assert _pretrained.take(MLPClassifier(max_iter=3), X, y) is None  # taken once


def test_take_needs_the_same_parameters_and_data():
    X, y = np.arange(600.0).reshape(200, 3), np.arange(200) % 2
    est = MLPClassifier(max_iter=3)
    pool, fitted = _pool_with(est, X, y)
    # two values swapped: same shape, same sum, likely the same sample
    X_swapped = X.copy()
    X_swapped[[101, 102], 1] = X_swapped[[102, 101], 1]
    with _pretrained.members(pool):
        assert _pretrained.take(MLPClassifier(max_iter=4), X, y) is None
        assert _pretrained.take(est, X_swapped, y) is None
        assert _pretrained.take(est, X, 1 - y) is None
        assert _pretrained.take(est, X, y, sample_weight=np.ones(200)) is None
        assert _pretrained.take(est, X, y) is fitted


def test_no_pool_outside_the_context():
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    pool, _ = _pool_with(MLPClassifier(), X, y)
    assert _pretrained.take(MLPClassifier(), X, y) is None
