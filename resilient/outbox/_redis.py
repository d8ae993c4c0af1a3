"""The fleet outbox: Redis Streams with a consumer group, shared by every process.

An item is a field of the ``items`` hash. An item that may be delivered now has a
*ticket*: an entry in its kind's stream, read by a consumer group (``XREADGROUP``), so
each ticket goes to one drainer, and stays in that drainer's pending list until it is
acknowledged. A drainer that dies leaves tickets nobody acknowledges: once idle longer
than the lease (by the Redis server's clock), ``XAUTOCLAIM`` hands them to the next
drainer. An item waiting for its next attempt has no ticket but a place in the
``delayed`` sorted set (by the outbox's clock); items of a group wait in the group's
sorted set, and only its oldest live item has a ticket or a delay at any time (the
``busy`` hash names it), which delivers the group in order.

Every key of one outbox shares a hash tag, so the scripts run on one Redis Cluster slot.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from ._items import DeadItem, Item, OutboxError

__all__ = ["RedisBackend"]

_LIB: Final = r"""
local P = ARGV[1]
local function issue(key, kind)
  local id = redis.call('XADD', P .. 'stream:' .. kind, '*', 'k', key)
  redis.call('HSET', P .. 'ticket', key, kind .. ' ' .. id)
end
local function release(key)
  local ticket = redis.call('HGET', P .. 'ticket', key)
  if ticket then
    local kind, id = string.match(ticket, '^(.-) (.+)$')
    redis.call('XACK', P .. 'stream:' .. kind, 'drainers', id)
    redis.call('XDEL', P .. 'stream:' .. kind, id)
    redis.call('HDEL', P .. 'ticket', key)
  end
end
local function promote(group)
  -- the oldest live item of the group gets a ticket, unless one of them is under way
  -- (named in 'busy' from its ticket until it is delivered or dead: O(1), not O(group))
  if redis.call('HEXISTS', P .. 'busy', group) == 1 then return end
  local head = redis.call('ZRANGE', P .. 'group:' .. group, 0, 0)[1]
  if head then
    local item = cjson.decode(redis.call('HGET', P .. 'items', head))
    issue(head, item.kind)
    redis.call('HSET', P .. 'busy', group, head)
  end
end
local function forget(key, item)
  release(key)
  redis.call('ZREM', P .. 'delayed', key)
  redis.call('HDEL', P .. 'items', key)
  if item.group ~= cjson.null then
    redis.call('ZREM', P .. 'group:' .. item.group, key)
    if redis.call('HGET', P .. 'busy', item.group) == key then
      redis.call('HDEL', P .. 'busy', item.group)
    end
    promote(item.group)
  end
end
"""

_PUT: Final = (
    _LIB
    + r"""
local key, kind, group, payload, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local fresh, known = ARGV[7] == '1', ARGV[8] == '1'
if not fresh then  -- a key the caller chose may be stored already
  for _, where in ipairs({'items', 'dead'}) do
    local found = redis.call('HGET', P .. where, key)
    if found then return {cjson.decode(found).position, 0} end
  end
end
local position = redis.call('INCR', P .. 'seq')
local item = {kind = kind, payload = payload, created = tonumber(now), attempts = 0,
              position = position, error = cjson.null, group = cjson.null}
if group ~= '' then item.group = group end
redis.call('HSET', P .. 'items', key, cjson.encode(item))
local stream = P .. 'stream:' .. kind
if not known and redis.call('EXISTS', stream) == 0 then
  redis.call('XGROUP', 'CREATE', stream, 'drainers', '0', 'MKSTREAM')
end
if group ~= '' then
  redis.call('ZADD', P .. 'group:' .. group, position, key)
  promote(group)
else
  issue(key, kind)
end
return {position, 1}
"""
)

_LEASE: Final = (
    _LIB
    + r"""
local owner, now, limit, idle = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
for _, key in ipairs(redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', now)) do
  redis.call('ZREM', P .. 'delayed', key)
  local found = redis.call('HGET', P .. 'items', key)
  if found then issue(key, cjson.decode(found).kind) end
end
local out = {}
local stream
local function take(entries)
  for _, entry in ipairs(entries) do
    local id, fields = entry[1], entry[2]
    if #out >= limit * 2 then break end
    local key = fields and fields[2]
    local item = key and redis.call('HGET', P .. 'items', key)
    local ticket = key and redis.call('HGET', P .. 'ticket', key)
    if item and ticket and string.match(ticket, ' (.+)$') == id then
      table.insert(out, key)
      table.insert(out, item)
    else  -- a ticket its item outlived (delivered, purged or given a new one)
      redis.call('XACK', stream, 'drainers', id)
      redis.call('XDEL', stream, id)
    end
  end
end
for i = 6, #ARGV do
  stream = P .. 'stream:' .. ARGV[i]
  if redis.call('EXISTS', stream) == 1 and #out < limit * 2 then
    local claimed = redis.call('XAUTOCLAIM', stream, 'drainers', owner, idle, '0-0',
                               'COUNT', limit - #out / 2)
    take(claimed[2])
    if #out < limit * 2 then
      local fresh = redis.call('XREADGROUP', 'GROUP', 'drainers', owner,
                               'COUNT', limit - #out / 2, 'STREAMS', stream, '>')
      if fresh then take(fresh[1][2]) end
    end
  end
end
return out
"""
)

_SETTLE: Final = (
    _LIB
    + r"""
local key, outcome, error, retry_at, count = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local found = redis.call('HGET', P .. 'items', key)
if not found then return 0 end
local item = cjson.decode(found)
if outcome == 'done' then
  forget(key, item)
  return 1
end
item.attempts = item.attempts + tonumber(count)
if error ~= '' then item.error = error end
if outcome == 'dead' then
  forget(key, item)
  redis.call('HSET', P .. 'dead', key, cjson.encode(item))
  return 1
end
release(key)
redis.call('HSET', P .. 'items', key, cjson.encode(item))
redis.call('ZADD', P .. 'delayed', retry_at, key)
return 1
"""
)

_REVIVE: Final = (
    _LIB
    + r"""
local keys = {}
if #ARGV > 1 then
  for i = 2, #ARGV do keys[#keys + 1] = ARGV[i] end
else
  keys = redis.call('HKEYS', P .. 'dead')
end
local revived = 0
for _, key in ipairs(keys) do
  local found = redis.call('HGET', P .. 'dead', key)
  if found then
    local item = cjson.decode(found)
    item.attempts = 0
    item.error = cjson.null
    redis.call('HDEL', P .. 'dead', key)
    redis.call('HSET', P .. 'items', key, cjson.encode(item))
    if item.group ~= cjson.null then
      redis.call('ZADD', P .. 'group:' .. item.group, item.position, key)
      promote(item.group)
    else
      issue(key, item.kind)
    end
    revived = revived + 1
  end
end
return revived
"""
)

_PURGE: Final = (
    _LIB
    + r"""
local dead, kind, before = ARGV[2] == '1', ARGV[3], tonumber(ARGV[4])
local where = dead and 'dead' or 'items'
local all = redis.call('HGETALL', P .. where)
local deleted = 0
for i = 1, #all, 2 do
  local key, item = all[i], cjson.decode(all[i + 1])
  if (kind == '' or item.kind == kind) and (before < 0 or item.created < before) then
    if dead then redis.call('HDEL', P .. 'dead', key) else forget(key, item) end
    deleted = deleted + 1
  end
end
return deleted
"""
)


class RedisBackend:
    """Items in Redis under ``resilient:outbox:{name}:``; ``client`` is a redis-py client
    (``redis.Redis`` or ``redis.RedisCluster``)."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name
        self.prefix = f"resilient:outbox:{{{name}}}:"
        self._streams: set[str] = set()
        """Kinds whose stream and consumer group this process saw made."""
        self._scripts = {
            script: client.register_script(source)
            for script, source in (
                ("put", _PUT),
                ("lease", _LEASE),
                ("settle", _SETTLE),
                ("revive", _REVIVE),
                ("purge", _PURGE),
            )
        }

    def __repr__(self) -> str:
        return f"<RedisBackend {self.prefix!r}>"

    def _run(self, script: str, *args: object) -> Any:
        return self._scripts[script](keys=[self.prefix + "items"], args=[self.prefix, *args])

    def close(self) -> None:
        self.client.close()

    def put(
        self,
        key: str,
        kind: str,
        payload: str,
        group: str | None,
        now: float,
        fresh: bool = False,
    ) -> tuple[int, bool]:
        """``fresh``: the key was just made at random, so it cannot be stored already."""
        import redis

        known = kind in self._streams  # its stream and group were made before
        try:
            position, stored = self._run(
                "put", key, kind, group or "", payload, repr(now), int(fresh), int(known)
            )
        except redis.RedisError as error:
            raise OutboxError(f"the outbox {self.prefix} could not store the item: {error}") from (
                error
            )
        self._streams.add(kind)
        return int(position), bool(stored)

    def lease(
        self, kinds: Iterable[str], limit: int, owner: str, now: float, seconds: float
    ) -> list[Item]:
        wanted = list(kinds)
        if not wanted:
            return []
        idle = str(max(1, int(seconds * 1000)))
        found = self._run("lease", owner, repr(now), limit, idle, *wanted)
        items = [
            _item(key.decode(), json.loads(raw))
            for key, raw in zip(found[::2], found[1::2], strict=True)
        ]
        items.sort(key=lambda item: item.position)
        return items

    def done(self, item: Item) -> None:
        self._run("settle", item.key, "done", "", 0, 0)

    def failed(self, item: Item, error: str, retry_at: float, count: bool) -> None:
        self._run("settle", item.key, "failed", error, repr(retry_at), 1 if count else 0)

    def bury(self, item: Item, error: str) -> None:
        self._run("settle", item.key, "dead", error, 0, 1)

    def next_ready(self, kinds: Iterable[str]) -> float | None:
        first = self.client.zrange(self.prefix + "delayed", 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def counts(self) -> tuple[int, int]:
        pipe = self.client.pipeline(transaction=False)
        pipe.hlen(self.prefix + "items")
        pipe.hlen(self.prefix + "dead")
        pending, dead = pipe.execute()
        return int(pending), int(dead)

    def dead(self, limit: int) -> list[DeadItem]:
        found = self.client.hgetall(self.prefix + "dead")
        items = []
        for key, raw in found.items():
            data = json.loads(raw)
            base = _item(key.decode(), data)
            items.append(
                DeadItem(
                    base.key,
                    base.kind,
                    base.payload,
                    base.group,
                    base.position,
                    base.attempts,
                    base.created,
                    data.get("error") or "",
                )
            )
        items.sort(key=lambda item: item.position)
        return items[:limit]

    def revive(self, keys: Iterable[str] | None) -> int:
        if keys is None:
            return int(self._run("revive"))  # no key given: every dead letter
        wanted = list(keys)
        return int(self._run("revive", *wanted)) if wanted else 0

    def purge(self, dead: bool, kind: str | None, before: float | None) -> int:
        return int(
            self._run("purge", "1" if dead else "0", kind or "", -1 if before is None else before)
        )


def _item(key: str, data: dict[str, Any]) -> Item:
    return Item(
        key,
        data["kind"],
        json.loads(data["payload"]),
        data.get("group"),
        int(data["position"]),
        int(data["attempts"]),
        float(data["created"]),
    )
