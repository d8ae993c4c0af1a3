"""Every test starts from fresh globals and, unless it asks otherwise, a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import resilient
from resilient.testing import FakeClock

pytest_plugins = ("statsd_daemon",)


@pytest.fixture(autouse=True)
def _fresh_globals() -> Iterator[None]:
    resilient.testing.reset()
    yield
    resilient.testing.reset()


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    """A fake clock installed as the default for the test."""
    fake = FakeClock()
    with resilient.testing.use_clock(fake):
        yield fake
