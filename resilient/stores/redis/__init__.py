"""``RedisStore`` and ``AsyncRedisStore``: breaker state shared by every process and host.

Where. One Redis server (``redis://``, ``rediss://``, ``unix://`` or a ``redis.Redis``),
or a Redis Cluster (``redis+cluster://`` any node, or a cluster client, sync or asyncio):
every key of a breaker carries one hash tag, so each script runs on one slot.

What a call costs. A breaker reads its state from a local cell, never from Redis, so a
success on a healthy closed breaker makes no round trip, and a call the cell already
refuses (open, or half-open with every probe leased elsewhere) makes none either. A
failure, a success that ends a run of failures, a manual operation: each is one script
call (``EVALSHA``) that applies the breaker's rules atomically on the server and returns
the new state; a half-open probe is two (its permit, its outcome). ``AsyncRedisStore``
sends the events of concurrent tasks on one breaker together in one script call. Every
change of state a script makes (mode, open times, probes; not counts, which travel in
the replies) is published, and each process's listener thread copies it into its cells.
Rate-window rules (``failure_rate``, slow calls) record every call, so with them every
call is a script call.

How stale a cell can be. A change made anywhere reaches every listening process as fast
as Redis delivers a pub/sub message (well under a millisecond on one network). The
listener also re-reads, every ``cache_ttl`` seconds (default 1 s), the breakers used
through the store since its last pass and those not closed; an idle closed breaker
follows messages alone. When the subscription breaks, it is renewed (on a cluster, on
another node) and everything re-read. A message is only a hint that a breaker changed:
the listener reads the state from Redis itself (one round trip for all the messages that
arrived together), so a message published by anyone else (forged, replayed, malformed)
never sets a state. Until a stale cell catches up, a process may let through calls the
fleet has stopped, at most those it starts in that window, and the first failure it
reports brings back the fleet's state: past an open breaker, a process makes at most one
call per concurrent caller.

When Redis is unreachable, slow or restarting. No call waits more than ``timeout``
(default 50 ms) for Redis, and no call sees a Redis error. The first error starts an
outage: one warning line is logged, and every breaker carries on in this process alone
with the same rules, from the last state it saw (``on_store_error="local"``, the default),
or lets every call through and counts nothing (``"allow"``). Each operation served
without Redis counts in ``store_errors_total``. The listener retries every
``retry_interval`` seconds. A Redis that answers reads but refuses the scripts or their
writes (a read-only replica, ``READONLY``; an ACL denial, ``NOPERM``; ``NOSCRIPT``;
``OOM``, ``MISCONF``) is an outage too, logged once with its reason: Redis counts as back
only once a script has written. A breaker that changed here without Redis keeps its own
state, and applies its calls here, until Redis holds one written after that change (a
state never written, or older, never replaces it; but a breaker that never saw Redis's
state takes one that is not closed, which the fleet or an operator decided), or until
its own state is closed with nothing counted; then it follows the shared state again.
Manual operations (``reset``, ``force_open``, ``disable``) always go to Redis.

When Redis loses a state. Redis Cluster replicates asynchronously, so a master killed
just after a write may hand its slots to a replica that never got it; a server without
persistence restarts empty. A key gone while the state read from it had to live on (an
open breaker not yet due to reopen, one forced open, one disabled) is taken for such a
loss, never for a breaker that closed: a store that read that state keeps it, and keeps
rejecting, until it is due to reopen (then the breaker asks Redis, and follows what Redis
holds) or until a state is written again (``reset``, another trip).

An error that belongs to one breaker's keys (a key of the wrong type, a field a script
cannot read, a name that cannot be encoded) is not an outage: that breaker goes on
locally, one line is logged for it, and every other breaker keeps using Redis.

Configuration. The store checks, when it is made, that it can run its scripts: wrong
credentials, an ACL denial, an unknown database, a host name that does not resolve, a
URL of another scheme or an argument that is not a client raise ``ConfigError`` at once.
Redis being down, slow or read-only at that moment is not a configuration error: the
store starts in an outage and recovers as above. ``check=False`` skips the round trip
(the first use of a breaker then finds out, as an outage).

Time. By default the scripts decide with the Redis server's clock (``clock="redis"``),
so hosts whose clocks disagree still agree on when a breaker reopens; states are moved
into this process's clock when they arrive. ``clock="local"`` uses the time the breaker
passes (the configured clock): right for processes on one host, and for tests with a
``FakeClock``.
"""

from __future__ import annotations

try:
    import redis  # noqa: F401 - a clear message when the extra is not installed
except ImportError as _missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "RedisStore needs the redis package: pip install 'resilient-toolkit[redis]'"
    ) from _missing

from ._base import MIN_KEY_TTL, ClockSource, OnStoreError, Trip
from ._errors import _KEY, _OUTAGE, _REFUSED, _kind_of
from ._stores import AsyncRedisStore, RedisStore

__all__ = ["AsyncRedisStore", "RedisStore"]
# Importable from here as well: MIN_KEY_TTL and the argument types; the error kinds for
# the tests that check the classification.
_PUBLIC_TOO = (MIN_KEY_TTL, ClockSource, OnStoreError, Trip, _KEY, _OUTAGE, _REFUSED, _kind_of)
