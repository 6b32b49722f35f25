"""
==========================================================
Successive halving: a large grid on a small budget
==========================================================

Four hyper-parameters of a small multi-layer perceptron, three values each,
make a grid of 81 candidates: 405 fits with 5-fold cross-validation, each
on four fifths of the data, for a grid search. Most of those candidates are
clearly worse than the best after a few dozen rows and a few epochs.

:class:`sknets.model_selection.HalvingGridSearchCV` (scikit-learn's
successive halving, see :ref:`grid_search`) evaluates every candidate on a
small subsample of the rows, keeps the best third, evaluates those on three
times as many rows, and so on; the fits of each iteration train at once as
batched networks (see :ref:`batched`).
"""

# %%
# Data, pipeline and grid
# -----------------------
# A quarter of the digits is kept aside as a final test set. The grid: 3
# learning rates × 3 widths × 3 L2 penalties × 3 activations.
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
pipe = make_pipeline(MinMaxScaler(), MLPClassifier(batch_size=64, max_iter=20, random_state=0))
param_grid = {
    "mlpclassifier__learning_rate_init": [1e-3, 3e-3, 1e-2],
    "mlpclassifier__hidden_layer_sizes": [(32,), (64,), (128,)],
    "mlpclassifier__alpha": [1e-4, 1e-3, 1e-2],
    "mlpclassifier__activation": ["relu", "tanh", "logistic"],
}
n_candidates = int(np.prod([len(values) for values in param_grid.values()]))
print(f"{n_candidates} candidates, {5 * n_candidates} fits for a 5-fold grid search")

# %%
# The halving search
# ------------------
# ``factor=3`` keeps the best third of the candidates at each iteration and
# triples the rows. scikit-learn's default ``min_resources='exhaust'``
# starts from ``2 × 5 folds × 10 classes = 100`` rows here (80 in each
# training fold: more than the batch of 64, so every fit is batched).
# ``verbose=1`` prints each iteration and its batched training; on a CPU
# the networks of equal widths and activation train together (9 batched
# networks an iteration at most).
import time
import warnings

from sklearn.exceptions import ConvergenceWarning

from sknets.model_selection import HalvingGridSearchCV

search = HalvingGridSearchCV(pipe, param_grid, cv=5, factor=3, random_state=0, verbose=1)
start = time.perf_counter()
with warnings.catch_warnings():
    # many candidates stop at max_iter=20 epochs, by design
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X_train, y_train)
seconds = time.perf_counter() - start

# %%
# What it cost
# ------------
# The iterations, their candidates and rows, and the rows that all fits of
# each trained on, against those of the 405 fits of a grid search.
n_splits = search.n_splits_
for itr, (n, rows) in enumerate(zip(search.n_candidates_, search.n_resources_)):
    print(f"iteration {itr}: {n} candidates x {n_splits} folds on {rows} rows")
halving_rows = sum(n * rows for n, rows in zip(search.n_candidates_, search.n_resources_))
grid_rows = n_candidates * len(X_train)
print(f"training rows of all fits together, per epoch: "
      f"{halving_rows * (n_splits - 1) // n_splits} "
      f"(a grid search: {grid_rows * (n_splits - 1) // n_splits}, "
      f"{grid_rows / halving_rows:.1f}x as many)")
print(f"search time: {seconds:.1f} s")
print("best parameters:", search.best_params_)
print(f"best mean cross-validation accuracy (last iteration): {search.best_score_:.3f}")
test_accuracy = search.score(X_test, y_test)
print(f"accuracy of the refitted best model on the test set: {test_accuracy:.3f}")
assert search.n_candidates_ == [81, 27, 9] and search.n_resources_ == [100, 300, 900]
assert test_accuracy >= 0.95

# %%
# The candidates through the iterations
# -------------------------------------
# ``cv_results_`` has one row per candidate and iteration: ``iter`` and
# ``n_resources`` say which. Each line follows one candidate for as long as
# it was kept; the scores grow with the rows, and the candidates dropped
# early were far behind.
import matplotlib.pyplot as plt
import pandas as pd

results = pd.DataFrame(search.cv_results_)
results["candidate"] = results["params"].apply(lambda p: repr(sorted(p.items())))
scores = results.pivot(index="iter", columns="candidate", values="mean_test_score")

fig, ax = plt.subplots(figsize=(6.5, 4.5))
for name in scores.columns:
    kept = scores[name].dropna()
    final = len(kept) == len(search.n_resources_)
    ax.plot(
        [search.n_resources_[i] for i in kept.index], kept.values, marker="o",
        color="tab:red" if final else "tab:gray", alpha=0.9 if final else 0.35,
        linewidth=1.5 if final else 0.8,
    )
ax.set(
    xscale="log",
    xticks=search.n_resources_,
    xticklabels=[str(n) for n in search.n_resources_],
    xlabel="rows of the iteration (n_resources)",
    ylabel="mean 5-fold accuracy",
    title=f"{n_candidates} candidates halved (red: the last iteration's)",
)
ax.set_ylim(max(0.0, float(np.nanmin(scores.values)) - 0.02), 1.0)
fig.tight_layout()
plt.show()

# %%
# The last iteration
# ------------------
# The 9 candidates that reached 900 rows, best first; the refitted model is
# the first one.
last = results[results["iter"] == results["iter"].max()]
columns = [
    "param_mlpclassifier__learning_rate_init",
    "param_mlpclassifier__hidden_layer_sizes",
    "param_mlpclassifier__alpha",
    "param_mlpclassifier__activation",
    "mean_test_score",
]
print(last.sort_values("mean_test_score", ascending=False)[columns].to_string(index=False))
