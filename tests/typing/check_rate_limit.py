"""Static checks (mypy only, never run): ``@rate_limit`` keeps signatures and types."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, assert_type

import resilient

if TYPE_CHECKING:
    from mypy_extensions import Arg, DefaultNamedArg


@resilient.rate_limit(10, burst=5, name="typing-rl")
def send(to: str, *, retries: int = 1) -> bool:
    return bool(to) and retries > 0


@resilient.retry("standard")
@resilient.rate_limit(600, 60, mode="reject")
async def ask(prompt: str) -> str:
    return prompt


class Client:
    @resilient.rate_limit(5)
    def fetch(self, key: str) -> bytes:
        return key.encode()


limited = resilient.policy(rate_limit={"rate": 5, "mode": "reject"}, retry="quick")


@limited
def ping(host: str) -> float:
    return 0.0


assert_type(send, Callable[[Arg(str, "to"), DefaultNamedArg(int, "retries")], bool])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
assert_type(send("x"), bool)
assert_type(ask, Callable[[Arg(str, "prompt")], Coroutine[Any, Any, str]])  # pyright: ignore[reportAssertTypeFailure, reportInvalidTypeForm]
assert_type(Client().fetch("k"), bytes)
assert_type(ping("h"), float)
error = resilient.RateLimitedError("x", 1.0)
assert_type(error.retry_after, float)
assert_type(error.name, str)
assert_type(resilient.get_rate_limiter("x"), resilient.RateLimiter | None)
send(3)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
resilient.rate_limit(10, mode="block")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
