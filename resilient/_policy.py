"""Declarative policies: one declaration, the canonical order, one chain per function.

``policy(timeout=..., retry=..., breaker=..., fallback=...)`` builds the same stack as the
hand-written decorators, outermost first: fallback, degradable, total timeout, retry,
breaker, per-attempt timeout. Named policies come from TOML or a dict
(``load_policies``) and are applied with ``@policy("name")``.

Every mistake is a ``ConfigError`` raised when the policy is declared or loaded, naming
what the user wrote: ``retry.attemps`` (with the closest valid key), ``breaker`` for
``breaker=-1``, and the file and policy for a policy loaded from a file.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from types import ModuleType
from typing import Any, ParamSpec, TypeVar, overload

from ._runtime import config as _config
from ._wrapping.layer import Decorator, layers_of
from .exceptions import ConfigError
from .presets import Timeouts, closest, unknown_name

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
            _build(step, self.specs[step], None)  # validate every step now, not at first use

    def _decorator(self, step: str, fn: Any) -> Decorator:
        return _build(step, self.specs[step], fn)

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
                    raise _as_written(step, self.specs[step], error) from error
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
    ``breaker="name"`` or ``("name", "ai_service")`` or a dict (``name``, ``config``,
    ``store`` and any ``BreakerConfig`` field), ``fallback=value`` or a callable or a dict,
    ``degradable="feature"``; or the decorator itself (``retry=resilient.retry(attempts=5)``).
    A mistake raises ``ConfigError`` naming the step and key as written (``retry.attemps``).
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
        given: object = name  # checked at run time too: annotations are not enforced
        if not isinstance(given, str) or not given:
            raise ConfigError("name", name, "a policy name (non-empty text) or None")
        if specs:
            return Policy(specs, name)
        found = _named.get(name)
        if found is None:
            known = sorted(_named)
            if not known:
                raise ConfigError("name", name, "a loaded policy name (none loaded yet)")
            raise unknown_name("name", name, known, "a loaded policy name")
        return found
    if not specs:
        raise ConfigError("policy", None, "at least one of " + ", ".join(ORDER))
    return Policy(specs)


# Turning a step's declaration into a decorator.

_FORMS = {
    "timeout": "seconds, a Timeouts preset name, a dict of timeout keywords "
    "or a resilient.timeout decorator",
    "retry": "True, a RetryConfig, a preset name, a dict of retry keywords "
    "or a resilient.retry decorator",
    "breaker": "True, a breaker name, (name, config), a BreakerConfig, a dict of breaker "
    "keywords or a resilient.breaker decorator",
    "degradable": "a Feature, a feature name, a dict of degradable keywords "
    "or a resilient.degradable decorator",
}
_FORMS["total_timeout"] = _FORMS["timeout"]


def _build(step: str, spec: Any, fn: Any) -> Decorator:
    """The decorator for one step; a ``ConfigError`` names the step (and key) as written."""
    try:
        if isinstance(spec, Mapping):
            _check_keys(step, spec)
        return _BUILDERS[step](spec, fn)
    except ConfigError as error:
        raise _as_written(step, spec, error) from error


def _as_written(step: str, spec: Any, error: ConfigError) -> ConfigError:
    if isinstance(spec, Mapping):  # the key inside the step's dict: ``retry.attempts``
        return ConfigError(f"{step}.{error.parameter}", error.value, error.allowed)
    if error.parameter == step or error.value is spec:
        return ConfigError(step, spec, error.allowed)
    return ConfigError(step, spec, f"{error.parameter}: {error.allowed}")


def _check_keys(step: str, spec: Mapping[Any, Any]) -> None:
    known = _keys(step)
    for key, value in spec.items():
        if key not in known:
            listed = ", ".join(sorted(known))
            raise ConfigError(
                str(key), value, f"a {step} key ({listed}){closest(key, sorted(known))}"
            )


def _keys(step: str) -> frozenset[str]:
    """The keys a step's dict may hold: its decorator's keyword parameters (and more)."""
    if step in ("timeout", "total_timeout"):
        from ._timeout.decorator import timeout

        return _keywords(timeout)
    if step == "retry":
        from ._retry.decorator import retry

        return _keywords(retry)
    if step == "breaker":
        from ._breaker.decorator import breaker

        return _keywords(breaker) | _breaker_fields()
    if step == "fallback":
        from ._fallback import fallback

        return _keywords(fallback) | {"value", "values"}
    from ._degradation import degradable

    return _keywords(degradable)


def _keywords(fn: Callable[..., Any]) -> frozenset[str]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(
        name for name, p in inspect.signature(fn).parameters.items() if p.kind in kinds
    )


def _breaker_fields() -> frozenset[str]:
    import dataclasses

    from ._circuit.config import BreakerConfig

    return frozenset(f.name for f in dataclasses.fields(BreakerConfig) if f.init)


def _given(spec: Any, step: str) -> Decorator | None:
    if isinstance(spec, Decorator):
        if spec.layer.kind != step.removeprefix("total_"):
            raise ConfigError(step, spec, f"a resilient.{step.removeprefix('total_')} decorator")
        return spec
    return None


def _timeout(spec: Any, fn: Any) -> Decorator:
    from ._timeout.decorator import timeout

    if (given := _given(spec, "timeout")) is not None:
        return given
    if isinstance(spec, Mapping):
        options = dict(spec)
        if isinstance(options.get("seconds"), str):
            options["seconds"] = Timeouts.get(options["seconds"], parameter="seconds")
        return timeout(**options)
    if isinstance(spec, str):
        return timeout(Timeouts.get(spec))
    return timeout(spec)


def _total_timeout(spec: Any, fn: Any) -> Decorator:
    if (given := _given(spec, "total_timeout")) is not None:
        return given
    return _timeout(spec, fn)


def _retry(spec: Any, fn: Any) -> Decorator:
    from ._retry.decorator import RetryConfig, retry

    if (given := _given(spec, "retry")) is not None:
        return given
    if spec is True:
        return retry()
    if isinstance(spec, Mapping):
        options = dict(spec)
        if isinstance(options.get("config"), str):
            options["config"] = _preset(RetryConfig, "config", options["config"])
        return retry(**options)
    if isinstance(spec, str):
        return retry(_preset(RetryConfig, "retry", spec))
    if not isinstance(spec, RetryConfig):
        raise ConfigError("retry", spec, _FORMS["retry"])
    return retry(spec)


def _breaker(spec: Any, fn: Any) -> Decorator:
    from ._breaker.decorator import breaker
    from ._circuit.config import BreakerConfig

    if (given := _given(spec, "breaker")) is not None:
        return given
    if spec is True:
        return breaker()
    if isinstance(spec, str):
        return breaker(spec)  # always a name: never a preset, never an import path
    if isinstance(spec, tuple) and len(spec) == 2:
        config = spec[1]
        if isinstance(config, str):
            config = _preset(BreakerConfig, "config", config)
        return breaker(spec[0], config)
    if isinstance(spec, Mapping):
        options = dict(spec)
        fields = {key: options.pop(key) for key in spec if key in _breaker_fields()}
        config = options.get("config")
        if isinstance(config, str):
            config = options["config"] = _preset(BreakerConfig, "config", config)
        if fields:  # ``{name = "db", failure_threshold = 3}``: a preset with changes
            if config is None:
                config = BreakerConfig.standard
            elif not isinstance(config, BreakerConfig):
                raise ConfigError("config", config, "a BreakerConfig, a preset name or None")
            options["config"] = config.replace(**fields)
        return breaker(**options)
    if not isinstance(spec, BreakerConfig):
        raise ConfigError("breaker", spec, _FORMS["breaker"])
    return breaker(None, spec)


def _preset(kind: Any, parameter: str, name: str) -> Any:
    """The preset ``kind.name``; the error suggests the closest preset name."""
    if name not in kind.names:
        raise unknown_name(parameter, name, kind.names, f"a {kind.__name__}")
    return kind.get(name)


def _fallback(spec: Any, fn: Any) -> Decorator:
    from ._fallback import fallback

    if (given := _given(spec, "fallback")) is not None:
        return given
    if isinstance(spec, Mapping):
        options = dict(spec)
        values = options.pop("values", ())
        if not isinstance(values, list | tuple):
            raise ConfigError("values", values, "a list of fallback values")
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

_NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_REFERENCE = re.compile(rf"^({_NAME}):({_NAME})$")
_CODE_KEYS: dict[str, frozenset[str]] = {
    "timeout": frozenset({"metrics"}),
    "total_timeout": frozenset({"metrics"}),
    "retry": frozenset({"on", "on_retry", "stop", "wait", "metrics", "budget"}),
    "breaker": frozenset({"record", "ignore", "failure_result", "store"}),
    "fallback": frozenset({"values", "on", "when", "key", "cache", "metrics"}),
    "degradable": frozenset({"fallback", "service"}),
}
"""Keys whose value is code or an object, so a ``"module:attribute"`` string is imported.

Everything else (breaker names, feature names, ``fallback.value``) is taken literally."""
_ERROR_KEYS = frozenset({"on", "record", "ignore"})
"""Keys that also take a builtin exception by its bare name (``on = ["ConnectionError"]``)."""


def load_policies(
    source: str | os.PathLike[str] | Mapping[str, Any], *, imports: str | Iterable[str] = ()
) -> dict[str, Policy]:
    """Load named policies and make them available to ``policy("name")``.

    ``source`` is a dict of ``{name: {step: spec}}``, or a TOML file: a ``pyproject.toml``
    with ``[tool.resilient.policies.NAME]`` tables or a file of ``[policies.NAME]``
    tables. ``extends = "other"`` inherits another policy's steps; durations are seconds.

    A policy that names code (``fallback = "myapp.fallbacks:offline"``, ``on``, hooks)
    imports it, which runs that module: such a file is code and must be trusted like
    code. Nothing is imported unless its module is inside one of ``imports``, an
    allow-list of packages (``imports=("myapp",)`` allows ``myapp`` and ``myapp.*``).
    Builtin exceptions may be named bare (``on = ["ConnectionError"]``) without it;
    names (breakers, features) and ``fallback = { value = "..." }`` are always text.
    """
    allowed = _allow_list(imports)
    origin, tables = _tables(source)
    own: dict[str, dict[str, Any]] = {}
    merged: dict[str, dict[str, Any]] = {}
    loaded: dict[str, Policy] = {}
    for name in tables:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{origin}: policies", name, "policy names that are non-empty text")
        steps = _merged(tables, name, origin, allowed, own, merged)
        if not steps:
            raise ConfigError(
                f"{origin}: policies.{name}",
                dict(tables[name]),
                f"at least one of {', '.join(ORDER)} (here or in the policy it extends)",
            )
        loaded[name] = Policy(steps, name)
    _named.update(loaded)
    return loaded


def _allow_list(imports: object) -> tuple[str, ...]:
    if isinstance(imports, str):
        imports = (imports,)
    if not isinstance(imports, Iterable):
        raise ConfigError("imports", imports, "module prefixes such as ('myapp',)")
    prefixes = tuple(imports)
    for prefix in prefixes:
        if not isinstance(prefix, str) or not re.fullmatch(rf"{_NAME}\.?", prefix):
            raise ConfigError("imports", imports, "module prefixes such as ('myapp',)")
    return tuple(prefix.removesuffix(".") for prefix in prefixes)


def _tables(source: object) -> tuple[str, dict[Any, Any]]:
    if isinstance(source, Mapping):
        return "<dict>", dict(source)
    if not isinstance(source, str | os.PathLike):
        raise ConfigError("source", source, "a path to a TOML file or a dict of policies")
    import tomllib  # only here: most programs never load policies from a file
    from pathlib import Path

    path = Path(source)
    origin = str(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(origin, str(path), f"a readable TOML file ({error})") from error
    tool = document.get("tool")
    found = None
    if isinstance(tool, dict) and isinstance(tool.get("resilient"), dict):
        found = tool["resilient"].get("policies")
    if found is None:
        found = document.get("policies")
    if not isinstance(found, dict):
        raise ConfigError(origin, None, "[tool.resilient.policies.NAME] or [policies.NAME]")
    return origin, found


def _merged(
    tables: Mapping[Any, Any],
    name: str,
    origin: str,
    allowed: tuple[str, ...],
    own: dict[str, dict[str, Any]],
    merged: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """``name``'s steps with those it extends, walking the chain without recursion."""
    chain = [name]
    while chain[-1] not in merged:
        current = chain[-1]
        table = tables.get(current)
        where = f"{origin}: policies.{current}"
        if not isinstance(table, Mapping):
            raise ConfigError(where, table, "a table of steps")
        base = table.get("extends")
        if base is None:
            break
        if not isinstance(base, str) or base not in tables:
            known = sorted(str(n) for n in tables)
            raise ConfigError(f"{where}.extends", base, f"one of {known}{closest(base, known)}")
        if base in chain:
            loop = [*chain[chain.index(base) :], base]
            if len(loop) > 8:  # a long loop: its ends say enough
                loop = [*loop[:3], "...", *loop[-3:]]
            cycle = " -> ".join(loop)
            raise ConfigError(f"{where}.extends", base, f"a chain without a cycle ({cycle})")
        chain.append(base)
    steps: dict[str, Any] = dict(merged.get(chain[-1], {}))
    for current in reversed(chain):
        if current not in merged:
            if current not in own:
                own[current] = _own_steps(tables[current], current, origin, allowed)
            steps.update(own[current])
            merged[current] = dict(steps)
    return merged[name]


def _own_steps(
    table: Mapping[Any, Any], name: str, origin: str, allowed: tuple[str, ...]
) -> dict[str, Any]:
    where = f"{origin}: policies.{name}"
    steps: dict[str, Any] = {}
    for key, value in table.items():
        if key == "extends":
            continue
        if key not in _BUILDERS:
            known = [*ORDER, "extends"]
            raise ConfigError(
                f"{where}.{key}", value, f"one of {', '.join(known)}{closest(key, known)}"
            )
        spec = _resolve(key, value, f"{where}.{key}", allowed)
        try:
            _build(key, spec, None)
        except ConfigError as error:
            raise ConfigError(f"{where}.{error.parameter}", error.value, error.allowed) from error
        steps[key] = spec
    return steps


def _resolve(step: str, value: Any, where: str, allowed: tuple[str, ...]) -> Any:
    """Import the code a step names, in the places that take code, from allowed modules."""
    if step == "fallback" and not isinstance(value, Mapping):
        return _code(value, where, allowed, errors=False)
    if not isinstance(value, Mapping):
        return _tuples(value)
    code = _CODE_KEYS[step]
    return {
        key: _code(item, f"{where}.{key}", allowed, errors=key in _ERROR_KEYS)
        if key in code
        else _tuples(item)
        for key, item in value.items()
    }


def _tuples(value: Any) -> Any:
    """TOML arrays as tuples: ``breaker = ["db", "database"]`` is the ``(name, config)`` form."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(item) for item in value)
    return value


def _code(value: Any, where: str, allowed: tuple[str, ...], *, errors: bool) -> Any:
    if isinstance(value, list | tuple):  # TOML arrays: tuples, as ``on=`` wants
        return tuple(_code(item, where, allowed, errors=errors) for item in value)
    if not isinstance(value, str):
        return value
    if errors and re.fullmatch(r"[A-Z]\w*", value):
        builtin = getattr(builtins, value, None)
        if isinstance(builtin, type) and issubclass(builtin, BaseException):
            return builtin
    match = _REFERENCE.match(value)
    if match is None:
        return value  # text, such as a static fallback answer
    module, attribute = match.groups()
    if not _allowed(module, allowed):
        text = ""
        if where.endswith((".fallback", ".fallback.values")):
            text = '; for a text answer write fallback = { value = "..." }'
        raise ConfigError(
            where,
            value,
            "code from a module allowed by load_policies(..., imports=(...)) "
            f"(allowed: {allowed or 'none'}): a policy file that imports is code, so allow "
            f"only packages you trust{text}",
        )
    if any(part.startswith("__") for part in attribute.split(".")):
        raise ConfigError(where, value, "a module:attribute without dunder attributes")
    try:
        found: Any = importlib.import_module(module)
        for part in attribute.split("."):
            found = getattr(found, part)
            if isinstance(found, ModuleType) and not _allowed(found.__name__, allowed):
                # ``myapp.tasks:os.system``: a module the allowed one imported is not allowed
                raise ConfigError(
                    where, value, f"an attribute of an allowed module, not of {found.__name__}"
                )
    except (ImportError, AttributeError) as error:
        raise ConfigError(where, value, f"an importable module:attribute ({error})") from error
    return found


def _allowed(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allowed)


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
