"""What a fit's threads cost under load, and whether its bits follow the load.

Times one large-step fit (12,000 x 784 float32, ``(512,)``, batch 128,
``--epochs`` epochs: above ``SMALL_STEP``, so it computes on more than one
thread) and one small ConvClassifier fit (digits, float32), each in a fresh
process after a warm-up fit, quiet and beside a process that keeps one core
busy, alternating the checkouts given with ``--checkouts`` (``.`` is this
one; another is a path to a checkout of an earlier sknets). Prints, per
checkout, workload and load, the median seconds, the threads the fit ran on
and a digest of its predictions, so that a change of bits with the load
shows as two digests.

Usage::

    python benchmarks/thread_load.py --checkouts .,/tmp/sknets-9ef69cd --repeats 3
"""

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import warnings


def child(workload, epochs):
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    from sknets import ConvClassifier, MLPClassifier

    threads = []
    original = torch.set_num_threads

    def spy(n):
        threads.append(n)
        original(n)

    torch.set_num_threads = spy
    if workload == "large":
        rng = np.random.default_rng(0)
        X = rng.random((12_000, 784), dtype=np.float32)
        y = (X[:, :10].sum(axis=1) * 2).astype(int) % 10

        def make():
            return MLPClassifier(hidden_layer_sizes=(512,), batch_size=128, max_iter=epochs,
                                 tol=0, n_iter_no_change=epochs, random_state=0)
    else:
        X, y = load_digits(return_X_y=True)
        X = (X / 16).astype(np.float32)

        def make():
            return ConvClassifier(filters=(8, 16), max_iter=epochs, random_state=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make().set_params(max_iter=1).fit(X[:500], y[:500])  # warm-up
        threads.clear()
        start = time.perf_counter()
        est = make().fit(X, y)
        seconds = time.perf_counter() - start
    digest = hashlib.sha256(est.predict_proba(X[:2000]).tobytes()).hexdigest()[:12]
    print(json.dumps({"seconds": seconds, "threads": threads[:1], "digest": digest}))


def run(checkout, workload, epochs, loaded):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout))
    busy = None
    if loaded:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1.0)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", workload, "--epochs", str(epochs)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkouts", default=".")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workloads", default="large,conv")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.epochs)
        return
    checkouts = args.checkouts.split(",")
    results = {}
    for _ in range(args.repeats):
        for workload in args.workloads.split(","):
            for loaded in (False, True):
                for checkout in checkouts:
                    r = run(checkout, workload, args.epochs, loaded)
                    results.setdefault((checkout, workload, loaded), []).append(r)
    print("| checkout | workload | load | median s | runs (s) | threads set | digests |")
    print("|---|---|---|---:|---|---|---|")
    for (checkout, workload, loaded), rs in results.items():
        times = [r["seconds"] for r in rs]
        print(f"| {checkout} | {workload} | {'one core busy' if loaded else 'quiet'} | "
              f"{statistics.median(times):.2f} | {', '.join(f'{t:.2f}' for t in times)} | "
              f"{sorted({tuple(r['threads']) for r in rs})} | "
              f"{sorted({r['digest'] for r in rs})} |")


if __name__ == "__main__":
    main()
