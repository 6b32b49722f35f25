"""pytest's set-up at the repository root (the doctests of sknets/ too)."""

import importlib.util
import os

# scikit-learn's array API dispatch needs SciPy's array API support, which
# SciPy reads once, at its import (tests/test_array_api.py, and the array
# API checks of tests/test_common.py)
os.environ.setdefault("SCIPY_ARRAY_API", "1")

# sknets.onnx needs the onnx extra: without it, its doctests are not collected
collect_ignore = [] if importlib.util.find_spec("skl2onnx") else ["sknets/onnx.py"]
