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

_MEMBERS = contextvars.ContextVar("sknets_pretrained", default=None)


def _digest(a):
    a = np.ascontiguousarray(np.asarray(a))
    h = hashlib.blake2b(digest_size=16)
    h.update(str((a.shape, a.dtype.str)).encode())
    h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())
    return h.hexdigest()


def key(estimator, X, y):
    """The lookup key of a fit of ``estimator`` on ``X, y``."""
    params = sorted((k, repr(v)) for k, v in estimator.get_params(deep=False).items())
    return (type(estimator).__name__, tuple(params), _digest(X), _digest(y))


@contextlib.contextmanager
def members(fitted_by_key):
    """Make ``{key: [fitted estimators]}`` available to ``fit`` calls."""
    token = _MEMBERS.set(fitted_by_key)
    try:
        yield
    finally:
        _MEMBERS.reset(token)


def take(estimator, X, y, sample_weight=None):
    """The pretrained member for this fit, removed from the pool, or None."""
    pool = _MEMBERS.get()
    if not pool or sample_weight is not None:
        return None
    fitted = pool.get(key(estimator, X, y))
    return fitted.pop(0) if fitted else None
