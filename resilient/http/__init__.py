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

try:
    import httpx as _httpx  # noqa: F401 - fail here, with the fix, when the extra is missing
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        "resilient.http needs httpx: pip install 'resilient-toolkit[http]'"
    ) from error

from ._client import AsyncClient, Client
from ._config import IDEMPOTENT_METHODS, RETRY_STATUSES, RequestConfig
from ._errors import (
    CaptivePortalError,
    ContentFilteredError,
    HostUnavailableError,
    HTTPError,
    HTTPStatusError,
    HTTPTimeoutError,
    LocalRequestError,
    NetworkError,
)
from ._exchange import parse_retry_after
from ._hostile import FILTER_MARKERS, network_feature

__all__ = [
    "FILTER_MARKERS",
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "AsyncClient",
    "CaptivePortalError",
    "Client",
    "ContentFilteredError",
    "HTTPError",
    "HTTPStatusError",
    "HTTPTimeoutError",
    "HostUnavailableError",
    "LocalRequestError",
    "NetworkError",
    "RequestConfig",
    "network_feature",
    "parse_retry_after",
]
