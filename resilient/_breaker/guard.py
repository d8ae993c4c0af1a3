"""``@breaker``: the decorator, and the per-call closures on the hot path.

The closures handle the paths that must be fast inline and hand everything else to
``CircuitBreaker``: a closed breaker with no failures behind it (read the state, call,
return), an open one (one clock read, raise) and, for rate, slow-call and result rules,
a closed call recorded with one transition. Which closure a function gets is decided
once, when the decorator is applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._circuit.config import BreakerConfig, check_name
from .._circuit.rules import BreakerMode, Kind
from .._runtime import config as _config
from .._wrapping.layer import AnyCall, AsyncCall, Decorator, Layer, apply
from ..exceptions import CircuitOpenError, ConfigError
from ..typing import AsyncStateStore, StateStore
from .breaker import CircuitBreaker
from .core import Permit, read_clock
from .metrics import rejected
from .registry import CircuitBreakerRegistry

__all__ = ["BreakerLayer", "breaker", "default_name"]

_CLOSED, _OPEN = BreakerMode.CLOSED, BreakerMode.OPEN
_SUCCESS = Kind.SUCCESS


class BreakerLayer(Layer):
    """The breaker step of a resilient stack."""

    __slots__ = ("breaker",)
    kind = "breaker"

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    def describe(self) -> dict[str, object]:
        return {"layer": self.kind, "name": self.breaker.name, "config": self.breaker.config}

    def wrap_sync(self, call: AnyCall, name: str, entry: AnyCall | None = None) -> AnyCall:
        b = self.breaker
        if b.config.windowed or b.config.failure_result is not None:
            return _windowed_sync(b, call, entry)
        cb_name, follows = b.name, b.store is None
        settings = _config.state

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if entry is not None and settings.active:
                return entry(*args, **kwargs)
            if follows and settings.store is not b._bound:
                b._follow_default()
            state = b._cell.state
            mode = state.mode
            if mode is _CLOSED and not b._loud:
                try:
                    result = call(*args, **kwargs)
                except Exception as error:
                    b._report(b._admit_closed(state), *b._classify_error(error))
                    raise
                if b._cell.state.failures:  # a success ends a run of failures
                    b._report(b._admit_closed(state), _SUCCESS, "success")
                return result
            if mode is _OPEN and not b._loud:
                left = state.open_until - settings.now()
                if left > 0.0:
                    if settings.emit is not None:
                        rejected(cb_name)
                    raise CircuitOpenError(cb_name, left)
            return b.call(call, *args, **kwargs)

        return guarded

    def wrap_async(self, call: AsyncCall, name: str, entry: AsyncCall | None = None) -> AsyncCall:
        b = self.breaker
        if b.config.windowed or b.config.failure_result is not None:
            return _windowed_async(b, call, entry)
        cb_name, follows = b.name, b.store is None
        settings = _config.state

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if entry is not None and settings.active:
                return await entry(*args, **kwargs)
            if follows and settings.store is not b._bound:
                b._follow_default()
            state = b._cell.state
            mode = state.mode
            if mode is _CLOSED and not b._loud:
                try:
                    result = await call(*args, **kwargs)
                except Exception as error:
                    await b._areport(b._admit_closed(state), *b._classify_error(error))
                    raise
                if b._cell.state.failures:
                    await b._areport(b._admit_closed(state), _SUCCESS, "success")
                return result
            if mode is _OPEN and not b._loud:
                left = state.open_until - settings.now()
                if left > 0.0:
                    if settings.emit is not None:
                        rejected(cb_name)
                    raise CircuitOpenError(cb_name, left)
            return await b.acall(call, *args, **kwargs)

        return guarded


def _windowed_sync(b: CircuitBreaker, call: AnyCall, entry: AnyCall | None) -> AnyCall:
    """Rate, slow-call and result rules judge every outcome: time it, one transition."""
    follows, settings = b.store is None, _config.state

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if entry is not None and settings.active:
            return entry(*args, **kwargs)
        if follows and settings.store is not b._bound:
            b._follow_default()
        state = b._cell.state
        if state.mode is not _CLOSED or b._loud:
            return b.call(call, *args, **kwargs)
        started = read_clock()
        try:
            result = call(*args, **kwargs)
        except Exception as error:
            b._report(Permit(state.gen, False, started), *b._classify_error(error))
            raise
        b._record(state.gen, result, started)
        return result

    return guarded


def _windowed_async(b: CircuitBreaker, call: AsyncCall, entry: AsyncCall | None) -> AsyncCall:
    follows, settings = b.store is None, _config.state

    async def guarded(*args: Any, **kwargs: Any) -> Any:
        if entry is not None and settings.active:
            return await entry(*args, **kwargs)
        if follows and settings.store is not b._bound:
            b._follow_default()
        state = b._cell.state
        if state.mode is not _CLOSED or b._loud:
            return await b.acall(call, *args, **kwargs)
        started = read_clock()
        try:
            result = await call(*args, **kwargs)
        except Exception as error:
            await b._areport(Permit(state.gen, False, started), *b._classify_error(error))
            raise
        await b._arecord(state.gen, result, started)
        return result

    return guarded


def breaker(
    name: str | None = None,
    config: BreakerConfig | str | None = None,
    *,
    store: StateStore | AsyncStateStore | None = None,
    critical: bool = False,
) -> Decorator:
    """Guard a function with the circuit breaker called ``name``.

    ``name`` defaults to the function's ``module.qualname``. One name is one breaker:
    decorators naming the same breaker share it, and claiming a name with a different
    ``config`` or ``store`` raises ``ConfigError``. ``config`` is a ``BreakerConfig`` or
    a preset name (default ``"standard"``: 5 failures, 30 s).

    ``critical=True`` marks the breaker one the service cannot do without: while it is
    open, the health endpoint answers "not ready" (``resilient.asgi.HealthApp``). One
    decorator saying so is enough for every decorator sharing the name; ``False`` (the
    default) leaves the mark as it is. The ``BreakerConfig.critical`` preset only sets
    thresholds (3 failures, 15 s): it does not make a breaker critical for readiness.
    """
    flag: object = critical  # checked at run time: annotations are not enforced
    if not isinstance(flag, bool):
        raise ConfigError("critical", critical, "True or False")
    if isinstance(config, str):
        config = BreakerConfig.get(config)
    elif config is None:
        config = BreakerConfig.standard
    elif not isinstance(config, BreakerConfig):
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
        self, registry: CircuitBreakerRegistry, config: BreakerConfig, store: Any, critical: bool
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

    def __init__(self, config: BreakerConfig) -> None:
        self.config = config

    def describe(self) -> dict[str, object]:
        return {"layer": self.kind, "name": None, "config": self.config}

    def wrap_sync(self, call: AnyCall, name: str, entry: AnyCall | None = None) -> AnyCall:
        raise NotImplementedError  # never applied: _NamedOnUse resolves the name first

    def wrap_async(self, call: AsyncCall, name: str, entry: AsyncCall | None = None) -> AsyncCall:
        raise NotImplementedError


def default_name(target: Callable[..., Any]) -> str:
    """``module.qualname`` of ``target``: the name a breaker gets when none is given."""
    module = getattr(target, "__module__", None) or "?"
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if qualname is None:
        qualname = type(target).__qualname__
    return f"{module}.{qualname}"
