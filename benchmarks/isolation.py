"""Bulkhead and hedge scenarios: the success path of each, against its reference.

- sync bulkhead: a ``threading.BoundedSemaphore`` decorator written the obvious way
  (acquire without blocking or refuse, call, release);
- async bulkhead: hyx's ``bulkhead`` (two asyncio semaphores);
- hedge: ``asyncio.timeout``, the cost of one timer per call, which is all a hedge
  whose first attempt answers before ``delay`` should cost (no task is created).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import Any

from _harness import Impl, Target, TimedScenario, register
from foundation import aplain, plain

Fn = Callable[[], Any]


class FullError(Exception):
    """The semaphore decorator's refusal."""


def _semaphore(fn: Fn) -> Fn:
    slots = threading.BoundedSemaphore(10)

    @functools.wraps(fn)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if not slots.acquire(blocking=False):
            raise FullError
        try:
            return fn(*args, **kwargs)
        finally:
            slots.release()

    return bounded


def _bulkhead_ours(fn: Fn) -> Fn:
    import resilient

    return resilient.bulkhead(10)(fn)


def _bulkhead_hyx() -> Fn:
    from hyx.bulkhead import bulkhead

    return bulkhead(max_concurrency=10, max_capacity=10)(aplain)  # type: ignore[no-any-return]


def _hedge_ours() -> Fn:
    import resilient

    return resilient.hedge(10.0)(aplain)


async def _timeout_reference() -> int:
    async with asyncio.timeout(10.0):
        return await aplain()


register(
    TimedScenario(
        "bulkhead success path (sync)",
        [
            Impl("bare", "bare", lambda: plain),
            Impl("BoundedSemaphore decorator", "reference", lambda: _semaphore(plain)),
            Impl("resilient", "ours", lambda: _bulkhead_ours(plain)),
        ],
        Target("reference", 0.5),
    ),
    TimedScenario(
        "bulkhead success path (async)",
        [
            Impl("bare", "bare", lambda: aplain),
            Impl("hyx bulkhead", "reference", _bulkhead_hyx),
            Impl("resilient", "ours", lambda: _bulkhead_ours(aplain)),
        ],
        Target("reference", 0.5),
        is_async=True,
    ),
    TimedScenario(
        "hedge success path (async)",
        [
            Impl("bare", "bare", lambda: aplain),
            Impl("asyncio.timeout", "reference", lambda: _timeout_reference),
            Impl("resilient", "ours", _hedge_ours),
        ],
        Target("reference", 1.1),
        is_async=True,
    ),
)
