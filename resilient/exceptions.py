"""The errors resilient raises: one family, each carrying what a caller needs to react.

Every one derives from ``ResilienceError``. The errors of ``resilient.http`` live here too
(``RequestFailedError`` and its subclasses); they never import httpx, so this module stays
cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BulkheadFullError",
    "CaptivePortalError",
    "CircuitOpenError",
    "ConfigError",
    "ConnectionFailedError",
    "ContentFilteredError",
    "FeatureUnavailableError",
    "HTTPTimeoutError",
    "HostUnavailableError",
    "LocalRequestError",
    "OutboxError",
    "RateLimitedError",
    "RequestFailedError",
    "ResilienceError",
    "ResponseStatusError",
    "TimeoutExceededError",
]


class ResilienceError(Exception):
    """Base class of the errors raised by resilient itself (never of the caller's own errors)."""


class ConfigError(ResilienceError, ValueError):
    """A decorator or configuration was given a value it cannot work with.

    Raised when the decorator is applied, never in the middle of a call.
    """

    def __init__(self, parameter: str, value: object, allowed: str) -> None:
        super().__init__(parameter, value, allowed)  # args as given: the error pickles
        self.parameter = parameter
        self.value = value
        self.allowed = allowed

    def __str__(self) -> str:
        return f"{self.parameter}={self.value!r} is not allowed: expected {self.allowed}"


class TimeoutExceededError(ResilienceError, TimeoutError):
    """A call ran past its time budget.

    A subclass of the builtin ``TimeoutError``, so ``except TimeoutError`` catches it.
    ``name`` is the function, ``seconds`` the budget it had. ``late_by`` is how many
    seconds after the deadline the caller was released when that was measured (``None``
    when the timeout fired on time), and ``reason`` says why it came that late, when it
    came late enough to need a reason (C code holding the GIL, a blocking C call).
    """

    # No Python __init__: the exception is built in C, the values live in ``args`` and the
    # message is formatted only when read. These errors are raised on hot paths. (Being an
    # OSError, it keeps only two ``args``: a late error sets ``late_by`` and ``reason`` as
    # attributes, which pickle with the instance's ``__dict__``.)
    args: tuple[Any, ...]  # (name, seconds): set by the property setters below
    late_by: float | None = None
    reason: str | None = None

    if TYPE_CHECKING:

        def __init__(self, name: str, seconds: float) -> None: ...

    @property
    def name(self) -> str:
        return str(self.args[0])

    @name.setter
    def name(self, value: str) -> None:
        self.args = (value, *self.args[1:])

    @property
    def seconds(self) -> float:
        return float(self.args[1])

    @seconds.setter
    def seconds(self, value: float) -> None:
        self.args = (self.args[0], value, *self.args[2:])

    def __str__(self) -> str:
        message = f"{self.name} did not finish within {self.seconds:g}s"
        late, reason = self.late_by, self.reason
        if reason is None:
            return message
        if late is not None:
            message += f"; the caller was released {late:.3g}s after the deadline"
        return f"{message}: {reason}"


class CircuitOpenError(ResilienceError):
    """The circuit breaker guarding a call is open: the call was not attempted.

    ``retry_after`` is the number of seconds until the breaker lets a probe through
    (``None`` when it is open until someone closes it by hand).
    """

    args: tuple[Any, ...]  # (name, retry_after): set by the property setters below

    if TYPE_CHECKING:

        def __init__(self, name: str, retry_after: float | None) -> None: ...

    @property
    def name(self) -> str:
        return str(self.args[0])

    @name.setter
    def name(self, value: str) -> None:
        self.args = (value, *self.args[1:])

    @property
    def retry_after(self) -> float | None:
        value: float | None = self.args[1]
        return value

    @retry_after.setter
    def retry_after(self, value: float | None) -> None:
        self.args = (self.args[0], value, *self.args[2:])

    def __str__(self) -> str:
        retry_after = self.retry_after
        hint = "until reset" if retry_after is None else f"retry in {retry_after:.3g}s"
        return f"circuit {self.name!r} is open ({hint})"


class RateLimitedError(ResilienceError):
    """A rate limit refused the call: it was not attempted.

    ``name`` is the rate limit's name; ``retry_after`` is the number of seconds until a
    token is free (an enclosing ``@resilient.retry`` waits that long before trying again).
    """

    if TYPE_CHECKING:

        def __init__(self, name: str, retry_after: float) -> None: ...

    @property
    def name(self) -> str:
        return str(self.args[0])

    @property
    def retry_after(self) -> float:
        return float(self.args[1])

    def __str__(self) -> str:
        return f"rate limit {self.name!r} reached (retry in {self.retry_after:.3g}s)"


class FeatureUnavailableError(ResilienceError):
    """Raised by ``@degradable`` without a fallback while its feature is unavailable.

    ``feature`` is the feature's name, ``reason`` why it is unavailable (a manual
    override's reason, or the open breakers it depends on).
    """

    def __init__(self, feature: str, reason: str) -> None:
        super().__init__(feature, reason)  # args as given: the error pickles
        self.feature = feature
        self.reason = reason

    def __str__(self) -> str:
        return f"feature {self.feature!r} is unavailable: {self.reason}"


class BulkheadFullError(ResilienceError):
    """A ``@bulkhead`` compartment had no free slot: the call was not attempted.

    ``name`` is the compartment, ``max_concurrent`` and ``max_queue`` its limits, and
    ``reason`` why the call gave up: the queue was full, it waited ``queue_timeout``,
    or the deadline (``resilient.remaining()``) left no time to wait.
    """

    def __init__(self, name: str, max_concurrent: int, max_queue: int, reason: str) -> None:
        super().__init__(name, max_concurrent, max_queue, reason)  # args as given: pickles
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.reason = reason

    def __str__(self) -> str:
        return (
            f"bulkhead {self.name!r} is full (max_concurrent={self.max_concurrent}, "
            f"max_queue={self.max_queue}): {self.reason}"
        )


# --- resilient.http ------------------------------------------------------------------


class RequestFailedError(ResilienceError):
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
        # Keyword-only constructors do not survive the default BaseException pickling. The
        # args travel too: a subclass that is also a TimeoutExceededError or a
        # CircuitOpenError keeps its ``name``, ``seconds`` and ``retry_after`` there.
        return (_rebuild, (type(self), self.__dict__, self.args))


def _rebuild(
    cls: type[RequestFailedError],
    state: dict[str, object],
    args: tuple[object, ...] | None = None,
) -> RequestFailedError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    # ``args`` is None in a pickle made before the args travelled with the state.
    error.args = (state["detail"],) if args is None else args
    return error


class ResponseStatusError(RequestFailedError):
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
        self.kind: str = f"{response.status_code // 100}xx"
        self.retry_after = retry_after


class HTTPTimeoutError(RequestFailedError, TimeoutExceededError):
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


class ConnectionFailedError(RequestFailedError, ConnectionError):
    """The connection failed: refused, reset, closed early, or the proxy failed.

    ``kind`` is ``connect`` when no connection could be made, ``network`` when an
    established one broke.
    """

    kind: str = "connect"

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


class LocalRequestError(RequestFailedError):
    """The request failed in this process, before it reached the host.

    An invalid header (a CR or LF in a value), an unsupported protocol (``ftp://``, no
    scheme, no host) or another fault of the request itself: a bug in the call, not
    trouble with the host. Never retried, and never counted against the host (its
    breaker, ``client_http_errors_total``). ``__cause__`` is httpx's error.
    """

    kind = "local"


class CaptivePortalError(RequestFailedError):
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


class ContentFilteredError(RequestFailedError):
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


class HostUnavailableError(RequestFailedError, CircuitOpenError):
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


class OutboxError(ResilienceError):
    """The outbox's store could not be reached or refused (a full disk, a read-only file,
    an unreachable or read-only Redis), chained to the store's own error: raised by
    ``enqueue``, nothing of the work was stored; by any call, nothing stored is lost."""
