"""``@retry`` on a generator or async generator function: retry a stream that failed early.

An attempt is one run of the producer. One that fails before its first item is retried
with the same decisions as a call (``_Plan``: waits, attempts, deadline, hooks, metrics,
budget). Once an item has reached the consumer, a failure propagates: items the consumer
already has are never sent again. With ``restart_stream=True`` a failure at any point
starts the stream again from scratch (its items are delivered again), under the same
plan, so ``attempts`` counts every run of the stream.

The happy path creates the producer, takes its first item and hands the rest on with
``yield from`` (sync) or one ``async for`` (async): no plan, no clock read.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from .._runtime import config as _config
from .._runtime import deadline as _deadline
from .._wrapping.layer import AsyncStreamCall, StreamCall
from .._wrapping.streams import sent_in, thrown_in
from .plan import GiveUp

__all__ = ["retry_stream_async", "retry_stream_sync"]

Planner = Callable[..., Any]
"""``_Plan`` or ``_StrategyPlan`` of ``decorator``: made after the first failure."""

_get_deadline = _deadline.get
_DONE: Any = object()


def retry_stream_sync(layer: Any, planner: Planner, call: StreamCall, name: str) -> StreamCall:
    """The stream form of the retry ``layer`` (a ``decorator._Retry``) around ``call``."""
    state = _config.state
    prefix = f"resilient.retry gave up on {name} "
    budget, timed, before = layer.budget, layer.tenacity, layer.before
    tally = layer.tally(name)  # resilient.stats(fn)

    def wait(plan: Any, failure: Exception) -> None:
        """Sleep before the next attempt, or raise ``failure`` when the plan gives up."""
        clock = state.clock
        when = _get_deadline()  # the time matters only when there is a deadline
        now = 0.0 if when is None else clock.monotonic()
        decision = plan.decide(failure, now, when)
        if isinstance(decision, GiveUp):
            raise plan.failed(failure, decision)
        plan.retrying(failure, decision.seconds)
        if decision.seconds:
            clock.sleep(decision.seconds)
        if before is not None:
            plan.before()

    def again(failure: Exception, args: Any, kwargs: Any, start: float | None) -> Any:
        """Attempts after the first failed: ``(stream, first item)`` or ``(_DONE, value)``."""
        plan = planner(layer, name, prefix, call, args, kwargs, start, tally, failure)
        while True:
            wait(plan, failure)
            try:
                stream = call(*args, **kwargs)
                return stream, next(stream)
            except StopIteration as stop:
                return _DONE, stop.value
            except Exception as error:
                failure = error
                tally.failed_again(error)

    def retrying(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        if budget is not None:
            budget.record_call()
        start = state.clock.monotonic() if timed else None
        if before is not None:
            layer.call_before(1, name)
        try:
            stream = call(*args, **kwargs)
            first = next(stream)
        except StopIteration as stop:
            return stop.value
        except Exception as error:
            stream, first = again(error, args, kwargs, start)
            if stream is _DONE:
                return first
        try:
            sent = yield first
        except BaseException as thrown:  # close() or throw() by the consumer: the producer's
            return (yield from thrown_in(stream, thrown))
        if sent is None:
            return (yield from stream)
        return (yield from sent_in(stream, sent))

    def restarting(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        if budget is not None:
            budget.record_call()
        start = state.clock.monotonic() if timed else None
        if before is not None:
            layer.call_before(1, name)
        plan: Any = None
        while True:
            try:
                stream = call(*args, **kwargs)
            except Exception as error:
                failure = error
            else:
                while True:
                    try:
                        item = next(stream)
                    except StopIteration as stop:
                        return stop.value
                    except Exception as error:
                        failure = error
                        break
                    try:
                        yield item
                    except BaseException:
                        stream.close()
                        raise
            if plan is None:
                plan = planner(layer, name, prefix, call, args, kwargs, start, tally, failure)
            else:
                tally.failed_again(failure)
            wait(plan, failure)

    return restarting if layer.restart_stream else retrying


def retry_stream_async(
    layer: Any, planner: Planner, call: AsyncStreamCall, name: str
) -> AsyncStreamCall:
    """``retry_stream_sync`` for async generator functions (waits on ``clock.asleep``)."""
    state = _config.state
    prefix = f"resilient.retry gave up on {name} "
    budget, timed, restart = layer.budget, layer.tenacity, layer.restart_stream
    before = layer.before
    tally = layer.tally(name)  # resilient.stats(fn)

    async def wait(plan: Any, failure: Exception) -> None:
        clock = state.clock
        when = _get_deadline()
        now = 0.0 if when is None else clock.monotonic()
        decision = plan.decide(failure, now, when)
        if isinstance(decision, GiveUp):
            raise plan.failed(failure, decision)
        plan.retrying(failure, decision.seconds)
        if decision.seconds:
            await clock.asleep(decision.seconds)
        if before is not None:
            plan.before()

    async def retrying(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        if budget is not None:
            budget.record_call()
        start = state.clock.monotonic() if timed else None
        if before is not None:
            layer.call_before(1, name)
        plan: Any = None
        delivered = False
        while True:
            try:
                stream = call(*args, **kwargs)
            except Exception as error:
                failure = error
            else:
                try:
                    while True:
                        try:
                            item = await stream.__anext__()
                        except StopAsyncIteration:
                            return
                        except Exception as error:
                            if delivered and not restart:
                                raise
                            failure = error
                            break
                        delivered = True
                        yield item
                finally:
                    await stream.aclose()
            if plan is None:
                plan = planner(layer, name, prefix, call, args, kwargs, start, tally, failure)
            else:
                tally.failed_again(failure)
            await wait(plan, failure)
            delivered = False

    return retrying
