"""``RequestConfig``: per-phase timeouts, a total budget and retries for one request, and
its named presets (``quick``, ``standard``, ``heavy``, ``ai_operation``); header checks."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .._retry.decorator import RetryConfig
from .._runtime import validate as _validate
from ..exceptions import ConfigError
from ..presets import CLIENT_TIMEOUTS, lookup

_C = TypeVar("_C")

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "RequestConfig",
    "check_header_value",
    "check_headers",
    "preset_of",
    "unsendable_header",
]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
"""Methods that may be sent again: repeating them does not repeat their effect."""

RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})
"""Statuses that say "try again later": timeout, rate limit, gateway trouble."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestConfig:
    """How long one request may take, and how it is retried.

    ``connect`` bounds opening a connection, ``receive`` each wait for data (and each
    send), ``total`` the whole request including retries and their waits; the total is
    cut further by the enclosing deadline (``resilient.remaining()``). ``retry`` is
    applied to idempotent requests (or ones carrying an ``Idempotency-Key``) that fail
    with a connection error, a timeout or one of ``retry_statuses``.
    """

    connect: float = 5.0
    receive: float = 10.0
    total: float = 10.0
    retry: RetryConfig = RetryConfig.standard
    retry_statuses: frozenset[int] = RETRY_STATUSES

    # httpx's per-request timeout mapping, built once: the common case reuses it as is.
    timeouts: dict[str, float] = field(init=False, repr=False, compare=False, hash=False)
    longest: float = field(init=False, repr=False, compare=False, hash=False)

    quick: ClassVar[RequestConfig]
    """Health checks, simple GETs: connect 3 s, receive 5 s, total 5 s, 2 attempts."""
    standard: ClassVar[RequestConfig]
    """Most API calls: 5 s / 10 s / 10 s, 3 attempts from 0.5 s."""
    heavy: ClassVar[RequestConfig]
    """Content downloads, bulk uploads: 5 s / 30 s / 30 s, 3 attempts."""
    ai_operation: ClassVar[RequestConfig]
    """LLM calls: 5 s / 45 s / 45 s, 3 attempts from 2 s."""
    names: ClassVar[tuple[str, ...]] = ("quick", "standard", "heavy", "ai_operation")

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("connect", "receive", "total"):
            seconds = _validate.required_duration(name, getattr(self, name), allow_zero=False)
            set_(self, name, seconds)
        retry: object = self.retry
        if isinstance(retry, str):
            set_(self, "retry", preset_of(RetryConfig, retry, "retry"))
        elif not isinstance(retry, RetryConfig):
            raise ConfigError("retry", retry, f"a RetryConfig or one of {RetryConfig.names}")
        statuses: object = self.retry_statuses
        if not isinstance(statuses, frozenset | set | tuple | list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in statuses
        ):
            raise ConfigError("retry_statuses", statuses, "a set of HTTP statuses (100-599)")
        set_(self, "retry_statuses", frozenset(statuses))
        connect, receive = self.connect, self.receive
        set_(
            self,
            "timeouts",
            {"connect": connect, "read": receive, "write": receive, "pool": connect},
        )
        set_(self, "longest", max(connect, receive))

    @classmethod
    def get(cls, name: str) -> RequestConfig:
        """The preset called ``name``; ``ConfigError`` (naming ``config``) for an unknown name."""
        return preset_of(cls, name, "config")

    def replace(self, **changes: Any) -> RequestConfig:
        """A copy with ``changes``; ``ConfigError`` names an unknown parameter."""
        known = {f.name for f in dataclasses.fields(self) if f.init}
        for key, value in changes.items():
            if key not in known:
                raise ConfigError(key, value, f"a RequestConfig parameter ({sorted(known)})")
        return dataclasses.replace(self, **changes)

    def clamped(self, budget: float) -> dict[str, float]:
        """The per-phase timeouts, none longer than ``budget`` seconds."""
        if budget >= self.longest:
            return self.timeouts
        return {phase: min(limit, budget) for phase, limit in self.timeouts.items()}


def _preset(key: str, retry: RetryConfig) -> RequestConfig:
    row = CLIENT_TIMEOUTS[key]
    return RequestConfig(connect=row.connect, receive=row.receive, total=row.total, retry=retry)


RequestConfig.quick = _preset("quick", RetryConfig.quick)
RequestConfig.standard = _preset("standard", RetryConfig.standard)
RequestConfig.heavy = _preset("heavy", RetryConfig.standard)
RequestConfig.ai_operation = _preset("ai_operation", RetryConfig.ai_operation)


def resolve(config: object, parameter: str = "config") -> RequestConfig:
    """``config`` as a ``RequestConfig`` (a preset name is looked up)."""
    if isinstance(config, RequestConfig):
        return config
    if isinstance(config, str):
        return preset_of(RequestConfig, config, parameter)
    raise ConfigError(parameter, config, f"a RequestConfig or one of {RequestConfig.names}")


def preset_of(kind: type[_C], name: str, parameter: str) -> _C:
    """The preset ``kind.<name>``; ``ConfigError`` naming ``parameter`` (with the closest
    preset name when one is close) for a name ``kind`` does not have."""
    preset: _C = lookup(kind, name, parameter)
    return preset


# RFC 9110: a header name is a token; a value is visible characters with inner spaces or
# tabs. CR, LF and NUL would end or split the header: httpx refuses them on every send.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"(?:[!-~\x80-\xff]+(?:[ \t]+[!-~\x80-\xff]+)*)?")
_VALUES = "visible ASCII characters with inner spaces or tabs (no CR, LF or control characters)"


def _sendable(value: object) -> bool:
    """A ``str`` must be ASCII (httpx encodes it so); ``bytes`` may hold obs-text too."""
    if isinstance(value, str):
        return value.isascii() and _VALUE.fullmatch(value) is not None
    if isinstance(value, bytes):
        return _VALUE.fullmatch(value.decode("latin-1")) is not None
    return False


def check_header_value(parameter: str, value: object) -> None:
    """``ConfigError`` naming ``parameter`` unless ``value`` can be sent as a header value."""
    if not _sendable(value):
        raise ConfigError(parameter, value, f"a string of {_VALUES}")


def check_headers(parameter: str, headers: object) -> dict[str, str]:
    """``headers`` as a dict once every name and value can be sent; ``ConfigError`` naming
    ``parameter`` (and the header at fault) otherwise."""
    if not isinstance(headers, Mapping):
        raise ConfigError(parameter, headers, "a mapping of header names to values")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        text = name.decode("latin-1") if isinstance(name, bytes) else name
        if not isinstance(text, str) or not _TOKEN.fullmatch(text):
            raise ConfigError(parameter, headers, f"header names that are tokens, not {name!r}")
        if not _sendable(value):
            raise ConfigError(parameter, headers, f"header values of {_VALUES}; {text}={value!r}")
        checked[text] = value
    return checked


def unsendable_header(raw: list[tuple[bytes, bytes]]) -> str | None:
    """Why one of these encoded headers cannot be sent (CR, LF, a control character, a
    name that is not a token), or ``None`` when all can."""
    for name, value in raw:
        if not _TOKEN.fullmatch(name.decode("latin-1")):
            return f"illegal header name {name!r}"
        if not _VALUE.fullmatch(value.decode("latin-1")):
            return f"illegal header value for {name.decode('latin-1')}: {value!r}"
    return None
