"""A real ``redis-server`` on a free loopback port, for the Redis store tests.

``redis_server`` is one server shared by the whole session (tests keep apart by key
prefix); ``own_redis_server`` is a fresh one a test may kill and restart;
``replica_redis_server`` is a read-only replica (of a master that is not there: it serves
reads and refuses every write until ``REPLICAOF NO ONE``). ``acl_url`` adds a user with
given ACL rules and gives the URL that logs in as it. All run with
``--save '' --appendonly no`` (nothing on disk, so a restart loses every key, as a crashed
cache would) and are stopped by their pid. Without ``redis-server`` on the PATH or the
``redis`` package, the tests that need them skip and say why.

The processes of a fleet (the multi-process tests' workers) are in ``redis_fleet``.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import pytest
from processes import die_with_parent

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


STOP_TIMEOUT = 30.0


def redis_process(port: int, *extra: str, cwd: str | Path = HERE) -> subprocess.Popen[bytes]:
    """``redis-server`` on loopback ``port``, nothing on disk (``extra``: more options)."""
    command = [
        "redis-server",
        "--port",
        str(port),
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
        *extra,
    ]
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        preexec_fn=die_with_parent,
    )


def ask(port: int, *command: str) -> str:
    """One command to the server on ``port``, as raw RESP text ("" when it does not answer)."""
    wire = f"*{len(command)}\r\n" + "".join(f"${len(c)}\r\n{c}\r\n" for c in command)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(wire.encode())
            chunks = b""
            while True:
                chunk = conn.recv(65536)
                chunks += chunk
                if not chunk or _complete(chunks):
                    break
            return chunks.decode(errors="replace")
    except OSError:
        return ""


def _complete(reply: bytes) -> bool:
    """Whether ``reply`` is one whole RESP reply (a bulk string read to its end)."""
    if not reply.endswith(b"\r\n"):
        return False
    if not reply.startswith(b"$"):
        return True
    header, _, body = reply.partition(b"\r\n")
    return len(body) >= int(header[1:]) + 2


def answers(port: int) -> bool:
    """Whether the server on ``port`` answers (a refusal to a client without a password
    counts)."""
    return ask(port, "PING").startswith(("+PONG", "-NOAUTH"))


def started(port: int, process: subprocess.Popen[bytes], deadline: float) -> bool:
    """Wait until the server on ``port`` answers; ``False`` if ``process`` ends or the
    monotonic ``deadline`` passes first."""
    while not answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``process`` by its pid, unless it has ended, and wait for it."""
    if process.poll() is None:
        try:
            os.kill(process.pid, sig)
        except ProcessLookupError:
            pass
    process.wait(STOP_TIMEOUT)


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
        self.process = redis_process(self.port, *self.extra)
        if not started(self.port, self.process, time.monotonic() + START_TIMEOUT):
            self.kill()
            pytest.fail(f"redis-server did not start on port {self.port}")
        return self

    def ping(self) -> bool:
        """Whether the server answers (a refusal to a client without a password counts)."""
        return answers(self.port)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server by its pid (SIGKILL: a crash, nothing flushed)."""
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, sig)

    def stop(self) -> None:
        self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, **options: Any) -> object:
        import redis

        return redis.Redis.from_url(self.url, **options)


class _Process(Protocol):
    def stop(self) -> None: ...

    def alive(self) -> bool: ...


P = TypeVar("P", bound=_Process)


class Shared(Generic[P]):
    """One server (or cluster) for the whole session: ``get()`` starts it with ``start``
    on first use, and again if it died; it skips the test when ``missing`` says why it
    cannot run."""

    def __init__(self, missing: Callable[[], str | None], start: Callable[[], P]) -> None:
        self._missing = missing
        self._start = start
        self._running: P | None = None

    def get(self) -> P:
        why = self._missing()
        if why is not None:
            pytest.skip(why)
        running = self._running
        if running is None or not running.alive():
            if running is not None:
                running.stop()
            running = self._running = self._start()
            atexit.register(running.stop)
        return running


def owned(missing: Callable[[], str | None], start: Callable[[], P]) -> Iterator[P]:
    """A fixture's body: a server (or cluster) of one test's own from ``start``, stopped
    at the end; skips the test when ``missing`` says why it cannot run."""
    why = missing()
    if why is not None:
        pytest.skip(why)
    running = start()
    try:
        yield running
    finally:
        running.stop()


_shared = Shared(missing, lambda: RedisServer().start())


def shared_server() -> RedisServer:
    """The session's server, started on first use (skips the test when Redis is absent)."""
    return _shared.get()


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


def stores_on(server_url: str) -> Iterator[Callable[..., Any]]:
    """A ``make`` fixture's body: ``make(kind=RedisStore, url=server_url, **options)``
    makes a store (``url``: a URL or a client); one prefix per test (every store of a
    test is one fleet); every store it made is closed at the end."""
    from resilient.stores.redis import RedisStore

    made: list[Any] = []
    prefix = unique_prefix()

    def factory(kind: Any = None, url: Any = None, **options: Any) -> Any:
        options.setdefault("prefix", prefix)
        store = (kind or RedisStore)(url or server_url, **options)
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()


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
