"""torch's intra-op threads during a fit: the one policy of single and
batched fits."""

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
