#!/usr/bin/env python
"""Successive halving with batched fits: ``sknets.model_selection``'s
``HalvingGridSearchCV`` against scikit-learn's, with the same sknets
estimator.

The search: a 27-candidate grid (3 learning rates x 3 hidden widths x 3
L2 penalties ``alpha``) over ``load_digits`` (1,797 rows), a MinMaxScaler
pipeline ending in ``MLPClassifier`` (batch 64, no early stop: every fit
runs its epochs), 5-fold ``KFold``, ``factor=3``, refit. Two workloads:

* ``rows``: ``resource='n_samples'`` (scikit-learn's default), 20 epochs a
  fit: 27, 9 and 3 candidates on 100, 300 and 900 rows;
* ``epochs``: ``resource='clf__max_iter'``, ``max_resources=27``: 27, 9, 3
  and 1 candidates trained 1, 3, 9 and 27 epochs on the full folds.

``sknets`` trains each iteration's (candidate, fold) fits as batched
networks (on a CPU, one per hidden width); ``scikit-learn`` fits them one
after the other. Every timed search runs in a fresh Python process (the
same interpreter, the repository root on ``PYTHONPATH``), after an untimed
warm-up search of one epoch a fit there, and reports its time and results
as one JSON line; the two implementations take turns, round after round,
so that a change of the machine's load slows both alike. The table gives
the median of the ``--repeats`` rounds (and every time), scikit-learn's
time over sknets', and whether both searches kept the same candidates at
every iteration and chose the same best one (their mean test scores agree
to float32 rounding).

Usage::

    python benchmarks/halving.py [--workloads rows,epochs] [--repeats 3]
        [--device cpu|cuda|auto] [--threads N] [--quick] [--json results.json]

``--quick``: 2 epochs a fit (``rows``; ``epochs``: ``max_resources=3``),
one round: a smoke test. Self-contained: no network, no downloads.
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
from sklearn.experimental import enable_halving_search_cv  # noqa: E402, F401
from sklearn.model_selection import HalvingGridSearchCV as SkHalvingGridSearchCV  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

import sknets  # noqa: E402
from sknets import MLPClassifier  # noqa: E402
from sknets.model_selection import HalvingGridSearchCV  # noqa: E402

SEED = 0
GRID = {
    "clf__learning_rate_init": [1e-3, 3e-3, 1e-2],
    "clf__hidden_layer_sizes": [(32,), (64,), (128,)],
    "clf__alpha": [1e-4, 1e-3, 1e-2],
}
IMPLS = ("sknets", "sklearn")
LABELS = {"sknets": "sknets HalvingGridSearchCV (batched)",
          "sklearn": "scikit-learn HalvingGridSearchCV"}
WORKLOADS = ("rows", "epochs")
#: the prefix of the JSON line a fresh process prints
CHILD_MARK = "HALVING-RUN "


def make_search(impl, workload, epochs, device):
    """The search of ``workload``: each fit runs ``epochs`` epochs (``rows``),
    or the epochs are the resource, up to ``epochs`` (``epochs``)."""
    clf = MLPClassifier(
        hidden_layer_sizes=(32,), batch_size=64, max_iter=epochs, tol=0.0,
        n_iter_no_change=max(epochs, 1), random_state=SEED, device=device,
    )
    pipe = Pipeline([("scale", MinMaxScaler()), ("clf", clf)])
    cls = HalvingGridSearchCV if impl == "sknets" else SkHalvingGridSearchCV
    kwargs = dict(cv=KFold(5, shuffle=True, random_state=SEED), factor=3, random_state=SEED,
                  error_score="raise")
    if workload == "epochs":
        kwargs.update(resource="clf__max_iter", max_resources=epochs, min_resources="exhaust")
    return cls(pipe, GRID, **kwargs)


def load_average():
    """The 1-minute load average (None where unknown)."""
    loads = bench.load_average()
    return None if loads is None else loads[0]


def sync(device):
    if str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        torch.cuda.synchronize()


def child_main(spec):
    """One fresh-process measurement: a warm-up search of one epoch a fit,
    then the timed search; prints its record as one JSON line."""
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    X, y = load_digits(return_X_y=True)
    impl, workload, device = spec["impl"], spec["workload"], spec["device"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        make_search(impl, workload, 1 if workload == "rows" else 3, device).fit(X, y)
        search = make_search(impl, workload, spec["epochs"], device)
        sync(device)
        start, cpu = time.perf_counter(), time.process_time()
        search.fit(X, y)
        sync(device)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    results = search.cv_results_
    record = {
        "impl": impl,
        "workload": workload,
        "time_s": wall,
        "cpu_s": cpu,
        "load": load_average(),
        "torch_threads": torch.get_num_threads(),
        "n_candidates": search.n_candidates_,
        "n_resources": search.n_resources_,
        "params": [repr(sorted(p.items())) for p in results["params"]],
        "mean_test_score": [float(s) for s in results["mean_test_score"]],
        "best_params": repr(sorted(search.best_params_.items())),
        "best_score": float(search.best_score_),
        "fits": int(sum(search.n_candidates_) * search.n_splits_ + 1),
    }
    print(CHILD_MARK + json.dumps(record), flush=True)
    return 0


def run_fresh(impl, workload, args):
    spec = {"impl": impl, "workload": workload, "epochs": args.epochs, "device": args.device,
            "threads": args.threads}
    record, proc = bench.run_child(__file__, spec, CHILD_MARK)
    if record is not None:
        return record
    raise RuntimeError(f"the {impl} process exited with {proc.returncode}:\n{proc.stderr[-3000:]}")


def agree(a, b):
    """Whether two runs kept the same candidates at every iteration and chose
    the same best one, and the largest difference of their mean test scores."""
    same = (a["params"] == b["params"] and a["n_candidates"] == b["n_candidates"]
            and a["n_resources"] == b["n_resources"] and a["best_params"] == b["best_params"])
    diff = float(np.max(np.abs(np.subtract(a["mean_test_score"], b["mean_test_score"]))))
    return same, diff


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in each process (default: torch's)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs a fit (rows) / max_resources (epochs); default 20 / 27")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    if args.quick:
        args.repeats = 1
    workloads = args.workloads.split(",")
    start = time.perf_counter()
    rows, summary = [], []
    for workload in workloads:
        epochs = args.epochs or (
            (2 if args.quick else 20) if workload == "rows" else (3 if args.quick else 27)
        )
        run_args = argparse.Namespace(**{**vars(args), "epochs": epochs})
        records = {impl: [] for impl in IMPLS}
        for r in range(args.repeats):
            # the implementations take turns, the first of each round alternating
            order = IMPLS if r % 2 == 0 else IMPLS[::-1]
            for impl in order:
                rec = run_fresh(impl, workload, run_args)
                records[impl].append(rec)
                print(f"{workload} {impl:8s} round {r + 1}: {rec['time_s']:.2f} s "
                      f"(cpu {rec['cpu_s']:.2f} s, best {rec['best_score']:.4f}, "
                      f"load average {rec['load']})", flush=True)
        medians = {impl: statistics.median(r["time_s"] for r in records[impl]) for impl in IMPLS}
        same, diff = agree(records["sknets"][-1], records["sklearn"][-1])
        ratio = medians["sklearn"] / medians["sknets"]
        first = records["sknets"][-1]
        for impl in IMPLS:
            rows.append({
                "workload": workload, "impl": impl, "epochs": epochs,
                "median_s": medians[impl], "times": [r["time_s"] for r in records[impl]],
                "cpu_times": [r["cpu_s"] for r in records[impl]],
                "best_score": records[impl][-1]["best_score"], "fits": first["fits"],
                "torch_threads": records[impl][-1]["torch_threads"],
                "loads": [r["load"] for r in records[impl]],
            })
        summary.append({
            "workload": workload, "sklearn_over_sknets": ratio, "same_search": same,
            "max_score_diff": diff, "n_candidates": first["n_candidates"],
            "n_resources": first["n_resources"],
        })
    total = time.perf_counter() - start

    print()
    print(f"## Successive halving, 27 candidates, digits 5-fold — {datetime.date.today()}")
    print()
    print(f"device {args.device}, {bench.cpu_name()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({rows[0]['torch_threads']} thread(s)), scikit-learn "
          f"{sklearn.__version__}, sknets {sknets.__version__}; time = median of "
          f"{args.repeats} search(es), each in a fresh process after a one-epoch warm-up "
          f"search; total {total:.0f} s; 1-minute load average after each search "
          f"{min(min(r['loads']) for r in rows)} to {max(max(r['loads']) for r in rows)}")
    print()
    print("| workload | implementation | iterations: candidates @ resource | fits | "
          "median (s) | times (s) | best score |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        s = next(s for s in summary if s["workload"] == row["workload"])
        schedule = ", ".join(f"{c} @ {n}" for c, n in zip(s["n_candidates"], s["n_resources"]))
        resource = "rows" if row["workload"] == "rows" else "epochs"
        print(f"| {row['workload']} ({row['epochs']} epochs) | {LABELS[row['impl']]} | "
              f"{schedule} {resource} | {row['fits']} | {row['median_s']:.2f} | "
              + ", ".join(f"{t:.2f}" for t in row["times"])
              + f" | {row['best_score']:.4f} |")
    print()
    print("| workload | scikit-learn / sknets | same candidates and best | "
          "max mean-score difference |")
    print("|---|---|---|---|")
    for s in summary:
        print(f"| {s['workload']} | **{s['sklearn_over_sknets']:.2f}x** | "
              f"{'yes' if s['same_search'] else 'NO'} | {s['max_score_diff']:.1e} |")
    if args.json:
        meta = {"date": str(datetime.date.today()), "device": args.device,
                "repeats": args.repeats, "quick": args.quick, "python": platform.python_version(),
                "torch": torch.__version__, "sklearn": sklearn.__version__,
                "sknets": sknets.__version__, "total_s": total}
        Path(args.json).write_text(json.dumps(
            {"meta": meta, "results": rows, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
