"""The Redis side of ``RedisStore``: Lua scripts and the wire format of a breaker's state.

``TRANSITION`` is ``resilient._circuit.rules.transition`` written again in Lua, function by
function and in the same order of float operations, so that a script run and a Python
run of the same event on the same state give the same state bit for bit (the hypothesis
test in ``tests/stores/test_redis_lua.py`` feeds both the same sequences). Numbers cross the
wire as ``%.17g`` strings, which read back exactly: Redis would truncate a Lua number
returned as a reply to an integer.

One breaker is one hash, ``<prefix>:{<name>}:state``; the braces are a Redis Cluster hash
tag, so every key of a breaker lands on one slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._circuit.config import _RULES
from .._circuit.rules import BreakerMode, BreakerState

if TYPE_CHECKING:
    from .._circuit.config import BreakerConfig

__all__ = [
    "BUDGET",
    "DEADLINE_ARG",
    "FIELDS",
    "PROBE",
    "SET_FLAG",
    "TRANSITION",
    "as_text",
    "decode",
    "encode",
    "number",
    "rules_args",
]

FIELDS = (
    "mode",
    "gen",
    "failures",
    "successes",
    "opened_at",
    "open_until",
    "trips",
    "probes",
    "window",
    "buckets",
    "version",
)
"""The hash fields of a breaker, in the order the scripts read and return them."""

DEADLINE_ARG = 19
"""Where ``TRANSITION``'s deadline is among its arguments (``ARGV[20]``)."""


def number(value: float | int) -> str:
    """A number as the scripts write it: ``repr`` reads back exactly, like ``%.17g``."""
    if isinstance(value, int):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf" if value < 0 else "nan"
    return repr(value)


def rules_args(config: BreakerConfig) -> list[str]:
    """The numbers of ``config`` the rules read, in the script's order (``""``: ``None``)."""
    values = config.rules()
    return ["" if values[name] is None else number(values[name]) for name in _RULES]  # type: ignore[arg-type]


def as_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


def decode(values: Sequence[object]) -> tuple[BreakerState, int]:
    """``(state, version)`` from the ten state fields and the version, as strings or bytes
    (missing fields, as ``HMGET`` returns them for a breaker never written, are ``None``)."""
    (mode, gen, failures, successes, opened_at, open_until, trips, probes, window, buckets) = (
        as_text(v) for v in values[:10]
    )
    version = as_text(values[10]) if len(values) > 10 else ""
    state = BreakerState(
        mode=BreakerMode(mode or "closed"),
        gen=int(float(gen or 0)),
        failures=int(float(failures or 0)),
        successes=int(float(successes or 0)),
        opened_at=float(opened_at or 0.0),
        open_until=float(open_until or 0.0),
        trips=int(float(trips or 0)),
        probes=tuple(
            (int(float(t)), float(e)) for t, e in (p.split(":") for p in probes.split(",") if p)
        ),
        window=window,
        buckets=tuple(
            (int(float(i)), int(float(c)), int(float(f)), int(float(s)))
            for i, c, f, s in (b.split(":") for b in buckets.split(",") if b)
        ),
    )
    return state, int(float(version or 0))


def encode(state: BreakerState) -> list[str]:
    """The ten state fields as the scripts store them (the inverse of ``decode``)."""
    return [
        str(state.mode),
        number(state.gen),
        number(state.failures),
        number(state.successes),
        number(state.opened_at),
        number(state.open_until),
        number(state.trips),
        ",".join(f"{number(t)}:{number(e)}" for t, e in state.probes),
        state.window,
        ",".join(":".join(number(x) for x in b) for b in state.buckets),
    ]


# KEYS[1]  the breaker's hash; KEYS[2] (trip="local" only) its trip hints, a sorted set
#          of process ids scored by when their own breaker reopens
# ARGV     1 idle expiry in ms, 2 channel ("" = publish nothing), 3 breaker name,
#          4..16 the rules (see _RULES; "" = None), 17..19 for "hint" events: this
#          process's id, the quorum, seconds its own breaker stays open; 20 the
#          deadline, in the server's microseconds ("" = none); then from 21, four per
#          event: kind, ticket, duration, now ("" = the server's TIME)
# returns  server time, version of the final state, then for each event in order:
#          verdict, ticket, retry_after ("" = None), prior mode, the ten state fields;
#          the version is negative for a breaker never written (its initial state, as of
#          the server time); past the deadline: server time, "late", and nothing changed
#
# Events are applied one after the other, as transition would apply them; the state is
# written (and published) once, after the last. "hint" is not one of transition's
# events: a process whose own breaker tripped says so, and when a quorum of processes
# have live hints, the shared breaker opens for everyone (as _circuit._open opens it).
# A script that reaches the server after its caller stopped waiting (a server frozen
# and thawed, a long network stall) changes nothing: the caller has already applied
# its events locally, and applying them again later would count them twice.
TRANSITION = r"""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local key = KEYS[1]
local key_ttl, channel, name = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local kind, ticket, duration  -- of the event being applied
local BUCKETS = 10

local function opt(i)
  if ARGV[i] == '' then return nil end
  return tonumber(ARGV[i])
end
local R = {
  failure_threshold = opt(4), failure_rate = opt(5), window_size = opt(6),
  window_duration = opt(7), minimum_calls = opt(8), slow_call_duration = opt(9),
  slow_call_rate = opt(10), reset_timeout = opt(11), reset_backoff = opt(12),
  max_reset_timeout = opt(13), half_open_max_calls = opt(14), success_threshold = opt(15),
  probe_timeout = opt(16),
}
local windowed = R.failure_rate ~= nil or R.slow_call_duration ~= nil

local function num(x)
  if x == math.huge then return 'inf' end
  if x == -math.huge then return '-inf' end
  return string.format('%.17g', x)
end

local FIELDS = {'mode', 'gen', 'failures', 'successes', 'opened_at', 'open_until', 'trips',
                'probes', 'window', 'buckets', 'version'}
local DEFAULTS = {'closed', '0', '0', '0', '0', '0', '0', '', '', '', '0'}
local raw = redis.call('HMGET', key, unpack(FIELDS))
local old = {}
for i = 1, 11 do old[i] = raw[i] or DEFAULTS[i] end

local t = redis.call('TIME')
local micros = tonumber(t[1]) * 1000000 + tonumber(t[2])
local server_now = micros / 1000000
local now = server_now
local deadline = tonumber(ARGV[20])
if deadline ~= nil and micros > deadline then return {num(server_now), 'late'} end

local function parse_probes(s)
  local out = {}
  for a, b in string.gmatch(s, '([^:,]+):([^:,]+)') do
    out[#out + 1] = {tonumber(a), tonumber(b)}
  end
  return out
end
local function parse_buckets(s)
  local out = {}
  for a, b, c, d in string.gmatch(s, '([^:,]+):([^:,]+):([^:,]+):([^:,]+)') do
    out[#out + 1] = {tonumber(a), tonumber(b), tonumber(c), tonumber(d)}
  end
  return out
end

local S = {
  mode = old[1], gen = tonumber(old[2]), failures = tonumber(old[3]),
  successes = tonumber(old[4]), opened_at = tonumber(old[5]), open_until = tonumber(old[6]),
  trips = tonumber(old[7]), probes = parse_probes(old[8]), window = old[9],
  buckets = parse_buckets(old[10]),
}

local function copy(s)
  local c = {}
  for k, v in pairs(s) do c[k] = v end
  return c
end
local function initial(gen)
  return {mode = 'closed', gen = gen, failures = 0, successes = 0, opened_at = 0,
          open_until = 0, trips = 0, probes = {}, window = '', buckets = {}}
end

-- Python's float floor division (CPython's float_floor_div), not floor(a / b).
local function floordiv(vx, wx)
  local mod = math.fmod(vx, wx)
  local div = (vx - mod) / wx
  if mod ~= 0 and ((wx < 0) ~= (mod < 0)) then div = div - 1 end
  if div == 0 then return 0 end
  local fd = math.floor(div)
  if div - fd > 0.5 then fd = fd + 1 end
  return fd
end

local function count(s, ch)
  local _, n = string.gsub(s, ch, '')
  return n
end

local function counts(window, buckets, now)
  if R.window_duration == nil then
    return #window, count(window, 'f') + count(window, 'F'), count(window, 'S') + count(window, 'F')
  end
  local oldest = floordiv(now * BUCKETS, R.window_duration) - BUCKETS
  local calls, fails, slows = 0, 0, 0
  for _, b in ipairs(buckets) do
    if b[1] > oldest then
      calls = calls + b[2]
      fails = fails + b[3]
      slows = slows + b[4]
    end
  end
  return calls, fails, slows
end

local function rate_trips(window, buckets, now)
  local calls, fails, slows = counts(window, buckets, now)
  if calls < R.minimum_calls then return false end
  if R.failure_rate ~= nil and fails / calls >= R.failure_rate then return true end
  return R.slow_call_rate ~= nil and slows / calls >= R.slow_call_rate
end

local function add_to_buckets(buckets, now, window, failed, slow)
  local index = floordiv(now * BUCKETS, window)
  local kept = {}
  for _, b in ipairs(buckets) do
    if b[1] > index - BUCKETS then kept[#kept + 1] = {b[1], b[2], b[3], b[4]} end
  end
  local add_f, add_s = 0, 0
  if failed then add_f = 1 end
  if slow then add_s = 1 end
  local last = kept[#kept]
  if last ~= nil and last[1] == index then
    kept[#kept] = {index, last[2] + 1, last[3] + add_f, last[4] + add_s}
  else
    kept[#kept + 1] = {index, 1, add_f, add_s}
  end
  return kept
end

local function open(s, now)
  local trips = s.trips + 1
  local wait = R.reset_timeout
  if R.reset_backoff ~= 1.0 and trips > 1 then wait = wait * R.reset_backoff ^ (trips - 1) end
  local cap = R.max_reset_timeout
  if cap ~= nil and wait > cap then wait = cap end
  return {mode = 'open', gen = s.gen + 1, failures = s.failures, successes = 0, opened_at = now,
          open_until = now + wait, trips = trips, probes = {}, window = '', buckets = {}}
end

local function record(s, failed, now)
  local failures = 0
  if failed then failures = s.failures + 1 end
  local window, buckets = s.window, s.buckets
  local trip = R.failure_rate == nil and failures >= R.failure_threshold
  if windowed then
    local slow = R.slow_call_duration ~= nil and duration >= R.slow_call_duration
    if R.window_duration == nil then
      local mark
      if failed then
        if slow then mark = 'F' else mark = 'f' end
      else
        if slow then mark = 'S' else mark = 's' end
      end
      window = string.sub(window .. mark, -(R.window_size or 1))
    else
      buckets = add_to_buckets(buckets, now, R.window_duration, failed, slow)
    end
    if not trip then trip = rate_trips(window, buckets, now) end
  end
  local n = {mode = 'closed', gen = s.gen, failures = failures, successes = 0,
             opened_at = s.opened_at, open_until = s.open_until, trips = s.trips, probes = {},
             window = window, buckets = buckets}
  if trip then n = open(n, now) end
  return n
end

local function acquire(s, now)
  local mode = s.mode
  if mode == 'closed' or mode == 'disabled' then return s, 'allow', s.gen, nil end
  if mode == 'forced_open' and s.open_until == 0 then return s, 'reject', 0, nil end
  if mode == 'open' or mode == 'forced_open' then
    if now < s.open_until then return s, 'reject', 0, s.open_until - now end
    s = copy(s)
    s.mode, s.gen, s.successes, s.probes = 'half_open', s.gen + 1, 0, {}
  end
  local live = {}
  for _, p in ipairs(s.probes) do
    if p[2] > now then live[#live + 1] = p end
  end
  local n = copy(s)
  n.probes = live
  if #live >= R.half_open_max_calls then
    local first = live[1][2]
    for _, p in ipairs(live) do
      if p[2] < first then first = p[2] end
    end
    return n, 'reject', 0, first - now
  end
  local tk = s.gen + 1
  live[#live + 1] = {tk, now + R.probe_timeout}
  n.gen = tk
  return n, 'probe', tk, nil
end

local function settle(s, now)
  local leased = false
  for _, p in ipairs(s.probes) do
    if p[1] == ticket and p[2] > now then leased = true end
  end
  if not leased then return s end
  local probes = {}
  for _, p in ipairs(s.probes) do
    if p[1] ~= ticket then probes[#probes + 1] = p end
  end
  local slow = R.slow_call_duration ~= nil and duration >= R.slow_call_duration
  if kind == 'failure' or (kind == 'success' and slow) then
    local n = copy(s)
    n.failures = s.failures + 1
    return open(n, now)
  end
  local n = copy(s)
  n.probes = probes
  if kind == 'release' then return n end
  n.successes = s.successes + 1
  if n.successes >= R.success_threshold then return initial(s.gen + 1) end
  return n
end

local function encode(n)
  local probes, buckets = {}, {}
  for i, p in ipairs(n.probes) do probes[i] = num(p[1]) .. ':' .. num(p[2]) end
  for i, b in ipairs(n.buckets) do
    buckets[i] = num(b[1]) .. ':' .. num(b[2]) .. ':' .. num(b[3]) .. ':' .. num(b[4])
  end
  return {n.mode, num(n.gen), num(n.failures), num(n.successes), num(n.opened_at),
          num(n.open_until), num(n.trips), table.concat(probes, ','), n.window,
          table.concat(buckets, ',')}
end

local function apply(s)
  local verdict, out_ticket, retry_after = 'done', 0, nil
  local n = s
  if kind == 'acquire' then
    n, verdict, out_ticket, retry_after = acquire(s, now)
  elseif kind == 'success' or kind == 'failure' or kind == 'release' then
    if s.mode == 'closed' then
      if kind ~= 'release' and ticket == s.gen then n = record(s, kind == 'failure', now) end
    elseif s.mode == 'half_open' then
      n = settle(s, now)
    end
  elseif kind == 'hint' then
    local hints, quorum = KEYS[2], tonumber(ARGV[18])
    local until_ = now + tonumber(ARGV[19])
    redis.call('ZREMRANGEBYSCORE', hints, '-inf', num(now))
    redis.call('ZADD', hints, num(until_), ARGV[17])
    local hint_ms = math.floor(math.min(until_ - now, 1e12) * 1000) + key_ttl
    redis.call('PEXPIRE', hints, string.format('%d', hint_ms))
    if s.mode == 'closed' and redis.call('ZCARD', hints) >= quorum then
      n = open(s, now)
      redis.call('DEL', hints)
    end
  elseif kind == 'reset' then
    n = initial(s.gen + 1)
    if KEYS[2] then redis.call('DEL', KEYS[2]) end
  elseif kind == 'force_open' then
    n = initial(s.gen + 1)
    n.mode, n.failures, n.opened_at = 'forced_open', s.failures, now
    if duration > 0 then n.open_until = now + duration end
  elseif kind == 'half_open' then
    n = initial(s.gen + 1)
    n.mode, n.failures, n.opened_at, n.open_until, n.trips =
      'half_open', s.failures, s.opened_at, now, s.trips
  elseif kind == 'disable' then
    n = initial(s.gen + 1)
    n.mode = 'disabled'
  else
    error('unknown breaker event ' .. tostring(kind))
  end
  return n, verdict, out_ticket, retry_after
end

local out = {num(server_now), ''}
local N = S
local enc = old
local i = 21
while ARGV[i] ~= nil do
  kind, ticket, duration = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if ARGV[i + 3] == '' then now = server_now else now = tonumber(ARGV[i + 3]) end
  local prior = N.mode
  local verdict, out_ticket, retry_after
  N, verdict, out_ticket, retry_after = apply(N)
  local ra = ''
  if retry_after ~= nil then ra = num(retry_after) end
  enc = encode(N)
  out[#out + 1] = verdict
  out[#out + 1] = num(out_ticket)
  out[#out + 1] = ra
  out[#out + 1] = prior
  for j = 1, 10 do out[#out + 1] = enc[j] end
  i = i + 4
end

-- Only a change of state is announced (mode, generation, open times, probes): counts
-- (failures, successes, window, buckets) travel in the replies of the scripts that
-- changed them.
local changed, notify = false, false
for i = 1, 10 do
  if enc[i] ~= old[i] then
    changed = true
    if i ~= 3 and i ~= 4 and i < 9 then notify = true end
  end
end
local version = tonumber(old[11])
if changed then
  if micros > version then version = micros else version = version + 1 end
  redis.call('HSET', key, 'mode', enc[1], 'gen', enc[2], 'failures', enc[3],
             'successes', enc[4], 'opened_at', enc[5], 'open_until', enc[6], 'trips', enc[7],
             'probes', enc[8], 'window', enc[9], 'buckets', enc[10], 'version', num(version))
  -- Idle breakers expire; an open one not before it would have reopened, a half-open
  -- one not before its last probe's lease ends, one counting in a time window not
  -- before that window has passed; manual modes (force_open, disable) are an
  -- operator's decision and never expire (a breaker forced open for a while expires
  -- like an open one).
  local ms = key_ttl
  if R.window_duration ~= nil and #N.buckets > 0 then ms = ms + R.window_duration * 1000 end
  if (N.mode == 'open' or N.mode == 'forced_open') and N.open_until > now then
    ms = ms + (N.open_until - now) * 1000
  end
  if N.mode == 'half_open' then
    for _, p in ipairs(N.probes) do
      if p[2] > now and key_ttl + (p[2] - now) * 1000 > ms then
        ms = key_ttl + (p[2] - now) * 1000
      end
    end
  end
  if (N.mode == 'forced_open' and N.open_until == 0) or N.mode == 'disabled' or ms > 1e15 then
    redis.call('PERSIST', key)
  else
    redis.call('PEXPIRE', key, string.format('%d', math.floor(ms)))
  end
  if notify and channel ~= '' then
    local message = 's|' .. num(version) .. '|' .. table.concat(enc, '|') .. '|' .. name
    redis.call('PUBLISH', channel, message)
  end
end

if not raw[11] and not changed then version = -micros end  -- never written
out[2] = num(version)
return out
"""

# KEYS[1] a key of this store's own; ARGV 1 who asks, 2 the channel. Runs a script that
# writes and publishes, as the transitions do: it fails when Redis is read-only, refuses
# scripts, or denies this user the store's keys or channel. Returns the server's TIME.
PROBE = r"""
redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000)
redis.call('PUBLISH', ARGV[2], 'p|')
return redis.call('TIME')
"""

# KEYS[1] the flag's key; ARGV 1 value ("" with ARGV[2] == "0": delete), 2 "1" to set,
# 3 channel, 4 the flag's name. Flags are operator state: they never expire.
SET_FLAG = r"""
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('DEL', KEYS[1])
end
redis.call('PUBLISH', ARGV[3], 'f|' .. ARGV[4])
return 1
"""

# KEYS[1] a retry budget's hash (fields "c<second>" calls, "r<second>" retries)
# ARGV    1 calls to add, 2 retries to add, 3 window in seconds
# returns the calls and the retries of the whole fleet in the window
BUDGET = r"""
local key = KEYS[1]
local calls, retries, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local second = tonumber(redis.call('TIME')[1])
if calls > 0 then redis.call('HINCRBY', key, 'c' .. second, calls) end
if retries > 0 then redis.call('HINCRBY', key, 'r' .. second, retries) end
local oldest = second - math.ceil(window) + 1
local total_calls, total_retries, stale = 0, 0, {}
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  local field, value = all[i], tonumber(all[i + 1])
  if tonumber(string.sub(field, 2)) < oldest then
    stale[#stale + 1] = field
  elseif string.sub(field, 1, 1) == 'c' then
    total_calls = total_calls + value
  else
    total_retries = total_retries + value
  end
end
if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
redis.call('PEXPIRE', key, string.format('%d', math.ceil(window * 1000) + 1000))
return {total_calls, total_retries}
"""
