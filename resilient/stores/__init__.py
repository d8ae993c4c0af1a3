"""Where circuit breakers keep their state: ``MemoryStore`` now, Redis in a later release."""

from __future__ import annotations

from .memory import MemoryStore

__all__ = ["MemoryStore"]
