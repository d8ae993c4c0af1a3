"""What an outbox holds and hands out: items, receipts, dead letters, and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..exceptions import OutboxError

__all__ = ["DeadItem", "Deferred", "Item", "OutboxError"]


@dataclass(frozen=True, slots=True)
class Deferred:
    """The receipt for work stored in an outbox instead of done now.

    ``key`` identifies the item (enqueuing the same key again stores nothing new);
    ``position`` is its place in delivery order among the items stored: a later item
    gets a larger one, and within a group the smaller is delivered first (it is not a
    count of the items ahead, and a delivered item's position may be given again).
    ``stored`` is false when an item with this key was already there.
    """

    key: str
    position: int
    kind: str
    stored: bool = True


@dataclass(frozen=True, slots=True)
class Item:
    """One stored piece of work, as a handler receives it.

    ``attempts`` counts the deliveries tried before this one; ``key`` is the same on
    every delivery of the item, so a handler can recognise one it already performed.
    """

    key: str
    kind: str
    payload: Any
    group: str | None
    position: int
    attempts: int
    created: float
    """Wall-clock time (``time.time()`` seconds) when it was stored."""


@dataclass(frozen=True, slots=True)
class DeadItem:
    """An item that kept failing and was set aside after its last attempt."""

    key: str
    kind: str
    payload: Any
    group: str | None
    position: int
    attempts: int
    created: float
    error: str
    """The last error, as ``repr`` of the exception."""
