"""Declarative policies: one declaration, the canonical order, one chain per function.

``policy(timeout=..., retry=..., breaker=..., fallback=...)`` builds the same stack as the
hand-written decorators, outermost first: fallback, degradable, total timeout, retry,
breaker, per-attempt timeout. Named policies come from TOML or a dict
(``load_policies``) and are applied with ``@policy("name")``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, overload

from . import _config
from ._wrapping import Decorator, layers_of
from .exceptions import ConfigError

__all__ = ["Description", "Policy", "describe", "load_policies", "policy"]

P = ParamSpec("P")
R = TypeVar("R")

ORDER = ("fallback", "degradable", "total_timeout", "retry", "breaker", "timeout")
"""The canonical order of a policy's steps, outermost first."""

_named: dict[str, Policy] = {}
_config.on_reset(_named.clear)


class Policy:
    """A declared stack of decorators; apply it like any decorator."""

    __slots__ = ("name", "specs")

    def __init__(self, specs: dict[str, Any], name: str | None = None) -> None:
        self.specs = specs
        self.name = name
        for step in self.specs:
            self._decorator(step, None)  # validate every step now, not at first use

    def _decorator(self, step: str, fn: Any) -> Decorator:
        return _BUILDERS[step](self.specs[step], fn)

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    @overload
    def __call__(self, fn: Any) -> Any: ...
    def __call__(self, fn: Any) -> Any:
        for step in reversed(ORDER):  # innermost first: each joins the same chain
            if step in self.specs:
                fn = self._decorator(step, fn)(fn)
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
    timeout: Any = None,
    retry: Any = None,
    breaker: Any = None,
    fallback: Any = None,
    degradable: Any = None,
    total_timeout: Any = None,
) -> Policy:
    """Declare a stack in the canonical order, or fetch a named one (``policy("ai_service")``).

    Each step takes what its decorator takes: ``timeout=45`` or ``"ai_operation"``,
    ``retry="standard"`` or a ``RetryConfig`` or a dict of keywords,
    ``breaker="name"`` or ``("name", "ai_service")`` or a dict, ``fallback=value`` or a
    callable or a dict, ``degradable="feature"``; or the decorator itself
    (``retry=resilient.retry(attempts=5)``).
    """
    specs = {
        step: spec
        for step, spec in (
            ("fallback", fallback),
            ("degradable", degradable),
            ("total_timeout", total_timeout),
            ("retry", retry),
            ("breaker", breaker),
            ("timeout", timeout),
        )
        if spec is not None
    }
    if name is not None:
        if specs:
            return Policy(specs, name)
        found = _named.get(name)
        if found is None:
            known = sorted(_named) or "none loaded: see resilient.load_policies"
            raise ConfigError("policy", name, f"a loaded policy name ({known})")
        return found
    if not specs:
        raise ConfigError("policy", None, "at least one of " + ", ".join(ORDER))
    return Policy(specs)


# Turning a step's declaration into a decorator.


def _given(spec: Any, step: str) -> Decorator | None:
    if isinstance(spec, Decorator):
        if spec.layer.kind != step.removeprefix("total_"):
            raise ConfigError(step, spec, f"a resilient.{step.removeprefix('total_')} decorator")
        return spec
    return None


def _timeout(spec: Any, fn: Any) -> Decorator:
    from ._timeout import timeout

    if (given := _given(spec, "timeout")) is not None:
        return given
    if isinstance(spec, Mapping):
        return timeout(**spec)
    return timeout(spec)


def _total_timeout(spec: Any, fn: Any) -> Decorator:
    if (given := _given(spec, "total_timeout")) is not None:
        return given
    return _timeout(spec, fn)


def _retry(spec: Any, fn: Any) -> Decorator:
    from ._retry import retry

    if (given := _given(spec, "retry")) is not None:
        return given
    if spec is True:
        return retry()
    if isinstance(spec, Mapping):
        return retry(**spec)
    return retry(spec)


def _breaker(spec: Any, fn: Any) -> Decorator:
    from ._breaker_layer import breaker

    if (given := _given(spec, "breaker")) is not None:
        return given
    if spec is True:
        return breaker()
    if isinstance(spec, str):
        return breaker(spec)
    if isinstance(spec, tuple) and len(spec) == 2:
        return breaker(spec[0], spec[1])
    if isinstance(spec, Mapping):
        return breaker(**spec)
    return breaker(None, spec)


def _fallback(spec: Any, fn: Any) -> Decorator:
    from ._fallback import fallback

    if (given := _given(spec, "fallback")) is not None:
        return given
    if isinstance(spec, Mapping):
        options = dict(spec)
        values = options.pop("values", ())
        if "value" in options:
            values = (options.pop("value"), *values)
        return fallback(*values, **options)
    return fallback(spec)


def _degradable(spec: Any, fn: Any) -> Decorator:
    from ._degradation import degradable

    if (given := _given(spec, "degradable")) is not None:
        return given
    if isinstance(spec, Mapping):
        return degradable(**spec)
    return degradable(spec)


_BUILDERS: dict[str, Callable[[Any, Any], Decorator]] = {
    "timeout": _timeout,
    "total_timeout": _total_timeout,
    "retry": _retry,
    "breaker": _breaker,
    "fallback": _fallback,
    "degradable": _degradable,
}


# Named policies from TOML or a dict.

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def load_policies(source: str | Path | Mapping[str, Any]) -> dict[str, Policy]:
    """Load named policies and make them available to ``policy("name")``.

    ``source`` is a dict of ``{name: {step: spec}}``, or a TOML file: a ``pyproject.toml``
    with ``[tool.resilient.policies.NAME]`` tables or a file of ``[policies.NAME]``
    tables. ``extends = "other"`` inherits another policy's steps; fallbacks and ``on``
    exception types may name objects as ``"module:attribute"``; durations are seconds.
    """
    origin = "<dict>"
    if isinstance(source, Mapping):
        tables = dict(source)
    else:
        import tomllib  # only here: most programs never load policies from a file

        path = Path(source)
        origin = str(path)
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(origin, str(path), f"a readable TOML file ({error})") from error
        found = document.get("tool", {}).get("resilient", {}).get("policies")
        if found is None:
            found = document.get("policies")
        if not isinstance(found, dict):
            raise ConfigError(origin, None, "[tool.resilient.policies.NAME] or [policies.NAME]")
        tables = found
    loaded: dict[str, Policy] = {}
    for name in tables:
        loaded[name] = Policy(_resolved(tables, name, origin, ()), name)
    _named.update(loaded)
    return loaded


def _resolved(
    tables: Mapping[str, Any], name: str, origin: str, seen: tuple[str, ...]
) -> dict[str, Any]:
    where = f"{origin}: policies.{name}"
    table = tables.get(name)
    if not isinstance(table, Mapping):
        raise ConfigError(where, table, "a table of steps")
    if name in seen:
        raise ConfigError(f"{where}.extends", name, "a chain of policies without a cycle")
    steps: dict[str, Any] = {}
    base = table.get("extends")
    if base is not None:
        if not isinstance(base, str) or base not in tables:
            raise ConfigError(f"{where}.extends", base, f"one of {sorted(tables)}")
        steps.update(_resolved(tables, base, origin, (*seen, name)))
    for key, value in table.items():
        if key == "extends":
            continue
        if key not in _BUILDERS:
            raise ConfigError(f"{where}.{key}", value, f"one of {', '.join(ORDER)} or extends")
        spec = _references(value, f"{where}.{key}")
        try:
            _BUILDERS[key](spec, None)
        except ConfigError as error:
            raise ConfigError(
                f"{where}.{key}", value, f"{error.parameter}: {error.allowed}"
            ) from error
        steps[key] = spec
    return steps


def _references(value: Any, where: str) -> Any:
    """Resolve ``"module:attribute"`` strings (fallbacks, exception types, hooks)."""
    if isinstance(value, str) and _REFERENCE.match(value):
        module, _, attribute = value.partition(":")
        try:
            found: Any = importlib.import_module(module)
            for part in attribute.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError) as error:
            raise ConfigError(where, value, f"an importable module:attribute ({error})") from error
        return found
    if isinstance(value, list):  # TOML arrays: tuples, as ``on=`` wants
        return tuple(_references(item, where) for item in value)
    if isinstance(value, dict):
        return {key: _references(item, f"{where}.{key}") for key, item in value.items()}
    return value


# Describing a decorated function.


class Description(list[dict[str, object]]):
    """A function's steps as plain dicts, outermost first; ``str()`` lays them out."""

    def __str__(self) -> str:
        lines = []
        for index, step in enumerate(self, start=1):
            settings = ", ".join(f"{k}={_short(v)}" for k, v in step.items() if k != "layer")
            lines.append(f"{index}. {step['layer']}: {settings}")
        return "\n".join(lines) if lines else "(no resilient steps)"


def _short(value: object) -> str:
    if isinstance(value, float | int | timedelta):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return repr(value) if isinstance(value, str) else str(value)


def describe(fn: object) -> Description:
    """The resilient steps around ``fn``, outermost first, with every setting."""
    return Description(layer.describe() for layer in layers_of(fn))
