"""sknets: PyTorch neural networks as true scikit-learn estimators.

``MLPClassifier`` and ``MLPRegressor`` are drop-in replacements for
scikit-learn's, and ``ConvClassifier`` and ``ConvRegressor`` add convolutional
networks for images and signals; each trains a PyTorch network through
skorch, on the GPU when there is one.
"""

from ._conv import ConvClassifier, ConvRegressor
from ._mlp import MLPClassifier, MLPRegressor

__all__ = [
    "ConvClassifier",
    "ConvRegressor",
    "MLPClassifier",
    "MLPRegressor",
    "TRUSTED_TYPES",
    "__version__",
]

# A saved sknets estimator asks skops to trust its public estimators and
# nothing else: their state is plain data (sknets/_state.py). Users pass the
# list as skops.io.load(file, trusted=sknets.TRUSTED_TYPES), after checking a
# file they did not make with skops.io.get_untrusted_types.

#: The types to pass to ``skops.io.load(file, trusted=sknets.TRUSTED_TYPES)``.
TRUSTED_TYPES = [
    f"{cls.__module__}.{cls.__qualname__}"
    for cls in (ConvClassifier, ConvRegressor, MLPClassifier, MLPRegressor)
]

__version__ = "0.1.0"
