"""@fallback on generator and async generator functions: a stream that fails before its
first item is replaced by a fallback stream (or a value, as a one-item stream)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from scripted import Kind, Script

import resilient
from resilient.exceptions import ConfigError
from resilient.metrics import MemorySink


def cached_answer(*args: object) -> Iterator[str]:
    yield "offline"
    yield "answer"


async def acached_answer(*args: object) -> AsyncIterator[str]:
    yield "offline"
    yield "answer"


async def test_a_fallback_generator_replaces_a_stream_that_failed_early(kind: Kind) -> None:
    """Before any item: the fallback generator's items are the stream."""
    script = Script([[ConnectionError("down")]])
    source = acached_answer if kind.is_async else cached_answer
    stream = resilient.fallback(source)(kind.producer(script))
    assert await kind.drain(stream()) == ["offline", "answer"]
    used = resilient.last_fallback()
    assert used is not None
    assert used.source == "fallback[0]"


async def test_a_sync_generator_may_answer_for_an_async_stream() -> None:
    """An async stream's fallback may be a plain generator function."""
    kind = Kind("async")
    stream = resilient.fallback(cached_answer)(kind.producer(Script([[ConnectionError()]])))
    assert await kind.drain(stream()) == ["offline", "answer"]


async def test_a_value_becomes_a_one_item_stream(kind: Kind, sink: MemorySink) -> None:
    """A plain value (or what a callable returns) is the fallback stream's only item."""
    script = Script([[ConnectionError("down")]])
    stream = resilient.fallback({"text": "unavailable"})(kind.producer(script))
    assert await kind.drain(stream()) == [{"text": "unavailable"}]
    stream = resilient.fallback(lambda *a, **k: "later")(kind.producer(script))
    assert await kind.drain(stream()) == ["later"]
    assert sink.counter("fallbacks_used_total") == 2


async def test_a_failure_after_the_first_item_reaches_the_caller(kind: Kind) -> None:
    """Items already delivered are never followed by the fallback's: the error propagates."""
    script = Script([[1, ConnectionError("late")]])
    stream = resilient.fallback("never")(kind.producer(script))
    items = stream()
    assert await kind.next(items) == 1
    with pytest.raises(ConnectionError, match="late"):
        await kind.next(items)


async def test_a_healthy_stream_clears_last_fallback(kind: Kind) -> None:
    """A stream that answered itself leaves last_fallback() at None."""
    failing = resilient.fallback("x")(kind.producer(Script([[ConnectionError()]])))
    healthy = resilient.fallback("x")(kind.producer(Script([[1]])))
    assert await kind.drain(failing()) == ["x"]
    assert resilient.last_fallback() is not None
    assert await kind.drain(healthy()) == [1]
    assert resilient.last_fallback() is None


async def test_errors_outside_on_pass_through(kind: Kind) -> None:
    """``on=`` chooses which early failures the fallback answers."""
    stream = resilient.fallback("x", on=ConnectionError)(kind.producer(Script([[KeyError()]])))
    with pytest.raises(KeyError):
        await kind.drain(stream())


async def test_the_caller_gets_the_streams_error_when_every_fallback_fails(kind: Kind) -> None:
    """A fallback callable that raises leaves the stream's own error, noted."""

    def broken(*args: object) -> str:
        raise RuntimeError("fallback broken")

    stream = resilient.fallback(broken)(kind.producer(Script([[ConnectionError("down")]])))
    with pytest.raises(ConnectionError, match="down") as caught:
        await kind.drain(stream())
    assert "fallback broken" in caught.value.__notes__[0]


async def test_closing_the_fallback_stream_closes_it(kind: Kind) -> None:
    """break on a fallback stream closes the fallback generator."""
    closed: list[bool] = []

    def answer(*args: object) -> Iterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    stream = resilient.fallback(answer)(kind.producer(Script([[ConnectionError()]])))
    assert await kind.take(stream(), 1) == [1]
    assert closed == [True]


@pytest.mark.parametrize(
    ("options", "parameter"),
    [({"when": lambda result: True}, "when"), ({"cache": True}, "cache")],
    ids=["when", "cache"],
)
def test_when_and_cache_are_refused_for_streams(
    kind: Kind, options: dict[str, object], parameter: str
) -> None:
    """A stream has no result to judge or keep: when= and cache= raise ConfigError."""
    with pytest.raises(ConfigError, match=parameter):
        resilient.fallback("x", **options)(kind.producer(Script([[1]])))  # type: ignore[arg-type]


def test_an_async_fallback_is_refused_for_a_sync_stream() -> None:
    """A generator function cannot await a coroutine fallback: ConfigError at decoration."""

    async def later(*args: object) -> str:
        return "later"

    with pytest.raises(ConfigError, match="values"):
        resilient.fallback(later)(Kind("sync").producer(Script([[1]])))
