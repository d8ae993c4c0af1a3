"""``@retry``: attempt a call again after failures, with exponential backoff and jitter.

The happy path is a plain call inside ``try``. Everything else starts after the first
failure, in a small per-call ``_Plan``: the shared retry core (``plan.RetryPlan``:
attempts, waits, deadline, the note) with this decorator's own rules around it. It
answers ``Sleep(seconds)`` or ``GiveUp(reason)``; the sync and async loops act on that.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from random import random
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar, overload

from .._runtime import config as _config
from .._runtime import deadline as _deadline
from .._runtime import validate as _validate
from .._runtime.listeners import dispatch, hub
from .._runtime.types import ExceptionFilter, MetricsSink, OnRetry, Seconds
from .._wrapping.emit import Emitter, emitter_for
from .._wrapping.hooks import add_note_once, hook_failed, hook_note, hook_prefix
from .._wrapping.layer import (
    AnyCall,
    AsyncCall,
    AsyncStreamCall,
    Decorator,
    Layer,
    StreamCall,
    is_async_callable,
)
from ..exceptions import CircuitOpenError, ConfigError
from ..metrics._names import RETRY_ATTEMPTS
from ..presets import RetryPreset
from .outcome import (
    RETRY,
    RejectedResultError,
    TenacityRetry,
    record_outcome,
    record_result,
    tenacity_module,
    tenacity_state,
    wait_hint,
)
from .plan import NOT_RETRYABLE, GiveUp, RetryPlan, Sleep, attempts
from .stats import Tally
from .stream import retry_stream_async, retry_stream_sync

if TYPE_CHECKING:
    from .budget import RetryBudget

__all__ = ["RetryConfig", "retry"]

_get_deadline = _deadline.get
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
F = TypeVar("F")


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


@overload
def retry(config: classmethod[T, P, R], /) -> classmethod[T, P, R]: ...
@overload
def retry(config: staticmethod[P, R], /) -> staticmethod[P, R]: ...
@overload
def retry(config: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def retry(
    config: RetryConfig | RetryPreset | None = None,
    *,
    on: ExceptionFilter | None = None,
    on_result: Callable[[Any], object] | None = None,
    attempts: int | None = None,
    initial_delay: Seconds | None = None,
    max_delay: Seconds | None = None,
    multiplier: float | None = None,
    jitter: float | None = None,
    max_retry_after: Seconds | None = None,
    on_retry: OnRetry | None = None,
    before: Callable[[int], object] | None = None,
    after: Callable[[int, BaseException], object] | None = None,
    stop: Callable[[Any], bool] | None = None,
    wait: Callable[[Any], float] | None = None,
    metrics: MetricsSink | None = None,
    budget: RetryBudget | None = None,
    restart_stream: bool = False,
) -> Decorator: ...
def retry(
    config: Any = None,
    *,
    on: ExceptionFilter | None = None,
    on_result: Callable[[Any], object] | None = None,
    attempts: int | None = None,
    initial_delay: Seconds | None = None,
    max_delay: Seconds | None = None,
    multiplier: float | None = None,
    jitter: float | None = None,
    max_retry_after: Seconds | None = None,
    on_retry: OnRetry | None = None,
    before: Callable[[int], object] | None = None,
    after: Callable[[int, BaseException], object] | None = None,
    stop: Callable[[Any], bool] | None = None,
    wait: Callable[[Any], float] | None = None,
    metrics: MetricsSink | None = None,
    budget: RetryBudget | None = None,
    restart_stream: bool = False,
) -> Any:
    """Call again when the call raises one of ``on`` (default: any ``Exception``).

    ``@retry`` alone (without parentheses) uses every default. ``config`` is a
    ``RetryConfig`` or a preset name (default ``"standard"``); keyword arguments override
    single fields. ``on`` also takes a tenacity ``retry_*`` object (``retry_if_result``
    and ``retry_if_not_result`` included, alone or combined with ``|``/``&``), and
    ``stop``/``wait`` take tenacity strategies (``stop`` replaces the attempt cap unless
    ``attempts`` is given too; it counts time from the start of the first attempt). A
    ``wait`` strategy's waits are used as given, capped only when ``max_delay`` is passed
    too. An error's ``retry_after`` sets the next wait when it is at most
    ``max_retry_after``; a longer one ends the retries at once.

    An ``on`` predicate answers for each error: ``True`` (or any truthy value) retries
    with the backoff; ``False``, ``None``, ``0`` or a negative number does not retry; a
    positive ``int``, ``float`` or ``timedelta`` retries after waiting that long instead
    of the backoff (stamina's backoff hint; the attempt cap and the deadline still hold).

    ``on_result(value)`` retries a call that returned a value it holds true for
    (polling): after the last attempt the caller gets the last value returned. Hooks,
    events and ``resilient.stats`` see such an attempt as a ``RejectedResultError`` error.

    Hooks: ``before(attempt)`` runs before each attempt (the first is 1);
    ``after(attempt, error)`` after each attempt whose failure the rules want retried
    (as tenacity's ``after``: the last such attempt included, never after a success or an
    error not retried); ``on_retry(attempt, error, delay)`` before each wait. A hook that
    raises never stops the call: the failure is logged, counted as
    ``hook_errors_total`` and noted on the error should the call fail in the end. An
    ``on`` or ``on_result`` predicate that raises means "do not retry": the call's error
    (or value) reaches the caller. Never retried: an open circuit, cancellation,
    ``KeyboardInterrupt``, ``SystemExit``, and any wait that would end past the current
    deadline. ``metrics`` overrides the configured sink for this function
    (``retry_attempts_total``). ``budget`` (a ``RetryBudget``) counts each call and, after
    a failure, allows a retry only while retries stay within its share of the calls
    (fleet-wide with a RedisStore).

    On a generator or async generator function, an attempt that fails before its first
    item is retried; once an item has reached the caller a failure propagates, since
    the caller already has items. ``restart_stream=True`` retries such a failure too,
    by starting the stream again from scratch: the caller then gets those items again
    (a call always starts from scratch, so the setting changes nothing for calls).
    ``before`` runs before each run of the stream; a stream returns no value to judge, so
    ``on_result`` (or a tenacity result rule) is refused there with ``ConfigError``.
    """
    if callable(config) or isinstance(config, classmethod | staticmethod):
        return Decorator(_layer(None, {}))(config)  # ``@retry`` without parentheses
    options = {
        "on": on,
        "on_result": on_result,
        "attempts": attempts,
        "initial_delay": initial_delay,
        "max_delay": max_delay,
        "multiplier": multiplier,
        "jitter": jitter,
        "max_retry_after": max_retry_after,
        "on_retry": on_retry,
        "before": before,
        "after": after,
        "stop": stop,
        "wait": wait,
        "metrics": metrics,
        "budget": budget,
        "restart_stream": restart_stream,
    }
    return Decorator(_layer(config, options))


_FIELDS = ("attempts", "initial_delay", "max_delay", "multiplier", "jitter", "max_retry_after")


def _layer(config: object, options: dict[str, Any]) -> _Retry:
    """The ``@retry`` layer for ``config`` and ``retry()``'s keyword ``options``, checked."""
    if config is None:
        config = RetryConfig.standard
    elif isinstance(config, str):
        config = RetryConfig.get(config)
    elif not isinstance(config, RetryConfig):
        raise ConfigError("config", config, "a RetryConfig, a preset name or None")
    get = options.get
    overrides: dict[str, Any] = {key: get(key) for key in _FIELDS if get(key) is not None}
    if overrides:
        try:
            config = _configured(config, tuple(overrides.items()))
        except TypeError:  # a value that cannot be hashed: replace() says what is wrong
            config = dataclasses.replace(config, **overrides)
    for name in ("on_result", "on_retry", "before", "after", "stop", "wait"):
        _validate.optional_callable(name, get(name))
    if get("on_result") is not None and is_async_callable(get("on_result")):
        raise ConfigError("on_result", get("on_result"), "a plain (not async) predicate")
    stop, wait = get("stop"), get("wait")
    capped = stop is None or get("attempts") is not None
    wait_cap = config.max_delay if wait is not None and get("max_delay") is not None else None
    layer = _Retry(config, _retry_filter(get("on")), get("on_retry"), stop, wait, capped, wait_cap)
    layer.on_given = get("on")
    layer.on_result = get("on_result")
    layer.before = get("before")
    layer.after = get("after")
    layer.emitter = emitter_for(get("metrics"))
    budget = get("budget")
    restart_stream = get("restart_stream", False)
    if not isinstance(restart_stream, bool):
        raise ConfigError("restart_stream", restart_stream, "True or False")
    layer.restart_stream = restart_stream
    if budget is not None:  # checked here, used only after a failure
        from .budget import RetryBudget

        if not isinstance(budget, RetryBudget):
            raise ConfigError("budget", budget, "a RetryBudget or None")
        layer.budget = budget
    return layer


@functools.lru_cache(maxsize=256)
def _configured(config: RetryConfig, overrides: tuple[tuple[str, Any], ...]) -> RetryConfig:
    """``config`` with ``overrides``, validated once per distinct set (configs are frozen:
    a ``retrying(attempts=3)`` block written inside a loop need not check them each time)."""
    return dataclasses.replace(config, **dict(overrides))


def _retry_filter(on: object) -> Callable[[BaseException], object] | TenacityRetry | None:
    """``None`` for "any ``Exception``" (the loops only ever catch ``Exception``).

    Exception types become an ``isinstance`` test answering ``True``/``False``; a
    predicate is kept as it is, so that its answer can be a wait (see ``wait_hint``).
    """
    if on is None:
        return None
    tenacity = tenacity_module()
    if tenacity is not None and isinstance(on, tenacity.retry_base):
        return TenacityRetry(on)
    return _validate.error_filter("on", on)


class _Retry(Layer):
    __slots__ = (
        "after",
        "before",
        "budget",
        "capped",
        "config",
        "emitter",
        "on",
        "on_given",
        "on_result",
        "on_retry",
        "restart_stream",
        "stop",
        "strategies",
        "tallies",
        "tenacity",
        "wait",
        "wait_cap",
    )
    kind = "retry"

    def __init__(
        self,
        config: RetryConfig,
        on: Callable[[BaseException], object] | TenacityRetry | None,
        on_retry: OnRetry | None,
        stop: Callable[[Any], bool] | None,
        wait: Callable[[Any], float] | None,
        capped: bool,
        wait_cap: float | None,
    ) -> None:
        self.config: RetryConfig = config
        self.on: Callable[[BaseException], object] | TenacityRetry | None = on
        self.on_retry: OnRetry | None = on_retry
        self.stop: Callable[[Any], bool] | None = stop
        self.wait: Callable[[Any], float] | None = wait
        self.capped: bool = capped
        self.wait_cap: float | None = wait_cap
        self.strategies: bool = stop is not None or wait is not None
        """Whether tenacity ``stop``/``wait`` strategies replace the cap or the schedule."""
        self.tenacity: bool = self.strategies or isinstance(on, TenacityRetry)
        """Whether tenacity strategies read a ``RetryCallState`` (then each call notes
        when its first attempt starts, as tenacity does)."""
        self.emitter: Emitter | None = None
        self.budget: RetryBudget | None = None
        self.on_given: object = None
        """``on`` as given (``on`` holds the check made of it), for ``describe``."""
        self.on_result: Callable[[Any], object] | None = None
        self.before: Callable[[int], object] | None = None
        self.after: Callable[[int, BaseException], object] | None = None
        self.restart_stream: bool = False
        self.tallies: dict[str, Tally] = {}
        """``resilient.stats``: the counters of each function this layer wraps, by name."""

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {"layer": self.kind, **dataclasses.asdict(self.config)}
        if not self.capped:  # a stop strategy alone ends the retries
            described["attempts"] = None
        if self.on_given is not None:
            described["on"] = self.on_given
        for hook in ("on_result", "on_retry", "before", "after", "stop", "wait"):
            if getattr(self, hook) is not None:
                described[hook] = getattr(self, hook)
        if self.restart_stream:
            described["restart_stream"] = True
        return described

    def checks_results(self) -> bool:
        """Whether returned values are judged (``on_result``, or tenacity result rules)."""
        on = self.on
        return self.on_result is not None or (isinstance(on, TenacityRetry) and on.results)

    def tally(self, name: str) -> Tally:
        """The statistics of the function called ``name`` (shared by its chains)."""
        tally = self.tallies.get(name)
        if tally is None:
            tally = self.tallies.setdefault(name, Tally())
        return tally

    def rejects(self, result: object, attempt: int, state: Any, name: str) -> bool:
        """Whether attempt ``attempt``'s ``result`` is to be retried; a rule that raises
        says no (the value is returned, the failure logged and counted)."""
        try:
            check = self.on_result
            if check is not None and check(result):
                return True
            on = self.on
            if isinstance(on, TenacityRetry) and on.results:
                if state is None:
                    state = tenacity_state(None, (), {}, None)
                record_result(state, attempt, result)
                return bool(on.strategy(state))
        except Exception as failure:
            hook_failed("on_result", name, failure)
        return False

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        layer, state = self, _config.state
        prefix = f"resilient.retry gave up on {name} "
        planner = _StrategyPlan if self.strategies else _Plan
        tally = self.tally(name)
        before, results = self.before, self.checks_results()

        def again(failure: Exception, args: Any, kwargs: Any, start: float | None) -> Any:
            plan = planner(layer, name, prefix, call, args, kwargs, start, tally, failure)
            clock = state.clock
            while True:
                when = _get_deadline()  # the time matters only when there is a deadline
                now = 0.0 if when is None else clock.monotonic()
                decision = plan.decide(failure, now, when)
                if isinstance(decision, GiveUp):
                    if type(failure) is RejectedResultError:
                        return plan.returned(failure, decision)
                    raise plan.failed(failure, decision)
                delay = decision.seconds
                plan.retrying(failure, delay)
                if delay:
                    clock.sleep(delay)
                if before is not None:
                    plan.before()
                try:
                    result = call(*args, **kwargs)
                except Exception as error:
                    failure = error
                    tally.failed_again(error)
                    continue
                if results and layer.rejects(result, plan.attempt + 1, plan.state, name):
                    failure = RejectedResultError(result)
                    tally.failed_again(failure)
                    continue
                return result

        def retrying(*args: Any, **kwargs: Any) -> Any:
            try:
                return call(*args, **kwargs)
            except Exception as error:
                failure = error
            return again(failure, args, kwargs, None)

        def retrying_fully(*args: Any, **kwargs: Any) -> Any:
            # tenacity's stop_after_delay counts from the start of the first attempt
            start = state.clock.monotonic() if layer.tenacity else None
            if before is not None:
                layer.call_before(1, name)
            try:
                result = call(*args, **kwargs)
            except Exception as error:
                return again(error, args, kwargs, start)
            if results and layer.rejects(result, 1, None, name):
                return again(RejectedResultError(result), args, kwargs, start)
            return result

        check = self.on_result or _rejects_none

        def polling(*args: Any, **kwargs: Any) -> Any:  # on_result alone: one check more
            try:
                result = call(*args, **kwargs)
            except Exception as error:
                return again(error, args, kwargs, None)
            try:
                if not check(result):
                    return result
            except Exception as failure:  # a broken predicate: keep the value
                hook_failed("on_result", name, failure)
                return result
            return again(RejectedResultError(result), args, kwargs, None)

        run = self._pick(retrying, retrying_fully, polling)
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
        tally = self.tally(name)
        before, results = self.before, self.checks_results()

        async def again(failure: Exception, args: Any, kwargs: Any, start: float | None) -> Any:
            plan = planner(layer, name, prefix, call, args, kwargs, start, tally, failure)
            clock = state.clock
            while True:
                when = _get_deadline()  # the time matters only when there is a deadline
                now = 0.0 if when is None else clock.monotonic()
                decision = plan.decide(failure, now, when)
                if isinstance(decision, GiveUp):
                    if type(failure) is RejectedResultError:
                        return plan.returned(failure, decision)
                    raise plan.failed(failure, decision)
                delay = decision.seconds
                plan.retrying(failure, delay)
                if delay:
                    await clock.asleep(delay)
                if before is not None:
                    plan.before()
                try:
                    result = await call(*args, **kwargs)
                except Exception as error:
                    failure = error
                    tally.failed_again(error)
                    continue
                if results and layer.rejects(result, plan.attempt + 1, plan.state, name):
                    failure = RejectedResultError(result)
                    tally.failed_again(failure)
                    continue
                return result

        async def retrying(*args: Any, **kwargs: Any) -> Any:
            try:
                return await call(*args, **kwargs)
            except Exception as error:
                failure = error
            return await again(failure, args, kwargs, None)

        async def retrying_fully(*args: Any, **kwargs: Any) -> Any:
            start = state.clock.monotonic() if layer.tenacity else None
            if before is not None:
                layer.call_before(1, name)
            try:
                result = await call(*args, **kwargs)
            except Exception as error:
                return await again(error, args, kwargs, start)
            if results and layer.rejects(result, 1, None, name):
                return await again(RejectedResultError(result), args, kwargs, start)
            return result

        check = self.on_result or _rejects_none

        async def polling(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await call(*args, **kwargs)
            except Exception as error:
                return await again(error, args, kwargs, None)
            try:
                if not check(result):
                    return result
            except Exception as failure:
                hook_failed("on_result", name, failure)
                return result
            return await again(RejectedResultError(result), args, kwargs, None)

        run = self._pick(retrying, retrying_fully, polling)
        budget = self.budget
        if budget is None:
            return run

        async def budgeted(*args: Any, **kwargs: Any) -> Any:
            budget.record_call()
            return await run(*args, **kwargs)

        return budgeted

    def _pick(self, plain: F, fully: F, polling: F) -> F:
        """The cheapest first-attempt function for these settings: ``plain`` (a call in a
        ``try``), ``polling`` (and one ``on_result`` check) or ``fully`` (everything)."""
        if self.tenacity or self.before is not None:
            return fully
        if self.on_result is not None:
            return polling
        return plain

    def call_before(self, attempt: int, name: str) -> tuple[str, str] | None:
        """Run ``before(attempt)``; the note to add should the call fail when it raised."""
        hook = self.before
        if hook is None:
            return None
        try:
            hook(attempt)
        except Exception as failure:
            hook_failed("before", name, failure)
            return _noted("before", name, failure)
        return None

    # Generator functions: the stream forms live in ``stream``.

    def wrap_stream_sync(self, call: StreamCall, name: str) -> StreamCall:
        self._refuse_results(name)
        return retry_stream_sync(self, _StrategyPlan if self.strategies else _Plan, call, name)

    def wrap_stream_async(self, call: AsyncStreamCall, name: str) -> AsyncStreamCall:
        self._refuse_results(name)
        return retry_stream_async(self, _StrategyPlan if self.strategies else _Plan, call, name)

    def _refuse_results(self, name: str) -> None:
        """A stream returns no value for ``on_result`` (or a tenacity result rule) to judge."""
        if self.on_result is not None:
            raise ConfigError(
                "on_result", self.on_result, f"None for the generator function {name}"
            )
        on = self.on
        if isinstance(on, TenacityRetry) and on.results:
            raise ConfigError(
                "on", on.strategy, f"a rule on exceptions only for the generator function {name}"
            )


class _Plan(RetryPlan):
    """``@retry``'s decisions for one call: the shared core (attempts, waits, deadline,
    the note) with this decorator's own rules around it: the ``on`` filter (and its
    backoff hint), the ``after`` hook and the retry budget (``_StrategyPlan`` adds tenacity
    ``stop``/``wait`` strategies).

    Acts only in ``retrying``, which the loops call before each wait (``on_retry``,
    the ``retry_attempts_total`` count, the event and the statistics).
    """

    __slots__ = ("hook_note", "layer", "name", "state", "tally")

    def __init__(
        self,
        layer: _Retry,
        name: str,
        prefix: str,
        call: AnyCall | None,
        args: Any,
        kwargs: Any,
        start: float | None,
        tally: Tally,
        first: BaseException,
    ) -> None:
        # instant: resilient.testing.instant() caps (or sets) the attempts, waits are zero.
        RetryPlan.__init__(self, layer.config, prefix, layer.capped, _config.state.instant)
        self.layer: _Retry = layer
        self.name: str = name
        self.hook_note: tuple[str, str] | None = None
        """What the first failing hook raised, noted on the error if it is raised."""
        self.state: Any = tenacity_state(call, args, kwargs, start) if layer.tenacity else None
        self.tally: Tally = tally
        tally.failed_first(first)

    def decide(
        self, error: Exception, now: float, deadline: float | None, hint: float | None = None
    ) -> Sleep | GiveUp:
        state = self.state
        if state is not None:
            record_outcome(state, self.attempt + 1, error)
        layer = self.layer
        hint = None
        if type(error) is not RejectedResultError:
            if isinstance(error, CircuitOpenError):
                return NOT_RETRYABLE
            if layer.on is not None:
                wanted = self._wanted(error)
                if wanted is None:
                    return NOT_RETRYABLE
                if wanted != RETRY:
                    hint = wanted
        if layer.after is not None:
            self._after(error)
        decision = RetryPlan.decide(self, error, now, deadline, hint)
        budget = layer.budget
        if budget is not None and isinstance(decision, Sleep) and not budget.allow_retry():
            return self.give_up("with the retry budget spent")  # allow_retry never waits on I/O
        return decision

    def retrying(self, error: Exception, delay: float) -> None:
        """Before waiting ``delay``: run ``on_retry``, count the retry, tell listeners."""
        layer = self.layer
        if layer.on_retry is not None:
            try:
                layer.on_retry(self.attempt, error, delay)
            except Exception as failure:  # the retry goes on; see failed
                hook_failed("on_retry", self.name, failure)
                if self.hook_note is None:
                    self.hook_note = _noted("on_retry", self.name, failure)
        emit = layer.emitter or _config.state.emit
        if emit is not None:
            emit.increment(RETRY_ATTEMPTS, (("policy", self.name),))
        state = self.state
        if state is not None:
            state.idle_for += delay
        tally = self.tally  # counted here, not in a method: this runs on every retry
        tally.retries += 1
        tally.attempts += 1
        tally.attempt_number += 1
        tally.idle_for += delay
        if hub.active:
            from .._runtime.events import RetryScheduled

            dispatch((), (RetryScheduled(self.name, self.attempt, error, delay),))  # type: ignore[arg-type]  # listeners take any event

    def before(self) -> None:
        """Run ``before`` ahead of the next attempt."""
        note = self.layer.call_before(self.attempt + 1, self.name)
        if note is not None and self.hook_note is None:
            self.hook_note = note

    def _after(self, error: Exception) -> None:
        after = self.layer.after
        if after is None:
            return
        try:
            after(self.attempt + 1, error)
        except Exception as failure:
            hook_failed("after", self.name, failure, error)

    def _ended(self, error: Exception) -> None:
        self.tally.gave_up_once()
        if hub.active:
            from .._runtime.events import RetryGaveUp

            dispatch((), (RetryGaveUp(self.name, self.attempt, error),))  # type: ignore[arg-type]

    def failed(self, error: Exception, decision: GiveUp) -> Exception:
        """``error``, noted with why the retries ended (and a failed hook)."""
        self.note(error, decision)
        if self.hook_note is not None:
            replaces, note = self.hook_note
            add_note_once(error, note, replaces=replaces)
        self._ended(error)
        return error

    def returned(self, rejected: RejectedResultError, decision: GiveUp) -> Any:
        """The value of the last attempt, whose result was rejected once too often."""
        self._ended(rejected)
        return rejected.result

    def _wanted(self, error: Exception) -> float | None:
        """What ``on`` answers for ``error`` (see ``wait_hint``); one that raises says no."""
        on = self.layer.on
        if on is None:
            return RETRY
        try:
            if isinstance(on, TenacityRetry):
                return RETRY if on.strategy(self.state) else None
            return wait_hint(on(error))
        except Exception as failure:
            hook_failed("on", self.name, failure, error)
            return None


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


def _rejects_none(result: object) -> bool:
    """Every result is wanted (``on_result`` not given)."""
    return False


def _noted(role: str, name: str, failure: BaseException) -> tuple[str, str]:
    """The note saying the ``role`` hook raised ``failure``, and the prefix it replaces."""
    return hook_prefix(role, name), hook_note(role, name, failure)
