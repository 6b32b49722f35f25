"""ConvClassifier's defaults on the digits: accuracy and time of 5-fold CV.

``Pipeline(MinMaxScaler(), ConvClassifier(input_shape=(1, 8, 8)))`` with
the default architecture and training parameters, ``cross_val_score`` with
``cv=5`` (unshuffled stratified folds) on :func:`sklearn.datasets.load_digits`,
once per model seed. Prints the fold accuracies, their mean and the seconds
of each run, the epochs of each fit, and the mean over the seeds.

With ``--shuffle``, the folds are ``KFold(5, shuffle=True, random_state=0)``
(a new user's shuffled 5-fold); ``--params`` takes a JSON dict of
ConvClassifier parameters to try instead of the defaults (candidates for
them). Each run also counts the fits that ended with a ConvergenceWarning
(``max_iter`` reached before scikit-learn's stopping rule).

Usage::

    python benchmarks/conv_digits.py [--seeds 0,1,2,3] [--device cpu] [--max-iter N]
        [--shuffle] [--params '{"filters": [16, 32]}']
"""

import argparse
import json
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sknets import ConvClassifier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0", help="comma-separated random_state values")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--max-iter", type=int, default=None, help="epochs (default: the estimator's default)"
    )
    parser.add_argument("--shuffle", action="store_true", help="shuffled KFold(5)")
    parser.add_argument("--params", default="{}", help="JSON dict of ConvClassifier parameters")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    X, y = load_digits(return_X_y=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    extra = {} if args.max_iter is None else {"max_iter": args.max_iter}
    extra.update(json.loads(args.params))
    cv = KFold(5, shuffle=True, random_state=0) if args.shuffle else 5
    print(f"parameters {extra or 'defaults'}, cv {cv}")
    means, times = [], []
    for seed in seeds:
        model = make_pipeline(
            MinMaxScaler(),
            ConvClassifier(input_shape=(1, 8, 8), random_state=seed, device=args.device, **extra),
        )
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            result = cross_validate(model, X, y, cv=cv, return_estimator=True)
        seconds = time.perf_counter() - start
        scores = result["test_score"]
        epochs = [fitted[-1].n_iter_ for fitted in result["estimator"]]
        unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        means.append(scores.mean())
        times.append(seconds)
        print(
            f"random_state={seed}: folds {np.round(scores, 4).tolist()} "
            f"mean {scores.mean():.4f} in {seconds:.1f} s, epochs {epochs}, "
            f"{unconverged}/5 fits at max_iter",
            flush=True,
        )
    print(f"mean over {len(seeds)} seeds: {np.mean(means):.4f} (min {np.min(means):.4f}); "
          f"median time {np.median(times):.1f} s")
    return means


if __name__ == "__main__":
    main()
