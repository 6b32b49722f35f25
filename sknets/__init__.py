"""sknets: PyTorch neural networks as true scikit-learn estimators.

``MLPClassifier`` and ``MLPRegressor`` are drop-in replacements for
scikit-learn's, and ``ConvClassifier`` and ``ConvRegressor`` add convolutional
networks for images and signals; each trains a PyTorch network through
skorch, on the GPU when there is one.
"""

from ._conv import ConvClassifier, ConvRegressor
from ._mlp import MLPClassifier, MLPRegressor

__all__ = ["ConvClassifier", "ConvRegressor", "MLPClassifier", "MLPRegressor", "__version__"]

__version__ = "0.1.0"
