"""
===========================================================
Grid search over learning rate and hidden units
===========================================================

Two hyper-parameters matter most for a small multi-layer perceptron: the
learning rate of its optimizer (``learning_rate_init``) and the number of
hidden units (``hidden_layer_sizes``). This example searches a grid of both
with 5-fold cross-validation on scikit-learn's handwritten digits and shows
the mean test score of every pair as a heatmap.

:class:`sknets.model_selection.GridSearchCV` takes the same arguments and
gives the same results as scikit-learn's
:class:`~sklearn.model_selection.GridSearchCV`; it trains the networks of all
candidates and folds together, stacked into batched networks, which is much
faster than one fit after the other (see :ref:`batched`).
"""

# %%
# Data and pipeline
# -----------------
# A quarter of the images is kept aside as a final test set; the search only
# sees the other three quarters. The pixels (0 to 16) are scaled to [0, 1] by
# :class:`~sklearn.preprocessing.MinMaxScaler` inside the pipeline.
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sknets import MLPClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
pipe = make_pipeline(MinMaxScaler(), MLPClassifier(max_iter=30, random_state=0))

# %%
# The search
# ----------
# Parameters of a pipeline step are named ``<step>__<parameter>``. With
# ``verbose=1`` the search says how many fits it trained as batched networks.
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold

from sknets.model_selection import GridSearchCV

learning_rates = [1e-4, 1e-3, 1e-2, 1e-1]
hidden_sizes = [(8,), (16,), (32,), (64,), (128,)]
param_grid = {
    "mlpclassifier__learning_rate_init": learning_rates,
    "mlpclassifier__hidden_layer_sizes": hidden_sizes,
}
search = GridSearchCV(
    pipe, param_grid, cv=KFold(5, shuffle=True, random_state=0), verbose=1
)
with warnings.catch_warnings():
    # the slow learning rates stop at max_iter=30 epochs, by design
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X_train, y_train)

print("best parameters:", search.best_params_)
print(f"best mean cross-validation accuracy: {search.best_score_:.3f}")
test_accuracy = search.score(X_test, y_test)
print(f"accuracy of the refitted best model on the test set: {test_accuracy:.3f}")
assert search.best_score_ >= 0.95 and test_accuracy >= 0.95

# %%
# The results table
# -----------------
# ``cv_results_`` is scikit-learn's: one entry per candidate, with the score
# of each fold, their mean and standard deviation and the rank.
import pandas as pd

results = pd.DataFrame(search.cv_results_)
columns = [
    "param_mlpclassifier__learning_rate_init",
    "param_mlpclassifier__hidden_layer_sizes",
    "mean_test_score",
    "std_test_score",
    "rank_test_score",
]
print(results[columns].sort_values("rank_test_score").head(8).to_string(index=False))

# %%
# A heatmap of the mean test scores
# ---------------------------------
# ``cv_results_`` lists the candidates in the order of
# :class:`~sklearn.model_selection.ParameterGrid`, which varies the last
# parameter name in sorted order fastest; looking each pair up by value
# avoids depending on that order.
import matplotlib.pyplot as plt
import numpy as np

scores = np.empty((len(hidden_sizes), len(learning_rates)))
for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
    row = hidden_sizes.index(params["mlpclassifier__hidden_layer_sizes"])
    col = learning_rates.index(params["mlpclassifier__learning_rate_init"])
    scores[row, col] = score

fig, ax = plt.subplots(figsize=(6, 4.5))
image = ax.imshow(scores, cmap="viridis", vmin=max(0.5, scores.min()), vmax=1.0, origin="lower")
for row in range(scores.shape[0]):
    for col in range(scores.shape[1]):
        value = scores[row, col]
        ax.text(
            col,
            row,
            f"{value:.3f}",
            ha="center",
            va="center",
            color="black" if value > 0.85 else "white",
        )
ax.set(
    xticks=range(len(learning_rates)),
    xticklabels=[f"{lr:g}" for lr in learning_rates],
    yticks=range(len(hidden_sizes)),
    yticklabels=[str(h[0]) for h in hidden_sizes],
    xlabel="learning_rate_init",
    ylabel="hidden units",
    title="Mean 5-fold accuracy, 30 epochs",
)
fig.colorbar(image, ax=ax, label="mean test accuracy")
fig.tight_layout()
plt.show()

# %%
# With 30 epochs, a learning rate of ``1e-4`` is far too slow for any width,
# and ``1e-3`` has not finished learning either, least of all in the small
# layers. From ``1e-2`` on, every layer of a few dozen units or more lands
# within a point of the best: past that size, the learning rate matters more
# than the width.
