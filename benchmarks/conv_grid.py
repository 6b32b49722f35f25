#!/usr/bin/env python
"""A ConvClassifier grid: ``sknets.model_selection.GridSearchCV`` against
scikit-learn's, with the same sknets estimator.

The search: a 2x2 grid (``learning_rate_init`` 1e-3, 3e-3 x ``alpha``
1e-4, 1e-3) over ``load_digits`` (1,797 8x8 images), a MinMaxScaler
pipeline ending in ``ConvClassifier(input_shape=(1, 8, 8))`` with its
defaults otherwise (``--max-iter`` caps its epochs), 3-fold ``KFold``,
refit: 12 fits and a refit. ``sknets`` trains the (candidate, fold) fits
of one network structure as one batched network
(:mod:`sknets.model_selection._batched_conv`): on CUDA with grouped
convolutions, on a CPU with each member's blocks on its own rows
(``--conv-layout grouped`` or ``per-member`` forces one, through
``sknets.model_selection._batched_conv.CONV_PER_MEMBER``); ``scikit-learn``
fits them one by one.

Every timed search runs in a fresh Python process (the same interpreter,
the repository root on ``PYTHONPATH``), after an untimed warm-up search of
one epoch a fit there, and reports its time and results as one JSON line;
the two implementations take turns, round after round, the first of each
round alternating, so that a change of the machine's load slows both
alike. The table gives the median of the ``--repeats`` rounds (and every
time, wall and CPU), scikit-learn's time over sknets', and whether both
chose the same best candidate (the mean test scores agree to rounding).

Usage::

    python benchmarks/conv_grid.py [--repeats 3] [--device cpu|cuda|auto]
        [--max-iter N] [--dtype float64|float32] [--threads N]
        [--conv-layout auto|grouped|per-member] [--quick] [--json results.json]

``--quick``: 2 epochs a fit, one round: a smoke test. Self-contained: no
network, no downloads.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import bench  # noqa: E402  (benchmarks/bench.py, the shared report helpers)
import numpy as np  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV as SkGridSearchCV  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

import sknets  # noqa: E402
from sknets import ConvClassifier  # noqa: E402
from sknets.model_selection import GridSearchCV, _batched_conv  # noqa: E402

SEED = 0
GRID = {"clf__learning_rate_init": [1e-3, 3e-3], "clf__alpha": [1e-4, 1e-3]}
IMPLS = ("sknets", "sklearn")
LABELS = {"sknets": "sknets GridSearchCV", "sklearn": "scikit-learn GridSearchCV"}
#: the prefix of the JSON line a fresh process prints
CHILD_MARK = "CONV-GRID-RUN "


def make_search(impl, max_iter, device):
    """The search; each fit runs at most ``max_iter`` epochs (None: the
    estimator's default)."""
    clf = ConvClassifier(input_shape=(1, 8, 8), random_state=SEED, device=device)
    if max_iter is not None:
        clf.set_params(max_iter=max_iter)
    pipe = Pipeline([("scale", MinMaxScaler()), ("clf", clf)])
    cls = GridSearchCV if impl == "sknets" else SkGridSearchCV
    return cls(pipe, GRID, cv=KFold(3, shuffle=True, random_state=SEED), error_score="raise")


def load_average():
    """The 1-minute load average (None where unknown)."""
    loads = bench.load_average()
    return None if loads is None else loads[0]


#: --conv-layout: the value of CONV_PER_MEMBER
LAYOUTS = {"auto": None, "grouped": False, "per-member": True}


def sync(device):
    if str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        torch.cuda.synchronize()


def child_main(spec):
    """One fresh-process measurement: a warm-up search of one epoch a fit,
    then the timed search; prints its record as one JSON line."""
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    _batched_conv.CONV_PER_MEMBER = LAYOUTS[spec["conv_layout"]]
    X, y = load_digits(return_X_y=True)
    X = X.astype(spec["dtype"])
    impl, device = spec["impl"], spec["device"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ConvergenceWarning)
        make_search(impl, 1, device).fit(X, y)
        search = make_search(impl, spec["max_iter"], device)
        caught.clear()
        sync(device)
        start, cpu = time.perf_counter(), time.process_time()
        search.fit(X, y)
        sync(device)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    results = search.cv_results_
    fallback = [str(w.message) for w in caught if "trained one by one" in str(w.message)]
    record = {
        "impl": impl,
        "time_s": wall,
        "cpu_s": cpu,
        "load": load_average(),
        "torch_threads": torch.get_num_threads(),
        "params": [repr(sorted(p.items())) for p in results["params"]],
        "mean_test_score": [float(s) for s in results["mean_test_score"]],
        "mean_fit_time": [float(s) for s in results["mean_fit_time"]],
        "best_params": repr(sorted(search.best_params_.items())),
        "best_score": float(search.best_score_),
        "max_iter": int(search.best_estimator_[-1].max_iter),
        "n_iter": int(search.best_estimator_[-1].n_iter_),
        "precision": str(search.best_estimator_[-1].net_.precision),
        "fits": len(results["params"]) * search.n_splits_ + 1,
        "fallback": fallback,
    }
    print(CHILD_MARK + json.dumps(record), flush=True)
    return 0


def run_fresh(impl, args):
    spec = {"impl": impl, "max_iter": args.max_iter, "device": args.device,
            "threads": args.threads, "dtype": args.dtype,
            "conv_layout": args.conv_layout}
    record, proc = bench.run_child(__file__, spec, CHILD_MARK)
    if record is not None:
        return record
    raise RuntimeError(f"the {impl} process exited with {proc.returncode}:\n{proc.stderr[-3000:]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in each process (default: sknets' choice)")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="epochs a fit at most (default: ConvClassifier's max_iter)")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"),
                        help="the dtype of X (precision='auto' trains in it on a CPU)")
    parser.add_argument("--conv-layout", default="auto", choices=tuple(LAYOUTS),
                        help="how sknets' batched members run their conv blocks "
                        "(default: per member on a CPU, grouped on CUDA)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    if args.quick:
        args.repeats, args.max_iter = 1, 2
    start = time.perf_counter()
    records = {impl: [] for impl in IMPLS}
    for r in range(args.repeats):
        # the implementations take turns, the first of each round alternating
        for impl in IMPLS if r % 2 == 0 else IMPLS[::-1]:
            rec = run_fresh(impl, args)
            records[impl].append(rec)
            print(f"{impl:8s} round {r + 1}: {rec['time_s']:.2f} s (cpu {rec['cpu_s']:.2f} s, "
                  f"best {rec['best_score']:.4f}, load average {rec['load']}"
                  + (", fits one by one" if rec["fallback"] else "") + ")", flush=True)
    total = time.perf_counter() - start
    medians = {impl: statistics.median(r["time_s"] for r in records[impl]) for impl in IMPLS}
    ratio = medians["sklearn"] / medians["sknets"]
    a, b = records["sknets"][-1], records["sklearn"][-1]
    same = a["params"] == b["params"] and a["best_params"] == b["best_params"]
    diff = float(np.max(np.abs(np.subtract(a["mean_test_score"], b["mean_test_score"]))))
    loads = [r["load"] for recs in records.values() for r in recs if r["load"] is not None]

    print()
    print(f"## ConvClassifier 2x2 grid, digits 3-fold — {datetime.date.today()}")
    print()
    print(f"device {args.device}, {bench.cpu_name()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} ({a['torch_threads']} thread(s)), scikit-learn "
          f"{sklearn.__version__}, sknets {sknets.__version__}; X {args.dtype}, precision "
          f"{a['precision']}, max_iter {a['max_iter']}; "
          + (f"conv layout {args.conv_layout}; " if args.conv_layout != "auto" else "")
          + f"time = median of {args.repeats} search(es), each in a fresh process after a "
          f"one-epoch warm-up search; total {total:.0f} s"
          + (f"; 1-minute load average after each search {min(loads)} to {max(loads)}"
             if loads else ""))
    print()
    print("| implementation | fits | median (s) | times (s) | CPU times (s) | best score |")
    print("|---|---|---|---|---|---|")
    for impl in IMPLS:
        recs = records[impl]
        how = " (one by one: fallback)" if recs[-1]["fallback"] else ""
        print(f"| {LABELS[impl]}{how} | {recs[-1]['fits']} | {medians[impl]:.2f} | "
              + ", ".join(f"{r['time_s']:.2f}" for r in recs) + " | "
              + ", ".join(f"{r['cpu_s']:.2f}" for r in recs)
              + f" | {recs[-1]['best_score']:.4f} |")
    print()
    print(f"scikit-learn / sknets: **{ratio:.2f}x**; same best candidate: "
          f"{'yes' if same else 'NO'}; max mean-score difference {diff:.1e}")
    if a["fallback"]:
        print(f"sknets' warning: {a['fallback'][0]}")
    if args.json:
        meta = {"date": str(datetime.date.today()), "device": args.device,
                "repeats": args.repeats, "max_iter": args.max_iter, "dtype": args.dtype,
                "conv_layout": args.conv_layout, "python": platform.python_version(),
                "torch": torch.__version__, "sklearn": sklearn.__version__,
                "sknets": sknets.__version__, "total_s": total}
        Path(args.json).write_text(json.dumps(
            {"meta": meta, "records": records, "ratio": ratio, "same_best": same,
             "max_score_diff": diff}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
