"""``@breaker`` on a generator or async generator function: one stream, one outcome.

The stream is admitted when its first item is asked for (an open breaker raises
``CircuitOpenError`` there), and its outcome is recorded when it ends: run to its end,
a success; raised, a failure (judged by ``record=`` and ``ignore=`` like a call's
error); closed early by the consumer (``break``, ``close()``, ``aclose()``), cancelled
or interrupted, neither: the permit is released, so a half-open probe's slot is free
for the next call. A slow-call rule times the whole stream. As for a call, listeners'
``CallRecorded`` carries the stream's error, and with ``error_on_trip="open"`` the
failure that trips the breaker reaches the consumer as ``CircuitOpenError`` chained to it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

from .._circuit.rules import Kind
from .._wrapping.layer import AsyncStreamCall, StreamCall

__all__ = ["guard_stream_async", "guard_stream_sync"]

_SUCCESS, _RELEASE = Kind.SUCCESS, Kind.RELEASE


def guard_stream_sync(breaker: Any, call: StreamCall) -> StreamCall:
    """``call``'s generator guarded by ``breaker`` (a ``CircuitBreaker``) as one call."""
    b = breaker

    def guarded(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        permit = b._admit()
        try:
            result = yield from call(*args, **kwargs)
        except Exception as error:
            tripped = b._fail(permit, error)
            if tripped is not None:
                raise tripped from error
            raise
        except BaseException:  # closed early (GeneratorExit), interrupted
            b._release(permit)
            raise
        b._report(permit, _SUCCESS, "success")
        return result

    return guarded


def guard_stream_async(breaker: Any, call: AsyncStreamCall) -> AsyncStreamCall:
    """``guard_stream_sync`` for async generators (an ``AsyncStateStore`` is awaited)."""
    b = breaker

    async def guarded(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        permit = await b._aadmit()
        try:
            stream = call(*args, **kwargs)
            try:
                async for item in stream:
                    yield item
            finally:
                await stream.aclose()
        except Exception as error:
            tripped = await b._afail(permit, error)
            if tripped is not None:
                raise tripped from error
            raise
        except BaseException:  # closed early (GeneratorExit), cancelled, interrupted
            await b._areport(permit, _RELEASE, "ignored")
            raise
        await b._areport(permit, _SUCCESS, "success")

    return guarded
