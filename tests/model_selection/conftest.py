"""Shared spies of the model selection tests."""

import pytest

from sknets.model_selection import _pretrained


@pytest.fixture
def count_calls(monkeypatch):
    """``count_calls(owner, name, count, key, counts=None)`` replaces
    ``owner.name`` for the test by a wrapper that adds 1 to ``count[key]`` at
    each call (where ``counts(result)`` is true, when given)."""

    def spy(owner, name, count, key, counts=None):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            count[key] += counts is None or bool(counts(result))
            return result

        monkeypatch.setattr(owner, name, wrapper)

    return spy


@pytest.fixture
def adopted(count_calls):
    """Counts the fits that adopted a pretrained member: ``adopted["n"]``."""
    count = {"n": 0}
    count_calls(_pretrained, "take", count, "n", lambda fitted: fitted is not None)
    return count
