"""``Policy`` and ``policy()``: a declared stack, and the table of named ones."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from .._runtime import config as _config
from .._wrapping.layer import Decorator
from ..exceptions import ConfigError
from ..presets import BreakerPreset, RetryPreset, TimeoutPreset, unknown_name
from .steps import ORDER, as_written, build

if TYPE_CHECKING:
    from .._circuit.config import BreakerConfig
    from .._retry.decorator import RetryConfig
    from .._runtime.types import Seconds

__all__ = ["Policy", "named", "policy"]

P = ParamSpec("P")
R = TypeVar("R")

named: dict[str, Policy] = {}
"""The policies ``load_policies`` made available to ``policy("name")``."""
_config.on_reset(named.clear)


class Policy:
    """A declared stack of decorators; apply it like any decorator."""

    __slots__ = ("name", "specs")

    def __init__(self, specs: dict[str, Any], name: str | None = None) -> None:
        self.specs: dict[str, Any] = specs
        self.name: str | None = name
        for step in self.specs:
            build(step, self.specs[step], None)  # validate every step now, not at first use

    def _decorator(self, step: str, fn: Any) -> Decorator:
        return build(step, self.specs[step], fn)

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    @overload
    def __call__(self, fn: Any) -> Any: ...
    def __call__(self, fn: Any) -> Any:
        for step in reversed(ORDER):  # innermost first: each joins the same chain
            if step in self.specs:
                decorator = self._decorator(step, fn)
                try:
                    fn = decorator(fn)
                except ConfigError as error:  # checks made when decorating (an async fallback)
                    raise as_written(step, self.specs[step], error) from error
        return fn

    def describe(self) -> list[dict[str, object]]:
        """The steps this policy adds, outermost first (breaker names resolve per function)."""
        return [
            self._decorator(step, None).layer.describe() for step in ORDER if step in self.specs
        ]

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<resilient.Policy{label} {' > '.join(s for s in ORDER if s in self.specs)}>"


def policy(
    name: str | None = None,
    /,
    *,
    timeout: Seconds | TimeoutPreset | Mapping[str, Any] | Decorator | None = None,
    retry: RetryConfig | RetryPreset | Mapping[str, Any] | Decorator | Literal[True] | None = None,
    breaker: str
    | tuple[str | None, BreakerConfig | BreakerPreset]
    | BreakerConfig
    | Mapping[str, Any]
    | Decorator
    | Literal[True]
    | None = None,
    fallback: Any = None,
    degradable: Any = None,
    total_timeout: Seconds | TimeoutPreset | Mapping[str, Any] | Decorator | None = None,
    bulkhead: Any = None,
    hedge: Any = None,
    rate_limit: Any = None,
) -> Policy:
    """Declare a stack in the canonical order, or fetch a named one (``policy("ai_service")``).

    Each step takes what its decorator takes: ``timeout=45`` or ``"ai_operation"``,
    ``retry="standard"`` or a ``RetryConfig`` or a dict of keywords,
    ``breaker="name"`` or ``("name", "ai_service")`` or a dict (``name``, ``config``,
    ``store`` and any ``BreakerConfig`` field), ``fallback=value`` or a callable or a dict,
    ``degradable="feature"``, ``rate_limit=10`` (calls per second) or ``(600, 60)`` or a
    dict (``rate``, ``per``, ``burst``, ``mode``, ``name``, ``store``), ``bulkhead=10`` or
    a dict (``max_concurrent``, ``max_queue``, ``queue_timeout``, ``name``), ``hedge=0.5``
    or ``"p95"`` or a dict (``delay``, ``max_hedges``); or the decorator itself
    (``retry=resilient.retry(attempts=5)``).
    A mistake raises ``ConfigError`` naming the step and key as written (``retry.attemps``).
    """
    specs = {
        step: spec
        for step, spec in (
            ("fallback", fallback),
            ("degradable", degradable),
            ("total_timeout", total_timeout),
            ("retry", retry),
            ("rate_limit", rate_limit),
            ("breaker", breaker),
            ("bulkhead", bulkhead),
            ("hedge", hedge),
            ("timeout", timeout),
        )
        if spec is not None
    }
    if name is not None:
        given: object = name  # checked at run time too: annotations are not enforced
        if not isinstance(given, str) or not given:
            raise ConfigError("name", name, "a policy name (non-empty text) or None")
        if specs:
            return Policy(specs, name)
        found = named.get(name)
        if found is None:
            known = sorted(named)
            if not known:
                raise ConfigError("name", name, "a loaded policy name (none loaded yet)")
            raise unknown_name("name", name, known, "a loaded policy name")
        return found
    if not specs:
        raise ConfigError("policy", None, "at least one of " + ", ".join(ORDER))
    return Policy(specs)
