"""Smoke test of benchmarks/bench.py: the quick CPU run of W1 and W2."""

import json
import subprocess
import sys
from pathlib import Path

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


def test_quick_benchmark_metadata(quick_results):
    meta = quick_results["meta"]
    for key in ("date", "device", "python", "torch", "sklearn", "skorch", "sknets"):
        assert meta[key]
    assert meta["quick"] is True
    assert meta["repeats"] == 1


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
