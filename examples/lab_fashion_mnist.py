"""
=================================================
Fashion-MNIST: a convolutional network lab
=================================================

The classic image lab: 70,000 grayscale pictures of 28x28 pixels of
clothes, shoes and bags in 10 classes (Zalando's Fashion-MNIST), 60,000 to
train on and 10,000 to test on. The goal is a test accuracy of at least
0.90 with a small convolutional network, :class:`~sknets.ConvClassifier`.

sknets does not ship the data, so this lab is not run when the
documentation is built. Run it yourself with::

    python examples/lab_fashion_mnist.py /path/to/fashion-mnist

where the folder holds the four files of the Fashion-MNIST release
(``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``, compressed or
not), read by :func:`sknets.datasets.load_fashion_mnist`. Without a folder
on the command line, the lab reads the folder named by the environment
variable ``SKNETS_FASHION_MNIST``, then ``fashion-mnist`` in scikit-learn's
data home (``~/scikit_learn_data`` by default); if none holds the files, it
downloads the data set from OpenML with
:func:`~sklearn.datasets.fetch_openml` (which keeps a copy in the data
home), and stops with a message saying where to put the files when it
cannot.

Training takes seconds per epoch on a GPU; on a CPU, count one to two
minutes per epoch (about 20 minutes for the 15 epochs on one core).
"""

# %%
# Load the data
# -------------
import os
import sys
from pathlib import Path

import numpy as np

from sknets.datasets import FASHION_MNIST_CLASSES as CLASS_NAMES
from sknets.datasets import load_fashion_mnist

HOW_TO_GET_THE_DATA = (
    "Download the four files train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
    "t10k-labels-idx1-ubyte.gz of the Fashion-MNIST release "
    "(https://github.com/zalandoresearch/fashion-mnist) into a folder, then run\n"
    "    python examples/lab_fashion_mnist.py FOLDER\n"
    "or set the environment variable SKNETS_FASHION_MNIST to that folder."
)


def load_from_folder(folder):
    """Train and test parts from the IDX files in ``folder`` (None: the default)."""
    X_train, y_train = load_fashion_mnist(folder, kind="train", return_X_y=True)
    X_test, y_test = load_fashion_mnist(folder, kind="test", return_X_y=True)
    return X_train, X_test, y_train, y_test


def load_from_openml():
    """The same split from OpenML: the first 60,000 images are the training set."""
    from sklearn.datasets import fetch_openml

    X, y = fetch_openml("Fashion-MNIST", version=1, return_X_y=True, as_frame=False)
    X, y = X.astype(np.float32), y.astype(np.int64)
    return X[:60_000], X[60_000:], y[:60_000], y[60_000:]


def load_data(argv):
    """The folder given on the command line, else the default folder, else OpenML."""
    if len(argv) > 1 and argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0)
    folder = argv[1] if len(argv) > 1 else None
    try:
        return load_from_folder(folder)
    except (FileNotFoundError, ValueError) as exc:
        if folder is not None or os.environ.get("SKNETS_FASHION_MNIST"):
            # a folder was named explicitly: say what is wrong with it
            sys.exit(f"Cannot read Fashion-MNIST: {exc}\n\n{HOW_TO_GET_THE_DATA}")
        local_error = exc
    print("No local Fashion-MNIST files; trying to download them from OpenML...")
    try:
        return load_from_openml()
    except Exception as exc:  # offline, or OpenML unavailable
        sys.exit(
            "No Fashion-MNIST data available.\n"
            f"  Local files: {local_error}\n"
            f"  OpenML: {type(exc).__name__}: {exc}\n\n{HOW_TO_GET_THE_DATA}"
        )


X_train, X_test, y_train, y_test = load_data(sys.argv)
print(f"{len(X_train)} training and {len(X_test)} test images of {X_train.shape[1]} pixels")

# %%
# A look at the images
# --------------------
import matplotlib.pyplot as plt

fig, axes = plt.subplots(2, 10, figsize=(12, 3))
for label, column in zip(range(10), axes.T):
    for ax, image in zip(column, X_train[y_train == label][:2]):
        ax.imshow(image.reshape(28, 28), cmap="gray_r")
        ax.set_axis_off()
    column[0].set_title(CLASS_NAMES[label], fontsize="small")
plt.show()

# %%
# The network
# -----------
# The pixels (0 to 255) are divided by 255. Two conv blocks of 32 and 64
# filters (3x3 convolution, batch normalisation, ReLU, 2x2 max-pooling,
# dropout 0.25) turn each 28x28 image into 64 maps of 7x7; a dense layer of
# 128 units with dropout and the softmax output follow. Adam, mini-batches of 128, 15
# epochs. ``verbose=True`` prints the loss after each epoch.
import time
import warnings

from sklearn.exceptions import ConvergenceWarning

from sknets import ConvClassifier

X_train, X_test = X_train / 255.0, X_test / 255.0
model = ConvClassifier(
    input_shape=(1, 28, 28),
    filters=(32, 64),
    conv_dropout=0.25,
    hidden_layer_sizes=(128,),
    dropout=0.3,
    batch_size=128,
    learning_rate_init=0.001,
    max_iter=15,
    random_state=0,
    verbose=True,
)
start = time.perf_counter()
with warnings.catch_warnings():
    # the training loss still decreases after 15 epochs; that is expected
    warnings.simplefilter("ignore", ConvergenceWarning)
    model.fit(X_train, y_train)
seconds = time.perf_counter() - start
print(f"trained {model.n_iter_} epochs in {seconds:.0f} s on {model.net_.device}")

# %%
# Test accuracy
# -------------
accuracy = model.score(X_test, y_test)
print(f"test accuracy: {accuracy:.4f}")
if accuracy < 0.90:
    sys.exit(f"The lab's target is a test accuracy of at least 0.90; got {accuracy:.4f}.")

# %%
# Which classes get confused
# --------------------------
# Shirts, T-shirts, pullovers and coats look alike at 28x28 pixels: most of
# the mistakes are between them.
from sklearn.metrics import ConfusionMatrixDisplay

fig, ax = plt.subplots(figsize=(8, 8))
ConfusionMatrixDisplay.from_estimator(
    model,
    X_test,
    y_test,
    display_labels=CLASS_NAMES,
    xticks_rotation="vertical",
    cmap="Blues",
    colorbar=False,
    ax=ax,
)
ax.set_title(f"Fashion-MNIST test set, accuracy {accuracy:.3f}")
fig.tight_layout()
plt.show()

# %%
# Keep the model
# --------------
# A fitted estimator pickles like any scikit-learn estimator; one trained on
# a GPU loads on a machine without one.
import pickle

path = Path("fashion_mnist_convnet.pkl")
path.write_bytes(pickle.dumps(model))
restored = pickle.loads(path.read_bytes())
assert np.array_equal(restored.predict(X_test[:100]), model.predict(X_test[:100]))
print(f"saved to {path.resolve()}")
