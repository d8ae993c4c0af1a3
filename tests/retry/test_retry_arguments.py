"""@retry hands the call's arguments to every attempt and to tenacity strategies; hooks named."""

from __future__ import annotations

from typing import Any

import pytest

import resilient
from resilient import RetryConfig, retry
from resilient._retry.budget import RetryBudget
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


def flaky_async() -> tuple[Any, list[tuple[Any, ...]]]:
    """An async function failing on its first call, recording every call's arguments."""
    seen: list[tuple[Any, ...]] = []

    async def lesson(n: int, *, part: str) -> str:
        seen.append((n, part))
        if len(seen) == 1:
            raise ConnectionError("first try")
        return f"lesson {n}{part}"

    return lesson, seen


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"wait": lambda state: 0.0},
        {"budget": "budget"},
    ],
    ids=["plain", "tenacity-wait", "budget"],
)
@pytest.mark.parametrize("metrics", [False, True], ids=["metrics-off", "metrics-on"])
async def test_every_async_attempt_gets_the_arguments(
    fake_clock: FakeClock, options: dict[str, Any], metrics: bool
) -> None:
    """Each attempt of an async retried call receives the positional and keyword arguments,
    with or without metrics, a tenacity wait or a retry budget."""
    if metrics:
        resilient.configure(metrics=MemorySink())
    if options.get("budget"):
        options = {"budget": RetryBudget(0.5, min_per_second=10)}
    lesson, seen = flaky_async()
    guarded = retry(RetryConfig.quick, jitter=0, **options)(lesson)
    assert await guarded(3, part="b") == "lesson 3b"
    assert seen == [(3, "b"), (3, "b")]


async def test_an_async_tenacity_strategy_sees_the_call(fake_clock: FakeClock) -> None:
    """A tenacity wait in async code sees the function, its arguments and the attempt."""
    seen: list[tuple[Any, ...]] = []

    def wait(state: Any) -> float:
        seen.append((state.fn, state.args, state.kwargs, state.outcome.attempt_number))
        return 0.0

    calls = 0

    async def lesson(n: int, *, part: str) -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError
        return "ok"

    assert await retry(attempts=3, wait=wait)(lesson)(3, part="b") == "ok"
    assert [(args, kwargs, attempt) for _, args, kwargs, attempt in seen] == [
        ((3,), {"part": "b"}, 1),
        ((3,), {"part": "b"}, 2),
    ]
    assert all(callable(fn) for fn, *_ in seen)


def test_a_raising_stop_is_counted_under_the_function_and_noted() -> None:
    """A stop strategy that raises ends the retries; the failure is counted under the
    function's name and noted on the call's error."""
    sink = MemorySink()
    resilient.configure(metrics=sink)

    def stop(state: Any) -> bool:
        raise RuntimeError("stop bug")

    original = ConnectionError("down")

    def fetch() -> None:
        raise original

    with pytest.raises(ConnectionError):
        retry(stop=stop, initial_delay=0)(fetch)()
    name = f"{__name__}.test_a_raising_stop_is_counted_under_the_function_and_noted.<locals>.fetch"
    assert {"name": name, "hook": "stop"} in sink.series()["hook_errors_total"]
    assert any("RuntimeError: stop bug" in note for note in original.__notes__)


def test_an_unknown_retry_preset_says_what_is_allowed() -> None:
    """RetryConfig.get of an unknown name says a RetryConfig or one of the preset names."""
    with pytest.raises(resilient.ConfigError) as caught:
        RetryConfig.get("patiently")
    assert caught.value.parameter == "config"
    assert "a RetryConfig" in caught.value.allowed


@pytest.mark.parametrize(
    "options",
    [{}, {"wait": lambda state: 0.0}, {"budget": "budget"}],
    ids=["plain", "tenacity-wait", "budget"],
)
@pytest.mark.parametrize("metrics", [False, True], ids=["metrics-off", "metrics-on"])
def test_every_sync_attempt_gets_the_arguments(
    fake_clock: FakeClock, options: dict[str, Any], metrics: bool
) -> None:
    """Each attempt of a sync retried call receives the positional and keyword arguments,
    with or without metrics, a tenacity wait or a retry budget."""
    if metrics:
        resilient.configure(metrics=MemorySink())
    if options.get("budget"):
        options = {"budget": RetryBudget(0.5, min_per_second=10)}
    seen: list[tuple[Any, ...]] = []

    def lesson(n: int, *, part: str) -> str:
        seen.append((n, part))
        if len(seen) == 1:
            raise ConnectionError("first try")
        return f"lesson {n}{part}"

    guarded = retry(RetryConfig.quick, jitter=0, **options)(lesson)
    assert guarded(3, part="b") == "lesson 3b"
    assert seen == [(3, "b"), (3, "b")]


def test_a_sync_tenacity_strategy_sees_the_call(fake_clock: FakeClock) -> None:
    """A tenacity wait sees the function, its arguments, the attempt, and no upcoming
    sleep yet (as tenacity's own state starts)."""
    seen: list[tuple[Any, ...]] = []

    def wait(state: Any) -> float:
        seen.append((state.fn, state.args, state.kwargs, state.upcoming_sleep))
        return 0.0

    calls = 0

    def lesson(n: int, *, part: str) -> str:
        nonlocal calls
        calls += 1
        if calls < 2:
            raise ConnectionError
        return "ok"

    assert retry(attempts=3, wait=wait)(lesson)(3, part="b") == "ok"
    ((fn, args, kwargs, upcoming),) = seen
    assert (args, kwargs, upcoming) == ((3,), {"part": "b"}, 0.0)
    assert callable(fn)


def test_jitter_spreads_the_wait_up_and_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """With jitter j, a random draw at the top gives (1 + j) times the wait, at the bottom
    (1 - j) times."""
    config = RetryConfig(initial_delay=2.0, max_delay=30.0, multiplier=2.0, jitter=0.5)
    monkeypatch.setattr("resilient._retry.decorator.random", lambda: 1.0)
    assert config.delay(2) == pytest.approx(6.0)
    monkeypatch.setattr("resilient._retry.decorator.random", lambda: 0.0)
    assert config.delay(2) == pytest.approx(2.0)


def test_a_retry_after_of_zero_retries_at_once(fake_clock: FakeClock) -> None:
    """An error saying retry_after=0 is retried with no wait, whatever the schedule says."""
    calls = 0

    class BusyError(Exception):
        retry_after = 0

    def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise BusyError
        return "ok"

    assert retry(attempts=2, initial_delay=5, jitter=0)(fetch)() == "ok"
    assert fake_clock.monotonic() == 0


def test_a_raising_on_retry_is_counted_under_the_function(fake_clock: FakeClock) -> None:
    """A failing on_retry hook is counted as hook_errors_total of the retried function."""
    sink = MemorySink()
    resilient.configure(metrics=sink)

    def hook(attempt: int, error: BaseException, delay: float) -> None:
        raise RuntimeError("hook bug")

    calls = 0

    def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError
        return "ok"

    assert retry(attempts=2, initial_delay=0, on_retry=hook)(fetch)() == "ok"
    name = f"{__name__}.test_a_raising_on_retry_is_counted_under_the_function.<locals>.fetch"
    assert {"name": name, "hook": "on_retry"} in sink.series()["hook_errors_total"]


@pytest.mark.parametrize(
    ("kwargs", "parameter", "allowed"),
    [
        ({"config": 3}, "config", "a RetryConfig, a preset name or None"),
        ({"budget": 0.1}, "budget", "a RetryBudget or None"),
    ],
)
def test_a_bad_config_or_budget_says_what_is_allowed(
    kwargs: dict[str, Any], parameter: str, allowed: str
) -> None:
    """retry(config=...) and retry(budget=...) of the wrong kind say what they take."""
    with pytest.raises(resilient.ConfigError) as caught:
        retry(**kwargs)
    assert (caught.value.parameter, caught.value.allowed) == (parameter, allowed)
