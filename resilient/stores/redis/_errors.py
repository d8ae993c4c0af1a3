"""What an error of Redis means for the store: an outage, a refusal of writes, or
trouble with one key; and, when a store is made, whether it shows a wrong configuration."""

from __future__ import annotations

import socket

from redis import exceptions as rx

from ..._runtime import config as _config
from ...metrics._names import STORE_ERRORS

# What an error means for the store. _OUTAGE: Redis cannot be reached or used at all.
# _REFUSED: Redis answers but refuses this store's scripts or their writes. _KEY: the
# trouble is one breaker's keys (or one flag's, one budget's); the rest of the store works.
_OUTAGE, _REFUSED, _KEY = "store unreachable", "store refuses writes", "key"


_REFUSED_ERRORS = (rx.ReadOnlyError, rx.NoPermissionError, rx.NoScriptError, rx.OutOfMemoryError)


_OUTAGE_CODES = frozenset(("LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN"))


_REFUSED_CODES = frozenset(("READONLY", "NOPERM", "NOSCRIPT", "OOM", "MISCONF"))


# Refusals Redis reports as plain ERR: an ACL denial met inside a script, no scripting,
# or (Redis 6) a refusal met inside a script, quoted with its code.
_REFUSED_TEXTS = (
    "script can't",
    "no permissions",
    "unknown command",
    "-READONLY",
    "-NOPERM",
    "-OOM",
    "-MISCONF",
)


_UNRESOLVED = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


def _code(error: BaseException) -> str:
    """The error code Redis sent (``READONLY``, ``NOPERM``, ``WRONGTYPE``...), or ``""``."""
    code = getattr(error, "status_code", None)
    if isinstance(code, str) and code:
        return code
    for kind, name in (
        (rx.ReadOnlyError, "READONLY"),
        (rx.NoPermissionError, "NOPERM"),
        (rx.NoScriptError, "NOSCRIPT"),
        (rx.OutOfMemoryError, "OOM"),
        (rx.BusyLoadingError, "LOADING"),
    ):
        if isinstance(error, kind):
            return name
    if isinstance(error, rx.ResponseError):
        first = str(error).split(" ", 1)[0]
        if first.isupper() and first.isalpha():
            return first
    return ""


def _reason(error: BaseException) -> str:
    """``error`` for a log line: its Redis error code first, when it has one."""
    code = _code(error)
    name = type(error).__name__
    return f"{code} ({name}: {error})" if code else f"{name}: {error}"


def _kind_of(error: BaseException) -> str:
    """What ``error`` means for the store: ``_OUTAGE``, ``_REFUSED`` or ``_KEY``.

    Only what Redis says of a command on its keys (``WRONGTYPE``, a script's error on the
    state it read, ``MOVED``...) and a name or value that cannot be sent are one key's
    trouble; anything else (timeouts, closed connections, the unexpected) is an outage.
    """
    if isinstance(error, _REFUSED_ERRORS):
        return _REFUSED
    if isinstance(error, rx.ResponseError):
        code = _code(error)
        if code in _OUTAGE_CODES:
            return _OUTAGE
        if code in _REFUSED_CODES or any(t in str(error) for t in _REFUSED_TEXTS):
            return _REFUSED
        return _KEY
    if isinstance(error, UnicodeError | rx.DataError):
        return _KEY
    return _OUTAGE


def _config_problem(error: BaseException, prefix: str, channel: str) -> str | None:
    """What a configuration must be, when ``error`` shows this one is wrong (``None``
    when it may pass: Redis down, slow or read-only for a while)."""
    said = f"Redis said: {_reason(error)}"
    text = str(error)
    if isinstance(error, rx.AuthenticationError):
        return f"credentials the server accepts ({said})"
    if isinstance(error, rx.ResponseError) and "DB index" in text:
        return f"a database number the server has ({said})"
    if isinstance(error, rx.NoPermissionError) or (
        isinstance(error, rx.ResponseError) and "script can't" in text
    ):
        return (
            f"a user allowed to run EVALSHA and SCRIPT LOAD, on keys {prefix}:* and "
            f"channel {channel} ({said})"
        )
    if isinstance(error, rx.ResponseError) and "unknown command" in text:
        return f"a Redis server that runs Lua scripts ({said})"
    if isinstance(error, rx.ConnectionError) and _unresolved(error):
        return f"a host name that resolves ({said})"
    return None


def _unresolved(error: BaseException) -> bool:
    """Whether ``error`` comes from a host name that does not exist (not from a name
    server that did not answer, which may pass)."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, socket.gaierror):
            return seen.errno in _UNRESOLVED
        seen = seen.__cause__ or seen.__context__
    return False


_TAGS = (("store", "redis"),)


def _count_error() -> None:
    """Count an operation served without Redis (``store_errors_total``)."""
    emit = _config.state.emit
    if emit is not None:
        emit.increment(STORE_ERRORS, _TAGS)
