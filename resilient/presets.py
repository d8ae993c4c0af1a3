"""Named presets: one vocabulary, one lookup.

Every kind of preset uses the same words for the same kind of work: ``quick`` (health
checks, cheap reads), ``standard`` (most calls), ``heavy`` (downloads, bulk work) and
``ai_operation`` (LLM calls), plus words a kind has on its own (``patient`` and ``never``
retries; ``critical``, ``database``, ``external_api``, ``file_processing`` breakers).
``lookup(kind, name)`` finds a preset of any kind (``Timeouts``, ``RetryConfig``,
``BreakerConfig``, ``resilient.http.RequestConfig``) by name; so does each kind's
``get(name)``. The names used before (``ai_service``, ``ai_llm``, ``health_check``,
``api_call``, ``content_download``) still work where they were used, with a warning naming the
new one. This module also holds the tables the presets are built from.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from types import FrameType
from typing import (
    Any,
    ClassVar,
    Final,
    Generic,
    Literal,
    NamedTuple,
    TypeAlias,
    TypeVar,
    get_args,
    overload,
)

from .exceptions import ConfigError

__all__ = [
    "BACKEND_OPERATIONS",
    "CLIENT_TIMEOUTS",
    "RENAMED",
    "BackendOperation",
    "BreakerPreset",
    "ClientTimeout",
    "RequestPreset",
    "RetryPreset",
    "TimeoutPreset",
    "Timeouts",
    "closest",
    "lookup",
    "unknown_name",
]

V = TypeVar("V")
T = TypeVar("T")

# The preset names as types, so a type checker flags a misspelled name where one is taken
# (``@timeout("quik")``); the names used before are left out on purpose. Each kind's
# ``names`` tuple is made from its alias, and a name is still checked when it is used.
TimeoutPreset: TypeAlias = Literal["quick", "standard", "heavy", "ai_operation"]
"""A ``Timeouts`` preset name (``timeout("ai_operation")``)."""
RetryPreset: TypeAlias = Literal["standard", "quick", "patient", "ai_operation", "never"]
"""A ``RetryConfig`` preset name (``retry("patient")``)."""
BreakerPreset: TypeAlias = Literal[
    "standard", "ai_operation", "critical", "database", "external_api", "file_processing"
]
"""A ``BreakerConfig`` preset name (``breaker("db", "database")``)."""
RequestPreset: TypeAlias = Literal["quick", "standard", "heavy", "ai_operation"]
"""A ``resilient.http.RequestConfig`` preset name (``Client(config="heavy")``)."""

RENAMED: Final[Mapping[str, Mapping[str, str]]] = {
    "BreakerConfig": {"ai_service": "ai_operation", "ai_llm": "ai_operation"},
    "CLIENT_TIMEOUTS": {
        "health_check": "quick",
        "api_call": "standard",
        "content_download": "heavy",
    },
    "BACKEND_OPERATIONS": {"ai_llm": "ai_operation"},
}
"""Preset names used before, by where they were used, and the name each one has now
(accepted there with a warning)."""


# As the frames name it (the path the package was imported from), so no abspath here.
_PACKAGE = os.path.dirname(__file__) + os.sep


def _user_stacklevel() -> int:
    """The ``stacklevel`` that makes a ``warnings.warn`` in the caller of this function point
    at the first frame outside the ``resilient`` package, however deep in it the call was."""
    level = 1
    frame: FrameType | None = sys._getframe(1).f_back
    while frame is not None:
        filename = frame.f_code.co_filename
        # ``warnings.warn`` does not count the import machinery's frames: neither does this.
        if not ("importlib" in filename and "_bootstrap" in filename):
            level += 1
            if not filename.startswith(_PACKAGE):
                break
        frame = frame.f_back
    return level


def _warn_renamed(old: str, new: str, spelled: str) -> None:
    import warnings  # only for a deprecated name: ``import resilient`` stays light

    # Attributed to the user's line, however deep in resilient the name was looked up:
    # Python shows a DeprecationWarning by default only there.
    warnings.warn(
        f"the preset name {old!r} is deprecated: use {new!r} ({spelled})",
        DeprecationWarning,
        stacklevel=_user_stacklevel(),
    )


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


def lookup(kind: Any, name: object, parameter: str = "config", accepts: str = "") -> Any:
    """The preset of ``kind`` called ``name`` (``kind.<name>``).

    ``kind`` is a class with a ``names`` tuple (``Timeouts``, ``RetryConfig``,
    ``BreakerConfig``, ``RequestConfig``). A name ``kind`` used before (see ``RENAMED``)
    gives the preset it is now called, with a ``DeprecationWarning``; any other name raises
    ``ConfigError`` naming ``parameter``, saying what is allowed (``accepts``, default
    ``a <kind>``, or one of the names) and the closest name.
    """
    names: tuple[str, ...] = kind.names
    if name not in names:
        new = RENAMED.get(kind.__name__, {}).get(name) if isinstance(name, str) else None
        if new is None:
            raise unknown_name(parameter, name, names, accepts or f"a {kind.__name__}")
        _warn_renamed(str(name), new, f"{kind.__name__}.{new}")
        name = new
    return getattr(kind, str(name))


class RenamedPreset(Generic[V]):
    """A class attribute that still answers to a preset's former name, with a warning:
    ``ai_service = RenamedPreset[BreakerConfig]()`` in a class body."""

    __slots__ = ("old",)

    def __init__(self) -> None:
        self.old: str = ""

    def __set_name__(self, owner: type, name: str) -> None:
        if name not in RENAMED.get(owner.__name__, {}):
            raise TypeError(f"{name!r} is not a former {owner.__name__} preset (see RENAMED)")
        self.old = name

    def __get__(self, instance: object, owner: type) -> V:
        new = RENAMED[owner.__name__][self.old]
        _warn_renamed(self.old, new, f"{owner.__name__}.{new}")
        found: V = getattr(owner, new)
        return found


class Timeouts:
    """Per-call time budgets, in seconds."""

    quick: Final = 5.0
    """Health checks, simple GETs."""
    standard: Final = 10.0
    """Most API calls."""
    heavy: Final = 30.0
    """Content downloads, bulk uploads."""
    ai_operation: Final = 45.0
    """LLM calls."""

    names: ClassVar[tuple[str, ...]] = get_args(TimeoutPreset)

    @classmethod
    def get(cls, name: str, *, parameter: str = "timeout") -> float:
        """The budget called ``name``; ``ConfigError`` naming ``parameter`` for an unknown name,
        with the closest preset name when there is one."""
        return float(lookup(cls, name, parameter, "a number of seconds"))


class ClientTimeout(NamedTuple):
    """Recommended client timeouts for one kind of operation, in seconds."""

    operation: str
    connect: float
    receive: float
    total: float


class _Table(Mapping[str, V], Generic[V]):
    """A read-only table by preset name that still answers to former names, with a warning."""

    __slots__ = ("_name", "_rows")

    def __init__(self, name: str, rows: dict[str, V]) -> None:
        self._name = name
        self._rows = rows

    def __getitem__(self, key: str) -> V:
        try:
            return self._rows[key]
        except KeyError:
            new = RENAMED[self._name].get(key)
            if new is None:
                raise
        _warn_renamed(key, new, f"{self._name}[{new!r}]")
        return self._rows[new]

    @overload
    def get(self, key: str, /) -> V | None: ...
    @overload
    def get(self, key: str, /, default: V | T) -> V | T: ...

    def get(self, key: str, /, default: object = None) -> object:
        # Written out rather than inherited, so a former name's warning points at the
        # caller's line rather than into ``collections.abc``.
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return key in self._rows  # the current names only, as iteration lists them

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return repr(self._rows)


CLIENT_TIMEOUTS: Final = _Table(
    "CLIENT_TIMEOUTS",
    {
        "quick": ClientTimeout("Health check", connect=3.0, receive=5.0, total=5.0),
        "standard": ClientTimeout("API call", connect=5.0, receive=10.0, total=10.0),
        "heavy": ClientTimeout("Content download", connect=5.0, receive=30.0, total=30.0),
        "ai_operation": ClientTimeout("AI operation", connect=5.0, receive=45.0, total=45.0),
    },
)
"""Client timeouts: connect / receive / total per kind of operation."""


class BackendOperation(NamedTuple):
    """Recommended backend budget and how many failures open its circuit."""

    operation: str
    timeout: float
    failure_threshold: int


BACKEND_OPERATIONS: Final = _Table(
    "BACKEND_OPERATIONS",
    {
        "database": BackendOperation("Database query", timeout=5.0, failure_threshold=3),
        "external_api": BackendOperation("External API", timeout=15.0, failure_threshold=5),
        "ai_operation": BackendOperation("AI/LLM call", timeout=45.0, failure_threshold=3),
        "file_processing": BackendOperation("File processing", timeout=60.0, failure_threshold=5),
    },
)
"""Backend budgets: timeout and circuit threshold per kind of operation."""
