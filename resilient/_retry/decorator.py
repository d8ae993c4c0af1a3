"""``@retry``: attempt a call again after failures, with exponential backoff and jitter.

The happy path is a plain call inside ``try``. Everything else starts after the first
failure, in a small per-call ``_Plan``: the shared retry core (``plan.RetryPlan``:
attempts, waits, deadline, the note) with this decorator's own rules around it. It
answers ``Sleep(seconds)`` or ``GiveUp(reason)``; the sync and async loops act on that.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from random import random
from typing import TYPE_CHECKING, Any, ClassVar

from .._runtime import config as _config
from .._runtime import deadline as _deadline
from .._runtime import validate as _validate
from .._runtime.types import ExceptionFilter, MetricsSink, OnRetry, Seconds
from .._wrapping.emit import Emitter, emitter_for
from .._wrapping.hooks import add_note_once, hook_failed, hook_note, hook_prefix
from .._wrapping.layer import AnyCall, AsyncCall, AsyncStreamCall, Decorator, Layer, StreamCall
from ..exceptions import CircuitOpenError, ConfigError
from ..metrics._names import RETRY_ATTEMPTS
from .plan import NOT_RETRYABLE, GiveUp, RetryPlan, Sleep, attempts
from .stream import retry_stream_async, retry_stream_sync

if TYPE_CHECKING:
    from .budget import RetryBudget

__all__ = ["RetryConfig", "retry"]

_get_deadline = _deadline.get


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """How many attempts, and how long to wait between them.

    The wait before attempt ``n + 1`` is ``initial_delay * multiplier ** (n - 1)``, capped
    at ``max_delay``, then spread by ``± jitter`` (a fraction) and capped again.

    An error's ``retry_after`` (seconds, as servers send in ``Retry-After``) replaces that
    wait when it is at most ``max_retry_after`` (``max_delay`` does not cap it); a longer
    one ends the retries at once, since asking again sooner than the server said would
    only fail again. Durations are at most ``1e9`` seconds.
    """

    attempts: int = 3
    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_retry_after: float = 300.0

    standard: ClassVar[RetryConfig]
    """The default: 3 attempts, 0.5 s, doubling, at most 30 s, ±20 %; a
    ``retry_after`` of up to 300 s is honoured."""
    quick: ClassVar[RetryConfig]
    """Health checks and cheap reads: 2 attempts, 0.1 s, doubling, at most 1 s, ±20 %; a
    ``retry_after`` of up to 5 s is honoured."""
    patient: ClassVar[RetryConfig]
    """Background jobs that can wait: 5 attempts, 1 s, doubling, at most 60 s, ±20 %; a
    ``retry_after`` of up to 300 s is honoured."""
    ai_operation: ClassVar[RetryConfig]
    """LLM calls: 3 attempts, 2 s, doubling, at most 30 s, ±20 %; a ``retry_after`` of up
    to 300 s is honoured."""
    never: ClassVar[RetryConfig]
    """One attempt: no retry at all (to switch retrying off by configuration)."""
    names: ClassVar[tuple[str, ...]] = ("standard", "quick", "patient", "ai_operation", "never")

    def __post_init__(self) -> None:
        _validate.integer("attempts", self.attempts, minimum=1)
        for name in ("initial_delay", "max_delay", "max_retry_after"):
            seconds = _validate.required_duration(
                name, getattr(self, name), maximum=_validate.MAX_SECONDS
            )
            object.__setattr__(self, name, seconds)
        _validate.number("multiplier", self.multiplier, minimum=1.0)
        _validate.fraction("jitter", self.jitter)

    @classmethod
    def get(cls, name: str) -> RetryConfig:
        """The preset called ``name``; ``ConfigError`` for an unknown name."""
        if name not in cls.names:
            from ..presets import unknown_name

            raise unknown_name("config", name, cls.names, "a RetryConfig")
        preset: RetryConfig = getattr(cls, name)
        return preset

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based), jitter included.

        Never more than ``max_delay``, however large the step grows (no overflow).
        """
        try:
            wait = self.initial_delay * self.multiplier ** (attempt - 1)
        except OverflowError:  # multiplier ** n past the largest float
            wait = self.max_delay
        if not wait <= self.max_delay:  # also catches inf from initial_delay * a huge step
            wait = self.max_delay
        if self.jitter and wait:
            wait *= 1.0 + self.jitter * (2.0 * random() - 1.0)
            if wait > self.max_delay:
                wait = self.max_delay
        return wait


RetryConfig.standard = RetryConfig()
RetryConfig.quick = RetryConfig(attempts=2, initial_delay=0.1, max_delay=1.0, max_retry_after=5.0)
RetryConfig.patient = RetryConfig(attempts=5, initial_delay=1.0, max_delay=60.0)
RetryConfig.ai_operation = RetryConfig(attempts=3, initial_delay=2.0, max_delay=30.0)
RetryConfig.never = RetryConfig(attempts=1)


def retry(
    config: RetryConfig | str | None = None,
    *,
    on: ExceptionFilter | None = None,
    attempts: int | None = None,
    initial_delay: Seconds | None = None,
    max_delay: Seconds | None = None,
    multiplier: float | None = None,
    jitter: float | None = None,
    max_retry_after: Seconds | None = None,
    on_retry: OnRetry | None = None,
    stop: Callable[[Any], bool] | None = None,
    wait: Callable[[Any], float] | None = None,
    metrics: MetricsSink | None = None,
    budget: RetryBudget | None = None,
    restart_stream: bool = False,
) -> Decorator:
    """Call again when the call raises one of ``on`` (default: any ``Exception``).

    ``config`` is a ``RetryConfig`` or a preset name (default ``"standard"``); keyword
    arguments override single fields. ``on`` also takes a tenacity ``retry_*`` object,
    and ``stop``/``wait`` take tenacity strategies (``stop`` replaces the attempt cap
    unless ``attempts`` is given too; it counts time from the start of the first attempt).
    A ``wait`` strategy's waits are used as given, capped only when ``max_delay`` is
    passed too. An error's ``retry_after`` sets the next wait when it is at most
    ``max_retry_after``; a longer one ends the retries at once.

    ``on_retry(attempt, error, delay)`` runs before each wait; if it raises, the retry goes
    on (the failure is logged, counted as ``hook_errors_total`` and noted on the error
    should the call fail in the end). An ``on`` predicate that raises means "do not retry":
    the call's error propagates with a note saying why. Never retried: an open circuit,
    cancellation, ``KeyboardInterrupt``, ``SystemExit``, and any wait that would end past
    the current deadline. ``metrics`` overrides the configured sink for this function
    (``retry_attempts_total``). ``budget`` (a ``RetryBudget``) counts each call and, after
    a failure, allows a retry only while retries stay within its share of the calls
    (fleet-wide with a RedisStore).

    On a generator or async generator function, an attempt that fails before its first
    item is retried; once an item has reached the caller a failure propagates, since
    the caller already has items. ``restart_stream=True`` retries such a failure too,
    by starting the stream again from scratch: the caller then gets those items again
    (a call always starts from scratch, so the setting changes nothing for calls).
    """
    if config is None:
        config = RetryConfig.standard
    elif isinstance(config, str):
        config = RetryConfig.get(config)
    elif not isinstance(config, RetryConfig):
        raise ConfigError("config", config, "a RetryConfig, a preset name or None")
    overrides: dict[str, Any] = {
        key: value
        for key, value in (
            ("attempts", attempts),
            ("initial_delay", initial_delay),
            ("max_delay", max_delay),
            ("multiplier", multiplier),
            ("jitter", jitter),
            ("max_retry_after", max_retry_after),
        )
        if value is not None
    }
    if overrides:
        config = dataclasses.replace(config, **overrides)
    for name, hook in (("on_retry", on_retry), ("stop", stop), ("wait", wait)):
        _validate.optional_callable(name, hook)
    capped = stop is None or attempts is not None
    wait_cap = config.max_delay if wait is not None and max_delay is not None else None
    layer = _Retry(config, _retry_filter(on), on_retry, stop, wait, capped, wait_cap)
    layer.emitter = emitter_for(metrics)
    if not isinstance(restart_stream, bool):
        raise ConfigError("restart_stream", restart_stream, "True or False")
    layer.restart_stream = restart_stream
    if budget is not None:  # checked here, used only after a failure
        from .budget import RetryBudget

        if not isinstance(budget, RetryBudget):
            raise ConfigError("budget", budget, "a RetryBudget or None")
        layer.budget = budget
    return Decorator(layer)


def _retry_filter(on: object) -> Callable[[BaseException], bool] | _TenacityRetry | None:
    """``None`` for "any ``Exception``" (the loops only ever catch ``Exception``)."""
    if on is None:
        return None
    tenacity = sys.modules.get("tenacity")
    if tenacity is not None and isinstance(on, tenacity.retry_base):
        return _TenacityRetry(on)
    return _validate.error_filter("on", on)


class _TenacityRetry:
    """Marks a tenacity ``retry_*`` object, which reads a ``RetryCallState``."""

    __slots__ = ("strategy",)

    def __init__(self, strategy: Callable[[Any], bool]) -> None:
        self.strategy = strategy


class _Retry(Layer):
    __slots__ = (
        "budget",
        "capped",
        "config",
        "emitter",
        "on",
        "on_retry",
        "restart_stream",
        "stop",
        "strategies",
        "tenacity",
        "wait",
        "wait_cap",
    )
    kind = "retry"

    def __init__(
        self,
        config: RetryConfig,
        on: Callable[[BaseException], bool] | _TenacityRetry | None,
        on_retry: OnRetry | None,
        stop: Callable[[Any], bool] | None,
        wait: Callable[[Any], float] | None,
        capped: bool,
        wait_cap: float | None,
    ) -> None:
        self.config = config
        self.on = on
        self.on_retry = on_retry
        self.stop = stop
        self.wait = wait
        self.capped = capped
        self.wait_cap = wait_cap
        self.strategies = stop is not None or wait is not None
        """Whether tenacity ``stop``/``wait`` strategies replace the cap or the schedule."""
        self.tenacity = self.strategies or isinstance(on, _TenacityRetry)
        """Whether tenacity strategies read a ``RetryCallState`` (then each call notes
        when its first attempt starts, as tenacity does)."""
        self.emitter: Emitter | None = None
        self.budget: RetryBudget | None = None
        self.restart_stream = False

    def describe(self) -> dict[str, object]:
        described = {"layer": self.kind, **dataclasses.asdict(self.config)}
        if self.restart_stream:
            described["restart_stream"] = True
        return described

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        layer, state = self, _config.state
        prefix = f"resilient.retry gave up on {name} "
        planner = _StrategyPlan if self.strategies else _Plan

        def again(failure: Exception, args: Any, kwargs: Any, start: float | None) -> Any:
            plan = planner(layer, name, prefix, call, args, kwargs, start)
            clock = state.clock
            while True:
                when = _get_deadline()  # the time matters only when there is a deadline
                now = 0.0 if when is None else clock.monotonic()
                decision = plan.decide(failure, now, when)
                if isinstance(decision, GiveUp):
                    raise plan.failed(failure, decision)
                delay = decision.seconds
                plan.retrying(failure, delay)
                if delay:
                    clock.sleep(delay)
                try:
                    return call(*args, **kwargs)
                except Exception as error:
                    failure = error

        def retrying(*args: Any, **kwargs: Any) -> Any:
            try:
                return call(*args, **kwargs)
            except Exception as error:
                failure = error
            return again(failure, args, kwargs, None)

        def retrying_timed(*args: Any, **kwargs: Any) -> Any:
            start = state.clock.monotonic()  # tenacity's stop_after_delay counts from here
            try:
                return call(*args, **kwargs)
            except Exception as error:
                failure = error
            return again(failure, args, kwargs, start)

        run = retrying_timed if self.tenacity else retrying
        budget = self.budget
        if budget is None:
            return run

        def budgeted(*args: Any, **kwargs: Any) -> Any:  # the budget counts each call
            budget.record_call()
            return run(*args, **kwargs)

        return budgeted

    def wrap_async(self, call: AsyncCall, name: str) -> AsyncCall:
        layer, state = self, _config.state
        prefix = f"resilient.retry gave up on {name} "
        planner = _StrategyPlan if self.strategies else _Plan

        async def again(failure: Exception, args: Any, kwargs: Any, start: float | None) -> Any:
            plan = planner(layer, name, prefix, call, args, kwargs, start)
            clock = state.clock
            while True:
                when = _get_deadline()  # the time matters only when there is a deadline
                now = 0.0 if when is None else clock.monotonic()
                decision = plan.decide(failure, now, when)
                if isinstance(decision, GiveUp):
                    raise plan.failed(failure, decision)
                delay = decision.seconds
                plan.retrying(failure, delay)
                if delay:
                    await clock.asleep(delay)
                try:
                    return await call(*args, **kwargs)
                except Exception as error:
                    failure = error

        async def retrying(*args: Any, **kwargs: Any) -> Any:
            try:
                return await call(*args, **kwargs)
            except Exception as error:
                failure = error
            return await again(failure, args, kwargs, None)

        async def retrying_timed(*args: Any, **kwargs: Any) -> Any:
            start = state.clock.monotonic()
            try:
                return await call(*args, **kwargs)
            except Exception as error:
                failure = error
            return await again(failure, args, kwargs, start)

        run = retrying_timed if self.tenacity else retrying
        budget = self.budget
        if budget is None:
            return run

        async def budgeted(*args: Any, **kwargs: Any) -> Any:
            budget.record_call()
            return await run(*args, **kwargs)

        return budgeted

    # Generator functions: the stream forms live in ``stream``.

    def wrap_stream_sync(self, call: StreamCall, name: str) -> StreamCall:
        return retry_stream_sync(self, _StrategyPlan if self.strategies else _Plan, call, name)

    def wrap_stream_async(self, call: AsyncStreamCall, name: str) -> AsyncStreamCall:
        return retry_stream_async(self, _StrategyPlan if self.strategies else _Plan, call, name)


class _Plan(RetryPlan):
    """``@retry``'s decisions for one call: the shared core (attempts, waits, deadline,
    the note) with this decorator's own rules around it: the ``on`` filter and the retry
    budget (``_StrategyPlan`` adds tenacity ``stop``/``wait`` strategies).

    Acts only in ``retrying``, which the loops call before each wait (``on_retry``,
    the ``retry_attempts_total`` count).
    """

    __slots__ = ("hook_note", "layer", "name", "state")

    def __init__(
        self,
        layer: _Retry,
        name: str,
        prefix: str,
        call: AnyCall,
        args: Any,
        kwargs: Any,
        start: float | None,
    ) -> None:
        # instant: resilient.testing.instant() caps the attempts and makes waits zero.
        RetryPlan.__init__(self, layer.config, prefix, layer.capped, _config.state.instant)
        self.layer = layer
        self.name = name
        self.hook_note: str | None = None
        """What the first failing ``on_retry`` raised, noted on the error if it is raised."""
        self.state = _tenacity_state(layer, call, args, kwargs, start)

    def decide(self, error: Exception, now: float, deadline: float | None) -> Sleep | GiveUp:
        state = self.state
        if state is not None:
            _record_outcome(state, self.attempt + 1, error)
        if isinstance(error, CircuitOpenError) or not self._wanted(error):
            return NOT_RETRYABLE
        decision = RetryPlan.decide(self, error, now, deadline)
        budget = self.layer.budget
        if budget is not None and isinstance(decision, Sleep) and not budget.allow_retry():
            return self.give_up("with the retry budget spent")  # allow_retry never waits on I/O
        return decision

    def retrying(self, error: Exception, delay: float) -> None:
        """Before waiting ``delay``: run ``on_retry`` and count the retry."""
        layer = self.layer
        if layer.on_retry is not None:
            try:
                layer.on_retry(self.attempt, error, delay)
            except Exception as failure:  # the retry goes on; see failed
                hook_failed("on_retry", self.name, failure)
                if self.hook_note is None:
                    self.hook_note = hook_note("on_retry", self.name, failure)
        emit = layer.emitter or _config.state.emit
        if emit is not None:
            emit.increment(RETRY_ATTEMPTS, (("policy", self.name),))
        state = self.state
        if state is not None:
            state.idle_for += delay

    def failed(self, error: Exception, decision: GiveUp) -> Exception:
        """``error``, noted with why the retries ended (and a failed ``on_retry``)."""
        self.note(error, decision)
        if self.hook_note is not None:
            add_note_once(error, self.hook_note, replaces=hook_prefix("on_retry", self.name))
        return error

    def _wanted(self, error: Exception) -> bool:
        """Whether ``on`` asks for a retry; a predicate that raises says no."""
        on = self.layer.on
        if on is None:
            return True
        try:
            if isinstance(on, _TenacityRetry):
                return bool(on.strategy(self.state))
            return bool(on(error))
        except Exception as failure:
            hook_failed("on", self.name, failure, error)
            return False


class _StrategyPlan(_Plan):
    """A ``_Plan`` whose waits and end come from tenacity ``wait``/``stop`` strategies."""

    __slots__ = ()
    strategies = True

    def stop(self, error: Exception, delay: float) -> GiveUp | None:
        """Whether the ``stop`` strategy ends the retries; one that raises ends them."""
        strategy = self.layer.stop
        if strategy is None:
            return None
        state = self.state
        state.upcoming_sleep = delay  # what tenacity's stop_before_delay adds to the time spent
        try:
            stopped = bool(strategy(state))
        except Exception as failure:
            hook_failed("stop", self.name, failure, error)
            stopped = True
        if stopped:
            return self.give_up(f"after {attempts(self.attempt)} (its stop strategy said so)")
        return None

    def backoff(self, error: Exception) -> float | GiveUp:
        """The ``wait`` strategy's wait (capped by ``max_delay`` when given); one that
        raises, or asks for an impossible wait, ends the retries."""
        layer = self.layer
        if layer.wait is None:
            return layer.config.delay(self.attempt)
        try:
            delay = float(layer.wait(self.state))
        except Exception as failure:
            hook_failed("wait", self.name, failure, error)
            return self.give_up(f"after {attempts(self.attempt)} (its wait strategy failed)")
        cap = layer.wait_cap
        if cap is not None and delay > cap:
            return cap
        if not delay <= _validate.MAX_SECONDS:  # also NaN: no clock can sleep that
            return self.give_up(f"as its wait strategy asked for an impossible {delay:g}s wait")
        return delay if delay > 0.0 else 0.0


def _tenacity_state(
    layer: _Retry, call: AnyCall, args: Any, kwargs: Any, start: float | None
) -> Any:
    """A tenacity ``RetryCallState`` when tenacity strategies need one, else ``None``.

    ``start`` is when the first attempt began, as tenacity's ``stop_after_delay`` counts.
    """
    if not layer.tenacity:
        return None
    import tenacity

    state = tenacity.RetryCallState(retry_object=None, fn=call, args=args, kwargs=kwargs)  # type: ignore[arg-type]
    state.start_time = _config.state.clock.monotonic() if start is None else start
    state.upcoming_sleep = 0.0
    return state


def _record_outcome(state: Any, attempt: int, error: Exception) -> None:
    import tenacity

    state.attempt_number = attempt
    state.outcome = tenacity.Future.construct(attempt, error, True)
    state.outcome_timestamp = _config.state.clock.monotonic()
