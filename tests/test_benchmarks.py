"""Smoke test of benchmarks/bench.py: the quick CPU run of W1 and W2."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
IMPLS = ("sknets", "sklearn", "skorch")
FLOORS = {"W1": 0.85, "W2": 0.9}


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    cmd = [
        sys.executable,
        str(BENCH),
        "--quick",
        "--device",
        "cpu",
        "--repeats",
        "1",
        "--workloads",
        "W1,W2",
        "--json",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| workload | implementation |" in proc.stdout
    assert "## scikit-learn / sknets" in proc.stdout
    return json.loads(out.read_text())


def test_quick_benchmark_has_every_cell(quick_results):
    rows = {(r["workload"], r["impl"]): r for r in quick_results["results"]}
    for workload, floor in FLOORS.items():
        for impl in IMPLS:
            row = rows[(workload, impl)]
            assert row["error"] is None, (workload, impl, row["error"])
            assert row["median_s"] > 0, (workload, impl)
            assert row["score"] > floor, (workload, impl, row["score"])
        assert rows[(workload, "sknets")]["ratio"] == pytest.approx(1.0)
    # the summary: scikit-learn's time over sknets', from the same medians
    summary = {r["workload"]: r for r in quick_results["summary"]}
    for workload in FLOORS:
        expected = rows[(workload, "sklearn")]["median_s"] / rows[(workload, "sknets")]["median_s"]
        assert summary[workload]["sklearn_over_sknets"] == pytest.approx(expected)


def test_quick_benchmark_metadata(quick_results):
    meta = quick_results["meta"]
    for key in ("date", "device", "python", "torch", "sklearn", "skorch", "sknets"):
        assert meta[key]
    assert meta["quick"] is True
    assert meta["repeats"] == 1
    # the default: every timed run in a fresh process, after a warm-up fit there
    assert meta["mode"] == "fresh"
    for row in quick_results["results"]:
        assert len(row["warmup_times"]) == len(row["times"])


def test_conv_digits_script_runs(capsys):
    """benchmarks/conv_digits.py, shortened to two epochs a fit."""
    sys.path.insert(0, str(BENCH.parent))
    try:
        import conv_digits
    finally:
        sys.path.remove(str(BENCH.parent))
    means = conv_digits.main(["--seeds", "0,1", "--device", "cpu", "--max-iter", "2"])
    out = capsys.readouterr().out
    assert len(means) == 2
    # two epochs already learn the digits far above chance (0.1)
    assert all(0.5 < m <= 1.0 for m in means)
    assert "random_state=0: folds" in out and "mean over 2 seeds" in out
    # each fit's epochs, here all at the --max-iter cap
    assert "epochs [2, 2, 2, 2, 2], 5/5 fits at max_iter" in out


def test_conv_regressor_defaults_beat_the_mlp_on_motifs(capsys):
    """benchmarks/conv_regressor.py, seed 0: ConvRegressor's defaults read a
    motif's amplitude off noisy signals far better than MLPRegressor's
    (measured 0.82 against 0.65, benchmarks/RESULTS.md)."""
    sys.path.insert(0, str(BENCH.parent))
    try:
        import conv_regressor
    finally:
        sys.path.remove(str(BENCH.parent))
    scores = conv_regressor.main(["--seeds", "0", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "conv seed=0: test R2" in out and "mlp seed=0: test R2" in out
    (conv,), (mlp,) = scores["conv"], scores["mlp"]
    assert conv > 0.75
    assert conv > mlp + 0.1


@pytest.mark.slow
def test_conv_grid_script_runs():
    """benchmarks/conv_grid.py --quick: both searches in fresh processes,
    sknets' trained batched on this CPU (no fallback), the same best
    candidate and mean scores."""
    script = BENCH.parent / "conv_grid.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fits one by one" not in proc.stdout and "fallback" not in proc.stdout
    summary = [line for line in proc.stdout.splitlines() if line.startswith("scikit-learn /")]
    assert len(summary) == 1 and "same best candidate: yes" in summary[0], proc.stdout[-2000:]


@pytest.mark.slow
def test_scale_out_script_runs():
    """benchmarks/scale_out.py --quick: one process, then LocalClusters of 1
    and 2 workers, the table with its ratio and its comparisons."""
    script = BENCH.parent / "scale_out.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| W4") or
            line.startswith("| RKF")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[5].endswith("x")  # 1 / 2 workers
        assert cells[6] == "yes"  # the cluster runs agree bit for bit


@pytest.mark.slow
def test_conv_signals_reach_the_published_cnn_on_mnist1d(capsys):
    """benchmarks/conv_signals.py: ConvClassifier(input_shape=(1, 40)) with
    defaults on MNIST-1D, generated by its own package (4,000 training and
    1,000 test signals), reaches the published CNN's test accuracy of 0.94,
    far above MLPClassifier's defaults (the authors' MLP scores 0.68)."""
    sys.path.insert(0, str(BENCH.parent))
    try:
        import conv_signals
    finally:
        sys.path.remove(str(BENCH.parent))
    np_state = np.random.get_state()
    scores = conv_signals.main(["--seeds", "0", "--models", "conv,mlp", "--device", "cpu"])
    # the package seeds numpy's global generator; the loader restores it
    np.testing.assert_array_equal(np.random.get_state()[1], np_state[1])
    assert "conv random_state=0: test accuracy" in capsys.readouterr().out
    (conv,), (mlp,) = scores["conv"], scores["mlp"]
    assert conv >= 0.94
    assert mlp < 0.8


@pytest.mark.slow
def test_halving_script_runs(tmp_path, capsys):
    """benchmarks/halving.py --quick on the rows workload: both searches in
    fresh processes (15 to 30 s on 2 cores), the same candidates kept and
    the same best one."""
    sys.path.insert(0, str(BENCH.parent))
    try:
        import halving
    finally:
        sys.path.remove(str(BENCH.parent))
    out = tmp_path / "halving.json"
    assert halving.main(["--quick", "--workloads", "rows", "--threads", "1",
                         "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| rows | **" in printed and "27 @ 100, 9 @ 300, 3 @ 900 rows" in printed
    results = json.loads(out.read_text())
    (summary,) = results["summary"]
    assert summary["same_search"] and summary["max_score_diff"] < 1e-6
    assert summary["n_candidates"] == [27, 9, 3]
    assert summary["sklearn_over_sknets"] > 0
    assert {r["impl"] for r in results["results"]} == {"sknets", "sklearn"}
