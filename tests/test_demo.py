"""The README's two entry points: the demo and the quick start."""

import doctest
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.usefixtures("torch_one_thread")
def test_demo_runs_the_workflow(capsys):
    spec = importlib.util.spec_from_file_location("demo", ROOT / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    test_accuracy = demo.main(quick=True)
    out = capsys.readouterr().out
    for row in ("5-fold CV accuracy", "iterated 5-fold x 2 accuracy", "grid search: best CV"):
        assert row in out
    assert "best parameters: {" in out
    assert test_accuracy > 0.9


def test_readme_quick_start():
    result = doctest.testfile(
        str(ROOT / "README.md"), module_relative=False, optionflags=doctest.ELLIPSIS
    )
    assert result.attempted > 0
    assert result.failed == 0
