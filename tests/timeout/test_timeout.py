"""@timeout: async cancellation, sync thread and signal strategies, virtual time."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

import resilient
from resilient._timeout.workers import EXPIRED, Share, WorkerPool
from resilient.metrics import MemorySink
from resilient.testing import FakeClock

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


# Virtual time: a FakeClock drives deadlines, nothing waits.


async def test_async_sixty_second_delay_under_45s_budget(fake_clock: FakeClock) -> None:
    """The seed's chaos case: a 60 s delay under a 45 s timeout fails at 45 s, instantly."""

    @resilient.timeout(resilient.Timeouts.ai_operation)
    async def generate() -> str:
        await fake_clock.asleep(60)
        return "late"

    started = time.perf_counter()
    with pytest.raises(resilient.TimeoutExceededError) as caught:
        await generate()
    assert time.perf_counter() - started < 0.5
    assert fake_clock.monotonic() == 45.0
    assert caught.value.seconds == 45.0
    assert "generate" in str(caught.value)


def test_sync_sixty_second_delay_under_45s_budget(fake_clock: FakeClock) -> None:
    """The same in sync code, with the thread strategy."""

    @resilient.timeout("ai_operation")
    def generate() -> str:
        fake_clock.sleep(60)
        return "late"

    with pytest.raises(resilient.TimeoutExceededError):
        generate()
    assert fake_clock.monotonic() == 45.0


def test_virtual_call_that_finishes_in_time_returns(fake_clock: FakeClock) -> None:
    """A call that sleeps less than its budget returns its result."""

    @resilient.timeout(10, strategy="signal")
    def quick() -> str:
        fake_clock.sleep(9.5)
        return "done"

    assert quick() == "done"


def test_virtual_call_that_overran_its_budget_fails(fake_clock: FakeClock) -> None:
    """A call whose virtual duration passed the budget fails even if it returned."""

    @resilient.timeout(1)
    def slow() -> str:
        fake_clock.advance(2)
        return "too late"

    with pytest.raises(resilient.TimeoutExceededError):
        slow()


def test_nested_timeouts_share_the_earliest_deadline(fake_clock: FakeClock) -> None:
    """An inner budget longer than the outer one is cut to the outer deadline."""
    seen: list[float | None] = []

    @resilient.timeout(5)
    def outer() -> None:
        fake_clock.advance(1)
        inner()

    @resilient.timeout(30)
    def inner() -> None:
        seen.append(resilient.remaining())
        fake_clock.sleep(60)

    with pytest.raises(resilient.TimeoutExceededError) as caught:
        outer()
    assert seen == [4.0]
    assert "outer" in str(caught.value)  # the outer budget is the one that ran out
    assert fake_clock.monotonic() == 5.0


@pytest.mark.realtime
@pytest.mark.parametrize("strategy", ["thread", "signal"])
def test_nested_sync_timeouts_on_the_system_clock_publish_the_earliest_deadline(
    strategy: str,
) -> None:
    """On the system clock, each call sees its own budget in remaining(), and an inner
    budget longer than the outer one is cut to the outer deadline."""
    seen: list[float | None] = []

    @resilient.timeout(0.5, strategy=strategy)  # type: ignore[arg-type]
    def outer() -> None:
        seen.append(resilient.remaining())
        inner()

    @resilient.timeout(30, strategy=strategy)  # type: ignore[arg-type]
    def inner() -> None:
        seen.append(resilient.remaining())

    outer()
    assert len(seen) == 2
    assert all(left is not None and 0.0 < left <= 0.5 for left in seen)


@pytest.mark.realtime
async def test_nested_async_timeouts_on_the_system_clock_publish_the_earliest_deadline() -> None:
    """On the loop's clock, each awaited call sees its own budget in remaining(), and an
    inner budget longer than the outer one is cut to the outer deadline."""
    seen: list[float | None] = []

    @resilient.timeout(0.5)
    async def outer() -> None:
        seen.append(resilient.remaining())
        await inner()

    @resilient.timeout(30)
    async def inner() -> None:
        seen.append(resilient.remaining())

    await outer()
    assert len(seen) == 2
    assert all(left is not None and 0.0 < left <= 0.5 for left in seen)


def test_bad_strategy_and_max_threads_errors_show_the_value_and_what_is_allowed() -> None:
    """timeout() refuses an unknown strategy and max_threads above the pool's 64 threads with
    a ConfigError carrying the value given; 64 itself is allowed."""
    with pytest.raises(resilient.ConfigError) as caught:
        resilient.timeout(1, strategy="fork")  # type: ignore[arg-type]
    error = caught.value
    assert (error.parameter, error.value) == ("strategy", "fork")
    assert error.allowed == "'thread' or 'signal'"
    with pytest.raises(resilient.ConfigError) as caught:
        resilient.timeout(1, max_threads=65)
    error = caught.value
    assert (error.parameter, error.value, error.allowed) == (
        "max_threads",
        65,
        "an integer from 1 to 64",
    )
    assert resilient.timeout(1, max_threads=64) is not None


def test_remaining_is_zero_once_the_deadline_has_passed(fake_clock: FakeClock) -> None:
    """Past the deadline no budget is left: remaining() is 0.0, never a positive number."""
    seen: list[float | None] = []

    @resilient.timeout(5, strategy="signal")
    def overrun() -> None:
        seen.append(resilient.remaining())
        fake_clock.advance(7)
        seen.append(resilient.remaining())

    with pytest.raises(resilient.TimeoutExceededError):
        overrun()
    assert seen == [5.0, 0.0]
    assert resilient.remaining() is None


def test_remaining_is_none_without_a_deadline(fake_clock: FakeClock) -> None:
    """Outside any timeout there is no budget."""
    assert resilient.remaining() is None


def test_fake_sleep_records_and_advances(fake_clock: FakeClock) -> None:
    """Sleeps on the fake clock advance time at once and are recorded."""
    fake_clock.sleep(1.5)
    fake_clock.advance(0.5)
    assert fake_clock.monotonic() == 2.0
    assert fake_clock.sleeps == [1.5]


def test_use_clock_restores_the_previous_clock() -> None:
    """use_clock installs a clock for a block only."""
    before = resilient.configuration().clock
    with resilient.testing.use_clock(FakeClock()) as fake:
        assert resilient.configuration().clock is fake
    assert resilient.configuration().clock is before


def test_configure_rejects_a_non_clock() -> None:
    """configure(clock=...) wants monotonic, sleep and asleep."""
    with pytest.raises(resilient.ConfigError, match="clock"):
        resilient.configure(clock=object())  # type: ignore[arg-type]


# Real time: the few tests that must measure real threads and signals (well under 1 s).


@pytest.mark.realtime
async def test_async_timeout_cancels_the_awaited_work() -> None:
    """The event loop cancels the call at the deadline; the error is a TimeoutError."""
    cancelled = asyncio.Event()

    @resilient.timeout(0.02)
    async def hang() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError) as caught:
        await hang()
    assert isinstance(caught.value, resilient.TimeoutExceededError)
    assert cancelled.is_set()


@pytest.mark.realtime
async def test_an_async_timeout_names_the_function_and_counts_it() -> None:
    """An async call stopped by the loop raises TimeoutExceededError naming the function,
    and timeouts_total counts it under that name."""
    sink = MemorySink()
    resilient.configure(metrics=sink)

    @resilient.timeout(0.02)
    async def hang() -> None:
        await asyncio.sleep(5)

    with pytest.raises(resilient.TimeoutExceededError) as caught:
        await hang()
    assert caught.value.name.endswith("hang")
    assert sink.counter("timeouts_total", policy=caught.value.name) == 1


@pytest.mark.realtime
async def test_async_timeout_keeps_an_unrelated_timeout_error() -> None:
    """A TimeoutError raised by the function itself is not relabelled."""

    @resilient.timeout(5)
    async def own() -> None:
        raise TimeoutError("mine")

    with pytest.raises(TimeoutError, match="mine") as caught:
        await own()
    assert not isinstance(caught.value, resilient.TimeoutExceededError)


@pytest.mark.realtime
async def test_outer_cancellation_is_not_swallowed() -> None:
    """Cancelling the task running a timed call cancels it; no TimeoutExceededError."""
    started = asyncio.Event()

    @resilient.timeout(5)
    async def hang() -> None:
        started.set()
        await asyncio.sleep(5)

    task = asyncio.create_task(hang())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.realtime
def test_thread_strategy_releases_the_caller_and_counts_abandoned_work() -> None:
    """The caller gets TimeoutExceededError at the deadline; the stuck call is counted."""
    release = threading.Event()
    finished = threading.Event()

    @resilient.timeout(0.02)
    def stuck() -> None:
        release.wait(5)
        finished.set()

    before = resilient.timeout_pool_stats().abandoned
    started = time.perf_counter()
    with pytest.raises(resilient.TimeoutExceededError):
        stuck()
    assert time.perf_counter() - started < 0.5
    assert resilient.timeout_pool_stats().abandoned == before + 1
    release.set()
    assert finished.wait(2)
    for _ in range(200):
        if resilient.timeout_pool_stats().abandoned == before:
            break
        time.sleep(0.001)
    assert resilient.timeout_pool_stats().abandoned == before


def test_thread_strategy_runs_in_the_callers_context() -> None:
    """Context variables and the deadline reach the worker thread."""

    @resilient.timeout(5)
    def peek() -> tuple[str, float | None, bool]:
        return request_id.get(), resilient.remaining(), threading.current_thread().daemon

    token = request_id.set("abc")
    try:
        rid, left, daemon = peek()
    finally:
        request_id.reset(token)
    assert rid == "abc"
    assert left is not None
    assert 4 < left <= 5
    assert daemon


def test_thread_strategy_raises_the_callers_own_exception() -> None:
    """The function's exception reaches the caller as the same object."""
    error = ValueError("mine")

    @resilient.timeout(5)
    def fail() -> None:
        raise error

    with pytest.raises(ValueError, match="mine") as caught:
        fail()
    assert caught.value is error


@pytest.mark.realtime
def test_signal_strategy_interrupts_python_code() -> None:
    """SIGALRM stops a busy loop on the main thread at the deadline."""

    @resilient.timeout(0.02, strategy="signal")
    def spin() -> None:
        while True:
            pass

    started = time.perf_counter()
    with pytest.raises(resilient.TimeoutExceededError):
        spin()
    assert time.perf_counter() - started < 0.5


@pytest.mark.realtime
def test_signal_strategy_nested_outer_deadline_first() -> None:
    """With nested signal timeouts, the earlier (outer) deadline fires and is reported."""

    @resilient.timeout(0.02, strategy="signal")
    def outer() -> None:
        inner()

    @resilient.timeout(5, strategy="signal")
    def inner() -> None:
        while True:
            pass

    with pytest.raises(resilient.TimeoutExceededError, match="outer"):
        outer()


def test_signal_strategy_off_the_main_thread_says_why() -> None:
    """Used in another thread, the signal strategy explains that it needs the main thread."""

    @resilient.timeout(1, strategy="signal")
    def work() -> int:
        return 1

    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: errors.append(_catch(work)))
    thread.start()
    thread.join()
    assert isinstance(errors[0], resilient.ResilienceError)
    assert "main thread" in str(errors[0])
    assert str(errors[0]).endswith(
        "signals are only delivered there; use strategy='thread' in other threads"
    )
    assert work() == 1


def _catch(fn: object) -> BaseException | None:
    try:
        fn()  # type: ignore[operator]
    except BaseException as error:
        return error
    return None


@pytest.mark.realtime
def test_idle_workers_exit() -> None:
    """A pool whose workers sit idle past idle_timeout holds no threads."""
    pool = WorkerPool(max_workers=2, idle_timeout=0.01)
    assert pool.run(contextvars.copy_context(), lambda: 7, (), {}, 1.0, Share(2)) == 7
    for _ in range(500):
        if pool.stats().workers == 0:
            break
        time.sleep(0.002)
    assert pool.stats().workers == 0


@pytest.mark.realtime
def test_saturated_pool_queues_until_a_worker_frees() -> None:
    """Past max_workers, calls wait for a worker instead of starting more threads."""
    pool = WorkerPool(max_workers=1, idle_timeout=1.0)
    gate = threading.Event()
    results: list[object] = []
    share = Share(2)
    first = threading.Thread(
        target=lambda: results.append(
            pool.run(contextvars.copy_context(), gate.wait, (2,), {}, 2.0, share)
        )
    )
    first.start()
    while pool.stats().workers == 0 or pool.stats().idle == 1:
        time.sleep(0.001)
    assert pool.run(contextvars.copy_context(), lambda: 1, (), {}, 0.01, share) is EXPIRED
    assert pool.stats().workers == 1
    gate.set()
    first.join()
    assert results == [True]


@pytest.mark.parametrize(
    ("seconds", "strategy", "parameter"),
    [
        (0, "thread", "seconds"),
        (-1, "thread", "seconds"),
        (float("nan"), "thread", "seconds"),
        ("eternity", "thread", "seconds"),
        (1, "process", "strategy"),
        ("1", "thread", "seconds"),
    ],
)
def test_bad_arguments_fail_at_decoration(seconds: object, strategy: str, parameter: str) -> None:
    """Zero, negative, NaN budgets, unknown presets and strategies raise ConfigError."""
    with pytest.raises(resilient.ConfigError) as caught:
        resilient.timeout(seconds, strategy=strategy)  # type: ignore[arg-type]
    assert caught.value.parameter == parameter


def test_presets_hold_the_seed_values() -> None:
    """Timeouts and the seed's tables carry the documented numbers."""
    assert (
        resilient.Timeouts.quick,
        resilient.Timeouts.standard,
        resilient.Timeouts.heavy,
        resilient.Timeouts.ai_operation,
    ) == (5.0, 10.0, 30.0, 45.0)
    health = resilient.presets.CLIENT_TIMEOUTS["quick"]
    assert (health.connect, health.receive, health.total) == (3.0, 5.0, 5.0)
    ai = resilient.presets.BACKEND_OPERATIONS["ai_operation"]
    assert (ai.timeout, ai.failure_threshold) == (45.0, 3)
    assert resilient.timeout("heavy").layer.describe()["seconds"] == 30.0


def test_errors_pickle_and_read_well() -> None:
    """The library's errors survive pickling (process pools) and keep their messages."""
    import pickle

    for error in (
        resilient.TimeoutExceededError("mod.fn", 45.0),
        resilient.CircuitOpenError("ai", 3.0),
        resilient.ConfigError("attempts", 0, "an integer >= 1"),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
    assert str(resilient.TimeoutExceededError("mod.fn", 45.0)) == "mod.fn did not finish within 45s"


@pytest.mark.realtime
def test_signal_timer_left_armed_never_kills_the_process_at_exit() -> None:
    """A process that used the signal strategy exits cleanly, even with the timer pending."""
    import subprocess
    import sys

    code = (
        "import atexit, signal, time\n"
        # Registered first, so they run last: the default action back, then a pause in
        # which a still-armed timer would kill the process (as at interpreter teardown).
        "atexit.register(time.sleep, 0.5)\n"
        "atexit.register(signal.signal, signal.SIGALRM, signal.SIG_DFL)\n"
        "import resilient\n"
        "@resilient.timeout(0.3, strategy='signal')\n"
        "def quick(): return 1\n"
        "quick()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], timeout=30, check=False)
    assert result.returncode == 0
