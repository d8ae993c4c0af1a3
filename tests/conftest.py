"""Every test starts from fresh globals and, unless it asks otherwise, a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

import resilient
from resilient.testing import FakeClock

pytest_plugins = ("statsd_daemon",)

# Under CI, hypothesis loads its own "ci" profile, which is derandomized: the same examples on
# every run. .ci/run also runs the suite with ``--hypothesis-profile=random`` so that each CI
# run explores new examples; a failure prints the blob that reproduces it.
settings.register_profile("random", derandomize=False, database=None, print_blob=True)


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
