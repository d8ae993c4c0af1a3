"""Decorating generator and async generator functions: the form, signature and binding are
kept, the stream decorators stack in any order and in policies, observation times streams."""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import nullcontext
from typing import Any

import pytest
from scripted import Kind, Script

import resilient
from resilient.metrics import MemorySink
from resilient.testing import FakeClock

STEPS: dict[str, Callable[[], Any]] = {
    "fallback": lambda: resilient.fallback("fallback"),
    "retry": lambda: resilient.retry(attempts=3),
    "breaker": lambda: resilient.breaker("stacked"),
    "timeout": lambda: resilient.timeout(5, per_item=2),
}


def is_stream_function(kind: Kind, fn: object) -> bool:
    check = inspect.isasyncgenfunction if kind.is_async else inspect.isgeneratorfunction
    return check(fn)


async def test_decorated_functions_stay_generator_functions(kind: Kind) -> None:
    """inspect still sees a generator (or async generator) function, with its signature."""

    def numbers(count: int, *, start: int = 0) -> Iterator[int]:
        yield from range(start, start + count)

    async def anumbers(count: int, *, start: int = 0) -> AsyncIterator[int]:
        for number in range(start, start + count):
            yield number

    target = anumbers if kind.is_async else numbers
    decorated = resilient.retry()(resilient.timeout(5)(target))
    assert is_stream_function(kind, decorated)
    assert inspect.signature(decorated) == inspect.signature(target)
    assert decorated.__wrapped__ is target
    assert await kind.drain(decorated(3, start=2)) == [2, 3, 4]


async def test_the_form_is_kept_while_metrics_are_on(kind: Kind, sink: MemorySink) -> None:
    """With observation on, the function is still a generator function, and each stream is
    timed once, from its first item to its end."""
    stream = resilient.retry()(kind.producer(Script([[1, 2]])))
    assert is_stream_function(kind, stream)
    assert await kind.drain(stream()) == [1, 2]
    assert await kind.take(stream(), 1) == [1]
    assert len(sink.timings("request_latency_ms")) == 2


async def test_observation_switched_on_mid_stream_lets_the_stream_finish(
    kind: Kind, fake_clock: FakeClock
) -> None:
    """A stream started unobserved goes on to its end when metrics are turned on meanwhile."""
    stream = resilient.retry()(kind.producer(Script([[1, 2, 3]])))()
    assert await kind.next(stream) == 1
    resilient.configure(metrics=MemorySink())
    assert await kind.drain(stream) == [2, 3]


async def test_disabled_streams_run_undecorated(kind: Kind) -> None:
    """Under testing.disabled() the undecorated generator runs: an early failure is raised."""
    script = Script([[ConnectionError("down")], [1]])
    stream = resilient.retry(attempts=3)(kind.producer(script))
    with resilient.testing.disabled(), pytest.raises(ConnectionError):
        await kind.drain(stream())
    assert script.started == 1


class Service:
    """Streams as methods of every binding kind."""

    def __init__(self) -> None:
        self.base = 10

    @resilient.retry()
    def items(self, count: int) -> Iterator[int]:
        yield from range(self.base, self.base + count)

    @resilient.retry()
    async def aitems(self, count: int) -> AsyncIterator[int]:
        for number in range(self.base, self.base + count):
            yield number

    @classmethod
    @resilient.timeout(5)
    def class_items(cls, count: int) -> Iterator[str]:
        for _ in range(count):
            yield cls.__name__

    @staticmethod
    @resilient.breaker("static-stream")
    async def static_items(count: int) -> AsyncIterator[int]:
        for number in range(count):
            yield number


class Producer:
    """A callable object whose ``__call__`` is a generator."""

    def __call__(self, count: int) -> Iterator[int]:
        yield from range(count)


async def test_methods_classmethods_staticmethods_and_callables() -> None:
    """Every binding kind keeps working as a stream."""
    sync, async_ = Kind("sync"), Kind("async")
    service = Service()
    assert await sync.drain(service.items(2)) == [10, 11]
    assert await async_.drain(service.aitems(2)) == [10, 11]
    assert await sync.drain(Service.class_items(2)) == ["Service", "Service"]
    assert await async_.drain(Service.static_items(2)) == [0, 1]
    assert await sync.drain(resilient.retry()(Producer())(3)) == [0, 1, 2]
    partial = resilient.timeout(5)(functools.partial(Producer(), 2))
    assert await sync.drain(partial()) == [0, 1]


@pytest.mark.parametrize(
    "order", list(itertools.permutations(STEPS)), ids=lambda order: ">".join(order)
)
async def test_stream_decorators_stack_in_any_order(
    kind: Kind, fake_clock: FakeClock, order: tuple[str, ...]
) -> None:
    """fallback, retry, breaker and timeout stack in any order: early failures are retried
    (or answered by the fallback when it is inside the retry), a healthy run is delivered."""
    script = Script([[ConnectionError("early")], [1, 2, 3]])
    stream: Any = kind.producer(script)
    inside = _fallback_inside_retry(order)
    with pytest.warns(resilient.ResilienceWarning) if inside else nullcontext():
        for step in reversed(order):
            stream = STEPS[step]()(stream)
    expected = ["fallback"] if inside else [1, 2, 3]
    assert await kind.drain(stream()) == expected


def _fallback_inside_retry(order: tuple[str, ...]) -> bool:
    return order.index("fallback") > order.index("retry")


async def test_a_policy_guards_a_stream(kind: Kind, fake_clock: FakeClock) -> None:
    """policy(...) with every stream step decorates a stream; describe() lists the settings."""
    script = Script([[ConnectionError("early")], [1, 2]])
    ai = resilient.policy(
        timeout={"seconds": 5, "per_item": 1},
        retry={"attempts": 2, "restart_stream": True},
        breaker="policy-stream",
        fallback="unavailable",
        total_timeout=30,
    )
    stream = ai(kind.producer(script))
    assert is_stream_function(kind, stream)
    assert await kind.drain(stream()) == [1, 2]
    steps = {step["layer"]: step for step in resilient.describe(stream)}
    assert steps["retry"]["restart_stream"] is True
    assert steps["timeout"]["per_item"] == 1.0


def test_decorators_without_a_stream_form_refuse_streams(kind: Kind) -> None:
    """@degradable means nothing for a stream: TypeError, also inside a policy."""
    feature = resilient.Feature("stream-feature")
    with pytest.raises(TypeError, match="degradable cannot decorate the generator function"):
        resilient.degradable(feature)(resilient.retry()(kind.producer(Script([[1]]))))
    with pytest.raises(TypeError, match="generator function"):
        resilient.policy(degradable=feature, retry=True)(kind.producer(Script([[1]])))
