"""scikit-learn's estimator checks over every public estimator.

Every check runs on each estimator with its default ``precision='auto'``
(float64 data trains in float64, as in scikit-learn), with no expected
failures. The fast settings only shrink the networks and epochs for the
checks' tiny data sets; ``test_default_estimators`` (marked slow) runs the
checks on the default-constructed estimators. The two sparse-format checks
of the L-BFGS settings, which refit on every sparse format (about 12 s
each), are marked slow too (``tests/conftest.py``): CI runs them with the
slow tests.

Nothing is excluded and nothing is an expected failure. In particular
``check_sample_weight_equivalence_on_dense_data`` holds for ConvClassifier's
defaults: its dropout masks are keyed by the sample (a repeated row gets the
mask of its weighted original) and its batch norms use weighted statistics.
ConvRegressor's defaults have neither dropout nor batch norm, so its fast
settings switch batch norm on, for the checks to cover the weighted
statistics of a regressor too.
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sknets import ConvClassifier, ConvRegressor, MLPClassifier, MLPRegressor

# Small, fast settings; the checks run on tiny data sets.
FAST = dict(hidden_layer_sizes=(16,), max_iter=100, learning_rate_init=0.01, device="cpu")
CONV_FAST = dict(
    filters=(4,), hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.01, device="cpu"
)

ESTIMATORS = [
    MLPClassifier(**FAST),
    MLPRegressor(**FAST),
    MLPClassifier(solver="lbfgs", **FAST),
    MLPRegressor(solver="lbfgs", **FAST),
    MLPClassifier(solver="sgd", **FAST),
    ConvClassifier(**CONV_FAST),
    ConvRegressor(batch_norm=True, **CONV_FAST),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks([MLPClassifier(), MLPRegressor(), ConvClassifier(), ConvRegressor()])
def test_default_estimators(estimator, check):
    check(estimator)
