"""A small bounded thread pool that releases its caller at a deadline.

``ThreadPoolExecutor`` builds a ``Future`` and a ``Condition`` per call; here a call
costs one lock and a direct hand-off to an idle worker. A call whose caller gave up
keeps running (Python cannot stop a thread): it is counted as *abandoned* until it ends,
it still occupies its worker, and the pool never grows past ``max_workers``. Idle
workers exit after ``idle_timeout`` seconds, so an idle process holds no threads.

When every worker is busy, calls wait in a queue. A queued call whose deadline passes
before a worker takes it never runs: it is counted as *expired*, and its function,
arguments and context are dropped at once.

Calls running on time never hold a call back: any number of them run or queue. Only
calls that outlived their deadline count against their function: a function with
``Share.limit`` abandoned calls is refused at once (``REFUSED``), and a function with
any abandoned call is refused (``CROWDED``) while abandoned calls of all functions
together hold every worker but the ``reserve``, which stays for functions that are not
hanging. So one dependency that hangs cannot take every worker from the others.
"""

from __future__ import annotations

import threading
import time
from _thread import allocate_lock
from collections import deque
from collections.abc import Callable
from contextvars import Context
from typing import Any, NamedTuple

__all__ = ["ABANDONED", "CROWDED", "EXPIRED", "REFUSED", "PoolStats", "Share", "WorkerPool"]

# What ``run`` and ``collect`` return instead of a result (objects no call can return):
ABANDONED: Any = object()  # the deadline passed while the call ran; it keeps running
EXPIRED: Any = object()  # the deadline passed while the call waited for a worker: never ran
# What ``run`` and ``submit`` return for a call never queued:
REFUSED: Any = object()  # its function already has ``Share.limit`` abandoned calls
CROWDED: Any = object()  # it has abandoned calls, and abandoned calls fill all but the reserve

_COMPACT = 64  # a queue this long or longer is compacted once finished jobs are most of it


class PoolStats(NamedTuple):
    """A snapshot of the pool.

    ``workers`` threads alive, ``idle`` among them; ``abandoned`` calls still running
    after their caller gave up (they started); ``queued`` calls waiting for a worker;
    ``expired`` calls whose deadline passed before they started (they never ran), and
    ``refused`` calls of a function already holding its share of abandoned workers (or
    while hanging calls fill all but the reserve), both counted since the process started.
    """

    max_workers: int
    workers: int
    idle: int
    abandoned: int
    queued: int = 0
    expired: int = 0
    refused: int = 0


class Share:
    """How many calls of one decorated function may run past their deadline at once."""

    __slots__ = ("abandoned", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.abandoned = 0  # its calls whose caller gave up and that still run


class _Job:
    __slots__ = (
        "args",
        "call",
        "context",
        "deadline",
        "done",
        "error",
        "finished",
        "gave_up",
        "kwargs",
        "result",
        "share",
        "started",
    )
    deadline: float  # set for queued jobs only

    def __init__(
        self, context: Context, call: Callable[..., Any], args: Any, kwargs: Any, share: Share
    ) -> None:
        self.context: Context | None = context
        self.call: Callable[..., Any] | None = call
        self.args = args
        self.kwargs = kwargs
        self.share = share
        self.done = allocate_lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.gave_up = False
        self.started = True  # a queued job is marked not started until a worker takes it

    def drop(self) -> None:
        """Release everything the call would have used: it will never run."""
        self.context = self.call = self.args = self.kwargs = None


class _Worker:
    """One thread; a caller hands it a job directly and wakes it with its lock."""

    __slots__ = ("job", "wake")

    def __init__(self, job: _Job) -> None:
        self.job: _Job | None = job
        self.wake = allocate_lock()
        self.wake.acquire()


class WorkerPool:
    """Runs calls on worker threads; the caller waits with a timeout.

    ``reserve`` workers (a quarter of ``max_workers`` unless given) are never left to
    abandoned calls of functions that already have one.
    """

    def __init__(
        self, max_workers: int = 64, idle_timeout: float = 30.0, reserve: int | None = None
    ) -> None:
        self.max_workers = max_workers
        self.idle_timeout = idle_timeout
        self.reserve = max_workers // 4 if reserve is None else reserve
        self._hung_limit = max_workers - self.reserve
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []  # a stack: the most recently used worker is reused
        self._pending: deque[_Job] = deque()  # jobs waiting for a worker when all are busy
        self._stale = 0  # jobs in ``_pending`` that expired there (their caller counted them)
        self._workers = 0
        self._abandoned = 0
        self._queued = 0
        self._expired = 0
        self._refused = 0

    def run(
        self,
        context: Context,
        call: Callable[..., Any],
        args: Any,
        kwargs: Any,
        timeout: float,
        share: Share,
    ) -> Any:
        """Run ``call`` in ``context`` on a worker and return its result.

        Returns ``ABANDONED`` or ``EXPIRED`` when ``timeout`` passed first (while the call
        ran, or before it started), ``REFUSED`` or ``CROWDED`` when it was not queued
        (see ``submit``); the call's own exception is raised in the caller's thread.
        ``timeout`` must be at most ``threading.TIMEOUT_MAX``.
        """
        job = self.submit(context, call, args, kwargs, timeout, share)
        if job is REFUSED or job is CROWDED:
            return job
        try:
            finished = job.done.acquire(True, timeout)
        except BaseException:  # KeyboardInterrupt while waiting: the call is given up
            self.give_up(job)
            raise
        return self.collect(job, finished)

    def submit(
        self,
        context: Context,
        call: Callable[..., Any],
        args: Any,
        kwargs: Any,
        timeout: float,
        share: Share,
    ) -> Any:
        """``run`` in steps, for callers that wait their own way: start the call.

        Returns the job to wait on (its ``done`` lock; pass it to ``collect`` once the
        wait is over, or to ``give_up`` if the wait is interrupted), or ``REFUSED`` when
        ``share`` has ``limit`` abandoned calls, or ``CROWDED`` when it has some and
        abandoned calls hold every worker but the reserve.
        """
        job = _Job(context, call, args, kwargs, share)
        worker = None
        with self._lock:
            if share.abandoned:
                if share.abandoned >= share.limit:
                    self._refused += 1
                    return REFUSED
                if self._abandoned >= self._hung_limit:
                    self._refused += 1
                    return CROWDED
            if self._idle:
                worker = self._idle.pop()
                worker.job = job
            elif self._workers < self.max_workers:
                self._start(job)
            else:
                job.started = False
                job.deadline = time.monotonic() + timeout
                self._pending.append(job)
                self._queued += 1
        if worker is not None:
            worker.wake.release()
        return job

    def collect(self, job: _Job, finished: bool) -> Any:
        """The last step: the result, ``ABANDONED`` or ``EXPIRED``, or the call's error."""
        if not finished:
            given_up = self.give_up(job)
            if given_up is not None:
                return given_up
        error = job.error
        if error is not None:
            job.error = None
            raise error
        return job.result

    def give_up(self, job: _Job) -> Any:
        """The caller stops waiting: ``ABANDONED`` (it runs on), ``EXPIRED`` (it never
        will), or ``None`` when it has already finished."""
        with self._lock:
            if job.finished:
                return None
            job.gave_up = True
            if job.started:
                self._abandoned += 1
                job.share.abandoned += 1
                return ABANDONED
            self._expire(job)  # still queued: it will never run
            self._stale += 1
            pending = self._pending
            if self._stale >= _COMPACT and self._stale * 2 >= len(pending):
                self._pending = deque(queued for queued in pending if not queued.finished)
                self._stale = 0
            return EXPIRED

    def stats(self) -> PoolStats:
        """Threads, idle threads, abandoned, queued, expired and refused calls."""
        with self._lock:
            return PoolStats(
                self.max_workers,
                self._workers,
                len(self._idle),
                self._abandoned,
                self._queued,
                self._expired,
                self._refused,
            )

    def _start(self, job: _Job) -> None:
        """Under the lock: a new worker thread for ``job`` (nothing held if it cannot start)."""
        self._workers += 1
        try:
            threading.Thread(
                target=self._work, args=(_Worker(job),), name="resilient-timeout", daemon=True
            ).start()
        except BaseException:  # "can't start new thread": the caller gets the error
            self._workers -= 1
            raise

    def _expire(self, job: _Job) -> None:
        """Under the lock: a queued job that will never run lets go of what it held."""
        job.drop()
        job.result = EXPIRED
        job.finished = True
        self._queued -= 1
        self._expired += 1

    def _next(self) -> _Job | None:
        """Under the lock: the next queued job whose deadline has not passed."""
        pending = self._pending
        now = None
        while pending:
            job = pending.popleft()
            if job.finished:
                self._stale -= 1
                continue  # its caller gave up and already counted it
            now = time.monotonic() if now is None else now
            if now >= job.deadline:
                self._expire(job)
                job.done.release()  # its caller wakes and reports the timeout
                continue
            job.started = True
            self._queued -= 1
            return job
        return None

    def _work(self, me: _Worker) -> None:
        lock = self._lock
        job: _Job | None = me.job
        while job is not None:
            me.job = None  # an idle worker keeps nothing of its last call alive
            if not job.gave_up:
                try:
                    job.result = job.context.run(job.call, *job.args, **job.kwargs)  # type: ignore[union-attr, arg-type]
                except BaseException as error:  # handed to the caller's thread, never lost
                    job.error = error
            with lock:
                job.finished = True
                if job.gave_up:  # nobody will read its outcome
                    self._abandoned -= 1
                    job.share.abandoned -= 1
                    job.error = job.result = None
                next_job = self._next() if self._pending else None
                if next_job is None:
                    self._idle.append(me)
            job.done.release()
            job = next_job
            if job is not None:
                continue
            if not me.wake.acquire(True, self.idle_timeout):
                with lock:
                    if me in self._idle:
                        self._idle.remove(me)
                        self._workers -= 1
                        return
                me.wake.acquire()  # a caller took us just as we timed out: its job is coming
            job = me.job
