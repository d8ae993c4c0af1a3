"""What the stream forms of the layers share: handing on a generator after its first item,
and answering from a substitute stream when a stream fails before its first item.

A layer's stream form is a generator function around the producer's generator. Once
the first item is out, the rest is handed on with ``yield from``, so ``send``, ``throw``
and ``close`` reach the producer as if the consumer iterated it directly. The layers
write the first hand-over inline (``yield first``, then ``yield from stream``): a
helper generator there would cost the happy path one more frame per item.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from types import AsyncGeneratorType, GeneratorType
from typing import Any

from .layer import AsyncStreamCall, StreamCall

__all__ = [
    "as_async_stream",
    "as_stream",
    "resume",
    "sent_in",
    "substitute_async",
    "substitute_sync",
    "thrown_in",
]

Catch = tuple[type[Exception], ...]


def resume(stream: Generator[Any, Any, Any], item: Any) -> Generator[Any, Any, Any]:
    """Yield ``item`` (already taken from ``stream``), then the rest of ``stream``, as
    ``yield from stream`` would have from the start."""
    while True:
        try:
            sent = yield item
        except BaseException as thrown:
            return (yield from thrown_in(stream, thrown))
        if sent is None:
            return (yield from stream)
        try:
            item = stream.send(sent)
        except StopIteration as stop:
            return stop.value


def sent_in(stream: Generator[Any, Any, Any], sent: Any) -> Generator[Any, Any, Any]:
    """What the consumer sent for the first item goes to the producer, then the rest."""
    try:
        item = stream.send(sent)
    except StopIteration as stop:
        return stop.value
    return (yield from resume(stream, item))


def thrown_in(stream: Generator[Any, Any, Any], thrown: BaseException) -> Generator[Any, Any, Any]:
    """What the consumer threw at the wrapper (``close()``'s ``GeneratorExit`` included)
    goes to the producer; the stream goes on if the producer goes on."""
    if isinstance(thrown, GeneratorExit):
        stream.close()
        raise thrown
    try:
        item = stream.throw(thrown)
    except StopIteration as stop:
        return stop.value
    return (yield from resume(stream, item))


def as_stream(answer: Any) -> Generator[Any, Any, Any]:
    """A substitute stream: a generator is iterated, any other value is its one item."""
    if isinstance(answer, GeneratorType):
        return (yield from answer)
    yield answer
    return None


async def as_async_stream(answer: Any) -> AsyncGenerator[Any, None]:
    """``as_stream`` for async streams: an async generator or a generator is iterated."""
    if isinstance(answer, AsyncGeneratorType):
        try:
            async for item in answer:
                yield item
        finally:
            await answer.aclose()
    elif isinstance(answer, GeneratorType):
        try:
            for item in answer:
                yield item
        finally:
            answer.close()
    else:
        yield answer


_NOTHING: Any = object()


Wanted = Callable[[Exception], bool]
Recover = Callable[[Any, Any, Exception], Any]


def substitute_sync(
    call: StreamCall, catch: Catch, wanted: Wanted, recover: Recover, answered: Callable[[], Any]
) -> StreamCall:
    """``call``'s stream, or, when it raises one of ``catch`` that ``wanted`` accepts
    before its first item, the stream of what ``recover(args, kwargs, error)`` answers.

    ``answered()`` runs when the producer's own first item (or its end) arrived. A
    failure after the first item reaches the consumer: items already delivered are
    never followed by another stream's.
    """

    def guarded(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        try:
            stream = call(*args, **kwargs)
            first = next(stream)
        except StopIteration as stop:
            answered()
            return stop.value
        except catch as error:
            if not wanted(error):
                raise
            answer = recover(args, kwargs, error)
        else:
            answered()
            try:
                sent = yield first
            except BaseException as thrown:
                return (yield from thrown_in(stream, thrown))
            if sent is None:
                return (yield from stream)
            return (yield from sent_in(stream, sent))
        return (yield from as_stream(answer))

    return guarded


def substitute_async(
    call: AsyncStreamCall,
    catch: Catch,
    wanted: Wanted,
    recover: Callable[[Any, Any, Exception], Any],
    answered: Callable[[], Any],
) -> AsyncStreamCall:
    """``substitute_sync`` for async generators; ``recover`` is awaited."""

    async def guarded(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        try:
            stream = call(*args, **kwargs)
            first = await stream.__anext__()
        except StopAsyncIteration:
            answered()
            return
        except catch as error:
            if not wanted(error):
                raise
            stream = as_async_stream(await recover(args, kwargs, error))
            first = _NOTHING
        else:
            answered()
        try:
            if first is not _NOTHING:
                yield first
            async for item in stream:
                yield item
        finally:
            await stream.aclose()

    return guarded
