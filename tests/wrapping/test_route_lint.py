"""A resilient decorator written above a web route decorator does nothing (the route keeps
the undecorated function): it warns at the decorator's line. Below the route decorator,
where it belongs, it is silent."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import pytest

import resilient as rs
from resilient import ResilienceWarning

pytest.importorskip("fastapi")
pytest.importorskip("flask")

from fastapi import APIRouter, FastAPI
from flask import Blueprint, Flask

HERE = __file__


def line_of(marker: str) -> int:
    """The line of this file holding ``marker`` (a comment on the decorator's line)."""
    lines = inspect.getsource(inspect.getmodule(line_of)).splitlines()  # type: ignore[arg-type]
    return next(n for n, text in enumerate(lines, 1) if text.rstrip().endswith(marker))


def caught(build: Any) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        build()
    return [w for w in found if issubclass(w.category, ResilienceWarning)]


def test_a_timeout_above_a_fastapi_route_warns_at_its_line() -> None:
    """``@timeout`` over ``@app.get`` warns, naming the function and the fix, at the
    line of the misplaced decorator."""

    def build() -> None:
        app = FastAPI()

        @rs.timeout(1)  # misplaced-fastapi
        @app.get("/x")
        async def lesson() -> int:
            return 1

    [warning] = caught(build)
    assert "lesson" in str(warning.message)
    assert "put the route decorator on top" in str(warning.message)
    assert warning.filename == HERE
    assert warning.lineno == line_of("# misplaced-fastapi")


def test_the_route_decorator_on_top_is_silent() -> None:
    """The documented order (route decorator outermost) registers the wrapper: no warning."""

    def build() -> None:
        app = FastAPI()
        router = APIRouter()
        flask = Flask("lint")

        @app.get("/x")
        @rs.retry(attempts=2)
        @rs.timeout(1)
        async def a() -> int:
            return 1

        @router.get("/y")
        @rs.timeout(1)
        async def b() -> int:
            return 1

        @flask.route("/z")
        @rs.timeout(1)
        def c() -> str:
            return "c"

    assert caught(build) == []


@pytest.mark.parametrize("where", ["router", "flask", "blueprint"])
def test_routers_flask_apps_and_blueprints_are_checked(where: str) -> None:
    """An ``APIRouter``, a Flask app and a Flask blueprint are recognised like an app."""

    def build() -> None:
        router = APIRouter()
        flask = Flask("lint")
        blueprint = Blueprint("bp", "lint")
        route = {"router": router.get, "flask": flask.route, "blueprint": blueprint.route}[where]

        @rs.retry(attempts=2)
        @route("/x")
        def view() -> str:
            return "v"

    [warning] = caught(build)
    assert "@retry" in str(warning.message)


def test_a_policy_above_a_route_warns_once() -> None:
    """A whole policy above the route warns once, at the policy's line, not per step."""

    def build() -> None:
        app = FastAPI()
        stack = rs.policy(timeout=1, retry={"attempts": 2})

        @stack  # misplaced-policy
        @app.get("/x")
        async def view() -> int:
            return 1

    [warning] = caught(build)
    assert warning.lineno == line_of("# misplaced-policy")


def test_a_function_routed_by_an_app_out_of_scope_is_not_guessed_about() -> None:
    """Only apps in scope where the decorator is written are looked at: a function
    registered elsewhere, then decorated here, gets no (possibly wrong) warning."""
    make = FastAPI

    def register(fn: Any) -> Any:
        make().get("/x")(fn)
        return fn

    async def view() -> int:
        return 1

    assert caught(lambda: rs.timeout(1)(register(view))) == []
