"""``@timeout`` on a generator or async generator function: a budget for the whole stream.

The budget starts when the first item is asked for (when the producer's body starts to
run) and covers the stream to its end; ``per_item`` bounds, besides, each wait for the
next item (the gap between two items, or before the first). While the producer runs,
the nearer of the two is the deadline it sees through ``resilient.remaining()``, which
nested timeouts and retries share; between items the consumer's own code is outside it.

Async: each wait for an item runs under the event loop's ``asyncio.timeout``; at the
deadline the producer is cancelled and the consumer gets ``TimeoutExceededError``.

Sync: a generator runs on the consumer's thread, item by item, and its frame cannot be
moved to a worker thread and abandoned there, so the ``strategy`` (thread or signal)
does not apply. The deadline is checked whenever the producer hands over an item or
ends: an item that arrives after it is not delivered, the producer is closed and the
consumer gets ``TimeoutExceededError`` (``late_by`` says how late). A producer that
sleeps on the configured clock (a ``FakeClock``) past the deadline is stopped there;
one blocked in other code is only seen late when it comes back: give its own calls a
timeout of ``resilient.remaining()``.

Items are taken with ``next()`` (``__anext__``): values passed with ``send()`` or
``asend()`` do not reach the producer through a timeout.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

from .._runtime import config as _config
from .._runtime import deadline as _deadline
from .._wrapping.layer import AsyncStreamCall, StreamCall
from ..exceptions import TimeoutExceededError

__all__ = ["timeout_stream_async", "timeout_stream_sync"]


def _gap(per_item: float) -> str:
    return f"the producer gave no item within per_item={per_item:g}s"


def _expired(layer: Any, name: str, whole: bool, late: float | None = None) -> TimeoutExceededError:
    """The error of a stream that ran out of time: its whole budget, or an item's."""
    error: TimeoutExceededError = layer.expired(name, late)
    if not whole:
        error.reason = _gap(layer.per_item)
    return error


def timeout_stream_sync(layer: Any, call: StreamCall, name: str) -> StreamCall:
    """The stream form of the timeout ``layer`` (a ``decorator._Timeout``) around ``call``."""
    seconds, per_item = layer.seconds, layer.per_item
    state = _config.state
    enter, leave, reached_type = _deadline.enter, _deadline.leave, _deadline.DeadlineReached

    def timed(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        clock = state.clock
        own = clock.monotonic() + seconds
        stream = call(*args, **kwargs)
        try:
            while True:
                limit, whole = own, True
                if per_item is not None:
                    gap = clock.monotonic() + per_item
                    if gap < own:
                        limit, whole = gap, False
                token = enter(limit)
                try:
                    item = next(stream)
                except StopIteration as stop:
                    now = clock.monotonic()
                    if now > limit:
                        raise _expired(layer, name, whole, now - limit) from None
                    return stop.value
                except reached_type as reached:
                    if reached.when < limit:
                        raise  # an enclosing deadline: its own timeout converts it
                    raise _expired(layer, name, whole) from None
                finally:
                    leave(token)
                now = clock.monotonic()
                if now > limit:
                    raise _expired(layer, name, whole, now - limit)
                yield item
        finally:
            stream.close()

    return timed


def timeout_stream_async(layer: Any, call: AsyncStreamCall, name: str) -> AsyncStreamCall:
    """``timeout_stream_sync`` for async generators: the producer is cancelled at the
    deadline, by ``asyncio.timeout`` on the event loop's clock."""
    import asyncio

    seconds, per_item = layer.seconds, layer.per_item
    state = _config.state
    enter, leave, reached_type = _deadline.enter, _deadline.leave, _deadline.DeadlineReached

    async def timed(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        clock, loop = state.clock, asyncio.get_running_loop()
        own, own_loop = clock.monotonic() + seconds, loop.time() + seconds
        stream = call(*args, **kwargs)
        try:
            while True:
                limit, limit_loop, whole = own, own_loop, True
                if per_item is not None:
                    gap = clock.monotonic() + per_item
                    if gap < own:
                        limit, limit_loop, whole = gap, loop.time() + per_item, False
                token = enter(limit)
                budget = asyncio.timeout_at(limit_loop)
                try:
                    async with budget:
                        item = await stream.__anext__()
                except StopAsyncIteration:
                    return
                except TimeoutError as error:
                    if budget.expired():
                        raise _expired(layer, name, whole) from error
                    raise
                except reached_type as reached:
                    if reached.when < limit:
                        raise
                    raise _expired(layer, name, whole) from None
                finally:
                    leave(token)
                now = clock.monotonic()
                if now > limit:
                    raise _expired(layer, name, whole, now - limit)
                yield item
        finally:
            await stream.aclose()

    return timed
