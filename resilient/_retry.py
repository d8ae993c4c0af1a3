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
from typing import TYPE_CHECKING, Any, ClassVar

from . import _config, _deadline, _validate
from ._emit import Emitter, emitter_for
from ._wrapping import AnyCall, AsyncCall, Decorator, Layer
from .exceptions import CircuitOpenError, ConfigError
from .metrics._names import RETRY_ATTEMPTS
from .metrics._protocol import MetricsSink
from .typing import ExceptionFilter, OnRetry, Seconds

if TYPE_CHECKING:
    from ._budget import RetryBudget

__all__ = ["RetryConfig", "retry"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """How many attempts, and how long to wait between them.

    The wait before attempt ``n + 1`` is ``initial_delay * multiplier ** (n - 1)``, capped
    at ``max_delay``, then spread by ``± jitter`` (a fraction) and capped again.
    """

    attempts: int = 3
    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2

    standard: ClassVar[RetryConfig]
    """The seed's values: 3 attempts, 0.5 s, doubling, at most 30 s, ±20 %."""
    quick: ClassVar[RetryConfig]
    """Health checks and cheap reads: 2 attempts, 0.1 s, at most 1 s."""
    patient: ClassVar[RetryConfig]
    """Background jobs that can wait: 5 attempts, 1 s, at most 60 s."""
    ai_operation: ClassVar[RetryConfig]
    """LLM calls: 3 attempts, 2 s, at most 30 s."""
    never: ClassVar[RetryConfig]
    """One attempt: no retry at all (to switch retrying off by configuration)."""
    names: ClassVar[tuple[str, ...]] = ("standard", "quick", "patient", "ai_operation", "never")

    def __post_init__(self) -> None:
        _validate.integer("attempts", self.attempts, minimum=1)
        for name in ("initial_delay", "max_delay"):
            object.__setattr__(self, name, _validate.duration(name, getattr(self, name)))
        _validate.number("multiplier", self.multiplier, minimum=1.0)
        _validate.fraction("jitter", self.jitter)

    @classmethod
    def get(cls, name: str) -> RetryConfig:
        """The preset called ``name``; ``ConfigError`` for an unknown name."""
        if name not in cls.names:
            raise ConfigError("config", name, f"a RetryConfig or one of {cls.names}")
        preset: RetryConfig = getattr(cls, name)
        return preset

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based), jitter included."""
        try:
            wait = self.initial_delay * self.multiplier ** (attempt - 1)
        except OverflowError:
            wait = self.max_delay
        if wait > self.max_delay:
            wait = self.max_delay
        if self.jitter and wait:
            wait *= 1.0 + self.jitter * (2.0 * random() - 1.0)
            if wait > self.max_delay:
                wait = self.max_delay
        return wait


RetryConfig.standard = RetryConfig()
RetryConfig.quick = RetryConfig(attempts=2, initial_delay=0.1, max_delay=1.0)
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
    unless ``attempts`` is given too). ``on_retry(attempt, error, delay)`` runs before
    each wait. Never retried: an open circuit, cancellation, ``KeyboardInterrupt``,
    ``SystemExit``, and any wait that would end past the current deadline. ``metrics``
    overrides the configured sink for this function (``retry_attempts_total``).
    ``budget`` (a ``RetryBudget``) counts each call and, after a failure, allows a retry
    only while retries stay within its share of the calls (fleet-wide with a RedisStore).
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
        )
        if value is not None
    }
    if overrides:
        config = dataclasses.replace(config, **overrides)
    for name, hook in (("on_retry", on_retry), ("stop", stop), ("wait", wait)):
        _validate.optional_callable(name, hook)
    capped = stop is None or attempts is not None
    layer = _Retry(config, _retry_filter(on), on_retry, stop, wait, capped)
    layer.emitter = emitter_for(metrics)
    if budget is not None:  # the budget issue: checked here, used only after a failure
        from ._budget import RetryBudget

        if not isinstance(budget, RetryBudget):
            raise ConfigError("budget", budget, "a RetryBudget or None")
        layer.budget = budget
    return Decorator(layer)


def _retry_filter(on: object) -> Callable[[BaseException], bool] | _TenacityRetry:
    if on is None:
        return lambda error: True  # the loops only ever catch Exception
    tenacity = sys.modules.get("tenacity")
    if tenacity is not None and isinstance(on, tenacity.retry_base):
        return _TenacityRetry(on)
    if isinstance(on, type) and issubclass(on, BaseException) and not issubclass(on, Exception):
        raise ConfigError(
            "on", on, "Exception subclasses (cancellation and exits are never retried)"
        )
    return _validate.exception_filter("on", on)


class _TenacityRetry:
    """Marks a tenacity ``retry_*`` object, which reads a ``RetryCallState``."""

    __slots__ = ("strategy",)

    def __init__(self, strategy: Callable[[Any], bool]) -> None:
        self.strategy = strategy


class _Retry(Layer):
    __slots__ = ("budget", "capped", "config", "emitter", "on", "on_retry", "stop", "wait")
    kind = "retry"

    def __init__(
        self,
        config: RetryConfig,
        on: Callable[[BaseException], bool] | _TenacityRetry,
        on_retry: OnRetry | None,
        stop: Callable[[Any], bool] | None,
        wait: Callable[[Any], float] | None,
        capped: bool,
    ) -> None:
        self.config = config
        self.on = on
        self.on_retry = on_retry
        self.stop = stop
        self.wait = wait
        self.capped = capped
        self.emitter: Emitter | None = None
        self.budget: RetryBudget | None = None

    def describe(self) -> dict[str, object]:
        return {"layer": self.kind, **dataclasses.asdict(self.config)}

    def wrap_sync(self, call: AnyCall, name: str, entry: AnyCall | None = None) -> AnyCall:
        layer, state = self, _config.state

        def retrying(*args: Any, **kwargs: Any) -> Any:
            if entry is not None and state.active:
                return entry(*args, **kwargs)
            try:
                return call(*args, **kwargs)
            except Exception as error:
                failure = error
            plan = _Plan(layer, name, call, args, kwargs)
            clock = _config.state.clock
            while True:
                delay = plan.after(failure)  # raises when giving up
                if delay:
                    clock.sleep(delay)
                try:
                    return call(*args, **kwargs)
                except Exception as error:
                    failure = error

        budget = self.budget
        if budget is None:
            return retrying

        def budgeted(*args: Any, **kwargs: Any) -> Any:  # the budget counts each call
            budget.record_call()
            return retrying(*args, **kwargs)

        return budgeted

    def wrap_async(self, call: AsyncCall, name: str, entry: AsyncCall | None = None) -> AsyncCall:
        layer, state = self, _config.state

        async def retrying(*args: Any, **kwargs: Any) -> Any:
            if entry is not None and state.active:
                return await entry(*args, **kwargs)
            try:
                return await call(*args, **kwargs)
            except Exception as error:
                failure = error
            plan = _Plan(layer, name, call, args, kwargs)
            clock = _config.state.clock
            while True:
                delay = plan.after(failure)
                if delay:
                    await clock.asleep(delay)
                try:
                    return await call(*args, **kwargs)
                except Exception as error:
                    failure = error

        budget = self.budget
        if budget is None:
            return retrying

        async def budgeted(*args: Any, **kwargs: Any) -> Any:
            budget.record_call()
            return await retrying(*args, **kwargs)

        return budgeted


class _Plan:
    """The decisions of one retried call: whether to go on, and how long to wait first."""

    __slots__ = ("attempt", "errors", "layer", "name", "state")

    def __init__(self, layer: _Retry, name: str, call: AnyCall, args: Any, kwargs: Any) -> None:
        self.layer = layer
        self.name = name
        self.attempt = 0
        self.errors: list[str] = []
        self.state = _tenacity_state(layer, call, args, kwargs)

    def after(self, error: Exception) -> float:
        """Seconds to wait before the next attempt; re-raises ``error`` when giving up."""
        layer, config = self.layer, self.layer.config
        self.attempt += 1
        self.errors.append(type(error).__name__)
        state = self.state
        if state is not None:
            _record_outcome(state, self.attempt, error)
        if isinstance(error, CircuitOpenError) or not self._wanted(error):
            raise error
        instant = _config.state.instant  # resilient.testing.instant(): cap, no waits
        if (
            (layer.capped and self.attempt >= config.attempts)
            or (instant is not None and self.attempt >= instant)
            or (layer.stop is not None and layer.stop(state))
        ):
            self._give_up(error, f"after {self.attempt} attempts")
        delay = 0.0 if instant is not None else self._delay(error)
        left = _deadline.remaining()
        if left is not None and delay >= left:
            self._give_up(error, f"{left:.3g}s before the deadline, short of a {delay:.3g}s wait")
        budget = layer.budget
        if budget is not None and not budget.allow_retry():  # never waits on I/O
            self._give_up(error, "with the retry budget spent")
        if layer.on_retry is not None:
            layer.on_retry(self.attempt, error, delay)
        emit = layer.emitter or _config.state.emit
        if emit is not None:
            emit.increment(RETRY_ATTEMPTS, (("policy", self.name),))
        if state is not None:
            state.idle_for += delay
        return delay

    def _wanted(self, error: Exception) -> bool:
        on = self.layer.on
        if isinstance(on, _TenacityRetry):
            return bool(on.strategy(self.state))
        return on(error)

    def _delay(self, error: Exception) -> float:
        layer, config = self.layer, self.layer.config
        hinted = getattr(error, "retry_after", None)
        if isinstance(hinted, int | float) and not isinstance(hinted, bool) and hinted >= 0:
            delay = float(hinted)
        elif layer.wait is not None:
            delay = float(layer.wait(self.state))
        else:
            return config.delay(self.attempt)
        return delay if delay < config.max_delay else config.max_delay

    def _give_up(self, error: Exception, why: str) -> None:
        attempts = ", ".join(self.errors)
        error.add_note(f"resilient.retry gave up on {self.name} {why}: {attempts}")
        raise error


def _tenacity_state(layer: _Retry, call: AnyCall, args: Any, kwargs: Any) -> Any:
    """A tenacity ``RetryCallState`` when tenacity strategies need one, else ``None``."""
    if layer.stop is None and layer.wait is None and not isinstance(layer.on, _TenacityRetry):
        return None
    import tenacity

    state = tenacity.RetryCallState(retry_object=None, fn=call, args=args, kwargs=kwargs)  # type: ignore[arg-type]
    state.start_time = _config.state.clock.monotonic()
    return state


def _record_outcome(state: Any, attempt: int, error: Exception) -> None:
    import tenacity

    state.attempt_number = attempt
    state.outcome = tenacity.Future.construct(attempt, error, True)
    state.outcome_timestamp = _config.state.clock.monotonic()
