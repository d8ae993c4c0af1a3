"""Redis store scenarios: Redis commands per decorated call, healthy-path latency, and
the targets of a fleet of processes on one server and on a Redis Cluster.

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
The fleet scenario starts a 6-node cluster (3 masters, 3 replicas) with the tests'
fixture (tests/redis_cluster.py; needs redis-cli too) and the tests' worker processes.
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
    REPO_ROOT,
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
        chosen: Any = resilient.stores.MemoryStore()
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
    breaker = resilient.CircuitBreaker(
        "bench-amemory", config, store=resilient.stores.MemoryStore()
    )
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
            "resilient also re-reads, once per cache_ttl (1 s) per process, the breakers "
            "used through the store since the last pass and those not closed (one "
            "pipeline: HMGET per breaker + TIME on one server)",
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


# --------------------------------------------------------------------------
# 3. fleet targets, on one server and on a Redis Cluster (3 masters, 3 replicas)

FLEET = 16
_cluster: Any = None


def _tests_on_path() -> None:
    """The fixtures of tests/ (servers, cluster, the fleet's worker) are reused here."""
    import sys

    tests = str(REPO_ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)


def _start_cluster() -> Any:
    global _cluster
    if _cluster is None:
        _tests_on_path()
        import redis_cluster

        why = redis_cluster.missing()
        if why is not None:
            raise ImportError(why)
        _cluster = redis_cluster.RedisCluster().start()
        atexit.register(_stop_cluster)
    return _cluster


def _stop_cluster() -> None:
    for store in _stores:
        store.close()
    if _cluster is not None:
        _cluster.stop()


class _Single:
    """The run's single server, shaped like the test cluster (url, client, freeze)."""

    def __init__(self) -> None:
        self.url = server_url()

    def client(self) -> Any:
        return _client()

    def masters(self) -> list[Any]:
        return [_client()]

    def freeze(self) -> Callable[[], None]:
        assert _server is not None
        pid = _server[0].pid
        os.kill(pid, signal.SIGSTOP)
        return lambda: os.kill(pid, signal.SIGCONT)


class _Cluster:
    def __init__(self) -> None:
        self.cluster = _start_cluster()
        self.url = self.cluster.url

    def client(self) -> Any:
        return self.cluster.client()

    def masters(self) -> list[Any]:
        import redis

        return [redis.Redis(host="127.0.0.1", port=p) for p in self.cluster.masters()]

    def freeze_for(self, key: str) -> Callable[[], None]:
        port = self.cluster.master_of(key)
        self.cluster.freeze(port)

        def thaw() -> None:
            self.cluster.thaw(port)
            self.cluster.wait_healthy()

        return thaw


def _calls(nodes: list[Any], command: str) -> int:
    return sum(commandstats(node).get(command, 0) for node in nodes)


def _store(url: str, **options: Any) -> Any:
    from resilient.stores.redis import RedisStore

    store = RedisStore(url, prefix=options.pop("prefix", None) or _prefix(), **options)
    _stores.append(store)
    return store


def _reached(backend: Any) -> int:
    """Calls that reached a dead service before all 16 processes rejected (threshold 5)."""
    _tests_on_path()
    from redis_fleet import run_workers

    results = run_workers(backend, _prefix(), "failing", "1", "40", processes=FLEET)
    return sum(int(r["reached"]) for r in results)


def _probes(backend: Any) -> int:
    """Probes let through in one half-open round by 16 processes x 20 tasks (limit 3)."""
    _tests_on_path()
    from redis_fleet import run_workers

    import resilient

    prefix = _prefix()
    config = resilient.BreakerConfig(
        failure_threshold=1,
        reset_timeout=0.2,
        half_open_max_calls=3,
        success_threshold=3,
        probe_timeout=30,
    )
    store = _store(backend.url, prefix=prefix)
    breaker = resilient.CircuitBreaker("herd", config, store=store)
    _swallow(breaker(_boom))()
    entered: list[int] = []

    def release(client: Any) -> None:
        deadline = time.monotonic() + 60
        while client.llen(f"{prefix}:settled") < FLEET and time.monotonic() < deadline:
            time.sleep(0.01)
        entered.append(int(client.llen(f"{prefix}:entered")))
        client.set(f"{prefix}:release", 1)

    time.sleep(0.25)
    run_workers(backend, prefix, "herd", "20", "0.5", between=release, processes=FLEET)
    return entered[0]


def _healthy_trips(backend: Any, calls: int = 5000) -> float:
    import resilient

    store = _store(backend.url)
    breaker = resilient.CircuitBreaker("svc", resilient.BreakerConfig(), store=store)
    store.listening.wait(5)
    ok = breaker(plain)
    ok()
    nodes = backend.masters()
    before = _calls(nodes, "evalsha")
    for _ in range(calls):
        ok()
    return (_calls(nodes, "evalsha") - before) / calls


def _rejected_trips(backend: Any, calls: int = 2000) -> float:
    """EVALSHA per call rejected here while another process holds the only probe."""
    import resilient
    from resilient.testing import FakeClock, use_clock

    config = resilient.BreakerConfig(failure_threshold=1, reset_timeout=30.0)
    prefix = _prefix()
    here_store = _store(backend.url, prefix=prefix, clock="local")
    there_store = _store(backend.url, prefix=prefix, clock="local")
    nodes = backend.masters()
    clock = FakeClock()
    spent: list[float] = []
    with use_clock(clock):
        here = resilient.CircuitBreaker("svc", config, store=here_store)
        there = resilient.CircuitBreaker("svc", config, store=there_store)
        _swallow(here(_boom))()
        _wait(lambda: there_store.get("svc").mode.value == "open")
        clock.advance(31.0)

        def probe() -> int:
            _wait(lambda: there_store.get("svc").mode.value == "half_open")
            rejected = _swallow(there(plain))
            before = _calls(nodes, "evalsha")
            for _ in range(calls):
                rejected()
            spent.append((_calls(nodes, "evalsha") - before) / calls)
            return 1

        here(probe)()
    return spent[0]


def _wait(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.002)


def _frozen_stall(backend: Any, seconds: float = 0.6) -> float:
    """The longest a failing call waited while the master of its slot was frozen."""
    import resilient

    store = _store(backend.url)
    breaker = resilient.CircuitBreaker(
        "svc", resilient.BreakerConfig(failure_threshold=10**9), store=store
    )
    store.listening.wait(5)
    failing = _swallow(breaker(_boom))
    failing()
    key = store.key("svc")
    thaw = backend.freeze() if isinstance(backend, _Single) else backend.freeze_for(key)
    worst = 0.0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            failing()
            worst = max(worst, time.perf_counter() - started)
    finally:
        thaw()
    _wait(lambda: store.reachable, 10)
    return worst


def _ten_thousand(url: str | None) -> tuple[float, float, float]:
    """With 10,000 breakers held: the process's CPU share while idle (the listener's),
    the worst healthy call among calls spread over all of them (``url=None``: a
    MemoryStore, for reference: what the interpreter alone costs), and how long a
    breaker opened by another process took to reach this one (pub/sub staleness)."""
    import resilient

    prefix = _prefix()
    store: Any = resilient.stores.MemoryStore() if url is None else _store(url, prefix=prefix)
    config = resilient.BreakerConfig()
    calls = [resilient.CircuitBreaker(f"b{i}", config, store=store)(plain) for i in range(10_000)]
    if url is not None:
        store.listening.wait(30)
        time.sleep(2.5)  # past the first periodic passes, which read what was just made
    cpu, wall = time.process_time(), time.monotonic()
    time.sleep(2.0)
    share = (time.process_time() - cpu) / (time.monotonic() - wall)
    worst = 0.0
    deadline = time.monotonic() + 2.0
    i = 0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        calls[i % 10_000]()
        worst = max(worst, time.perf_counter() - started)
        i += 1
    stale = float("nan")
    if url is not None:
        other = _store(url, prefix=prefix)
        opener = resilient.CircuitBreaker(
            "b5000", resilient.BreakerConfig(failure_threshold=1), store=other
        )
        started = time.perf_counter()
        _swallow(opener(_boom))()
        _wait(lambda: store.get("b5000").mode.value == "open")
        stale = time.perf_counter() - started
        store.close()
    return share, worst, stale


def _failover_window(backend: _Cluster) -> tuple[float, float]:
    """kill -9 of the master of an open breaker's slot: seconds until a replica serves
    the slot, and until the store is back on Redis (the local-only window)."""
    import resilient

    store = _store(backend.url, retry_interval=1.0)
    breaker = resilient.CircuitBreaker(
        "svc", resilient.BreakerConfig(failure_threshold=10**9), store=store
    )
    failing = _swallow(breaker(_boom))  # every failure is a script call while Redis is up
    failing()
    key = store.key("svc")
    cluster = backend.cluster
    port = cluster.master_of(key)
    cluster.ask(port, "WAIT", "1", "2000")
    killed = time.monotonic()
    cluster.kill(port)
    failover = back = float("nan")
    while time.monotonic() - killed < 20:
        failing()
        if failover != failover and cluster.serves(key):
            failover = time.monotonic() - killed
        if store.reachable and failover == failover:
            back = time.monotonic() - killed
            break
        time.sleep(0.01)
    return failover, back


class FleetScenario(Scenario):
    """The targets of a fleet sharing breakers, on one server and on a cluster."""

    name = "redis: fleet targets (single node and cluster)"

    def run(self, opts: Options) -> ScenarioResult:
        rows: list[Row] = []
        notes = [
            f"{FLEET} processes; reached: calls that reached a dead service before every "
            "process rejected (threshold 5; target <= 5 + processes in flight)",
            "probes: let through in one half-open round by 16 processes x 20 tasks "
            "(half_open_max_calls=3; store timeout 0.5 s so that 16 busy processes on a "
            "small machine cause no outage of their own)",
            "round trips per healthy call and per call rejected while another process "
            "holds the probe: EVALSHA counted by INFO commandstats on every master",
            "stall: longest failing call while the (master) server was frozen (SIGSTOP) "
            "for 0.6 s (store timeout 50 ms)",
            "10k: CPU share of the process idle with 10,000 breakers, worst healthy call",
            "failover: kill -9 of the master of an open breaker's slot "
            "(--cluster-node-timeout 2000, retry_interval 1 s)",
        ]
        ok = True
        for label, make in (("single node", _Single), ("cluster", _Cluster)):
            try:
                backend: Any = make()
            except ImportError as error:
                rows.append(Row(f"resilient {label}", "ours", status=f"not installed: {error}"))
                continue
            reached = _reached(backend)
            probes = _probes(backend)
            healthy = _healthy_trips(backend)
            rejected = _rejected_trips(backend)
            stall = _frozen_stall(backend)
            share, worst, stale = _ten_thousand(backend.url)
            _, reference, _ = _ten_thousand(None)
            figures = [
                f"reached {reached}",
                f"probes {probes}",
                f"healthy {healthy:.4f} rt/call",
                f"rejected-during-probe {rejected:.4f} rt/call",
                f"stall {stall * 1000:.1f} ms",
                f"10k idle CPU {share * 100:.1f} %, worst healthy {worst * 1000:.2f} ms "
                f"(MemoryStore: {reference * 1000:.2f} ms), a change reaches it in "
                f"{stale * 1000:.1f} ms",
            ]
            ok = ok and reached <= 5 + FLEET and probes == 3 and healthy <= 0.01
            ok = ok and rejected <= 0.01 and stall <= 0.055
            if isinstance(backend, _Cluster):
                failover, back = _failover_window(backend)
                figures.append(f"failover {failover:.2f} s, back on Redis {back:.2f} s")
            rows.append(Row(f"resilient {label}", "ours", status="; ".join(figures)))
        text = "reached <= 21, probes == 3, <= 0.01 rt/call, stall <= 55 ms"
        return ScenarioResult(self.name, rows, TargetResult(text, "PASS" if ok else "FAIL"), notes)


register(FleetScenario())
