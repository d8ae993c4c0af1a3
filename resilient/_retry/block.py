"""``retrying()`` / ``aretrying()``: retry a block of code that is not a function.

::

    for attempt in resilient.retrying(attempts=3, on=ConnectionError):
        with attempt:
            reply = fetch()

The block runs under the same layer and per-call plan as ``@retry``: the same settings,
deadline, hooks, metrics, events and statistics. Each ``with attempt:`` keeps what the
block raised (an ``Exception``; cancellation and exits pass through); the loop decides,
waits and yields the next attempt, or raises the last error with its note (a
``StopIteration`` or ``StopAsyncIteration``, which would end the loop silently, as the
cause of a ``RuntimeError``). A block that does not raise ends the loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._runtime import config as _config
from .._runtime import deadline as _deadline
from .._runtime.types import ExceptionFilter, MetricsSink, OnRetry, Seconds
from ..exceptions import ConfigError
from ..presets import RetryPreset
from .decorator import RetryConfig, _layer, _Plan, _Retry, _StrategyPlan
from .plan import GiveUp

if TYPE_CHECKING:
    from .budget import RetryBudget

__all__ = ["AsyncRetrying", "Attempt", "Retrying", "aretrying", "retrying"]

_get_deadline = _deadline.get


class Attempt:
    """One attempt of a ``retrying`` block: use it as ``with attempt:``.

    ``number`` counts from 1. ``error`` is what the block raised (``None`` while it has
    not raised): the loop decides from it whether to try again.
    """

    __slots__ = ("error", "number")

    def __init__(self, number: int) -> None:
        self.number = number
        self.error: Exception | None = None

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if isinstance(error, Exception):  # cancellation and exits are never kept
            self.error = error
            return True
        return False

    def __repr__(self) -> str:
        return f"<resilient.Attempt {self.number} error={self.error!r}>"


class _Loop:
    """What the sync and async loops share: the layer, the name and the statistics."""

    __slots__ = ("layer", "name", "planner", "prefix", "tally")

    def __init__(self, layer: _Retry, name: str) -> None:
        self.layer = layer
        self.name = name
        self.prefix = f"resilient.retrying gave up on {name} "
        self.planner = _StrategyPlan if layer.strategies else _Plan
        self.tally = layer.tally(name)

    def first(self) -> tuple[Attempt, float | None]:
        """The first attempt (``before`` run, the budget told), and when it starts."""
        layer = self.layer
        budget = layer.budget
        if budget is not None:
            budget.record_call()
        start = _config.state.clock.monotonic() if layer.tenacity else None
        if layer.before is not None:
            layer.call_before(1, self.name)
        return Attempt(1), start

    def plan(self, failure: Exception, start: float | None) -> _Plan:
        return self.planner(
            self.layer, self.name, self.prefix, None, (), {}, start, self.tally, failure
        )

    def __repr__(self) -> str:
        settings = self.layer.describe()
        settings.pop("layer")
        body = " ".join(f"{key}={value!r}" for key, value in settings.items())
        return f"<resilient.{type(self).__name__} {self.name!r} {body}>"


class Retrying(_Loop):
    """A retried block: ``for attempt in retrying(...): with attempt: ...``.

    Reusable: each ``for`` loop over it is a new call with its own attempts.
    """

    __slots__ = ()

    def __iter__(self) -> _Attempts:
        return _Attempts(self)


class _Attempts:
    """The attempts of one ``for`` loop over a ``Retrying``."""

    __slots__ = ("attempt", "loop", "plan", "start")

    def __init__(self, loop: Retrying) -> None:
        self.loop = loop
        self.attempt: Attempt | None = None
        self.plan: _Plan | None = None
        self.start: float | None = None

    def __iter__(self) -> _Attempts:
        return self

    def __next__(self) -> Attempt:
        attempt = self.attempt
        if attempt is None:
            self.attempt, self.start = self.loop.first()
            return self.attempt
        failure = attempt.error
        if failure is None:
            raise StopIteration
        if _config.state.bypass:  # resilient.testing.disabled(): one attempt, as decorators
            attempt.error = None
            raise _escaping(failure, StopIteration)
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
            attempt.error = None  # a further next() ends the loop
            raise _escaping(plan.failed(failure, decision), StopIteration)
        delay = decision.seconds
        plan.retrying(failure, delay)
        if delay:
            state.clock.sleep(delay)
        if loop.layer.before is not None:
            plan.before()
        self.attempt = Attempt(plan.attempt + 1)
        return self.attempt


class AsyncRetrying(_Loop):
    """A retried block in async code: ``async for attempt in aretrying(...): with attempt:``.

    Waits with the clock's ``asleep`` (the event loop's sleep); reusable like ``Retrying``.
    """

    __slots__ = ()

    def __aiter__(self) -> _AsyncAttempts:
        return _AsyncAttempts(self)


class _AsyncAttempts:
    """The attempts of one ``async for`` loop over an ``AsyncRetrying``."""

    __slots__ = ("attempt", "loop", "plan", "start")

    def __init__(self, loop: AsyncRetrying) -> None:
        self.loop = loop
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
        when = _get_deadline()
        now = 0.0 if when is None else state.clock.monotonic()
        decision = plan.decide(failure, now, when)
        if isinstance(decision, GiveUp):
            attempt.error = None
            raise _escaping(plan.failed(failure, decision), StopAsyncIteration)
        delay = decision.seconds
        plan.retrying(failure, delay)
        if delay:
            await state.clock.asleep(delay)
        if loop.layer.before is not None:
            plan.before()
        self.attempt = Attempt(plan.attempt + 1)
        return self.attempt


def _escaping(error: Exception, ending: type[Exception]) -> Exception:
    """``error`` as the loop raises it. A ``StopIteration`` (``StopAsyncIteration`` for
    ``async for``) raised by the loop's ``__next__`` would end the loop as if the block had
    succeeded: such an error reaches the caller as the cause of a ``RuntimeError``, as
    Python does for one raised inside a generator (PEP 479)."""
    if not isinstance(error, ending):
        return error
    escaped = RuntimeError(f"the retried block raised {type(error).__name__}")
    escaped.__cause__ = error
    return escaped


def retrying(
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
) -> Retrying:
    """Retry a block: ``for attempt in retrying(...): with attempt: ...``.

    Takes ``retry()``'s settings (``on_result`` aside: a block returns nothing) with the
    same meaning, deadline and hooks; ``name`` labels the block in notes, metrics
    (``retry_attempts_total``), events and ``resilient.stats(block)``. When the rules say
    stop, the ``for`` statement raises the block's last error, noted with why. Build it
    once and loop over it as often as needed; written inline, its settings are checked
    once per distinct set, and blocks with the same settings and name share statistics.
    """
    return Retrying(_block_layer(config, name, locals()), name)


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
    """Retry a block in async code: ``async for attempt in aretrying(...): with attempt:``.

    The same settings as ``retrying``; waits are awaited on the clock's event loop sleep.
    """
    return AsyncRetrying(_block_layer(config, name, locals()), name)


def _block_layer(config: object, name: object, options: dict[str, Any]) -> _Retry:
    """The layer for these settings: one per distinct set (a ``retrying(...)`` written
    inside a loop or a function is checked once, and its blocks share their statistics)."""
    given = tuple((key, value) for key, value in options.items() if value is not None)
    try:
        return _shared_layer(config, name, given)
    except TypeError:  # a value that cannot be hashed: checked (and refused) below
        return _new_layer(config, name, given)


def _new_layer(config: object, name: object, given: tuple[tuple[str, Any], ...]) -> _Retry:
    if not isinstance(name, str) or not name:
        raise ConfigError("name", name, "a block name (non-empty text)")
    return _layer(config, {key: value for key, value in given if key not in ("config", "name")})


_shared_layer = functools.lru_cache(maxsize=128)(_new_layer)
