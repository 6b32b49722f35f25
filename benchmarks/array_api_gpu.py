"""A pipeline on CUDA tensors under scikit-learn's array API, against the
same pipeline fed numpy: where the outputs are, and the times.

MinMaxScaler plus MLPClassifier on the digits (float32), fitted and
predicted ``--repeats`` times each way after a warm-up, in this process on a
GPU: with ``array_api_dispatch=True`` on CUDA tensors, and without dispatch
on numpy arrays (the estimator then copies X to the GPU itself). Prints the
output's type and device, the number of host copies of X seen during the
tensor fit and prediction, and the median seconds of each.

Usage (on a GPU machine; sets SCIPY_ARRAY_API=1 itself)::

    python benchmarks/array_api_gpu.py --repeats 5
"""

import argparse
import os
import statistics
import time
import warnings

os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

from sknets import MLPClassifier  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "this benchmark needs a CUDA device"
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    Xt, yt = torch.asarray(X, device="cuda"), torch.asarray(y, device="cuda")

    copies = []
    for name in ("__array__", "numpy", "cpu"):
        original = getattr(torch.Tensor, name)

        def spy(t, *a, _original=original, _name=name, **k):
            if t.numel() >= Xt.numel():
                copies.append(_name)
            return _original(t, *a, **k)

        setattr(torch.Tensor, name, spy)

    def model():
        return make_pipeline(
            MinMaxScaler(),
            MLPClassifier(max_iter=args.epochs, tol=0, n_iter_no_change=args.epochs,
                          random_state=0),
        )

    def run(tensors):
        torch.cuda.synchronize()
        start = time.perf_counter()
        if tensors:
            with sklearn.config_context(array_api_dispatch=True):
                out = model().fit(Xt, yt).predict_proba(Xt)
        else:
            out = model().fit(X, y).predict_proba(X)
        torch.cuda.synchronize()
        return time.perf_counter() - start, out

    times = {True: [], False: []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(True), run(False)  # warm-up
        copies.clear()
        for _ in range(args.repeats):
            for tensors in (True, False):
                seconds, out = run(tensors)
                times[tensors].append(seconds)
                if tensors:
                    kind = f"{type(out).__name__} on {out.device}"
    print(f"tensor pipeline output: {kind}; host copies of X seen: {len(copies)}")
    for tensors, label in ((True, "CUDA tensors, dispatch"), (False, "numpy, no dispatch")):
        ts = times[tensors]
        print(f"{label}: median {statistics.median(ts):.3f} s over {len(ts)} "
              f"(fit + predict_proba; {', '.join(f'{t:.3f}' for t in ts)})")


if __name__ == "__main__":
    main()
