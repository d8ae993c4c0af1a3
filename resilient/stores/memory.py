"""``MemoryStore``: breaker states in this process, one lock held only for a transition."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._circuit.rules import INITIAL, BreakerState, Decision, Event, is_idle, transition

if TYPE_CHECKING:
    from .._circuit.config import BreakerConfig

__all__ = ["MemoryStore"]


class _Cell:
    """One breaker's state and the lock its transitions take.

    ``state`` is replaced whole under the lock, so a reader without the lock (every
    call's hot path) sees either the old or the new state, never a mix.
    """

    __slots__ = ("__weakref__", "lock", "state")

    def __init__(self) -> None:
        self.state: BreakerState = INITIAL
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<cell {self.state.mode.name} gen={self.state.gen}>"


class MemoryStore:
    """The default store: thread-safe, shared by every breaker of a name in this process.

    Each name has its own lock, held only for the pure transition (a few microseconds),
    never around the user's call, so a slow call in one thread never holds up others.
    Async breakers call ``apply`` directly from the event loop: it does no I/O, and the
    longest it can wait is another thread's transition, far less than the cost of handing
    the work to a worker thread.
    """

    def __init__(self) -> None:
        self._cells: dict[str, _Cell] = {}
        # Cells let go of while idle (``release``): kept only as long as a breaker holds
        # them, and found again by name meanwhile, so two breakers of one name never
        # split into two states.
        self._loose: weakref.WeakValueDictionary[str, _Cell] = weakref.WeakValueDictionary()
        self._released = 0  # since the containers were last compacted
        self._flags: dict[str, str] = {}
        self._lock = threading.Lock()  # for creating and releasing cells, and for flags

    def cell(self, name: str) -> _Cell:
        """The cell holding the state of ``name`` (created on first use)."""
        cell = self._cells.get(name)
        if cell is None:
            with self._lock:
                cell = self._cells.get(name)
                if cell is None:
                    cell = self._loose.pop(name, None)
                    if cell is None:
                        cell = _Cell()
                    self._cells[name] = cell
        return cell

    def release(self, names: Iterable[str]) -> int:
        """Let go of the cells of ``names`` whose state is idle; return how many.

        Idle means closed with no failure, slow call or probe counted: nothing a fresh
        cell would not say. A released cell lives on while a breaker still holds it (and
        ``cell(name)`` finds it again); otherwise its memory is freed.
        """
        released = 0
        with self._lock:
            cells = self._cells
            for name in names:
                cell = cells.get(name)
                if cell is None:
                    continue
                with cell.lock:
                    if not is_idle(cell.state):
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

    def apply(
        self, name: str, event: Event, now: float, config: BreakerConfig
    ) -> tuple[BreakerState, Decision]:
        """Apply ``event`` to the state of ``name`` atomically; return the result."""
        cell = self._cells.get(name) or self.cell(name)
        with cell.lock:
            state, decision = transition(cell.state, event, now, config)
            cell.state = state
        return state, decision

    def get(self, name: str) -> BreakerState:
        """The current state of ``name`` (the initial state if it was never used)."""
        cell = self._cells.get(name) or self._loose.get(name)
        return INITIAL if cell is None else cell.state

    def names(self) -> list[str]:
        """The names this store holds a state for, sorted (released cells are not listed)."""
        return sorted(self._cells)

    def get_flag(self, key: str) -> str | None:
        """A named flag shared by everything using this store (e.g. a feature switched off)."""
        return self._flags.get(key)

    def set_flag(self, key: str, value: str | None) -> None:
        """Set the flag ``key`` to ``value``, or remove it with ``None``."""
        with self._lock:
            if value is None:
                self._flags.pop(key, None)
            else:
                self._flags[key] = value

    def clear(self) -> None:
        """Put every breaker back to its initial state (cells stay, so holders see it)
        and drop every flag."""
        with self._lock:
            self._flags.clear()
        for cell in [*self._cells.values(), *self._loose.values()]:
            with cell.lock:
                # A new generation, so calls admitted before the clear report as stale.
                cell.state = BreakerState(gen=cell.state.gen + 1)

    def __repr__(self) -> str:
        return f"<MemoryStore breakers={len(self._cells)} released={len(self._loose)}>"
