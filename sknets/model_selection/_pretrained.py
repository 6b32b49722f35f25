"""Hand-over of networks trained by a batched model selection.

``sknets.model_selection`` trains every (candidate, fold) member of a search
at once, then runs scikit-learn's own search or cross-validation code, whose
``fit`` calls find their member here and adopt it instead of training again.
A member is found only by an exact match: the same estimator class, the same
parameters and byte-identical training data. Anything else trains as usual.
"""

import contextlib
import contextvars
import hashlib

import numpy as np

from .. import _seam

_MEMBERS = contextvars.ContextVar("sknets_pretrained", default=None)


def _fingerprint(a):
    """A cheap summary of an array; equal arrays have equal fingerprints."""
    a = np.asarray(a)
    if a.dtype == object:
        return (a.shape, repr(a.tolist()))
    flat = np.ascontiguousarray(a).reshape(-1)
    step = max(1, flat.size // 64)
    h = hashlib.blake2b(flat[::step].tobytes(), digest_size=16)
    h.update(str((a.shape, a.dtype.str)).encode())
    if a.dtype.kind in "fc":
        h.update(np.float64(np.sum(flat, dtype=np.float64)).tobytes())
    return h.hexdigest()


def key(estimator, X, y):
    """The lookup key of a fit of ``estimator`` on ``X, y``: its class, its
    parameters and fingerprints of the data (confirmed by :func:`take`)."""
    params = sorted((k, repr(v)) for k, v in estimator.get_params(deep=False).items())
    return (type(estimator).__name__, tuple(params), _fingerprint(X), _fingerprint(y))


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


@contextlib.contextmanager
def members(fitted_by_key):
    """Make ``{key: [trained results]}`` available to ``fit`` calls
    (through the estimators' seam, :func:`sknets._seam.fit_source`)."""
    token = _MEMBERS.set(fitted_by_key)
    try:
        with _seam.fit_source(_take):
            yield
    finally:
        _MEMBERS.reset(token)


def _take(estimator, X, y, sample_weight=None):
    # looked up at call time, so that tests can watch ``take``
    return take(estimator, X, y, sample_weight)


def add(pool, estimator, X, y, fitted):
    """Put ``fitted`` (a :class:`~sknets._seam.TrainingResult`), trained on
    ``X, y`` with ``estimator``'s parameters, into ``pool``."""
    pool.setdefault(key(estimator, X, y), []).append((X, y, fitted))


def take(estimator, X, y, sample_weight=None):
    """The pretrained result for this fit, removed from the pool, or None.

    Only a member trained on exactly this data (compared element by
    element) is returned.
    """
    pool = _MEMBERS.get()
    if not pool or sample_weight is not None:
        return None
    entries = pool.get(key(estimator, X, y), [])
    for i, (X_fit, y_fit, _) in enumerate(entries):
        if _same(X_fit, X) and _same(y_fit, y):
            return entries.pop(i)[2]
    return None
