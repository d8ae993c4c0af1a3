"""@fallback: values, callables, caches of last good results, triggers, events."""

from __future__ import annotations

import asyncio

import pytest

import resilient
from resilient._fallback import (
    FallbackCache,
    FallbackResponses,
    FallbackUsed,
    fallback,
    last_fallback,
)
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


def failing(error: BaseException) -> object:
    def fail(*args: object, **kwargs: object) -> object:
        raise error

    return fail


def test_static_value_answers_a_failure() -> None:
    """A static fallback replaces the error's answer."""
    guarded = fallback({"text": "AI is temporarily unavailable"})(failing(ConnectionError()))
    assert guarded() == {"text": "AI is temporarily unavailable"}
    used = last_fallback()
    assert used is not None
    assert used.source == "fallback[0]"
    assert isinstance(used.error, ConnectionError)


def test_success_passes_through_and_clears_the_flag() -> None:
    """A call that works returns its own result and last_fallback() is None again."""
    fallback("x")(failing(ValueError()))()

    @fallback("x")
    def fine() -> str:
        return "real"

    assert fine() == "real"
    assert last_fallback() is None


def test_callable_gets_the_arguments_and_the_error() -> None:
    """A fallback callable receives the call's arguments, plus error= if it asks for it."""
    seen: list[object] = []

    def answer(lesson: int, *, error: BaseException) -> str:
        seen.append((lesson, type(error).__name__))
        return f"cached lesson {lesson}"

    @fallback(answer)
    def fetch(lesson: int) -> str:
        raise TimeoutError

    assert fetch(7) == "cached lesson 7"
    assert seen == [(7, "TimeoutError")]


def test_fallbacks_are_tried_in_order() -> None:
    """When the first fallback fails the next answers; the first failure is not lost."""
    guarded = fallback(failing(KeyError("cold cache")), "default")(failing(ConnectionError()))
    assert guarded() == "default"
    used = last_fallback()
    assert isinstance(used, FallbackUsed)
    assert used.source == "fallback[1]"


def test_when_every_fallback_fails_the_original_error_is_raised() -> None:
    """The caller gets the function's own error, with notes about each fallback."""
    original = ConnectionError("down")
    guarded = fallback(failing(KeyError("nope")))(failing(original))
    with pytest.raises(ConnectionError) as caught:
        guarded()
    assert caught.value is original
    assert "KeyError" in caught.value.__notes__[0]


def test_on_limits_the_errors_that_trigger() -> None:
    """Errors outside ``on`` pass through untouched."""
    guarded = fallback("x", on=ConnectionError)(failing(ValueError("bug")))
    with pytest.raises(ValueError, match="bug"):
        guarded()


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(1), GeneratorExit()])
def test_interrupts_and_exits_always_pass(error: BaseException) -> None:
    """BaseException-only errors never trigger a fallback."""
    with pytest.raises(type(error)):
        fallback("x")(failing(error))()


async def test_cancellation_always_passes() -> None:
    """asyncio.CancelledError is never answered by a fallback."""

    @fallback("x")
    async def cancelled() -> str:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await cancelled()


def test_open_circuit_and_timeouts_trigger_by_default() -> None:
    """The default trigger, Exception, covers CircuitOpenError and timeouts."""
    assert fallback("x")(failing(resilient.CircuitOpenError("ai", 3.0)))() == "x"
    assert fallback("y")(failing(resilient.TimeoutExceededError("f", 1.0)))() == "y"


def test_result_predicate_triggers_the_fallback() -> None:
    """when= treats some results as failures."""

    @fallback("fallback", when=lambda result: result is None)
    def maybe() -> str | None:
        return None

    assert maybe() == "fallback"
    used = last_fallback()
    assert used is not None
    assert used.error is None


def test_cache_answers_with_the_last_good_result_and_its_age(fake_clock: FakeClock) -> None:
    """After a success, a failure for the same arguments answers from the cache."""
    healthy = True

    @fallback(cache=FallbackCache(maxsize=10, ttl=60))
    def lesson(n: int) -> str:
        if not healthy:
            raise ConnectionError
        return f"lesson {n} at {fake_clock.monotonic():g}"

    assert lesson(1) == "lesson 1 at 0"
    fake_clock.advance(42)
    healthy = False
    assert lesson(1) == "lesson 1 at 0"
    used = last_fallback()
    assert used is not None
    assert (used.source, used.age) == ("cache", 42)
    with pytest.raises(ConnectionError):
        lesson(2)  # never succeeded for these arguments
    fake_clock.advance(30)
    with pytest.raises(ConnectionError):
        lesson(1)  # past the TTL


def test_cache_then_static_value() -> None:
    """With no cached result, the static fallback answers."""
    guarded = fallback("static", cache=True)(failing(ConnectionError()))
    assert guarded(1) == "static"


def test_unhashable_arguments_need_a_key() -> None:
    """Unhashable arguments get their result and a clear warning; key= fixes it."""

    @fallback(cache=True)
    def by_filter(filters: dict[str, str]) -> str:
        return "ok"

    with pytest.warns(resilient.ResilienceWarning, match="key="):
        answer = by_filter({"a": "b"})
    assert answer == "ok"

    @fallback(cache=True, key=lambda filters: tuple(sorted(filters.items())))
    def keyed(filters: dict[str, str]) -> str:
        return "ok"

    assert keyed({"a": "b"}) == "ok"


async def test_async_fallbacks_are_awaited() -> None:
    """An async function may have async fallback callables."""

    async def answer(prompt: str) -> dict[str, str]:
        return {"text": f"offline answer to {prompt}"}

    @fallback(answer)
    async def generate(prompt: str) -> dict[str, str]:
        raise ConnectionError

    assert await generate("photosynthesis") == {"text": "offline answer to photosynthesis"}


def test_async_fallback_on_a_sync_function_is_refused() -> None:
    """A coroutine cannot answer a def: refused when decorating."""

    async def answer() -> str:
        return "x"

    with pytest.raises(resilient.ConfigError, match="values"):
        fallback(answer)(lambda: "y")


def test_events_and_metrics_report_each_fallback() -> None:
    """Each fallback emits FallbackUsed to listeners and counts fallbacks_used_total."""
    sink = MemorySink()
    resilient.configure(metrics=sink)
    events: list[object] = []
    resilient.add_listener(events.append)
    guarded = fallback(FallbackResponses.hint)(failing(ConnectionError()))
    assert guarded() == FallbackResponses.hint
    assert sink.counter("fallbacks_used_total") == 1
    assert [type(e).__name__ for e in events] == ["FallbackUsed"]


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"on": KeyboardInterrupt}, "on"),
        ({"on": "ValueError"}, "on"),
        ({"when": 3}, "when"),
        ({"cache": "yes"}, "cache"),
        ({"key": "id"}, "key"),
    ],
)
def test_bad_arguments_fail_at_decoration(kwargs: dict[str, object], parameter: str) -> None:
    """Bad triggers, predicates and caches raise ConfigError naming the parameter."""
    with pytest.raises(resilient.ConfigError) as caught:
        fallback("x", **kwargs)  # type: ignore[arg-type]
    assert caught.value.parameter == parameter


def test_nothing_to_fall_back_on_is_refused() -> None:
    """fallback() with no value and no cache is a mistake."""
    with pytest.raises(resilient.ConfigError):
        fallback()


def test_bad_cache_settings_are_refused() -> None:
    """FallbackCache validates its size and TTL."""
    with pytest.raises(resilient.ConfigError, match="maxsize"):
        FallbackCache(maxsize=0)
    with pytest.raises(resilient.ConfigError, match="ttl"):
        FallbackCache(ttl=-1)
