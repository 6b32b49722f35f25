"""
=====================================================
k-fold versus iterated k-fold cross-validation
=====================================================

How well does a small network predict the progression of diabetes one year
after a baseline visit? :func:`~sklearn.datasets.load_diabetes` has only 442
patients, so the answer depends on which patients end up in the test folds.

*k-fold* cross-validation (:class:`~sklearn.model_selection.KFold`) splits
the data once into k folds and gives k test scores. *Iterated* k-fold
(:class:`~sklearn.model_selection.RepeatedKFold`) repeats that with a new
shuffle each time and gives ``k * n_repeats`` scores: their mean is a
steadier estimate, and the spread between repeats shows how much a single
k-fold run owes to its split.

The model is a :class:`~sklearn.pipeline.Pipeline` of
:class:`~sklearn.preprocessing.MinMaxScaler` and
:class:`~sknets.MLPRegressor`, scored by the mean absolute error
(``scoring='neg_mean_absolute_error'``; scikit-learn maximises scores, so
errors come out negated).
"""

# %%
# The data and the model
# ----------------------
# The scaler is part of the pipeline, so it is fitted on the training folds
# only and the test folds never leak into it.
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sknets import MLPRegressor

X, y = load_diabetes(return_X_y=True)
print(f"{X.shape[0]} patients, {X.shape[1]} features; target from {y.min():.0f} to {y.max():.0f}")

model = make_pipeline(
    MinMaxScaler(),
    MLPRegressor(
        hidden_layer_sizes=(32,),
        learning_rate_init=0.01,
        max_iter=300,
        random_state=0,
    ),
)

# %%
# k-fold and iterated k-fold
# --------------------------
# :func:`sknets.model_selection.cross_val_score` returns what scikit-learn's
# does, but trains the networks of all folds at once as one batched network:
# the 25 fits of the iterated k-fold cost little more than one.
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, RepeatedKFold

from sknets.model_selection import cross_val_score

n_splits, n_repeats = 5, 5
kfold = KFold(n_splits=n_splits, shuffle=True, random_state=0)
repeated = RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=0)

with warnings.catch_warnings():
    # some folds use all max_iter epochs; that is fine for this comparison
    warnings.simplefilter("ignore", ConvergenceWarning)
    mae_kfold = -cross_val_score(model, X, y, cv=kfold, scoring="neg_mean_absolute_error")
    mae_repeated = -cross_val_score(
        model, X, y, cv=repeated, scoring="neg_mean_absolute_error", verbose=1
    )

# the fold scores of repeat r are mae_repeated[r * n_splits:(r + 1) * n_splits]
per_repeat = mae_repeated.reshape(n_repeats, n_splits).mean(axis=1)
print(f"k-fold ({n_splits} folds):  MAE {mae_kfold.mean():.1f} +/- {mae_kfold.std():.1f}")
print(
    f"iterated k-fold ({n_repeats} x {n_splits}): MAE {mae_repeated.mean():.1f} "
    f"+/- {mae_repeated.std():.1f}"
)
print("mean MAE of each repeat:", np.round(per_repeat, 1))

# %%
# A baseline
# ----------
# Predicting the training mean for everybody gives the error to beat.
from sklearn.dummy import DummyRegressor
from sklearn.model_selection import cross_val_score as sk_cross_val_score

mae_dummy = -sk_cross_val_score(
    DummyRegressor(), X, y, cv=repeated, scoring="neg_mean_absolute_error"
)
print(f"predicting the mean: MAE {mae_dummy.mean():.1f}")
assert mae_repeated.mean() < mae_dummy.mean() - 10

# %%
# The fold scores
# ---------------
# Left: every test fold's error; the k-fold gives 5 points, the iterated
# k-fold 25, one colour per repeat. Right: the mean error of each repeat,
# i.e. what five different single k-fold runs would have reported, next to
# the k-fold estimate above and the mean over all 25 folds.
import matplotlib.pyplot as plt

rng = np.random.default_rng(0)
colours = [plt.cm.tab10(r) for r in range(n_repeats)]
fig, (ax_folds, ax_means) = plt.subplots(
    1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [3, 2]}
)
jitter = rng.uniform(-0.08, 0.08, (2, n_repeats, n_splits))
ax_folds.scatter(jitter[0, 0], mae_kfold, color="black", label="KFold")
for r in range(n_repeats):
    scores = mae_repeated[r * n_splits : (r + 1) * n_splits]
    label = "RepeatedKFold (a colour per repeat)" if r == 0 else None
    ax_folds.scatter(1 + jitter[1, r], scores, color=colours[r], label=label)
for x, scores in [(0, mae_kfold), (1, mae_repeated)]:
    ax_folds.hlines(scores.mean(), x - 0.25, x + 0.25, color="gray", linestyle="--")
ax_folds.axhline(mae_dummy.mean(), color="tab:red", linestyle=":", label="predicting the mean")
ax_folds.set(
    xticks=[0, 1],
    xticklabels=[f"k-fold\n{n_splits} scores", f"iterated k-fold\n{n_splits * n_repeats} scores"],
    xlim=(-0.5, 1.5),
    ylabel="mean absolute error of a test fold",
    title="Test-fold errors (dashed: their mean)",
)
ax_folds.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, 0.94))

ax_means.scatter(np.arange(1, n_repeats + 1), per_repeat, color=colours, s=60, zorder=3)
ax_means.axhline(mae_repeated.mean(), color="gray", linestyle="--", label="mean of the 25 folds")
ax_means.axhline(mae_kfold.mean(), color="black", linestyle=":", label="the k-fold estimate")
ax_means.set(
    xticks=np.arange(1, n_repeats + 1),
    xlabel="repeat",
    ylabel="mean absolute error",
    ylim=(mae_repeated.mean() - 2.5, mae_repeated.mean() + 2.5),
    title="One k-fold estimate per repeat",
)
ax_means.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %%
# Each point on the right is an estimate that a single k-fold run could have
# reported; how far apart they lie is the luck of the split, which the mean
# over all repeats averages away. The fold-to-fold spread on the left does
# not shrink with more repeats: it measures how much the error varies between
# groups of patients, and more repeats only measure it better.
