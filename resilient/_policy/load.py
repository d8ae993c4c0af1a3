"""``load_policies``: named policies from TOML or a dict, with ``extends`` and imports."""

from __future__ import annotations

import builtins
import importlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .._runtime import config as _config
from ..exceptions import ConfigError
from ..presets import closest
from .declare import Policy, named
from .steps import BUILDERS, ORDER, build

__all__ = ["load_policies", "reload_policies"]

_files: dict[str, tuple[str, ...]] = {}
"""The files policies were loaded from (by path), with their ``imports`` allow-list."""
_from_file: dict[str, str] = {}
"""Which file each named policy came from."""
_config.on_reset(_files.clear)
_config.on_reset(_from_file.clear)

_NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_REFERENCE = re.compile(rf"^({_NAME}):({_NAME})$")
_CODE_KEYS: dict[str, frozenset[str]] = {
    "timeout": frozenset({"metrics"}),
    "total_timeout": frozenset({"metrics"}),
    "retry": frozenset(
        {"on", "on_result", "on_retry", "before", "after", "stop", "wait", "metrics", "budget"}
    ),
    "breaker": frozenset({"record", "ignore", "failure_result", "store"}),
    "fallback": frozenset({"values", "on", "when", "key", "cache", "metrics"}),
    "degradable": frozenset({"fallback", "service"}),
    "bulkhead": frozenset({"metrics"}),
    "hedge": frozenset({"metrics"}),
    "rate_limit": frozenset({"store"}),
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
    origin, loaded = _load(source, allowed)
    named.update(loaded)
    for name in loaded:
        _from_file.pop(name, None)
    if origin != "<dict>":
        _files[origin] = allowed
        _from_file.update(dict.fromkeys(loaded, origin))
    return loaded


def reload_policies() -> dict[str, Policy]:
    """Load again every TOML file ``load_policies`` read, with the same ``imports``;
    returns the policies reloaded.

    All or nothing: a file that no longer loads raises ``ConfigError`` and changes
    nothing. Otherwise every policy named in those files takes its new steps: a
    ``Policy`` object already fetched with ``policy("name")`` is updated in place, a
    policy gone from its file is dropped, and a named breaker whose config changed is
    reconfigured (``CircuitBreaker.reconfigure``), keeping its state. The timeouts,
    retries and fallbacks of functions decorated before the reload keep the settings
    they were decorated with; functions decorated afterwards get the new ones. Policies
    loaded from a dict are left as they are.
    """
    from .._breaker.registry import CircuitBreakerRegistry  # most programs never reload

    fresh: dict[str, tuple[str, dict[str, Policy]]] = {}
    with CircuitBreakerRegistry.adopting():  # changed breaker configs are taken
        for path, allowed in list(_files.items()):
            fresh[path] = _load(path, allowed)
    reloaded: dict[str, Policy] = {}
    for path, (_origin, loaded) in fresh.items():
        for gone in [n for n, p in _from_file.items() if p == path and n not in loaded]:
            del _from_file[gone]
            named.pop(gone, None)
        for name, new in loaded.items():
            held = named.get(name)
            if held is not None and _from_file.get(name) == path:
                held.specs = new.specs  # one reference: a decoration sees old or new
                new = held
            named[name] = new
            _from_file[name] = path
            reloaded[name] = new
    return reloaded


def _load(source: object, allowed: tuple[str, ...]) -> tuple[str, dict[str, Policy]]:
    """The policies in ``source`` (validated), and where they came from."""
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
    return origin, loaded


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
        if key not in BUILDERS:
            known = [*ORDER, "extends"]
            raise ConfigError(
                f"{where}.{key}", value, f"one of {', '.join(known)}{closest(key, known)}"
            )
        spec = _resolve(key, value, f"{where}.{key}", allowed)
        try:
            build(key, spec, None)
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
