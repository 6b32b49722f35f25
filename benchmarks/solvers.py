"""The solvers on the drug-trial lab: RMSprop, Adam, SGD and AdamW times.

The lab of ``bench.py``'s W1 (2,100 patients x 1 feature, MinMaxScaler,
``MLPClassifier((16, 32), batch_size=10)``, 20 epochs, every epoch run):
one fit per solver, each in a fresh process after a warm-up fit, the
solvers alternating, medians over ``--repeats``. Prints seconds per fit and
each solver's time over Adam's.

Usage::

    python benchmarks/solvers.py --repeats 5
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def child(solver, epochs):
    sys.path.insert(0, HERE)
    from bench import drug_trial_data
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    from sknets import MLPClassifier

    X, y = drug_trial_data()

    def fit(n_epochs):
        model = make_pipeline(
            MinMaxScaler(),
            MLPClassifier(hidden_layer_sizes=(16, 32), batch_size=10, solver=solver,
                          max_iter=n_epochs, tol=0, n_iter_no_change=n_epochs,
                          learning_rate_init=1e-3, random_state=0),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit(X, y)

    fit(1)  # warm-up
    start = time.perf_counter()
    model = fit(epochs)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "score": model.score(X, y)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--solvers", default="adam,rmsprop,sgd,adamw")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.epochs)
        return
    solvers = args.solvers.split(",")
    runs = {s: [] for s in solvers}
    env = dict(os.environ, PYTHONPATH=REPO)
    for _ in range(args.repeats):
        for solver in solvers:
            out = subprocess.run(
                [sys.executable, __file__, "--child", solver, "--epochs", str(args.epochs)],
                env=env, capture_output=True, text=True, check=True,
            ).stdout
            runs[solver].append(json.loads(out.strip().splitlines()[-1]))
    adam = statistics.median(r["seconds"] for r in runs["adam"]) if "adam" in runs else None
    print(f"drug-trial lab, (16, 32), batch 10, {args.epochs} epochs; median of "
          f"{args.repeats} fresh processes, alternating")
    print("| solver | median s | runs (s) | / adam | train accuracy |")
    print("|---|---:|---|---:|---:|")
    for solver, rs in runs.items():
        times = [r["seconds"] for r in rs]
        med = statistics.median(times)
        ratio = f"{med / adam:.2f}" if adam else "-"
        print(f"| {solver} | {med:.3f} | {', '.join(f'{t:.3f}' for t in times)} | {ratio} | "
              f"{rs[0]['score']:.3f} |")


if __name__ == "__main__":
    main()
