"""ConvClassifier's defaults on 1-D signals: MNIST-1D, test accuracy and time.

MNIST-1D (Greydanus, "Scaling down deep learning", 2020) is a 1-D analogue
of MNIST: each of 5,000 signals of 40 values is one of ten digit templates,
padded, dilated, scaled, translated, sheared and noised. Its authors publish
test accuracies of 32% for logistic regression, 68% for an MLP and 94% for
a small CNN (the README of https://github.com/greydanus/mnist1d). The data
are generated here by the dataset's own package (``pip install mnist1d``),
with its default arguments (seed 42, 4,000 training and 1,000 test signals),
not downloaded.

For each model seed it fits, on the 4,000 training signals, with default
parameters but ``random_state``:

- ``conv``: ``ConvClassifier(input_shape=(1, 40))``, read as one-channel
  signals of 40 values (``signal='auto'``);
- ``conv-1x40-image``: the same shape read as one-pixel-high images
  (``signal=False``), the reading of ``(1, 40)`` before ``signal='auto'``;
- ``mlp``: ``MLPClassifier()``.

and prints the test accuracy, the epochs and the seconds of each fit, then
the mean and range over the seeds. The package generates float64 arrays,
which train in float64 (``precision='auto'``); ``--dtype float32`` casts
them first. ``--params`` takes a JSON dict of parameters for the conv models
(candidates for their defaults).

Usage::

    python benchmarks/conv_signals.py [--seeds 0,1,2] [--models conv,mlp]
        [--dtype float32] [--device cpu] [--params '{"filters": [16, 32]}']
"""

import argparse
import json
import random
import time
import warnings

import bench
import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from sknets import ConvClassifier, MLPClassifier

MODELS = {
    "conv": lambda **kw: ConvClassifier(input_shape=(1, 40), **kw),
    "conv-1x40-image": lambda **kw: ConvClassifier(input_shape=(1, 40), signal=False, **kw),
    "mlp": lambda **kw: MLPClassifier(**kw),
}


def load_mnist1d():
    """MNIST-1D as its package generates it with its default arguments:
    ``(X_train, y_train, X_test, y_test)``.

    The package seeds numpy's and Python's global random generators; their
    states are restored afterwards.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return data["x"], data["y"], data["x_test"], data["y_test"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated random_state values")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, of " +
                        ", ".join(MODELS))
    parser.add_argument("--dtype", default=None, help="cast X first (default: float64, as made)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--params", default="{}",
                        help="JSON dict of parameters for the conv models (candidates)")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    seeds = [int(s) for s in args.seeds.split(",")]
    models = args.models.split(",")
    X, y, X_test, y_test = load_mnist1d()
    if args.dtype:
        X, X_test = X.astype(args.dtype), X_test.astype(args.dtype)
    print(
        f"MNIST-1D: {X.shape[0]} training, {X_test.shape[0]} test signals of {X.shape[1]} "
        f"values, {X.dtype}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"device {args.device}",
        flush=True,
    )
    scores = {}
    for name in models:
        for seed in seeds:
            extra = params if name.startswith("conv") else {}
            model = MODELS[name](random_state=seed, device=args.device, **extra)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X, y)
            seconds = time.perf_counter() - start
            score = model.score(X_test, y_test)
            scores.setdefault(name, []).append(score)
            shape = getattr(model, "input_shape_", "")
            print(
                f"{name} random_state={seed}: test accuracy {score:.4f}, "
                f"{model.n_iter_} epochs, {seconds:.1f} s {shape}",
                flush=True,
            )
        print(bench.seed_summary(name, scores[name]), flush=True)
    return scores


if __name__ == "__main__":
    main()
