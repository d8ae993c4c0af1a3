"""Static checks for bare ``@retry``/``@breaker``, ``on_result``, hooks and the block form.

``mypy --strict`` reads this file; nothing here runs (see check_decorators.py).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, assert_type

import resilient

if TYPE_CHECKING:
    from mypy_extensions import Arg, DefaultNamedArg


@resilient.retry
def bare(x: int, *, y: str = "") -> list[int]:
    return [x]


@resilient.breaker
async def abare(x: int) -> str:
    return str(x)


@resilient.retry(on_result=lambda v: v is None, before=print, after=lambda n, e: None)
def polled(x: int) -> int | None:
    return x


def check_bare() -> None:
    assert_type(bare, Callable[[Arg(int, "x"), DefaultNamedArg(str, "y")], list[int]])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(abare, Callable[[Arg(int, "x")], Coroutine[Any, Any, str]])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(polled(1), int | None)
    bare("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def check_stats() -> None:
    stats = resilient.stats(bare)
    assert_type(stats.retries, int)
    assert_type(stats.last_error, BaseException | None)


def check_blocks() -> None:
    for attempt in resilient.retrying(attempts=3, name="block"):
        with attempt:
            assert_type(attempt.number, int)
    resilient.retrying(attempts="3")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def check_async_blocks() -> None:
    async for attempt in resilient.aretrying(attempts=3):
        with attempt:
            assert_type(attempt.error, Exception | None)


class Service:
    @resilient.retry
    @classmethod
    def build(cls, n: int) -> int:
        return n

    @resilient.breaker
    @staticmethod
    def ping(host: str) -> bool:
        return bool(host)


def check_methods() -> None:
    assert_type(Service.build(1), int)
    assert_type(Service.ping("h"), bool)
    Service.build("1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
