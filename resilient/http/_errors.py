"""The errors ``resilient.http`` raises: every one names the request and its correlation ID."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exceptions import CircuitOpenError, ResilienceError, TimeoutExceededError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CaptivePortalError",
    "ContentFilteredError",
    "HTTPError",
    "HTTPStatusError",
    "HTTPTimeoutError",
    "HostUnavailableError",
    "LocalRequestError",
    "NetworkError",
]


class HTTPError(ResilienceError):
    """A request made by ``resilient.http`` failed.

    ``correlation_id`` is the ``X-Correlation-ID`` the request carried, so the failure can
    be found in the logs of every service it reached. ``response`` is the last response
    received, if any. ``kind`` is the ``type`` tag it was counted under in
    ``client_http_errors_total``.
    """

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        correlation_id: str,
        response: httpx.Response | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.correlation_id = correlation_id
        self.response = response
        self.detail = message
        Exception.__init__(self, message)

    def __str__(self) -> str:
        return f"{self.method} {self.url}: {self.detail} [correlation_id={self.correlation_id}]"

    @property
    def status_code(self) -> int | None:
        """The status of ``response``, or ``None`` when no response came back."""
        return None if self.response is None else self.response.status_code

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only constructors do not survive the default BaseException pickling.
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[HTTPError], state: dict[str, object]) -> HTTPError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, state["detail"])
    return error


class HTTPStatusError(HTTPError):
    """The server answered with an error status (after any retries).

    ``kind`` is the status class (``4xx``, ``5xx``). ``retry_after`` is the server's
    ``Retry-After`` in seconds (``None`` without one); an enclosing ``@resilient.retry``
    waits that long before trying again.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        correlation_id: str,
        response: httpx.Response,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, method=method, url=url, correlation_id=correlation_id, response=response
        )
        self.kind = f"{response.status_code // 100}xx"
        self.retry_after = retry_after


class HTTPTimeoutError(HTTPError, TimeoutExceededError):
    """A phase of the request (``connect``, ``read``, ``write``, ``pool``) or its total
    budget (``total``) ran out. ``except TimeoutError`` catches it too."""

    kind = "timeout"

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        correlation_id: str,
        phase: str,
        seconds: float,
    ) -> None:
        super().__init__(message, method=method, url=url, correlation_id=correlation_id)
        self.phase = phase
        self.name = f"{method} {url}"
        self.seconds = seconds


class NetworkError(HTTPError, ConnectionError):
    """The connection failed: refused, reset, closed early, or the proxy failed.

    ``kind`` is ``connect`` when no connection could be made, ``network`` when an
    established one broke.
    """

    kind = "connect"

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        correlation_id: str,
        kind: str = "connect",
    ) -> None:
        super().__init__(message, method=method, url=url, correlation_id=correlation_id)
        self.kind = kind


class LocalRequestError(HTTPError):
    """The request failed in this process, before it reached the host.

    An invalid header (a CR or LF in a value), an unsupported protocol (``ftp://``, no
    scheme, no host) or another fault of the request itself: a bug in the call, not
    trouble with the host. Never retried, and never counted against the host (its
    breaker, ``client_http_errors_total``). ``__cause__`` is httpx's error.
    """

    kind = "local"


class CaptivePortalError(HTTPError):
    """The network answered instead of the server: a login or terms page.

    Seen as a redirect to another host, an HTML page where JSON was expected, or status
    511. Never retried (the portal answers until someone signs in); it marks the
    ``network`` feature unavailable in the degradation service until a normal response
    comes back. ``location`` is where the portal redirected to, if it did.
    """

    kind = "captive_portal"

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        correlation_id: str,
        response: httpx.Response | None = None,
        location: str | None = None,
    ) -> None:
        super().__init__(
            message, method=method, url=url, correlation_id=correlation_id, response=response
        )
        self.location = location


class ContentFilteredError(HTTPError):
    """A content filter blocked the request and answered with its block page.

    ``marker`` is what gave the filter away (a vendor name found in the page or its
    headers, or ``"status 451"``, ``"HTML 403"``). Not retried.
    """

    kind = "filtered"

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        correlation_id: str,
        response: httpx.Response | None = None,
        marker: str = "",
    ) -> None:
        super().__init__(
            message, method=method, url=url, correlation_id=correlation_id, response=response
        )
        self.marker = marker


class HostUnavailableError(HTTPError, CircuitOpenError):
    """The circuit breaker of the request's host is open: the request was not sent.

    A ``CircuitOpenError``, so retries never retry it; ``retry_after`` says when the
    breaker lets a probe through.
    """

    kind = "circuit_open"

    def __init__(
        self,
        *,
        method: str,
        url: str,
        correlation_id: str,
        breaker: str,
        retry_after: float | None,
    ) -> None:
        hint = "until reset" if retry_after is None else f"retry in {retry_after:.3g}s"
        super().__init__(
            f"circuit {breaker!r} is open ({hint})",
            method=method,
            url=url,
            correlation_id=correlation_id,
        )
        self.name = breaker
        self.retry_after = retry_after
