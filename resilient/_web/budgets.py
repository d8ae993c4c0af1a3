"""Request budgets by route: the default, and the longest matching path prefix's own."""

from __future__ import annotations

from collections.abc import Mapping

from .._runtime import validate as _validate
from ..exceptions import ConfigError
from ..presets import Timeouts
from ..typing import Seconds

__all__ = ["RouteBudgets"]


def _budget(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        return Timeouts.get(value)
    return _validate.required_duration(name, value, allow_zero=False)


class RouteBudgets:
    """``timeout`` (seconds, a ``Timeouts`` preset name, or ``None`` for no limit) for every
    path, except those under a path of ``routes``, the longest matching prefix winning
    (``{"/ai/generate": 45}`` also covers ``/ai/generate/stream``)."""

    __slots__ = ("_prefixes", "routes", "timeout")

    def __init__(
        self,
        timeout: Seconds | str | None,
        routes: Mapping[str, Seconds | str | None] | None,
    ) -> None:
        self.timeout = _budget("timeout", timeout)
        if routes is not None and not isinstance(routes, Mapping):
            raise ConfigError("routes", routes, "a mapping of paths to seconds")
        checked: dict[str, float | None] = {}
        for path, seconds in (routes or {}).items():
            key: object = path  # checked at run time: annotations are not enforced
            if not isinstance(key, str) or not key.startswith("/"):
                raise ConfigError("routes", path, "paths starting with '/'")
            checked[path.rstrip("/") or "/"] = _budget(f"routes[{path!r}]", seconds)
        self.routes = checked
        self._prefixes = sorted(checked, key=len, reverse=True)

    def budget_for(self, path: str) -> float | None:
        """The budget of ``path``: its longest matching route, else the default."""
        routes = self.routes
        if path in routes:
            return routes[path]
        for prefix in self._prefixes:
            if path.startswith(prefix) and (prefix == "/" or path[len(prefix)] == "/"):
                return routes[prefix]
        return self.timeout
