"""The status page as HTML strings (no web framework): one self-contained document.

The page is the level banner and the content below it, rendered here from a report
(``_status_report``); its few lines of script fetch ``state`` below the page every
``refresh`` seconds and swap in the fragments the server rendered, so the page needs no
framework, loads nothing from elsewhere and still shows the state it was served with when
scripts are off. ``CONTENT_SECURITY_POLICY`` allows exactly the inline style and script
below (by their hashes), requests to the page's own origin, and no framing.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from html import escape
from typing import Any, Final

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "render_banner",
    "render_content",
    "render_page",
]

_TITLES: Final = {
    "none": "All systems normal",
    "minor": "Minor degradation",
    "moderate": "Moderate degradation",
    "severe": "Severe degradation",
    "critical": "Critical: the service is nearly unusable",
}

_STATE_LABELS: Final = {
    "closed": "Closed",
    "open": "Open",
    "half_open": "Half-open",
    "forced_open": "Forced open",
    "disabled": "Disabled",
}

# Text and background pairs keep a contrast ratio of at least 4.5:1 (WCAG AA); state is
# always spelled out too, never shown by colour alone.
_CSS: Final = """
*{box-sizing:border-box}
html{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.45;
color:#1a1a1a;background:#fff;-webkit-text-size-adjust:100%}
body{margin:0 auto;max-width:72rem;padding:0 1rem 2rem}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin:1.6rem 0 .5rem}
p{margin:.3rem 0}
.banner{border-left:.5rem solid;border-radius:.3rem;padding:.8rem 1rem;margin:1rem 0}
.banner-ok{background:#e6f4ea;color:#0b3d17;border-color:#1e7a34}
.banner-info{background:#e8f0fe;color:#0b2e6b;border-color:#1a56c4}
.banner-warning{background:#fff4d6;color:#4d3300;border-color:#b35c00}
.banner-error{background:#fde8e8;color:#6b0f0f;border-color:#b91c1c}
.banner-fullscreen{background:#7f1010;color:#fff;border-color:#3d0000;min-height:100vh;
display:flex;flex-direction:column;justify-content:center;text-align:center;margin:0 -1rem;
border-radius:0;font-size:1.25rem}
.banner-fullscreen h1{font-size:2rem}.banner-fullscreen a{color:#fff}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(10rem,1fr));gap:.6rem;margin:0}
.tiles div{border:1px solid #8c8c8c;border-radius:.3rem;padding:.5rem .7rem}
.tiles dt{font-size:.85rem;color:#404040}.tiles dd{margin:0;font-size:1.15rem;font-weight:600}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid #8c8c8c;vertical-align:top}
th{background:#f0f0f0}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:.25rem;color:#fff;
font-weight:600;font-size:.9rem}
.s-closed,.s-available{background:#1e7a34}.s-open,.s-unavailable{background:#b91c1c}
.s-forced_open{background:#7f1010}.s-half_open{background:#8a5a00}.s-disabled{background:#4a4a4a}
.note{color:#404040;font-size:.9rem}
button{font:inherit;padding:.35rem .7rem;margin:.1rem;border:1px solid #1a1a1a;
border-radius:.3rem;background:#fff;color:#1a1a1a;cursor:pointer;min-height:2.2rem}
button:hover{background:#e8e8e8}
:focus-visible{outline:3px solid #1a56c4;outline-offset:2px}
label{display:block;font-weight:600;margin-top:.5rem}
input{font:inherit;padding:.35rem;width:100%;max-width:24rem;border:1px solid #595959;
border-radius:.3rem}
footer{margin-top:2rem;color:#404040;font-size:.9rem}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:40rem){
table,thead,tbody,tr,th,td{display:block}thead tr{position:absolute;left:-9999px}
tr{border:1px solid #8c8c8c;border-radius:.3rem;margin:.5rem 0;padding:.3rem}
td{border:none;padding:.2rem .3rem}
td::before{content:attr(data-label) ": ";font-weight:600}caption{display:block}
}
"""

_SCRIPT: Final = """
(function () {
  var body = document.body, base = body.getAttribute("data-base");
  var every = 1000 * Number(body.getAttribute("data-refresh"));
  var csrf = body.getAttribute("data-csrf"), key = "", timer = null;
  var live = document.getElementById("live"), content = document.getElementById("content");
  var said = document.getElementById("op-result"), stamp = document.getElementById("updated");
  var level = body.getAttribute("data-level"), shown = null;
  function value(id) { var f = document.getElementById(id); return f ? f.value : ""; }
  function say(text) { if (said) { said.textContent = text; } }
  function poll() {
    clearTimeout(timer);
    var headers = key ? {"Authorization": "Bearer " + key} : {};
    fetch(base + "state", {headers: headers, cache: "no-store"}).then(function (r) {
      if (r.status === 401) { key = ""; say("The operator token was refused."); return; }
      if (!r.ok) { throw new Error(String(r.status)); }
      return r.json().then(function (s) {
        csrf = s.csrf;
        if (s.report.level.name !== level) {  /* the live region speaks on a change only */
          level = s.report.level.name; live.innerHTML = s.fragments.banner;
          body.setAttribute("data-level", level);
        }
        if (s.fragments.content !== shown) {
          shown = s.fragments.content; content.innerHTML = shown;
        }
        body.setAttribute("data-view", s.view);
        stamp.textContent = "Updated " + new Date().toLocaleTimeString();
      });
    }).catch(function () {
      stamp.textContent = "Connection lost; retrying.";
    }).then(function () { timer = setTimeout(poll, every); });
  }
  var unlock = document.getElementById("unlock");
  if (unlock) {
    unlock.addEventListener("submit", function (e) {
      e.preventDefault(); key = value("op-token"); say(key ? "Showing the detail." : ""); poll();
    });
  }
  content.addEventListener("click", function (e) {
    var b = e.target.closest("button[data-action]");
    if (!b) { return; }
    var form = new URLSearchParams({action: b.getAttribute("data-action"),
      target: b.getAttribute("data-target"), csrf: csrf || "", who: value("op-who")});
    var headers = {"Content-Type": "application/x-www-form-urlencoded"};
    var token = value("op-token");
    if (token) { headers["Authorization"] = "Bearer " + token; }
    fetch(base + "actions", {method: "POST", headers: headers, body: form, cache: "no-store"})
      .then(function (r) {
        return r.json().then(function (answer) {
          say(r.ok ? answer.message : "Refused (" + r.status + "): " + answer.message);
          if (r.ok) { poll(); }
        });
      }).catch(function () { say("The action could not be sent."); });
  });
  timer = setTimeout(poll, every);
})();
"""


def _hash(source: str) -> str:
    digest = hashlib.sha256(source.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


CONTENT_SECURITY_POLICY: Final = (
    f"default-src 'none'; script-src {_hash(_SCRIPT)}; style-src {_hash(_CSS)}; "
    "connect-src 'self'; img-src data:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
"""The page's policy: its own inline style and script only, requests to its own origin,
never framed (so no other site can overlay its buttons)."""


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _count(value: float) -> str:
    return f"{value:g}"


def render_banner(report: Mapping[str, Any]) -> str:
    """The degradation level as a banner: its description and UI impact, styled after the
    impact (info, warning, error banner; full screen when critical)."""
    level = report["level"]
    name = level["name"]
    skip = (
        '<p><a href="#content">Skip to the details</a></p>'
        if level["banner"] == "fullscreen"
        else ""
    )
    return (
        f'<section class="banner banner-{_text(level["banner"])}" data-level="{_text(name)}" '
        'aria-labelledby="banner-title">'
        f'<h1 id="banner-title">{_text(_TITLES.get(name, name))}</h1>'
        f"<p>Degradation level: <strong>{_text(name)}</strong></p>"
        f'<p class="description">{_text(level["description"])}</p>'
        f'<p class="impact">UI impact: {_text(level["ui_impact"])}</p>'
        f"{skip}</section>"
    )


def render_content(report: Mapping[str, Any], *, actions: bool) -> str:
    """Everything below the banner. ``report`` is the operator's or the public view (the
    public one has no breaker list, no reasons); ``actions`` adds the operator buttons."""
    parts = [_summary(report), _breakers(report, actions), _features(report, actions)]
    if report.get("bulkheads") is not None:
        parts.append(_bulkheads(report["bulkheads"]))
    parts.append(_errors(report))
    return "".join(parts)


def _summary(report: Mapping[str, Any]) -> str:
    health = report["health"]
    breakers = report["breakers"]
    features = report["features"]
    errors = report["errors"]
    rates = report["rates"]
    opened = breakers["open"] + breakers["forced_open"]
    minutes = errors["window_seconds"] / 60

    def rate(value: float | None) -> str:
        return "not yet measured" if value is None else f"{value:g} / min"

    tiles = [
        ("Health", health["status"]),
        ("Circuit breakers open", f"{opened} of {breakers['total']}"),
        ("Features unavailable", f"{features['unavailable']} of {features['total']}"),
        (f"Errors, last {minutes:g} min", _count(errors["total"])),
        ("Retries", rate(rates["retries_per_minute"])),
        ("Fallbacks", rate(rates["fallbacks_per_minute"])),
    ]
    cells = "".join(f"<div><dt>{_text(k)}</dt><dd>{_text(v)}</dd></div>" for k, v in tiles)
    notes = []
    if "reason" in health:
        notes.append(f'<p class="note">Health: {_text(health["reason"])}</p>')
    if not rates["measured"]:
        notes.append(
            '<p class="note">Retries and fallbacks are counted while metrics are on '
            "(resilient.configure(metrics=...)).</p>"
        )
    return (
        '<section aria-labelledby="summary-title"><h2 id="summary-title">Summary</h2>'
        f'<dl class="tiles">{cells}</dl>{"".join(notes)}</section>'
    )


def _table(caption: str, heads: list[str], rows: list[list[str]]) -> str:
    """A table whose cells carry their column name (phones show each row as a card)."""
    head = "".join(f'<th scope="col">{_text(h)}</th>' for h in heads)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td data-label="{_text(h)}">{cell}</td>' for h, cell in zip(heads, row, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="scroll"><table><caption>{_text(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _button(action: str, target: str, label: str, what: str) -> str:
    return (
        f'<button type="button" data-action="{_text(action)}" data-target="{_text(target)}" '
        f'aria-label="{_text(label)} {_text(what)} {_text(target)}">{_text(label)}</button>'
    )


def _next_probe(entry: Mapping[str, Any]) -> str:
    state = entry["state"]
    if state == "open":
        return f"in {entry['next_probe_seconds']:g} s"
    if state == "half_open":
        return "probing now"
    if state == "forced_open":
        return "after a reset"
    return "none"


def _breakers(report: Mapping[str, Any], actions: bool) -> str:
    breakers = report["breakers"]
    counts = ", ".join(
        f"{breakers[state]} {_STATE_LABELS[state].lower()}"
        for state in _STATE_LABELS
        if breakers.get(state)
    )
    head = (
        '<section aria-labelledby="breakers-title"><h2 id="breakers-title">Circuit breakers</h2>'
        f"<p>{_text(breakers['total'])} in all{': ' + _text(counts) if counts else ''}.</p>"
    )
    if "listed" not in breakers:
        return head + '<p class="note">Breaker names are shown to operators only.</p></section>'
    if not breakers["listed"]:
        return head + "</section>"
    heads = ["Name", "State", "Failures", "Next probe", "Last error"]
    if actions:
        heads.append("Actions")
    rows = []
    for entry in breakers["listed"]:
        state = entry["state"]
        name = entry["name"]
        critical = " <strong>(critical)</strong>" if entry["critical"] else ""
        row = [
            f"{_text(name)}{critical}",
            f'<span class="badge s-{_text(state)}">{_text(_STATE_LABELS.get(state, state))}</span>',
            f"{_text(entry['failures'])} of {_text(entry['threshold'])}",
            _text(_next_probe(entry)),
            _text(entry["last_error"] or "none recorded"),
        ]
        if actions:
            row.append(
                _button("force_open", name, "Force open", "breaker")
                + _button("reset", name, "Reset", "breaker")
            )
        rows.append(row)
    table = _table("Most severe first", heads, rows)
    more = _omitted(breakers["omitted"], "breaker")
    return f"{head}{table}{more}</section>"


def _features(report: Mapping[str, Any], actions: bool) -> str:
    features = report["features"]
    head = '<section aria-labelledby="features-title"><h2 id="features-title">Features</h2>'
    if not features["listed"]:
        return head + "<p>No features are registered.</p></section>"
    detail = any("reason" in entry for entry in features["listed"])
    heads = ["Feature", "Status", "When unavailable"]
    if detail:
        heads.append("Reason")
    if actions:
        heads.append("Actions")
    rows = []
    for entry in features["listed"]:
        name = entry["name"]
        status = "available" if entry["available"] else "unavailable"
        described = f"<br>{_text(entry['description'])}" if entry["description"] else ""
        row = [
            f"<strong>{_text(name)}</strong>{described}",
            f'<span class="badge s-{status}">{status.capitalize()}</span>',
            f"{_text(entry['level'])} degradation" + (" (critical)" if entry["critical"] else ""),
        ]
        if detail:
            row.append(_text(entry.get("reason") or "none"))
        if actions:
            row.append(
                _button("disable", name, "Disable", "feature")
                if entry["available"]
                else _button("enable", name, "Enable", "feature")
            )
        rows.append(row)
    table = _table("Unavailable first", heads, rows)
    return f"{head}{table}{_omitted(features['omitted'], 'feature')}</section>"


def _bulkheads(bulkheads: Mapping[str, Any]) -> str:
    head = (
        '<section aria-labelledby="bulkheads-title"><h2 id="bulkheads-title">Bulkheads</h2>'
        f"<p>{_text(bulkheads['saturated'])} saturated of {_text(bulkheads['total'])}.</p>"
    )
    listed = bulkheads.get("listed")
    if not listed:
        return head + "</section>"
    rows = [
        [
            _text(entry["name"]),
            f"{_text(entry['active'])} of {_text(entry['max_concurrent'])}",
            f"{_text(entry['queued'])} of {_text(entry['max_queue'])}",
        ]
        for entry in listed
    ]
    table = _table("Saturated bulkheads", ["Name", "Running", "Queued"], rows)
    return f"{head}{table}{_omitted(bulkheads['omitted'], 'bulkhead')}</section>"


def _errors(report: Mapping[str, Any]) -> str:
    errors = report["errors"]
    rates = report["rates"]
    head = (
        '<section aria-labelledby="errors-title"><h2 id="errors-title">Recent errors</h2>'
        f"<p>{_count(errors['total'])} in the last {errors['window_seconds'] / 60:g} minutes; "
        f"{_count(rates['retries_total'])} retries and {_count(rates['fallbacks_total'])} "
        "fallbacks counted in all.</p>"
    )
    by_type = errors.get("by_type")
    if not by_type:
        return head + "</section>"
    rows = [[_text(kind), _count(number)] for kind, number in by_type.items()]
    return head + _table("Errors by kind", ["Kind", "Count"], rows) + "</section>"


def _omitted(count: int, what: str) -> str:
    if not count:
        return ""
    return f'<p class="note">{count} more {what}(s) not listed.</p>'


def render_page(
    report: Mapping[str, Any],
    *,
    title: str,
    banner: str,
    content: str,
    base: str,
    csrf: str | None,
    refresh: float,
    operator: bool,
    view: str,
) -> str:
    """The whole document around the two fragments of ``report``. ``base`` is the URL
    path the page is served at (ending in ``/``); ``operator`` adds the token form."""
    form = ""
    if operator:
        form = (
            '<section aria-labelledby="operator-title"><h2 id="operator-title">Operator</h2>'
            '<form id="unlock">'
            '<label for="op-token">Operator token</label>'
            '<input id="op-token" name="token" type="password" autocomplete="off" '
            'spellcheck="false">'
            '<label for="op-who">Your name (logged with each action)</label>'
            '<input id="op-who" name="who" type="text" maxlength="80" autocomplete="name">'
            '<p><button type="submit">Show the detail</button></p></form>'
            '<p id="op-result" role="status" aria-live="polite"></p>'
            '<p class="note">Actions need the token in the field above each time; the page '
            "keeps it in memory only, never in a cookie or storage.</p></section>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex"><link rel="icon" href="data:,">'
        f"<title>{_text(title)}</title><style>{_CSS}</style></head>"
        f'<body data-base="{_text(base)}" data-refresh="{refresh:g}" '
        f'data-csrf="{_text(csrf or "")}" data-level="{_text(report["level"]["name"])}" '
        f'data-view="{_text(view)}">'
        f'<div id="live" aria-live="polite" aria-atomic="true">{banner}</div>'
        f'<main id="content" tabindex="-1">{content}</main>{form}'
        f'<footer><p id="updated">Report of {_text(report["generated_at"])}; '
        f"updates every {refresh:g} s.</p></footer>"
        f"<script>{_SCRIPT}</script></body></html>"
    )
