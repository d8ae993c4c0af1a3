"""``python -m resilient status URL``: a running service's breakers and level, as a table.

It reads either the JSON state of the live status page (``/status/state`` of
``resilient.asgi.status_app`` or ``resilient.wsgi.StatusMiddleware``; a URL naming the
page itself, ``/status``, is followed to its ``/state``) or the health endpoint
(``/health`` of ``resilient.asgi.HealthApp``). Breaker names are shown to operators only:
without the token (``--token``) both answer with counts, and the command prints those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TextIO

__all__ = ["NoStatusError", "fetch", "main", "render"]

_STATES = ("forced_open", "open", "half_open", "disabled", "closed")


class NoStatusError(Exception):
    """The URL gave no status a table can be made of (the message says why)."""


def fetch(url: str, *, token: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """The JSON body of ``url`` (a status page's state or a health endpoint).

    A URL that answers with an HTML page is tried again with ``/state`` appended (the
    status page's own address). ``NoStatusError`` for anything else.
    """
    import httpx  # only for this command: ``python -m resilient demo`` never needs it here

    headers = {"accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    tried = [url]
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True, headers=headers) as client:
            response = client.get(url)
            if _is_html(response) and not url.rstrip("/").endswith("/state"):
                tried.append(url.rstrip("/") + "/state")
                response = client.get(tried[-1])
    except httpx.HTTPError as error:
        raise NoStatusError(f"cannot reach {tried[-1]}: {error}") from None
    if response.status_code in (401, 403):
        refused = "refused the token" if token else "needs a token (--token)"
        raise NoStatusError(f"{tried[-1]} {refused} (HTTP {response.status_code})")
    # A health endpoint that is not ready answers 503 with the same body.
    if response.status_code not in (200, 503):
        raise NoStatusError(f"{tried[-1]} answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise NoStatusError(f"{tried[-1]} did not answer with JSON") from None
    if not isinstance(body, dict) or not (_is_state(body) or _is_health(body)):
        raise NoStatusError(
            f"{tried[-1]} is neither a resilient status page nor a resilient health endpoint"
        )
    return body


def render(body: Mapping[str, Any], out: TextIO) -> None:
    """Print the level, the health and the breakers of ``body`` (from ``fetch``)."""
    if _is_state(body):
        level, health, breakers, counts = _from_state(body)
    else:
        level, health, breakers, counts = _from_health(body)
    out.write(f"Degradation level: {level}\n")
    out.write(f"Health: {health}\n\n")
    if breakers is None:
        shown = ", ".join(f"{counts[state]} {state}" for state in _STATES if counts.get(state))
        out.write(f"Circuit breakers: {sum(counts.values())} ({shown or 'none'})\n")
        out.write("(their names are shown to operators only: pass the token with --token)\n")
    elif not breakers:
        out.write("No circuit breakers.\n")
    else:
        _table(breakers, out)


def _is_html(response: Any) -> bool:
    return bool(str(response.headers.get("content-type", "")).startswith("text/html"))


def _is_state(body: Mapping[str, Any]) -> bool:
    return isinstance(body.get("report"), dict)


def _is_health(body: Mapping[str, Any]) -> bool:
    return isinstance(body.get("summary"), dict) and isinstance(body.get("degradation"), dict)


Row = dict[str, str]
Parsed = tuple[str, str, list[Row] | None, dict[str, int]]


def _from_state(body: Mapping[str, Any]) -> Parsed:
    report = body["report"]
    level = report.get("level", {})
    health = report.get("health", {})
    found = report.get("breakers", {})
    counts = {state: int(found.get(state, 0)) for state in _STATES}
    listed = found.get("listed")
    rows: list[Row] | None = None
    if isinstance(listed, list):
        rows = [
            {
                "breaker": str(entry.get("name")),
                "state": str(entry.get("state")),
                "failures": _failures(entry.get("failures"), entry.get("threshold")),
                "next probe": _seconds(entry.get("next_probe_seconds")),
                "critical": "yes" if entry.get("critical") else "",
                "last error": str(entry.get("last_error") or ""),
            }
            for entry in listed
        ]
        if found.get("omitted"):
            rows.append({"breaker": f"... {found['omitted']} more", "state": ""})
    return _level(level), _health(health.get("status"), health.get("reason")), rows, counts


def _from_health(body: Mapping[str, Any]) -> Parsed:
    summary = body["summary"]
    counts = {
        "open": int(summary.get("open_circuits", 0)),
        "half_open": int(summary.get("half_open_circuits", 0)),
        "disabled": int(summary.get("disabled_circuits", 0)),
    }
    counts["closed"] = max(0, int(summary.get("circuits", 0)) - sum(counts.values()))
    circuits = body.get("circuits")
    rows: list[Row] | None = None
    if isinstance(circuits, dict):
        critical = set(body.get("critical_open_circuits") or ())
        rows = [
            {
                "breaker": str(name),
                "state": str(state),
                "critical": "yes" if name in critical else "",
            }
            for name, state in circuits.items()
        ]
        if body.get("circuits_omitted"):
            rows.append({"breaker": f"... {body['circuits_omitted']} more", "state": ""})
    readiness = f"{body.get('status')} ({body.get('reason')})" if body.get("reason") else ""
    health = _health(summary.get("health_status"), summary.get("reason"))
    if readiness:
        health = f"{health}; readiness: {readiness}"
    return _level(body["degradation"]), health, rows, counts


def _level(level: Mapping[str, Any]) -> str:
    name = level.get("name", level.get("level"))
    details = [str(level[key]) for key in ("description", "ui_impact") if level.get(key)]
    if len(details) == 2:
        details[1] = f"UI impact: {details[1]}"
    return f"{name} ({'; '.join(details)})" if details else str(name)


def _health(status: object, reason: object) -> str:
    return f"{status} ({reason})" if reason else str(status)


def _failures(failures: object, threshold: object) -> str:
    return f"{failures}/{threshold}" if threshold is not None else str(failures)


def _seconds(value: object) -> str:
    return f"{value} s" if isinstance(value, int | float) else ""


def _table(rows: Sequence[Row], out: TextIO) -> None:
    columns = [name for name in rows[0] if any(row.get(name) for row in rows)]
    columns = columns or ["breaker"]
    widths = {name: max(len(name), *(len(row.get(name, "")) for row in rows)) for name in columns}
    lines = [[name.upper() for name in columns]]
    lines += [[row.get(name, "") for name in columns] for row in rows]
    for cells in lines:
        padded = (cell.ljust(widths[name]) for cell, name in zip(cells, columns, strict=True))
        text = "  ".join(padded)
        out.write(text.rstrip() + "\n")


def main(url: str, *, token: str | None, timeout: float, out: TextIO) -> int:
    """Run the command: 0 once printed, 1 (with the reason on stderr) when it cannot."""
    import sys

    try:
        body = fetch(url, token=token, timeout=timeout)
    except NoStatusError as error:
        sys.stderr.write(f"resilient status: {error}\n")
        return 1
    render(body, out)
    return 0
