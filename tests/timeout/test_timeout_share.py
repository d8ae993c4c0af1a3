"""@timeout(strategy="thread"): healthy concurrency, hanging neighbours, memory and Ctrl-C."""

from __future__ import annotations

import contextvars
import threading
import time
import weakref

import pytest
from garbage import collect

import resilient
from resilient._timeout import decorator as _timeout
from resilient._timeout.workers import EXPIRED, Share, WorkerPool
from resilient.metrics import MemorySink


class Payload:
    """A result or argument whose lifetime a test watches."""


def _wait_until(condition: object, seconds: float = 2.0) -> None:
    end = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < end, "condition never met"
        time.sleep(0.001)


@pytest.mark.realtime
def test_calls_running_on_time_are_never_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """More concurrent healthy calls than max_threads and than the pool: all run, none refused."""
    pool = WorkerPool(max_workers=4, idle_timeout=1.0)
    monkeypatch.setattr(_timeout, "_pool", pool)
    sink = MemorySink()
    resilient.configure(metrics=sink)
    gate = threading.Event()

    @resilient.timeout(5, max_threads=2)
    def work(n: int) -> int:
        gate.wait(2)
        return n

    results: list[object] = []

    def call(n: int) -> None:
        try:
            results.append(work(n))
        except resilient.TimeoutExceededError as error:
            results.append(error)

    callers = [threading.Thread(target=call, args=(n,)) for n in range(6)]
    for caller in callers:
        caller.start()
    _wait_until(lambda: pool.stats().queued == 2)  # 4 running, 2 waiting for a worker
    gate.set()
    for caller in callers:
        caller.join()
    assert sorted(results) == list(range(6))  # type: ignore[type-var]
    assert pool.stats().refused == 0
    assert sink.counter("timeouts_total") == 0


@pytest.mark.realtime
def test_two_hanging_functions_leave_threads_for_a_third() -> None:
    """Two functions that hang, called over and over, never starve a third of threads."""
    release = threading.Event()

    @resilient.timeout(0.002)
    def hang_a() -> None:
        release.wait(5)

    @resilient.timeout(0.002)
    def hang_b() -> None:
        release.wait(5)

    # A budget a loaded machine can meet: starved of threads, ``other`` would still wait
    # past it (the hanging calls hold theirs for 5 s), so the check keeps its meaning.
    @resilient.timeout(1.0)
    def other(n: int) -> int:
        return n

    try:
        for hang in (hang_a, hang_b):
            for _ in range(40):
                with pytest.raises(resilient.TimeoutExceededError):
                    hang()
        assert _timeout._pool.stats().abandoned <= 16  # 8 each (the default max_threads)
        assert [other(n) for n in range(20)] == list(range(20))
    finally:
        release.set()
    _wait_until(lambda: _timeout._pool.stats().abandoned == 0)


@pytest.mark.realtime
def test_timeouts_and_refusals_of_the_thread_strategy_name_the_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread-strategy timeout, a refusal at max_threads and a refusal that would take the
    reserve each raise a TimeoutExceededError carrying the function's name and the reason."""
    pool = WorkerPool(max_workers=4, idle_timeout=1.0, reserve=1)
    monkeypatch.setattr(_timeout, "_pool", pool)
    release = threading.Event()

    @resilient.timeout(0.002, max_threads=2)
    def hang_a() -> None:
        release.wait(5)

    @resilient.timeout(0.002, max_threads=2)
    def hang_b() -> None:
        release.wait(5)

    try:
        with pytest.raises(resilient.TimeoutExceededError) as timed_out:
            hang_a()
        for hang in (hang_a, hang_b):
            with pytest.raises(resilient.TimeoutExceededError):
                hang()
        with pytest.raises(resilient.TimeoutExceededError) as refused:
            hang_a()  # two hung calls: its max_threads
        with pytest.raises(resilient.TimeoutExceededError) as crowded:
            hang_b()  # hung calls hold all but the reserve
    finally:
        release.set()
    assert timed_out.value.name.endswith("hang_a")
    assert refused.value.name.endswith("hang_a")
    assert refused.value.reason is not None
    assert "(max_threads=2)" in refused.value.reason
    assert crowded.value.name.endswith("hang_b")
    assert crowded.value.reason is not None
    assert "kept for functions that are not hanging" in crowded.value.reason
    _wait_until(lambda: pool.stats().abandoned == 0)


@pytest.mark.realtime
def test_hanging_functions_cannot_take_the_reserve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hanging functions are refused while hung calls fill all but the reserve; others run."""
    pool = WorkerPool(max_workers=4, idle_timeout=1.0, reserve=1)
    monkeypatch.setattr(_timeout, "_pool", pool)
    release = threading.Event()

    @resilient.timeout(0.002, max_threads=2)
    def hang_a() -> None:
        release.wait(5)

    @resilient.timeout(0.002, max_threads=2)
    def hang_b() -> None:
        release.wait(5)

    @resilient.timeout(0.5)
    def other() -> str:
        return "ran"

    try:
        for hang in (hang_a, hang_a, hang_b):
            with pytest.raises(resilient.TimeoutExceededError):
                hang()
        assert pool.stats().abandoned == 3
        with pytest.raises(resilient.TimeoutExceededError) as refused:
            hang_b()  # it has one hung call, and hung calls hold 3 of 4 threads
        assert refused.value.reason is not None
        assert "kept for functions that are not hanging" in refused.value.reason
        assert pool.stats().abandoned == 3
        assert other() == "ran"
    finally:
        release.set()
    _wait_until(lambda: pool.stats().abandoned == 0)


@pytest.mark.realtime
def test_expired_queue_entries_do_not_pile_up() -> None:
    """Thousands of calls expiring in the queue of a stuck pool leave a short queue behind."""
    pool = WorkerPool(max_workers=1, idle_timeout=1.0)
    release = threading.Event()
    share = Share(1)
    stuck = threading.Thread(
        target=pool.run,
        args=(contextvars.copy_context(), release.wait, (5,), {}, 5.0, Share(1)),
    )
    stuck.start()
    _wait_until(lambda: pool.stats().idle == 0 and pool.stats().workers == 1)
    try:
        for _ in range(2000):
            job = pool.submit(contextvars.copy_context(), int, (), {}, 0.0, share)
            assert pool.collect(job, False) is EXPIRED
        assert len(pool._pending) <= 128
        assert pool.stats().expired == 2000
    finally:
        release.set()
        stuck.join()


def test_an_idle_worker_keeps_no_result_alive() -> None:
    """Once the caller has its result and drops it, no worker keeps the result alive."""

    @resilient.timeout(1)
    def make() -> Payload:
        return Payload()

    result = make()
    watch = weakref.ref(result)
    del result
    collect()
    assert watch() is None


def test_an_idle_worker_keeps_no_argument_alive() -> None:
    """A call's arguments are not kept alive by the worker that ran it."""

    @resilient.timeout(1)
    def take(payload: Payload) -> int:
        return 1

    payload = Payload()
    watch = weakref.ref(payload)
    assert take(payload) == 1
    del payload
    collect()
    assert watch() is None


class _Interrupting:
    """A ``done`` lock whose wait is interrupted by Ctrl-C, as a SIGINT would."""

    def __init__(self, real: object) -> None:
        self.real = real

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking:
            raise KeyboardInterrupt
        return bool(self.real.acquire(False))  # type: ignore[attr-defined]

    def release(self) -> None:
        self.real.release()  # type: ignore[attr-defined]


@pytest.mark.realtime
def test_ctrl_c_while_waiting_counts_a_running_call_as_abandoned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C in the caller: it propagates, and the running call is counted as abandoned."""
    pool = WorkerPool(max_workers=1, idle_timeout=1.0)
    release = threading.Event()
    started = threading.Event()

    def work() -> None:
        started.set()
        release.wait(5)

    job = pool.submit(contextvars.copy_context(), work, (), {}, 5.0, Share(2))
    started.wait(2)
    job.done = _Interrupting(job.done)
    monkeypatch.setattr(pool, "submit", lambda *args: job)
    try:
        with pytest.raises(KeyboardInterrupt):
            pool.run(contextvars.copy_context(), work, (), {}, 5.0, Share(2))
        assert pool.stats().abandoned == 1
        assert job.gave_up
    finally:
        release.set()
    _wait_until(lambda: pool.stats().abandoned == 0)


@pytest.mark.realtime
def test_ctrl_c_while_queued_means_the_call_never_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the call waits for a worker: counted expired, and it never runs later."""
    pool = WorkerPool(max_workers=1, idle_timeout=1.0)
    release = threading.Event()
    ran: list[str] = []
    stuck = threading.Thread(
        target=pool.run,
        args=(contextvars.copy_context(), release.wait, (5,), {}, 5.0, Share(1)),
    )
    stuck.start()
    _wait_until(lambda: pool.stats().idle == 0 and pool.stats().workers == 1)
    job = pool.submit(contextvars.copy_context(), ran.append, ("ran",), {}, 5.0, Share(1))
    assert pool.stats().queued == 1
    job.done = _Interrupting(job.done)
    monkeypatch.setattr(pool, "submit", lambda *args: job)
    with pytest.raises(KeyboardInterrupt):
        pool.run(contextvars.copy_context(), ran.append, ("ran",), {}, 5.0, Share(1))
    stats = pool.stats()
    assert (stats.expired, stats.queued) == (1, 0)
    release.set()
    stuck.join()
    _wait_until(lambda: pool.stats().idle == 1)
    assert ran == []


def test_a_call_given_up_reports_abandoned() -> None:
    """give_up on a finished call says so (None); collect then returns its result."""
    pool = WorkerPool(max_workers=1, idle_timeout=0.5)
    job = pool.submit(contextvars.copy_context(), int, ("7",), {}, 1.0, Share(1))
    job.done.acquire()
    assert pool.give_up(job) is None
    assert pool.collect(job, True) == 7
