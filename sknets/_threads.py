"""The CPU state of a fit: torch's intra-op threads (the one policy of
single and batched fits) and the flushing of denormal floats.

A fit's float sums depend on how many threads compute them, so the number
of threads is a function of the fit alone, never of the machine's load or
of other fits running in other threads: the same ``random_state`` gives
the same model, bit for bit, alone or beside other fits. The rule
(:func:`fit_threads`), per CPU fit:

1. If the user chose torch's threads (``OMP_NUM_THREADS`` or
   ``MKL_NUM_THREADS`` in the environment, or ``torch.set_num_threads`` to
   another value than torch's default), their setting is used as it is.
2. Otherwise a step of fewer than :data:`SMALL_STEP` multiply-adds runs on
   one thread: its operators are too small for a second thread to pay for
   waking it.
3. Otherwise the fit takes the cores this process may run on
   (``os.sched_getaffinity``), at most torch's default.

torch's thread count is per Python thread (OpenMP's and MKL's settings are
thread-local), and a new thread starts from the last count set anywhere in
the process. So each fit sets its count in its own thread and puts the
caller's back when it ends; while fits are in flight, the user's setting is
read from what it was when the first of them began, not from a thread that
may have started inside another fit.
"""

import contextlib
import os
import threading

import torch

#: Below this many multiply-adds per training step (batch rows times
#: parameters, summed over the members of a batched step), a CPU fit runs
#: torch on one thread (see ``benchmarks/RESULTS.md`` for the measurements
#: behind it).
SMALL_STEP = 2**22

#: torch's own default number of threads, before anyone changed it (torch
#: reads OMP_NUM_THREADS itself; without it, the number of cores)
_TORCH_DEFAULT = torch.get_num_threads() if "OMP_NUM_THREADS" not in os.environ else None

_THREADS_LOCK = threading.Lock()
#: fits in flight, and the caller's count when the first of them began
_THREADS = {"users": 0, "before": None}
#: how deep this Python thread is inside fits
_NESTED = threading.local()


def _environment_threads():
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        try:
            n = int(os.environ.get(key, "").split(",")[0])
        except ValueError:
            continue
        if n > 0:
            return n
    return None


def user_threads():
    """The intra-op threads the user chose, or None when nobody did."""
    env = _environment_threads()
    if env is not None:
        return env
    # inside other fits, this thread may have started from their setting
    current = _THREADS["before"] if _THREADS["users"] else torch.get_num_threads()
    if _TORCH_DEFAULT is not None and current != _TORCH_DEFAULT:
        return current
    return None


def usable_cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def fit_threads(step_work):
    """The intra-op threads of a CPU fit whose steps do ``step_work``
    multiply-adds (the rule of the module docstring)."""
    chosen = user_threads()
    if chosen is not None:
        return chosen
    if step_work < SMALL_STEP:
        return 1
    return max(1, min(_TORCH_DEFAULT or usable_cores(), usable_cores()))


@contextlib.contextmanager
def intra_op_threads(n):
    """Run torch's CPU operators of this thread on ``n`` threads, then put
    this thread's setting back (the user's, when it started inside another
    fit)."""
    with _THREADS_LOCK:
        mine = torch.get_num_threads()
        if _THREADS["users"] == 0:
            _THREADS["before"] = mine
        elif not getattr(_NESTED, "depth", 0):
            # a thread that may have started inside another fit
            mine = _THREADS["before"]
        _THREADS["users"] += 1
    _NESTED.depth = getattr(_NESTED, "depth", 0) + 1
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        _NESTED.depth -= 1
        with _THREADS_LOCK:
            _THREADS["users"] -= 1
        if torch.get_num_threads() != mine:
            torch.set_num_threads(mine)


def step_threads(device, step_work):
    """The threads of a fit whose training steps do ``step_work``
    multiply-adds (:func:`fit_threads`); torch's setting on other devices."""
    if torch.device(device).type != "cpu":
        return contextlib.nullcontext()
    with _THREADS_LOCK:
        n = fit_threads(step_work)
    return intra_op_threads(n)


_LOCAL = threading.local()


def _denormals_flushed():
    """Whether this thread's CPU flushes denormals (they multiply to 0)."""
    tiny = torch.tensor([2.0**-1070], dtype=torch.float64)
    return bool((tiny * 1.0)[0] == 0)


@contextlib.contextmanager
def flushed_denormals():
    """Flush denormal floats to zero in this thread, then restore.

    Once a network's loss gets small, its gradients and Adam's moments fill
    with denormal floats, on which x86 CPUs are many times slower; flushing
    them (``torch.set_flush_denormal``) changes values below about 1e-38
    (float32) or 1e-308 (float64) to 0. The flag is per thread (the x86
    MXCSR register): it covers the fit's own thread, which runs all of a
    one-thread fit (see :func:`step_threads`); torch's intra-op worker
    threads keep their own setting. The caller's setting is restored when
    the outermost block of this thread ends.
    """
    depth = getattr(_LOCAL, "depth", 0)
    if depth == 0:
        _LOCAL.before = _denormals_flushed()
        if not _LOCAL.before:
            torch.set_flush_denormal(True)
    _LOCAL.depth = depth + 1
    try:
        yield
    finally:
        _LOCAL.depth -= 1
        if _LOCAL.depth == 0 and not _LOCAL.before:
            torch.set_flush_denormal(False)


@contextlib.contextmanager
def cpu_fit_state(device, step_work):
    """The threads (:func:`step_threads`) and, on a CPU, flushed denormals
    (:func:`flushed_denormals`) of a fit."""
    if torch.device(device).type != "cpu":
        yield
        return
    with step_threads(device, step_work), flushed_denormals():
        yield
