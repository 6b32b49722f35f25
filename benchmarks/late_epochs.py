"""Late epochs against early ones: the cost of denormal floats on a CPU.

Once a network's loss gets small, its gradients and Adam's moments fill
with denormal floats, which x86 CPUs handle many times slower. sknets
flushes them to zero during training (``sknets._threads.flushed_denormals``).
This fits one long MLP (digits upsampled to 28x28, 784 -> 512, Adam, batch
128, ``tol=0`` so that every epoch runs) with the flushing as shipped and
with it switched off, and prints the median epoch time of the first and the
last ``--window`` epochs, from each fit's ``net_.history``.

Usage::

    python benchmarks/late_epochs.py [--epochs 60] [--window 5] [--threads 1]
"""

import argparse
import contextlib
import statistics
import sys
import time
import warnings
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import scipy.ndimage  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import sknets._engine  # noqa: E402
import sknets._threads  # noqa: E402
from sknets import MLPClassifier  # noqa: E402


def data():
    X, y = load_digits(return_X_y=True)
    images = scipy.ndimage.zoom(X.reshape(-1, 8, 8) / 16.0, (1, 3.5, 3.5), order=1)
    return images.reshape(len(X), -1).astype(np.float32), y


def fit(X, y, epochs, flush):
    est = MLPClassifier(
        hidden_layer_sizes=(512,), batch_size=128, max_iter=epochs, tol=0.0,
        n_iter_no_change=epochs, learning_rate_init=1e-3, random_state=0, device="cpu",
    )
    patches = contextlib.ExitStack()
    if not flush:
        for module in (sknets._engine, sknets._threads):
            patches.enter_context(mock.patch.object(module, "flushed_denormals",
                                                    contextlib.nullcontext))
    start = time.perf_counter()
    with patches, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    return est, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, y = data()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), X {X.shape}")
    print("| denormals | total s | first epochs, median s | last epochs, median s | "
          "last / first | final loss |")
    print("|---|---:|---:|---:|---:|---:|")
    fit(X, y, 2, True)  # warm-up: first-call costs
    for flush in (True, False):
        est, total = fit(X, y, args.epochs, flush)
        durations = [h["dur"] for h in est.net_.history]
        first = statistics.median(durations[: args.window])
        last = statistics.median(durations[-args.window :])
        print(f"| {'flushed' if flush else 'kept'} | {total:.2f} | {first:.4f} | {last:.4f} | "
              f"{last / first:.2f}x | {est.loss_:.2e} |", flush=True)


if __name__ == "__main__":
    main()
