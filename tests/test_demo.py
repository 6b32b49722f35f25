"""The README's two entry points: the demo and the quick start."""

import doctest
import importlib.util
import re
import warnings
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


@pytest.mark.usefixtures("torch_one_thread")
def test_readme_quick_start_runs_clean():
    """The quick start passes with every warning an error, ConvergenceWarning
    included (the suite's settings ignore it; a user's Python does not)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = doctest.testfile(
            str(ROOT / "README.md"), module_relative=False, optionflags=doctest.ELLIPSIS
        )
    assert result.attempted > 0
    assert result.failed == 0


def test_readme_setup():
    """Exactly two set-up commands (the demo, the tests), the truth about
    the torch pin, the examples extra and the suite's time."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 2
    assert all(len(b.strip().splitlines()) == 1 for b in blocks)
    assert blocks[0].strip().endswith("python demo.py")
    assert blocks[1].strip().endswith("python -m pytest -q")
    assert "pins the CPU build" not in readme
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme
    assert 'pip install -e ".[examples]"' in readme
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(dep.startswith("matplotlib") for dep in extras["examples"])
    assert re.search(r"about \d+ s on two CPU cores", readme)
