"""Static checks that the stream decorators keep a generator function's exact signature.

``mypy --strict`` reads this file; nothing here runs (see ``check_decorators.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, assert_type

import resilient

if TYPE_CHECKING:
    from mypy_extensions import Arg, DefaultNamedArg


@resilient.fallback("offline")
@resilient.retry(attempts=3, restart_stream=True)
@resilient.breaker("typed-stream")
@resilient.timeout(30, per_item=2)
def tokens(prompt: str, *, limit: int = 10) -> Iterator[str]:
    yield prompt


@resilient.retry(attempts=3)
@resilient.timeout(30, per_item=2)
async def atokens(prompt: str, *, limit: int = 10) -> AsyncIterator[str]:
    yield prompt


streamed = resilient.policy(retry=True, timeout={"seconds": 5, "per_item": 1})


@streamed
def policy_tokens(prompt: str) -> Iterator[str]:
    yield prompt


def check_stream_signatures() -> None:
    assert_type(
        tokens,  # pyright: ignore[reportAssertTypeFailure]
        Callable[[Arg(str, "prompt"), DefaultNamedArg(int, "limit")], Iterator[str]],  # pyright: ignore[reportInvalidTypeForm]
    )
    assert_type(
        atokens,  # pyright: ignore[reportAssertTypeFailure]
        Callable[[Arg(str, "prompt"), DefaultNamedArg(int, "limit")], AsyncIterator[str]],  # pyright: ignore[reportInvalidTypeForm]
    )
    assert_type(policy_tokens, Callable[[Arg(str, "prompt")], Iterator[str]])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    for token in tokens("hi", limit=3):
        assert_type(token, str)
    tokens(3)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def check_async_stream_items() -> None:
    async for token in atokens("hi"):
        assert_type(token, str)
