"""Correlation IDs: one ID per logical request, carried into headers, log records and errors.

The ID lives in a ``ContextVar``, so it follows a request into the tasks it starts and
into worker threads run with a copied context. ``resilient.http`` sends it as
``X-Correlation-ID``; ``resilient.asgi.CorrelationIdMiddleware`` takes it from incoming
requests; ``CorrelationIdFilter`` puts it on every log record.

An ID sent out must be 1 to 128 visible ASCII characters (``!`` to ``~``: no spaces, no
control characters, nothing that could split a header): ``resilient.http`` replaces any
other current ID with a new one for its requests, and logs that once.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

__all__ = [
    "CONTEXT",
    "HEADER",
    "CorrelationIdFilter",
    "current",
    "is_sendable",
    "is_valid",
    "new",
    "use",
]

HEADER: Final = "X-Correlation-ID"
"""The header that carries the ID between services."""

CONTEXT: ContextVar[str | None] = ContextVar("resilient_correlation_id", default=None)
"""The context variable holding the ID (``current()`` reads it; ``use()`` sets it)."""

# A seeded Random is ~10x cheaper than uuid4 and the ID is for tracing, not for secrets.
# Reseeded in a forked child, or parent and child would hand out the same IDs.
_random = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(16)))

_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
is_sendable: Callable[[str], re.Match[str] | None] = re.compile(r"[!-~]{1,128}").fullmatch
"""Whether an ID may go out in a header as it is (visible ASCII, 1-128 characters)."""


def current() -> str | None:
    """The correlation ID of the current context, or ``None`` outside any request."""
    return CONTEXT.get()


def new() -> str:
    """A fresh random ID: 32 hex digits, the shape of a UUID4 hex or a W3C trace id."""
    return f"{_random.getrandbits(128):032x}"


def is_valid(value: str) -> bool:
    """Whether ``value`` is safe to accept from a client: 1-128 of ``[A-Za-z0-9._:-]``.

    Anything else (log-injection attempts, megabyte headers) is replaced by a new ID.
    """
    return _VALID.fullmatch(value) is not None


@contextmanager
def use(correlation_id: str | None = None) -> Iterator[str]:
    """Make ``correlation_id`` (a new one when ``None``) current inside the block."""
    value = new() if correlation_id is None else correlation_id
    token = CONTEXT.set(value)
    try:
        yield value
    finally:
        CONTEXT.reset(token)


class CorrelationIdFilter(logging.Filter):
    """Adds ``correlation_id`` to log records (``"-"`` outside a request).

    Attach it to a *handler* so records propagated from every logger get it, then use
    ``%(correlation_id)s`` in the format. A record that already has one (resilient's
    own records carry the ID of the request they describe) keeps it.
    """

    def __init__(self, name: str = "", default: str = "-") -> None:
        super().__init__(name)
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = CONTEXT.get() or self.default
        return True
