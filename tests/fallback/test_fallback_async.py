"""@fallback on ``async def``: the same answers, names, notes and metrics as the sync wrapper."""

from __future__ import annotations

import pytest

from resilient._fallback import FallbackCache, FallbackUsed, fallback, last_fallback
from resilient.metrics import MemorySink


def broken(*args: object) -> bool:
    raise RuntimeError("predicate bug")


async def test_failing_predicates_are_counted_under_the_function_and_their_role(
    sink: MemorySink,
) -> None:
    """hook_errors_total names the async function and "on= predicate" / "when= predicate"."""

    @fallback("x", on=broken)
    async def fetch() -> str:
        raise ConnectionError

    @fallback("x", when=broken)
    async def render() -> str:
        return "real"

    with pytest.raises(ConnectionError):
        await fetch()
    assert await render() == "real"
    prefix = f"{__name__}.test_failing_predicates_are_counted_under_the_function_and_their_role"
    assert sink.series()["hook_errors_total"] == [
        {"name": f"{prefix}.<locals>.fetch", "hook": "on= predicate"},
        {"name": f"{prefix}.<locals>.render", "hook": "when= predicate"},
    ]


async def test_the_answer_names_the_guarded_function() -> None:
    """last_fallback().policy is the async function's name, for errors and rejected results."""
    down = ConnectionError("down")

    @fallback("x")
    async def fetch() -> str:
        raise down

    @fallback("x", when=lambda r: r is None)
    async def render() -> None:
        return None

    prefix = f"{__name__}.test_the_answer_names_the_guarded_function.<locals>"
    assert await fetch() == "x"
    assert last_fallback() == FallbackUsed(f"{prefix}.fetch", "fallback[0]", down)
    assert await render() == "x"
    assert last_fallback() == FallbackUsed(f"{prefix}.render", "fallback[0]", None)


async def test_a_rejected_result_is_answered_from_the_cache() -> None:
    """Async: when= rejecting a result lets the last good result for those arguments answer."""
    results = iter(["good", None])

    @fallback(cache=True, when=lambda r: r is None)
    async def lesson(n: int) -> str | None:
        return next(results)

    assert await lesson(1) == "good"
    assert await lesson(1) == "good"
    used = last_fallback()
    assert used is not None
    assert used.source == "cache"


async def test_a_rejected_result_with_only_an_empty_cache_is_returned() -> None:
    """Async: when= rejected the result and nothing else could answer: the result arrives."""

    @fallback(cache=FallbackCache(), when=lambda r: r == "degraded")
    async def answer(n: int) -> str:
        return "degraded"

    assert await answer(1) == "degraded"
    assert last_fallback() is None


async def test_the_give_up_notes_name_the_function_and_the_rejected_result() -> None:
    """Async: the failing fallback's error is noted with the function and the rejected type."""

    async def no_default() -> str:
        raise LookupError("no default")

    @fallback(no_default, when=lambda r: r == 0)
    async def answer() -> int:
        return 0

    with pytest.raises(LookupError) as caught:
        await answer()
    name = f"{__name__}.test_the_give_up_notes_name_the_function_and_the_rejected_result"
    assert caught.value.__notes__ == [
        f"resilient.fallback on {name}.<locals>.answer: when= rejected the result (a int) "
        "and no fallback answered; fallback[0] raised this"
    ]


async def test_the_give_up_notes_name_each_failed_fallback() -> None:
    """Async: the call's own error arrives noting each fallback that failed, by function."""
    original = ConnectionError("down")

    async def cold() -> str:
        raise KeyError("cold")

    @fallback(cold)
    async def fetch() -> str:
        raise original

    with pytest.raises(ConnectionError) as caught:
        await fetch()
    assert caught.value is original
    name = f"{__name__}.test_the_give_up_notes_name_each_failed_fallback.<locals>.fetch"
    assert original.__notes__ == [f"resilient.fallback on {name}: fallback[0]: KeyError: 'cold'"]


async def test_calls_are_observed_while_metrics_are_on(sink: MemorySink) -> None:
    """An async guarded call records its latency and its fallback under the function's name."""

    @fallback("x")
    async def fetch() -> str:
        raise ConnectionError

    assert await fetch() == "x"
    name = f"{__name__}.test_calls_are_observed_while_metrics_are_on.<locals>.fetch"
    assert len(sink.timings("request_latency_ms", policy=name)) == 1
    assert sink.counter("fallbacks_used_total", policy=name) == 1


async def test_a_decorator_sink_receives_the_fallbacks() -> None:
    """fallback(metrics=sink) counts each fallback in that sink, with no sink configured."""
    own = MemorySink()

    @fallback("x", metrics=own)
    async def fetch() -> str:
        raise ConnectionError

    assert await fetch() == "x"
    name = f"{__name__}.test_a_decorator_sink_receives_the_fallbacks.<locals>.fetch"
    assert own.counter("fallbacks_used_total", policy=name) == 1


async def test_a_failing_when_predicate_is_logged_with_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Async: a when= predicate that raises is logged once with the predicate's own error."""

    @fallback("x", when=broken)
    async def render() -> str:
        return "real"

    assert await render() == "real"
    assert "when= predicate raised: RuntimeError: predicate bug" in caplog.text


async def test_keyword_arguments_reach_the_function_with_metrics_on(sink: MemorySink) -> None:
    """Async: with metrics on, a guarded call passes positional and keyword arguments."""

    @fallback("x")
    async def greet(name: str, *, punctuation: str) -> str:
        return f"hello {name}{punctuation}"

    assert await greet("Ada", punctuation="!") == "hello Ada!"
