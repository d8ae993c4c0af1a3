"""Static checks (mypy only, never run): breaker, fallback, degradable, chaos, policies."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, assert_type

import resilient
from resilient.chaos import inject_fault

if TYPE_CHECKING:
    from mypy_extensions import Arg, DefaultNamedArg


@resilient.breaker("typing-db", "database")
def query(sql: str, *, limit: int = 10) -> list[str]:
    return [sql] * limit


@resilient.fallback({"text": "offline"})
@resilient.retry("standard")
@resilient.breaker("typing-ai", resilient.BreakerConfig.ai_operation)
@resilient.timeout("ai_operation")
async def generate(prompt: str) -> dict[str, str]:
    return {"text": prompt}


@resilient.degradable("ai_assistant", fallback="no hint")
def hint(question: str) -> str:
    return question


ai = resilient.policy(
    timeout="ai_operation", retry="standard", breaker=("typing-p", "ai_operation")
)


@ai
async def summarize(text: str, *, words: int = 50) -> str:
    return text


@inject_fault(ConnectionError, rate=0.1)
def flaky(n: int) -> int:
    return n


def check_signatures_survive() -> None:
    assert_type(query, Callable[[Arg(str, "sql"), DefaultNamedArg(int, "limit")], list[str]])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    query(1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    assert_type(generate, Callable[[Arg(str, "prompt")], Coroutine[Any, Any, dict[str, str]]])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
    assert_type(hint("why?"), str)
    assert_type(
        summarize,  # pyright: ignore[reportAssertTypeFailure]
        Callable[[Arg(str, "text"), DefaultNamedArg(int, "words")], Coroutine[Any, Any, str]],  # pyright: ignore[reportInvalidTypeForm]
    )
    summarize("x", words="many")  # type: ignore[arg-type, unused-coroutine]  # pyright: ignore[reportArgumentType, reportUnusedCoroutine]
    assert_type(flaky(1), int)


async def check_awaiting() -> None:
    assert_type(await generate("p"), dict[str, str])
    assert_type(await summarize("t"), str)


# Added for the trust fixes: per-function thread caps, honest late timeouts, the autojump
# fake clock, byte-bounded fallback caches, retry_after caps and breaker permits.


@resilient.timeout(2, max_threads=4)
def capped(path: str) -> bytes:
    return path.encode()


assert_type(capped("x"), bytes)


def late(error: resilient.TimeoutExceededError) -> None:
    assert_type(error.late_by, float | None)
    assert_type(error.reason, str | None)


assert_type(resilient.testing.FakeClock(autojump=0.1), resilient.testing.FakeClock)
assert_type(
    resilient.FallbackCache(maxsize=10, max_bytes=1 << 20, sizeof=len), resilient.FallbackCache
)


@resilient.retry(attempts=3, max_retry_after=60.0)
def polite(url: str) -> str:
    return url


assert_type(polite("u"), str)


def settle(breaker: resilient.CircuitBreaker) -> None:
    permit = breaker.admit()
    breaker.withdraw(permit)


@resilient.breaker("ledger-db", resilient.BreakerConfig.critical, critical=True)
def book(entry: str) -> int:
    return len(entry)


assert_type(book("e"), int)
assert_type(resilient.CircuitBreaker("ledger-db", critical=True).critical, bool)
