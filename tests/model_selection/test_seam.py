"""The seam between the estimators and model selection (sknets._seam)."""

import ast
import pathlib

import sknets

PACKAGE = pathlib.Path(sknets.__file__).parent


def _private_reads(path):
    """``x._name`` where ``x`` is neither ``self`` nor ``super()``, and
    ``getattr(x, "_name")``: reads of another object's privates."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            name = node.attr
            owner = node.value
            own = (isinstance(owner, ast.Name) and owner.id in ("self", "cls")) or (
                isinstance(owner, ast.Call)
                and isinstance(owner.func, ast.Name)
                and owner.func.id == "super"
            )
            if name.startswith("_") and not name.startswith("__") and not own:
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and str(node.args[1].value).startswith("_")
        ):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_model_selection_reads_no_private_attribute_of_another_object():
    """Model selection reaches estimators through sknets._seam only: no module
    of sknets/model_selection reads (or writes) a private attribute of any
    object but itself."""
    files = sorted((PACKAGE / "model_selection").glob("*.py"))
    assert len(files) >= 4
    found = [hit for path in files for hit in _private_reads(path)]
    assert found == []


def test_the_check_finds_private_reads(tmp_path):
    """The check above can fail."""
    path = tmp_path / "bad.py"
    path.write_text(
        "def f(est):\n"
        "    est._prepare_fit(1)\n"
        "    getattr(est, '_seed')\n"
        "    self._ok = super()._fine()\n"
    )
    assert len(_private_reads(path)) == 2


def test_the_estimator_layer_does_not_import_model_selection():
    """sknets/*.py (the estimators, the engine, the modules) import nothing
    from sknets.model_selection: the dependency goes one way."""
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                # relative imports: "from .model_selection import x", or
                # "from . import model_selection"
                module = node.module or ""
                if node.level:
                    assert not module.startswith("model_selection"), (path.name, module)
                    assert "model_selection" not in [a.name for a in node.names], path.name
                assert not module.startswith("sknets.model_selection"), (path.name, module)
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
                assert all(not n.startswith("sknets.model_selection") for n in names), path.name
