"""The loop of a retried block and the function that makes it.

Written once, for asyncio (``block_async.py``); the blocking twin (``block_sync.py``) is
generated from it by ``.ci/unasync.py``, which CI runs with ``--check``. What the twins
share (the attempt, the loop's layer, name and statistics, the settings) lives in
``block_base``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._runtime import config as _config
from .._runtime import deadline as _deadline
from .._runtime.types import ExceptionFilter, MetricsSink, OnRetry, Seconds
from ..presets import RetryPreset
from .block_base import Attempt, _block_layer, _escaping, _Loop
from .decorator import RetryConfig, _Plan
from .plan import GiveUp

if TYPE_CHECKING:
    from .budget import RetryBudget

__all__ = ["AsyncRetrying", "aretrying"]

_get_deadline = _deadline.get


class AsyncRetrying(_Loop):
    """A retried block: ``async for attempt in aretrying(...): with attempt: ...``.

    Reusable: each ``async for`` loop over it is a new call with its own attempts. Waits
    go through the configured clock's ``asleep``.
    """

    __slots__ = ()

    def __aiter__(self) -> _AsyncAttempts:
        return _AsyncAttempts(self)


class _AsyncAttempts:
    """The attempts of one ``async for`` loop over a block (``AsyncRetrying``)."""

    __slots__ = ("attempt", "loop", "plan", "start")

    def __init__(self, loop: AsyncRetrying) -> None:
        self.loop: AsyncRetrying = loop
        self.attempt: Attempt | None = None
        self.plan: _Plan | None = None
        self.start: float | None = None

    def __aiter__(self) -> _AsyncAttempts:
        return self

    async def __anext__(self) -> Attempt:
        attempt = self.attempt
        if attempt is None:
            self.attempt, self.start = self.loop.first()
            return self.attempt
        failure = attempt.error
        if failure is None:
            raise StopAsyncIteration
        if _config.state.bypass:  # resilient.testing.disabled(): one attempt, as decorators
            attempt.error = None
            raise _escaping(failure, StopAsyncIteration)
        loop = self.loop
        plan = self.plan
        if plan is None:
            plan = self.plan = loop.plan(failure, self.start)
        else:
            loop.tally.failed_again(failure)
        state = _config.state
        when = _get_deadline()  # the time matters only when there is a deadline
        now = 0.0 if when is None else state.clock.monotonic()
        decision = plan.decide(failure, now, when)
        if isinstance(decision, GiveUp):
            attempt.error = None  # a further step ends the loop
            raise _escaping(plan.failed(failure, decision), StopAsyncIteration)
        delay = decision.seconds
        plan.retrying(failure, delay)
        if delay:
            await state.clock.asleep(delay)
        if loop.layer.before is not None:
            plan.before()
        self.attempt = Attempt(plan.attempt + 1)
        return self.attempt


def aretrying(
    config: RetryConfig | RetryPreset | None = None,
    *,
    name: str = "retrying",
    on: ExceptionFilter | None = None,
    attempts: int | None = None,
    initial_delay: Seconds | None = None,
    max_delay: Seconds | None = None,
    multiplier: float | None = None,
    jitter: float | None = None,
    max_retry_after: Seconds | None = None,
    on_retry: OnRetry | None = None,
    before: Callable[[int], object] | None = None,
    after: Callable[[int, BaseException], object] | None = None,
    stop: Callable[[Any], bool] | None = None,
    wait: Callable[[Any], float] | None = None,
    metrics: MetricsSink | None = None,
    budget: RetryBudget | None = None,
) -> AsyncRetrying:
    """Retry a block: ``async for attempt in aretrying(...): with attempt: ...``.

    Takes ``retry()``'s settings (``on_result`` aside: a block returns nothing) with the
    same meaning, deadline and hooks; ``name`` labels the block in notes, metrics
    (``retry_attempts_total``), events and ``resilient.stats(block)``. When the rules say
    stop, the ``async for`` statement raises the block's last error, noted with why. Build
    it once and loop over it as often as needed; written inline, its settings are checked
    once per distinct set, and blocks with the same settings and name share statistics.
    Waits go through the configured clock's ``asleep``.
    """
    return AsyncRetrying(_block_layer(config, name, locals()), name)
