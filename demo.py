"""sknets demo: the scikit-learn workflow of a classic deep-learning lab.

On scikit-learn's digits data set (1,797 8x8 images, 10 classes):

1. a ``Pipeline(MinMaxScaler(), MLPClassifier(...))``;
2. its k-fold (``KFold``) and iterated k-fold (``RepeatedKFold``) scores;
3. a ``GridSearchCV`` over learning rate x hidden units (sknets' own, which
   trains every candidate and fold together as one batched network);
4. the tuned model on a held-out test set,

then prints a short results table. It trains on the GPU when there is one.

Run with ``python demo.py`` (``--quick`` for a shorter run).
"""

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, RepeatedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from sknets import MLPClassifier

# scikit-learn's GridSearchCV and cross_val_score, same signatures and
# results, training all their fits at once as one batched network
from sknets.model_selection import GridSearchCV, cross_val_score


def main(quick=False):
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    print(f"sknets demo on {name} (torch {torch.__version__})\n")

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    epochs = 10 if quick else 30
    model = Pipeline(
        [
            ("scale", MinMaxScaler()),
            ("mlp", MLPClassifier(hidden_layer_sizes=(64,), max_iter=epochs, random_state=0)),
        ]
    )
    rows = []

    start = time.perf_counter()
    kfold = cross_val_score(model, X_train, y_train, cv=KFold(5, shuffle=True, random_state=0))
    rows.append(("5-fold CV accuracy", kfold, time.perf_counter() - start))

    start = time.perf_counter()
    repeats = 2 if quick else 3
    cv = RepeatedKFold(n_splits=5, n_repeats=repeats, random_state=0)
    iterated = cross_val_score(model, X_train, y_train, cv=cv)
    rows.append((f"iterated 5-fold x {repeats} accuracy", iterated, time.perf_counter() - start))

    grid = {
        "mlp__learning_rate_init": [1e-3, 1e-2] if quick else [1e-3, 3e-3, 1e-2],
        "mlp__hidden_layer_sizes": [(32,), (128,)] if quick else [(32,), (64,), (128,)],
    }
    start = time.perf_counter()
    search = GridSearchCV(model, grid, cv=KFold(5, shuffle=True, random_state=0))
    search.fit(X_train, y_train)
    grid_seconds = time.perf_counter() - start
    best = search.best_index_
    rows.append(
        (
            "grid search: best CV accuracy",
            np.array([search.cv_results_[f"split{k}_test_score"][best] for k in range(5)]),
            grid_seconds,
        )
    )
    test_accuracy = search.score(X_test, y_test)

    print(f"{'step':<36} {'mean':>7} {'std':>7} {'folds':>6} {'seconds':>8}")
    for label, scores, seconds in rows:
        print(
            f"{label:<36} {scores.mean():7.4f} {scores.std():7.4f} "
            f"{len(scores):6d} {seconds:8.2f}"
        )
    params = {k.split("__")[1]: v for k, v in search.best_params_.items()}
    print(f"\nbest parameters: {params}")
    print(f"held-out test accuracy of the tuned model: {test_accuracy:.4f}")
    print("\nmean CV accuracy per (learning rate, hidden units):")
    for p, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
        print(
            f"  lr={p['mlp__learning_rate_init']:<7g} hidden={str(p['mlp__hidden_layer_sizes']):<7}"
            f" {score:.4f}"
        )
    return test_accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and candidates")
    main(quick=parser.parse_args().quick)
