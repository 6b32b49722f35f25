"""The public classes' docstrings: every parameter described, an Examples
section, and (when numpydoc is installed, as with the docs extra) numpydoc's
validation with the checks of docs/conf.py."""

import inspect
import re

import pytest

import sknets
import sknets.model_selection

CLASSES = [
    getattr(module, n)
    for module in (sknets, sknets.model_selection)
    for n in module.__all__
    if inspect.isclass(getattr(module, n)) and not issubclass(getattr(module, n), Exception)
]


def _section(doc, title):
    """The body of a numpydoc section of a class docstring."""
    next_title = r"\n    [A-Z][A-Za-z ]+\n    -+\n"
    match = re.search(rf"\n    {title}\n    -+\n(.*?)(?={next_title}|\Z)", doc, re.S)
    return match.group(1) if match else ""


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_parameter_is_described(cls):
    params = _section(cls.__doc__, "Parameters")
    for name in inspect.signature(cls).parameters:
        match = re.search(rf"^    {name} : .*\n((?:        .*\n)+)", params + "\n", re.M)
        assert match, f"{cls.__name__}.{name} has no description"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_has_examples(cls):
    assert ">>> " in _section(cls.__doc__, "Examples")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_numpydoc_validation(cls):
    validate = pytest.importorskip("numpydoc.validate").validate
    ignored = {"ES01", "SA01", "EX01", "RT02"}  # as docs/conf.py
    public = f"{cls.__module__.rsplit('._', 1)[0]}.{cls.__name__}"  # sknets[.model_selection]
    errors = [e for e in validate(public)["errors"] if e[0] not in ignored]
    assert not errors
    for name, member in inspect.getmembers(cls, callable):
        if name.startswith("_") or not (member.__module__ or "").startswith("sknets"):
            continue  # scikit-learn's own methods: documented by scikit-learn
        errors = validate(f"{public}.{name}")["errors"]
        assert not [e for e in errors if e[0] not in ignored], name
