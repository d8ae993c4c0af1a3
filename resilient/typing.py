"""Public protocols and aliases, for annotating code that plugs into resilient."""

from __future__ import annotations

from ._circuit.store import AsyncStateStore, StateCell, StateStore
from ._runtime.types import Clock, ExceptionFilter, OnRetry, Seconds

__all__ = [
    "AsyncStateStore",
    "Clock",
    "ExceptionFilter",
    "OnRetry",
    "Seconds",
    "StateCell",
    "StateStore",
]
