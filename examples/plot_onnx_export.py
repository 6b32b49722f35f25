"""
=================================================
Export to ONNX and serve with onnxruntime
=================================================

A fitted pipeline that ends with an sknets estimator can be exported to
`ONNX <https://onnx.ai>`_, a file format that runtimes such as
`onnxruntime <https://onnxruntime.ai>`_ run without Python, scikit-learn or
PyTorch: in a C#, Java or C++ service, in a browser, on a phone.
:mod:`sknets.onnx` registers the estimators with
`skl2onnx <https://onnx.ai/sklearn-onnx/>`_, which converts the
scikit-learn steps around them (here a :class:`~sklearn.preprocessing.MinMaxScaler`).

Here a dense network and a convolutional one learn scikit-learn's 8x8
digits; both are exported, run in onnxruntime, and checked against
``predict`` and ``predict_proba``. It needs the ``onnx`` extra:
``pip install sknets[onnx]``.
"""

# %%
# Train a pipeline
# ----------------
# The data in float32, the precision of the ONNX graph: the network trains
# in float32 too (it follows the input's dtype on a CPU).
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sknets import MLPClassifier

X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=40, random_state=0)
model = make_pipeline(MinMaxScaler(), mlp)
with warnings.catch_warnings():
    # 40 epochs are plenty for this example
    warnings.simplefilter("ignore", ConvergenceWarning)
    model.fit(X_train, y_train)
print(f"test accuracy: {model.score(X_test, y_test):.3f}")

# %%
# Export
# ------
# :func:`sknets.onnx.to_onnx` registers the converters and calls
# ``skl2onnx.to_onnx``; after ``import sknets.onnx``, ``skl2onnx.to_onnx``
# itself works as well. One row of ``X`` gives the input's type and width;
# the number of rows stays free. ``zipmap=False`` asks for the probabilities
# as a matrix rather than as a list of ``{class: probability}`` dicts.
from sknets.onnx import to_onnx

onx = to_onnx(model, X_train[:1], options={id(mlp): {"zipmap": False}})
print(f"{len(onx.SerializeToString()) / 1024:.0f} KiB, operators:",
      sorted({node.op_type for node in onx.graph.node}))

# %%
# The bytes of ``onx.SerializeToString()`` are what a service loads (saved
# with ``open(path, "wb").write(...)``, usually as a ``.onnx`` file).
#
# Serve with onnxruntime
# ----------------------
# One session, called with batches of any size.
import onnxruntime as ort

session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
print("inputs: ", [(i.name, i.type, i.shape) for i in session.get_inputs()])
print("outputs:", [(o.name, o.type, o.shape) for o in session.get_outputs()])
label, proba = session.run(None, {"X": X_test})
print(f"labels equal to predict's: {np.array_equal(label, model.predict(X_test))}")
gap = np.abs(proba - model.predict_proba(X_test)).max()
print(f"largest gap to predict_proba: {gap:.1e}")
assert np.array_equal(label, model.predict(X_test)) and gap < 1e-4

one_label, _ = session.run(None, {"X": X_test[:1]})
print(f"one row: {one_label}")

# %%
# A convolutional network
# -----------------------
# :class:`~sknets.ConvClassifier` goes through PyTorch's ONNX exporter; the
# graph unflattens each row into the 8x8 image the network was fitted on,
# as ``predict`` does. Without ``zipmap=False``, the probabilities come as
# skl2onnx's classifiers give them: one dict per row.
from sknets import ConvClassifier

# Without dropout (which needs many more epochs), 6 epochs are enough here.
conv = ConvClassifier(
    filters=(8, 16),
    hidden_layer_sizes=(32,),
    dropout=0,
    conv_dropout=0,
    learning_rate_init=0.01,
    batch_size=64,
    max_iter=6,
    random_state=0,
)
conv_model = make_pipeline(MinMaxScaler(), conv)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    conv_model.fit(X_train, y_train)
print(f"test accuracy: {conv_model.score(X_test, y_test):.3f}")

conv_session = ort.InferenceSession(
    to_onnx(conv_model, X_train[:1]).SerializeToString(), providers=["CPUExecutionProvider"]
)
conv_label, conv_dicts = conv_session.run(None, {"X": X_test})
print({digit: round(p, 3) for digit, p in conv_dicts[0].items()})
conv_proba = np.array([[row[c] for c in conv.classes_] for row in conv_dicts])
conv_gap = np.abs(conv_proba - conv_model.predict_proba(X_test)).max()
print(f"labels equal to predict's: {np.array_equal(conv_label, conv_model.predict(X_test))}")
print(f"largest gap to predict_proba: {conv_gap:.1e}")
assert np.array_equal(conv_label, conv_model.predict(X_test)) and conv_gap < 1e-4

# %%
# What the served model says
# --------------------------
# A few test digits with the labels onnxruntime gave, and the probability
# of each.
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 8, figsize=(9, 1.7))
for ax, image, digit, p in zip(axes, X_test, conv_label, conv_proba):
    ax.imshow(image.reshape(8, 8), cmap="gray_r")
    ax.set_axis_off()
    ax.set_title(f"{digit} ({p.max():.2f})", fontsize="small")
fig.suptitle("label (probability) from onnxruntime", fontsize="small")
plt.show()
