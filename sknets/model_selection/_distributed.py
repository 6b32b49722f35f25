"""Where the batched members train: in this process, on local joblib
workers (``n_jobs``), or on the Dask cluster of joblib's ``'dask'`` backend.

The search decides the place before scikit-learn's code runs
(:func:`find_place`), from what a scikit-learn user already sets:

* inside ``with joblib.parallel_config(backend="dask"):`` (or the older
  ``joblib.parallel_backend("dask")``), the chunks of members train on that
  backend's :class:`distributed.Client`, whatever ``n_jobs`` says (as
  joblib's Dask backend ignores it too);
* otherwise, with ``n_jobs`` > 1 (``-1``: all cores; or joblib's own
  ``parallel_config(n_jobs=...)``), on joblib's workers, local processes by
  default;
* otherwise in this process.

:func:`train_members` splits the members (:class:`Fit`: an unfitted
estimator and its preprocessed training fold) into chunks
(:func:`chunk_members`), sends every distinct array to the workers once
(on Dask, as a task of its own, which a worker copies from a peer and the
scheduler computes again if its worker dies) and each chunk as its
estimators and the names of its arrays. A worker plans its chunk's fits
with :func:`sknets._seam.plan`, on its own device (``device='auto'``
resolves there), trains them with
:func:`sknets.model_selection._batched.train_plans` (:func:`train_chunk`)
and sends back their :class:`~sknets._seam.TrainingResult` objects, which
the search adopts here as it adopts those trained here: all of them, or an
error, never a part.
"""

import contextlib
import ctypes
import dataclasses
import hashlib
import heapq
import math
import os
import sys
import threading
import time
import uuid
import warnings
from collections import defaultdict

import joblib
import numpy as np
import torch
from joblib.parallel import get_active_backend
from sklearn.base import is_classifier

from .. import _seam
from .._engine import resolve_device
from ._batched import CPU_MEMBER_STEP, PER_MEMBER, n_parameters, train_plans, training_cost


class ClusterError(RuntimeError):
    """The Dask cluster lost a chunk of batched members.

    Raised by the searches and cross-validations of
    :mod:`sknets.model_selection` when the workers training a chunk died
    more often than the scheduler's ``distributed.scheduler.allowed-failures``
    allows, or the connection to the scheduler was lost. The search keeps no
    result of any chunk and is left as it was before ``fit``; the error it
    got from Dask is its ``__cause__``.

    See Also
    --------
    sknets.model_selection.GridSearchCV : A search that raises it.
    sknets.model_selection.cross_validate : A cross-validation that raises it.

    Examples
    --------
    >>> from sknets.model_selection import ClusterError
    >>> issubclass(ClusterError, RuntimeError)
    True
    >>> try:
    ...     raise ClusterError("a chunk was lost") from OSError("worker died")
    ... except ClusterError as exc:
    ...     print(repr(exc.__cause__))
    OSError('worker died')
    """


@dataclasses.dataclass
class Place:
    """Where the chunks of members train.

    ``kind``: ``'here'`` (this process), ``'joblib'`` (``n_workers`` workers
    of the joblib ``backend`` active when the search started) or ``'dask'``
    (``client``'s workers, ``n_workers`` threads in all; ``submit_kwargs``
    are those given to joblib's Dask backend, such as ``resources``).
    """

    kind: str = "here"
    n_workers: int = 1
    backend: object = None
    client: object = None
    submit_kwargs: dict = dataclasses.field(default_factory=dict)

    @property
    def elsewhere(self):
        return self.kind != "here"

    def __str__(self):
        if self.kind == "dask":
            return f"{self.n_workers} Dask worker thread(s)"
        if self.kind == "joblib":
            return f"{self.n_workers} joblib worker(s)"
        return "this process"


def find_place(n_jobs):
    """The :class:`Place` of a search with this ``n_jobs``, under the joblib
    backend active now (see the module docstring)."""
    backend, _ = get_active_backend()
    client = getattr(backend, "client", None)
    distributed = sys.modules.get("distributed")
    if client is not None and distributed is not None and isinstance(client, distributed.Client):
        # joblib's Dask backend: its client, its submit options; it waits
        # (wait_for_workers_timeout) for a cluster that has no worker yet
        n_workers = int(backend.effective_n_jobs(-1))
        return Place(
            "dask",
            n_workers=max(1, n_workers),
            client=client,
            submit_kwargs=dict(getattr(backend, "submit_kwargs", None) or {}),
        )
    n = joblib.effective_n_jobs(n_jobs)
    if n > 1:
        return Place("joblib", n_workers=n, backend=backend)
    return Place()


# ----------------------------------------------------------------------------
# Fits and chunks
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Fit:
    """One member to plan and train: an unfitted ``estimator`` (the final
    step, with its candidate's parameters), its ``slot`` (the name of its
    training set, shared by the members that train on the same rows) and
    that training set ``X, y``, preprocessed."""

    estimator: object
    slot: object
    X: object
    y: object

    def widths(self):
        """Input, hidden and output widths (the output estimated from y)."""
        est = self.estimator
        hidden = est.hidden_layer_sizes
        hidden = [hidden] if np.ndim(hidden) == 0 else list(hidden)
        y = np.asarray(self.y)
        if y.ndim > 1:
            n_out = y.shape[1]
        elif is_classifier(est):
            n_out = len(np.unique(y))
        else:
            n_out = 1
        return [int(np.prod(np.shape(self.X)[1:])), *map(int, hidden), n_out]

    def _batch(self, rows):
        batch = self.estimator.batch_size
        return min(200, rows) if batch == "auto" else min(int(batch), rows)

    def _schedule(self):
        """Its epoch budget, training rows and batch size."""
        est = self.estimator
        rows = len(self.X)
        if est.early_stopping:
            rows -= math.ceil(est.validation_fraction * rows)
        rows = max(1, rows)
        return int(est.max_iter), rows, self._batch(rows)

    def cost(self, cpu=True):
        """An estimate of the work of training it
        (:func:`~sknets.model_selection._batched.training_cost` of its epoch
        budget, training rows, batch size and widths; ``cpu``: on a CPU)."""
        return training_cost(*self._schedule(), self.widths(), cpu)

    def steps(self):
        """Its training steps, at most (its epoch budget)."""
        epochs, rows, batch = self._schedule()
        return epochs * math.ceil(rows / max(1, batch))

    def structure(self, pad):
        """Its structure as far as the parameters and data tell (the worker
        groups its chunk by the plans' exact structure again)."""
        params = self.estimator.get_params(deep=False)
        shared = tuple(sorted((k, repr(v)) for k, v in params.items() if k not in PER_MEMBER))
        widths = self.widths()
        return (
            type(self.estimator).__name__, shared, len(widths),
            () if pad else tuple(widths[1:-1]), widths[0], widths[-1],
        )

    def nbytes(self):
        """Device memory of the member while it trains (as the batched
        trainer estimates it when it splits a structure into chunks)."""
        widths = self.widths()
        rows = len(self.X)
        batch = self._batch(rows)
        return 8 * (5 * n_parameters(widths) + 4 * batch * sum(widths) + rows * widths[0])


def _safely(method, fit, *args):
    try:
        return method(fit, *args)
    except Exception:  # parameters that its fit refuses: it raises there
        return None


def chunk_members(fits, n_workers, pad=False, free=None):
    """The :class:`Fit` objects as chunks (lists of indices into ``fits``),
    costliest first, and the number of structures.

    Members of one structure share a chunk. With one worker, each structure
    is one chunk, as in a local run. With more, structures are split into
    more chunks (their members dealt round-robin, so that each chunk mixes
    candidates and folds) until the workers, taking the costliest chunk
    left whenever one is free, end together (:func:`_balance`, on the
    estimated :meth:`Fit.cost`). No chunk needs more than a quarter of
    ``free`` bytes (None: 4 GiB; the worker splits a chunk further to fit
    its own device). ``pad``: the workers are GPUs, which train members of
    different hidden widths as one padded network.
    """
    groups = defaultdict(list)
    for i, fit in enumerate(fits):
        groups[_safely(Fit.structure, fit, pad) or ("unknown", i)].append(i)
    groups = list(groups.values())
    costs = [_safely(Fit.cost, fit, not pad) or 1 for fit in fits]
    sizes = [_safely(Fit.nbytes, fit) or 1 for fit in fits]
    free = 4 * 2**30 if free is None else free
    # the fewest chunks that fit in the device memory
    pieces = []
    for idx in groups:
        cap = max(1, int(0.25 * free // max(sizes[i] for i in idx)))
        pieces.append(min(len(idx), math.ceil(len(idx) / cap)))
    if n_workers > 1:
        # a chunk's own work per step: CHUNK_MEMBERS members' step overhead
        steps = [_safely(Fit.steps, fit) or 0 for fit in fits]
        own = [0 if pad else CHUNK_MEMBERS * CPU_MEMBER_STEP * max(steps[i] for i in idx)
               for idx in groups]
        pieces = _balance(groups, costs, own, pieces, n_workers)
    chunks = [idx[c::n] for idx, n in zip(groups, pieces) for c in range(n)]
    chunks.sort(key=lambda chunk: -sum(costs[i] for i in chunk))
    return chunks, len(groups)


#: On a CPU, a chunk's own work per step, beyond its members' (its batched
#: kernels and their Python), as this many members' step overhead
#: (:data:`~sknets.model_selection._batched.CPU_MEMBER_STEP`): splitting
#: a structure is not free (``benchmarks/member_cost.py``: 30 to 250 µs
#: per step for hidden widths up to 64, against about 50 µs per member).
CHUNK_MEMBERS = 3


def _makespan(chunk_costs, n_workers):
    """When the last of ``n_workers`` equal workers ends, each taking the
    costliest chunk left whenever it is free (the chunks' priorities)."""
    loads = [0.0] * n_workers
    for cost in sorted(chunk_costs, reverse=True):
        heapq.heapreplace(loads, loads[0] + cost)
    return max(loads)


def _balance(groups, costs, own, pieces, n_workers):
    """The number of chunks of each structure that lets ``n_workers``
    workers end soonest. ``groups``: each structure's members (indices into
    ``costs``), ``own``: the cost of each of its chunks beyond its members',
    ``pieces``: the fewest chunks each needs.

    From ``pieces``, the structure with the costliest chunk is split into
    one more chunk at a time while the estimated end (:func:`_makespan`)
    is above the ideal; the best split seen is kept."""

    def chunk_costs(g, n):
        idx = groups[g]
        return [own[g] + sum(costs[i] for i in idx[c::n]) for c in range(n)]

    pieces = list(pieces)
    per = [chunk_costs(g, n) for g, n in enumerate(pieces)]
    ideal = sum(map(sum, per)) / n_workers
    best, best_pieces = _makespan([c for cs in per for c in cs], n_workers), list(pieces)
    for _ in range(4 * n_workers * len(groups)):
        if best <= 1.01 * ideal:
            break
        splittable = [g for g, idx in enumerate(groups) if pieces[g] < len(idx)]
        if not splittable:
            break
        g = max(splittable, key=lambda g: max(per[g]))
        pieces[g] += 1
        per[g] = chunk_costs(g, pieces[g])
        end = _makespan([c for cs in per for c in cs], n_workers)
        if end < best:
            best, best_pieces = end, list(pieces)
    return best_pieces


def _data_tokens(fits):
    """Each fit's ``(X, y)`` as tokens into one table of distinct arrays (the
    same object, or equal bytes, is one entry)."""
    table, by_id, by_digest, tokens = {}, {}, {}, []

    def token(a):
        if id(a) in by_id:
            return by_id[id(a)][0]
        arr = np.asarray(a)
        if arr.dtype == object:
            digest = repr((arr.shape, arr.tolist()))
        else:
            h = hashlib.blake2b(np.ascontiguousarray(arr).view(np.uint8).reshape(-1),
                                digest_size=16)
            h.update(repr((arr.shape, arr.dtype.str)).encode())
            digest = h.hexdigest()
        key = by_digest.setdefault(digest, f"a{len(by_digest)}")
        table.setdefault(key, a)
        # the object is kept (in by_id) so that its id is not reused
        by_id[id(a)] = (key, a)
        return key

    for fit in fits:
        tokens.append((token(fit.X), token(fit.y)))
    return table, tokens


def plan_and_train(estimators, slots, data):
    """Plan each ``estimator`` on its ``(X, y)`` of ``data``
    (:func:`sknets._seam.plan`, on this process's device: ``device='auto'``
    resolves here) and train the plans
    (:func:`~sknets.model_selection._batched.train_plans`).

    Returns ``(results, plan_seconds)``: a
    :class:`~sknets._seam.TrainingResult` per estimator, or None where its
    fit fails before training (the search then runs that fit itself, which
    raises the error), and the seconds each plan took.
    """
    plans, index, seconds = [], [], []
    for i, (estimator, (X, y)) in enumerate(zip(estimators, data)):
        start = time.perf_counter()
        try:
            plans.append(_seam.plan(estimator, X, y))
            index.append(i)
        except Exception:  # the search's own fit raises it, as scikit-learn would
            pass
        seconds.append(time.perf_counter() - start)
    results = [None] * len(estimators)
    if plans:
        trained, _ = train_plans(plans, slots=[slots[i] for i in index])
        for i, result in zip(index, trained):
            results[i] = result
    return results, seconds


#: glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_HEAP = {"lock": threading.Lock(), "users": 0}


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") else None
    except OSError:  # not glibc
        return None


@contextlib.contextmanager
def tensor_heap():
    """Let glibc's malloc keep freed tensor memory for reuse while a chunk
    trains, then restore the process's setting and give the memory back.

    Dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``
    (``distributed.nanny.pre-spawn-environ``), which also turns off glibc's
    sliding mmap threshold: every tensor over 128 KiB is then mapped and
    unmapped anew, and its pages faulted in at each training step (measured
    on 2 CPU cores: a chunk of 45 members 2.4 times slower than in a plain
    process). While a chunk trains, allocations up to 32 MiB come from the
    heap, which is trimmed only past 64 MiB free; after it, the thresholds
    of the environment (glibc's defaults where unset) are set back and the
    free memory is trimmed, as Dask intends. Nothing changes where neither
    variable is set (glibc then adapts its thresholds by itself) or off
    glibc.
    """
    trim = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    mmap = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    libc = _libc() if trim is not None or mmap is not None else None
    if libc is None:
        yield
        return
    with _HEAP["lock"]:
        if _HEAP["users"] == 0:
            libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
            libc.mallopt(_M_TRIM_THRESHOLD, 64 * 2**20)
        _HEAP["users"] += 1
    try:
        yield
    finally:
        with _HEAP["lock"]:
            _HEAP["users"] -= 1
            if _HEAP["users"] == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, int(mmap) if mmap else 128 * 2**10)
                libc.mallopt(_M_TRIM_THRESHOLD, int(trim) if trim else 128 * 2**10)
                libc.malloc_trim(0)


def train_chunk(estimators, slots, tokens, arrays):
    """On a worker: plan and train one chunk of members
    (:func:`plan_and_train`), their data given as ``tokens`` into
    ``arrays`` (scattered once to every worker)."""
    data = [(arrays[x], arrays[y]) for x, y in tokens]
    with tensor_heap():
        return plan_and_train(estimators, slots, data)


def worker_device():
    """On a worker: ``(device type, free bytes of its device memory or None)``
    for ``device='auto'``."""
    device = resolve_device("auto")
    if device.type == "cuda":
        return device.type, int(torch.cuda.mem_get_info(device)[0])
    return device.type, None


# ----------------------------------------------------------------------------
# Training the members where the place says
# ----------------------------------------------------------------------------


def train_members(fits, place):
    """Plan and train the :class:`Fit` objects at ``place``; returns
    ``(results, plan_seconds, n_structures, n_chunks, where)``: per fit its
    :class:`~sknets._seam.TrainingResult` (None where its fit fails before
    training) and the seconds its plan took, the structures and chunks, and
    the place they trained at."""
    if place.kind == "dask" and len(fits) > 1:
        return _on_dask(fits, place)
    # on a GPU, one process already trains a chunk's members in parallel:
    # local processes would each add a CUDA context, and nothing else
    gpu = any(
        str(getattr(fit.estimator, "device", "cpu")).startswith("cuda")
        or (getattr(fit.estimator, "device", None) == "auto" and torch.cuda.is_available())
        for fit in fits
    )
    if place.kind == "joblib" and len(fits) > 1 and not gpu:
        return _on_joblib(fits, place)
    _, n_structures = chunk_members(fits, 1)
    results, seconds = plan_and_train(
        [fit.estimator for fit in fits], [fit.slot for fit in fits],
        [(fit.X, fit.y) for fit in fits],
    )
    return results, seconds, n_structures, n_structures, Place()


def _chunk_calls(fits, chunks, arrays, tokens):
    """``(estimators, slots, tokens, arrays)`` of each chunk: its members
    and only the arrays it reads."""
    for chunk in chunks:
        needed = sorted({k for i in chunk for k in tokens[i]})
        yield (
            [fits[i].estimator for i in chunk],
            [fits[i].slot for i in chunk],
            [tokens[i] for i in chunk],
            {k: arrays[k] for k in needed},
        )


def _in_order(n, chunks, outs):
    results, seconds = [None] * n, [0.0] * n
    for chunk, (chunk_results, chunk_seconds) in zip(chunks, outs):
        for i, result, second in zip(chunk, chunk_results, chunk_seconds):
            results[i], seconds[i] = result, second
    return results, seconds


def _on_joblib(fits, place):
    """The chunks as tasks of joblib's backend (local processes by
    default), ``place.n_workers`` at a time."""
    table, tokens = _data_tokens(fits)
    chunks, n_structures = chunk_members(fits, place.n_workers)
    parallel = joblib.Parallel(n_jobs=place.n_workers, backend=place.backend)
    outs = parallel(
        joblib.delayed(train_chunk)(*call) for call in _chunk_calls(fits, chunks, table, tokens)
    )
    return (*_in_order(len(fits), chunks, outs), n_structures, len(chunks), place)


def _lost(exc):
    """Whether ``exc`` says that the cluster lost the task (not that the
    task raised)."""
    import asyncio
    import concurrent.futures

    import distributed

    lost = (
        distributed.KilledWorker,
        distributed.comm.CommClosedError,
        asyncio.CancelledError,
        concurrent.futures.CancelledError,
    )
    return isinstance(exc, lost)


def _on_dask(fits, place):
    """The chunks as tasks of ``place.client``, each array sent once to each
    worker that needs it; all results, or :class:`ClusterError`."""
    client = place.client
    # each worker's device for device='auto', to pad (all CUDA) and to size
    # the chunks (the smallest free GPU memory); a worker that cannot answer
    # now is left out
    devices = client.run(worker_device, on_error="ignore") or {}
    kinds = [kind for kind, _ in devices.values()]
    pad = bool(kinds) and all(kind == "cuda" for kind in kinds)
    frees = [free for _, free in devices.values() if free is not None]
    chunks, n_structures = chunk_members(
        fits, place.n_workers, pad=pad, free=min(frees) if frees else None
    )
    table, tokens = _data_tokens(fits)
    # each distinct array as a task of its own: computed on one worker and
    # copied once to each other worker that needs it, and, unlike scattered
    # data (of which the scheduler keeps one replica), computed again when
    # the worker that held it dies
    search = uuid.uuid4().hex
    with warnings.catch_warnings():
        # the data is meant to travel in the graph
        warnings.filterwarnings("ignore", message=".*[Ll]arge graph")
        arrays = {
            k: client.submit(_array, a, key=f"sknets-data-{k}-{search}", pure=False)
            for k, a in table.items()
        }
    # the costliest chunk left goes to the first worker thread that is free:
    # at most one chunk per thread is in flight, so that no cheap chunk
    # waits in a worker's queue, or for its data, ahead of a costly one
    import distributed

    calls = iter(enumerate(_chunk_calls(fits, chunks, arrays, tokens)))
    futures, outs = {}, [None] * len(chunks)
    running = distributed.as_completed()

    def submit():
        rank, call = next(calls, (None, None))
        if call is not None:
            options = {"pure": False, **place.submit_kwargs}
            options["priority"] = options.get("priority", 0) + len(chunks) - rank
            options["key"] = f"train_chunk-{uuid.uuid4().hex}"
            future = client.submit(train_chunk, *call, **options)
            futures[future] = rank
            running.add(future)

    try:
        for _ in range(max(1, place.n_workers)):
            submit()
        for future in running:
            outs[futures[future]] = future.result()
            submit()
    except BaseException as exc:
        client.cancel(list(futures))
        if _lost(exc):
            raise ClusterError(
                f"The Dask cluster lost a chunk of batched members ({exc!r}); the "
                "search stops here and keeps no result. A chunk whose worker dies is "
                "retried on another worker until the scheduler's "
                "'distributed.scheduler.allowed-failures' is reached."
            ) from exc
        raise
    finally:
        client.cancel(list(arrays.values()))
    return (*_in_order(len(fits), chunks, outs), n_structures, len(chunks), place)


def _array(a):
    """A data task: the array it was given."""
    return a
