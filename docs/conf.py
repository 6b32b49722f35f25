"""Sphinx configuration of the sknets documentation.

Build from the repository root (see docs/README.md)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The build runs the gallery examples (``examples/plot_*.py``) and needs no
network: there is no intersphinx, so references to scikit-learn's and
PyTorch's objects render as code without links, and the few links to other
projects are plain URLs.
"""

import inspect
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The example networks are tiny: on a CPU, one torch thread runs them faster
# than several, and much faster when other processes share the cores (idle
# OpenMP threads spin). Set before anything imports torch; an explicit
# OMP_NUM_THREADS in the environment wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Headless: the gallery captures the figures from the Agg backend.
os.environ.setdefault("MPLBACKEND", "Agg")

import sknets  # noqa: E402
from sknets._base import _BaseNet  # noqa: E402

# -- Project -----------------------------------------------------------------

project = "sknets"
author = "the sknets developers"
copyright = "the sknets developers, BSD-3-Clause license"
release = sknets.__version__
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "README.md", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "literal"
pygments_style = "sphinx"

# -- autodoc / autosummary / numpydoc -----------------------------------------

autosummary_generate = True
autodoc_typehints = "none"
# The class template lists the methods itself; numpydoc's own member tables
# would list them a second time.
numpydoc_show_class_members = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False
# Validate every docstring that the API pages show, with all of numpydoc's
# checks but these: an extended summary (ES01), a See Also (SA01) and an
# Examples section (EX01) are required of the public classes only (the
# estimators have all three; tests/test_docstrings.py requires Examples),
# not of each method; and a Returns section may name what it returns
# ("self : object"), as scikit-learn's do (RT02).
numpydoc_validation_checks = {"all", "ES01", "SA01", "EX01", "RT02"}
# a module constant's doc is a ``#:`` comment, not a docstring with sections
numpydoc_validation_exclude = {r"^sknets\.TRUSTED_TYPES$"}

_KEPT_SKLEARN_MEMBERS = {"get_params", "set_params"}


def _skip_member(app, what, name, obj, skip, options):
    """List the methods sknets defines, and scikit-learn's get/set_params.

    The other methods inherited from scikit-learn (``score``, the metadata
    routing ``set_*_request``, a search's ``predict``...) are documented by
    scikit-learn; their docstrings link into scikit-learn's own user guide,
    whose labels do not exist here.
    """
    if what != "method" or name in _KEPT_SKLEARN_MEMBERS:
        return None
    if not (getattr(obj, "__module__", None) or "").startswith("sknets"):
        return True
    return None


def _estimator_signature(app, what, name, obj, options, signature, return_annotation):
    """The estimators' signature is their ``__init__``'s, as
    ``inspect.signature`` gives it. Sphinx would show ``(*args, **kwargs)``
    of the ``__new__`` of ``sknets._base._BaseNet``, which only adds hints
    to the TypeError of a Keras keyword."""
    if what == "class" and issubclass(obj, _BaseNet):
        return str(inspect.signature(obj)), return_annotation
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-signature", _estimator_signature)


# -- doctest: python -m sphinx -b doctest -D plot_gallery=0 docs docs/_build/doctest

doctest_global_setup = """
import warnings
from sklearn.exceptions import ConvergenceWarning
warnings.filterwarnings("ignore", category=ConvergenceWarning)
"""

# -- sphinx-gallery ------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # Run plot_*.py; lab_*.py (which needs downloaded data) is rendered only.
    "filename_pattern": r"[\\/]plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "write_computation_times": False,
    "remove_config_comments": True,
    "show_signature": False,
    # A failing example (an assertion on its accuracy included) fails the build.
    "only_warn_on_example_error": False,
    "min_reported_time": 1,
}

# -- HTML ------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"sknets {release}"
html_static_path = []
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"**": ["sidebar-nav-bs"]}
