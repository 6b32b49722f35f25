"""
=================================================
Forward propagation by hand with numpy
=================================================

A fitted :class:`~sknets.MLPClassifier` exposes its weights exactly as
scikit-learn's does: ``coefs_[i]`` is the weight matrix from layer ``i`` to
layer ``i + 1``, of shape ``(n_units_in, n_units_out)``, and
``intercepts_[i]`` the bias vector of layer ``i + 1``. With them, the
forward pass is a few lines of numpy:

* each hidden layer: a linear combination ``a @ W + b`` followed by the
  activation (ReLU here, ``max(z, 0)``);
* the output layer: a linear combination followed by the softmax (several
  classes) or the logistic sigmoid (two classes, a single output unit).

This example recomputes ``predict_proba`` that way, for a multiclass and a
binary problem, and checks that the two agree.
"""

# %%
# Fit two small networks
# ----------------------
import warnings

import numpy as np
from sklearn.datasets import load_iris, make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import MinMaxScaler

from sknets import MLPClassifier

X_iris, y_iris = load_iris(return_X_y=True)
X_iris = MinMaxScaler().fit_transform(X_iris)
X_moons, y_moons = make_moons(n_samples=300, noise=0.2, random_state=0)

with warnings.catch_warnings():
    # whether training has fully converged does not matter here
    warnings.simplefilter("ignore", ConvergenceWarning)
    iris_net = MLPClassifier(
        hidden_layer_sizes=(8, 8), learning_rate_init=0.01, max_iter=300, random_state=0
    ).fit(X_iris, y_iris)
    moons_net = MLPClassifier(
        hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=300, random_state=0
    ).fit(X_moons, y_moons)

for name, net in [("iris", iris_net), ("moons", moons_net)]:
    shapes = [W.shape for W in net.coefs_]
    print(f"{name}: weight shapes {shapes}, output activation {net.out_activation_!r}")

# %%
# The forward pass in numpy
# -------------------------
# Three classes give three output units and a softmax; two classes give a
# single output unit, the probability of ``classes_[1]``, through the
# logistic sigmoid.


def relu(z):
    return np.maximum(z, 0)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)  # for numerical stability
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def forward(net, X):
    """predict_proba of a fitted ReLU MLPClassifier, recomputed with numpy."""
    a = X
    for W, b in zip(net.coefs_[:-1], net.intercepts_[:-1]):
        a = relu(a @ W + b)
    z = a @ net.coefs_[-1] + net.intercepts_[-1]
    if net.out_activation_ == "softmax":
        return softmax(z)
    p = sigmoid(z)  # shape (n_samples, 1): the probability of classes_[1]
    return np.hstack([1 - p, p])


# %%
# Compare with predict_proba
# --------------------------
# The weights are float32 numbers. On the CPU, sknets predicts through a
# float64 copy of the network, as numpy computes here, and the two agree to
# about 1e-15; on a GPU the network predicts in float32 and they agree to
# about 1e-7. Either is far below any difference that could change a
# prediction.
results = {}
for name, net, X in [("iris", iris_net, X_iris), ("moons", moons_net, X_moons)]:
    by_hand = forward(net, X)
    by_net = net.predict_proba(X)
    diff = np.abs(by_hand - by_net).max()
    same_labels = np.array_equal(net.classes_[by_hand.argmax(axis=1)], net.predict(X))
    results[name] = by_hand, by_net
    print(f"{name}: max |difference| = {diff:.2e}, same predictions: {same_labels}")
    assert np.allclose(by_hand, by_net, atol=1e-5)

# %%
# The probabilities side by side: every point lies on the diagonal.
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, (name, (by_hand, by_net)) in zip(axes, results.items()):
    ax.plot([0, 1], [0, 1], color="lightgray", zorder=0)
    ax.scatter(by_net.ravel(), by_hand.ravel(), s=8)
    ax.set(
        xlabel="predict_proba",
        ylabel="numpy forward pass",
        title=name,
        aspect="equal",
    )
fig.tight_layout()
plt.show()
