"""Redis store scenarios: Redis commands per decorated call, and healthy-path latency.

(Not ``redis.py``: benchmarks/ is first on ``sys.path``, so that name would hide the
redis package.)

A ``redis-server`` is started on a free loopback port for the run (``--save ''
--appendonly no``) and killed by its pid at exit; without ``redis-server`` on the PATH
or the ``redis`` package the rows say so. Commands are counted from ``INFO
commandstats`` deltas, which count the commands a Lua script runs as well as the
script call itself: "commands" is everything Redis executed, "round trips" what the
client sent (for resilient, the EVALSHA calls; pybreaker sends plain commands).
pybreaker's ``CircuitRedisStorage`` does the same work beside it: a healthy call, a
failing call on a breaker that stays closed, and one successful half-open probe.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

from _harness import (
    Impl,
    Options,
    Row,
    Scenario,
    ScenarioResult,
    Target,
    TargetResult,
    TimedScenario,
    register,
)
from foundation import aplain, plain

Fn = Callable[[], Any]
_server: tuple[subprocess.Popen[bytes], str] | None = None
_stores: list[Any] = []  # closed before the server stops, so none reports an outage


def server_url() -> str:
    """The URL of the run's redis-server, started on first use (ImportError if absent)."""
    global _server
    if _server is None:
        import redis  # noqa: F401 - ImportError: "not installed"

        if shutil.which("redis-server") is None:
            raise ImportError("redis-server is not on the PATH")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        process = subprocess.Popen(
            [
                *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--loglevel", "warning"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        atexit.register(_kill, process)
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)
        _server = (process, url)
    return _server[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _kill(process: subprocess.Popen[bytes]) -> None:
    for store in _stores:
        store.close()
    try:
        os.kill(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait(5)


def _client() -> Any:
    import redis

    return redis.Redis.from_url(server_url())


def _prefix() -> str:
    return f"bench{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------
# 1. healthy-path latency: RedisStore against MemoryStore (and pybreaker's storage)


def _healthy_ours(store: str) -> Fn:
    import resilient

    config = resilient.BreakerConfig(failure_threshold=1_000_000)
    if store == "memory":
        chosen: Any = resilient.MemoryStore()
    else:
        from resilient.stores.redis import AsyncRedisStore, RedisStore

        kind = RedisStore if store == "redis" else AsyncRedisStore
        chosen = kind(server_url(), prefix=_prefix())
        _stores.append(chosen)
    breaker = resilient.CircuitBreaker(f"bench-{store}", config, store=chosen)
    return breaker(aplain if store == "aredis" or store == "amemory" else plain)


def _healthy_pybreaker() -> Fn:
    import pybreaker

    storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, _client(), _prefix())
    return pybreaker.CircuitBreaker(fail_max=1_000_000, state_storage=storage)(plain)  # type: ignore[no-any-return]


def _amemory() -> Fn:
    import resilient

    config = resilient.BreakerConfig(failure_threshold=1_000_000)
    breaker = resilient.CircuitBreaker("bench-amemory", config, store=resilient.MemoryStore())
    return breaker(aplain)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------
# 2. Redis commands per call


def commandstats(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def counted(client: Any, action: Fn) -> dict[str, int]:
    """The commands Redis ran during ``action()`` (the INFO call itself excluded)."""
    before = commandstats(client)
    action()
    after = commandstats(client)
    changed = {k: after[k] - before.get(k, 0) for k in after}
    changed["info"] -= 1
    return {k: v for k, v in changed.items() if v}


class BoomError(Exception):
    pass


def _boom() -> int:
    raise BoomError


def _ours(config: dict[str, Any]) -> tuple[Any, Fn, Fn]:
    """A resilient breaker on a RedisStore: ``(breaker, ok, failing)``."""
    import resilient
    from resilient.stores.redis import RedisStore

    store = RedisStore(server_url(), prefix=_prefix())
    _stores.append(store)
    breaker = resilient.CircuitBreaker("bench", resilient.BreakerConfig(**config), store=store)
    store.listening.wait(5)
    return breaker, breaker(plain), breaker(_boom)


def _pybreaker(fail_max: int, reset_timeout: float) -> tuple[Any, Fn, Fn]:
    import pybreaker

    storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, _client(), _prefix())
    breaker = pybreaker.CircuitBreaker(
        fail_max=fail_max, reset_timeout=reset_timeout, state_storage=storage
    )
    return breaker, breaker(plain), breaker(_boom)


def _swallow(fn: Fn) -> Fn:
    def call() -> None:
        try:
            fn()
        except Exception:
            pass

    return call


def _per_call(client: Any, fn: Fn, calls: int) -> dict[str, float]:
    found = counted(client, lambda: [fn() for _ in range(calls)])
    return {k: v / calls for k, v in found.items()}


def _probe_cost(client: Any, trip: Fn, probe: Fn, wait: float, probes: int) -> dict[str, float]:
    """Commands of one successful half-open probe call, averaged over ``probes``."""
    total: dict[str, int] = {}
    for _ in range(probes):
        trip()
        time.sleep(wait)
        for k, v in counted(client, probe).items():
            total[k] = total.get(k, 0) + v
    return {k: v / probes for k, v in total.items()}


class CommandsScenario(Scenario):
    """Commands per call for each phase, as rows whose last column holds the figures."""

    name = "redis: commands per call"

    def run(self, opts: Options) -> ScenarioResult:
        rows: list[Row] = []
        notes = [
            "healthy: a success on a closed breaker; failing: a failure on a breaker that "
            "stays closed; probe: one successful half-open call",
            "commands = all that Redis ran (INFO commandstats, script internals included);"
            " round trips = what the client sent",
            "resilient also re-reads its breakers once per cache_ttl (1 s) per process "
            "(one pipeline: HMGET per breaker + TIME), whatever the call rate",
        ]
        try:
            client = _client()
        except ImportError as error:
            rows.append(Row("resilient RedisStore", "ours", status=f"not installed: {error}"))
            return ScenarioResult(self.name, rows, TargetResult("no redis", "SKIP"), notes)
        calls = 2000 if opts.min_time < 0.05 else 20_000
        healthy: float | None = None
        for impl in ("resilient RedisStore", "pybreaker CircuitRedisStorage"):
            try:
                figures = self._measure(impl, client, calls)
            except ImportError:
                rows.append(Row(impl, "peer", status="not installed"))
                continue
            for phase, found in figures.items():
                total = sum(found.values())
                trips = found.get("evalsha", 0.0) if impl.startswith("resilient") else total
                rows.append(
                    Row(
                        f"{impl.split()[0]} {phase}",
                        "ours" if impl.startswith("resilient") else "peer",
                        status=f"{total:.4f} commands, {trips:.4f} round trips/call",
                    )
                )
                if impl.startswith("resilient") and phase == "healthy":
                    healthy = total
        if healthy is None:
            return ScenarioResult(self.name, rows, TargetResult("no figure", "FAIL"), notes)
        status = "PASS" if healthy <= 0.01 else "FAIL"
        text = f"<= 0.01 commands per healthy call: got {healthy:.4f}"
        return ScenarioResult(self.name, rows, TargetResult(text, status), notes)

    def _measure(self, impl: str, client: Any, calls: int) -> dict[str, dict[str, float]]:
        figures: dict[str, dict[str, float]] = {}
        if impl.startswith("resilient"):
            _, ok, _ = _ours({"failure_threshold": 1_000_000})
            _swallow(ok)()  # the first call after creation is not counted
            figures["healthy"] = _per_call(client, ok, calls)
            _, _, failing = _ours({"failure_threshold": 1_000_000})
            _swallow(failing)()  # loads the script once
            figures["failing"] = _per_call(client, _swallow(failing), calls // 10)
            probe_config = {"failure_threshold": 1, "reset_timeout": 0.001}
            _, ok, failing = _ours(probe_config)
            figures["probe"] = _probe_cost(client, _swallow(failing), ok, 0.002, 50)
        else:
            _, ok, _ = _pybreaker(1_000_000, 60)
            ok()
            figures["healthy"] = _per_call(client, ok, calls)
            _, _, failing = _pybreaker(1_000_000, 60)
            _swallow(failing)()
            figures["failing"] = _per_call(client, _swallow(failing), calls // 10)
            _, ok, failing = _pybreaker(1, 0.001)
            figures["probe"] = _probe_cost(client, _swallow(failing), ok, 0.002, 50)
        return figures


register(
    TimedScenario(
        "redis: healthy closed call",
        [
            Impl("bare", "bare", lambda: plain),
            Impl("resilient Memory", "reference", lambda: _healthy_ours("memory")),
            Impl("resilient Redis", "ours", lambda: _healthy_ours("redis")),
            Impl("pybreaker Redis", "peer", _healthy_pybreaker),
        ],
        Target("reference", 1.5),
        notes=["RedisStore reads a local cell kept fresh by pub/sub: no round trip"],
    ),
    TimedScenario(
        "redis: healthy closed call (async)",
        [
            Impl("bare", "bare", lambda: aplain),
            Impl("resilient Memory", "reference", _amemory),
            Impl("resilient AsyncRedis", "ours", lambda: _healthy_ours("aredis")),
        ],
        Target("reference", 1.5),
        is_async=True,
    ),
    CommandsScenario(),
)
