"""pytest plugin of ``sklearn_swap.py``: writes the outcome of every test
(``passed``, ``failed``, ``skipped``) to the JSON file ``$SKNETS_SWAP_REPORT``."""

import json
import os

_OUTCOMES = {}


def pytest_runtest_logreport(report):
    name = report.nodeid.split("::", 1)[-1]
    if report.when == "call" or report.outcome != "passed":
        if _OUTCOMES.get(name) != "failed":
            _OUTCOMES[name] = report.outcome


def pytest_sessionfinish(session):
    path = os.environ.get("SKNETS_SWAP_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(_OUTCOMES, f, indent=1, sort_keys=True)
