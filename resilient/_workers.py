"""A small bounded thread pool that releases its caller at a deadline.

``ThreadPoolExecutor`` builds a ``Future`` and a ``Condition`` per call; here a call
costs one lock and a direct hand-off to an idle worker, about half the latency. A call
whose caller gave up keeps running (Python cannot stop a thread): it is counted as
*abandoned* until it ends, it still occupies its worker, and the pool never grows past
``max_workers``. Idle workers exit after ``idle_timeout`` seconds, so an idle process
holds no threads.
"""

from __future__ import annotations

import threading
from _thread import allocate_lock
from collections import deque
from collections.abc import Callable
from contextvars import Context
from typing import Any, NamedTuple

__all__ = ["PoolStats", "WorkerPool"]


class PoolStats(NamedTuple):
    """A snapshot of the pool: threads alive, idle among them, abandoned calls running."""

    max_workers: int
    workers: int
    idle: int
    abandoned: int


class _Job:
    __slots__ = (
        "args",
        "call",
        "context",
        "done",
        "error",
        "finished",
        "gave_up",
        "kwargs",
        "result",
    )

    def __init__(self, context: Context, call: Callable[..., Any], args: Any, kwargs: Any) -> None:
        self.context = context
        self.call = call
        self.args = args
        self.kwargs = kwargs
        self.done = allocate_lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.gave_up = False


class _Worker:
    """One thread; a caller hands it a job directly and wakes it with its lock."""

    __slots__ = ("job", "wake")

    def __init__(self, job: _Job) -> None:
        self.job = job
        self.wake = allocate_lock()
        self.wake.acquire()


class WorkerPool:
    """Runs calls on worker threads; the caller waits with a timeout."""

    def __init__(self, max_workers: int = 64, idle_timeout: float = 30.0) -> None:
        self.max_workers = max_workers
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []  # a stack: the most recently used worker is reused
        self._pending: deque[_Job] = deque()  # jobs waiting for a worker when all are busy
        self._workers = 0
        self._abandoned = 0

    def run(
        self, context: Context, call: Callable[..., Any], args: Any, kwargs: Any, timeout: float
    ) -> tuple[bool, Any]:
        """Run ``call`` in ``context`` on a worker; return ``(finished, result)``.

        ``finished`` is false when ``timeout`` passed first; the call's own exception is
        raised in the caller's thread.
        """
        job = _Job(context, call, args, kwargs)
        worker = None
        with self._lock:
            if self._idle:
                worker = self._idle.pop()
                worker.job = job
            elif self._workers < self.max_workers:
                self._workers += 1
                threading.Thread(
                    target=self._work, args=(_Worker(job),), name="resilient-timeout", daemon=True
                ).start()
            else:
                self._pending.append(job)
        if worker is not None:
            worker.wake.release()
        if not job.done.acquire(True, timeout):
            with self._lock:
                if not job.finished:
                    job.gave_up = True
                    self._abandoned += 1
                    return False, None
        if job.error is not None:
            error, job.error = job.error, None
            raise error
        return True, job.result

    def stats(self) -> PoolStats:
        """How many threads exist, how many are idle, how many run abandoned calls."""
        with self._lock:
            return PoolStats(self.max_workers, self._workers, len(self._idle), self._abandoned)

    def _work(self, me: _Worker) -> None:
        lock = self._lock
        job = me.job
        while True:
            if not job.gave_up:
                try:
                    job.result = job.context.run(job.call, *job.args, **job.kwargs)
                except BaseException as error:  # handed to the caller's thread, never lost
                    job.error = error
            with lock:
                job.finished = True
                if job.gave_up:
                    self._abandoned -= 1
                    job.error = job.result = None
                next_job = self._pending.popleft() if self._pending else None
                if next_job is None:
                    self._idle.append(me)
            job.done.release()
            if next_job is not None:
                job = next_job
                continue
            if not me.wake.acquire(True, self.idle_timeout):
                with lock:
                    if me in self._idle:
                        self._idle.remove(me)
                        self._workers -= 1
                        return
                me.wake.acquire()  # a caller took us just as we timed out: its job is coming
            job = me.job
