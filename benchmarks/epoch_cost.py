"""The fixed cost of an epoch: sknets against scikit-learn, with a profile.

An epoch of a small fit costs its steps plus a fixed cost: the loop, the
rules, the curves, the checkpoint for Ctrl-C. This script measures the
whole epoch of a fit whose epoch is one tiny step (``--rows`` rows, one
batch, ``(--hidden,)`` units), where the fixed cost is most of it, for
``MLPRegressor`` of sknets and of scikit-learn: each timing in a fresh
process after a warm-up fit, the two libraries alternating, ``--epochs``
epochs (``tol=0``, so every epoch runs), medians over ``--repeats``. It
prints microseconds per epoch, and with ``--profile FILE`` writes the
cProfile of one sknets fit (the functions by their own time) to FILE.

Usage::

    python benchmarks/epoch_cost.py --repeats 5 --profile epoch-profile.txt
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fit(impl, rows, hidden, epochs):
    import numpy as np

    if impl == "sknets":
        from sknets import MLPRegressor
    else:
        from sklearn.neural_network import MLPRegressor
    rng = np.random.default_rng(0)
    X, y = rng.random((rows, 8)), rng.random(rows)

    def fit(n_epochs):
        est = MLPRegressor(hidden_layer_sizes=(hidden,), batch_size=rows, max_iter=n_epochs,
                           tol=0, n_iter_no_change=n_epochs, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return est.fit(X, y)

    return fit


def child(impl, rows, hidden, epochs):
    fit = _fit(impl, rows, hidden, epochs)
    fit(20)  # warm-up
    start = time.perf_counter()
    fit(epochs)
    seconds = time.perf_counter() - start
    print(json.dumps({"us_per_epoch": 1e6 * seconds / epochs}))


def profile(rows, hidden, epochs, path):
    fit = _fit("sknets", rows, hidden, epochs)
    fit(20)
    profiler = cProfile.Profile()
    profiler.enable()
    fit(epochs)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
    stats.print_stats(30)
    with open(path, "w") as f:
        f.write(f"cProfile of one sknets fit: {epochs} epochs of one {rows}-row step, "
                f"({hidden},) units, by own time\n\n")
        f.write(out.getvalue())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile")
    parser.add_argument("--child")
    parser.add_argument("--checkout", default=REPO, help="the sknets checkout to time")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rows, args.hidden, args.epochs)
        return
    times = {"sknets": [], "sklearn": []}
    env = dict(os.environ, PYTHONPATH=os.path.abspath(args.checkout))
    for _ in range(args.repeats):
        for impl in times:
            out = subprocess.run(
                [sys.executable, __file__, "--child", impl, "--rows", str(args.rows),
                 "--hidden", str(args.hidden), "--epochs", str(args.epochs)],
                env=env, capture_output=True, text=True, check=True,
            ).stdout
            times[impl].append(json.loads(out.strip().splitlines()[-1])["us_per_epoch"])
    print(f"sknets from {args.checkout}")
    print(f"one {args.rows}-row step per epoch, ({args.hidden},) units, {args.epochs} epochs, "
          f"median of {args.repeats} fresh processes, alternating")
    for impl, ts in times.items():
        print(f"{impl}: {statistics.median(ts):.1f} us/epoch ({', '.join(f'{t:.1f}' for t in ts)})")
    ratio = statistics.median(times["sklearn"]) / statistics.median(times["sknets"])
    print(f"scikit-learn / sknets: {ratio:.2f}x")
    if args.profile:
        profile(args.rows, args.hidden, args.epochs, args.profile)
        print(f"profile written to {args.profile}")


if __name__ == "__main__":
    main()
