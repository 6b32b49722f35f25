"""Whether torch's intra-op worker threads flush denormals.

An elementwise multiply of 8M float64 denormals, timed on 1 and 2 threads,
with ``torch.set_flush_denormal(True)`` called on the main thread after
(``late``) or before (``early``) torch's worker pool exists. POSIX threads
inherit the floating-point environment of the thread that creates them.

    python benchmarks/denormal_threads.py late
    python benchmarks/denormal_threads.py early
"""

import sys
import time

import torch


def per_op_ms(a, n):
    torch.set_num_threads(n)
    a.mul(0.9)
    start = time.perf_counter()
    for _ in range(10):
        a.mul(0.9)
    return (time.perf_counter() - start) / 10 * 1e3


def main(when):
    torch.set_num_threads(2)
    if when == "early":
        torch.set_flush_denormal(True)
    a = torch.full((8_000_000,), 1e-310, dtype=torch.float64)
    a * 0.5  # the first parallel operator creates the worker pool
    torch.set_flush_denormal(True)
    print(when, "flushed on the main thread: 1 thread ms", round(per_op_ms(a, 1), 2),
          "2 threads ms", round(per_op_ms(a, 2), 2))
    torch.set_flush_denormal(False)
    print(when, "not flushed on the main thread: 1 thread ms", round(per_op_ms(a, 1), 2),
          "2 threads ms", round(per_op_ms(a, 2), 2))


if __name__ == "__main__":
    main(sys.argv[1])
