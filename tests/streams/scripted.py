"""Scripted producers for the stream tests, in both forms (``kind`` in conftest).

Every test takes ``kind``: it runs once with a generator function (``sync``) and once
with an async generator function (``async``), built from the same script, and reads the
stream through ``kind``'s helpers, so each behaviour is specified once for both.

A script is a list of runs; each run lists what the producer does in order: an item
(yielded), an exception (raised there), ``Wait(seconds)`` (sleeps on the fake clock:
``clock.sleep`` for a generator, the virtual event loop's ``asyncio.sleep`` for an async
generator) or ``LOOK`` (notes ``resilient.remaining()``). The last run repeats.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import resilient


@dataclass(frozen=True)
class Wait:
    """The producer sleeps this long before its next step."""

    seconds: float


LOOK = object()
"""The producer notes ``resilient.remaining()`` (in ``Script.seen``)."""


@dataclass
class Script:
    """What each run of a producer does, and what happened to the runs."""

    runs: list[list[Any]]
    started: int = 0
    """Runs whose body began (the first item was asked for)."""
    closed: int = 0
    """Runs stopped by ``close()``/``aclose()`` (GeneratorExit) before their end."""
    cancelled: int = 0
    """Runs stopped by a cancellation."""
    ended: int = 0
    """Runs whose body is no longer running, however it stopped."""
    seen: list[float | None] = field(default_factory=list)

    def next_run(self) -> list[Any]:
        run = self.runs[min(self.started, len(self.runs) - 1)]
        self.started += 1
        return run


@dataclass(frozen=True)
class Kind:
    """One form of producer (``sync`` or ``async``) and how a consumer reads it."""

    name: str

    @property
    def is_async(self) -> bool:
        return self.name == "async"

    def producer(self, script: Script) -> Callable[..., Any]:
        """A generator (or async generator) function following ``script``."""
        return _async_producer(script) if self.is_async else _sync_producer(script)

    async def drain(self, stream: Any) -> list[Any]:
        """Every item of ``stream``, to its end."""
        if self.is_async:
            return [item async for item in stream]
        return list(stream)

    async def take(self, stream: Any, count: int) -> list[Any]:
        """The first ``count`` items, then the consumer closes the stream (``break``)."""
        items: list[Any] = []
        if self.is_async:
            async for item in stream:
                items.append(item)
                if len(items) == count:
                    break
            await stream.aclose()
        else:
            for item in stream:
                items.append(item)
                if len(items) == count:
                    break
            stream.close()
        return items

    async def next(self, stream: Any) -> Any:
        """One item."""
        if self.is_async:
            return await stream.__anext__()
        return next(stream)

    async def close(self, stream: Any) -> None:
        if self.is_async:
            await stream.aclose()
        else:
            stream.close()


def _sync_producer(script: Script) -> Callable[..., Iterator[Any]]:
    def produce(*args: Any, **kwargs: Any) -> Iterator[Any]:
        run = script.next_run()
        try:
            for step in run:
                if isinstance(step, BaseException):
                    raise step
                if isinstance(step, Wait):
                    resilient.configuration().clock.sleep(step.seconds)
                elif step is LOOK:
                    script.seen.append(resilient.remaining())
                else:
                    yield step
        except GeneratorExit:
            script.closed += 1
            raise
        finally:
            script.ended += 1

    return produce


def _async_producer(script: Script) -> Callable[..., AsyncIterator[Any]]:
    async def produce(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        run = script.next_run()
        try:
            for step in run:
                if isinstance(step, BaseException):
                    raise step
                if isinstance(step, Wait):
                    await asyncio.sleep(step.seconds)
                elif step is LOOK:
                    script.seen.append(resilient.remaining())
                else:
                    yield step
        except GeneratorExit:
            script.closed += 1
            raise
        except asyncio.CancelledError:
            script.cancelled += 1
            raise
        finally:
            script.ended += 1

    return produce
