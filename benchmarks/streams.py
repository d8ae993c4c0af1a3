"""Stream scenarios: a retried 3-item generator (and async generator), success path.

The timed callable consumes the whole stream (three items) and returns 1. The reference
row is the same generator reached through one plain function call; the peer is
stamina's generator retry, configured like ours. The "yield-from wrapper" row shows the
floor of any decorator that keeps a generator function a generator function.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from _harness import Impl, Target, TimedScenario, register
from foundation import _stamina

Fn = Callable[[], Any]


def three() -> Iterator[int]:
    yield 1
    yield 2
    yield 3


async def athree() -> AsyncIterator[int]:
    yield 1
    yield 2
    yield 3


def _consumer(make: Callable[[], Iterator[int]]) -> Fn:
    def consume() -> int:
        total = 0
        for item in make():
            total += item
        return total - 5  # 1: the harness checks every row returns 1

    return consume


def _aconsumer(make: Callable[[], AsyncIterator[int]]) -> Fn:
    async def consume() -> int:
        total = 0
        async for item in make():
            total += item
        return total - 5

    return consume


def _one_call() -> Fn:
    def through() -> Iterator[int]:
        return three()

    return _consumer(through)


def _aone_call() -> Fn:
    def through() -> AsyncIterator[int]:
        return athree()

    return _aconsumer(through)


def _floor() -> Fn:
    """The least a generator function wrapping a generator costs: one ``yield from``."""

    def wrapper(*args: Any, **kwargs: Any) -> Iterator[int]:
        return (yield from three(*args, **kwargs))

    return _consumer(wrapper)


def _ours() -> Fn:
    import resilient

    return _consumer(resilient.retry(attempts=3, initial_delay=0.0)(three))


def _aours() -> Fn:
    import resilient

    return _aconsumer(resilient.retry(attempts=3, initial_delay=0.0)(athree))


def _stamina_sync() -> Fn:
    return _consumer(_stamina().retry(on=Exception, attempts=3)(three))


def _stamina_async() -> Fn:
    return _aconsumer(_stamina().retry(on=Exception, attempts=3)(athree))


register(
    TimedScenario(
        "retried 3-item generator",
        [
            Impl("bare generator", "bare", lambda: _consumer(three)),
            Impl("generator + 1 call", "reference", _one_call),
            Impl("resilient", "ours", _ours),
            Impl("yield-from wrapper", "peer", _floor),
        ],
        Target("reference", 1.2),
        notes=[
            "yield-from wrapper: a one-line generator function around the generator, the "
            "least any wrapper that stays a generator function (and so can see the first "
            "item) costs"
        ],
    ),
    TimedScenario(
        "retried 3-item generator vs peers",
        [
            Impl("bare generator", "bare", lambda: _consumer(three)),
            Impl("resilient", "ours", _ours),
            Impl("stamina", "peer", _stamina_sync),
        ],
        Target("fastest_peer", 0.3),
    ),
    TimedScenario(
        "retried 3-item async generator",
        [
            Impl("bare async generator", "bare", lambda: _aconsumer(athree)),
            Impl("generator + 1 call", "reference", _aone_call),
            Impl("resilient", "ours", _aours),
            Impl("stamina", "peer", _stamina_async),
        ],
        Target("reference", None),
        is_async=True,
    ),
)
