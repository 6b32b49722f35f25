"""Model selection that trains many sknets networks at once.

Drop-in replacements for scikit-learn's ``GridSearchCV``,
``RandomizedSearchCV``, ``cross_validate`` and ``cross_val_score``: when the
estimator is a sknets MLP (alone or ending a Pipeline), all (candidate,
fold) fits are trained together as one batched network.
"""

from ._search import GridSearchCV, RandomizedSearchCV, cross_val_score, cross_validate

__all__ = ["GridSearchCV", "RandomizedSearchCV", "cross_val_score", "cross_validate"]
