"""A warning for resilient decorators placed above a web route decorator, where they do nothing.

``@app.get("/x")`` (FastAPI, Starlette) and ``@app.route("/x")`` (Flask) register the
function they are given and return it unchanged; a ``@timeout`` written above them wraps
that function afterwards, but the route keeps calling the unwrapped one. When a web
framework is loaded, decorating a function looks at the app and router objects in scope
where the decorator is written (the module's globals, or the locals of an app factory)
and warns if one of them already routes to the function.
"""

from __future__ import annotations

import sys
import warnings
from types import FrameType
from typing import Any, Final

from .lint import ResilienceWarning

__all__ = ["FRAMEWORK_MODULES", "check_route"]

_FRAMEWORKS: Final = ("starlette.", "fastapi.", "flask.", "quart.")


FRAMEWORK_MODULES: Final = ("starlette.routing", "flask")
"""Once one of these is imported, decorating a function checks the routes in scope."""


def check_route(target: Any, kind: str) -> None:
    """Warn (``ResilienceWarning``, at the decorator's line) when an app or router in scope
    at the decoration site already routes to ``target``."""
    frame = _decoration_site()
    if frame is None:
        return
    scopes = [frame.f_globals]
    if frame.f_locals is not frame.f_globals:
        scopes.append(frame.f_locals)
    for scope in scopes:
        for value in list(scope.values()):
            if type(value).__module__.startswith(_FRAMEWORKS) and _routes_to(value, target):
                framework = type(value).__module__.partition(".")[0]
                warnings.warn_explicit(
                    f"@{kind} is applied to {getattr(target, '__qualname__', target)!s} after "
                    f"a {framework} route decorator registered it, so the route calls the "
                    "undecorated function and this decorator does nothing; put the route "
                    "decorator on top (outermost)",
                    ResilienceWarning,
                    frame.f_code.co_filename,
                    frame.f_lineno,
                    module=frame.f_globals.get("__name__"),
                )
                return


def _decoration_site() -> FrameType | None:
    """The first frame outside resilient: where the decorator was written."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module != "resilient" and not module.startswith("resilient."):
            return frame
        frame = frame.f_back
    return None


def _routes_to(app: Any, target: Any) -> bool:
    """Whether ``app`` (an app, router or blueprint) routes requests to ``target``."""
    views = getattr(app, "view_functions", None)  # Flask and Quart apps
    if isinstance(views, dict) and any(view is target for view in views.values()):
        return True
    deferred = getattr(app, "deferred_functions", None)  # Flask blueprints
    if isinstance(deferred, list):
        for record in deferred:
            for cell in getattr(record, "__closure__", None) or ():
                try:
                    if cell.cell_contents is target:
                        return True
                except ValueError:  # an empty cell
                    continue
    try:
        routes = getattr(app, "routes", None)  # Starlette and FastAPI apps and routers
    except Exception:  # a property of a half-built app
        return False
    if isinstance(routes, list):
        return any(getattr(route, "endpoint", None) is target for route in routes)
    return False
