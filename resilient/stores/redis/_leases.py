"""Fleet-wide rate limits in Redis: tokens leased in batches by one script call.

Mixed into ``RedisStore`` and ``AsyncRedisStore`` (see ``resilient.stores._leases`` for
the script and the protocol). A Redis that cannot be reached never breaks the caller:
the first failure is logged (once per minute at most, with the count of the others),
each lease not made counts ``store_errors_total``, and the store answers ``None`` (the
rate limit goes on with a bucket of its own, in this process) until
``retry_interval`` has passed, when the next lease tries Redis again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio.cluster as acluster

from ..._runtime.logs import digest
from .._leases import LEASE
from ._cells import _tagged
from ._clients import AsyncClusterScript
from ._errors import _count_error, _reason

__all__ = ["_TokenLeases"]


class _TokenLeases:
    """``lease_tokens`` and ``alease_tokens`` for the Redis stores."""

    _lease_down_until = 0.0

    def lease_key(self, name: str) -> str:
        """The key holding rate limit ``name``: ``<prefix>:{ratelimit:<name>}:tat``."""
        store: Any = self
        return f"{store.prefix}:{_tagged('ratelimit:' + name)}:tat"

    def lease_tokens(
        self, name: str, interval: float, burst: int, want: int, patience: float
    ) -> tuple[int, float] | None:
        """Take up to ``want`` tokens of the fleet's bucket ``name`` in one script call
        (see ``resilient.stores._leases.TokenLeases``)."""
        if self._lease_down_until and time.monotonic() < self._lease_down_until:
            _count_error()
            return None
        store: Any = self
        script = store.__dict__.get("_lease_script")
        if script is None:
            script = store._lease_script = store._sync.register_script(LEASE)
        try:
            reply = script(
                keys=(self.lease_key(name),),
                args=_args(interval, burst, want, patience),
                client=store._sync,
            )
        except Exception as error:  # timeouts included: the caller must not see it
            self._lease_failed(error)
            return None
        return _read(reply)

    async def alease_tokens(
        self, name: str, interval: float, burst: int, want: int, patience: float
    ) -> tuple[int, float] | None:
        """``lease_tokens`` through the running loop's asyncio client (never blocks it)."""
        if self._lease_down_until and time.monotonic() < self._lease_down_until:
            _count_error()
            return None
        store: Any = self
        try:
            client, _ = store._aclient()
            scripts = store.__dict__.setdefault("_alease_scripts", {})
            script = scripts.get(id(client))
            if script is None:
                if isinstance(client, acluster.RedisCluster):
                    script = AsyncClusterScript(client, LEASE, store._node_of_key)
                else:
                    script = client.register_script(LEASE)
                scripts[id(client)] = script
            async with asyncio.timeout(store.timeout):
                reply = await script(
                    keys=(self.lease_key(name),),
                    args=_args(interval, burst, want, patience),
                    client=client,
                )
        except Exception as error:
            self._lease_failed(error)
            return None
        return _read(reply)

    def _lease_failed(self, error: BaseException) -> None:
        store: Any = self
        self._lease_down_until = time.monotonic() + store.retry_interval
        _count_error()
        digest.report(
            "store unreachable",
            f"{store._source} rate limits",
            f"{_reason(error)}; rate limits go on with a local bucket per process "
            f"(the fleet's limit is not shared) for {store.retry_interval:g}s, then retry",
        )


def _args(interval: float, burst: int, want: int, patience: float) -> tuple[str, ...]:
    return (repr(interval), str(burst), str(want), "-1" if patience == _INF else repr(patience))


_INF = float("inf")


def _read(reply: Any) -> tuple[int, float]:
    return int(reply[0]), int(reply[1]) / 1_000_000
