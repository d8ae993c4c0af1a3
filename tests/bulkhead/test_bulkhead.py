"""@bulkhead: at most max_concurrent calls at once, a FIFO queue, the rest refused at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

import resilient
from resilient._bulkhead.compartment import Compartment
from resilient._runtime import deadline as _deadline
from resilient.metrics import MemorySink
from resilient.testing import FakeClock


def _compartment(fn: Any) -> Compartment:
    (layer,) = [step for step in resilient._wrapping.layer.layers_of(fn) if step.kind == "bulkhead"]
    found = layer.compartment or next(iter(layer.own.values()))
    assert isinstance(found, Compartment)
    return found


def _until(condition: Callable[[], bool]) -> None:
    """Yield the CPU until ``condition`` holds (another thread's progress), for 5 s at most."""
    end = time.monotonic() + 5.0
    while not condition():
        assert time.monotonic() < end, "the condition never held"
        time.sleep(0)


class Gate:
    """A sync function that holds its slot until released, counting who is inside."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.inside = 0
        self.most = 0
        self.order: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, key: int = 0) -> int:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.order.append(key)
        try:
            self.release.wait(5.0)
            return key
        finally:
            with self.lock:
                self.inside -= 1


def test_calls_past_the_limit_are_refused_at_once_with_the_name_and_limits() -> None:
    """With every slot taken and no queue, a call fails at once with BulkheadFullError."""
    gate = Gate()
    guarded = resilient.bulkhead(2, name="db")(gate)
    with ThreadPoolExecutor(2) as pool:
        running = [pool.submit(guarded, i) for i in range(2)]
        _until(lambda: gate.inside == 2)
        with pytest.raises(resilient.BulkheadFullError) as caught:
            guarded(9)
        gate.release.set()
        assert [f.result() for f in running] == [0, 1]
    error = caught.value
    assert isinstance(error, resilient.ResilienceError)
    assert (error.name, error.max_concurrent, error.max_queue) == ("db", 2, 0)
    assert "no queue" in str(error)
    assert _compartment(guarded).active == 0


def test_sync_queue_is_first_come_first_served() -> None:
    """Threads waiting for the one slot get it in the order they arrived."""
    gate = Gate()
    guarded = resilient.bulkhead(1, max_queue=5)(gate)
    compartment = _compartment(guarded)
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(guarded, 0)]
        _until(lambda: gate.inside == 1)
        for key in range(1, 6):
            futures.append(pool.submit(guarded, key))
            _until(lambda key=key: len(compartment.waiters) == key)  # type: ignore[misc]
        with pytest.raises(resilient.BulkheadFullError, match="queue is full"):
            guarded(99)
        gate.release.set()
        assert [f.result() for f in futures] == list(range(6))
    assert gate.order == list(range(6))
    assert gate.most == 1
    assert (compartment.active, len(compartment.waiters)) == (0, 0)


def test_sync_queue_timeout_runs_on_the_configured_clock(fake_clock: FakeClock) -> None:
    """A queued thread gives up after queue_timeout on the fake clock, leaving the queue."""
    gate = Gate()
    guarded = resilient.bulkhead(1, max_queue=1, queue_timeout=2.0)(gate)
    compartment = _compartment(guarded)
    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(guarded, 0)
        _until(lambda: gate.inside == 1)
        queued: Future[int] = pool.submit(guarded, 1)
        _until(lambda: len(compartment.waiters) == 1)
        fake_clock.advance(2.0)
        with pytest.raises(resilient.BulkheadFullError, match="queue_timeout=2s"):
            queued.result(5.0)
        gate.release.set()
        assert holder.result() == 0
    assert (compartment.active, len(compartment.waiters)) == (0, 0)


def test_a_call_never_waits_past_the_deadline(fake_clock: FakeClock) -> None:
    """With the deadline already reached, a call that would queue is refused at once."""
    gate = Gate()
    guarded = resilient.bulkhead(1, max_queue=4, queue_timeout=60)(gate)
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(guarded, 0)
        _until(lambda: gate.inside == 1)
        token = _deadline.enter(fake_clock.monotonic())
        try:
            with pytest.raises(resilient.BulkheadFullError, match="deadline"):
                guarded(1)
        finally:
            _deadline.leave(token)
        gate.release.set()
        holder.result()


def test_keyboard_interrupt_inside_frees_the_slot() -> None:
    """A KeyboardInterrupt raised by the function passes through and leaks no permit."""

    @resilient.bulkhead(1)
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert _compartment(interrupted).active == 0


def test_one_name_is_one_compartment_and_its_limits_must_agree() -> None:
    """Two functions under one name share the slots; other limits for it are a ConfigError."""
    gate = Gate()
    first = resilient.bulkhead(1, name="ai")(gate)
    second = resilient.bulkhead(1, name="ai")(lambda: "never")
    assert _compartment(first) is _compartment(second)
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(first, 0)
        _until(lambda: gate.inside == 1)
        with pytest.raises(resilient.BulkheadFullError):
            second()
        gate.release.set()
        holder.result()
    with pytest.raises(resilient.ConfigError, match="one name is one compartment") as caught:
        resilient.bulkhead(3, name="ai")
    assert caught.value.parameter == "max_concurrent"
    with pytest.raises(resilient.ConfigError, match="max_queue=0") as caught:
        resilient.bulkhead(1, max_queue=4, name="ai")
    assert caught.value.parameter == "max_queue"


def test_instant_refuses_a_call_that_would_queue() -> None:
    """Under testing.instant() nothing waits: a call that would queue is refused at once."""
    gate = Gate()
    guarded = resilient.bulkhead(1, max_queue=3)(gate)
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(guarded, 0)
        _until(lambda: gate.inside == 1)
        with (
            resilient.testing.instant(),
            pytest.raises(resilient.BulkheadFullError, match="instant"),
        ):
            guarded(1)
        gate.release.set()
        holder.result()


def test_disabled_passes_calls_straight_through() -> None:
    """Under testing.disabled() a full bulkhead lets calls through untouched."""
    gate = Gate()
    guarded = resilient.bulkhead(1)(gate)
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(guarded, 0)
        _until(lambda: gate.inside == 1)
        with resilient.testing.disabled():
            gate.release.set()
            assert guarded(5) == 5
        holder.result()


def test_rejections_and_the_active_gauge_are_reported(sink: MemorySink) -> None:
    """A refused call counts in bulkhead_rejections_total; bulkhead_active follows the slots."""
    gate = Gate()
    guarded = resilient.bulkhead(1, name="pay")(gate)
    heard: list[object] = []
    resilient.add_listener(heard.append)
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(guarded, 0)
        _until(lambda: gate.inside == 1)
        assert sink.gauge_value("bulkhead_active", bulkhead="pay") == 1
        report = resilient.telemetry.generate_report()
        assert report["saturated_bulkheads"] == {
            "pay": {"active": 1, "max_concurrent": 1, "queued": 0, "max_queue": 0}
        }
        assert report["summary"]["saturated_bulkheads"] == 1
        with pytest.raises(resilient.BulkheadFullError):
            guarded(1)
        gate.release.set()
        holder.result()
    assert sink.counter("bulkhead_rejections_total", bulkhead="pay") == 1
    assert sink.gauge_value("bulkhead_active", bulkhead="pay") == 0
    assert heard == [
        resilient.BulkheadRejected("pay", 1, 0, "every slot is taken and it has no queue")
    ]
    assert resilient.telemetry.generate_report()["saturated_bulkheads"] == {}


def test_a_rejection_is_counted_for_the_health_report_with_metrics_off() -> None:
    """With metrics off, rejections still reach the telemetry window's counters."""
    gate = Gate()
    guarded = resilient.bulkhead(1, name="off")(gate)
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(guarded, 0)
        _until(lambda: gate.inside == 1)
        with pytest.raises(resilient.BulkheadFullError):
            guarded(1)
        gate.release.set()
        holder.result()
    assert resilient.telemetry.window.totals["bulkhead_rejections_total"] == 1


def test_eight_threads_of_ten_thousand_calls_never_exceed_the_limit() -> None:
    """8 threads x 10,000 calls through a bulkhead of 3 (queue 8): never more than 3 inside,
    every call answered, every slot given back."""
    inside = [0, 0]  # now, most
    lock = threading.Lock()

    @resilient.bulkhead(3, max_queue=8)
    def work() -> int:
        with lock:
            inside[0] += 1
            inside[1] = max(inside)
        with lock:
            inside[0] -= 1
        return 1

    def run() -> int:
        return sum(work() for _ in range(10_000))

    with ThreadPoolExecutor(8) as pool:
        totals = list(pool.map(lambda _: run(), range(8)))
    assert totals == [10_000] * 8
    assert inside[1] <= 3
    compartment = _compartment(work)
    assert (compartment.active, len(compartment.waiters)) == (0, 0)


def test_a_chaos_fault_inside_the_bulkhead_gives_the_slot_back() -> None:
    """A fault injected by a chaos context manager runs inside the slot and frees it."""
    from resilient import chaos

    guarded = resilient.bulkhead(1)(lambda: "ok")
    with (
        chaos.inject_fault(ConnectionError, enabled=True),
        pytest.raises(ConnectionError, match="injected"),
    ):
        guarded()
    assert _compartment(guarded).active == 0
    assert guarded() == "ok"


def test_reset_forgets_the_named_compartments() -> None:
    """After testing.reset() a name may be given other limits (a fresh compartment)."""
    first = resilient.bulkhead(1, name="reset-me")(lambda: 1)
    resilient.testing.reset()
    second = resilient.bulkhead(5, name="reset-me")(lambda: 2)
    assert _compartment(first) is not _compartment(second)
    assert _compartment(second).max_concurrent == 5


@pytest.mark.parametrize("granted_first", [False, True], ids=["waiting", "just-granted"])
def test_keyboard_interrupt_while_queued_leaks_neither_place_nor_slot(
    monkeypatch: pytest.MonkeyPatch, granted_first: bool
) -> None:
    """A KeyboardInterrupt arriving while a thread waits in the queue (or just as the slot
    is handed to it) leaves the queue and gives any slot handed to it back."""
    from resilient._bulkhead import decorator

    gate = Gate()
    guarded = resilient.bulkhead(1, max_queue=2)(gate)
    compartment = _compartment(guarded)
    real_wait = decorator._wait_sync

    def interrupted(signal: threading.Lock, wait: float | None) -> None:
        if granted_first:
            gate.release.set()  # the holder finishes and hands its slot over
            real_wait(signal, wait)
        raise KeyboardInterrupt

    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(guarded, 0)
        _until(lambda: gate.inside == 1)
        monkeypatch.setattr(decorator, "_wait_sync", interrupted)
        with pytest.raises(KeyboardInterrupt):
            guarded(1)
        monkeypatch.setattr(decorator, "_wait_sync", real_wait)
        gate.release.set()
        holder.result()
    assert (compartment.active, len(compartment.waiters)) == (0, 0)
    assert guarded(2) == 2


def test_a_metrics_override_receives_the_gauge_and_the_rejections() -> None:
    """bulkhead(..., metrics=sink) reports bulkhead_active and rejections to that sink."""
    own = MemorySink()
    gate = Gate()
    guarded = resilient.bulkhead(1, name="own-sink", metrics=own)(gate)
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(guarded, 0)
        _until(lambda: gate.inside == 1)
        assert own.gauge_value("bulkhead_active", bulkhead="own-sink") == 1
        with pytest.raises(resilient.BulkheadFullError):
            guarded(1)
        gate.release.set()
        holder.result()
    assert own.counter("bulkhead_rejections_total", bulkhead="own-sink") == 1
    assert own.gauge_value("bulkhead_active", bulkhead="own-sink") == 0


def test_queue_timeout_zero_is_the_reason_given_not_the_deadline() -> None:
    """With ``queue_timeout=0`` and no deadline, a refused call's reason names
    ``queue_timeout``, not a deadline the caller never set."""
    gate = Gate()
    guarded = resilient.bulkhead(1, max_queue=1, queue_timeout=0)(gate)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(guarded, 0)
        _until(lambda: gate.inside == 1)
        with pytest.raises(resilient.BulkheadFullError) as caught:
            guarded(9)
        gate.release.set()
        assert running.result() == 0
    assert "queue_timeout=0" in caught.value.reason
    assert "deadline" not in caught.value.reason
