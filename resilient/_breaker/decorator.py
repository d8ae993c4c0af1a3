"""``@breaker``: a breaker named by the function (or given by name) as a step of its stack.

The step itself is ``CircuitBreaker.guard_sync`` / ``guard_async``; this module finds or
makes the breaker (one per name, in the registry), at decoration or on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from .._circuit.config import BreakerConfig, check_name
from .._circuit.store import AsyncStateStore, StateStore
from .._wrapping.layer import AnyCall, AsyncCall, Decorator, Layer, apply
from ..exceptions import ConfigError
from ..presets import BreakerPreset
from .breaker import BreakerLayer
from .core import default_config
from .registry import CircuitBreakerRegistry

__all__ = ["BreakerLayer", "breaker", "default_name"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


@overload
def breaker(name: classmethod[T, P, R], /) -> classmethod[T, P, R]: ...
@overload
def breaker(name: staticmethod[P, R], /) -> staticmethod[P, R]: ...
@overload
def breaker(name: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def breaker(
    name: str | None = None,
    config: BreakerConfig | BreakerPreset | None = None,
    *,
    store: StateStore | AsyncStateStore | None = None,
    critical: bool = False,
) -> Decorator: ...
def breaker(
    name: Any = None,
    config: BreakerConfig | BreakerPreset | None = None,
    *,
    store: StateStore | AsyncStateStore | None = None,
    critical: bool = False,
) -> Any:
    """Guard a function with the circuit breaker called ``name``.

    ``name`` defaults to the function's ``module.qualname``, as with ``@breaker``
    written without parentheses. One name is one breaker:
    decorators naming the same breaker share it, and claiming a name with a different
    ``config`` or ``store`` raises ``ConfigError``. ``config`` is a ``BreakerConfig`` or
    a preset name; without one the breaker follows ``configure(breaker_defaults=...)``
    (default ``BreakerConfig.standard``: 5 failures, 30 s).

    ``critical=True`` marks the breaker one the service cannot do without: while it is
    open, the health endpoint answers "not ready" (``resilient.asgi.HealthApp``). One
    decorator saying so is enough for every decorator sharing the name; ``False`` (the
    default) leaves the mark as it is. The ``BreakerConfig.critical`` preset only sets
    thresholds (3 failures, 15 s): it does not make a breaker critical for readiness.
    """
    if callable(name) or isinstance(name, classmethod | staticmethod):
        return breaker()(name)  # ``@breaker`` without parentheses
    flag: object = critical  # checked at run time: annotations are not enforced
    if not isinstance(flag, bool):
        raise ConfigError("critical", critical, "True or False")
    if isinstance(config, str):
        config = BreakerConfig.get(config)
    elif config is not None and not isinstance(config, BreakerConfig):
        raise ConfigError("config", config, "a BreakerConfig, a preset name or None")
    if name is not None:
        check_name(name)  # checked at run time too: annotations are not enforced
    registry = CircuitBreakerRegistry.instance
    if name is not None:
        found = registry.get_or_create(name, config, store=store)
        if critical:
            found.critical = True
        return Decorator(BreakerLayer(found))
    return _NamedOnUse(registry, config, store, critical)


class _NamedOnUse(Decorator):
    """``@breaker()`` without a name: each decorated function gets ``module.qualname``."""

    __slots__ = ("_config", "_critical", "_registry", "_store")

    def __init__(
        self,
        registry: CircuitBreakerRegistry,
        config: BreakerConfig | None,
        store: Any,
        critical: bool,
    ) -> None:
        super().__init__(_Unnamed(config))
        self._registry = registry
        self._config = config
        self._store = store
        self._critical = critical

    def __call__(self, fn: Any) -> Any:
        target = fn.__func__ if isinstance(fn, classmethod | staticmethod) else fn
        name = default_name(target)
        found = self._registry.get_or_create(name, self._config, store=self._store)
        if self._critical:
            found.critical = True
        return apply(BreakerLayer(found), fn)


class _Unnamed(Layer):
    """Stands for a breaker whose name is not known until it is applied."""

    __slots__ = ("config",)
    kind = "breaker"

    def __init__(self, config: BreakerConfig | None) -> None:
        self.config = config

    def describe(self) -> dict[str, object]:
        config = self.config if self.config is not None else default_config()
        return {"layer": self.kind, "name": None, "config": config}

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        raise NotImplementedError  # never applied: _NamedOnUse resolves the name first

    def wrap_async(self, call: AsyncCall, name: str) -> AsyncCall:
        raise NotImplementedError


def default_name(target: Callable[..., Any]) -> str:
    """``module.qualname`` of ``target``: the name a breaker gets when none is given."""
    module = getattr(target, "__module__", None) or "?"
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if qualname is None:
        qualname = type(target).__qualname__
    return f"{module}.{qualname}"
