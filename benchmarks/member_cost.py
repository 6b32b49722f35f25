"""What a batched member's training step costs on a CPU, for the chunk
sizing of a search on several workers.

Trains chunks of 5, 15 and 45 members (``load_digits``, 5 folds, 20
epochs, one thread) of 5 hidden widths and 2 batch sizes with
``sknets.model_selection._batched.train_plans``, and fits by least squares

    time = member-steps x (a + c x multiply-adds per member-step)

(multiply-adds: 3 x batch x parameters, forward and backward), printing
``a`` (the fixed cost of a member's step), ``c`` and ``a / c``, the fixed
cost in multiply-adds (``CPU_MEMBER_STEP`` in ``_batched.py``), and the
fit's relative errors. The per-chunk cost per step is estimated from the
5- and 45-member chunks of each setting.

Usage::

    python benchmarks/member_cost.py
"""

import datetime
import platform
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import KFold

from sknets import MLPClassifier, _seam
from sknets.model_selection._batched import CPU_MEMBER_STEP, train_plans

WIDTHS = (8, 32, 64, 128, 256)
MEMBERS = (5, 15, 45)
BATCHES = (64, 200)
EPOCHS = 20


def plans(X, y, folds, width, n, batch):
    out, slots = [], []
    for i in range(n):
        train = folds[i % len(folds)]
        est = MLPClassifier(
            (width,), batch_size=batch, max_iter=EPOCHS, tol=0, n_iter_no_change=EPOCHS,
            learning_rate_init=1e-3 * (1 + i // len(folds)), random_state=0, device="cpu",
        )
        out.append(_seam.plan(est, X[train], y[train]))
        slots.append(i % len(folds))
    return out, slots


def main():
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    X, y = load_digits(return_X_y=True)
    X = X / 16
    folds = [train for train, _ in KFold(5, shuffle=True, random_state=0).split(X)]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"date: {datetime.date.today().isoformat()}; machine: {cpu}; torch "
          f"{torch.__version__}; 1 thread; load_digits, {EPOCHS} epochs; best of 3")
    rows = []
    for width in WIDTHS:
        for batch in BATCHES:
            per = {}
            for n in MEMBERS:
                train_plans(*plans(X, y, folds, width, n, batch))  # warm-up
                times = []
                for _ in range(3):
                    p, s = plans(X, y, folds, width, n, batch)
                    start = time.perf_counter()
                    train_plans(p, s)
                    times.append(time.perf_counter() - start)
                n_params = 64 * width + width + width * 10 + 10
                steps = EPOCHS * int(np.ceil(len(folds[0]) / batch))
                per[n] = min(times) / (n * steps)
                print(f"width {width:3d} batch {batch:3d} members {n:2d}: {min(times):.3f} s, "
                      f"{per[n] * 1e6:6.1f} µs per member-step, "
                      f"{3 * batch * n_params / 1e3:7.0f}k multiply-adds per member-step",
                      flush=True)
                rows.append((n * steps, 3 * batch * n_params, min(times)))
            lo, hi = MEMBERS[0], MEMBERS[-1]
            chunk = (per[lo] - per[hi]) / (1 / lo - 1 / hi)
            print(f"  per chunk-step (from {lo} and {hi} members): {chunk * 1e6:.0f} µs")
    A = np.array([[ms, ms * madds] for ms, madds, _ in rows], dtype=float)
    t = np.array([r[2] for r in rows])
    (a, c), *_ = np.linalg.lstsq(A, t, rcond=None)
    err = np.abs(A @ np.array([a, c]) - t) / t
    print(f"fit: {a * 1e6:.1f} µs per member-step + {c * 1e9:.4f} ns per multiply-add "
          f"({1 / c / 1e9:.1f} multiply-adds per ns); fixed cost = {a / c:,.0f} multiply-adds "
          f"(CPU_MEMBER_STEP = {CPU_MEMBER_STEP:,}); relative error median "
          f"{np.median(err):.2f}, max {err.max():.2f}")


if __name__ == "__main__":
    main()
