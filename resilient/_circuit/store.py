"""What a breaker needs of a state store: a lock-free cell to read, and atomic transitions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .config import BreakerConfig
    from .rules import BreakerState, Decision, Event

__all__ = ["AsyncStateStore", "StateCell", "StateStore"]


@runtime_checkable
class StateCell(Protocol):
    """Where a breaker reads its state without a lock: one attribute, replaced whole.

    Reading ``state`` must never block or do I/O: it is on every call's path.
    """

    @property
    def state(self) -> BreakerState:
        """The latest state known for the breaker's name."""
        ...


@runtime_checkable
class StateStore(Protocol):
    """Keeps breaker states by name and applies transitions to them atomically.

    ``apply`` runs ``resilient._circuit.rules.transition`` (or the same rules, elsewhere) as
    one atomic step and returns the new state and the decision. It must never wait on
    I/O for long: async breakers call it directly from the event loop. A store that
    talks to a server should implement ``AsyncStateStore`` too.
    """

    def cell(self, name: str) -> StateCell:
        """The cell holding the state of ``name`` (created on first use)."""
        ...

    def apply(
        self, name: str, event: Event, now: float, config: BreakerConfig
    ) -> tuple[BreakerState, Decision]:
        """Apply ``event`` to the state of ``name`` atomically; return the result."""
        ...


@runtime_checkable
class AsyncStateStore(Protocol):
    """The async twin of ``StateStore``, for stores whose transitions involve I/O."""

    def cell(self, name: str) -> StateCell:
        """The cell holding the last state seen for ``name``."""
        ...

    async def aapply(
        self, name: str, event: Event, now: float, config: BreakerConfig
    ) -> tuple[BreakerState, Decision]:
        """Apply ``event`` to the state of ``name`` atomically; return the result."""
        ...
