"""pytest's set-up at the repository root (the doctests of sknets/ too)."""

import importlib.util

# sknets.onnx needs the onnx extra: without it, its doctests are not collected
collect_ignore = [] if importlib.util.find_spec("skl2onnx") else ["sknets/onnx.py"]
