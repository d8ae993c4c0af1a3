"""``BreakerConfig``: when a circuit breaker trips, how long it stays open, how it probes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .._runtime import validate as _validate
from .._runtime.types import ExceptionFilter
from ..exceptions import ConfigError
from ..presets import BACKEND_OPERATIONS, RenamedPreset, lookup

__all__ = ["MAX_NAME_LENGTH", "BreakerConfig", "check_name"]

MAX_NAME_LENGTH = 200
"""The longest breaker name accepted, in characters (a name is a key in every store)."""


def check_name(name: object, parameter: str = "name") -> str:
    """``name`` if it can name a breaker: a non-empty ``str`` of at most
    ``MAX_NAME_LENGTH`` characters that encodes as UTF-8 (no lone surrogates), else
    ``ConfigError``. Stores use the name as a key, so it is checked once, when the
    breaker is made, rather than failing on every round trip."""
    if not isinstance(name, str) or not name:
        raise ConfigError(parameter, name, "a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(
            parameter, name, f"a string of at most {MAX_NAME_LENGTH} characters (got {len(name)})"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ConfigError(
            parameter,
            name,
            f"a string that encodes as UTF-8 (position {error.start} is a lone surrogate)",
        ) from None
    return name


_RULES = (
    "failure_threshold",
    "failure_rate",
    "window_size",
    "window_duration",
    "minimum_calls",
    "slow_call_duration",
    "slow_call_rate",
    "reset_timeout",
    "reset_backoff",
    "max_reset_timeout",
    "half_open_max_calls",
    "success_threshold",
    "probe_timeout",
)


def _every_error(error: BaseException) -> bool:
    return True


def _no_error(error: BaseException) -> bool:
    return False


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """When to trip, how long to stay open, how to probe; validated when built.

    Trip rules: ``failure_threshold`` consecutive failures (the default), or, when
    ``failure_rate`` is given, a failure rate over a window of the last ``window_size``
    calls or the last ``window_duration`` seconds once ``minimum_calls`` were seen. With
    ``slow_call_duration`` set, calls at least that slow trip it too once they reach
    ``slow_call_rate`` of the window (default: all of it); a slow probe counts as failed.

    Failures are the errors matching ``record`` (default: every ``Exception``), minus
    those matching ``ignore`` (which count as nothing), plus returned values for which
    ``failure_result`` is true. An error that is raised but not recorded counts as a
    success. Cancellation, ``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit``
    never count.

    A ``record``, ``ignore`` or ``failure_result`` predicate that raises never replaces
    the call's outcome: the caller still gets the call's own error (with a note naming the
    predicate's failure) or its result, the failure is logged once per window and counted
    as ``hook_errors_total``, and the breaker judges as if the predicate were absent:
    ``ignore`` failing ignores nothing, ``record`` failing records the error as a failure
    (the cautious choice: an error the breaker cannot classify is treated like any other
    error), and ``failure_result`` failing treats the result as a success.

    ``error_on_trip`` says what the call whose failure trips the breaker raises:
    ``"call"`` (the default) its own error, ``"open"`` a ``CircuitOpenError`` chained to
    it (``raise ... from error``: the call's error is its ``__cause__``), as pybreaker's
    ``throw_new_error_on_trip`` does. Every later call meets ``CircuitOpenError`` either way.
    """

    failure_threshold: int = 5
    failure_rate: float | None = None
    window_size: int | None = None
    window_duration: float | None = None
    minimum_calls: int = 10
    slow_call_duration: float | None = None
    slow_call_rate: float | None = None
    reset_timeout: float = 30.0
    reset_backoff: float = 1.0
    max_reset_timeout: float | None = None
    half_open_max_calls: int = 1
    success_threshold: int = 1
    probe_timeout: float = 60.0
    record: ExceptionFilter | None = None
    ignore: ExceptionFilter | None = None
    failure_result: Callable[[Any], bool] | None = None
    error_on_trip: Literal["call", "open"] = "call"

    # Derived in __post_init__; not part of equality (the fields above already are).
    windowed: bool = field(init=False, repr=False, compare=False, default=False)
    """True when outcomes go into a window (rate or slow-call rules)."""
    is_failure: Callable[[BaseException], bool] = field(
        init=False, repr=False, compare=False, default=_every_error
    )
    is_ignored: Callable[[BaseException], bool] = field(
        init=False, repr=False, compare=False, default=_no_error
    )

    standard: ClassVar[BreakerConfig]
    """The default: open after 5 consecutive failures, probe after 30 s."""
    ai_operation: ClassVar[BreakerConfig]
    """LLM and other AI calls: 3 failures, 60 s."""
    critical: ClassVar[BreakerConfig]
    """Critical paths that must recover fast: 3 failures, 15 s."""
    database: ClassVar[BreakerConfig]
    """Database queries (backend table): 3 failures, 30 s."""
    external_api: ClassVar[BreakerConfig]
    """External APIs (backend table): 5 failures, 30 s."""
    file_processing: ClassVar[BreakerConfig]
    """File processing (backend table): 5 failures, 30 s."""
    names: ClassVar[tuple[str, ...]] = (
        "standard",
        "ai_operation",
        "critical",
        "database",
        "external_api",
        "file_processing",
    )
    # Former names of ``ai_operation`` (deprecated). Annotated for type checkers only: an
    # annotation at run time would have ``dataclass`` read them, which warns.
    if TYPE_CHECKING:
        ai_service: ClassVar[RenamedPreset[BreakerConfig]]
        ai_llm: ClassVar[RenamedPreset[BreakerConfig]]
    ai_service = RenamedPreset["BreakerConfig"]()
    ai_llm = RenamedPreset["BreakerConfig"]()

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        _validate.integer("failure_threshold", self.failure_threshold, minimum=1)
        if self.failure_rate is not None:
            setattr_(self, "failure_rate", _validate.rate("failure_rate", self.failure_rate))
        if self.slow_call_rate is not None:
            setattr_(self, "slow_call_rate", _validate.rate("slow_call_rate", self.slow_call_rate))
        slow_after = _validate.duration(
            "slow_call_duration", self.slow_call_duration, allow_zero=False, allow_none=True
        )
        setattr_(self, "slow_call_duration", slow_after)
        if self.slow_call_rate is not None and slow_after is None:
            raise ConfigError(
                "slow_call_rate", self.slow_call_rate, "None unless slow_call_duration is set"
            )
        if slow_after is not None and self.slow_call_rate is None:
            setattr_(self, "slow_call_rate", 1.0)
        windowed = self.failure_rate is not None or slow_after is not None
        setattr_(self, "windowed", windowed)
        self._check_window(windowed)
        setattr_(
            self,
            "reset_timeout",
            _validate.required_duration("reset_timeout", self.reset_timeout, allow_zero=False),
        )
        _validate.number("reset_backoff", self.reset_backoff, minimum=1.0)
        setattr_(self, "reset_backoff", float(self.reset_backoff))
        cap = _validate.duration("max_reset_timeout", self.max_reset_timeout, allow_none=True)
        if cap is not None and cap < self.reset_timeout:
            raise ConfigError(
                "max_reset_timeout",
                self.max_reset_timeout,
                f">= reset_timeout ({self.reset_timeout:g}s) or None",
            )
        setattr_(self, "max_reset_timeout", cap)
        _validate.integer("half_open_max_calls", self.half_open_max_calls, minimum=1)
        _validate.integer("success_threshold", self.success_threshold, minimum=1)
        setattr_(
            self,
            "probe_timeout",
            _validate.required_duration("probe_timeout", self.probe_timeout, allow_zero=False),
        )
        if self.record is not None:
            setattr_(self, "is_failure", _validate.error_filter("record", self.record))
        if self.ignore is not None:
            setattr_(self, "is_ignored", _validate.error_filter("ignore", self.ignore))
        _validate.optional_callable("failure_result", self.failure_result)
        if self.error_on_trip not in ("call", "open"):
            raise ConfigError(
                "error_on_trip", self.error_on_trip, "'call' (the call's own error) or 'open'"
            )

    def _check_window(self, windowed: bool) -> None:
        size, span = self.window_size, self.window_duration
        if not windowed:
            for name, value in (("window_size", size), ("window_duration", span)):
                if value is not None:
                    raise ConfigError(
                        name, value, "None unless failure_rate or slow_call_duration is set"
                    )
            return
        if size is not None and span is not None:
            raise ConfigError(
                "window_duration", span, "None when window_size is given (choose one window)"
            )
        _validate.integer("minimum_calls", self.minimum_calls, minimum=1)
        if span is not None:
            object.__setattr__(
                self,
                "window_duration",
                _validate.required_duration("window_duration", span, allow_zero=False),
            )
            return
        size = 100 if size is None else _validate.integer("window_size", size, minimum=1)
        object.__setattr__(self, "window_size", size)
        if self.minimum_calls > size:
            raise ConfigError(
                "minimum_calls", self.minimum_calls, f"<= window_size ({size}), or it never trips"
            )

    @classmethod
    def get(cls, name: str) -> BreakerConfig:
        """The preset called ``name`` (``resilient.presets.lookup``); ``ConfigError`` for an
        unknown name."""
        preset: BreakerConfig = lookup(cls, name)
        return preset

    def replace(self, **changes: Any) -> BreakerConfig:
        """A copy with ``changes``; ``ConfigError`` names an unknown parameter."""
        known = {f.name for f in dataclasses.fields(self) if f.init}
        for key, value in changes.items():
            if key not in known:
                raise ConfigError(
                    key, value, f"a BreakerConfig parameter ({', '.join(sorted(known))})"
                )
        return dataclasses.replace(self, **changes)

    def rules(self) -> dict[str, float | int | None]:
        """The numbers ``transition`` reads, as plain data (for a store that runs the rules
        elsewhere, such as a Redis script); the error filters stay in the caller."""
        return {name: getattr(self, name) for name in _RULES}

    def counts(self, error: BaseException) -> bool | None:
        """``True``: ``error`` is a failure; ``False``: a success; ``None``: nothing.

        The predicates are called as given: an error they raise propagates (breakers
        guard against that themselves)."""
        if self.is_ignored(error):
            return None
        return bool(self.is_failure(error))


BreakerConfig.standard = BreakerConfig(failure_threshold=5, reset_timeout=30.0)
BreakerConfig.ai_operation = BreakerConfig(failure_threshold=3, reset_timeout=60.0)
BreakerConfig.critical = BreakerConfig(failure_threshold=3, reset_timeout=15.0)


def _backend(operation: str, reset_timeout: float) -> BreakerConfig:
    threshold = BACKEND_OPERATIONS[operation].failure_threshold
    return BreakerConfig(failure_threshold=threshold, reset_timeout=reset_timeout)


BreakerConfig.database = _backend("database", 30.0)
BreakerConfig.external_api = _backend("external_api", 30.0)
BreakerConfig.file_processing = _backend("file_processing", 30.0)
