"""Where circuit breakers keep their state: ``MemoryStore`` in this process, or
``RedisStore``/``AsyncRedisStore`` shared by a fleet (the ``redis`` extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .memory import MemoryStore

if TYPE_CHECKING:
    from .redis import AsyncRedisStore, RedisStore

__all__ = ["AsyncRedisStore", "MemoryStore", "RedisStore"]


def __getattr__(name: str) -> Any:
    # The Redis stores import redis-py: only when asked for, so `import resilient` never does.
    if name in ("RedisStore", "AsyncRedisStore"):
        from . import redis

        return getattr(redis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
