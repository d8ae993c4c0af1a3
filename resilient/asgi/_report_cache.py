"""The report cache the health app and the status page answer from.

A report is built on a thread of its own (never on the event loop's thread, nor in the
loop's default executor, which the application's ``to_thread`` work uses), one build at
a time shared by every request waiting for it, sync or async, and answers every request
for ``CACHE_SECONDS`` after its build started. The thread is started for a build and
ends with it, so an idle app holds none.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, Final, Generic, TypeVar

from .._runtime import config as _config

__all__ = ["CACHE_SECONDS", "WAIT_SECONDS", "ReportCache"]

T = TypeVar("T")

CACHE_SECONDS: Final = 1.0
"""How long (on the configured clock) one built report answers requests after its build
started: readiness may lag a breaker's change by up to this much."""

WAIT_SECONDS: Final = 10.0
"""How long a request waits for a build before it gives up with ``TimeoutError`` (the
health app and status page answer 503): a blocking request waits this many real seconds
for a build another request started (a build that hangs never holds every WSGI worker
thread that asks after it), an async request this many seconds of its event loop's time
for any build (a probe that hangs gets its answer in time)."""

_generation = [0]
"""Bumped by ``resilient.testing.reset()``: a report cached before it is stale."""


@_config.on_reset
def _forget_reports() -> None:
    _generation[0] += 1


class ReportCache(Generic[T]):
    """One build of ``build()`` at a time, shared by every caller waiting for it, and its
    result cached for ``CACHE_SECONDS`` (on the configured clock) after the build started.

    ``invalidate()`` makes the next caller build anew, even while an older build runs.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._version = 0
        self._cached: tuple[float, int, int, T] | None = None
        """When it stops answering, the reset generation, the version, the result."""
        self._building: tuple[int, int, Future[T]] | None = None
        """The build under way, with the version and reset generation it builds."""

    @property
    def building(self) -> Future[T] | None:
        """The build under way (``None`` when none is)."""
        building = self._building
        return None if building is None else building[2]

    def invalidate(self) -> None:
        with self._lock:
            self._version += 1
            self._cached = None

    def _claim(self) -> tuple[bool, T | None, Future[T], bool]:
        """``(True, result, ...)`` if a result is cached, else ``(False, None, future,
        mine)``: the build to wait for, new (``mine``: the caller runs it) if none was
        under way for the current version."""
        with self._lock:
            cached = self._cached
            if (
                cached is not None
                and cached[1] == _generation[0]
                and cached[2] == self._version
                and _config.state.now() < cached[0]
            ):
                return True, cached[3], _DONE, False
            building = self._building
            if (
                building is not None
                and building[0] == self._version
                and building[1] == _generation[0]
            ):
                return False, None, building[2], False
            future: Future[T] = Future()
            self._building = (self._version, _generation[0], future)
            return False, None, future, True

    def _release(self, future: Future[T]) -> None:
        """Forget ``future`` as the build under way (the lock held), if it still is."""
        if self._building is not None and self._building[2] is future:
            self._building = None

    def _run(self, future: Future[T]) -> None:
        """Build on this thread, cache the result unless it went stale, hand it over."""
        try:
            with self._lock:
                version = self._version
            generation = _generation[0]
            expires = _config.state.now() + CACHE_SECONDS  # the clock may fail too
            result = self._build()
        except BaseException as error:  # every waiter gets it; the next caller builds anew
            with self._lock:
                self._release(future)
            future.set_exception(error)
            return
        with self._lock:
            self._release(future)
            if version == self._version:
                self._cached = (expires, generation, version, result)
        future.set_result(result)

    def get(self) -> T:
        """The cached result, else the build under way (waited for ``WAIT_SECONDS`` at
        most), else one built on this thread."""
        hit, result, future, mine = self._claim()
        if hit:
            return result  # type: ignore[return-value]
        if mine:
            self._run(future)
            return future.result()
        try:
            return future.result(WAIT_SECONDS)
        except TimeoutError:
            if future.done():
                raise  # the build's own error
            raise _unfinished() from None

    async def aget(self) -> T:
        """``get`` for async code: a build runs on its own thread, never on the loop's,
        and is waited for ``WAIT_SECONDS`` at most (of the loop's time)."""
        hit, result, future, mine = self._claim()
        if hit:
            return result  # type: ignore[return-value]
        loop = asyncio.get_running_loop()
        if mine:
            # Nobody awaits the executor's future, so a request giving up never cuts the
            # loop's view of the build short; it ends when the build has.
            try:
                loop.run_in_executor(_OWN_THREAD, self._run, future)
            except BaseException as error:  # no thread to build on: the next call tries again
                with self._lock:
                    self._release(future)
                future.set_exception(error)
                raise
        waiter: asyncio.Future[T] = loop.create_future()

        def built(done: Future[T]) -> None:  # on the build's thread, or here if done
            try:
                loop.call_soon_threadsafe(_pass_on, done, waiter)
            except RuntimeError:  # the loop closed while the report was built
                pass

        future.add_done_callback(built)
        waiting = asyncio.timeout(WAIT_SECONDS)
        try:
            async with waiting:
                return await waiter  # a waiter that gives up cancels only its own future
        except TimeoutError:
            if not waiting.expired():
                raise  # the build's own error
            raise _unfinished() from None


class _ThreadPerCall(Executor):
    """Runs each call on a thread of its own that ends with it (a build at a time: a cache
    starts one only when none is under way)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        done: Future[Any] = Future()

        def run() -> None:
            if not done.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:  # handed to whoever waits on the future
                done.set_exception(error)
            else:
                done.set_result(result)

        threading.Thread(target=run, name="resilient-health", daemon=True).start()
        return done


_OWN_THREAD: Final = _ThreadPerCall()

_DONE: Final[Future[Any]] = Future()
"""Stands for "no build to wait for" when a result is cached."""


def _unfinished() -> TimeoutError:
    return TimeoutError(f"the report build under way has not finished in {WAIT_SECONDS:g} s")


def _pass_on(done: Future[T], waiter: asyncio.Future[T]) -> None:
    """Hand a finished build to one waiting request, unless that request gave up."""
    if waiter.done():
        return
    error = done.exception()
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(done.result())
