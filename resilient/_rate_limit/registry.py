"""One rate limiter per name: decorators naming the same limit share its bucket."""

from __future__ import annotations

import os
import threading

from .._runtime import config as _config
from ..exceptions import ConfigError
from .limiter import FleetRateLimiter, RateLimiter

__all__ = ["get_or_create", "get_rate_limiter"]

_limiters: dict[str, RateLimiter] = {}
_lock = threading.Lock()


def get_or_create(name: str, rate: float, per: float, burst: int, store: object) -> RateLimiter:
    """The limiter called ``name``, made with these settings on first use.

    A name already taken with other settings raises ``ConfigError`` (two limits under
    one name would each believe they are the only one).
    """
    with _lock:
        found = _limiters.get(name)
        if found is None:
            if store is not None and hasattr(store, "lease_tokens"):
                found = FleetRateLimiter(name, rate, per, burst, store)
            else:
                found = RateLimiter(name, rate, per, burst, store)
            _limiters[name] = found
            return found
    if (found.rate, found.per, found.burst) != (rate, per, burst) or found.store is not store:
        mine = f"rate={rate:g}, per={per:g}, burst={burst}, store={store!r}"
        theirs = f"rate={found.rate:g}, per={found.per:g}, burst={found.burst}"
        raise ConfigError(
            "name",
            name,
            f"a name not used by a rate limit with other settings (it has {theirs}, "
            f"store={found.store!r}; asked for {mine})",
        )
    return found


def get_rate_limiter(name: str) -> RateLimiter | None:
    """The rate limiter called ``name``, or ``None`` if no decorator made one."""
    return _limiters.get(name)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    for limiter in list(_limiters.values()):
        limiter.forked()


def _reset() -> None:
    with _lock:
        _limiters.clear()


_config.on_reset(_reset)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
