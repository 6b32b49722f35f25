"""The CPU state of a fit: torch's intra-op threads (the one policy of
single and batched fits) and the flushing of denormal floats.

The thread rule (:func:`fit_threads`), per CPU fit:

1. If the user chose torch's threads (``OMP_NUM_THREADS`` or
   ``MKL_NUM_THREADS`` in the environment, or ``torch.set_num_threads`` to
   another value than torch's default), their setting is used as it is.
2. Otherwise a step of fewer than :data:`SMALL_STEP` multiply-adds runs on
   one thread: its operators are too small for a second thread to pay for
   waking it.
3. Otherwise the fit takes the cores that are free now, at most torch's
   setting: the cores this process may run on (``os.sched_getaffinity``)
   less the other runnable tasks (the instantaneous count of
   ``/proc/loadavg`` less this process's own running threads, or the
   one-minute load average less one, whichever is higher).
   Two intra-op threads on two cores that another process keeps busy make
   every step wait for the slower thread, many times slower than one.

The caller's setting is restored when the fit ends.
"""

import contextlib
import math
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


def user_threads():
    """The intra-op threads the user chose, or None when nobody did."""
    if any(os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        return torch.get_num_threads()
    current = torch.get_num_threads()
    if _TORCH_DEFAULT is not None and current != _TORCH_DEFAULT and not _THREADS["users"]:
        return current
    return None


def usable_cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _own_running():
    """This process's threads that are running or runnable now (torch's
    intra-op workers spin for a while after each parallel operator)."""
    n = 0
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/stat") as f:
                # the state follows the parenthesised command name
                n += f.read().rsplit(")", 1)[1].split()[0] == "R"
    except (OSError, IndexError):
        return 1
    return max(1, n)


def busy_cores():
    """Other tasks that want a core now: the runnable tasks of
    ``/proc/loadavg`` less this process's own, or the one-minute load
    average less one (this process), whichever is higher."""
    running = 0
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0]) - _own_running()
    except (OSError, ValueError, IndexError):
        pass
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(0, running, int(math.floor(load - 1.0 + 0.5)))


def free_cores():
    """The cores free for a fit now (at least 1)."""
    return max(1, usable_cores() - busy_cores())


def fit_threads(step_work):
    """The intra-op threads of a CPU fit whose steps do ``step_work``
    multiply-adds (the rule of the module docstring)."""
    chosen = user_threads()
    if chosen is not None:
        return chosen
    if step_work < SMALL_STEP:
        return 1
    return max(1, min(torch.get_num_threads(), free_cores()))

_THREADS_LOCK = threading.Lock()
_THREADS = {"users": 0, "before": None}


@contextlib.contextmanager
def intra_op_threads(n):
    """Run torch's CPU operators on at most ``n`` threads, then restore.

    torch's thread count is global to the process: with fits running in
    several Python threads, the first one in sets it and the last one out
    restores the caller's setting.
    """
    with _THREADS_LOCK:
        if _THREADS["users"] == 0:
            _THREADS["before"] = torch.get_num_threads()
            if n < _THREADS["before"]:
                torch.set_num_threads(n)
        _THREADS["users"] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS["users"] -= 1
            if _THREADS["users"] == 0 and torch.get_num_threads() != _THREADS["before"]:
                torch.set_num_threads(_THREADS["before"])


def step_threads(device, step_work):
    """The threads of a fit whose training steps do ``step_work``
    multiply-adds (:func:`fit_threads`); torch's setting on other devices."""
    if torch.device(device).type != "cpu":
        return contextlib.nullcontext()
    n = fit_threads(step_work)
    if n >= torch.get_num_threads():
        return contextlib.nullcontext()
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
