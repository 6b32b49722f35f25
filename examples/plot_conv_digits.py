"""
==================================================
A convolutional network on the digits
==================================================

:class:`~sknets.ConvClassifier` is a small VGG-style convolutional network
(convolution, batch normalisation, ReLU and max-pooling blocks, then a dense
head) that takes flattened images, so that it fits in a scikit-learn
:class:`~sklearn.pipeline.Pipeline` after a scaler like any other
classifier.

Here it learns scikit-learn's 8x8 handwritten digits, and a confusion matrix
(:class:`~sklearn.metrics.ConfusionMatrixDisplay`) shows which digits it
still mixes up.
"""

# %%
# The data
# --------
# 1,797 images of 8x8 pixels with values 0 to 16, one flattened image per
# row of ``X``.
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

digits = load_digits()
X_train, X_test, y_train, y_test = train_test_split(
    digits.data, digits.target, test_size=0.3, stratify=digits.target, random_state=0
)
print(f"{len(X_train)} training and {len(X_test)} test images of shape {digits.images.shape[1:]}")

fig, axes = plt.subplots(1, 10, figsize=(10, 1.4))
for digit, ax in enumerate(axes):
    ax.imshow(digits.images[digits.target == digit][0], cmap="gray_r")
    ax.set_axis_off()
    ax.set_title(str(digit))
plt.show()

# %%
# The pipeline
# ------------
# ``input_shape=(1, 8, 8)`` says how to unflatten a row: one channel of 8x8
# pixels (a width of 64, a perfect square, would be read that way anyway).
# Two conv blocks of 32 and 64 filters pool the images to 4x4 and then 2x2
# before a dense layer of 128 units.
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sknets import ConvClassifier

model = make_pipeline(
    MinMaxScaler(),
    ConvClassifier(
        input_shape=(1, 8, 8),
        filters=(32, 64),
        hidden_layer_sizes=(128,),
        batch_size=64,
        max_iter=15,
        random_state=0,
    ),
)
with warnings.catch_warnings():
    # 15 epochs are enough here, even if the training loss still improves
    warnings.simplefilter("ignore", ConvergenceWarning)
    model.fit(X_train, y_train)
conv = model[-1]
print(f"trained {conv.n_iter_} epochs on {conv.net_.device}; input shape {conv.input_shape_}")
print(conv.net_.module_)

accuracy = model.score(X_test, y_test)
print(f"test accuracy: {accuracy:.3f}")
assert accuracy >= 0.97

# %%
# The confusion matrix
# --------------------
# Rows are the true digits and columns the predicted ones: everything off
# the diagonal is a mistake.
from sklearn.metrics import ConfusionMatrixDisplay

fig, ax = plt.subplots(figsize=(6, 6))
ConfusionMatrixDisplay.from_estimator(
    model, X_test, y_test, ax=ax, cmap="Blues", colorbar=False
)
ax.set_title(f"ConvClassifier on the digits, test accuracy {accuracy:.3f}")
plt.show()

# %%
# The mistakes
# ------------
# The test images the network got wrong, with its prediction and the truth.
import numpy as np

predicted = model.predict(X_test)
wrong = np.flatnonzero(predicted != y_test)
print(f"{len(wrong)} of {len(y_test)} test images misclassified")
if len(wrong):
    shown = wrong[:10]
    fig, axes = plt.subplots(1, len(shown), figsize=(1.1 * len(shown), 1.6), squeeze=False)
    for ax, i in zip(axes[0], shown):
        ax.imshow(X_test[i].reshape(8, 8), cmap="gray_r")
        ax.set_axis_off()
        ax.set_title(f"{predicted[i]} ({y_test[i]})", fontsize="small")
    fig.suptitle("predicted (true)", fontsize="small")
    plt.show()
