"""
=====================================================
Regression on signals with a convolutional network
=====================================================

:class:`~sknets.ConvRegressor` is the network of
:class:`~sknets.ConvClassifier` with a linear output: it predicts numbers
from images or 1-D signals. Convolutions share their weights across
positions, so a pattern is recognised wherever it is; a fully connected
network has to learn it again at every offset.

Here each signal is noise holding one short wave packet, of a random
height, somewhere along it. Both networks learn to read two numbers off a
signal at once (multi-output regression): how high the packet is and
where it starts.
"""

# %%
# The data
# --------
# 1,200 signals of 60 values: Gaussian noise plus a Hann-windowed sine of 16
# values (two periods) scaled by an amplitude between 0.5 and 2, placed at a
# random offset. The targets are the amplitude and the offset (scaled to
# [0, 1]).
import matplotlib.pyplot as plt
import numpy as np

rng = np.random.default_rng(0)
n, length, width = 1200, 60, 16
t = np.arange(width)
packet = np.hanning(width) * np.sin(2 * np.pi * 2 * t / width)
amplitude = rng.uniform(0.5, 2.0, size=n)
start = rng.integers(length - width + 1, size=n)
X = 0.3 * rng.standard_normal((n, length))
for row, a, s in zip(X, amplitude, start, strict=True):
    row[s : s + width] += a * packet
Y = np.column_stack([amplitude, start / (length - width)])
X_train, X_test, Y_train, Y_test = X[:600], X[600:], Y[:600], Y[600:]

fig, axes = plt.subplots(3, 1, figsize=(7, 4.5), sharex=True)
for ax, i in zip(axes, range(3), strict=True):
    ax.plot(X[i], color="0.3", lw=1)
    ax.axvspan(start[i], start[i] + width - 1, color="tab:orange", alpha=0.2)
    ax.set_ylabel(f"a = {amplitude[i]:.2f}", fontsize="small")
axes[-1].set_xlabel("position")
fig.suptitle("three signals; the shaded span holds the wave packet")
plt.show()

# %%
# Two networks
# ------------
# The convolutional network with its defaults: a width of 60 is not a
# perfect square, so each row is read as a one-channel signal (1-D
# convolutions). The perceptron gets the same rows.
import time
import warnings

from sklearn.exceptions import ConvergenceWarning

from sknets import ConvRegressor, MLPRegressor

models = {
    "ConvRegressor": ConvRegressor(random_state=0),
    "MLPRegressor": MLPRegressor(random_state=0),
}
scores = {}
for name, model in models.items():
    begin = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, Y_train)
    scores[name] = model.score(X_test, Y_test)
    print(
        f"{name}: test R^2 {scores[name]:.3f} "
        f"({model.n_iter_} epochs, {time.perf_counter() - begin:.1f} s)"
    )
print("input shape read by the convnet:", models["ConvRegressor"].input_shape_)
assert scores["ConvRegressor"] > scores["MLPRegressor"] + 0.1

# %%
# Predictions against the truth
# -----------------------------
# Each point is a test signal; the diagonal is a perfect prediction. The
# convolutional network's points hug it for both targets, the perceptron's
# scatter around it.
from sklearn.metrics import r2_score

fig, axes = plt.subplots(2, 2, figsize=(7.5, 7), sharex="col", sharey="col")
for row, (name, model) in zip(axes, models.items(), strict=True):
    predicted = model.predict(X_test)
    for ax, k, target in zip(row, range(2), ["amplitude", "offset (scaled)"], strict=True):
        lo, hi = Y_test[:, k].min(), Y_test[:, k].max()
        ax.scatter(Y_test[:, k], predicted[:, k], s=6, alpha=0.5)
        ax.plot([lo, hi], [lo, hi], color="k", lw=1)
        r2 = r2_score(Y_test[:, k], predicted[:, k])
        ax.set_title(f"{name}: {target}, R^2 {r2:.2f}", fontsize="small")
        ax.set_xlabel("true")
        ax.set_ylabel("predicted")
fig.tight_layout()
plt.show()
