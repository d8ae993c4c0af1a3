"""``resilient.http``: an HTTP client for hostile networks, on httpx (``pip install
'resilient-toolkit[http]'``).

``Client`` and ``AsyncClient`` send every request with per-phase timeouts
(``RequestConfig`` presets, cut to the enclosing ``@resilient.timeout`` deadline),
retries for idempotent requests that honour ``Retry-After`` (up to the retry config's
``max_retry_after``), a circuit breaker per host,
an ``X-Correlation-ID`` and ``X-Tenant-ID``, and they recognise captive portals and
content-filter block pages instead of handing their HTML to your JSON parser.
"""

from __future__ import annotations

from typing import Any

try:
    import httpx as _httpx  # noqa: F401 - fail here, with the fix, when the extra is missing
except ImportError as _missing:  # pragma: no cover - depends on the installation
    raise ImportError(
        "resilient.http needs httpx: pip install 'resilient-toolkit[http]'"
    ) from _missing

from ..exceptions import (
    CaptivePortalError,
    ConnectionFailedError,
    ContentFilteredError,
    HostUnavailableError,
    HTTPTimeoutError,
    LocalRequestError,
    RequestFailedError,
    ResponseStatusError,
)
from ._client import AsyncClient, Client
from ._config import IDEMPOTENT_METHODS, RETRY_STATUSES, RequestConfig
from ._exchange import parse_retry_after
from ._hostile import FILTER_MARKERS, network_feature

__all__ = [
    "FILTER_MARKERS",
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "AsyncClient",
    "CaptivePortalError",
    "Client",
    "ConnectionFailedError",
    "ContentFilteredError",
    "HTTPTimeoutError",
    "HostUnavailableError",
    "LocalRequestError",
    "RequestConfig",
    "RequestFailedError",
    "ResponseStatusError",
    "network_feature",
    "parse_retry_after",
]

# httpx has errors of these names, unrelated to ours: one release behind a warning.
_RENAMED = {
    "HTTPError": "RequestFailedError",
    "HTTPStatusError": "ResponseStatusError",
    "NetworkError": "ConnectionFailedError",
}


def __getattr__(name: str) -> Any:
    new = _RENAMED.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import warnings

    warnings.warn(
        f"resilient.http.{name} is deprecated (httpx has an unrelated error of that name): "
        f"use resilient.http.{new}",
        DeprecationWarning,
        stacklevel=2,
    )
    return globals()[new]
