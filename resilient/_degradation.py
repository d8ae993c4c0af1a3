"""Graceful degradation: named features, their availability, and the app's level.

A feature is available unless someone disabled it (an override kept in the state store,
so every process sharing the store agrees) or a circuit breaker it depends on is open.
The degradation level is the worst level among the unavailable features, raised to
``minor`` when the health report says latency or errors are up. ``@degradable`` skips
the function entirely while its feature is unavailable.
"""

from __future__ import annotations

import enum
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from ._runtime import config as _config
from ._runtime.logs import digest, transitions
from ._wrapping.layer import AnyCall, AsyncCall, Decorator, Layer
from .exceptions import ConfigError, FeatureUnavailableError

__all__ = [
    "DegradationLevel",
    "DegradationService",
    "Feature",
    "FeatureUnavailableError",
    "Features",
    "degradable",
]

T = TypeVar("T")


class DegradationLevel(enum.IntEnum):
    """How degraded the app is, from fully working to offline (ordered: compare with ``<``)."""

    none = 0
    minor = 1
    moderate = 2
    severe = 3
    critical = 4

    @property
    def description(self) -> str:
        return _TABLE[self][0]

    @property
    def ui_impact(self) -> str:
        return _TABLE[self][1]


_TABLE = {
    DegradationLevel.none: ("Full functionality", "Normal"),
    DegradationLevel.minor: ("Some features slower", "Info banner"),
    DegradationLevel.moderate: ("AI unavailable", "Warning banner"),
    DegradationLevel.severe: ("Limited to offline content", "Error banner"),
    DegradationLevel.critical: ("App nearly unusable", "Full-screen error"),
}


@dataclass(frozen=True, slots=True)
class Feature:
    """A capability that depends on some breakers; unavailable, it degrades the app to ``level``.

    ``critical=True`` marks a feature the app cannot serve its core job without: while it
    is unavailable, the health endpoint's readiness check fails (503), so a load balancer
    stops sending traffic. Other features only raise the degradation level.
    """

    name: str
    depends_on: tuple[str, ...] = ()
    level: DegradationLevel = DegradationLevel.moderate
    description: str = ""
    critical: bool = False

    def __post_init__(self) -> None:
        # Checked at run time too: annotations are not enforced.
        name: object = self.name
        if not isinstance(name, str) or not name:
            raise ConfigError("name", name, "a non-empty string")
        depends_on: object = self.depends_on
        if isinstance(depends_on, str):
            depends_on = (depends_on,)
        if not isinstance(depends_on, tuple | list) or not all(
            isinstance(n, str) and n for n in depends_on
        ):
            raise ConfigError("depends_on", depends_on, "a tuple of breaker names")
        object.__setattr__(self, "depends_on", tuple(depends_on))
        level: object = self.level
        if not isinstance(level, DegradationLevel):
            raise ConfigError("level", level, "a DegradationLevel")
        description: object = self.description
        if not isinstance(description, str):
            raise ConfigError("description", description, "a string")
        critical: object = self.critical
        if not isinstance(critical, bool):
            raise ConfigError("critical", critical, "True or False")


class Features:
    """The known features by name (``Features.ai_assistant``...)."""

    ai_assistant: ClassVar[Feature] = Feature(
        "ai_assistant",
        depends_on=("ai_service",),
        level=DegradationLevel.moderate,
        description="AI hints and explanations",
    )
    _known: ClassVar[dict[str, Feature]] = {}

    @classmethod
    def register(cls, feature: Feature) -> Feature:
        """Make ``feature`` known by name; ``ConfigError`` if another has that name."""
        found = cls._known.setdefault(feature.name, feature)
        if found != feature:
            raise ConfigError("feature", feature, f"a name other than {feature.name!r}")
        return feature

    @classmethod
    def get(cls, name: str) -> Feature:
        """The feature registered as ``name``; ``ConfigError`` suggests the closest name."""
        found = cls._known.get(name)
        if found is None:
            from .presets import unknown_name

            raise unknown_name("feature", name, sorted(cls._known), "a Feature")
        return found

    @classmethod
    def all(cls) -> list[Feature]:
        return [cls._known[name] for name in sorted(cls._known)]

    @classmethod
    def _reset(cls) -> None:
        cls._known = {cls.ai_assistant.name: cls.ai_assistant}


Features._reset()
_config.on_reset(Features._reset)


LevelListener = Callable[[DegradationLevel, DegradationLevel], object]


class DegradationService:
    """Which features are available, and how degraded the app is.

    ``DegradationService.instance`` is the process-wide one. Overrides made with
    ``disable``/``enable`` live in the state store (``configure(store=...)``), so every
    service sharing that store sees them.
    """

    instance: ClassVar[DegradationService]
    _FLAG = "feature-disabled:"

    def __init__(self, store: Any = None) -> None:
        if store is not None and not all(
            callable(getattr(store, method, None)) for method in ("get_flag", "set_flag")
        ):
            raise ConfigError("store", store, "a state store (MemoryStore, RedisStore) or None")
        self._store = store
        self._listeners: list[LevelListener] = []
        self._level = DegradationLevel.none
        self._lock = threading.Lock()
        self._initialized = False

    @property
    def store(self) -> Any:
        if self._store is not None:
            return self._store
        from ._breaker.breaker import default_store

        return default_store()

    def initialize(self) -> DegradationService:
        """Start following breaker events, so level listeners hear about changes."""
        if not self._initialized:
            from ._runtime.listeners import add_listener

            add_listener(self._on_breaker_event)
            self._initialized = True
        self.check()
        return self

    def _on_breaker_event(self, event: object) -> None:
        if type(event).__name__ not in ("CallRecorded", "CallRejected"):
            self.check()

    # Availability.

    def _feature(self, feature: Feature | str) -> Feature:
        """The feature meant; a ``Feature`` handed in is registered, so the level counts it."""
        if isinstance(feature, Feature):
            if Features._known.get(feature.name) is not feature:
                Features.register(feature)
            return feature
        if isinstance(feature, str):
            return Features.get(feature)
        raise ConfigError("feature", feature, "a Feature or a registered feature name")

    def why_unavailable(self, feature: Feature | str) -> str | None:
        """``None`` when the feature is available, else the reason."""
        found = self._feature(feature)
        reason = self.store.get_flag(self._FLAG + found.name)
        if reason is not None:
            return f"disabled: {reason}"
        from ._breaker.registry import CircuitBreakerRegistry

        registry = CircuitBreakerRegistry.instance
        for name in found.depends_on:
            if name in registry and registry.get(name).opened:
                return f"circuit {name!r} is open"
        return None

    def is_feature_available(self, feature: Feature | str) -> bool:
        """True unless the feature is disabled or one of its breakers is open."""
        return self.why_unavailable(feature) is None

    def disable(self, feature: Feature | str, reason: str = "disabled by hand") -> None:
        """Turn a feature off everywhere the store is shared, until ``enable``."""
        self.store.set_flag(self._FLAG + self._feature(feature).name, reason)
        self.check()

    def enable(self, feature: Feature | str) -> None:
        """Undo ``disable``."""
        self.store.set_flag(self._FLAG + self._feature(feature).name, None)
        self.check()

    # The level.

    @property
    def level(self) -> DegradationLevel:
        """The worst level among unavailable features and the health report."""
        return self.check()

    def check(self) -> DegradationLevel:
        """Recompute the level now, and tell the listeners if it changed."""
        level = DegradationLevel.none
        for feature in Features.all():
            if not self.is_feature_available(feature):
                level = max(level, feature.level)
        level = max(level, _health_level())
        with self._lock:
            old, self._level = self._level, level
            listeners = list(self._listeners)
        if old != level:
            transitions.note(
                "resilient: degradation level",
                f"resilient: degradation level {old.name} -> {level.name}: "
                f"{level.description} (UI: {level.ui_impact})",
                logging.WARNING if level > old else logging.INFO,
            )
            for listener in listeners:
                try:
                    listener(old, level)
                except Exception as error:
                    digest.report("level listener failed", repr(listener), repr(error))
        return level

    def add_listener(self, listener: LevelListener) -> LevelListener:
        """Call ``listener(old, new)`` whenever the level changes."""
        if not callable(listener):
            raise ConfigError("listener", listener, "a callable taking (old, new)")
        with self._lock:
            self._listeners.append(listener)
        return listener

    # Running code that depends on a feature.

    def execute_with_fallback(
        self,
        feature: Feature | str,
        primary: Callable[[], T],
        fallback: Callable[[], T],
    ) -> T:
        """Run ``primary`` if the feature is available, else (or if it fails) ``fallback``.

        With ``async def`` callables it returns an awaitable: ``await
        service.execute_with_fallback(feature, primary, fallback)``.
        """
        found = self._feature(feature)
        if inspect.iscoroutinefunction(primary):
            return self._aexecute(found, primary, fallback)  # type: ignore[return-value]
        if not self.is_feature_available(found):
            return fallback()
        try:
            return primary()
        except Exception as error:
            self._failed(found, error)
            return fallback()

    async def _aexecute(
        self, feature: Feature, primary: Callable[[], Awaitable[T]], fallback: Callable[[], Any]
    ) -> T:
        if self.is_feature_available(feature):
            try:
                return await primary()
            except Exception as error:
                self._failed(feature, error)
        answer: T = await _maybe_await(fallback())
        return answer

    def _failed(self, feature: Feature, error: Exception) -> None:
        from .telemetry import record_fallback

        record_fallback(feature.name)
        digest.report("feature failed, fallback used", feature.name, repr(error))

    def __repr__(self) -> str:
        return f"<DegradationService level={self._level.name}>"


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _health_level() -> DegradationLevel:
    from .telemetry import generate_report

    return level_for_health(generate_report(services=())["summary"]["health_status"])


def level_for_health(status: str) -> DegradationLevel:
    """The level a health status raises the app to: unhealthy is moderate, degraded minor."""
    from .telemetry import HealthStatus

    if status == HealthStatus.UNHEALTHY:
        return DegradationLevel.moderate
    if status == HealthStatus.DEGRADED:
        return DegradationLevel.minor
    return DegradationLevel.none  # critical means an open circuit: its features decide


def _fresh_service() -> None:
    DegradationService.instance = DegradationService()


_fresh_service()
_config.on_reset(_fresh_service)


# The decorator.


def degradable(
    feature: Feature | str, *, fallback: object = None, service: DegradationService | None = None
) -> Decorator:
    """Skip the call while ``feature`` is unavailable; answer with ``fallback`` then or on failure.

    ``fallback`` is a value or a callable receiving the call's arguments. Without one,
    an unavailable feature raises ``FeatureUnavailableError`` and failures propagate.
    """
    if isinstance(feature, str):
        feature = Features.get(feature)
    elif isinstance(feature, Feature):
        if Features._known.get(feature.name) is not feature:
            Features.register(feature)  # known to every service from now on
    else:
        raise ConfigError("feature", feature, "a Feature or a registered feature name")
    given: object = service  # checked at run time too: annotations are not enforced
    if given is not None and not isinstance(given, DegradationService):
        raise ConfigError("service", service, "a DegradationService or None")
    from ._fallback import _Source

    source = _Source(fallback) if fallback is not None else None
    return Decorator(_Degradable(feature, source, service))


class _Degradable(Layer):
    __slots__ = ("fallback", "feature", "service")
    kind = "degradable"

    def __init__(self, feature: Feature, fallback: Any, service: DegradationService | None) -> None:
        self.feature = feature
        self.fallback = fallback
        self.service = service

    def describe(self) -> dict[str, object]:
        fallback = None if self.fallback is None else self.fallback.value
        return {"layer": self.kind, "feature": self.feature.name, "fallback": fallback}

    def _service(self) -> DegradationService:
        return self.service or DegradationService.instance

    def _answer(self, args: Any, kwargs: Any, reason: str, error: Exception | None) -> Any:
        if self.fallback is None:
            if error is not None:
                raise error
            raise FeatureUnavailableError(self.feature.name, reason)
        if error is not None:
            self._service()._failed(self.feature, error)
        return self.fallback.call(args, kwargs, error)

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        if self.fallback is not None and self.fallback.is_async:
            # A def cannot await it: the caller would get an un-awaited coroutine.
            raise ConfigError(
                "fallback", self.fallback.value, f"a sync callable or a value for {name}"
            )
        layer = self

        def gated(*args: Any, **kwargs: Any) -> Any:
            reason = layer._service().why_unavailable(layer.feature)
            if reason is not None:
                return layer._answer(args, kwargs, reason, None)
            try:
                return call(*args, **kwargs)
            except Exception as error:
                return layer._answer(args, kwargs, "failed", error)

        return gated

    def wrap_async(self, call: AsyncCall, name: str) -> AsyncCall:
        layer = self

        async def gated(*args: Any, **kwargs: Any) -> Any:
            reason = layer._service().why_unavailable(layer.feature)
            if reason is not None:
                return await _maybe_await(layer._answer(args, kwargs, reason, None))
            try:
                return await call(*args, **kwargs)
            except Exception as error:
                return await _maybe_await(layer._answer(args, kwargs, "failed", error))

        return gated
