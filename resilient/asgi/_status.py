"""The live status page: ``status_app(...)`` (a ``StatusApp``), mounted like the health app.

Below the path it is served at (``/status`` by default, or its mount) it answers:

- ``GET /status/``: the page, one self-contained HTML document (``_status_page``);
- ``GET /status/state``: the report, the page's two HTML fragments and a fresh CSRF
  token as JSON, which the page fetches every ``refresh`` seconds to update itself;
- ``POST /status/actions``: the operator actions (``_status_actions``).

``StatusPage`` holds the settings, the report cache and every answer as plain data
(status, headers, body), so other server glue can serve it too; ``StatusApp`` is its
ASGI face. As in the health app, the report is built on a thread of its own, one build at
a time shared by every request waiting for it, and answers requests for
``CACHE_SECONDS`` after its build started; an action makes the next request build anew.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from .._runtime.logs import digest
from ..exceptions import ConfigError
from ._health import DEFAULT_LIMIT, Receive, Scope, Send, _is_request, _token
from ._report_cache import ReportCache
from ._status_actions import MAX_BODY, Operator
from ._status_page import CONTENT_SECURITY_POLICY, render_banner, render_content, render_page
from ._status_report import BulkheadSource, StatusCollector, public_view

__all__ = ["Response", "StatusApp", "StatusPage", "status_app"]

Response = tuple[int, list[tuple[str, str]], bytes]
"""An answer as plain data: status, headers (lower-case names), body."""

_ROUTES: Final = {"": "page", "state": "state", "actions": "actions"}
_BEARER: Final = "bearer "
_COMMON: Final = [
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
]
_HTML: Final = [
    ("content-type", "text/html; charset=utf-8"),
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    *_COMMON,
]
_JSON: Final = [("content-type", "application/json"), *_COMMON]


class _View:
    """One view of a built report: the data, its fragments, the ``state`` body sans CSRF."""

    __slots__ = ("banner", "content", "name", "report", "state")

    def __init__(
        self, name: str, report: dict[str, Any], *, buttons: bool, actions: bool, refresh: float
    ) -> None:
        self.name: str = name
        self.report: dict[str, Any] = report
        self.banner: str = render_banner(report)
        self.content: str = render_content(report, actions=buttons)
        rest = {
            "view": name,
            "refresh_seconds": refresh,
            "actions": actions,
            "report": report,
            "fragments": {"banner": self.banner, "content": self.content},
        }
        self.state: bytes = json.dumps(rest, default=str).encode()


class _Built:
    """A built report: the view for the public and the one for the token's holders."""

    __slots__ = ("detail", "public")

    def __init__(self, public: _View, detail: _View) -> None:
        self.public: _View = public
        self.detail: _View = detail


class StatusPage:
    """The status page without a server: settings, the cached report and the answers.

    The settings are ``StatusApp``'s. ``read`` answers ``GET``/``HEAD`` of the page and of
    ``state`` from a built report; ``act`` answers ``POST`` of ``actions``. ``built()`` (sync)
    and ``abuilt()`` (async, never on the event loop's thread) give the cached report or
    the build under way.
    """

    def __init__(
        self,
        *,
        path: str = "/status",
        token: str | None = None,
        actions: bool = True,
        public_detail: bool = False,
        limit: int = DEFAULT_LIMIT,
        refresh: float = 2.0,
        title: str = "Service status",
        bulkheads: BulkheadSource | None = None,
    ) -> None:
        given: object = path  # checked at run time: annotations are not enforced
        if not isinstance(given, str) or not given.startswith("/"):
            raise ConfigError("path", path, "a path starting with '/'")
        self.path: str = path.rstrip("/") or "/"
        secret = _token(token)
        for name, flag in (("actions", actions), ("public_detail", public_detail)):
            if not isinstance(flag, bool):
                raise ConfigError(name, flag, "True or False")
        count: object = limit
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10_000:
            raise ConfigError("limit", limit, "an integer from 1 to 10000")
        seconds: object = refresh
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0.5 <= seconds <= 300
        ):
            raise ConfigError("refresh", refresh, "seconds from 0.5 to 300")
        named: object = title
        if not isinstance(named, str) or not named.strip() or len(named) > 200:
            raise ConfigError("title", title, "a non-empty string of at most 200 characters")
        if bulkheads is not None and not callable(bulkheads):
            raise ConfigError("bulkheads", bulkheads, "a callable returning bulkheads, or None")
        self.public_detail: bool = public_detail
        self.refresh: float = float(refresh)
        self.title: str = title
        self.operator: Operator = Operator(secret, actions=actions)
        self.collector: StatusCollector = StatusCollector(limit=limit, bulkheads=bulkheads)
        self._cache: ReportCache[_Built] = ReportCache(self.build)

    @property
    def limit(self) -> int:
        return self.collector.limit

    @property
    def detail_on(self) -> bool:
        """Whether a token opens the detail (one is configured)."""
        return self.operator.csrf is not None

    # --- what it says ------------------------------------------------------------------

    def build(self) -> _Built:
        """Collect the report now and render both views (sync; the app runs it off the loop)."""
        report = self.collector.collect()
        actions, refresh = self.operator.enabled, self.refresh
        detail = _View("detail", report, buttons=actions, actions=actions, refresh=refresh)
        if self.public_detail:
            return _Built(detail, detail)
        public = _View(
            "public", public_view(report), buttons=False, actions=actions, refresh=refresh
        )
        return _Built(public, detail)

    def built(self) -> _Built:
        """The cached report, else one built now or the build under way (sync)."""
        return self._cache.get()

    async def abuilt(self) -> _Built:
        """``built`` for async code: the build runs on a thread of its own."""
        return await self._cache.aget()

    def changed(self) -> None:
        """Something the report shows changed: the next request builds it anew."""
        self._cache.invalidate()

    # --- answering -------------------------------------------------------------------------

    def locate(self, path: str, root_path: str = "") -> tuple[str | None, str]:
        """The route a request path asks for (``None``: not one) and the page's own URL path
        (ending in ``/``), from the ASGI ``path`` and ``root_path``."""
        if root_path and path.startswith(root_path):
            full, rest = path, path[len(root_path) :]
        else:
            full, rest = root_path + path, path
        own = self.path
        if own != "/" and (rest == own or rest.startswith(own + "/")):
            rest = rest[len(own) :]
        base = full[: len(full) - len(rest)].rstrip("/") + "/"
        return _ROUTES.get(rest.strip("/")), base

    def viewer(self, headers: Mapping[str, str]) -> str | None:
        """``"detail"`` or ``"public"`` for a read request, ``None`` for a wrong token."""
        value = headers.get("authorization")
        if not self.detail_on or value is None or value[: len(_BEARER)].lower() != _BEARER:
            return "detail" if self.public_detail else "public"
        given = value[len(_BEARER) :].strip().encode("latin-1")
        return "detail" if self.operator.authorized(given) else None

    def answer_sync(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        client: str | None = None,
        root_path: str = "",
    ) -> Response:
        """The whole answer to one request, on the calling thread (for WSGI servers).

        ``headers`` maps lower-case names to values; ``path`` and ``root_path`` are as in
        ASGI (WSGI's ``PATH_INFO`` and ``SCRIPT_NAME``); ``client`` is the address logged
        with an action. The report is cached and shared as for ASGI requests; a request
        waiting for a build another one started answers 503 after 10 s.
        """
        route, base = self.locate(path, root_path)
        if route == "actions":
            return self.act(method, headers, body, client)
        early = self.gate(route, method, headers)
        if isinstance(early, tuple):
            return early
        try:
            built = self.built()
        except Exception as error:
            return _failed(error)
        return self.read(route or "page", built, early, base)

    def gate(self, route: str | None, method: str, headers: Mapping[str, str]) -> Response | str:
        """For a read request: the answer when no report is needed (404, 405, a wrong
        token: 401), else the view it gets."""
        if route is None:
            return 404, list(_JSON), _dump({"error": "not_found"})
        if method not in ("GET", "HEAD"):
            return 405, [*_JSON, ("allow", "GET, HEAD")], _dump({"error": "method_not_allowed"})
        view = self.viewer(headers)
        if view is None:
            return 401, [*_JSON, ("www-authenticate", "Bearer")], _dump({"error": "unauthorized"})
        return view

    def read(self, route: str, built: _Built, view: str, base: str) -> Response:
        """The page or the ``state`` body of ``built`` for ``view``."""
        shown = built.detail if view == "detail" else built.public
        csrf = None if self.operator.csrf is None else self.operator.csrf.issue()
        if route == "state":
            prefix = b'{"csrf": ' + json.dumps(csrf).encode() + b", "
            return 200, list(_JSON), prefix + shown.state[1:]
        page = render_page(
            shown.report,
            title=self.title,
            banner=shown.banner,
            content=shown.content,
            base=base,
            csrf=csrf,
            refresh=self.refresh,
            operator=self.detail_on,
            view=shown.name,
        )
        return 200, list(_HTML), page.encode()

    def act(
        self, method: str, headers: Mapping[str, str], body: bytes, client: str | None
    ) -> Response:
        """Answer an ``actions`` request (sync: the action may reach a shared store)."""
        status, payload, extra = self.operator.handle(method, headers, body, client)
        if status == 200:
            self.changed()
        return status, [*_JSON, *extra], _dump(payload)

    def __repr__(self) -> str:
        if not self.detail_on:
            access = "public"
        else:
            access = "token, actions" if self.operator.enabled else "token"
        return (
            f"<{type(self).__name__} path={self.path!r} access={access} "
            f"public_detail={self.public_detail} limit={self.limit} refresh={self.refresh:g}>"
        )


class StatusApp(StatusPage):
    """The live status page as an ASGI app (see the module docstring for its paths).

    The page shows the degradation level as a banner with its description and UI impact,
    every breaker (state, failures, time to the next probe, last error kind), the
    features and their availability, saturated bulkheads, recent errors and the retry and
    fallback rates, and updates itself every ``refresh`` seconds without a reload.

    Without a ``token`` it is read-only and public: the level, counts, feature
    availability and rates, but no breaker or bulkhead names and no reasons
    (``public_detail=True`` shows everything to everyone). With a ``token`` the operator
    types it into the page to see the detail and to act: force a breaker open, reset it,
    disable or enable a feature (``actions=False`` keeps only the detail). A request
    carrying ``Authorization: Bearer <token>`` reads the detail too; a wrong token gets 401.
    ``limit`` bounds every list; ``bulkheads`` returns the bulkheads to show (default: the
    ``@bulkhead`` registry when there is one); ``title`` names the page.

    Mount it (``Mount("/status", status_app(token=...))``), route to it, or serve it alone.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await _is_request(scope, receive, send):
            return
        route, base = self.locate(scope.get("path", ""), scope.get("root_path", ""))
        method = scope.get("method", "GET")
        headers = _headers(scope)
        head = method == "HEAD"
        if route == "actions":
            body = await _body(receive) if method == "POST" else b""
            client = scope.get("client")
            address = str(client[0]) if client else None
            answer = await asyncio.to_thread(self.act, method, headers, body, address)
            await _send(send, answer, head)
            return
        early = self.gate(route, method, headers)
        if isinstance(early, tuple):
            await _send(send, early, head)
            return
        try:
            built = await self.abuilt()
        except Exception as error:
            await _send(send, _failed(error), head)
            return
        await _send(send, self.read(route or "page", built, early, base), head)


def status_app(
    *,
    path: str = "/status",
    token: str | None = None,
    actions: bool = True,
    public_detail: bool = False,
    limit: int = DEFAULT_LIMIT,
    refresh: float = 2.0,
    title: str = "Service status",
    bulkheads: BulkheadSource | None = None,
) -> StatusApp:
    """A live status page to mount (``Mount("/status", status_app(token=...))``): see
    ``StatusApp``. Without a token it is public and read-only."""
    return StatusApp(
        path=path,
        token=token,
        actions=actions,
        public_detail=public_detail,
        limit=limit,
        refresh=refresh,
        title=title,
        bulkheads=bulkheads,
    )


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the first of repeated ones)."""
    found: dict[str, str] = {}
    for key, value in scope.get("headers") or ():
        found.setdefault(bytes(key).decode("latin-1").lower(), bytes(value).decode("latin-1"))
    return found


async def _body(receive: Receive) -> bytes:
    """The request body, cut off after ``MAX_BODY + 1`` bytes (enough to refuse it)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = bytes(message.get("body", b""))
        if size <= MAX_BODY:
            chunks.append(chunk[: MAX_BODY + 1 - size])
            size += len(chunks[-1])
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _failed(error: Exception) -> Response:
    digest.report("status page failed", "resilient.asgi", repr(error))
    return 503, list(_JSON), _dump({"error": "the status report could not be built"})


def _dump(payload: object) -> bytes:
    return json.dumps(payload, default=str).encode()


async def _send(send: Send, answer: Response, head: bool) -> None:
    status, headers, body = answer
    fields: Iterable[tuple[str, str]] = headers
    encoded = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fields]
    if not head:
        encoded.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": b"" if head else body})
