"""testing.instant(attempts, cap=False): stamina's testing mode, attempts set up or down."""

from __future__ import annotations

import pytest
import tenacity

import resilient
from resilient.testing import FakeClock, instant


class Flaky:
    """Always fails with ``ConnectionError``; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        raise ConnectionError("down")


def test_cap_false_raises_the_attempts_above_the_configured_number(fake_clock: FakeClock) -> None:
    """A function configured for 3 attempts makes 5 under instant(5, cap=False), no waits."""
    flaky = Flaky()
    with instant(5, cap=False), pytest.raises(ConnectionError):
        resilient.retry(attempts=3, initial_delay=10)(flaky)()
    assert flaky.calls == 5
    assert fake_clock.sleeps == []


def test_cap_false_lowers_them_too(fake_clock: FakeClock) -> None:
    """Configured for 50, a call under instant(2, cap=False) makes 2 attempts."""
    flaky = Flaky()
    with instant(2, cap=False), pytest.raises(ConnectionError):
        resilient.retry(attempts=50)(flaky)()
    assert flaky.calls == 2


def test_cap_true_only_lowers(fake_clock: FakeClock) -> None:
    """The default cap=True never adds attempts: min(configured, given)."""
    flaky = Flaky()
    with instant(5), pytest.raises(ConnectionError):
        resilient.retry(attempts=3)(flaky)()
    assert flaky.calls == 3


def test_cap_false_overrules_a_stop_strategy(fake_clock: FakeClock) -> None:
    """Exactly the given attempts, even when a tenacity stop strategy would stop sooner."""
    flaky = Flaky()
    with instant(4, cap=False), pytest.raises(ConnectionError):
        resilient.retry(stop=tenacity.stop_after_attempt(2))(flaky)()
    assert flaky.calls == 4


def test_cap_false_applies_to_blocks(fake_clock: FakeClock) -> None:
    """retrying() blocks follow instant(cap=False) as functions do."""
    flaky = Flaky()

    def run() -> None:
        for attempt in resilient.retrying(attempts=1):
            with attempt:
                flaky()

    with instant(3, cap=False), pytest.raises(ConnectionError):
        run()
    assert flaky.calls == 3


async def test_async_cap_false(fake_clock: FakeClock) -> None:
    """The async loop makes exactly the forced number of attempts."""
    flaky = Flaky()

    @resilient.retry(attempts=2)
    async def call() -> None:
        flaky()

    with instant(4, cap=False), pytest.raises(ConnectionError):
        await call()
    assert flaky.calls == 4


def test_the_previous_mode_comes_back(fake_clock: FakeClock) -> None:
    """Leaving a cap=False block restores the block around it."""
    flaky = Flaky()
    with instant(2):
        with instant(6, cap=False):
            pass
        with pytest.raises(ConnectionError):
            resilient.retry(attempts=5)(flaky)()
    assert flaky.calls == 2


def test_cap_must_be_a_bool() -> None:
    """cap= takes True or False only."""
    with pytest.raises(resilient.ConfigError, match="cap"), instant(2, cap="no"):  # type: ignore[arg-type]
        pass
