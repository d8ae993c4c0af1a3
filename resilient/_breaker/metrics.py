"""What breakers report: trips, rejections, the ``open_circuits`` gauge and a log line.

Called on transitions and rejections only, never on a closed breaker's calls; with
metrics off, the telemetry window still counts trips and rejections for the health
report, and keeps the gauge (so a sink installed later starts from the right value).
Each transition is one line on the ``resilient`` logger (WARNING when calls start being
refused, INFO otherwise), folded when a breaker flaps (``_runtime.logs.transitions``).
"""

from __future__ import annotations

import logging

from .._circuit.rules import BreakerMode
from .._runtime.logs import transitions
from ..metrics._names import CALLS_REJECTED, CIRCUIT_BREAKER_OPENS, OPEN_CIRCUITS
from ..telemetry import count, set_gauge, window

__all__ = ["changed", "created", "forget", "rejected"]

_OPEN_MODES = (BreakerMode.OPEN, BreakerMode.FORCED_OPEN)


def created(name: str) -> None:
    """A gauge reports its value when created: this breaker is not open."""
    set_gauge(OPEN_CIRCUITS, 0, breaker=name)


def forget(names: list[str]) -> None:
    """These breakers were evicted while idle: the report no longer lists their gauge."""
    window.drop_gauges(OPEN_CIRCUITS, [(("breaker", name),) for name in names])


_SAYS = {
    BreakerMode.OPEN: "opened: calls are refused until it probes",
    BreakerMode.FORCED_OPEN: "forced open: calls are refused",
    BreakerMode.HALF_OPEN: "half-open: probe calls go through",
    BreakerMode.CLOSED: "closed: calls go through again",
    BreakerMode.DISABLED: "disabled: calls go through unguarded",
}


def changed(name: str, prior: BreakerMode, mode: BreakerMode) -> None:
    if mode is BreakerMode.OPEN:
        count(CIRCUIT_BREAKER_OPENS, (("breaker", name),))
    if (prior in _OPEN_MODES) != (mode in _OPEN_MODES):
        set_gauge(OPEN_CIRCUITS, 1 if mode in _OPEN_MODES else 0, breaker=name)
    source = f"resilient: circuit breaker {name!r}"
    level = logging.WARNING if mode in _OPEN_MODES else logging.INFO
    transitions.note(source, f"{source} {_SAYS[mode]} (was {prior.value})", level)


def rejected(name: str) -> None:
    count(CALLS_REJECTED, (("breaker", name),))
