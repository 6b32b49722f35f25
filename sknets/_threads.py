"""The CPU state of a fit: torch's intra-op threads (the one policy of
single and batched fits) and the flushing of denormal floats."""

import contextlib
import threading

import torch

#: Below this many multiply-adds per training step (batch rows times
#: parameters), a CPU fit runs torch on one thread (see
#: ``benchmarks/RESULTS.md`` for the measurements behind it).
SMALL_STEP = 2**22

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
    multiply-adds: one thread for small CPU steps, torch's setting
    otherwise (and on other devices)."""
    if torch.device(device).type != "cpu" or step_work >= SMALL_STEP:
        return contextlib.nullcontext()
    return intra_op_threads(1)


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
