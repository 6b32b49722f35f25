"""Scale-out of batched model selection: one process, then a Dask
``LocalCluster`` of 1 and of 2 worker processes (1 thread each).

Two grid searches of ``sknets.model_selection.GridSearchCV`` on
``load_digits`` (MinMaxScaler pipeline, ``MLPClassifier`` with batch 64,
20 epochs, no early stop, as W4 of ``bench.py``), over 3 learning rates x
3 hidden widths:

* W4: 5-fold ``KFold`` (45 fits, + refit);
* RKF: ``RepeatedKFold(5, 3)`` (135 fits, + refit).

On the cluster the search runs inside ``joblib.parallel_config(backend="dask")``.
Each configuration gets an untimed warm-up search, then ``--repeats`` timed
ones; the table gives the median (and every time), the ratio of 1 worker to
2 workers, whether the results (``cv_results_`` scores, ``best_params_``,
the refit's weights) of all the cluster runs are equal bit for bit, and how
far they are from the run in this process. The estimator trains in float32
(its default), and this process runs torch on all its cores while each
worker runs one thread: a sum split over several threads rounds
differently, so this process agrees within float32 tolerance, not bit for
bit (bit for bit in float64 on equal threads is a test of the suite).

Usage::

    python benchmarks/scale_out.py [--repeats 3] [--workers 1,2] [--quick]
"""

import argparse
import datetime
import hashlib
import os
import platform
import statistics
import time
import warnings

import joblib
import numpy as np
import sklearn
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import KFold, RepeatedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

import sknets
from sknets import MLPClassifier
from sknets.model_selection import GridSearchCV

SEED = 0
LRS = (1e-3, 3e-3, 1e-2)
WIDTHS = (32, 64, 128)
WORKLOADS = {
    "W4": ("KFold(5) 3 lr x 3 widths", lambda: KFold(5, shuffle=True, random_state=SEED), 45),
    "RKF": (
        "RepeatedKFold(5, 3) 3 lr x 3 widths",
        lambda: RepeatedKFold(n_splits=5, n_repeats=3, random_state=SEED),
        135,
    ),
}


def make_search(cv, epochs):
    clf = MLPClassifier(
        hidden_layer_sizes=(WIDTHS[0],), learning_rate_init=LRS[0], batch_size=64,
        max_iter=epochs, tol=0.0, n_iter_no_change=epochs, shuffle=True, random_state=SEED,
        device="auto",
    )
    pipe = Pipeline([("scale", MinMaxScaler()), ("clf", clf)])
    grid = {
        "clf__learning_rate_init": list(LRS),
        "clf__hidden_layer_sizes": [(w,) for w in WIDTHS],
    }
    return GridSearchCV(pipe, grid, cv=cv, error_score="raise")


def signature(search):
    """What must be equal between runs: scores, best parameters, refit weights."""
    results = search.cv_results_
    keys = sorted(k for k in results if "test_score" in k)
    h = hashlib.sha256()
    for key in keys:
        h.update(np.asarray(results[key], dtype=np.float64).tobytes())
    for W in search.best_estimator_[-1].coefs_ + search.best_estimator_[-1].intercepts_:
        h.update(np.ascontiguousarray(W).tobytes())
    h.update(repr(sorted(search.best_params_.items())).encode())
    return h.hexdigest()[:16]


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()


def _import_sknets():
    import sknets.model_selection._distributed  # noqa: F401

    return os.getpid()


def run_configuration(n_workers, X, y, epochs, repeats, log):
    """``{workload: (times, signature)}`` in this process (``n_workers`` None)
    or on a LocalCluster of ``n_workers`` processes."""
    cluster = client = None
    if n_workers is not None:
        import distributed

        cluster = distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=40,
        )
        client = distributed.Client(cluster)
        client.run(_import_sknets)

    def backend():
        if client is None:
            return joblib.parallel_config(n_jobs=None)
        return joblib.parallel_config(backend="dask", client=client)

    out = {}
    try:
        with backend():
            make_search(WORKLOADS["W4"][1](), epochs).fit(X, y)  # warm-up, untimed
        for name, (_, cv, _) in WORKLOADS.items():
            times, sig = [], None
            for _ in range(repeats):
                search = make_search(cv(), epochs)
                start = time.perf_counter()
                with backend():
                    search.fit(X, y)
                times.append(time.perf_counter() - start)
                sig = signature(search)
            where = "this process" if n_workers is None else f"{n_workers} worker(s)"
            log(f"{name:4s} {where:13s} times {' '.join(f'{t:.2f}' for t in times)} s, "
                f"median {statistics.median(times):.2f} s, results {sig}, load {loadavg()}")
            scores = np.asarray(search.cv_results_["mean_test_score"], dtype=np.float64)
            out[name] = (times, sig, scores, search.best_params_)
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 repeat (a smoke test)")
    args = parser.parse_args()
    epochs, repeats = (2, 1) if args.quick else (20, args.repeats)
    workers = [int(w) for w in args.workers.split(",")]
    warnings.simplefilter("ignore")  # ConvergenceWarning: 20 epochs on purpose

    X, y = load_digits(return_X_y=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())

    def log(line):
        print(line, flush=True)

    log("# sknets scale-out: batched GridSearchCV on a Dask LocalCluster")
    log(f"date: {datetime.date.today().isoformat()}")
    log(f"machine: {os.cpu_count()} cores, {cpu}")
    log(f"load before: {loadavg()}")
    import distributed

    log(f"versions: sknets {sknets.__version__}, torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}, dask/distributed {distributed.__version__}, joblib "
        f"{joblib.__version__}, python {platform.python_version()}")
    log(f"workloads: load_digits {X.shape}, MinMaxScaler + MLPClassifier, batch 64, {epochs} "
        f"epochs (tol=0), lr {LRS} x widths {WIDTHS}, refit; {repeats} timed repeat(s) after "
        "an untimed warm-up; workers: processes, 1 thread each")
    log("")
    results = {None: run_configuration(None, X, y, epochs, repeats, log)}
    for n in workers:
        results[n] = run_configuration(n, X, y, epochs, repeats, log)
    log("")
    names = ["this process"] + [f"{n} worker(s)" for n in workers]
    log("| workload | fits | " + " | ".join(names)
        + " | 1 / 2 workers | cluster runs equal bit for bit"
        " | vs this process: max abs diff of mean scores, same best_params_ |")
    log("|---|---|" + "---|" * len(names) + "---|---|---|")
    for name, (label, _, fits) in WORKLOADS.items():
        medians = [statistics.median(results[key][name][0]) for key in [None, *workers]]
        sigs = {results[key][name][1] for key in workers}
        here = results[None][name]
        delta = max(float(np.max(np.abs(results[key][name][2] - here[2]))) for key in workers)
        same_best = all(results[key][name][3] == here[3] for key in workers)
        ratio = ""
        if 1 in workers and 2 in workers:
            ratio = f"{medians[workers.index(1) + 1] / medians[workers.index(2) + 1]:.2f}x"
        log(f"| {name}: {label} | {fits} + refit | "
            + " | ".join(f"{m:.2f} s" for m in medians)
            + f" | {ratio} | {'yes' if len(sigs) == 1 else 'NO'} | {delta:.1e}, "
            f"{'yes' if same_best else 'NO'} |")
    log("")
    log(f"load after: {loadavg()}")


if __name__ == "__main__":
    main()
