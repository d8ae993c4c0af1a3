"""The errors ``resilient.http`` raises, as the client's modules name them.

They live in ``resilient.exceptions``; ``HTTPError``, ``HTTPStatusError`` and
``NetworkError`` are the client's internal names for ``RequestFailedError``,
``ResponseStatusError`` and ``ConnectionFailedError`` (the public ``resilient.http``
names them that way only behind a ``DeprecationWarning``: they are httpx's names).
"""

from __future__ import annotations

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

__all__ = [
    "CaptivePortalError",
    "ConnectionFailedError",
    "ContentFilteredError",
    "HTTPError",
    "HTTPStatusError",
    "HTTPTimeoutError",
    "HostUnavailableError",
    "LocalRequestError",
    "NetworkError",
    "RequestFailedError",
    "ResponseStatusError",
]

HTTPError = RequestFailedError
HTTPStatusError = ResponseStatusError
NetworkError = ConnectionFailedError
