"""Model selection that trains many sknets networks at once.

Drop-in replacements for scikit-learn's ``GridSearchCV``,
``RandomizedSearchCV``, ``cross_validate`` and ``cross_val_score``: when the
estimator is a sknets MLP (alone or ending a Pipeline), all (candidate,
fold) fits are trained together as one batched network: in this process,
on local processes (``n_jobs``) or on a Dask cluster (joblib's ``'dask'``
backend).
"""

from ._distributed import ClusterError
from ._search import GridSearchCV, RandomizedSearchCV, cross_val_score, cross_validate

__all__ = [
    "ClusterError",
    "GridSearchCV",
    "RandomizedSearchCV",
    "cross_val_score",
    "cross_validate",
]
