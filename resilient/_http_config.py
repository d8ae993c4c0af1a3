"""``RequestConfig``: the seed's request presets (timeouts per phase, total budget, retries)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import _validate
from ._retry import RetryConfig
from .exceptions import ConfigError
from .presets import CLIENT_TIMEOUTS

__all__ = ["IDEMPOTENT_METHODS", "RETRY_STATUSES", "RequestConfig"]

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
            set_(self, "retry", RetryConfig.get(retry))
        elif not isinstance(retry, RetryConfig):
            raise ConfigError("retry", retry, "a RetryConfig or one of its preset names")
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
        """The preset called ``name``; ``ConfigError`` for an unknown name."""
        if name not in cls.names:
            raise ConfigError("config", name, f"a RequestConfig or one of {cls.names}")
        preset: RequestConfig = getattr(cls, name)
        return preset

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


RequestConfig.quick = _preset("health_check", RetryConfig.quick)
RequestConfig.standard = _preset("api_call", RetryConfig.standard)
RequestConfig.heavy = _preset("content_download", RetryConfig.standard)
RequestConfig.ai_operation = _preset("ai_operation", RetryConfig.ai_operation)


def resolve(config: object, parameter: str = "config") -> RequestConfig:
    """``config`` as a ``RequestConfig`` (a preset name is looked up)."""
    if isinstance(config, RequestConfig):
        return config
    if isinstance(config, str):
        return RequestConfig.get(config)
    raise ConfigError(parameter, config, f"a RequestConfig or one of {RequestConfig.names}")
