"""Hostile networks: telling a captive portal or a filter's block page from the server.

School networks answer for the server: a portal's sign-in page (by redirect, as HTML
where JSON was expected, or with 511) or a web filter's block page. These checks run
only on answers that are not a plain 2xx whose body cannot be HTML (see
``looks_like_markup``), so the common path never pays for them.
"""

from __future__ import annotations

import re
from typing import Any, Final

import httpx

from .._runtime import config as _config
from .._runtime.logs import digest
from ..exceptions import ConfigError
from ._errors import CaptivePortalError, ContentFilteredError, HTTPError

__all__ = ["FILTER_MARKERS", "NetworkState", "find_hostile", "looks_like_markup", "network_feature"]

FILTER_MARKERS: Final = (
    "fortiguard",
    "fortinet",
    "websense",
    "forcepoint",
    "lightspeed",
    "securly",
    "goguardian",
    "iboss",
    "contentkeeper",
    "smoothwall",
    "netsweeper",
    "barracuda",
    "zscaler",
    "cisco umbrella",
    "sophos",
    "bluecoat",
    "squidguard",
    "e2guardian",
    "dansguardian",
    "web filter",
    "content filter",
    "this site is blocked",
    "site blocked",
    "access denied by policy",
    "blocked by your administrator",
    "web page blocked",
)
"""Lower-case words that give a filter's block page away (looked for in HTML error pages)."""

looks_like_markup = re.compile(rb"(?:\xef\xbb\xbf)?\s*<").match
"""Whether a body starts like HTML (or XML): the cheap first test for a portal page.

JSON never starts with ``<``, so a 2xx answer whose body does not is let through
without reading its headers; one that does has its ``Content-Type`` checked.
"""


def network_feature() -> Any:
    """The ``network`` feature a captive portal makes unavailable (registered on first use)."""
    from .._degradation import DegradationLevel, Feature, Features

    feature = Feature(
        "network",
        level=DegradationLevel.severe,
        description="Internet access (a captive portal intercepts requests)",
    )
    try:
        return Features.get(feature.name)
    except ConfigError:
        return Features.register(feature)


class NetworkState:
    """Whether this process marked the network degraded, so recovery is one flag check."""

    degraded = False

    @classmethod
    def portal(cls, reason: str) -> None:
        try:
            from .._degradation import DegradationService

            DegradationService.instance.disable(network_feature(), f"captive portal ({reason})")
            cls.degraded = True
        except Exception as error:  # the degradation store must never break a request
            digest.report("could not mark the network degraded", "resilient.http", repr(error))

    @classmethod
    def recovered(cls) -> None:
        cls.degraded = False
        try:
            from .._degradation import DegradationService

            DegradationService.instance.enable(network_feature())
        except Exception as error:
            digest.report("could not mark the network available", "resilient.http", repr(error))

    @classmethod
    def reset(cls) -> None:
        cls.degraded = False


_config.on_reset(NetworkState.reset)


def _expects_json(request: httpx.Request) -> bool:
    return "json" in request.headers.get("accept", "")


def _filter_marker(response: httpx.Response) -> str | None:
    headers = response.headers
    where = " ".join((headers.get("server", ""), headers.get("via", ""), response.text[:65536]))
    found = where.lower()
    return next((marker for marker in FILTER_MARKERS if marker in found), None)


def _is_html(response: httpx.Response) -> bool:
    return "html" in response.headers.get("content-type", "")


def find_hostile(
    response: httpx.Response, cid: str, trusted_hosts: frozenset[str]
) -> HTTPError | None:
    """The portal or filter error ``response`` reveals, or ``None`` for the server's answer."""
    request = response.request
    status = response.status_code
    method, url = request.method, str(request.url)
    origin = (response.history[0].request if response.history else request).url
    portal: str | None = None
    location: str | None = None
    if status == 511:
        portal = "status 511 Network Authentication Required"
    elif 300 <= status < 400 and "location" in response.headers:
        target = request.url.join(response.headers["location"])
        if _foreign(target, origin, trusted_hosts):
            portal, location = f"redirected to another host ({target.host})", str(target)
    elif response.history and _foreign(request.url, origin, trusted_hosts):
        portal, location = f"redirected to another host ({request.url.host})", url
    if portal is None and _is_html(response):
        json_expected = _expects_json(request)
        if json_expected or status in (403, 451):
            marker = _filter_marker(response)
            if marker is None and status == 451:
                marker = "status 451"
            elif marker is None and status == 403 and json_expected:
                marker = "HTML 403"
            if marker is not None:
                return ContentFilteredError(
                    f"blocked by a content filter ({marker}), status {status}",
                    method=method,
                    url=url,
                    correlation_id=cid,
                    response=response,
                    marker=marker,
                )
        if json_expected and status < 300:
            portal = "an HTML page where JSON was expected"
    if portal is None:
        return None
    return CaptivePortalError(
        f"captive portal: {portal}",
        method=method,
        url=url,
        correlation_id=cid,
        response=response,
        location=location,
    )


def _foreign(target: httpx.URL, origin: httpx.URL, trusted_hosts: frozenset[str]) -> bool:
    host = target.host
    return bool(host) and host != origin.host and host not in trusted_hosts
