"""sknets: PyTorch neural networks as true scikit-learn estimators.

``MLPClassifier`` and ``MLPRegressor`` are drop-in replacements for
scikit-learn's, and ``ConvClassifier`` adds a convolutional classifier; each
trains a PyTorch network through skorch, on the GPU when there is one.
"""

from ._conv import ConvClassifier
from ._mlp import MLPClassifier, MLPRegressor

__all__ = ["ConvClassifier", "MLPClassifier", "MLPRegressor", "__version__"]

__version__ = "0.1.0"
