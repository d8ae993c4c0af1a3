"""The fleet outbox: Redis Streams with a consumer group, shared by every process.

An item is a field of the ``items`` hash (JSON). An item that may be delivered now has a
*ticket*: an entry in its kind's stream (its id kept in the item), read by a consumer
group (``XREADGROUP``), so each ticket goes to one drainer, and stays in that drainer's
pending list until it is acknowledged. A drainer that dies leaves tickets nobody
acknowledges: once idle longer than the lease (by the Redis server's clock),
``XAUTOCLAIM`` hands them to the next drainer. An item waiting for its next attempt has
no ticket but a place in the ``delayed`` sorted set (by the outbox's clock); items of a
group wait in the group's sorted set, and only one live item has a ticket or a delay at
any time (the ``busy`` hash names it), which delivers the group in order: its oldest, or
a later one under way when an earlier dead letter was revived (that one waits for it). A
lease shares its batch between the kinds, so a busy kind never keeps another's items
waiting.

Every key of one outbox shares a hash tag, so the scripts run on one Redis Cluster slot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, Final

from redis.exceptions import NoScriptError, RedisError

from ._items import DeadItem, Item, OutboxError

__all__ = ["RedisBackend"]

_CORE: Final = r"""
local P = string.sub(KEYS[1], 1, -6)  -- KEYS[1] is the prefix followed by 'items'
local function save(key, item)
  redis.call('HSET', P .. 'items', key, cjson.encode(item))
end
local function issue(key, item)
  item.ticket = redis.call('XADD', P .. 'stream:' .. item.kind, '*', 'k', key)
  save(key, item)
end
local function promote(group)
  -- the oldest live item of the group gets a ticket (or waits out its retry time in
  -- 'delayed'), unless one of them holds the group's turn ('busy' names it from then
  -- until it is delivered or dead: O(1), not O(group))
  if redis.call('HEXISTS', P .. 'busy', group) == 1 then return end
  local head = redis.call('ZRANGE', P .. 'group:' .. group, 0, 0)[1]
  if head then
    local item = cjson.decode(redis.call('HGET', P .. 'items', head))
    redis.call('HSET', P .. 'busy', group, head)
    if item.retry_at then
      redis.call('ZADD', P .. 'delayed', item.retry_at, head)
    else
      issue(head, item)
    end
  end
end
"""

_LIB: Final = (
    _CORE
    + r"""
local function release(item)  -- the caller saves or forgets the item afterwards
  if item.ticket then
    local stream = P .. 'stream:' .. item.kind
    redis.call('XACK', stream, 'drainers', item.ticket)
    redis.call('XDEL', stream, item.ticket)
    item.ticket = nil
  end
end
local function adopt()
  -- tickets an earlier version kept in a hash beside their items ('kind id' by key):
  -- each moves into its item, so no item stored before an upgrade is left behind
  local old = redis.call('HGETALL', P .. 'ticket')
  for i = 1, #old, 2 do
    local found = redis.call('HGET', P .. 'items', old[i])
    if found then
      local item = cjson.decode(found)
      if not item.ticket then
        item.ticket = string.match(old[i + 1], ' (.+)$')
        save(old[i], item)
      end
    end
  end
  if #old > 0 then redis.call('DEL', P .. 'ticket') end
end
adopt()
local function forget(key, item)
  release(item)
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
)

_PUT: Final = (
    _CORE
    + r"""
local key, how, record, group = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local kind = string.sub(how, 3)
if string.sub(how, 1, 1) ~= 'f' then  -- a key the caller chose may be stored already
  local found = redis.call('HGET', P .. 'items', key) or redis.call('HGET', P .. 'dead', key)
  if found then return -cjson.decode(found).position end
end
local position = redis.call('INCR', P .. 'seq')
local stream = P .. 'stream:' .. kind
if string.sub(how, 2, 2) ~= 'k' and redis.call('EXISTS', stream) == 0 then
  redis.call('XGROUP', 'CREATE', stream, 'drainers', '0', 'MKSTREAM')
end
if not group then
  local id = redis.call('XADD', stream, '*', 'k', key)
  redis.call('HSET', P .. 'items', key,
             record .. ',"position":' .. position .. ',"ticket":"' .. id .. '"}')
else
  redis.call('HSET', P .. 'items', key, record .. ',"position":' .. position .. '}')
  redis.call('ZADD', P .. 'group:' .. group, position, key)
  promote(group)
end
return position
"""
)
"""``how``: ``f`` (a fresh key) or ``-``, ``k`` (its kind's stream known to be there) or
``-``, then the kind; ``record``: the item's JSON object without its position, ticket and
closing brace; ``group``: given only for an item of a group. The reply is the item's
position, negated when its key was stored already (one integer, the cheapest reply)."""

_LEASE: Final = (
    _LIB
    + r"""
local owner, now, limit, idle = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
for _, key in ipairs(redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', now)) do
  redis.call('ZREM', P .. 'delayed', key)
  local found = redis.call('HGET', P .. 'items', key)
  if found then issue(key, cjson.decode(found)) end
end
local out, count = {}, 0
local function take(stream, entries)
  local got = 0
  for _, entry in ipairs(entries) do
    local id, fields = entry[1], entry[2]
    local key = fields and fields[2]
    local found = key and redis.call('HGET', P .. 'items', key)
    if found and cjson.decode(found).ticket == id then
      out[#out + 1] = key
      out[#out + 1] = found
      got = got + 1
    else  -- a ticket its item outlived (delivered, purged or given a new one)
      redis.call('XACK', stream, 'drainers', id)
      redis.call('XDEL', stream, id)
    end
  end
  count = count + got
  return got
end
local function read(stream, want)
  -- tickets whose drainer let their lease run out first, then new ones
  local claimed = redis.call('XAUTOCLAIM', stream, 'drainers', owner, idle, '0-0',
                             'COUNT', want)
  local got = take(stream, claimed[2])
  if got < want then
    local fresh = redis.call('XREADGROUP', 'GROUP', 'drainers', owner,
                             'COUNT', want - got, 'STREAMS', stream, '>')
    if fresh then got = got + take(stream, fresh[1][2]) end
  end
  return got
end
-- the batch is shared by the kinds: each takes its share first, then the kinds that had
-- more fill what is left, so a busy kind never keeps another's items waiting
local share = math.ceil(limit / (#ARGV - 4))
local more = {}
for i = 5, #ARGV do
  local stream = P .. 'stream:' .. ARGV[i]
  -- made if missing: a Redis that lost its keys keeps working
  redis.pcall('XGROUP', 'CREATE', stream, 'drainers', '0', 'MKSTREAM')
  local want = math.min(share, limit - count)
  if want > 0 and read(stream, want) == want then more[#more + 1] = stream end
end
for _, stream in ipairs(more) do
  if count >= limit then break end
  read(stream, limit - count)
end
return out
"""
)

_SETTLE: Final = (
    _LIB
    + r"""
local key, outcome, error, retry_at, count = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
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
  item.retry_at = nil
  redis.call('HSET', P .. 'dead', key, cjson.encode(item))
  return 1
end
release(item)
item.retry_at = retry_at
save(key, item)
local group = item.group
if group ~= cjson.null and redis.call('HGET', P .. 'busy', group) == key
    and redis.call('ZRANGE', P .. 'group:' .. group, 0, 0)[1] ~= key then
  -- an earlier item of the group was revived while this one was under way: it goes
  -- now, and this one waits its turn again (its retry time kept in the item)
  redis.call('HDEL', P .. 'busy', group)
  promote(group)
  return 1
end
redis.call('ZADD', P .. 'delayed', retry_at, key)
return 1
"""
)

_REVIVE: Final = (
    _LIB
    + r"""
local keys = ARGV
if #keys == 0 then keys = redis.call('HKEYS', P .. 'dead') end
local revived = 0
for _, key in ipairs(keys) do
  local found = redis.call('HGET', P .. 'dead', key)
  if found then
    local item = cjson.decode(found)
    item.attempts = 0
    item.error = cjson.null
    redis.call('HDEL', P .. 'dead', key)
    save(key, item)
    local group = item.group
    if group ~= cjson.null then
      redis.call('ZADD', P .. 'group:' .. group, item.position, key)
      -- a group goes in order: a later item holding the group's turn gives it back,
      -- unless a drainer has it under way
      local busy = redis.call('HGET', P .. 'busy', group)
      local raw = busy and redis.call('HGET', P .. 'items', busy)
      local later = raw and cjson.decode(raw)
      if later and later.position > item.position then
        local idle = not later.ticket
        if later.ticket then
          local stream = P .. 'stream:' .. later.kind
          idle = #redis.call('XPENDING', stream, 'drainers', later.ticket, later.ticket, 1) == 0
        end
        if idle then
          release(later)
          save(busy, later)
          redis.call('ZREM', P .. 'delayed', busy)
          redis.call('HDEL', P .. 'busy', group)
        end
      end
      promote(group)
    else
      issue(key, item)
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
local dead, kind, before = ARGV[1] == '1', ARGV[2], tonumber(ARGV[3])
local where = dead and 'dead' or 'items'
local all = redis.call('HGETALL', P .. where)
local deleted = 0
for i = 1, #all, 2 do
  local key, item = all[i], cjson.decode(all[i + 1])
  if (kind == '' or item.kind == kind) and (before < 0 or tonumber(item.created) < before) then
    if dead then redis.call('HDEL', P .. 'dead', key) else forget(key, item) end
    deleted = deleted + 1
  end
end
return deleted
"""
)

_SOURCES: Final = {
    "put": ("store the item", _PUT),
    "lease": ("lease items", _LEASE),
    "settle": ("record a delivery", _SETTLE),
    "revive": ("revive dead letters", _REVIVE),
    "purge": ("purge items", _PURGE),
}
"""Each script, with what it does for an error message."""


class RedisBackend:
    """Items in Redis under ``resilient:outbox:{name}:``; ``client`` is a redis-py client
    (``redis.Redis`` or ``redis.RedisCluster``). Every Redis error (unreachable, timed
    out, refusing: ``READONLY``, ``OOM``) is an ``OutboxError`` chained to it."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name
        self.prefix = f"resilient:outbox:{{{name}}}:"
        self._items = self.prefix + "items"
        self._streams: set[str] = set()
        """Kinds whose stream and consumer group this process saw made."""
        self._shas = {
            script: hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
            for script, (_, source) in _SOURCES.items()
        }
        self._turn = 0
        """Which kind a lease offers its batch first: each lease the next one."""

    def __repr__(self) -> str:
        return f"<RedisBackend {self.prefix!r}>"

    def _run(self, script: str, *args: object) -> Any:
        """Run one script (loading it when the server does not know it yet)."""
        try:
            try:
                return self.client.evalsha(self._shas[script], 1, self._items, *args)
            except NoScriptError:
                self._shas[script] = self.client.script_load(_SOURCES[script][1])
                return self.client.evalsha(self._shas[script], 1, self._items, *args)
        except RedisError as error:
            raise self._error(_SOURCES[script][0], error) from error

    def _error(self, what: str, error: BaseException) -> OutboxError:
        return OutboxError(f"the outbox {self.prefix} could not {what}: {error}")

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
        # the item's JSON is made here, so the script only adds its position and ticket
        grouped = "null" if group is None else _quote(group)
        record = (
            f'{{"kind":"{kind}","group":{grouped},"created":"{now!r}","attempts":0,'
            f'"error":null,"payload":{_quote(payload)}'
        )
        how = ("f" if fresh else "-") + ("k" if kind in self._streams else "-") + kind
        if group is None:
            position = int(self._run("put", key, how, record))
        else:
            position = int(self._run("put", key, how, record, group))
        self._streams.add(kind)
        return abs(position), position > 0

    def lease(
        self, kinds: Iterable[str], limit: int, owner: str, now: float, seconds: float
    ) -> list[Item]:
        wanted = list(kinds)
        if not wanted:
            return []
        self._turn = turn = (self._turn + 1) % len(wanted)
        wanted = wanted[turn:] + wanted[:turn]
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
        """When the first delayed item is due; ``None`` with no kind to lease (every
        kind's breaker open), since only a lease moves due items on."""
        if not list(kinds):
            return None
        try:
            first = self.client.zrange(self.prefix + "delayed", 0, 0, withscores=True)
        except RedisError as error:
            raise self._error("look for the next ready item", error) from error
        return float(first[0][1]) if first else None

    def counts(self) -> tuple[int, int]:
        pipe = self.client.pipeline(transaction=False)
        pipe.hlen(self._items)
        pipe.hlen(self.prefix + "dead")
        try:
            pending, dead = pipe.execute()
        except RedisError as error:
            raise self._error("count its items", error) from error
        return int(pending), int(dead)

    def dead(self, limit: int) -> list[DeadItem]:
        try:
            found = self.client.hgetall(self.prefix + "dead")
        except RedisError as error:
            raise self._error("read its dead letters", error) from error
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
            self._run(
                "purge", "1" if dead else "0", kind or "", -1 if before is None else repr(before)
            )
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
