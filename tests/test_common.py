"""scikit-learn's estimator checks over every public estimator.

Every check runs on each estimator with its default ``precision='auto'``
(float64 data trains in float64, as in scikit-learn), with no expected
failures. The fast settings only shrink the networks and epochs for the
checks' tiny data sets; ``test_default_estimators`` (marked slow) runs the
checks on the default-constructed estimators.

One gap is left, and stated rather than hidden as an expected failure:
``check_sample_weight_equivalence_on_dense_data`` cannot hold for
ConvClassifier's default dropout (one mask per row: a repeated row gets
two masks, a weighted row one) and batch normalisation (unweighted batch
statistics). That check runs on a ConvClassifier without either; the MLPs
pass it with their defaults.
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sknets import ConvClassifier, MLPClassifier, MLPRegressor

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
]


WEIGHT_CHECK = "check_sample_weight_equivalence_on_dense_data"
CONV_WITHOUT_DROPOUT_OR_BN = ConvClassifier(
    batch_norm=False, dropout=0.0, conv_dropout=0.0, **CONV_FAST
)


def _name(check):
    return getattr(check, "func", check).__name__


def _select(estimators, keep):
    mark = parametrize_with_checks(estimators)
    return [
        pytest.param(est, check, id=f"{est!r}-{_name(check)}")
        for est, check in mark.args[1]
        if keep(est, _name(check))
    ]


def _not_conv_weights(est, name):
    return not (isinstance(est, ConvClassifier) and name == WEIGHT_CHECK)


@pytest.mark.parametrize("estimator, check", _select(ESTIMATORS, _not_conv_weights))
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "estimator, check",
    _select([CONV_WITHOUT_DROPOUT_OR_BN], lambda est, name: name == WEIGHT_CHECK),
)
def test_conv_sample_weight_equivalence(estimator, check):
    check(estimator)


@pytest.mark.slow
@pytest.mark.parametrize(
    "estimator, check",
    _select([MLPClassifier(), MLPRegressor(), ConvClassifier()], _not_conv_weights),
)
def test_default_estimators(estimator, check):
    check(estimator)
