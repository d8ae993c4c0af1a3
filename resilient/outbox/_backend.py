"""What the outbox asks of where its items live (SQLite or Redis)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from ._items import DeadItem, Item

__all__ = ["Backend"]


class Backend(Protocol):
    """Durable items, leased to one drainer at a time; times are the outbox's clock's."""

    def put(
        self,
        key: str,
        kind: str,
        payload: str,
        group: str | None,
        now: float,
        fresh: bool = False,
    ) -> tuple[int, bool]:
        """Store an item unless its key is there: its position, and whether it is new
        (``fresh``: a key just made at random, which cannot be there)."""

    def lease(
        self, kinds: Iterable[str], limit: int, owner: str, now: float, seconds: float
    ) -> list[Item]:
        """Lease up to ``limit`` ready items of ``kinds`` for ``seconds``, oldest first."""

    def done(self, item: Item) -> None:
        """The item was delivered: forget it."""

    def failed(self, item: Item, error: str, retry_at: float, count: bool) -> None:
        """Give the item back, ready again at ``retry_at`` (``count``: an attempt used)."""

    def bury(self, item: Item, error: str) -> None:
        """Set the item aside as a dead letter."""

    def next_ready(self, kinds: Iterable[str]) -> float | None:
        """When the next waiting item becomes ready, if one waits."""

    def counts(self) -> tuple[int, int]:
        """Pending items and dead letters."""

    def dead(self, limit: int) -> list[DeadItem]:
        """The oldest ``limit`` dead letters."""

    def revive(self, keys: Iterable[str] | None) -> int:
        """Dead letters (all, or ``keys``) made pending with fresh attempts; how many."""

    def purge(self, dead: bool, kind: str | None, before: float | None) -> int:
        """Delete dead letters or pending items of ``kind`` stored before ``before``."""

    def close(self) -> None:
        """Let go of connections; the items stay."""
