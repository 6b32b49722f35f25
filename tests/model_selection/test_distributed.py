"""Batched model selection on a Dask cluster and on local joblib workers.

A ``distributed.LocalCluster`` of 2 worker processes (1 thread each) is
started inside the tests; no service outside the test process is needed.
The results equal those of a local run, bit for bit (CPU, float64).
"""

import functools
import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
from sklearn import model_selection as sk
from sklearn.datasets import load_digits
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sknets import MLPClassifier, _base
from sknets.model_selection import (
    ClusterError,
    GridSearchCV,
    HalvingGridSearchCV,
    RandomizedSearchCV,
    _batched,
    _distributed,
    _pretrained,
    cross_val_score,
    cross_validate,
)

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")
cloudpickle = pytest.importorskip("cloudpickle")

pytestmark = pytest.mark.usefixtures("torch_one_thread")

GRID = {
    "mlpclassifier__learning_rate_init": [1e-3, 1e-2],
    "mlpclassifier__hidden_layer_sizes": [(6,), (12,)],
}
CV = KFold(3, shuffle=True, random_state=0)


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]


def _pipe(**params):
    base = dict(
        hidden_layer_sizes=(10,), precision="float64", batch_size=64, max_iter=6,
        learning_rate_init=1e-2, random_state=0, device="cpu",
    )
    return make_pipeline(MinMaxScaler(), MLPClassifier(**{**base, **params}))


def _warm():
    """Import sknets on a worker (once, before the timed tests)."""
    import sknets.model_selection._distributed  # noqa: F401

    return os.getpid()


@pytest.fixture(scope="module", autouse=True)
def _by_value():
    """The spies below travel to worker processes by value: the workers need
    not import this test file."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes, 1 thread each."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        silence_logs=50,
    )
    client = distributed.Client(cluster)
    try:
        client.run(_warm)
        yield client
    finally:
        client.close()
        cluster.close()


def _on(client):
    """joblib's Dask backend on ``client``, as a user asks for it."""
    return joblib.parallel_config(backend="dask", client=client) if hasattr(
        joblib, "parallel_config"
    ) else joblib.parallel_backend("dask", client=client)


def _recording_train_chunk(path, hold, estimators, slots, tokens, arrays):
    """``train_chunk``, writing a line when it starts and one when it ends,
    where it runs (in another process, the module's own ``train_chunk``;
    here, the one the fixture kept). With a ``hold`` path, the first chunk
    of all (the one that creates it) waits a minute before it trains: long
    enough for a test to kill its worker in the middle of it."""
    real = getattr(_distributed, "_real_train_chunk", _distributed.train_chunk)
    line = {
        "pid": os.getpid(),
        "members": len(estimators),
        "hidden": sorted({list(e.hidden_layer_sizes)[0] for e in estimators}),
        "without_data": all(isinstance(t, str) for pair in tokens for t in pair)
        and not any(isinstance(e, np.ndarray) for e in estimators),
        "arrays": {k: id(v) for k, v in arrays.items()},
    }
    held = False
    if hold is not None:
        try:
            os.close(os.open(hold, os.O_CREAT | os.O_EXCL))
            held = True
        except FileExistsError:
            pass
    with open(path, "a") as f:
        f.write(json.dumps({**line, "event": "start", "held": held}) + "\n")
    if held:
        time.sleep(60)
    results = real(estimators, slots, tokens, arrays)
    with open(path, "a") as f:
        f.write(json.dumps({**line, "event": "end"}) + "\n")
    return results


def _chunk_log(path, hold, monkeypatch):
    monkeypatch.setattr(_distributed, "_real_train_chunk", _distributed.train_chunk,
                        raising=False)
    monkeypatch.setattr(
        _distributed, "train_chunk",
        functools.partial(_recording_train_chunk, str(path), hold and str(hold)),
    )

    def read():
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    return read


@pytest.fixture
def chunk_log(tmp_path, monkeypatch):
    """Records each chunk that starts and ends, wherever it trains:
    ``chunk_log()`` is the list of records."""
    return _chunk_log(tmp_path / "chunks.jsonl", None, monkeypatch)


@pytest.fixture
def held_chunk_log(tmp_path, monkeypatch):
    """:func:`chunk_log`, the first chunk held (see _recording_train_chunk)."""
    return _chunk_log(tmp_path / "chunks.jsonl", tmp_path / "hold", monkeypatch)


@pytest.fixture
def chunks(chunk_log):
    """The chunks that were trained (ended)."""
    return lambda: [r for r in chunk_log() if r["event"] == "end"]


@pytest.fixture
def here(count_calls):
    """Counts what trains in this process: batched groups, single fits
    (``'fits'``), and the fits that adopted a pretrained member."""
    count = {"groups": 0, "fits": 0, "adopted": 0}
    count_calls(_batched._BatchedGroup, "train", count, "groups")
    count_calls(_base._BaseNet, "_fit_stochastic", count, "fits")
    count_calls(_base._BaseNet, "_fit_lbfgs", count, "fits")
    count_calls(_pretrained, "take", count, "adopted", lambda fitted: fitted is not None)
    return count


def _assert_same_results(ours, theirs):
    """cv_results_ equal bit for bit (fit and score times aside)."""
    assert sorted(ours) == sorted(theirs)
    for key, want in theirs.items():
        if "time" in key:
            continue
        got = ours[key]
        if key.startswith("param") or key == "params":
            assert list(got) == list(want), key
        else:
            assert np.array_equal(np.asarray(got), np.asarray(want), equal_nan=True), key


# ----------------------------------------------------------------------------
# Without a cluster
# ----------------------------------------------------------------------------


def _fits(X, y, widths=(6, 12)):
    fits = []
    for width in widths:
        for lr in (1e-3, 1e-2):
            for split, (train, _) in enumerate(CV.split(X)):
                est = MLPClassifier((width,), learning_rate_init=lr, max_iter=3, device="cpu")
                fits.append(_distributed.Fit(est, split, X[train], y[train]))
    return fits


def _check_chunks(fits, chunks):
    """Every member in one chunk, of one structure; the costliest first."""
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(fits)))
    for chunk in chunks:
        assert len({fits[i].estimator.hidden_layer_sizes for i in chunk}) == 1
    costs = [sum(fits[i].cost() for i in chunk) for chunk in chunks]
    assert costs == sorted(costs, reverse=True)


def _estimated_end(fits, chunks, n_workers):
    return _distributed._makespan([sum(fits[i].cost() for i in c) for c in chunks], n_workers)


def test_chunks_balance_the_workers(data):
    X, y = data
    X = X / 16
    fits = _fits(X, y)
    one, n_structures = _distributed.chunk_members(fits, n_workers=1)
    assert len(one) == n_structures == 2  # one per width, as a local run trains them
    _check_chunks(fits, one)
    # one structure on two workers: two halves, dealt round-robin (each
    # mixes candidates and folds)
    same = _fits(X, y, widths=(12,))
    two, _ = _distributed.chunk_members(same, n_workers=2)
    assert sorted(map(len, two)) == [3, 3]
    assert all(len({same[i].slot for i in chunk}) > 1 for chunk in two)
    # a costly structure beside a cheap one: the costly one is split, so
    # that the workers' estimated loads end within 10 % of an even share
    # (whole structures would leave one worker with 29 times the other's)
    mixed = _fits(X, y, widths=(2, 256))
    whole, _ = _distributed.chunk_members(mixed, n_workers=1)
    assert len(whole) == 2
    for n_workers in (2, 3):  # 6 costly members: 3 and 3, or 2, 2 and 2
        chunks, _ = _distributed.chunk_members(mixed, n_workers=n_workers)
        _check_chunks(mixed, chunks)
        total = sum(fit.cost() for fit in mixed)
        assert _estimated_end(mixed, chunks, n_workers) <= 1.1 * total / n_workers
        assert _estimated_end(mixed, whole, n_workers) > 1.5 * total / n_workers
    # padded (GPU workers): the widths share a structure
    _, padded = _distributed.chunk_members(fits, n_workers=1, pad=True)
    assert padded == 1
    # a device too small for a whole structure: more, smaller chunks
    small, _ = _distributed.chunk_members(fits, n_workers=1, free=200_000)
    assert len(small) > 2 and max(map(len, small)) < 6


def test_member_cost_counts_the_cpu_step_overhead():
    from sknets.model_selection._batched import CPU_MEMBER_STEP, training_cost

    widths = [64, 32, 10]
    n_params = 64 * 32 + 32 + 32 * 10 + 10
    # 2 epochs of 100 rows in batches of 30: 4 steps per epoch
    assert training_cost(2, 100, 30, widths, cpu=False) == 2 * 3 * 100 * n_params
    assert training_cost(2, 100, 30, widths) == 2 * (3 * 100 * n_params + 4 * CPU_MEMBER_STEP)


def test_workers_plan_their_members_on_their_own_device(data, monkeypatch):
    """A chunk carries estimators, not plans: each worker sets up its
    members itself, so that ``device='auto'`` resolves on the worker (its
    GPU, where it has one). A fit that fails there comes back as None."""
    from sknets import _seam

    X, y = data
    X = X / 16
    devices = []
    plan = _seam.plan

    def recording_plan(estimator, X, y):
        result = plan(estimator, X, y)
        devices.append((estimator.device, result.device))
        return result

    monkeypatch.setattr(_seam, "plan", recording_plan)
    estimators = [MLPClassifier((4,), max_iter=2), MLPClassifier((4,), max_iter=2,
                                                                 early_stopping=True,
                                                                 validation_fraction=0.001)]
    results, seconds = _distributed.train_chunk(
        estimators, [0, 0], [("X", "y"), ("X", "y")], {"X": X, "y": y}
    )
    assert devices == [("auto", _distributed.resolve_device("auto"))]
    assert results[0].loss_curve and results[1] is None  # too small a validation split
    assert len(seconds) == 2 and all(t >= 0 for t in seconds)


def test_tensor_heap_sets_and_restores_the_malloc_thresholds(monkeypatch):
    calls = []

    class Libc:
        def mallopt(self, param, value):
            calls.append((param, value))

        def malloc_trim(self, pad):
            calls.append(("trim", pad))

    monkeypatch.setattr(_distributed, "_libc", Libc)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    with _distributed.tensor_heap():
        with _distributed.tensor_heap():  # nested (or concurrent): set once
            pass
        assert calls == [(-3, 32 * 2**20), (-1, 64 * 2**20)]
    assert calls[2:] == [(-3, 128 * 2**10), (-1, 65536), ("trim", 0)]
    calls.clear()
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    with _distributed.tensor_heap():  # glibc adapts by itself: untouched
        pass
    assert calls == []


def test_n_jobs_trains_each_member_once_on_local_processes(data, chunks, here, capsys):
    """n_jobs=2 without a cluster: the chunks train on joblib's local
    processes, each member once; scikit-learn's fits adopt them here."""
    X, y = data
    local = GridSearchCV(_pipe(), GRID, cv=CV).fit(X, y)
    here.update(groups=0, fits=0, adopted=0)
    ours = GridSearchCV(_pipe(), GRID, cv=CV, n_jobs=2, verbose=1).fit(X, y)
    assert "on 2 joblib worker(s)" in capsys.readouterr().out
    records = chunks()
    assert sum(r["members"] for r in records) == 12
    assert all(r["pid"] != os.getpid() for r in records)
    assert here == {"groups": 0, "fits": 1, "adopted": 12}  # the refit is an ordinary fit
    assert ours.n_jobs == 2
    _assert_same_results(ours.cv_results_, local.cv_results_)
    for a, b in zip(ours.best_estimator_[-1].coefs_, local.best_estimator_[-1].coefs_):
        assert np.array_equal(a, b)


# ----------------------------------------------------------------------------
# On a LocalCluster
# ----------------------------------------------------------------------------


def test_grid_search_on_a_cluster_equals_the_local_run(client, data, chunks, here, capsys,
                                                       monkeypatch):
    X, y = data
    local = GridSearchCV(_pipe(), GRID, cv=CV, return_train_score=True).fit(X, y)
    here.update(groups=0, fits=0, adopted=0)
    from sknets import _seam

    planned_here = []
    monkeypatch.setattr(_seam, "plan", lambda *args: planned_here.append(args))
    with _on(client):
        ours = GridSearchCV(_pipe(), GRID, cv=CV, verbose=1, return_train_score=True)
        ours.fit(X, y)
    out = capsys.readouterr().out
    assert "[sknets] trained 12 fit(s) as 2 batched network(s) in" in out
    assert "on 2 Dask worker thread(s)" in out
    # every member trained once, on the workers; scikit-learn's fits adopt
    # them here, the refit trains here as in scikit-learn
    records = chunks()
    assert sum(r["members"] for r in records) == 12
    assert {r["pid"] for r in records} <= set(client.run(os.getpid).values())
    assert here == {"groups": 0, "fits": 1, "adopted": 12}
    assert planned_here == []  # the workers set the members up
    _assert_same_results(ours.cv_results_, local.cv_results_)
    assert ours.best_params_ == local.best_params_
    assert ours.best_score_ == local.best_score_
    for a, b in zip(ours.best_estimator_[-1].coefs_, local.best_estimator_[-1].coefs_):
        assert np.array_equal(a, b)


def test_randomized_search_and_cross_validation_on_a_cluster(client, data, here):
    X, y = data
    dist = {"mlpclassifier__learning_rate_init": [1e-3, 3e-3, 1e-2], "mlpclassifier__alpha":
            [1e-4, 1e-2]}
    local = RandomizedSearchCV(_pipe(), dist, n_iter=3, cv=CV, random_state=0).fit(X, y)
    local_cv = cross_validate(_pipe(), X, y, cv=CV, return_estimator=True,
                              scoring=["accuracy", "neg_log_loss"])
    local_score = cross_val_score(_pipe(), X, y, cv=CV)
    here.update(groups=0, fits=0, adopted=0)
    with _on(client):
        ours = RandomizedSearchCV(_pipe(), dist, n_iter=3, cv=CV, random_state=0).fit(X, y)
        ours_cv = cross_validate(_pipe(), X, y, cv=CV, return_estimator=True,
                                 scoring=["accuracy", "neg_log_loss"])
        ours_score = cross_val_score(_pipe(), X, y, cv=CV)
    assert here["groups"] == 0 and here["adopted"] == 9 + 3 + 3
    _assert_same_results(ours.cv_results_, local.cv_results_)
    for key in ("test_accuracy", "test_neg_log_loss"):
        assert np.array_equal(ours_cv[key], local_cv[key])
    for a, b in zip(ours_cv["estimator"], local_cv["estimator"]):
        assert np.array_equal(a[-1].coefs_[0], b[-1].coefs_[0])
    assert np.array_equal(ours_score, local_score)


def test_halving_search_on_a_cluster_equals_the_local_run(client, data, chunks, here, capsys):
    """Each iteration's members train on the workers (3 iterations of 4, 2
    and 1 candidates on 75, 150 and 300 rows); scikit-learn's fits adopt
    them here."""
    X, y = data
    grid = {"mlpclassifier__learning_rate_init": [1e-3, 3e-3, 1e-2, 3e-2]}
    kwargs = dict(cv=CV, factor=2, random_state=0)
    local = HalvingGridSearchCV(_pipe(batch_size=32), grid, **kwargs).fit(X, y)
    here.update(groups=0, fits=0, adopted=0)
    with _on(client):
        ours = HalvingGridSearchCV(_pipe(batch_size=32), grid, verbose=1, **kwargs).fit(X, y)
    out = capsys.readouterr().out
    assert out.count("on 2 Dask worker thread(s)") == 3  # every iteration
    assert ours.n_candidates_ == [4, 2, 1] and ours.n_resources_ == [75, 150, 300]
    assert sum(r["members"] for r in chunks()) == 12 + 6 + 3
    assert here == {"groups": 0, "fits": 1, "adopted": 21}  # the refit is an ordinary fit
    _assert_same_results(ours.cv_results_, local.cv_results_)
    for a, b in zip(ours.best_estimator_[-1].coefs_, local.best_estimator_[-1].coefs_):
        assert np.array_equal(a, b)


def test_the_data_goes_once_to_each_worker(client, data, chunks, monkeypatch):
    """Each distinct training fold goes to the cluster once, as a task of
    its own; the chunk tasks carry estimators and the names of their
    arrays, and the chunks one worker trains read the same copy."""
    X, y = data
    submitted = []
    submit = distributed.Client.submit

    def recording_submit(self, func, *args, **kwargs):
        submitted.append(kwargs.get("key", ""))
        return submit(self, func, *args, **kwargs)

    monkeypatch.setattr(distributed.Client, "submit", recording_submit)
    grid = {"mlpclassifier__learning_rate_init": [1e-3, 3e-3, 1e-2, 3e-2]}
    with _on(client):
        GridSearchCV(_pipe(), grid, cv=CV).fit(X, y)
    # 3 folds: their X and their y, once each
    data_keys = [k for k in submitted if k.startswith("sknets-data-")]
    assert len(data_keys) == 6
    records = chunks()
    assert len(records) >= 2 and all(r["without_data"] for r in records)
    assert sum(r["members"] for r in records) == 12
    by_worker = {}
    for r in records:
        for key, ident in r["arrays"].items():
            by_worker.setdefault((r["pid"], key), set()).add(ident)
    assert all(len(ids) == 1 for ids in by_worker.values())


def test_the_costliest_chunk_left_goes_to_the_first_free_worker(client, data, chunk_log,
                                                                 monkeypatch):
    """One chunk per worker thread in flight, the costliest left first: a
    cheap chunk never waits in a worker's queue ahead of a costly one."""
    X, y = data
    submit = distributed.Client.submit
    in_flight = []  # chunks submitted and not yet ended, at each submission

    def recording_submit(self, func, *args, **kwargs):
        if kwargs.get("key", "").startswith("train_chunk-"):
            ended = sum(r["event"] == "end" for r in chunk_log())
            in_flight.append(len(in_flight) - ended)
        return submit(self, func, *args, **kwargs)

    monkeypatch.setattr(distributed.Client, "submit", recording_submit)
    grid = {"mlpclassifier__hidden_layer_sizes": [(4,), (8,), (16,), (64,), (128,)]}
    with _on(client):
        GridSearchCV(_pipe(), grid, cv=CV).fit(X, y)
    records = chunk_log()
    starts = [r for r in records if r["event"] == "start"]
    assert len(starts) >= 5 and sum(r["members"] for r in starts) == 15
    assert len(in_flight) == len(starts)
    assert max(in_flight) <= 1  # so never more than 2 (the worker threads)
    # the widest (costliest) members start first, the narrowest last
    assert starts[0]["hidden"] == [128] or starts[1]["hidden"] == [128]
    assert starts[-1]["hidden"] == [4]


def test_unbatched_fits_run_on_the_workers_as_scikit_learn_tasks(client, data, here):
    """A search whose estimator is not batched (L-BFGS) sends its fits to
    the workers as scikit-learn does, and says why, once."""
    X, y = data
    pipe = _pipe(solver="lbfgs", max_iter=5)
    grid = {"mlpclassifier__alpha": [1e-4, 1e-1]}
    theirs = sk.GridSearchCV(pipe, grid, cv=CV).fit(X, y)
    here.update(groups=0, fits=0, adopted=0)
    with _on(client), pytest.warns(UserWarning) as record:
        ours = GridSearchCV(pipe, grid, cv=CV).fit(X, y)
    ours_warnings = [w for w in record if "sknets.model_selection" in str(w.message)]
    assert len(ours_warnings) == 1
    message = str(ours_warnings[0].message)
    assert "all fits are trained one by one as scikit-learn's tasks on 2 Dask worker" in message
    assert "solver='lbfgs'" in message
    assert here == {"groups": 0, "fits": 1, "adopted": 0}  # only the refit here
    _assert_same_results(ours.cv_results_, theirs.cv_results_)


def test_error_score_on_a_cluster(client, data):
    """A member that diverges gets error_score, as in a local run."""
    X, y = data
    grid = {"mlpclassifier__learning_rate_init": [1e-2, 1e9]}
    pipe = _pipe(precision="float32", solver="sgd", momentum=0.0)
    with pytest.warns(FitFailedWarning, match="diverged"):
        local = GridSearchCV(pipe, grid, cv=CV, error_score=-1.0).fit(X, y)
    with _on(client):
        with pytest.warns(FitFailedWarning, match="diverged"):
            ours = GridSearchCV(pipe, grid, cv=CV, error_score=-1.0).fit(X, y)
        assert ours.cv_results_["mean_test_score"][1] == -1.0
        np.testing.assert_allclose(
            ours.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"],
            rtol=0, atol=1e-6,
        )
        with pytest.raises(ValueError, match="diverged"):
            GridSearchCV(pipe, grid, cv=CV, error_score="raise").fit(X, y)


def _kill_the_held_worker(log, killed, stop):
    """In a thread: wait until a worker holds the first chunk, then SIGKILL
    it (in the middle of that chunk)."""
    while not stop.is_set():
        held = [r["pid"] for r in log() if r.get("held")]
        if held:
            os.kill(held[0], signal.SIGKILL)
            killed.append(held[0])
            return
        time.sleep(0.02)


def _fit_killing_a_worker(client, search, X, y, log):
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=_kill_the_held_worker, args=(log, killed, stop))
    killer.start()
    try:
        with _on(client):
            search.fit(X, y)
    finally:
        stop.set()
        killer.join()
        assert len(killed) == 1
    return killed[0]


def test_a_chunk_of_a_killed_worker_is_retried_elsewhere(client, data, held_chunk_log):
    """A worker killed in the middle of a chunk: the scheduler trains the
    chunk again on another worker, and the search ends with the results of
    a local run."""
    X, y = data
    client.wait_for_workers(2)
    search = GridSearchCV(_pipe(), {"mlpclassifier__alpha": [1e-4, 1e-2]}, cv=CV)
    killed = _fit_killing_a_worker(client, search, X, y, held_chunk_log)
    records = held_chunk_log()
    # the killed worker died in the middle of a chunk...
    events = [r["event"] for r in records if r["pid"] == killed]
    assert events.count("start") == events.count("end") + 1
    # ...and every member was trained to its end elsewhere, once
    assert sum(r["members"] for r in records if r["event"] == "end") == 6
    local = GridSearchCV(_pipe(), {"mlpclassifier__alpha": [1e-4, 1e-2]}, cv=CV).fit(X, y)
    _assert_same_results(search.cv_results_, local.cv_results_)


def test_a_chunk_the_cluster_loses_is_a_clear_error(client, data, held_chunk_log):
    """With no retry allowed, the killed worker's chunk is lost: the search
    raises a clear error, keeps no partial result, and is left as it was."""
    X, y = data
    search = GridSearchCV(_pipe(), {"mlpclassifier__alpha": [1e-4]}, cv=CV).fit(X, y)
    search.set_params(param_grid={"mlpclassifier__alpha": [1e-4, 1e-2]})
    before = dict(vars(search))

    def set_allowed_failures(n, dask_scheduler=None):
        old = dask_scheduler.allowed_failures
        dask_scheduler.allowed_failures = n
        return old

    client.wait_for_workers(2)
    old = client.run_on_scheduler(set_allowed_failures, 0)
    try:
        with pytest.raises(ClusterError, match="lost a chunk"):
            _fit_killing_a_worker(client, search, X, y, held_chunk_log)
    finally:
        client.run_on_scheduler(set_allowed_failures, old)
    assert vars(search).keys() == before.keys()
    assert all(vars(search)[k] is v for k, v in before.items())
