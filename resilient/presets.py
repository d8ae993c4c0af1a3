"""The seed design's tables, as data: timeouts, client timeouts, backend operations.

``RetryConfig`` and (later) ``BreakerConfig`` presets live beside their configuration
classes; this module holds the tables that several decorators read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Final, NamedTuple

from .exceptions import ConfigError

__all__ = [
    "BACKEND_OPERATIONS",
    "CLIENT_TIMEOUTS",
    "BackendOperation",
    "ClientTimeout",
    "Timeouts",
    "closest",
    "unknown_name",
]


def closest(word: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the choice nearest to a mistyped ``word``, else ``""``."""
    if not isinstance(word, str):
        return ""
    import difflib  # only on this error path: ``import resilient`` stays light

    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {found[0]!r}?)" if found else ""


def unknown_name(parameter: str, name: object, names: Iterable[str], kind: str) -> ConfigError:
    """The error for a name that is not one of ``names``: what is allowed, and the closest."""
    known = tuple(names)
    return ConfigError(parameter, name, f"{kind} or one of {known}{closest(name, known)}")


class Timeouts:
    """Per-call time budgets, in seconds (the seed's request configs)."""

    quick: Final = 5.0
    """Health checks, simple GETs."""
    standard: Final = 10.0
    """Most API calls."""
    heavy: Final = 30.0
    """Content downloads, bulk uploads."""
    ai_operation: Final = 45.0
    """LLM calls."""

    names: ClassVar[tuple[str, ...]] = ("quick", "standard", "heavy", "ai_operation")

    @classmethod
    def get(cls, name: str, *, parameter: str = "timeout") -> float:
        """The budget called ``name``; ``ConfigError`` naming ``parameter`` for an unknown name,
        with the closest preset name when there is one."""
        if name not in cls.names:
            raise unknown_name(parameter, name, cls.names, "a number of seconds")
        return float(getattr(cls, name))


class ClientTimeout(NamedTuple):
    """Recommended client timeouts for one kind of operation, in seconds."""

    operation: str
    connect: float
    receive: float
    total: float


CLIENT_TIMEOUTS: Final = {
    "health_check": ClientTimeout("Health check", connect=3.0, receive=5.0, total=5.0),
    "api_call": ClientTimeout("API call", connect=5.0, receive=10.0, total=10.0),
    "content_download": ClientTimeout("Content download", connect=5.0, receive=30.0, total=30.0),
    "ai_operation": ClientTimeout("AI operation", connect=5.0, receive=45.0, total=45.0),
}
"""The seed's client table: connect / receive / total per operation."""


class BackendOperation(NamedTuple):
    """Recommended backend budget and how many failures open its circuit."""

    operation: str
    timeout: float
    failure_threshold: int


BACKEND_OPERATIONS: Final = {
    "database": BackendOperation("Database query", timeout=5.0, failure_threshold=3),
    "external_api": BackendOperation("External API", timeout=15.0, failure_threshold=5),
    "ai_llm": BackendOperation("AI/LLM call", timeout=45.0, failure_threshold=3),
    "file_processing": BackendOperation("File processing", timeout=60.0, failure_threshold=5),
}
"""The seed's backend table: timeout and circuit threshold per operation."""
