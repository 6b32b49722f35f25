"""Run scikit-learn's own test files with sknets swapped in.

The test files ship inside the installed scikit-learn wheel. Each is copied
to a temporary folder with one import line added after its own imports, which
rebinds the names it tests to sknets' classes, and run with pytest (with
scikit-learn's ``conftest`` loaded as a plugin, for its fixtures).

Usage::

    python tools/sklearn_swap.py mlp|search|validation|halving [pytest args...]

Prints pytest's summary and writes a JSON list of failed test ids to
``$SKNETS_SWAP_REPORT`` when that is set. Fetches nothing.
"""

import ast
import os
import pathlib
import subprocess
import sys
import tempfile

import sklearn

SUITES = {
    "mlp": (
        "neural_network/tests/test_mlp.py",
        "from sknets import MLPClassifier, MLPRegressor",
    ),
    "search": (
        "model_selection/tests/test_search.py",
        "from sknets.model_selection import GridSearchCV, RandomizedSearchCV",
    ),
    "validation": (
        "model_selection/tests/test_validation.py",
        "from sknets.model_selection import cross_val_score, cross_validate",
    ),
    "halving": (
        "model_selection/tests/test_successive_halving.py",
        "from sknets.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV",
    ),
}


def swapped_source(path, swap):
    """The test file's source with ``swap`` inserted after its last
    top-level import."""
    source = pathlib.Path(path).read_text()
    tree = ast.parse(source)
    last = max(
        node.end_lineno
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
    )
    lines = source.splitlines(keepends=True)
    return "".join(lines[:last]) + f"{swap}  # sknets: swapped in\n" + "".join(lines[last:])


def suite_path(name):
    rel, _ = SUITES[name]
    path = pathlib.Path(sklearn.__file__).parent / rel
    if not path.exists():
        raise SystemExit(f"scikit-learn's {rel} is not installed at {path}")
    return path


def run(name, pytest_args=(), report=None):
    """Run one swapped suite; returns pytest's exit code."""
    path = suite_path(name)
    swap = SUITES[name][1]
    with tempfile.TemporaryDirectory() as tmp:
        target = pathlib.Path(tmp) / f"test_sknets_swapped_{path.stem[5:]}.py"
        target.write_text(swapped_source(path, swap))
        plugin = pathlib.Path(__file__).with_name("_swap_report.py")
        path = os.pathsep.join([str(plugin.parent), os.environ.get("PYTHONPATH", "")])
        env = dict(os.environ, PYTHONPATH=path)
        if report:
            env["SKNETS_SWAP_REPORT"] = str(report)
        cmd = [
            sys.executable, "-m", "pytest", str(target), "-q", "-p", "sklearn.conftest",
            "-p", "_swap_report", "--rootdir", tmp, "-c", os.devnull, "-W", "ignore",
            *pytest_args,
        ]
        return subprocess.call(cmd, cwd=tmp, env=env)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:], os.environ.get("SKNETS_SWAP_REPORT")))
