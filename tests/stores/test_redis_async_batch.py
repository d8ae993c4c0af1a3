"""AsyncRedisStore's batches of script calls: cancelled callers, errors, and closing."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from garbage import collect
from redis_server import RedisServer, missing, unique_prefix

from resilient import BreakerConfig, BreakerMode
from resilient._circuit.rules import Event, Kind, Verdict

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))
if missing() is None:
    from resilient.stores.redis import AsyncRedisStore

PROBES = BreakerConfig(
    failure_threshold=1, reset_timeout=1.0, half_open_max_calls=3, success_threshold=3,
    probe_timeout=60.0,
)  # fmt: skip


class Gate:
    """Holds the replies of the store's script calls until the test lets them through,
    and counts the calls that reached Redis."""

    def __init__(self, store: Any) -> None:
        self.sent = 0
        self.counted = asyncio.Event()
        self.open = asyncio.Event()
        self.open.set()
        run: Callable[..., Awaitable[list[Any]]] = store._arun

        async def held(cell: Any, args: list[str]) -> list[Any]:
            reply = await run(cell, args)  # Redis has run it: only the reply waits
            self.sent += 1
            self.counted.set()
            await self.open.wait()
            return reply

        store._arun = held

    async def reached(self, sent: int) -> None:
        """Wait until ``sent`` script calls have been run by Redis."""
        while self.sent < sent:
            self.counted.clear()
            await self.counted.wait()


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[Any]:
    """An AsyncRedisStore on the shared server, using this process's clock."""
    made = AsyncRedisStore(redis_server.url, prefix=unique_prefix(), timeout=5.0, clock="local")
    yield made
    await made.aclose()


async def opened(store: Any, now: float) -> None:
    """Open breaker "b" of ``store`` at ``now`` (its reset timeout has passed at now + 2)."""
    await store.aapply("b", Event(Kind.FAILURE), now, PROBES)
    assert store.get("b").mode is BreakerMode.OPEN


async def settled(store: Any) -> None:
    """Wait until no batch of ``store`` is in flight."""
    while store._sending:
        await asyncio.gather(*store._sending, return_exceptions=True)
        await asyncio.sleep(0)  # the tasks' done-callbacks take them out of the set


async def test_callers_cancelled_before_their_batch_goes_are_left_out(store: Any) -> None:
    """Events of callers cancelled while they wait for the call in flight are never sent:
    they take no probe permit and count no failure."""
    now = time.monotonic()
    await opened(store, now)
    gate = Gate(store)
    gate.open.clear()
    leader = asyncio.create_task(store.aapply("b", Event(Kind.ACQUIRE), now + 2, PROBES))
    await gate.reached(1)
    followers = [
        asyncio.create_task(store.aapply("b", Event(Kind.ACQUIRE), now + 2, PROBES))
        for _ in range(2)
    ]
    await asyncio.sleep(0)  # they join the next batch
    for follower in followers:
        follower.cancel()
    gate.open.set()
    assert (await leader)[1].verdict is Verdict.PROBE
    for follower in followers:
        with pytest.raises(asyncio.CancelledError):
            await follower
    await settled(store)
    assert gate.sent == 1
    assert len(store.get("b").probes) == 1
    assert (await store.aapply("b", Event(Kind.ACQUIRE), now + 2, PROBES))[1].verdict is (
        Verdict.PROBE
    )


async def test_cancelled_failures_are_not_counted(store: Any) -> None:
    """Failures reported by callers cancelled while they wait for the call in flight are
    not counted."""
    config = BreakerConfig(failure_threshold=1000)
    now = time.monotonic()
    gate = Gate(store)
    gate.open.clear()
    leader = asyncio.create_task(store.aapply("b", Event(Kind.FAILURE), now, config))
    await gate.reached(1)
    followers = [
        asyncio.create_task(store.aapply("b", Event(Kind.FAILURE), now, config)) for _ in range(3)
    ]
    await asyncio.sleep(0)
    for follower in followers:
        follower.cancel()
    gate.open.set()
    await leader
    await asyncio.gather(*followers, return_exceptions=True)
    await settled(store)
    assert store.get("b").failures == 1


async def test_a_probe_granted_to_a_caller_cancelled_meanwhile_is_given_back(
    store: Any,
) -> None:
    """A probe permit granted by Redis to a caller cancelled while the reply was on its way
    (the call's own caller, or one waiting in its batch) is released: the next callers
    probe at once instead of waiting ``probe_timeout``."""
    now = time.monotonic()
    await opened(store, now)
    gate = Gate(store)
    gate.open.clear()
    leader = asyncio.create_task(store.aapply("b", Event(Kind.ACQUIRE), now + 2, PROBES))
    await gate.reached(1)
    follower = asyncio.create_task(store.aapply("b", Event(Kind.ACQUIRE), now + 2, PROBES))
    await asyncio.sleep(0)
    leader.cancel()  # its permit is granted by Redis already
    with pytest.raises(asyncio.CancelledError):
        await leader
    gate.open.set()
    await gate.reached(2)  # the follower's batch went: its permit is granted too
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
    await settled(store)
    assert store.get("b").probes == ()
    answers = [
        (await store.aapply("b", Event(Kind.ACQUIRE), now + 2, PROBES))[1].verdict for _ in range(3)
    ]
    assert answers == [Verdict.PROBE] * 3


async def test_an_error_of_a_batch_reaches_its_callers_as_itself(store: Any) -> None:
    """An error raised while a batch is applied reaches every caller waiting for it as that
    error, not as a cancellation."""
    now = time.monotonic()
    gate = Gate(store)
    gate.open.clear()
    leader = asyncio.create_task(store.aapply("b", Event(Kind.FAILURE), now, PROBES))
    await gate.reached(1)
    follower = asyncio.create_task(store.aapply("b", Event(Kind.SUCCESS), now, PROBES))
    await asyncio.sleep(0)
    accept = store._accept

    def broken(cell: Any, reply: list[Any], ran: float, config: BreakerConfig) -> Any:
        if len(reply) > 2 and gate.sent == 2:
            raise RuntimeError("broken reply")
        return accept(cell, reply, ran, config)

    store._accept = broken
    gate.open.set()
    await leader
    with pytest.raises(RuntimeError, match="broken reply"):
        await follower


def test_close_inside_the_running_loop_closes_its_connections(
    own_redis_server: RedisServer,
) -> None:
    """``close()`` called inside the running loop closes that loop's sockets at once, and
    nothing is left for the collector to warn about after the loop ends."""
    # A server of its own: every socket to it is this store's (on the shared server, a
    # connection an earlier test dropped was once collected here and taken for ours).
    redis_server = own_redis_server
    store = AsyncRedisStore(redis_server.url, prefix=unique_prefix(), timeout=5.0)
    sockets: list[socket.socket] = []

    async def main() -> None:
        await store.aapply("x", Event(Kind.FAILURE), time.monotonic(), BreakerConfig())
        client = store._aclients[asyncio.get_running_loop()][0]
        for connection in client.connection_pool._available_connections:
            sockets.append(connection._writer.transport.get_extra_info("socket"))
        store.close()
        assert [s.fileno() for s in sockets] == [-1] * len(sockets)

    # What earlier tests dropped is collected before, not during, the test; its warnings
    # are theirs, not this store's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        collect()
    assert sockets
    # What this store could leave behind: a socket to the server, a transport, the loop.
    # (The collector may also finish off something an earlier test dropped, such as a
    # database connection: that is not this store's.)
    ours = ("transport", "event loop", f":{redis_server.port}", f", {redis_server.port})")
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert [leak for leak in leaks if any(mark in leak for mark in ours)] == []


def test_close_from_another_thread_closes_that_loops_connections(
    redis_server: RedisServer,
) -> None:
    """``close()`` called outside a loop running in another thread returns only once that
    loop has closed its connections."""
    store = AsyncRedisStore(redis_server.url, prefix=unique_prefix(), timeout=5.0)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:

        async def used() -> list[Any]:
            await store.aapply("x", Event(Kind.FAILURE), time.monotonic(), BreakerConfig())
            client = store._aclients[asyncio.get_running_loop()][0]
            return [
                connection._writer.transport.get_extra_info("socket")
                for connection in client.connection_pool._available_connections
            ]

        sockets = asyncio.run_coroutine_threadsafe(used(), loop).result(5.0)
        store.close()
    finally:
        loop.call_soon_threadsafe(loop.stop)  # no turn left for work close() left behind
        thread.join()
    try:
        assert sockets
        assert [s.fileno() for s in sockets] == [-1] * len(sockets)
    finally:
        loop.close()


async def test_calls_failing_after_aclose_log_no_outage(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A call still in flight when the store is closed, failing because its connection
    went away, logs no outage and does not take the store for down."""
    started, release = asyncio.Event(), asyncio.Event()

    async def cut(cell: Any, args: list[str]) -> list[Any]:
        started.set()
        await release.wait()
        raise ConnectionError("Connection closed by server.")

    store._arun = cut
    call = asyncio.create_task(
        store.aapply("b", Event(Kind.FAILURE), time.monotonic(), BreakerConfig())
    )
    await started.wait()
    with caplog.at_level(logging.WARNING):
        await store.aclose()
        release.set()
        await call
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert store._down_since is None
