"""Fixtures of the X API tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def api(x_api_double):
    """The session's X API double, reset; a request the API would reject fails the test."""
    x_api_double.reset()
    yield x_api_double
    violations = list(x_api_double.violations)
    x_api_double.reset()
    assert violations == [], f"requests the X API rejects: {violations}"
