"""The observation step of every wrapped function: time the call (``request_latency_ms``).

One step per function, however many layers it has, entered only while
``_config.state.active`` (``switch`` hands the calls over): metrics off, it costs callers
nothing. ``resilient.testing.disabled()`` makes it call the undecorated function directly.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from .._runtime import config as _config
from .._runtime.types import Tags
from .emit import Emitter

__all__ = ["active_chaos", "observe_async", "observe_sync"]

active_chaos: ContextVar[tuple[Any, ...]] = ContextVar("resilient_chaos", default=())
"""The chaos injectors entered as context managers in this context (``resilient.chaos``)."""


def observe_sync(
    call: Any, target: Any, tags: Tags, override: Emitter | None, chaotic: Callable[[], Any]
) -> Any:
    state = _config.state
    chaos_chain: Any = None

    def observed(*args: Any, **kwargs: Any) -> Any:
        nonlocal chaos_chain
        if state.bypass:
            return target(*args, **kwargs)
        run = call
        if state.chaos and active_chaos.get():
            run = chaos_chain = chaos_chain or chaotic()
        emit = override or state.emit
        if emit is None:
            return run(*args, **kwargs)
        now = state.now
        start = now()
        try:
            return run(*args, **kwargs)
        finally:
            end = now()
            emit.latency((end - start) * 1000.0, end, tags)

    return observed


def observe_async(
    call: Any, target: Any, tags: Tags, override: Emitter | None, chaotic: Callable[[], Any]
) -> Any:
    state = _config.state
    chaos_chain: Any = None

    async def observed(*args: Any, **kwargs: Any) -> Any:
        nonlocal chaos_chain
        if state.bypass:
            return await target(*args, **kwargs)
        run = call
        if state.chaos and active_chaos.get():
            run = chaos_chain = chaos_chain or chaotic()
        emit = override or state.emit
        if emit is None:
            return await run(*args, **kwargs)
        now = state.now
        start = now()
        try:
            return await run(*args, **kwargs)
        finally:
            end = now()
            emit.latency((end - start) * 1000.0, end, tags)

    return observed
