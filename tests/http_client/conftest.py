"""The scripted HTTP server the client tests talk to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from http_servers import ScriptedServer, running


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A scripted HTTP server on a free loopback port, for the HTTP client's tests."""
    yield from running()
