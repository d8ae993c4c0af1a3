"""The TypeScript-style API: ``create_circuit_breaker(fn, ...)`` and ``.fire(*args)``.

Public through ``resilient.compat``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

from .._circuit.config import BreakerConfig
from .._circuit.rules import BreakerMode
from .._wrapping.layer import apply
from ..exceptions import ConfigError
from ..presets import BreakerPreset
from .breaker import BreakerLayer, CircuitBreaker, Store
from .decorator import default_name
from .registry import CircuitBreakerRegistry

__all__ = ["FiringBreaker", "create_circuit_breaker"]

P = ParamSpec("P")
R = TypeVar("R")


class FiringBreaker(Generic[P, R]):
    """A function bound to a breaker, as TypeScript's ``createCircuitBreaker`` returns."""

    __slots__ = ("_guarded", "breaker", "fallback", "fire")

    def __init__(
        self, fn: Callable[P, R], breaker: CircuitBreaker, fallback: Callable[..., Any] | None
    ) -> None:
        self.breaker: CircuitBreaker = breaker
        self.fallback: Callable[..., Any] | None = fallback
        guarded: Callable[P, R] = apply(BreakerLayer(breaker), fn)
        self._guarded = guarded
        is_async = inspect.iscoroutinefunction(guarded)
        self.fire: Callable[P, R] = _with_fallback(guarded, fallback, is_async)
        """Call the function through the breaker (awaitable when the function is async);
        on any failure, including a rejection, return ``fallback(*args, **kwargs)``."""

    @property
    def name(self) -> str:
        return self.breaker.name

    @property
    def opened(self) -> bool:
        """Whether the breaker rejects calls now."""
        return self.breaker.opened

    @property
    def mode(self) -> BreakerMode:
        """The mode a call would meet now (the breaker's ``mode``)."""
        return self.breaker.mode

    @property
    def state(self) -> BreakerMode:
        """Deprecated: ``mode``."""
        import warnings

        warnings.warn(
            "FiringBreaker.state is deprecated: use .mode", DeprecationWarning, stacklevel=2
        )
        return self.breaker.mode

    def __repr__(self) -> str:
        return f"<FiringBreaker {self.breaker!r}>"


def _with_fallback(guarded: Any, fallback: Callable[..., Any] | None, is_async: bool) -> Any:
    if fallback is None:
        return guarded
    if is_async:

        async def fire_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await guarded(*args, **kwargs)
            except Exception:
                value = fallback(*args, **kwargs)
                return await value if inspect.isawaitable(value) else value

        return fire_async

    def fire(*args: Any, **kwargs: Any) -> Any:
        try:
            return guarded(*args, **kwargs)
        except Exception:
            return fallback(*args, **kwargs)

    return fire


def create_circuit_breaker(
    fn: Callable[P, R],
    *,
    name: str | None = None,
    fallback: Callable[..., Any] | None = None,
    config: BreakerConfig | BreakerPreset | None = None,
    store: Store | None = None,
    **overrides: Any,
) -> FiringBreaker[P, R]:
    """Bind ``fn`` to the breaker ``name``; call it with ``.fire(*args)``, check ``.opened``.

    ``config`` is a ``BreakerConfig`` or preset name; keyword arguments override its
    fields (``failure_threshold=3``). ``name`` defaults to ``fn``'s ``module.qualname``.
    """
    if not callable(fn):
        raise ConfigError("fn", fn, "a callable")
    if isinstance(config, str):
        config = BreakerConfig.get(config)
    elif config is None:
        config = BreakerConfig.standard
    elif not isinstance(config, BreakerConfig):
        raise ConfigError("config", config, "a BreakerConfig, a preset name or None")
    if overrides:
        config = config.replace(**overrides)
    if fallback is not None and not callable(fallback):
        raise ConfigError("fallback", fallback, "a callable or None")
    breaker = CircuitBreakerRegistry.instance.get_or_create(
        name if name is not None else default_name(fn), config, store=store
    )
    return FiringBreaker(fn, breaker, fallback)
