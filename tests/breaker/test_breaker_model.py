"""The breaker, driven through its public API, agrees with a tiny reference model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from strategies import SLOW, BoomError, IgnoredError, breaker_options, durations

import resilient
from resilient import BreakerConfig, BreakerMode, CircuitBreaker, CircuitOpenError
from resilient._circuit.rules import BUCKETS
from resilient.testing import FakeClock
from resilient.typing import StateStore

Token = tuple[str, int]


@dataclass
class Model:
    """The breaker's rules, written as plainly as possible."""

    config: BreakerConfig
    mode: str = "closed"
    epoch: int = 0  # bumped on every mode change: reports from older periods are stale
    failures: int = 0
    calls: list[tuple[int, bool, bool]] = field(default_factory=list)  # (bucket, failed, slow)
    open_until: float = 0.0
    trips: int = 0
    probes: dict[int, float] = field(default_factory=dict)  # probe id -> lease expiry
    next_probe: int = 0
    successes: int = 0

    def acquire(self, now: float) -> tuple[str, Any]:
        """``("allow" | "probe", token)`` or ``("reject", retry_after)``."""
        if self.mode in ("closed", "disabled"):
            return "allow", ("closed", self.epoch)
        if self.mode == "forced_open":
            return "reject", None
        if self.mode == "open":
            if now < self.open_until:
                return "reject", self.open_until - now
            self._enter("half_open")
        self.probes = {p: exp for p, exp in self.probes.items() if exp > now}
        if len(self.probes) >= self.config.half_open_max_calls:
            return "reject", min(self.probes.values()) - now
        self.next_probe += 1
        self.probes[self.next_probe] = now + self.config.probe_timeout
        return "probe", ("probe", self.next_probe)

    def report(self, token: Token, outcome: str, duration: float, now: float) -> None:
        kind, key = token
        if kind == "closed":
            if self.mode == "closed" and key == self.epoch and outcome != "ignored":
                self._record(outcome == "failure", duration, now)
        elif self.mode == "half_open" and self.probes.get(key, now) > now:
            slow = self._slow(duration)
            if outcome == "failure" or (outcome == "success" and slow):
                self.failures += 1
                self._open(now)
            elif outcome == "success":
                del self.probes[key]
                self.successes += 1
                if self.successes >= self.config.success_threshold:
                    self.reset()
            else:
                del self.probes[key]

    def _slow(self, duration: float) -> bool:
        limit = self.config.slow_call_duration
        return limit is not None and duration >= limit

    def _bucket(self, now: float) -> int:
        span = self.config.window_duration
        return 0 if span is None else int(now * BUCKETS // span)

    def window(self, now: float) -> list[tuple[int, bool, bool]]:
        if self.config.window_duration is None:
            return self.calls[-(self.config.window_size or 1) :]
        return [c for c in self.calls if c[0] > self._bucket(now) - BUCKETS]

    def _record(self, failed: bool, duration: float, now: float) -> None:
        config = self.config
        self.failures = self.failures + 1 if failed else 0
        trip = config.failure_rate is None and self.failures >= config.failure_threshold
        if config.windowed:
            self.calls.append((self._bucket(now), failed, self._slow(duration)))
            window = self.window(now)
            if not trip and len(window) >= config.minimum_calls:
                failed_rate = sum(c[1] for c in window) / len(window)
                slow_rate = sum(c[2] for c in window) / len(window)
                trip = (config.failure_rate is not None and failed_rate >= config.failure_rate) or (
                    config.slow_call_rate is not None and slow_rate >= config.slow_call_rate
                )
                if trip:
                    assert len(window) >= config.minimum_calls  # the rate rule's floor
        if trip:
            self._open(now)

    def _enter(self, mode: str) -> None:
        self.mode = mode
        self.epoch += 1
        self.probes = {}
        self.successes = 0
        self.calls = []

    def _open(self, now: float) -> None:
        self._enter("open")
        self.trips += 1
        wait = self.config.reset_timeout * self.config.reset_backoff ** (self.trips - 1)
        cap = self.config.max_reset_timeout
        self.open_until = now + (wait if cap is None else min(wait, cap))

    def reset(self) -> None:
        self._enter("closed")
        self.failures = self.trips = 0

    def force_open(self) -> None:
        self._enter("forced_open")

    def disable(self) -> None:
        self._enter("disabled")
        self.failures = 0


PATHS = st.sampled_from(["decorated", "call", "with", "async"])
OUTCOMES = st.sampled_from(["success", "failure", "ignored", "slow"])


class BreakerMachine(RuleBasedStateMachine):
    """Calls, held probes, time and manual operations, checked step by step."""

    make_store: Callable[[], StateStore]

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(start=1000.0)
        resilient.configure(clock=self.clock)
        self.loop = asyncio.new_event_loop()
        self.model: Model | None = None
        self.held: list[tuple[Token, float]] = []  # (token, when acquired)
        self.reached = 0

    def teardown(self) -> None:
        self.loop.close()
        resilient.testing.reset()

    @initialize(options=breaker_options())
    def build(self, options: dict[str, Any]) -> None:
        config = BreakerConfig(**options)
        self.model = Model(config)
        self.breaker = CircuitBreaker("model", config, store=type(self).make_store())

        def target(outcome: str) -> str:
            self.reached += 1
            if outcome == "slow":
                self.clock.advance(SLOW + 1.0)
            elif outcome == "failure":
                raise BoomError
            elif outcome == "ignored":
                raise IgnoredError
            return outcome

        async def atarget(outcome: str) -> str:
            return target(outcome)

        self.target = target
        self.decorated = self.breaker(target)
        self.adecorated = self.breaker(atarget)

    # --- calls ---------------------------------------------------------------------

    def _run(self, path: str, outcome: str) -> None:
        if path == "decorated":
            self.decorated(outcome)
        elif path == "call":
            self.breaker.call(self.target, outcome)
        elif path == "with":
            with self.breaker:
                self.target(outcome)
        else:
            self.loop.run_until_complete(self.adecorated(outcome))

    @rule(path=PATHS, outcome=OUTCOMES)
    @precondition(lambda self: self.model is not None)
    def call(self, path: str, outcome: str) -> None:
        """A call goes through exactly when the model admits it, and is counted as it says."""
        assert self.model is not None
        start = self.clock.monotonic()
        verdict, token = self.model.acquire(start)
        before = self.reached
        errors = (BoomError, IgnoredError, CircuitOpenError)
        try:
            self._run(path, outcome)
        except errors as error:
            raised: BaseException | None = error
        else:
            raised = None
        if verdict == "reject":
            assert isinstance(raised, CircuitOpenError), (verdict, raised)
            assert self.reached == before
            assert raised.retry_after == (None if token is None else pytest.approx(token))
            return
        assert not isinstance(raised, CircuitOpenError), raised
        assert self.reached == before + 1
        duration = self.clock.monotonic() - start
        reported = "success" if outcome == "slow" else outcome
        self.model.report(token, reported, duration, self.clock.monotonic())

    @rule(seconds=durations)
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # Shortcuts to the interesting states, so short runs spend their steps there.

    @rule(path=PATHS)
    def fail_until_open(self, path: str) -> None:
        """Failing calls until the breaker trips (a closed breaker always trips eventually)."""
        assert self.model is not None
        for _ in range(12):
            if self.model.mode != "closed":
                break
            self.call(path, "failure")

    @rule()
    def wait_for_probe(self) -> None:
        """Time moves to the exact moment an open breaker lets a probe through."""
        assert self.model is not None
        now = self.clock.monotonic()
        if self.model.mode == "open" and now < self.model.open_until:
            self.clock.advance(self.model.open_until - now)

    # --- probes held open across steps ---------------------------------------------

    @rule()
    @precondition(lambda self: self.model is not None and len(self.held) < 4)
    def acquire(self) -> None:
        """Entering ``with breaker`` is admitted exactly when the model admits a call."""
        assert self.model is not None
        verdict, token = self.model.acquire(self.clock.monotonic())
        try:
            self.breaker.__enter__()
        except CircuitOpenError:
            assert verdict == "reject"
            return
        assert verdict != "reject"
        self.held.append((token, self.clock.monotonic()))

    @rule(outcome=st.sampled_from(["success", "failure", "ignored", "cancelled"]))
    @precondition(lambda self: bool(self.held))
    def release(self, outcome: str) -> None:
        """Leaving the innermost ``with breaker`` reports its outcome (cancellation: none)."""
        assert self.model is not None
        token, acquired = self.held.pop()
        error: BaseException | None = {
            "success": None,
            "failure": BoomError(),
            "ignored": IgnoredError(),
            "cancelled": asyncio.CancelledError(),
        }[outcome]
        self.breaker.__exit__(type(error) if error else None, error, None)
        reported = "ignored" if outcome == "cancelled" else outcome
        now = self.clock.monotonic()
        self.model.report(token, reported, now - acquired, now)

    # --- manual operations -----------------------------------------------------------

    # Mostly reset: forced-open and disabled breakers ignore everything, a dull place to be.
    @rule(operation=st.sampled_from(["force_open", "disable", "reset", "reset", "reset"]))
    @precondition(lambda self: self.model is not None)
    def manual(self, operation: str) -> None:
        assert self.model is not None
        getattr(self.breaker, operation)()
        getattr(self.model, operation)()

    # --- invariants -----------------------------------------------------------------

    @invariant()
    def agrees_with_model(self) -> None:
        """Same mode, same consecutive failures, same reopening time."""
        if self.model is None:
            return
        state = self.breaker.snapshot()
        assert state.mode == BreakerMode(self.model.mode)
        assert state.failures == self.model.failures
        if state.mode is BreakerMode.OPEN:
            assert state.open_until == pytest.approx(self.model.open_until)
        if state.mode is BreakerMode.HALF_OPEN:
            assert state.successes == self.model.successes < self.model.config.success_threshold

    @invariant()
    def probes_bounded(self) -> None:
        """Never more than ``half_open_max_calls`` probe permits with a live lease."""
        if self.model is None:
            return
        now = self.clock.monotonic()
        live = [p for p in self.breaker.snapshot().probes if p[1] > now]
        assert len(live) <= self.model.config.half_open_max_calls

    @invariant()
    def open_rejects_until_timeout(self) -> None:
        """``OPEN`` means calls are rejected, for exactly as long as the model says."""
        if self.model is None:
            return
        now = self.clock.monotonic()
        if self.model.mode == "open":
            assert self.breaker.opened is (now < self.model.open_until)
            if now < self.model.open_until:
                assert self.breaker.retry_after == pytest.approx(self.model.open_until - now)


def test_breaker_agrees_with_model(make_store: Callable[[], StateStore]) -> None:
    """Every sequence of calls, probes, time and manual operations matches the model."""

    class Machine(BreakerMachine):
        pass

    Machine.make_store = staticmethod(make_store)  # type: ignore[method-assign]
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=100,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
