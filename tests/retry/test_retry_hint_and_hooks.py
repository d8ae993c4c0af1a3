"""@retry's on= backoff hint (stamina's convention), before/after hooks, bare decorators."""

from __future__ import annotations

from datetime import timedelta

import pytest

import resilient
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


class Flaky:
    """Fails ``failures`` times with a fresh ``ConnectionError``, then returns ``"ok"``."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"down #{self.calls}")
        return "ok"


# --- the backoff hint ---------------------------------------------------------------------


@pytest.mark.parametrize("hint", [2, 2.0, timedelta(seconds=2)])
def test_a_number_or_timedelta_from_on_is_the_next_wait(
    fake_clock: FakeClock, hint: object
) -> None:
    """on= answering 2, 2.0 or timedelta(seconds=2) waits 2 s instead of the backoff."""
    flaky = Flaky(2)
    resilient.retry(attempts=3, on=lambda error: hint)(flaky)()  # type: ignore[arg-type, return-value]
    assert fake_clock.sleeps == [2.0, 2.0]


@pytest.mark.parametrize("answer", [0, 0.0, False, None, -1, timedelta(0)])
def test_zero_or_false_from_on_means_no_retry(fake_clock: FakeClock, answer: object) -> None:
    """on= answering 0, False, None or a negative number raises the error at once."""
    flaky = Flaky(1)
    with pytest.raises(ConnectionError):
        resilient.retry(on=lambda error: answer)(flaky)()  # type: ignore[arg-type, return-value]
    assert flaky.calls == 1


def test_true_from_on_uses_the_backoff(fake_clock: FakeClock) -> None:
    """on= answering True retries after the usual backoff."""
    resilient.retry(attempts=3, initial_delay=1, jitter=0, on=lambda error: True)(Flaky(2))()
    assert fake_clock.sleeps == [1.0, 2.0]


def test_the_hint_still_respects_the_attempt_cap(fake_clock: FakeClock) -> None:
    """A hint sets the wait, not the number of attempts."""
    flaky = Flaky(10)
    with pytest.raises(ConnectionError):
        resilient.retry(attempts=2, on=lambda error: 0.25)(flaky)()  # type: ignore[arg-type, return-value]
    assert flaky.calls == 2
    assert fake_clock.sleeps == [0.25]


def test_a_hint_past_the_deadline_gives_up(fake_clock: FakeClock) -> None:
    """A hinted wait that does not fit before the deadline ends the retries."""
    flaky = Flaky(10)
    retried = resilient.retry(attempts=5, on=lambda error: 30)(flaky)  # type: ignore[arg-type, return-value]
    with pytest.raises(ConnectionError) as caught:
        resilient.timeout(10)(retried)()
    assert flaky.calls == 1
    assert "before the deadline" in caught.value.__notes__[-1]


async def test_async_hint(fake_clock: FakeClock) -> None:
    """The async loop waits the hinted time."""
    flaky = Flaky(1)

    @resilient.retry(on=lambda error: timedelta(milliseconds=300))  # type: ignore[arg-type, return-value]
    async def call() -> str:
        return flaky()

    assert await call() == "ok"
    assert fake_clock.sleeps == [0.3]


# --- before / after -----------------------------------------------------------------------


def test_before_runs_ahead_of_every_attempt(fake_clock: FakeClock) -> None:
    """before(attempt) is called with 1, 2, 3 for a call that succeeds at the third."""
    seen: list[int] = []
    resilient.retry(initial_delay=0, before=seen.append)(Flaky(2))()
    assert seen == [1, 2, 3]


def test_after_runs_after_each_failed_attempt_that_is_retryable(fake_clock: FakeClock) -> None:
    """after(attempt, error) follows each failure the rules want retried, the last one too."""
    seen: list[tuple[int, str]] = []
    flaky = Flaky(10)
    with pytest.raises(ConnectionError):
        resilient.retry(attempts=3, initial_delay=0, after=lambda n, e: seen.append((n, str(e))))(
            flaky
        )()
    assert seen == [(1, "down #1"), (2, "down #2"), (3, "down #3")]


def test_after_is_not_called_for_a_success_or_an_error_not_retried(fake_clock: FakeClock) -> None:
    """As tenacity's after: nothing after a success, nor after an error ``on`` refuses."""
    seen: list[int] = []
    assert resilient.retry(after=lambda n, e: seen.append(n))(Flaky(0))() == "ok"
    with pytest.raises(ConnectionError):
        resilient.retry(on=ValueError, after=lambda n, e: seen.append(n))(Flaky(1))()
    assert seen == []


def test_failing_before_and_after_never_replace_the_error(
    fake_clock: FakeClock, sink: MemorySink
) -> None:
    """Hooks that raise leave the call's own error, with notes, and are counted."""

    def broken(*args: object) -> None:
        raise RuntimeError("hook bug")

    flaky = Flaky(10)
    with pytest.raises(ConnectionError) as caught:
        resilient.retry(attempts=2, initial_delay=0, before=broken, after=broken)(flaky)()
    assert flaky.calls == 2
    notes = "\n".join(caught.value.__notes__)
    assert "the before of" in notes
    assert "the after of" in notes
    assert sink.counter("hook_errors_total", hook="before") == 2
    assert sink.counter("hook_errors_total", hook="after") == 2


async def test_async_before_and_after(fake_clock: FakeClock) -> None:
    """The async loop runs before and after the same way."""
    seen: list[object] = []
    flaky = Flaky(1)

    @resilient.retry(
        initial_delay=0, before=seen.append, after=lambda n, e: seen.append(("after", n))
    )
    async def call() -> str:
        return flaky()

    assert await call() == "ok"
    assert seen == [1, ("after", 1), 2]


# --- bare decorators ----------------------------------------------------------------------


def test_bare_retry_uses_the_defaults(fake_clock: FakeClock) -> None:
    """@resilient.retry without parentheses retries with the standard config."""
    flaky = Flaky(2)

    @resilient.retry
    def call() -> str:
        return flaky()

    assert call() == "ok"
    assert flaky.calls == 3
    assert call.__name__ == "call"


async def test_bare_retry_on_a_coroutine_function(fake_clock: FakeClock) -> None:
    """@resilient.retry without parentheses keeps a coroutine function a coroutine function."""
    import inspect

    flaky = Flaky(1)

    @resilient.retry
    async def call() -> str:
        return flaky()

    assert inspect.iscoroutinefunction(call)
    assert await call() == "ok"


def test_bare_breaker_is_named_by_the_function(fake_clock: FakeClock) -> None:
    """@resilient.breaker without parentheses makes the breaker called module.qualname."""

    @resilient.breaker
    def fetch() -> str:
        return "ok"

    assert fetch() == "ok"
    name = f"{__name__}.test_bare_breaker_is_named_by_the_function.<locals>.fetch"
    assert resilient.get_breaker(name) is not None


def test_bare_decorators_on_methods(fake_clock: FakeClock) -> None:
    """Bare @retry and @breaker work on methods, classmethods and staticmethods."""

    class Service:
        @resilient.retry
        def method(self) -> int:
            return 1

        @resilient.retry
        @classmethod
        def klass(cls) -> int:
            return 2

        @resilient.breaker
        @staticmethod
        def static() -> int:
            return 3

    assert (Service().method(), Service.klass(), Service.static()) == (1, 2, 3)
