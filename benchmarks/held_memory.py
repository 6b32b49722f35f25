"""What a fitted estimator holds, and the peak memory of its fit.

Fits ``MLPClassifier`` (and, with ``--partial-fit``, one ``partial_fit``
call) on a float64 X of ``--rows`` x ``--cols`` in this fresh process, then
prints:

- ``held_MiB``: the bytes of every tensor and array reachable from the
  fitted estimator;
- ``model_MiB``: its weights (the net's, ``coefs_`` and ``intercepts_``)
  and the optimizer's state;
- ``extra_MiB``: the difference, what it holds beyond the model;
- ``rss_after_MiB``: the process's resident memory after the fit, less its
  level before the fit (X already made);
- ``peak_MiB``: the peak resident memory of the process (``ru_maxrss``),
  less its level before the fit.

Run it against another checkout with ``PYTHONPATH=<checkout>`` to compare::

    python benchmarks/held_memory.py --rows 200000 --cols 500
"""

import argparse
import gc
import resource
import types
import warnings

import numpy as np
import torch

MiB = 2**20


def held_bytes(obj):
    """Bytes of the tensors and arrays reachable from ``obj``, each storage
    once, following every reference but those to classes, functions and
    modules (tests/test_engine.py uses it too)."""
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType)
    seen, storages, stack = set(), {}, [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, skip):
            continue
        seen.add(id(o))
        if isinstance(o, torch.Tensor):
            storage = o.untyped_storage()
            storages[("t", storage.data_ptr())] = storage.nbytes()
            if o.grad is not None:
                stack.append(o.grad)
            continue
        if isinstance(o, np.ndarray):
            base = o
            while isinstance(base.base, np.ndarray):
                base = base.base
            storages[("a", id(base))] = base.nbytes
            continue
        stack.extend(gc.get_referents(o))
    return sum(storages.values())


def model_bytes(est):
    """The weights (the net's, ``coefs_`` and ``intercepts_``) and the
    optimizer's state."""
    net = est.net_
    tensors = list(net.module_.state_dict().values())
    for state in net.optimizer_.state.values():
        tensors += [v for v in state.values() if torch.is_tensor(v)]
    tensors += [p.grad for p in net.module_.parameters() if p.grad is not None]
    arrays = list(getattr(est, "coefs_", [])) + list(getattr(est, "intercepts_", []))
    return sum(t.untyped_storage().nbytes() for t in tensors) + sum(a.nbytes for a in arrays)


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cols", type=int, default=500)
    parser.add_argument("--partial-fit", action="store_true")
    args = parser.parse_args()

    import sknets
    from sknets import MLPClassifier

    rng = np.random.default_rng(0)
    X = rng.random((args.rows, args.cols))
    y = (X[:, 0] > 0.5).astype(int)
    gc.collect()
    before = rss()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    est = MLPClassifier(hidden_layer_sizes=(100,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.partial_fit:
            est.partial_fit(X, y, classes=[0, 1])
        else:
            est.fit(X, y)
    gc.collect()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    held, model = held_bytes(est), model_bytes(est)
    print(f"sknets={sknets.__file__} X={X.nbytes / MiB:.0f}MiB "
          f"call={'partial_fit' if args.partial_fit else 'fit'}")
    print(f"held_MiB={held / MiB:.2f} model_MiB={model / MiB:.2f} "
          f"extra_MiB={(held - model) / MiB:.3f} rss_after_MiB={(rss() - before) / MiB:.0f} "
          f"peak_MiB={(max(peak, peak_before) - before) / MiB:.0f}")


if __name__ == "__main__":
    main()
