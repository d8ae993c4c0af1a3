"""The ``kind`` fixture: every stream test runs with both forms of producer."""

from __future__ import annotations

import pytest
from scripted import Kind


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> Kind:
    """Each stream test runs with a generator function and with an async generator one."""
    return Kind(request.param)
