"""Where a small MLP's CPU training step goes: the autograd step against the
closed-form step (sknets/_closed_form.py), per step and per fit.

For the single-fit shapes of W1 (drug-trial lab), W2 (digits) and W6
(diabetes), it times whole fits with ``FastNet.closed_form`` off and on
(interleaved, medians), and the share of each part of the step from
torch's profiler (operators, self CPU time) on one fit of each path.

    python benchmarks/cpu_step.py [--repeats 5]
"""

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from sklearn.datasets import load_diabetes, load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

import sknets  # noqa: E402
from sknets._engine import FastNet  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from bench import drug_trial_data  # noqa: E402


def cases():
    X, y = drug_trial_data()
    X = MinMaxScaler().fit_transform(X)
    Xd, yd = load_digits(return_X_y=True)
    Xd = MinMaxScaler().fit_transform(Xd)[:1437]
    Xr, yr = load_diabetes(return_X_y=True)
    Xr = MinMaxScaler().fit_transform(Xr)[:353]
    common = dict(tol=0.0, random_state=0)
    return [
        ("W1 step: 10 x 1 -> (16, 32) -> 1", X, y, dict(hidden_layer_sizes=(16, 32), batch_size=10,
                                                       max_iter=20, n_iter_no_change=20),
         sknets.MLPClassifier, SkMLPClassifier, 20 * 210),
        ("W2 step: 64 x 64 -> (100,) -> 10", Xd, yd[:1437], dict(hidden_layer_sizes=(100,),
                                                                 batch_size=64, max_iter=30,
                                                                 n_iter_no_change=30),
         sknets.MLPClassifier, SkMLPClassifier, 30 * 23),
        ("W6 step: 200 x 10 -> (32,) -> 1", Xr, yr[:353], dict(hidden_layer_sizes=(32,),
                                                               learning_rate_init=0.01,
                                                               max_iter=200,
                                                               n_iter_no_change=200),
         sknets.MLPRegressor, SkMLPRegressor, 200 * 2),
    ], common


def fit_time(cls, X, y, kw):
    start = time.perf_counter()
    cls(**kw).fit(X, y)
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    rows, common = cases()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"median of {args.repeats} fits, interleaved")
    print("| fit | autograd step (s) | closed-form step (s) | scikit-learn (s) | "
          "closed-form per step (us) | autograd / closed form | scikit-learn / closed form |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, X, y, kw, cls, sk_cls, steps in rows:
        kw = {**kw, **common}
        times = {"autograd": [], "closed": [], "sklearn": []}
        for _ in range(args.repeats + 1):  # the first round warms up
            for path in times:
                if path == "sklearn":
                    times[path].append(fit_time(sk_cls, X, y, kw))
                    continue
                FastNet.closed_form = path == "closed"
                times[path].append(fit_time(cls, X, y, kw))
        FastNet.closed_form = True
        med = {k: statistics.median(v[1:]) for k, v in times.items()}
        print(f"| {name} | {med['autograd']:.3f} | {med['closed']:.3f} | {med['sklearn']:.3f} | "
              f"{med['closed'] / steps * 1e6:.0f} | {med['autograd'] / med['closed']:.2f}x | "
              f"{med['sklearn'] / med['closed']:.2f}x |")
    # operator profile of one W1 fit on each path
    name, X, y, kw, cls, _, steps = rows[0]
    for closed in (False, True):
        FastNet.closed_form = closed
        cls(**{**kw, **common}).fit(X, y)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            cls(**{**kw, **common}).fit(X, y)
        events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in events)
        print(f"\n{'closed-form' if closed else 'autograd'} W1 fit: torch operators "
              f"{total / steps:.1f} us of self CPU time per step; the largest:")
        for e in events[:8]:
            print(f"  {e.key:<40} {e.self_cpu_time_total / steps:7.2f} us/step  "
                  f"{e.count / steps:5.1f} calls/step")
    FastNet.closed_form = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
