"""A real ``redis-server`` on a free loopback port, for the Redis store tests.

``redis_server`` is one server shared by the whole session (tests keep apart by key
prefix); ``own_redis_server`` is a fresh one a test may kill and restart;
``replica_redis_server`` is a read-only replica (of a master that is not there: it serves
reads and refuses every write until ``REPLICAOF NO ONE``). ``acl_url`` adds a user with
given ACL rules and gives the URL that logs in as it. All run with
``--save '' --appendonly no`` (nothing on disk, so a restart loses every key, as a crashed
cache would) and are stopped by their pid. Without ``redis-server`` on the PATH or the
``redis`` package, the tests that need them skip and say why.

Run as a script, this module is the worker the multi-process tests start (see ``main``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
START_TIMEOUT = 10.0
FLEET_THRESHOLD = 5


WAIT = 5.0  # seconds a test waits for something that should take milliseconds


def eventually(check: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Poll ``check`` until it holds (real time: a server is on the other end)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def fail(b: Any, times: int = 1) -> None:
    """Make ``times`` failing calls through breaker ``b`` (each fails or is rejected)."""
    from strategies import BoomError

    from resilient import CircuitOpenError

    for _ in range(times):
        with pytest.raises((BoomError, CircuitOpenError)):
            b.call(boom)


def boom() -> None:
    """A call that fails."""
    from strategies import BoomError

    raise BoomError


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def missing() -> str | None:
    """Why the Redis tests cannot run here, or ``None`` when they can."""
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis package is not installed (pip install 'resilient-toolkit[redis]')"
    if shutil.which("redis-server") is None:
        return (
            "redis-server is not on the PATH (apt-get install redis-server, "
            "which .ci/run does; brew install redis on macOS)"
        )
    return None


class RedisServer:
    """One ``redis-server`` process; ``kill`` and ``start`` again keep its port."""

    def __init__(self, *extra: str) -> None:
        self.port = free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> RedisServer:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            *self.extra,
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=HERE
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.005)
        return self

    def ping(self) -> bool:
        """Whether the server answers (a refusal to a client without a password counts)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server by its pid (SIGKILL: a crash, nothing flushed)."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            os.kill(process.pid, sig)
        except ProcessLookupError:
            pass
        process.wait(START_TIMEOUT)

    def client(self, **options: Any) -> object:
        import redis

        return redis.Redis.from_url(self.url, **options)


_shared: RedisServer | None = None


def shared_server() -> RedisServer:
    """The session's server, started on first use (skips the test when Redis is absent)."""
    global _shared
    why = missing()
    if why is not None:
        pytest.skip(why)
    if _shared is None or _shared.process is None or _shared.process.poll() is not None:
        _shared = RedisServer().start()
        atexit.register(_shared.kill)
    return _shared


def unique_prefix() -> str:
    """A key prefix no other test uses (tests share one server)."""
    return f"t{uuid.uuid4().hex[:12]}"


def acl_url(server: RedisServer, *rules: str) -> str:
    """The URL of a new user of ``server`` with the ACL ``rules`` (``on`` and a password
    are added), e.g. ``acl_url(server, "~*", "&*", "+@all", "-evalsha")``."""
    user = f"u{uuid.uuid4().hex[:8]}"
    client: Any = server.client()
    client.execute_command("ACL", "SETUSER", user, "on", ">pw", *rules)
    client.close()
    return f"redis://{user}:pw@127.0.0.1:{server.port}/0"


def command_calls(client: Any) -> dict[str, int]:
    """Calls per command so far on the server of ``client`` (``INFO commandstats``)."""
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


# --- the worker of the multi-process tests ----------------------------------------------


def spawn(*args: str) -> subprocess.Popen[str]:
    """Start ``python tests/redis_server.py <args>``; it prints one JSON line."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def client_of(url: str) -> Any:
    """A plain client of ``url`` (a cluster client for ``redis+cluster://``)."""
    import redis
    import redis.cluster

    if url.startswith("redis+cluster://"):
        return redis.cluster.RedisCluster.from_url(url.replace("+cluster", "", 1))
    return redis.Redis.from_url(url)


def _rendezvous(client: Any, prefix: str) -> None:
    """Say this worker is ready, then wait for the test to release every worker at once."""
    client.rpush(f"{prefix}:ready", os.getpid())
    if client.blpop([f"{prefix}:go"], timeout=30) is None:
        raise SystemExit("never released")


def worker_failing(
    url: str, prefix: str, threads: str, calls: str, timeout: str = "0.05"
) -> dict[str, Any]:
    """``threads`` threads make ``calls`` calls each to a function that always fails
    (``timeout``: the store's)."""
    import threading

    from resilient import BreakerConfig, CircuitBreaker, CircuitOpenError
    from resilient.stores.redis import RedisStore

    store = RedisStore(url, prefix=prefix, timeout=float(timeout))
    config = BreakerConfig(failure_threshold=FLEET_THRESHOLD, reset_timeout=3600)
    breaker = CircuitBreaker("fleet", config, store=store)
    store.listening.wait(10)
    lock = threading.Lock()
    tally = {"reached": 0, "rejected": 0, "failed": 0, "other": 0}

    def failing() -> None:
        with lock:
            tally["reached"] += 1
        time.sleep(0.001)
        raise ValueError("down")

    def run() -> None:
        for _ in range(int(calls)):
            try:
                breaker.call(failing)
            except ValueError:
                key = "failed"
            except CircuitOpenError:
                key = "rejected"
            except BaseException:
                key = "other"
            with lock:
                tally[key] += 1

    _rendezvous(client_of(url), prefix)
    pool = [threading.Thread(target=run) for _ in range(int(threads))]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    store.close()
    return tally


def worker_herd(url: str, prefix: str, callers: str, timeout: str) -> dict[str, Any]:
    """``callers`` concurrent tasks call a half-open breaker; probes wait for release."""
    import asyncio

    from resilient import BreakerConfig, CircuitBreaker, CircuitOpenError
    from resilient.stores.redis import AsyncRedisStore

    client = client_of(url)
    store = AsyncRedisStore(url, prefix=prefix, timeout=float(timeout))
    config = BreakerConfig(
        failure_threshold=1,
        reset_timeout=0.2,
        half_open_max_calls=3,
        success_threshold=3,
        probe_timeout=30,
    )
    breaker = CircuitBreaker("herd", config, store=store)
    store.listening.wait(10)
    tally = {"reached": 0, "ok": 0, "rejected": 0, "other": 0}

    async def probe() -> str:
        tally["reached"] += 1
        client.rpush(f"{prefix}:entered", os.getpid())
        while not client.exists(f"{prefix}:release"):  # noqa: ASYNC110 - another process sets it
            await asyncio.sleep(0.01)
        return "ok"

    async def call() -> None:
        try:
            await breaker.acall(probe)
        except CircuitOpenError:
            tally["rejected"] += 1
            return
        except BaseException:
            tally["other"] += 1
            return
        tally["ok"] += 1

    async def main() -> None:
        await store.aconnect()
        tasks = [asyncio.create_task(call()) for _ in range(int(callers))]
        while tally["reached"] + tally["rejected"] + tally["other"] < int(callers):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        client.rpush(f"{prefix}:settled", os.getpid())
        await asyncio.gather(*tasks)
        tally["reachable"] = store.reachable
        await store.aclose()

    _rendezvous(client, prefix)
    asyncio.run(main())
    return tally


def main(argv: list[str]) -> None:
    import json

    result = globals()["worker_" + argv[0]](*argv[1:])
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])


@contextmanager
def redis_stores(server: RedisServer, *, asynchronous: bool = False) -> Iterator[Any]:
    """A factory of fresh stores on ``server`` (each with its own prefix, on the breaker's
    clock); every store it made is closed at the end. Making a store closes the previous
    one, so a hypothesis run never holds more than one listener thread."""
    from resilient.stores.redis import AsyncRedisStore, RedisStore

    kind = AsyncRedisStore if asynchronous else RedisStore
    made: list[Any] = []

    def factory() -> Any:
        if made:
            made[-1].close()
        store = kind(server.url, prefix=unique_prefix(), clock="local")
        made.append(store)
        return store

    try:
        yield factory
    finally:
        for store in made:
            store.close()
