"""Model selection that trains many sknets networks at once.

Drop-in replacements for scikit-learn's ``GridSearchCV``,
``RandomizedSearchCV``, ``HalvingGridSearchCV``, ``HalvingRandomSearchCV``
(without scikit-learn's ``enable_halving_search_cv`` import),
``cross_validate`` and ``cross_val_score``: when the estimator is a sknets
MLP (alone or ending a Pipeline), all (candidate, fold) fits (of each
iteration, for the halving searches) are trained together as one batched
network: in this process, on local processes (``n_jobs``) or on a Dask
cluster (joblib's ``'dask'`` backend).
"""

from ._distributed import ClusterError
from ._halving import HalvingGridSearchCV, HalvingRandomSearchCV
from ._search import GridSearchCV, RandomizedSearchCV, cross_val_score, cross_validate

__all__ = [
    "ClusterError",
    "GridSearchCV",
    "HalvingGridSearchCV",
    "HalvingRandomSearchCV",
    "RandomizedSearchCV",
    "cross_val_score",
    "cross_validate",
]
