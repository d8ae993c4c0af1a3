"""@timeout(strategy="thread"): huge budgets, a fair pool, and results that come back late."""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
import weakref

import pytest
from garbage import collect

import resilient
from resilient._timeout import alarm as _alarm
from resilient._timeout import decorator as _timeout
from resilient._timeout.workers import WorkerPool


@pytest.fixture
def small_pool(monkeypatch: pytest.MonkeyPatch) -> WorkerPool:
    """A four-thread pool with no reserve, used by the functions decorated in the test."""
    pool = WorkerPool(max_workers=4, idle_timeout=1.0, reserve=0)
    monkeypatch.setattr(_timeout, "_pool", pool)
    return pool


class Payload:
    """An argument whose lifetime a test watches."""


# Huge budgets


@pytest.mark.parametrize("seconds", [1e10, 1e300])
@pytest.mark.parametrize("strategy", ["thread", "signal"])
def test_huge_budgets_work_in_sync_code(seconds: float, strategy: str) -> None:
    """A budget far past what a lock wait or an interval timer can hold still works."""
    _alarm._armed_for = None  # forget any earlier timer: this call sets the interval timer

    @resilient.timeout(seconds, strategy=strategy)  # type: ignore[arg-type]
    def answer() -> int:
        return 42

    assert answer() == 42
    assert answer() == 42


@pytest.mark.parametrize("seconds", [1e10, 1e300])
async def test_huge_budgets_work_in_async_code(seconds: float) -> None:
    """The async strategy accepts the same budgets."""

    @resilient.timeout(seconds)
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert await answer() == 42


# One hanging dependency cannot starve the others


@pytest.mark.realtime
def test_a_hanging_function_cannot_take_every_thread(small_pool: WorkerPool) -> None:
    """Past max_threads a hanging function is refused at once; other functions still run."""
    release = threading.Event()

    @resilient.timeout(0.01, max_threads=2)
    def hang() -> None:
        release.wait(5)

    @resilient.timeout(1)
    def other() -> str:
        return "ran"

    try:
        for _ in range(2):
            with pytest.raises(resilient.TimeoutExceededError):
                hang()
        started = time.perf_counter()
        with pytest.raises(resilient.TimeoutExceededError) as refused:
            hang()
        assert time.perf_counter() - started < 0.005 + 0.1  # refused, not waited for
        assert "max_threads=2" in str(refused.value)
        assert refused.value.reason is not None
        assert other() == "ran"
        stats = small_pool.stats()
        assert (stats.abandoned, stats.refused) == (2, 1)
    finally:
        release.set()


@pytest.mark.realtime
def test_default_share_leaves_threads_for_others() -> None:
    """With the default pool, 40 hanging calls of one function leave threads for the rest."""
    release = threading.Event()

    # 50 ms: long enough for each held call's thread to start its body on a loaded machine
    # (a body that has not started by its deadline never holds a thread).
    @resilient.timeout(0.05)
    def hang() -> None:
        release.wait(5)

    @resilient.timeout(1)
    def other() -> str:
        return "ran"

    try:
        outcomes = []
        for _ in range(40):
            try:
                hang()
            except resilient.TimeoutExceededError as error:
                outcomes.append(error.reason is not None and "max_threads" in error.reason)
        assert outcomes.count(True) == 32  # 8 held (the default max_threads), the rest refused
        assert other() == "ran"
    finally:
        release.set()


@pytest.mark.realtime
def test_a_queued_call_past_its_deadline_never_runs_and_lets_go_of_its_arguments(
    small_pool: WorkerPool,
) -> None:
    """A call still waiting for a worker at its deadline is dropped: never run, args freed."""
    release = threading.Event()
    ran: list[str] = []

    @resilient.timeout(0.01)
    def busy() -> None:
        release.wait(5)

    @resilient.timeout(0.01)
    def victim(payload: Payload) -> None:
        ran.append("victim")

    try:
        for _ in range(4):  # every thread of the pool stuck
            with pytest.raises(resilient.TimeoutExceededError):
                busy()
        payload = Payload()
        watch = weakref.ref(payload)
        reason = _reason_of_timeout(victim, payload)  # keeps no traceback (no frames)
        del payload
        collect()
        assert watch() is None  # the queued call did not keep its argument
        assert reason is not None
        assert "never started" in reason
        stats = small_pool.stats()
        assert (stats.abandoned, stats.expired, stats.queued) == (4, 1, 0)
    finally:
        release.set()
    for _ in range(500):
        if small_pool.stats().abandoned == 0:
            break
        time.sleep(0.002)
    time.sleep(0.01)
    assert ran == []
    assert small_pool.stats().abandoned == 0


def _reason_of_timeout(fn: object, *args: object) -> str | None:
    try:
        fn(*args)  # type: ignore[operator]
    except resilient.TimeoutExceededError as error:
        return error.reason
    raise AssertionError("no timeout")


# Late results are timeouts, and say why


def test_a_result_that_comes_back_after_the_deadline_is_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call whose result reaches the caller after its deadline fails, saying how late."""
    shift = [0.0]
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + shift[0])

    @resilient.timeout(0.3)
    def held_the_gil() -> str:
        shift[0] = 0.9  # the caller only gets the result 0.9 s later
        return "late"

    with pytest.raises(resilient.TimeoutExceededError) as caught:
        held_the_gil()
    error = caught.value
    assert error.late_by is not None
    assert error.late_by >= 0.5
    assert error.reason is not None
    assert "GIL" in error.reason
    assert "after the deadline" in str(error)


@pytest.mark.realtime
def test_c_code_holding_the_gil_past_the_deadline_is_a_timeout() -> None:
    """A worker in C code that keeps the GIL past the budget: a timeout, never a result."""

    @resilient.timeout(0.002)
    def compute() -> int:
        return sum(range(2_000_000))  # C code: holds the GIL for tens of milliseconds

    with pytest.raises(resilient.TimeoutExceededError) as caught:
        compute()
    late = caught.value.late_by
    assert late is not None
    assert late >= 0.01
    assert "GIL" in str(caught.value)


def test_timeout_error_reads_well_with_and_without_lateness() -> None:
    """The message names the lateness and the reason only when they are known."""
    on_time = resilient.TimeoutExceededError("mod.fn", 0.3)
    late = resilient.TimeoutExceededError("mod.fn", 0.3)
    late.late_by, late.reason = 0.9, "it held the GIL"
    refused = resilient.TimeoutExceededError("mod.fn", 0.3)
    refused.reason = "not started"
    assert (on_time.late_by, on_time.reason) == (None, None)
    assert str(on_time) == "mod.fn did not finish within 0.3s"
    assert str(late) == (
        "mod.fn did not finish within 0.3s; the caller was released 0.9s after the "
        "deadline: it held the GIL"
    )
    assert str(refused) == "mod.fn did not finish within 0.3s: not started"
    copy = pickle.loads(pickle.dumps(late))
    assert (copy.late_by, copy.reason, str(copy)) == (0.9, "it held the GIL", str(late))


@pytest.mark.parametrize("value", [0, 65, 1.5, True, "4"])
def test_bad_max_threads_fails_at_decoration(value: object) -> None:
    """max_threads must be an integer from 1 to the pool size."""
    with pytest.raises(resilient.ConfigError) as caught:
        resilient.timeout(1, max_threads=value)  # type: ignore[arg-type]
    assert caught.value.parameter == "max_threads"


def test_a_thread_that_cannot_start_leaves_nothing_held(
    small_pool: WorkerPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the OS refuses a new thread, the caller gets that error and no slot stays taken."""

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    @resilient.timeout(1, max_threads=1)
    def work() -> int:
        return 1

    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refuse)
        with pytest.raises(RuntimeError, match="start new thread"):
            work()
    assert small_pool.stats().workers == 0
    assert work() == 1  # its one slot was given back
