"""What a fleet-wide rate limit needs of a store: tokens leased in batches, atomically.

A store that shares rate limits between processes (``RedisStore``, ``AsyncRedisStore``)
has ``lease_tokens`` (and, for asyncio, ``alease_tokens``). One call takes up to
``want`` tokens from the bucket the whole fleet shares under ``name``, in one round trip.

``LEASE`` is the Redis side: the bucket is GCRA's one number, the *theoretical arrival
time* (``tat``, seconds on the server's clock), in ``<prefix>:{ratelimit:<name>}:tat``
(one Cluster slot per limit). Taking ``n`` tokens moves it ``n`` intervals later, as long
as it stays within ``burst`` intervals of now; a partial grant takes what there is.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["LEASE", "TokenLeases"]


@runtime_checkable
class TokenLeases(Protocol):
    """A store that leases rate-limit tokens to the processes sharing it."""

    def lease_tokens(
        self, name: str, interval: float, burst: int, want: int, patience: float
    ) -> tuple[int, float] | None:
        """Take up to ``want`` tokens from the shared bucket ``name`` (one token every
        ``interval`` seconds, at most ``burst`` saved up).

        Tokens free now are granted at once (as many as there are, up to ``want``).
        With none free, ``want`` tokens are reserved ahead, to be used once the last of
        them is earned, if that is less than ``patience`` seconds away (``inf``: any
        time). Returns ``(granted, wait)``: the tokens granted and the seconds before
        they may be used; with none granted, ``wait`` is when one will be free. ``None``
        when the store cannot be reached (the caller limits this process alone). Never
        raises for a store error and waits at most the store's ``timeout``.
        """
        ...


# KEYS[1] the bucket's key; ARGV 1 interval (seconds), 2 burst, 3 tokens wanted, 4 patience
# in seconds (negative: none). Returns {granted, wait in microseconds}. Time is the
# server's, so every process agrees on it. Times near 1.7e9 s keep about 1e-7 s of
# precision: a thousandth of a token is forgiven when counting the free ones.
LEASE = r"""
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local want, patience = tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local span = burst * interval
local free = math.floor((span - (tat - now)) / interval + 1e-3)
local granted, wait = 0, 0
if free >= 1 then
  granted = math.min(free, want)
else
  wait = tat + want * interval - now - span
  if patience >= 0 and wait >= patience then
    return {0, math.ceil((tat + interval - now - span) * 1000000)}
  end
  granted = want
end
tat = tat + granted * interval
redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX',
  math.ceil((tat - now) * 1000) + 1000)
return {granted, math.ceil(wait * 1000000)}
"""
