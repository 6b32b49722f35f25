"""The user guide's pages: their examples (``>>>``) run and print what the
pages say."""

import doctest
import warnings
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(
    p for p in [DOCS / "index.rst", *(DOCS / "user_guide").glob("*.rst")]
    if ">>>" in p.read_text()
)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_page_runs(page):
    with warnings.catch_warnings():
        # the pages' short fits are examples, not converged models
        warnings.simplefilter("ignore")
        result = doctest.testfile(
            str(page), module_relative=False, report=False,
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        )
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} example(s) of {page.name} failed (see above)"
