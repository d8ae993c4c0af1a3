"""@retry: attempts, backoff, hooks, deadlines, and what is never retried."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from datetime import timedelta

import pytest
import tenacity

import resilient
from resilient.testing import FakeClock


class Flaky:
    """A callable failing ``failures`` times with ``error`` before returning ``"ok"``."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("boom")
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def test_success_path_calls_once_and_never_sleeps(fake_clock: FakeClock) -> None:
    """A call that succeeds is made exactly once and nothing waits."""
    flaky = Flaky(0)
    assert resilient.retry()(flaky)() == "ok"
    assert flaky.calls == 1
    assert fake_clock.sleeps == []


def test_retries_until_success(fake_clock: FakeClock) -> None:
    """Two failures then a success return the success after three calls."""
    flaky = Flaky(2)
    assert resilient.retry(attempts=3, jitter=0)(flaky)() == "ok"
    assert flaky.calls == 3
    assert fake_clock.sleeps == [0.5, 1.0]


def test_seed_standard_schedule_without_jitter(fake_clock: FakeClock) -> None:
    """The standard preset waits 0.5 s, then doubles, and stops at 30 s."""
    flaky = Flaky(7)
    decorated = resilient.retry(resilient.RetryConfig.standard, attempts=8, jitter=0)(flaky)
    assert decorated() == "ok"
    assert fake_clock.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


def test_gives_up_with_the_last_real_error_and_a_note(fake_clock: FakeClock) -> None:
    """After the last attempt the caller gets the function's own last error, annotated."""
    errors = iter([ValueError("first"), KeyError("second"), ConnectionError("third")])

    @resilient.retry(attempts=3, initial_delay=0)
    def failing() -> None:
        raise next(errors)

    with pytest.raises(ConnectionError, match="third") as caught:
        failing()
    (note,) = caught.value.__notes__
    assert "after 3 attempts" in note
    assert "ValueError, KeyError, ConnectionError" in note
    assert "failing" in note


def test_errors_outside_on_are_raised_at_once(fake_clock: FakeClock) -> None:
    """An error that ``on`` does not name is not retried."""
    flaky = Flaky(1, KeyError("nope"))
    with pytest.raises(KeyError):
        resilient.retry(on=ValueError)(flaky)()
    assert flaky.calls == 1


def test_on_accepts_a_predicate(fake_clock: FakeClock) -> None:
    """``on`` may be a predicate deciding from the error itself."""
    flaky = Flaky(2, ValueError("transient"))
    decorated = resilient.retry(on=lambda e: "transient" in str(e), initial_delay=0)(flaky)
    assert decorated() == "ok"


def test_zero_delay_makes_no_sleep_call(fake_clock: FakeClock) -> None:
    """A zero wait does not call the clock's sleep at all."""
    flaky = Flaky(2)
    resilient.retry(initial_delay=0)(flaky)()
    assert fake_clock.sleeps == []


def test_on_retry_hook_sees_attempt_error_and_delay(fake_clock: FakeClock) -> None:
    """on_retry gets the number of the failed attempt (from 1), the error and the wait."""
    seen: list[tuple[int, str, float]] = []
    flaky = Flaky(2)
    decorated = resilient.retry(
        jitter=0, on_retry=lambda attempt, error, delay: seen.append((attempt, str(error), delay))
    )(flaky)
    decorated()
    assert seen == [(1, "boom", 0.5), (2, "boom", 1.0)]


def test_circuit_open_error_is_never_retried(fake_clock: FakeClock) -> None:
    """An open breaker's rejection goes straight to the caller."""
    flaky = Flaky(3, resilient.CircuitOpenError("svc", 5.0))
    with pytest.raises(resilient.CircuitOpenError):
        resilient.retry(attempts=5)(flaky)()
    assert flaky.calls == 1


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3), GeneratorExit()])
def test_base_exceptions_pass_through_untouched(
    fake_clock: FakeClock, error: BaseException
) -> None:
    """Interrupts and exits are never retried, counted or swallowed."""
    flaky = Flaky(3, error)
    with pytest.raises(type(error)) as caught:
        resilient.retry(attempts=5)(flaky)()
    assert caught.value is error
    assert flaky.calls == 1
    assert not getattr(error, "__notes__", None)


async def test_cancellation_is_never_retried(fake_clock: FakeClock) -> None:
    """asyncio.CancelledError escapes after a single attempt."""
    calls = 0

    @resilient.retry(attempts=5)
    async def cancelled() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await cancelled()
    assert calls == 1


def test_retry_after_sets_the_next_delay(fake_clock: FakeClock) -> None:
    """An error carrying ``retry_after`` dictates the wait, even one longer than max_delay."""

    class ThrottledError(Exception):
        def __init__(self, retry_after: float) -> None:
            self.retry_after = retry_after

    errors = iter([ThrottledError(7.0), ThrottledError(100.0)])

    @resilient.retry(attempts=3, max_delay=20)
    def throttled() -> str:
        error = next(errors, None)
        if error:
            raise error
        return "ok"

    assert throttled() == "ok"
    assert fake_clock.sleeps == [7.0, 100.0]  # max_delay caps our own schedule, not the server's


def test_never_starts_a_wait_past_the_deadline(fake_clock: FakeClock) -> None:
    """Inside a 1 s timeout, a 2 s wait is not started: the last error comes at once."""
    flaky = Flaky(5)

    @resilient.timeout(1.0)
    @resilient.retry(initial_delay=0.4, jitter=0, attempts=5)
    def call() -> str:
        return flaky()

    with pytest.raises(ConnectionError) as caught:
        call()
    assert fake_clock.sleeps == [0.4]  # 0.4 fits, the next 0.8 would end past the 1.0 s deadline
    assert flaky.calls == 2
    assert "deadline" in caught.value.__notes__[0]


async def test_async_retry_sleeps_on_the_clock(fake_clock: FakeClock) -> None:
    """The async form waits through the clock's asleep and returns the success."""
    calls = 0

    @resilient.retry(jitter=0)
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError
        return "ok"

    assert await flaky() == "ok"
    assert fake_clock.sleeps == [0.5, 1.0]


def test_tenacity_strategies_are_accepted(fake_clock: FakeClock) -> None:
    """tenacity stop, wait and retry objects drive the loop after the first failure."""
    flaky = Flaky(10, OSError("io"))
    decorated = resilient.retry(
        on=tenacity.retry_if_exception_type(OSError),
        stop=tenacity.stop_after_attempt(4),
        wait=tenacity.wait_fixed(2),
    )(flaky)
    with pytest.raises(OSError, match="io"):
        decorated()
    assert flaky.calls == 4
    assert fake_clock.sleeps == [2.0, 2.0, 2.0]


def test_tenacity_stop_after_delay_uses_the_configured_clock(fake_clock: FakeClock) -> None:
    """stop_after_delay measures time on resilient's clock, so fake time counts."""
    flaky = Flaky(100)
    decorated = resilient.retry(stop=tenacity.stop_after_delay(10), wait=tenacity.wait_fixed(3))(
        flaky
    )
    with pytest.raises(ConnectionError):
        decorated()
    assert fake_clock.sleeps == [3.0, 3.0, 3.0, 3.0]


def test_concurrent_calls_do_not_share_attempts() -> None:
    """Each call counts its own attempts, even when threads interleave."""
    clock = FakeClock()
    local = threading.local()
    barrier = threading.Barrier(8)
    results: list[str] = []

    @resilient.retry(attempts=2, initial_delay=0)
    def flaky() -> str:
        local.calls = getattr(local, "calls", 0) + 1
        barrier.wait(timeout=5)
        if local.calls == 1:
            raise ConnectionError
        return f"ok after {local.calls}"

    def worker() -> None:
        results.append(flaky())

    with resilient.testing.use_clock(clock):
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == ["ok after 2"] * 8


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": 2.5}, "attempts"),
        ({"initial_delay": -1}, "initial_delay"),
        ({"initial_delay": float("nan")}, "initial_delay"),
        ({"max_delay": float("inf")}, "max_delay"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": 1.5}, "jitter"),
        ({"on_retry": "print"}, "on_retry"),
        ({"on": KeyboardInterrupt}, "on"),
        ({"on": (ValueError, KeyboardInterrupt)}, "on"),
        ({"max_retry_after": -5}, "max_retry_after"),
        ({"initial_delay": 1e308}, "initial_delay"),
        ({"on": "ValueError"}, "on"),
        ({"config": "turbo"}, "config"),
    ],
)
def test_bad_arguments_fail_at_decoration(kwargs: dict[str, object], parameter: str) -> None:
    """Every bad argument raises ConfigError naming the parameter and the value."""
    with pytest.raises(resilient.ConfigError) as caught:
        resilient.retry(**kwargs)  # type: ignore[arg-type]
    assert caught.value.parameter == parameter
    assert repr(next(iter(kwargs.values()))) in str(caught.value)


def test_durations_accept_timedelta(fake_clock: FakeClock) -> None:
    """initial_delay may be a timedelta."""
    flaky = Flaky(1)
    resilient.retry(initial_delay=timedelta(milliseconds=250), jitter=0)(flaky)()
    assert fake_clock.sleeps == [0.25]


@pytest.mark.parametrize("name", resilient.RetryConfig.names)
def test_presets_are_reachable_by_name(name: str) -> None:
    """Every preset name resolves to the class attribute of that name."""
    assert resilient.RetryConfig.get(name) is getattr(resilient.RetryConfig, name)


PRESETS = {
    "standard": {
        "attempts": 3,
        "initial_delay": 0.5,
        "max_delay": 30.0,
        "multiplier": 2.0,
        "jitter": 0.2,
        "max_retry_after": 300.0,
    },
    "quick": {
        "attempts": 2,
        "initial_delay": 0.1,
        "max_delay": 1.0,
        "multiplier": 2.0,
        "jitter": 0.2,
        "max_retry_after": 5.0,
    },
    "patient": {
        "attempts": 5,
        "initial_delay": 1.0,
        "max_delay": 60.0,
        "multiplier": 2.0,
        "jitter": 0.2,
        "max_retry_after": 300.0,
    },
    "ai_operation": {
        "attempts": 3,
        "initial_delay": 2.0,
        "max_delay": 30.0,
        "multiplier": 2.0,
        "jitter": 0.2,
        "max_retry_after": 300.0,
    },
    "never": {
        "attempts": 1,
        "initial_delay": 0.5,
        "max_delay": 30.0,
        "multiplier": 2.0,
        "jitter": 0.2,
        "max_retry_after": 300.0,
    },
}


@pytest.mark.parametrize("name", resilient.RetryConfig.names)
def test_presets_hold_their_documented_values(name: str) -> None:
    """Every field of every retry preset has the value its docstring and the README give."""
    preset = resilient.RetryConfig.get(name)
    assert dataclasses.asdict(preset) == PRESETS[name]


def test_every_preset_is_pinned() -> None:
    """The table above covers exactly the presets RetryConfig offers."""
    assert set(PRESETS) == set(resilient.RetryConfig.names)


def test_quick_preset_schedule_without_jitter(fake_clock: FakeClock) -> None:
    """RetryConfig.quick waits 0.1 s once, then gives up after its 2 attempts."""
    flaky = Flaky(5)
    with pytest.raises(ConnectionError):
        resilient.retry("quick", jitter=0)(flaky)()
    assert fake_clock.sleeps == [0.1]
    assert flaky.calls == 2


def test_ai_operation_preset_schedule_without_jitter(fake_clock: FakeClock) -> None:
    """RetryConfig.ai_operation waits 2 s, then 4 s, over its 3 attempts."""
    flaky = Flaky(5)
    with pytest.raises(ConnectionError):
        resilient.retry("ai_operation", jitter=0)(flaky)()
    assert fake_clock.sleeps == [2.0, 4.0]
    assert flaky.calls == 3
