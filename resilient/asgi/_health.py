"""The health endpoint: liveness and readiness for load balancers, detail for operators.

``HealthApp`` answers below the path it is served at (``/health`` by default):

- ``/health/live``: liveness, 200 while the process answers, whatever its dependencies do;
- ``/health/ready`` and ``/health`` itself: readiness, 503 while a critical breaker is
  open or a critical feature is unavailable (or the health status is one of ``fail_on``),
  else 200. Breakers and features that are not critical only raise the degradation level.

The public body is a summary of fixed size (status, level, counts): no breaker names,
hosts or reasons. A request carrying ``Authorization: Bearer <token>`` with the configured
``token`` gets the detail, bounded to the ``limit`` most severe breakers. ``HEAD`` gets the
status and headers without a body. The report is built on the app's own thread (not the
event loop's default executor, which the application's ``to_thread`` work uses), one
build at a time shared by every request waiting for it, and answers every request for
``CACHE_SECONDS`` (1 s) after it started: with thousands of breakers, a load balancer
polling often costs one build a second and never holds up the event loop. The thread
is started for a build and ends with it, so an idle app holds none; the build is handed
to it through the event loop's ``run_in_executor``, so the loop knows it waits on it.

Bulkheads whose every slot is taken are counted (``saturated_bulkheads``) and, in the
detail, listed with their use and limits: a full bulkhead is doing its job, so it never
fails readiness.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import Future
from heapq import nsmallest
from typing import Any, Final

from .._runtime import config as _config
from .._runtime.logs import digest
from ..exceptions import ConfigError
from ._report_cache import CACHE_SECONDS, ReportCache

__all__ = [
    "CACHE_SECONDS",
    "DEFAULT_LIMIT",
    "ASGIApp",
    "HealthApp",
    "HealthMiddleware",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "health_app",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_LIMIT: Final = 50
"""How many breakers (and other named entries) the detailed body lists at most."""

_SEVERITY: Final = {"forced_open": 4, "open": 3, "half_open": 2, "disabled": 1, "closed": 0}
"""Which breakers the detail lists first: rejecting calls, probing, switched off, closed."""
_OPEN: Final = ("open", "forced_open")
_STATUSES: Final = ("degraded", "unhealthy", "critical")
_PROBES: Final = {"": "ready", "/ready": "ready", "/live": "live"}
_MIN_TOKEN: Final = 16
_BEARER: Final = b"bearer "
_JSON: Final = (b"content-type", b"application/json")
_NO_STORE: Final = (b"cache-control", b"no-store")
_ALIVE: Final = json.dumps({"status": "alive"}).encode()

Result = tuple[bool, bytes, bytes]
"""Readiness, the public body and the detailed body, encoded."""

Reply = tuple[int, bytes, tuple[tuple[bytes, bytes], ...]]
"""An answer: status, JSON body and extra headers."""


class HealthApp:
    """An ASGI app answering liveness (``/live``) and readiness (``/ready``, and its root).

    ``critical`` names the breakers whose opening makes the app not ready (for example
    ``("payments-db", "db.internal:5432")``); a breaker marked ``critical=True``
    (``breaker(name, critical=True)``, ``CircuitBreaker(name, critical=True)``) counts
    too, and so does an unavailable ``Feature(..., critical=True)``. The
    ``BreakerConfig.critical`` preset only sets thresholds: a breaker using it is not
    critical unless named or marked. ``fail_on`` lists health statuses (``"degraded"``,
    ``"unhealthy"``, ``"critical"``) that also fail readiness; by default none does, so
    an error storm or an open breaker behind a feature designed to degrade never takes
    every instance out at once. ``token`` turns on the detailed body for requests
    carrying it as a bearer token (compared in constant time): a wrong bearer token gets
    401, another scheme (``Basic`` credentials a proxy forwards) or none gets the public
    body; without a ``token`` the detail is off. ``services`` names breakers the detail
    lists whatever their state; ``limit`` bounds every list in it.

    Route to it (``Route("/health", health_app)``), mount it (``/health/``, ``/health/live``
    and ``/health/ready``; Starlette answers ``/health`` itself with a redirect before the
    app sees it, so put ``HealthMiddleware`` in front instead), or serve it alone.
    """

    def __init__(
        self,
        *,
        services: Iterable[str] | None = None,
        path: str = "/health",
        critical: Iterable[str] = (),
        token: str | None = None,
        fail_on: Iterable[str] = (),
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        given: object = path  # checked at run time: annotations are not enforced
        if not isinstance(given, str) or not given.startswith("/"):
            raise ConfigError("path", path, "a path starting with '/'")
        self.path: str = path.rstrip("/") or "/"
        self.services: tuple[str, ...] | None = (
            None if services is None else _names("services", services)
        )
        self.critical: frozenset[str] = frozenset(_names("critical", critical))
        self._token = _token(token)
        if isinstance(fail_on, str) or not isinstance(fail_on, Iterable):
            raise ConfigError("fail_on", fail_on, f"a collection of {', '.join(_STATUSES)}")
        statuses = tuple(fail_on)
        if not all(status in _STATUSES for status in statuses):
            raise ConfigError("fail_on", fail_on, f"a collection of {', '.join(_STATUSES)}")
        self.fail_on: frozenset[str] = frozenset(statuses)
        count: object = limit
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10_000:
            raise ConfigError("limit", limit, "an integer from 1 to 10000")
        self.limit: int = limit
        self._reports: ReportCache[Result] = ReportCache(self._encoded)

    # --- what it says ------------------------------------------------------------------

    def check(self) -> tuple[bool, dict[str, Any], dict[str, Any]]:
        """Readiness now, the public body and the detailed body (sync: may take a while
        with many breakers; the app runs it in a worker thread)."""
        from .._breaker.registry import CircuitBreakerRegistry
        from .._degradation import DegradationLevel, DegradationService, Features, level_for_health
        from ..telemetry import _percentile, _status, saturated_bulkheads, window, window_figures

        registry = CircuitBreakerRegistry.instance
        registry.sweep_if_due(_config.state.now())  # reading health evicts idle breakers
        named = self.critical
        counts = dict.fromkeys(_SEVERITY, 0)
        ranked: list[tuple[int, int, str, str]] = []
        critical_open: list[str] = []
        for breaker in registry:
            state = breaker.mode.value
            counts[state] = counts.get(state, 0) + 1
            critical = breaker.critical or breaker.name in named
            if critical and state in _OPEN:
                critical_open.append(breaker.name)
            ranked.append((-_SEVERITY.get(state, 1), 0 if critical else 1, breaker.name, state))
        top = nsmallest(self.limit, ranked)
        open_names = [name for _, _, name, state in top if state in _OPEN]
        opened = counts["open"] + counts["forced_open"]

        service = DegradationService.instance
        features = Features.all()
        unavailable: dict[str, str] = {}
        critical_down: list[str] = []
        level = DegradationLevel.none
        for feature in features:
            why = service.why_unavailable(feature)
            if why is not None:
                unavailable[feature.name] = why
                level = max(level, feature.level)
                if feature.critical:
                    critical_down.append(feature.name)

        saturated = saturated_bulkheads()
        latencies, errors_by_type, measured = window_figures()
        total_errors = sum(errors_by_type.values())
        p95 = _percentile(latencies, 0.95)
        status, why_status = _status(total_errors, p95, open_names, measured)
        if opened > len(open_names):
            why_status += f" and {opened - len(open_names)} more"
        level = max(level, level_for_health(status))
        failing = status in self.fail_on
        ready = not critical_open and not critical_down and not failing

        summary: dict[str, Any] = {
            "health_status": status,
            "total_errors": total_errors,
            "latency_measured": measured,
            "latency_p95_ms": p95,
            "requests": len(latencies) if measured else None,
            "circuits": len(ranked),
            "open_circuits": opened,
            "half_open_circuits": counts["half_open"],
            "disabled_circuits": counts["disabled"],
            "critical_open_circuits": len(critical_open),
            "features": len(features),
            "unavailable_features": len(unavailable),
            "critical_unavailable_features": len(critical_down),
            "saturated_bulkheads": len(saturated),
        }
        degradation: dict[str, Any] = {
            "level": level.name,
            "description": level.description,
            "ui_impact": level.ui_impact,
        }
        public = {
            "status": "ready" if ready else "not_ready",
            "reason": _reason(len(critical_open), len(critical_down), status if failing else None),
            "summary": summary,
            "degradation": degradation,
        }
        limit = self.limit
        states = {name: state for _, _, name, state in ranked}
        wanted = () if self.services is None else self.services[:limit]
        detail = {
            **public,
            "summary": {**summary, "reason": why_status},
            "degradation": {
                **degradation,
                "unavailable_features": dict(list(unavailable.items())[:limit]),
            },
            "critical_open_circuits": sorted(critical_open)[:limit],
            "critical_unavailable_features": critical_down[:limit],
            "open_circuits": open_names,
            "circuits": {name: state for _, _, name, state in top},
            "circuits_omitted": len(ranked) - len(top),
            "services": {name: states.get(name) or _unlisted(registry, name) for name in wanted},
            "saturated_bulkheads": dict(sorted(saturated.items())[:limit]),
            "window_seconds": window.seconds,
            "errors_by_type": dict(list(errors_by_type.items())[:limit]),
            "latency_ms": {
                "count": len(latencies),
                "p50": _percentile(latencies, 0.50),
                "p95": p95,
                "p99": _percentile(latencies, 0.99),
                "max": latencies[-1] if latencies else None,
            },
            "counters": dict(list(window.totals.items())[:limit]),
            "gauges": _gauges(window.gauges, limit),
        }
        return ready, public, detail

    def report(self) -> dict[str, Any]:
        """The detailed body, as a request with the token gets it."""
        return self.check()[2]

    @property
    def _building(self) -> Future[Result] | None:
        """The build under way, shared by every request waiting for it (``None``: none)."""
        return self._reports.building

    def _encoded(self) -> Result:
        ready, public, detail = self.check()
        return ready, _dump(public), _dump(detail)

    # --- serving -------------------------------------------------------------------------

    def probe(self, scope: Scope, *, strict: bool = False) -> str | None:
        """``"live"``, ``"ready"`` or ``None`` (not one of its paths) for a request.

        ``strict`` requires the path to be below ``path`` (as ``HealthMiddleware`` does).
        """
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        own = self.path
        if own != "/" and (path == own or path.startswith(own + "/")):
            path = path[len(own) :]
        elif strict and own != "/":
            return None
        return _PROBES.get(path.rstrip("/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await _is_request(scope, receive, send):
            await self.answer(scope, send, self.probe(scope))

    async def answer(self, scope: Scope, send: Send, probe: str | None) -> None:
        """Answer the request for ``probe`` (``None``: a path it does not serve)."""
        method = scope.get("method", "GET")
        head = method == "HEAD"
        gate = self._gate(method, probe, scope.get("path", ""), _bearer(scope))
        if not isinstance(gate, bool):
            await _send(send, gate, head)
            return
        try:
            result = await self._reports.aget()
        except Exception as error:
            await _send(send, _failed(error), head)
            return
        await _send(send, _reply(result, gate), head)

    def answer_sync(self, method: str, path: str, authorization: bytes | None) -> Reply:
        """The reply to a request, built on the calling thread (for WSGI servers).

        ``path`` is relative to where the app is served; ``authorization`` is the raw
        ``Authorization`` header. The report is cached as for ASGI requests, and one
        thread builds it while the others wait, 10 s at most (then 503): a build that
        hangs never holds every worker thread.
        """
        probe = self.probe({"path": path}, strict=True)
        gate = self._gate(method, probe, path, _bearer_of(authorization))
        if not isinstance(gate, bool):
            return gate
        try:
            result = self._reports.get()
        except Exception as error:
            return _failed(error)
        return _reply(result, gate)

    def _gate(
        self, method: str, probe: str | None, path: str, bearer: bytes | None
    ) -> Reply | bool:
        """The reply when no report is needed (404, 405, liveness, a wrong token), else
        whether the request gets the detail."""
        if probe is None:
            return 404, _dump({"error": "not_found", "path": path}), ()
        if method not in ("GET", "HEAD"):
            return 405, _dump({"error": "method_not_allowed"}), ((b"allow", b"GET, HEAD"),)
        if probe == "live":
            return 200, _ALIVE, ()
        if self._token is not None and bearer is not None:
            if not hmac.compare_digest(bearer, self._token):
                return 401, _dump({"error": "unauthorized"}), ((b"www-authenticate", b"Bearer"),)
            return True
        return False

    def __repr__(self) -> str:
        detail = "token" if self._token is not None else "off"
        return (
            f"<HealthApp path={self.path!r} critical={sorted(self.critical)!r} "
            f"fail_on={sorted(self.fail_on)!r} detail={detail} limit={self.limit}>"
        )


class HealthMiddleware:
    """Answer the health paths (``/health``, ``/health/live``, ``/health/ready``) before
    the app's routing, so ``/health`` itself answers 200 or 503 (a mount redirects it).

    ``health`` is the ``HealthApp`` answering (default: ``health_app``); its ``path`` says
    where. Every other request goes to the app untouched.
    """

    def __init__(self, app: ASGIApp, health: HealthApp | None = None) -> None:
        if not callable(app):
            raise ConfigError("app", app, "an ASGI application")
        given: object = health
        if given is not None and not isinstance(given, HealthApp):
            raise ConfigError("health", health, "a HealthApp or None")
        self.app: ASGIApp = app
        self.health: HealthApp = health_app if health is None else health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            probe = self.health.probe(scope, strict=True)
            if probe is not None:
                await self.health.answer(scope, send, probe)
                return
        await self.app(scope, receive, send)

    def __repr__(self) -> str:
        return f"<HealthMiddleware {self.health!r}>"


def _names(parameter: str, names: object) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise ConfigError(parameter, names, "a collection of breaker names")
    found = tuple(names)
    if not all(isinstance(name, str) and name for name in found):
        raise ConfigError(parameter, names, "a collection of non-empty breaker names")
    return found


def _token(token: object) -> bytes | None:
    if token is None:
        return None
    shown = f"<{len(token)} characters>" if isinstance(token, str) else token
    if (
        not isinstance(token, str)
        or len(token) < _MIN_TOKEN
        or not all("!" <= c <= "~" for c in token)
    ):
        raise ConfigError("token", shown, f"None or at least {_MIN_TOKEN} visible ASCII characters")
    return token.encode("ascii")


def _bearer(scope: Scope) -> bytes | None:
    """The bearer token of the request's ``Authorization`` header, if it has one."""
    for key, value in scope.get("headers") or ():
        if key.lower() == b"authorization":
            return _bearer_of(bytes(value))
    return None


def _bearer_of(authorization: bytes | None) -> bytes | None:
    """The token of an ``Authorization`` header's value if it is a bearer token: another
    scheme (a proxy's Basic credentials) is not this app's to refuse."""
    if authorization is not None and authorization[: len(_BEARER)].lower() == _BEARER:
        return authorization[len(_BEARER) :].strip()
    return None


def _reply(result: Result, detail: bool) -> Reply:
    ready, public, detailed = result
    return 200 if ready else 503, detailed if detail else public, ()


def _failed(error: Exception) -> Reply:
    digest.report("health check failed", "resilient.asgi", repr(error))
    return 503, _dump({"status": "not_ready", "reason": "the health check failed"}), ()


def _unlisted(registry: Any, name: str) -> str:
    """The state of a breaker the registry no longer lists: ``closed`` if it was evicted
    (idle, so closed), ``unknown`` if there is no breaker of that name."""
    return "closed" if registry.was_evicted(name) else "unknown"


def _reason(circuits: int, features: int, status: str | None) -> str:
    parts = []
    if circuits:
        parts.append(f"{circuits} critical circuit(s) open")
    if features:
        parts.append(f"{features} critical feature(s) unavailable")
    if status is not None:
        parts.append(f"health status {status}")
    if not parts:
        return "no critical circuit open, no critical feature unavailable"
    return ", ".join(parts)


def _gauges(gauges: dict[tuple[str, Any], float], limit: int) -> dict[str, float]:
    """Up to ``limit`` gauges, leaving out the per-breaker ``open_circuits`` ones (the
    circuits are listed on their own)."""
    shown: dict[str, float] = {}
    for (name, tags), value in list(gauges.items()):
        if len(shown) >= limit:
            break
        if name == "open_circuits" and tags:
            continue
        shown[name + "".join(f",{k}={v}" for k, v in tags)] = value
    return shown


def _dump(payload: object) -> bytes:
    return json.dumps(payload, default=str).encode()


async def _send(send: Send, reply: Reply, head: bool) -> None:
    """Send a JSON answer; a ``HEAD`` request gets the status and headers only."""
    status, body, headers = reply
    fields = [_JSON, _NO_STORE, *headers]
    if not head:
        fields.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _is_request(scope: Scope, receive: Receive, send: Send) -> bool:
    """Whether an app serving alone answers ``scope`` as an HTTP request: a lifespan is
    answered here (startup and shutdown complete), any other kind is ignored."""
    kind: str = scope["type"]
    if kind == "lifespan":
        await _lifespan(receive, send)
        return False
    return kind == "http"


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


health_app: HealthApp = HealthApp()
"""The health endpoint with default settings (no critical names, detail off)."""
