"""The observation step of a generator or async generator function: time the whole stream.

The stream's twin of ``observe``: entered only while ``_config.state.active``. The
duration (``request_latency_ms``) runs from the first item asked for to the end of the
stream: exhausted, failed or closed early by the consumer.
``resilient.testing.disabled()`` iterates the undecorated generator directly.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from .._runtime import config as _config
from .._runtime.types import Tags
from .emit import Emitter
from .observe import active_chaos

__all__ = ["observe_stream_async", "observe_stream_sync"]


def observe_stream_sync(
    call: Any, target: Any, tags: Tags, override: Emitter | None, chaotic: Callable[[], Any]
) -> Any:
    state = _config.state
    chaos_chain: Any = None

    def observed(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        nonlocal chaos_chain
        if state.bypass:
            return (yield from target(*args, **kwargs))
        run = call
        if state.chaos and active_chaos.get():
            run = chaos_chain = chaos_chain or chaotic()
        emit = override or state.emit
        if emit is None:
            return (yield from run(*args, **kwargs))
        now = state.now
        start = now()
        try:
            return (yield from run(*args, **kwargs))
        finally:
            end = now()
            emit.latency((end - start) * 1000.0, end, tags)

    return observed


def observe_stream_async(
    call: Any, target: Any, tags: Tags, override: Emitter | None, chaotic: Callable[[], Any]
) -> Any:
    state = _config.state
    chaos_chain: Any = None

    async def observed(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        nonlocal chaos_chain
        if state.bypass:
            run = target
        else:
            run = call
            if state.chaos and active_chaos.get():
                run = chaos_chain = chaos_chain or chaotic()
        emit = None if state.bypass else override or state.emit
        start = state.now() if emit is not None else 0.0
        stream = run(*args, **kwargs)
        try:
            async for item in stream:
                yield item
        finally:
            try:
                await stream.aclose()
            finally:
                if emit is not None:
                    end = state.now()
                    emit.latency((end - start) * 1000.0, end, tags)

    return observed
