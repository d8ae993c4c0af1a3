"""Operator actions of the status page, without a web framework: who may act, and the act.

An action is a ``POST`` of a form (``application/x-www-form-urlencoded``: ``action``,
``target``, ``csrf``, optionally ``who``) carrying ``Authorization: Bearer <token>``.
It goes through only when every check passes, in this order:

1. actions are on (a token is configured, and ``actions`` was not turned off): else 403;
2. the browser says the request comes from the page's own origin (``Sec-Fetch-Site``,
   else ``Origin`` against ``Host``; a client sending neither, such as ``curl``, passes
   this step and still needs everything below): else 403;
3. the bearer token equals the configured one, compared with ``hmac.compare_digest``:
   missing or wrong, 401;
4. ``csrf`` is a token the page was served with, less than ``CSRF_SECONDS`` old: else 403.

The CSRF token is ``issued.nonce.mac``, the MAC keyed by a key derived from the operator
token. It needs no server-side session, so any worker or host sharing the operator token
accepts a page another one served, and changing the operator token voids every page. The
page sets no cookie and keeps the operator token in memory only, so there is no ambient
credential for another site to ride on; the CSRF token and the origin check are the second
and third locks on the door, and the page's ``frame-ancestors 'none'`` keeps it from
being framed under another site's clicks.

Every action is logged on the ``resilient`` logger at WARNING: who (the ``who`` label the
operator typed, and the client address), what, and when (UTC). Refusals are logged
through the error digest (one line per kind and client per window), so a stream of bad
guesses cannot flood the log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from .._runtime.logs import digest

__all__ = [
    "ACTIONS",
    "CSRF_SECONDS",
    "MAX_BODY",
    "ActionRefusedError",
    "CsrfTokens",
    "Operator",
    "same_origin",
]

logger = logging.getLogger("resilient")

ACTIONS: Final = {
    "force_open": "breaker",
    "reset": "breaker",
    "disable": "feature",
    "enable": "feature",
}
"""Each action and what its ``target`` names."""

CSRF_SECONDS: Final = 3600.0
"""How long (wall-clock seconds) a page's CSRF token is accepted; the page fetches a fresh
one with every update, so an open page never runs out."""

MAX_BODY: Final = 4096
"""The largest action form accepted, in bytes."""

_FORM: Final = "application/x-www-form-urlencoded"
_BEARER: Final = "bearer "
_WHO_LENGTH: Final = 80
_CHALLENGE: Final = (("www-authenticate", "Bearer"),)


class ActionRefusedError(Exception):
    """An action request that does not go through: the HTTP status and a JSON-ready body."""

    def __init__(
        self, status: int, error: str, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(status, error, message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"ok": False, "error": self.error, "message": self.message}


class CsrfTokens:
    """Issues and checks per-page CSRF tokens tied to the operator token (see the module
    docstring); ``wall`` is the wall clock (tokens cross processes, so not the monotonic
    clock)."""

    def __init__(self, token: bytes, wall: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(token, b"resilient status page csrf", hashlib.sha256).digest()
        self.wall = wall

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode("ascii"), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        """A fresh token for one page or one update of it."""
        message = f"{int(self.wall())}.{secrets.token_hex(8)}"
        return f"{message}.{self._mac(message)}"

    def valid(self, given: str) -> bool:
        """Whether ``given`` was issued here (with this operator token) and is fresh."""
        issued, _, rest = given.partition(".")
        nonce, _, mac = rest.partition(".")
        if not (
            issued.isascii() and issued.isdigit() and nonce and nonce.isascii() and mac.isascii()
        ):
            return False
        if not hmac.compare_digest(mac, self._mac(f"{issued}.{nonce}")):
            return False
        age = self.wall() - int(issued)
        return -60.0 <= age <= CSRF_SECONDS  # a minute of skew between hosts' clocks


def same_origin(headers: Mapping[str, str]) -> bool:
    """Whether the browser says the request comes from the page's own origin.

    ``Sec-Fetch-Site`` decides when sent (``same-origin``, or ``none`` for a request the
    user typed); else ``Origin`` must name the ``Host`` the request was sent to; a request
    with neither header does not come from a browser's cross-site form or script.
    """
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return True
    host = headers.get("host")
    if host is None or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


@dataclass(frozen=True, slots=True)
class Request:
    """What an action request says once checked."""

    action: str
    target: str
    who: str


class Operator:
    """Checks and performs the status page's actions (see the module docstring).

    ``token`` is the operator token as bytes (``None``: actions off); ``actions=False``
    turns actions off even with a token (the token then only opens the detail).
    """

    def __init__(
        self, token: bytes | None, *, actions: bool, wall: Callable[[], float] = time.time
    ) -> None:
        self._token = token
        self.enabled: bool = token is not None and actions
        self.csrf: CsrfTokens | None = None if token is None else CsrfTokens(token, wall)

    def authorized(self, given: bytes) -> bool:
        """Whether ``given`` is the operator token (constant time)."""
        return self._token is not None and hmac.compare_digest(given, self._token)

    def handle(
        self, method: str, headers: Mapping[str, str], body: bytes, client: str | None
    ) -> tuple[int, dict[str, Any], Iterable[tuple[str, str]]]:
        """Answer one request: the status, the JSON-ready body and extra headers."""
        try:
            checked = self.check(method, headers, body, client)
            return 200, self.perform(checked), ()
        except ActionRefusedError as refused:
            if refused.status in (401, 403):
                digest.report("status page action refused", str(client), refused.message)
            return refused.status, refused.body(), refused.headers
        except Exception as error:  # the store could not be reached, say: the page says so
            digest.report("status page action failed", str(client), repr(error))
            failed = ActionRefusedError(503, "action_failed", f"the action failed: {error!r}")
            return failed.status, failed.body(), ()

    def check(
        self, method: str, headers: Mapping[str, str], body: bytes, client: str | None
    ) -> Request:
        """The action asked for, or ``ActionRefusedError`` saying why it may not go through."""
        if method != "POST":
            raise ActionRefusedError(
                405, "method_not_allowed", "actions are POST only", (("allow", "POST"),)
            )
        if not self.enabled:
            raise ActionRefusedError(403, "actions_off", "operator actions are off on this page")
        if not same_origin(headers):
            raise ActionRefusedError(403, "cross_origin", "actions come from the status page only")
        kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind != _FORM:
            raise ActionRefusedError(415, "unsupported_media_type", f"send the action as {_FORM}")
        if len(body) > MAX_BODY:
            raise ActionRefusedError(
                413, "too_large", f"an action form is at most {MAX_BODY} bytes"
            )
        given = _bearer(headers)
        if given is None:
            raise ActionRefusedError(
                401, "token_required", "the operator token is required", _CHALLENGE
            )
        if not self.authorized(given):
            raise ActionRefusedError(
                401, "token_refused", "the operator token was refused", _CHALLENGE
            )
        form = _form(body)
        csrf = self.csrf
        if csrf is None or not csrf.valid(form.get("csrf", "")):
            raise ActionRefusedError(
                403, "csrf", "the page's CSRF token is missing or stale: reload the page"
            )
        action = form.get("action", "")
        if action not in ACTIONS:
            raise ActionRefusedError(
                400, "bad_action", f"action must be one of {', '.join(ACTIONS)}"
            )
        target = form.get("target", "")
        if not target:
            raise ActionRefusedError(400, "bad_target", f"name the {ACTIONS[action]} to act on")
        label = "".join(c for c in form.get("who", "") if c.isprintable())[:_WHO_LENGTH].strip()
        address = client or "unknown address"
        return Request(action, target, f"{label} ({address})" if label else address)

    def perform(self, request: Request) -> dict[str, Any]:
        """Do the action and log it; ``ActionRefusedError`` (404) for an unknown target."""
        action, target, who = request.action, request.target, request.who
        at = datetime.now(UTC).isoformat(timespec="seconds")
        state = _act(action, target, who)
        what = ACTIONS[action]
        logger.warning(
            "status page: %s %s %r by %s at %s (now %s)",
            action,
            what,
            target,
            who,
            at,
            state,
            extra={
                "resilient_action": {
                    "action": action,
                    "target": target,
                    "kind": what,
                    "who": who,
                    "at": at,
                    "state": state,
                }
            },
        )
        message = f"{action.replace('_', ' ')} {what} {target!r}: now {state}"
        return {
            "ok": True,
            "action": action,
            "target": target,
            "state": state,
            "who": who,
            "at": at,
            "message": message,
        }


def _act(action: str, target: str, who: str) -> str:
    """Perform ``action`` on ``target``; its state afterwards."""
    from .._breaker.registry import CircuitBreakerRegistry
    from .._degradation import DegradationService, Features
    from ..exceptions import ConfigError

    if ACTIONS[action] == "breaker":
        try:
            breaker = CircuitBreakerRegistry.instance.get(target)
        except KeyError:
            raise ActionRefusedError(
                404, "unknown_target", f"no circuit breaker named {target!r}"
            ) from None
        if action == "force_open":
            breaker.force_open()
        else:
            breaker.reset()
        return str(breaker.mode.value)
    try:
        feature = Features.get(target)
    except ConfigError:
        raise ActionRefusedError(404, "unknown_target", f"no feature named {target!r}") from None
    service = DegradationService.instance
    if action == "disable":
        service.disable(feature, f"disabled on the status page by {who}")
    else:
        service.enable(feature)
    return "available" if service.is_feature_available(feature) else "unavailable"


def _bearer(headers: Mapping[str, str]) -> bytes | None:
    value = headers.get("authorization")
    if value is None or value[: len(_BEARER)].lower() != _BEARER:
        return None
    token = value[len(_BEARER) :].strip()
    return token.encode("latin-1") if token else None


def _form(body: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        raise ActionRefusedError(400, "bad_form", "the action form could not be read") from None
    return {name: values[0] for name, values in fields.items()}
