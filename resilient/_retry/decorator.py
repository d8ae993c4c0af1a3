"""``@retry``: attempt a call again after failures, with exponential backoff and jitter.

The happy path is a plain call inside ``try``. Everything else (the backoff schedule,
tenacity strategies, the deadline check) starts after the first failure, in a small
per-call ``_Plan`` that only *decides*; the sync and async loops only *act* on it.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from random import random
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from .._runtime import config as _config
from .._runtime import deadline as _deadline
from .._runtime import validate as _validate
from .._runtime.types import ExceptionFilter, MetricsSink, OnRetry, Seconds
from .._wrapping.emit import Emitter, emitter_for
from .._wrapping.hooks import add_note_once, hook_failed, hook_note, hook_prefix
from .._wrapping.layer import AnyCall, AsyncCall, Decorator, Layer
from ..exceptions import CircuitOpenError, ConfigError
from ..metrics._names import RETRY_ATTEMPTS

if TYPE_CHECKING:
    from .budget import RetryBudget

__all__ = ["RetryConfig", "retry"]


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
        "stop",
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
        self.tenacity = stop is not None or wait is not None or isinstance(on, _TenacityRetry)
        """Whether tenacity strategies read a ``RetryCallState`` (then each call notes
        when its first attempt starts, as tenacity does)."""
        self.emitter: Emitter | None = None
        self.budget: RetryBudget | None = None

    def describe(self) -> dict[str, object]:
        return {"layer": self.kind, **dataclasses.asdict(self.config)}

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        layer, state = self, _config.state

        def again(failure: Exception, args: Any, kwargs: Any, start: float | None) -> Any:
            plan = _Plan(layer, name, call, args, kwargs, start)
            clock = state.clock
            while True:
                delay = plan.after(failure)  # raises when giving up
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

        async def again(failure: Exception, args: Any, kwargs: Any, start: float | None) -> Any:
            plan = _Plan(layer, name, call, args, kwargs, start)
            clock = state.clock
            while True:
                delay = plan.after(failure)
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


class _Plan:
    """The decisions of one retried call: whether to go on, and how long to wait first.

    Every way out raises the call's own error, with a note saying why (one note per
    function: an error object raised again carries the latest, not a growing list).
    """

    __slots__ = ("attempt", "errors", "hook_note", "layer", "name", "state")

    def __init__(
        self, layer: _Retry, name: str, call: AnyCall, args: Any, kwargs: Any, start: float | None
    ) -> None:
        self.layer = layer
        self.name = name
        self.attempt = 0
        self.errors: list[list[Any]] = []
        """``[type name, how many in a row]`` per run of failures, for the give-up note."""
        self.hook_note: str | None = None
        """What the first failing ``on_retry`` raised, noted on the error if it is raised."""
        self.state = _tenacity_state(layer, call, args, kwargs, start)

    def after(self, error: Exception) -> float:
        """Seconds to wait before the next attempt; re-raises ``error`` when giving up."""
        layer, config = self.layer, self.layer.config
        self.attempt += 1
        kind, errors = type(error).__name__, self.errors
        if errors and errors[-1][0] == kind:
            errors[-1][1] += 1
        else:
            errors.append([kind, 1])
        state = self.state
        if state is not None:
            _record_outcome(state, self.attempt, error)
        if isinstance(error, CircuitOpenError) or not self._wanted(error):
            self._raise(error)
        instant = _config.state.instant  # resilient.testing.instant(): cap, no waits
        if (layer.capped and self.attempt >= config.attempts) or (
            instant is not None and self.attempt >= instant
        ):
            self._give_up(error, f"after {self.attempt} attempts")
        delay = 0.0 if instant is not None else self._delay(error)
        if layer.stop is not None and self._stop(error, delay):
            self._give_up(error, f"after {self.attempt} attempts (its stop strategy said so)")
        left = _deadline.remaining()
        if left is not None and delay >= left:
            self._give_up(error, f"{left:.3g}s before the deadline, short of a {delay:.3g}s wait")
        budget = layer.budget
        if budget is not None and not budget.allow_retry():  # never waits on I/O
            self._give_up(error, "with the retry budget spent")
        if layer.on_retry is not None:
            try:
                layer.on_retry(self.attempt, error, delay)
            except Exception as failure:  # the retry goes on; see _raise
                hook_failed("on_retry", self.name, failure)
                if self.hook_note is None:
                    self.hook_note = hook_note("on_retry", self.name, failure)
        emit = layer.emitter or _config.state.emit
        if emit is not None:
            emit.increment(RETRY_ATTEMPTS, (("policy", self.name),))
        if state is not None:
            state.idle_for += delay
        return delay

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

    def _stop(self, error: Exception, delay: float) -> bool:
        """Whether the ``stop`` strategy ends the retries; one that raises ends them."""
        state = self.state
        state.upcoming_sleep = delay  # what tenacity's stop_before_delay adds to the time spent
        try:
            return bool(self.layer.stop(state))  # type: ignore[misc]  # checked by the caller
        except Exception as failure:
            hook_failed("stop", self.name, failure, error)
            return True

    def _delay(self, error: Exception) -> float:
        layer, config = self.layer, self.layer.config
        hinted = getattr(error, "retry_after", None)
        if isinstance(hinted, int | float) and not isinstance(hinted, bool) and hinted >= 0:
            if hinted > config.max_retry_after:
                asked = f"a {hinted:.3g}s" if hinted <= _validate.MAX_SECONDS else "an endless"
                self._give_up(
                    error,
                    f"as the error asks for {asked} wait, longer than "
                    f"max_retry_after={config.max_retry_after:g}s",
                )
            return float(hinted)
        if layer.wait is None:
            return config.delay(self.attempt)
        try:
            delay = float(layer.wait(self.state))
        except Exception as failure:
            hook_failed("wait", self.name, failure, error)
            self._give_up(error, f"after {self.attempt} attempts (its wait strategy failed)")
        cap = layer.wait_cap
        if cap is not None and delay > cap:
            return cap
        if not delay <= _validate.MAX_SECONDS:  # also NaN: no clock can sleep that
            self._give_up(error, f"as its wait strategy asked for an impossible {delay:g}s wait")
        return delay if delay > 0.0 else 0.0

    def _give_up(self, error: Exception, why: str) -> NoReturn:
        # The same error object raised again keeps only its latest story.
        prefix = f"resilient.retry gave up on {self.name} "
        runs = ", ".join(kind if count == 1 else f"{kind} x{count}" for kind, count in self.errors)
        add_note_once(error, f"{prefix}{why}: {runs}", replaces=prefix)
        self._raise(error)

    def _raise(self, error: Exception) -> NoReturn:
        if self.hook_note is not None:
            add_note_once(error, self.hook_note, replaces=hook_prefix("on_retry", self.name))
        raise error


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
