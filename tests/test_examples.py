"""The examples: gallery conventions, and the Fashion-MNIST lab's data paths.

The plot_*.py examples run (and check their results) when the documentation
is built; here only the lab, which the build renders without running, is run.
"""

import ast
import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
LAB = EXAMPLES / "lab_fashion_mnist.py"


def test_gallery_has_a_readme_and_scripts():
    assert (EXAMPLES / "README.txt").is_file()
    assert LAB in SCRIPTS
    assert len([s for s in SCRIPTS if s.name.startswith("plot_")]) >= 5


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_has_a_titled_docstring_and_cells(script):
    source = script.read_text()
    doc = ast.get_docstring(ast.parse(source), clean=False)
    assert doc, f"{script.name} needs a module docstring with a title"
    lines = doc.strip("\n").splitlines()
    # sphinx-gallery's title: a line of '=' over and under, or under only
    title = lines[1] if set(lines[0]) == {"="} else lines[0]
    underline = lines[2] if set(lines[0]) == {"="} else lines[1]
    assert set(underline) == {"="} and len(underline) >= len(title.strip())
    assert "\n# %%\n" in source


def idx_bytes(array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_easy_fashion_mnist(folder, n_train=300, n_test=100, seed=0):
    """Four IDX files of 28x28 images whose class is the place of a bright block."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        X = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            r, c = divmod(int(label), 5)
            X[i, 4 + 10 * r : 11 + 10 * r, 1 + 5 * c : 6 + 5 * c] = 255
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(X)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(y)))


def run_lab(args, cwd, **env):
    environ = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        # no download, whatever the machine's network
        "SCIKIT_LEARN_DATA": str(cwd / "no_data_home"),
    }
    environ.pop("SKNETS_FASHION_MNIST", None)
    environ.update(env)
    return subprocess.run(
        [sys.executable, str(LAB), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_lab_exits_with_a_message_without_data(tmp_path):
    result = run_lab([str(tmp_path / "missing")], tmp_path)
    assert result.returncode == 1
    assert "Cannot read Fashion-MNIST" in result.stderr
    assert "train-images-idx3-ubyte.gz" in result.stderr


def test_lab_exits_with_a_message_for_a_bad_environment_folder(tmp_path):
    result = run_lab([], tmp_path, SKNETS_FASHION_MNIST=str(tmp_path / "missing"))
    assert result.returncode == 1
    assert "SKNETS_FASHION_MNIST" in result.stderr


def test_lab_runs_on_idx_files(tmp_path):
    write_easy_fashion_mnist(tmp_path / "data")
    result = run_lab([str(tmp_path / "data")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "300 training and 100 test images" in result.stdout
    assert "test accuracy: 1.0000" in result.stdout
    assert (tmp_path / "fashion_mnist_convnet.pkl").is_file()
