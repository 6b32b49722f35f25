"""
==============================================
Training curves: loss and accuracy per epoch
==============================================

Keras' ``model.fit`` returns a ``History`` whose ``loss``, ``val_loss``,
``accuracy`` and ``val_accuracy`` make the two classic plots of a training
run. A sknets estimator keeps the same curves as fitted attributes, the
scikit-learn way:

- ``loss`` is ``loss_curve_`` (also ``net_.history[:, "train_loss"]``);
- ``val_loss`` is ``validation_loss_curve_`` (also
  ``net_.history[:, "valid_loss"]``);
- ``val_accuracy`` is ``validation_scores_``;
- ``accuracy``, the training accuracy, is not kept: score the training data
  after each epoch (the second part below).

The validation curves exist with ``early_stopping=True``, which holds out
``validation_fraction`` of the training data, as Keras' ``validation_split``
does. Here an :class:`~sknets.MLPClassifier` learns scikit-learn's digits.
"""

# %%
# The curves a fit keeps
# ----------------------
# ``early_stopping=True`` holds out 10% of the training rows at random,
# scores them after each epoch, stops once the validation accuracy has not
# improved for ``n_iter_no_change`` epochs and keeps the weights of the best
# epoch, as Keras' ``EarlyStopping(restore_best_weights=True)``.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sknets import MLPClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
model = make_pipeline(
    MinMaxScaler(),
    MLPClassifier(
        hidden_layer_sizes=(64,),
        learning_rate_init=0.01,
        early_stopping=True,
        n_iter_no_change=10,
        random_state=0,
    ),
)
model.fit(X_train, y_train)
clf = model[-1]
best = int(np.argmax(clf.validation_scores_)) + 1
print(f"{clf.n_iter_} epochs; best validation accuracy {clf.best_validation_score_:.3f} "
      f"at epoch {best}; test accuracy {model.score(X_test, y_test):.3f}")

epochs = np.arange(1, clf.n_iter_ + 1)
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
ax_loss.plot(epochs, clf.loss_curve_, label="training")
ax_loss.plot(epochs, clf.validation_loss_curve_, label="validation")
ax_loss.set(xlabel="epoch", ylabel="log loss", yscale="log", title="Loss")
ax_acc.plot(epochs, clf.validation_scores_, color="C1", label="validation")
ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
for ax in (ax_loss, ax_acc):
    ax.axvline(best, color="grey", linestyle=":", label="best epoch (weights kept)")
    ax.legend()
plt.tight_layout()
plt.show()

assert len(clf.validation_loss_curve_) == len(clf.validation_scores_) == clf.n_iter_
assert clf.net_.history[:, "valid_loss"] == clf.validation_loss_curve_
assert model.score(X_test, y_test) >= 0.95

# %%
# All four Keras curves, one epoch at a time
# ------------------------------------------
# Keras reports the training accuracy of each epoch as a running average
# over its batches. sknets does not compute it while training (it would cost
# a pass over the data per epoch); score the training data after each epoch
# instead, with ``partial_fit`` training one epoch per call, and a validation
# set of your own (Keras' ``validation_data``). The log loss of the
# validation set is scikit-learn's :func:`~sklearn.metrics.log_loss`.
from sklearn.metrics import log_loss

X_fit, X_val, y_fit, y_val = train_test_split(
    X_train, y_train, test_size=0.2, stratify=y_train, random_state=0
)
scaler = MinMaxScaler().fit(X_fit)
X_fit, X_val = scaler.transform(X_fit), scaler.transform(X_val)

clf = MLPClassifier(hidden_layer_sizes=(64,), learning_rate_init=0.01, random_state=0)
history = {"loss": [], "val_loss": [], "accuracy": [], "val_accuracy": []}
for _ in range(30):
    clf.partial_fit(X_fit, y_fit, classes=np.unique(y))
    history["loss"].append(clf.loss_)  # the epoch's mean training loss
    history["val_loss"].append(log_loss(y_val, clf.predict_proba(X_val), labels=clf.classes_))
    history["accuracy"].append(clf.score(X_fit, y_fit))
    history["val_accuracy"].append(clf.score(X_val, y_val))

epochs = np.arange(1, len(history["loss"]) + 1)
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
ax_loss.plot(epochs, history["loss"], label="training")
ax_loss.plot(epochs, history["val_loss"], label="validation")
ax_loss.set(xlabel="epoch", ylabel="log loss", yscale="log", title="Loss")
ax_acc.plot(epochs, history["accuracy"], label="training")
ax_acc.plot(epochs, history["val_accuracy"], label="validation")
ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
for ax in (ax_loss, ax_acc):
    ax.legend()
plt.tight_layout()
plt.show()
print(f"after {len(epochs)} epochs: training accuracy {history['accuracy'][-1]:.3f}, "
      f"validation accuracy {history['val_accuracy'][-1]:.3f}")

# %%
# The training accuracy climbs to 1 while the validation accuracy levels
# off: the gap between the two curves is the overfitting that early
# stopping, ``alpha`` or ``dropout`` keep in check.
assert history["accuracy"][-1] >= history["val_accuracy"][-1] >= 0.95
assert history["loss"][-1] < history["loss"][0]
