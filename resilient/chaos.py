"""Chaos injection: faults, latency and canned results, for tests and staging.

Each injector is a decorator (it joins the function's resilient stack where you put it,
usually innermost) and a context manager (inside the block, every resilient-decorated
call gets the injection just around the function itself, so retries, timeouts and
breakers see it as they would see the network). Latency goes through the configured
clock, so under ``FakeClock`` a 60 s delay takes no time. ``enabled`` defaults to the
``RESILIENT_CHAOS`` environment variable (``1``, ``true``, ``yes``, ``on``), so the same
code can inject in a staging deployment and stay inert in production.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeVar

from ._runtime import config as _config
from ._runtime import validate as _validate
from ._wrapping.layer import AnyCall, AsyncCall, Decorator, Layer, set_context_probe
from ._wrapping.observe import active_chaos
from .exceptions import ConfigError
from .metrics._names import CHAOS_INJECTIONS

__all__ = ["ChaosInjected", "Injector", "inject_fault", "inject_latency", "inject_result"]

P = ParamSpec("P")
R = TypeVar("R")
Kind = Literal["fault", "latency", "result"]


@dataclass(frozen=True, slots=True)
class ChaosInjected:
    """A chaos injector acted on a call of ``policy``."""

    kind: Kind
    policy: str
    detail: str


def _enabled_by_environment() -> bool:
    return os.environ.get("RESILIENT_CHAOS", "").strip().lower() in ("1", "true", "yes", "on")


class Injector:
    """One kind of trouble, at a rate; usable as a decorator and as a context manager."""

    def __init__(
        self, kind: Kind, payload: Any, rate: float, seed: int | None, enabled: bool | None
    ) -> None:
        self.kind = kind
        self.payload = payload
        self.rate: float = _validate.fraction("rate", rate)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError("seed", seed, "an int, or None for a random seed")
        if enabled is not None and not isinstance(enabled, bool):
            raise ConfigError("enabled", enabled, "True, False, or None (from RESILIENT_CHAOS)")
        self.random: random.Random = random.Random(seed)
        self.enabled: bool = _enabled_by_environment() if enabled is None else enabled

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"<resilient.chaos {self.kind} {self.payload!r} rate={self.rate:g} {state}>"

    # Deciding and acting.

    def _fires(self) -> bool:
        return self.enabled and (self.rate >= 1.0 or self.random.random() < self.rate)

    def _report(self, policy: str) -> None:
        detail = repr(self.payload)
        emit = _config.state.emit
        if emit is not None:
            emit.increment(CHAOS_INJECTIONS, (("kind", self.kind), ("policy", policy)))
        from ._runtime.listeners import dispatch, hub

        if hub.active:
            dispatch((), (ChaosInjected(self.kind, policy, detail),))  # type: ignore[arg-type]

    def before_sync(self, policy: str) -> tuple[bool, Any]:
        """Act before the call: ``(True, result)`` when the call must not happen."""
        if not self._fires():
            return False, None
        self._report(policy)
        if self.kind == "latency":
            _config.state.clock.sleep(self.payload)
            return False, None
        if self.kind == "fault":
            raise self._error()
        return True, self.payload

    async def before_async(self, policy: str) -> tuple[bool, Any]:
        if not self._fires():
            return False, None
        self._report(policy)
        if self.kind == "latency":
            await _config.state.clock.asleep(self.payload)
            return False, None
        if self.kind == "fault":
            raise self._error()
        return True, self.payload

    def _error(self) -> BaseException:
        error = self.payload
        if isinstance(error, type):
            return error("injected by resilient.chaos")  # type: ignore[no-any-return]
        if callable(error):
            made: BaseException = error()
            return made
        assert isinstance(error, BaseException)
        return error

    # As a decorator: a layer of the function's stack.

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        return Decorator(_ChaosLayer((self,)))(fn)

    # As a context manager: every resilient call inside the block.

    # The same injector may be entered by overlapping tasks, or nested: nothing of one
    # entry is kept on the injector, and leaving never raises over the block's error.

    def __enter__(self) -> Injector:
        with _config.lock:
            _active.set((*_active.get(), self))
            _config.state.chaos += 1
            _config.state.refresh()
        return self

    def __exit__(self, *exc: object) -> None:
        with _config.lock:
            try:
                found = _active.get()
                for index in range(len(found) - 1, -1, -1):
                    if found[index] is self:
                        _active.set(found[:index] + found[index + 1 :])
                        break
            finally:
                _config.state.chaos = max(0, _config.state.chaos - 1)
                _config.state.refresh()


_active: ContextVar[tuple[Injector, ...]] = active_chaos


class _ChaosLayer(Layer):
    """Injects before calling; as the innermost layer it stands in for the network."""

    __slots__ = ("injectors",)
    kind = "chaos"

    def __init__(self, injectors: tuple[Injector, ...] | None) -> None:
        # None: the ones active in the caller's context
        self.injectors: tuple[Injector, ...] | None = injectors

    def describe(self) -> dict[str, object]:
        found = self.injectors or ()
        return {"layer": self.kind, "injectors": [repr(i) for i in found]}

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        fixed = self.injectors

        def injected(*args: Any, **kwargs: Any) -> Any:
            for injector in fixed if fixed is not None else _active.get():
                done, result = injector.before_sync(name)
                if done:
                    return result
            return call(*args, **kwargs)

        return injected

    def wrap_async(self, call: AsyncCall, name: str) -> AsyncCall:
        fixed = self.injectors

        async def injected(*args: Any, **kwargs: Any) -> Any:
            for injector in fixed if fixed is not None else _active.get():
                done, result = await injector.before_async(name)
                if done:
                    return result
            return await call(*args, **kwargs)

        return injected


CONTEXT_PROBE = _ChaosLayer(None)
"""The innermost step added while a chaos context manager is active (see ``_wrapping.observe``)."""
set_context_probe(CONTEXT_PROBE)


def inject_fault(
    error: BaseException | type[BaseException] | Callable[[], BaseException],
    *,
    rate: float = 1.0,
    seed: int | None = None,
    enabled: bool | None = None,
) -> Injector:
    """Raise ``error`` (an exception, a type, or a factory) instead of calling, at ``rate``."""
    if not (isinstance(error, BaseException) or callable(error)):
        raise ConfigError("error", error, "an exception, an exception type or a factory")
    return Injector("fault", error, rate, seed, enabled)


def inject_latency(
    seconds: float, *, rate: float = 1.0, seed: int | None = None, enabled: bool | None = None
) -> Injector:
    """Sleep ``seconds`` (through the configured clock) before calling, at ``rate``."""
    delay = _validate.required_duration("seconds", seconds)
    return Injector("latency", delay, rate, seed, enabled)


def inject_result(
    value: object, *, rate: float = 1.0, seed: int | None = None, enabled: bool | None = None
) -> Injector:
    """Return ``value`` instead of calling, at ``rate``."""
    return Injector("result", value, rate, seed, enabled)
