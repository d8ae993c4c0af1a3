"""Breaker listeners and failure_result= predicates: refusals and failures, named."""

from __future__ import annotations

import pytest

import resilient
from resilient import BreakerConfig, CircuitBreaker, breaker
from resilient.metrics import MemorySink


def test_a_listener_that_is_not_callable_is_refused() -> None:
    """add_listener of something not callable raises ConfigError naming listener=."""
    b = CircuitBreaker("refusing", BreakerConfig())
    with pytest.raises(resilient.ConfigError) as caught:
        b.add_listener("print")  # type: ignore[arg-type]
    assert (caught.value.parameter, caught.value.value, caught.value.allowed) == (
        "listener",
        "print",
        "a callable taking one event",
    )


def test_a_raising_failure_result_predicate_is_counted_under_the_breaker() -> None:
    """A failure_result= predicate that raises counts as "not a failure" and is counted
    under the breaker's name."""
    sink = MemorySink()
    resilient.configure(metrics=sink)

    def bad(result: object) -> bool:
        raise RuntimeError("predicate bug")

    @breaker("judged", BreakerConfig(failure_threshold=1, failure_result=bad))
    def answer() -> str:
        return "real"

    assert answer() == "real"
    assert answer() == "real"  # not counted as a failure: the breaker stays closed
    assert {"name": "judged", "hook": "failure_result= predicate"} in sink.series()[
        "hook_errors_total"
    ]


async def test_an_async_result_judged_a_failure_opens_the_breaker(fake_clock: object) -> None:
    """Async: failure_result= sees each result, and results it calls failures trip the
    breaker."""
    seen: list[object] = []

    def bad(result: object) -> bool:
        seen.append(result)
        return result == "degraded"

    @breaker("judged-async", BreakerConfig(failure_threshold=2, failure_result=bad))
    async def answer() -> str:
        return "degraded"

    assert await answer() == "degraded"
    assert await answer() == "degraded"
    assert seen == ["degraded", "degraded"]
    with pytest.raises(resilient.CircuitOpenError):
        await answer()
