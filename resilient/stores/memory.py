"""``MemoryStore``: breaker states in this process, one lock held only for a transition."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .._circuit.rules import INITIAL, BreakerState, Decision, Event, is_idle, transition
from ._table import CellTable

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
        self.lock: threading.Lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<cell {self.state.mode.name} gen={self.state.gen}>"


class MemoryStore(CellTable[_Cell]):
    """The default store: thread-safe, shared by every breaker of a name in this process.

    Each name has its own lock, held only for the pure transition (a few microseconds),
    never around the user's call, so a slow call in one thread never holds up others.
    Async breakers call ``apply`` directly from the event loop: it does no I/O, and the
    longest it can wait is another thread's transition, far less than the cost of handing
    the work to a worker thread.
    """

    def __init__(self) -> None:
        super().__init__()  # the cells, and the lock also taken for flags
        self._flags: dict[str, str] = {}

    def cell(self, name: str) -> _Cell:
        """The cell holding the state of ``name`` (created on first use)."""
        return self._cells.get(name) or self._list(name, _Cell)[0]

    def _idle(self, cell: _Cell) -> bool:
        """Closed with no failure, slow call or probe counted: nothing a fresh cell would
        not say."""
        return is_idle(cell.state)

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
        cell = self._held(name)
        return INITIAL if cell is None else cell.state

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
