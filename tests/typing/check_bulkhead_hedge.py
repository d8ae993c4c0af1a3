"""Static checks (mypy only, never run): bulkhead and hedge keep signatures and types."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, assert_type

import resilient

if TYPE_CHECKING:
    from mypy_extensions import Arg, DefaultNamedArg


@resilient.bulkhead(4, max_queue=10, queue_timeout=timedelta(seconds=2), name="typing-db")
def query(sql: str, *, limit: int = 10) -> list[str]:
    return [sql] * limit


@resilient.bulkhead(8)
@resilient.hedge("p95", max_hedges=2)
@resilient.timeout(5)
async def ask(prompt: str, *, model: str = "small") -> dict[str, str]:
    return {"text": prompt, "model": model}


@resilient.policy(bulkhead={"max_concurrent": 2}, hedge=0.25, timeout=5)
async def fetch(url: str) -> bytes:
    return url.encode()


class Client:
    @resilient.hedge(0.1)
    async def get(self, key: str) -> int:
        return len(key)


def check_signatures_survive() -> None:
    assert_type(query, Callable[[Arg(str, "sql"), DefaultNamedArg(int, "limit")], list[str]])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    query(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    assert_type(
        ask,  # pyright: ignore[reportAssertTypeFailure]
        Callable[
            [Arg(str, "prompt"), DefaultNamedArg(str, "model")],  # pyright: ignore[reportInvalidTypeForm]
            Coroutine[Any, Any, dict[str, str]],
        ],
    )
    assert_type(fetch, Callable[[Arg(str, "url")], Coroutine[Any, Any, bytes]])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]


async def check_awaiting(client: Client) -> None:
    assert_type(await ask("p"), dict[str, str])
    assert_type(await client.get("k"), int)


def check_errors(error: resilient.BulkheadFullError) -> None:
    assert_type(error.name, str)
    assert_type(error.max_concurrent, int)
    assert_type(error.max_queue, int)
    assert_type(error.reason, str)


def check_events(event: resilient.BulkheadRejected, won: resilient.HedgeWon) -> None:
    assert_type(event.max_concurrent, int)
    assert_type(won.attempt, int)
