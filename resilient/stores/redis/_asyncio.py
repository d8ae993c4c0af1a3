"""What ``AsyncRedisStore`` adds for asyncio: one client per event loop, and concurrent
events on one breaker sent together in one script call."""

from __future__ import annotations

import abc
import asyncio
from typing import TYPE_CHECKING, Any

import redis.asyncio as aredis
import redis.asyncio.cluster as acluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

from ..._circuit.rules import BreakerState, Decision, Event, Kind, Verdict
from ..._runtime import config as _config
from .. import _lua

if TYPE_CHECKING:
    from ..._circuit.config import BreakerConfig

from ._base import _RedisBase
from ._cells import _Cell
from ._clients import (
    _NO_SETINFO,
    AsyncClusterScript,
    _drop_connections,
    _plain_url,
)

_Batch = list[tuple[Event, float, "asyncio.Future[tuple[BreakerState, Decision]]"]]
_ACQUIRE, _RELEASE, _PROBE = Kind.ACQUIRE, Kind.RELEASE, Verdict.PROBE


class _AsyncioClients(_RedisBase):
    """The asyncio side of ``AsyncRedisStore``: given a URL, one client per event loop
    it meets; given a ``redis.asyncio`` client, that client in its own loop."""

    def __init__(self, url: object, **options: Any) -> None:
        self._url = url if isinstance(url, str) else None
        self._given: Any = None if isinstance(url, str) else url
        self._aclients: dict[asyncio.AbstractEventLoop, tuple[Any, Any]] = {}
        # Per loop: a cluster client learning the cluster's nodes (in the background, so
        # that a call cut short by its timeout does not cut the learning short too).
        self._ready: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] = {}
        # Per (loop, breaker) while a script call is in flight: the events waiting for it.
        self._batches: dict[tuple[asyncio.AbstractEventLoop, str], _Batch] = {}
        self._sending: set[asyncio.Task[None]] = set()  # the script calls of those batches
        self._orphans: list[Any] = []  # clients of a parent process, kept from collection
        super().__init__(url, **options)

    def _aclient(self) -> tuple[Any, Any]:
        """The asyncio client of the running loop, and the script registered on it."""
        loop = asyncio.get_running_loop()
        found = self._aclients.get(loop)
        if found is None:
            self._forget_closed_loops()
            if self._given is not None:
                client = self._given
            else:
                assert self._url is not None
                options: dict[str, Any] = {
                    "socket_timeout": self.timeout,
                    "socket_connect_timeout": self.timeout,
                    "retry": AsyncRetry(NoBackoff(), 0),
                    **_NO_SETINFO,
                }
                if self._cluster:
                    client = acluster.RedisCluster.from_url(
                        _plain_url(self._url), require_full_coverage=False, **options
                    )
                else:
                    client = aredis.Redis.from_url(self._url, **options)
            if isinstance(client, acluster.RedisCluster):
                script: Any = AsyncClusterScript(client, _lua.TRANSITION, self._node_of_key)
            else:
                script = client.register_script(_lua.TRANSITION)
            found = self._aclients[loop] = (client, script)
        return found

    async def _arun(self, cell: _Cell, args: list[str]) -> list[Any]:
        """Run the transition script on ``cell``'s keys through the running loop's client
        (raises what Redis raises, and ``TimeoutError`` after ``timeout``)."""
        client, script = self._aclient()
        async with asyncio.timeout(self.timeout):
            await self._connected(client)
            reply: list[Any] = await script(
                keys=self._script_keys(cell.name), args=args, client=client
            )
        return reply

    @abc.abstractmethod
    async def _asend(
        self, cell: _Cell, events: list[tuple[Event, float]], config: BreakerConfig
    ) -> list[tuple[BreakerState, Decision]]:
        """Apply ``events`` in order in one script call (locally during an outage, or
        while the breaker holds a state of its own)."""

    async def _asubmit(
        self, cell: _Cell, event: Event, now: float, config: BreakerConfig
    ) -> tuple[BreakerState, Decision]:
        """``event`` applied by Redis. While a script call for this breaker is in flight,
        events from other tasks wait for it and then go together in one script call: a
        herd of tasks costs two round trips and one connection, not one each.

        A caller cancelled before its event is sent is left out; a probe's permit granted
        to a caller cancelled meanwhile is given back (its ticket released), so the
        breaker does not wait ``probe_timeout`` for callers that are gone."""
        loop = asyncio.get_running_loop()
        key = (loop, cell.name)
        waiting = self._batches.get(key)
        if waiting is not None or event.kind is _ACQUIRE:
            # Joins the next batch, or (a request for a permit) sends its own in a task that
            # outlives this caller's cancellation, to give back a permit it may bring.
            future: asyncio.Future[tuple[BreakerState, Decision]] = loop.create_future()
            if waiting is not None:
                waiting.append((event, now, future))
            else:
                self._batches[key] = []
                self._start_batch(key, cell, [(event, now, future)], config)
            return await future
        self._batches[key] = []
        try:
            return (await self._asend(cell, [(event, now)], config))[0]
        finally:
            self._next_batch(key, cell, config)

    def _next_batch(
        self, key: tuple[asyncio.AbstractEventLoop, str], cell: _Cell, config: BreakerConfig
    ) -> None:
        followers = self._batches.pop(key, None)
        if followers:
            self._batches[key] = []
            self._start_batch(key, cell, followers, config)

    def _start_batch(
        self,
        key: tuple[asyncio.AbstractEventLoop, str],
        cell: _Cell,
        batch: _Batch,
        config: BreakerConfig,
    ) -> None:
        task = key[0].create_task(self._send_batch(key, cell, batch, config))
        self._sending.add(task)  # the loop holds its tasks weakly
        task.add_done_callback(self._sending.discard)

    async def _send_batch(
        self,
        key: tuple[asyncio.AbstractEventLoop, str],
        cell: _Cell,
        batch: _Batch,
        config: BreakerConfig,
    ) -> None:
        """Send the events of ``batch`` whose callers still wait, in one script call; an
        error reaches each waiting caller; probe permits granted to callers cancelled
        meanwhile are released before the next batch goes."""
        try:
            batch = [entry for entry in batch if not entry[2].cancelled()]
            if not batch:
                return
            try:
                results = await self._asend(cell, [(event, now) for event, now, _ in batch], config)
            except Exception as error:  # each waiting caller gets it, as its own call would
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                return
            released: list[tuple[Event, float]] = []
            for (_, _, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
                elif result[1].verdict is _PROBE:  # its caller is gone: free the permit
                    released.append((Event(_RELEASE, result[1].ticket), _config.state.now()))
            if released:
                await self._asend(cell, released, config)
        finally:
            for _, _, future in batch:
                if not future.done():
                    future.cancel()  # this task was cancelled (or ended by a fatal error)
            self._next_batch(key, cell, config)

    async def _connected(self, client: Any) -> None:
        """Wait until a cluster client knows the cluster's nodes (started once per loop;
        a call that stops waiting leaves it going)."""
        if not isinstance(client, acluster.RedisCluster) or not getattr(client, "_initialize", 1):
            return
        loop = asyncio.get_running_loop()
        task = self._ready.get(loop)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._ready[loop] = loop.create_task(client.initialize())
            task.add_done_callback(_retrieved)
        await asyncio.shield(task)

    async def aconnect(self) -> bool:
        """Connect the running loop's client now (a cluster client also learns the
        cluster's nodes, several round trips), so that the first call needing Redis does
        not spend its ``timeout`` on it. Waits at most ``max(timeout, 1 s)``; returns
        whether Redis answered (if not, an outage starts, as for any call)."""
        client, _ = self._aclient()
        try:
            async with asyncio.timeout(max(self.timeout, 1.0)):
                await self._connected(client)
                await client.ping()
        except Exception as error:  # the caller must not see it
            self._failed(error)
            return False
        return True

    def _forget_closed_loops(self) -> None:
        for loop in [loop for loop in self._ready if loop.is_closed()]:
            del self._ready[loop]
        for loop in [loop for loop in self._aclients if loop.is_closed()]:
            client, _ = self._aclients.pop(loop)
            _drop_connections(client)

    async def aclose(self) -> None:
        """Close the connections of the running loop's client, then everything else."""
        self._closed = True  # calls failing from now on are not an outage
        loop = asyncio.get_running_loop()
        found = self._aclients.pop(loop, None)
        if found is not None:
            _stop_relearning(found[1])
            if self._given is None:
                await found[0].aclose()
        self.close()

    def close(self) -> None:
        """Stop the listener and drop every connection: those of a closed loop, and of this
        thread's running loop, at once; another thread's running loop is asked to close
        them, and waited for at most ``max(timeout, 1 s)``."""
        self._closed = True  # calls failing from now on are not an outage
        here = _running_loop()
        for loop, (client, script) in list(self._aclients.items()):
            if loop is here:
                _stop_relearning(script)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_stop_relearning, script)
            if client is self._given:
                continue
            if loop is here:
                _drop_connections(client, running=True)  # an aclose() task would outlive it
            elif loop.is_closed():
                _drop_connections(client)
            elif not loop.is_running():
                loop.run_until_complete(client.aclose())
            else:
                closing = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
                try:
                    closing.result(max(self.timeout, 1.0))
                except Exception:  # busy or failing: it goes on in its own loop
                    pass
        self._aclients.clear()
        self._ready.clear()
        super().close()

    def _after_fork(self) -> None:
        self._orphans.extend(self._aclients.values())
        self._aclients = {}
        self._ready = {}
        super()._after_fork()


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Mark a background task's failure as seen (the next call finds out again)."""
    if not task.cancelled():
        task.exception()


def _stop_relearning(script: Any) -> None:
    if isinstance(script, AsyncClusterScript):
        script.cancel()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
