"""Async @retry hands the call's arguments to every attempt and to tenacity strategies."""

from __future__ import annotations

from typing import Any

import pytest

import resilient
from resilient import RetryConfig, retry
from resilient._budget import RetryBudget
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
    clock: FakeClock, options: dict[str, Any], metrics: bool
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


async def test_an_async_tenacity_strategy_sees_the_call(clock: FakeClock) -> None:
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
