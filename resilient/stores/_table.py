"""The cells of a store, by breaker name: listed while in use, let go of while idle."""

from __future__ import annotations

import abc
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

__all__ = ["CellTable"]


class _Lockable(Protocol):
    @property
    def lock(self) -> threading.Lock: ...


C = TypeVar("C", bound=_Lockable)


class CellTable(abc.ABC, Generic[C]):
    """The cells a store holds, one per breaker name, with the lock that lists them.

    A cell is listed (``_cells``) from its first use until ``release`` lets go of it
    while idle. A released cell is kept (``_loose``) only as long as a breaker holds
    it, and found again by name meanwhile, so two breakers of one name never split
    into two states. Lookups on the hot path read ``_cells`` without the lock.
    """

    def __init__(self) -> None:
        self._cells: dict[str, C] = {}
        self._loose: weakref.WeakValueDictionary[str, C] = weakref.WeakValueDictionary()
        self._released = 0  # since the containers were last compacted
        self._lock = threading.Lock()

    @abc.abstractmethod
    def _idle(self, cell: C) -> bool:
        """Whether ``cell`` holds nothing a fresh one would not (its lock is held)."""

    def _list(self, name: str, make: Callable[[], C]) -> tuple[C, bool]:
        """The listed cell of ``name`` (a released one found again, or a new one from
        ``make()``), and whether this call listed it."""
        with self._lock:
            cell = self._cells.get(name)
            if cell is not None:
                return cell, False
            cell = self._loose.pop(name, None)
            if cell is None:
                cell = make()
            self._cells[name] = cell
        return cell, True

    def _held(self, name: str) -> C | None:
        """The cell of ``name``, listed or released but still held, if any."""
        return self._cells.get(name) or self._loose.get(name)

    def names(self) -> list[str]:
        """The names of the listed cells, sorted (released ones are not listed)."""
        return sorted(self._cells)

    def release(self, names: Iterable[str]) -> int:
        """Let go of the cells of ``names`` that are idle; return how many.

        A released cell lives on while a breaker still holds it (and ``cell(name)``
        finds it again); otherwise its memory is freed. The registry calls this for
        the breakers it evicts while idle.
        """
        released = 0
        with self._lock:
            cells = self._cells
            for name in names:
                cell = cells.get(name)
                if cell is None:
                    continue
                with cell.lock:
                    if not self._idle(cell):
                        continue
                    del cells[name]
                    self._loose[name] = cell
                released += 1
                cell = None  # the last reference held here: an unheld cell goes now
            self._released += released
            if self._released and self._released >= len(self._cells):
                # Dicts keep their size after deletions: a copy gives the memory back
                # (once dead slots outnumber live ones, so the cost is amortised).
                self._cells = dict(cells)
                self._loose = weakref.WeakValueDictionary(self._loose)
                self._released = 0
        return released
