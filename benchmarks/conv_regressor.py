"""ConvRegressor's defaults on 1-D signals: test R² and time.

The task of ``tests/test_conv_regressor.py``, at full size
(:func:`sknets.datasets.make_motif_signals`): 600 training and 600 test
signals of 60 values, Gaussian noise (standard deviation 0.3) holding one
motif (a zero-mean Hann-windowed sine of 16 values) at a random offset,
scaled by an amplitude drawn uniformly from [0.5, 2]. The target is
the amplitude (``--target position``: the motif's offset scaled to [0, 1]).
A dense network sees the motif at every offset as a different pattern; a
convolution sees one. Data seed and model seed are the same number.

For each seed it fits ``ConvRegressor()`` with default parameters but
``random_state`` (``--params`` takes a JSON dict of candidates) and
``MLPRegressor()`` as the reference, and prints the test R², the epochs,
whether the fit ended at ``max_iter`` (ConvergenceWarning) and the seconds of
each fit, then the mean and range over the seeds.

Usage::

    python benchmarks/conv_regressor.py [--seeds 0,1,2,3,4] [--models conv,mlp]
        [--target amplitude] [--device cpu] [--params '{"filters": [16, 32]}']
"""

import argparse
import json
import time
import warnings

import bench
import torch
from sklearn.exceptions import ConvergenceWarning

from sknets import ConvRegressor, MLPRegressor
from sknets.datasets import make_motif_signals

MODELS = {
    "conv": ConvRegressor,
    "mlp": MLPRegressor,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    parser.add_argument("--models", default="conv,mlp", help="comma-separated, of conv, mlp")
    parser.add_argument("--target", default="amplitude", choices=["amplitude", "position"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--params", default="{}", help="JSON dict of ConvRegressor parameters")
    parser.add_argument("--n", type=int, default=600, help="training (and test) signals")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    params = json.loads(args.params)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; "
          f"target {args.target}; conv parameters {params or 'defaults'}", flush=True)
    scores = {}
    for name in args.models.split(","):
        for seed in seeds:
            X, amplitude, position = make_motif_signals(2 * args.n, random_state=seed)
            y = amplitude if args.target == "amplitude" else position
            extra = params if name == "conv" else {}
            model = MODELS[name](random_state=seed, device=args.device, **extra)
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                model.fit(X[: args.n], y[: args.n])
            seconds = time.perf_counter() - start
            at_max = any(issubclass(w.category, ConvergenceWarning) for w in caught)
            score = model.score(X[args.n :], y[args.n :])
            scores.setdefault(name, []).append(score)
            print(f"{name} seed={seed}: test R2 {score:.4f}, {model.n_iter_} epochs"
                  f"{' (max_iter)' if at_max else ''}, {seconds:.1f} s", flush=True)
        print(bench.seed_summary(name, scores[name]), flush=True)
    return scores


if __name__ == "__main__":
    main()
