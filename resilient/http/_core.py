"""What ``Client`` and ``AsyncClient`` share: building requests, reading responses, deciding.

Nothing here waits or does I/O; the two shells in ``resilient.http`` send and sleep.
The common path (a 2xx answer on the first attempt) is kept to a few attribute reads on
top of httpx: everything else, retries, hostile-network checks, error building, starts
only once something looks wrong.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import httpx

from .. import correlation, telemetry
from .._breaker.breaker import CircuitBreaker
from .._circuit.config import BreakerConfig
from .._retry.plan import NOT_RETRYABLE, GiveUp, RetryPlan, Sleep
from .._runtime import config as _config
from .._runtime.logs import digest
from ..exceptions import CircuitOpenError, ConfigError
from ..metrics._names import ACTIVE_REQUESTS
from ..presets import closest
from ._config import (
    IDEMPOTENT_METHODS,
    RequestConfig,
    check_header_value,
    check_headers,
    preset_of,
    resolve,
    unsendable_header,
)
from ._errors import (
    CaptivePortalError,
    HostUnavailableError,
    HTTPError,
    HTTPStatusError,
    HTTPTimeoutError,
    LocalRequestError,
    NetworkError,
)
from ._exchange import BudgetSpentError, Exchange, Host, active, parse_retry_after, watch
from ._hostile import NetworkState, find_hostile

__all__ = ["ClientCore"]

logger = logging.getLogger("resilient.http")

_CORRELATION = correlation.HEADER
_get_correlation = correlation.CONTEXT.get
_new_correlation = correlation.new
_sendable = correlation.is_sendable
_state = _config.state
_GAVE_UP = "resilient.http gave up "


class ClientCore:
    """Configuration, per-host state and every decision the two clients share."""

    _http: Any
    engine: ClassVar[type[httpx.Client | httpx.AsyncClient]]
    """The httpx class this client drives (its keyword arguments are accepted)."""

    def __init__(
        self,
        base_url: str | httpx.URL,
        *,
        tenant_id: str | None,
        config: RequestConfig | str,
        breaker: BreakerConfig | str | None,
        headers: Mapping[str, str] | None,
        trusted_hosts: Iterable[str],
        httpx_options: dict[str, Any],
    ) -> None:
        self.config: RequestConfig = resolve(config)
        if isinstance(breaker, str):
            breaker = preset_of(BreakerConfig, breaker, "breaker")
        elif breaker is not None and not isinstance(breaker, BreakerConfig):
            raise ConfigError(
                "breaker", breaker, f"a BreakerConfig, one of {BreakerConfig.names} or None"
            )
        self.breaker_config = breaker
        tenant: object = tenant_id
        if tenant is not None:
            if not isinstance(tenant, str) or not tenant.strip():
                raise ConfigError("tenant_id", tenant_id, "a non-empty string or None")
            check_header_value("tenant_id", tenant)
        self.tenant_id = tenant_id
        self.base_url: httpx.URL = _base_url(base_url)
        self.trusted_hosts: frozenset[str] = _trusted(trusted_hosts)
        _check_options(self.engine, httpx_options)
        merged = {"Accept": "application/json"}
        if headers is not None:
            merged.update(check_headers("headers", headers))
        if tenant_id is not None:
            merged["X-Tenant-ID"] = tenant_id
        self.headers = merged
        self.httpx_options = httpx_options
        self._hosts: dict[bytes, Host] = {}
        self._base: Host | None = None
        if self.base_url.host:
            self._base = self._host_of(self.base_url)

    def httpx_arguments(self) -> dict[str, Any]:
        """Keyword arguments for the httpx client this one drives."""
        connect, receive = self.config.connect, self.config.receive
        timeout = httpx.Timeout(connect=connect, read=receive, write=receive, pool=connect)
        return {
            "base_url": self.base_url,
            "headers": self.headers,
            "timeout": timeout,
            "follow_redirects": False,
            **self.httpx_options,
        }

    # --- hosts -------------------------------------------------------------------------

    def _host_of(self, url: httpx.URL) -> Host:
        key = url.netloc
        found = self._hosts.get(key)
        if found is None:
            name = key.decode("ascii")
            if not url.host or url.scheme not in ("http", "https"):
                # Sending fails in httpx (LocalRequestError); no breaker for a non-host.
                return Host(name, None)
            breaker = None
            if self.breaker_config is not None:
                from .._breaker.registry import CircuitBreakerRegistry

                breaker = CircuitBreakerRegistry.instance.get_or_create(name, self.breaker_config)
                watch(breaker)
            found = self._hosts[key] = Host(name, breaker)
        return found

    def host_for(self, url: object, request: httpx.Request) -> Host:
        """The host of ``request``; a relative ``url`` is the base URL's host, known already."""
        base = self._base
        if base is not None and isinstance(url, str) and url[:1] == "/":
            return base
        return self._host_of(request.url)

    def breakers(self) -> list[CircuitBreaker]:
        """The breakers of the hosts this client has talked to."""
        return [h.breaker for h in list(self._hosts.values()) if h.breaker is not None]

    # --- one request -------------------------------------------------------------------

    def prepare(
        self,
        method: str,
        url: Any,
        config: RequestConfig,
        start: float,
        budget: float,
        auth: Any,
        follow: bool,
        kwargs: dict[str, Any],
    ) -> Exchange:
        """Build the request: correlation header, timeouts cut to ``budget``."""
        if "timeout" in kwargs:
            raise ConfigError("timeout", kwargs["timeout"], "config=RequestConfig(...)")
        timeouts = config.timeouts if budget >= config.longest else config.clamped(budget)
        request: httpx.Request = self._http.build_request(
            method, url, extensions={"timeout": timeouts}, **kwargs
        )
        cid = _get_correlation()
        fresh = False
        if cid is None:
            given = request.headers.get(_CORRELATION) if "headers" in kwargs else None
            fresh = given is None
            cid = _new_correlation() if given is None else given
        if not fresh and not _sendable(cid):
            cid, fresh = _replace_correlation(cid), True
        request.headers[_CORRELATION] = cid
        host = self.host_for(url, request)
        exchange = Exchange(request, cid, host, config, start, budget, auth, follow, fresh)
        if "headers" in kwargs:
            # Refused here, before the host's breaker is asked: httpx would only find out
            # while sending, and the error is the caller's, never the host's.
            bad = unsendable_header(request.headers.raw)
            if bad is not None:
                raise self.local(httpx.LocalProtocolError(bad), exchange)
        return exchange

    def failure(self, error: Exception, exchange: Exchange) -> HTTPError:
        """The error to raise for an httpx failure (counted in ``client_http_errors_total``)."""
        request, cid, budget = exchange.request, exchange.cid, exchange.budget
        method, url = request.method, str(request.url)
        made: HTTPError
        if isinstance(error, BudgetSpentError):
            made = HTTPTimeoutError(
                f"the total budget of {budget:.3g}s ran out while reading the body",
                method=method,
                url=url,
                correlation_id=cid,
                phase="total",
                seconds=budget,
            )
        elif isinstance(error, httpx.TimeoutException):
            phase = _PHASES.get(type(error), "read")
            seconds = (request.extensions.get("timeout") or {}).get(phase) or budget
            made = HTTPTimeoutError(
                f"{phase} timeout after {seconds:.3g}s",
                method=method,
                url=url,
                correlation_id=cid,
                phase=phase,
                seconds=seconds,
            )
        elif isinstance(error, httpx.ConnectError | httpx.ProxyError):
            made = NetworkError(
                f"cannot connect: {str(error) or type(error).__name__}",
                method=method,
                url=url,
                correlation_id=cid,
            )
        elif isinstance(error, httpx.NetworkError | httpx.RemoteProtocolError):
            made = NetworkError(
                f"connection broken: {str(error) or type(error).__name__}",
                method=method,
                url=url,
                correlation_id=cid,
                kind="network",
            )
        else:
            made = HTTPError(
                f"{type(error).__name__}: {error}", method=method, url=url, correlation_id=cid
            )
        self.count(made, exchange.host)
        return made

    @staticmethod
    def local(error: Exception, exchange: Exchange) -> Exception:
        """The error to raise, uncounted, for a fault of this process (never the host's).

        httpx's own errors (an invalid header, an unsupported protocol) become a
        ``LocalRequestError``; anything else (from an auth flow or an event hook) is the
        caller's own error and is raised unchanged.
        """
        if isinstance(error, httpx.HTTPError):
            request = exchange.request
            made = LocalRequestError(
                f"{type(error).__name__}: {error}",
                method=request.method,
                url=str(request.url),
                correlation_id=exchange.cid,
            )
            made.__cause__ = error
            error = made
        return error

    def timed_out(self, exchange: Exchange) -> HTTPError:
        """The error for a request whose total budget (or the enclosing deadline) ran out."""
        request, budget = exchange.request, exchange.budget
        made = HTTPTimeoutError(
            f"no answer within the total budget of {max(budget, 0.0):.3g}s",
            method=request.method,
            url=str(request.url),
            correlation_id=exchange.cid,
            phase="total",
            seconds=budget,
        )
        self.count(made, exchange.host)
        return made

    def status_failure(self, response: httpx.Response, exchange: Exchange) -> HTTPStatusError:
        """The error for an error status (counted by its class, ``4xx`` or ``5xx``)."""
        request = exchange.request
        made = HTTPStatusError(
            f"{response.status_code} {response.reason_phrase}",
            method=request.method,
            url=str(request.url),
            correlation_id=exchange.cid,
            response=response,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
        self.count(made, exchange.host)
        return made

    def rejected(self, error: CircuitOpenError, exchange: Exchange) -> HostUnavailableError:
        """The breaker of the host is open: say so with the request's correlation ID."""
        request = exchange.request
        return HostUnavailableError(
            method=request.method,
            url=str(request.url),
            correlation_id=exchange.cid,
            breaker=error.name,
            retry_after=error.retry_after,
        )

    @staticmethod
    def count(error: HTTPError, host: Host) -> None:
        telemetry.record_http_error(error.kind, host.name)

    def check(self, response: httpx.Response, exchange: Exchange) -> httpx.Response:
        """Let a normal response through; raise for portals, block pages and error statuses."""
        host = exchange.host
        error = find_hostile(response, exchange.cid, self.trusted_hosts)
        if error is not None:
            self.count(error, host)
            logger.info("%s", error, extra={"correlation_id": error.correlation_id})
            digest.report("hostile network", host.name, error.detail)
            if isinstance(error, CaptivePortalError):
                NetworkState.portal(error.detail)
            raise error
        if NetworkState.degraded:
            NetworkState.recovered()
        if response.status_code >= 400:
            raise self.status_failure(response, exchange)
        return response

    # --- retrying ----------------------------------------------------------------------

    @staticmethod
    def retry_plan(exchange: Exchange) -> RetryPlan:
        """The shared retry core for one request, from its first failure on: the config's
        attempts and backoff, ``Retry-After`` up to ``max_retry_after``, the request's
        deadline and the give-up note (``resilient.testing.instant()`` applies)."""
        return RetryPlan(exchange.config.retry, _GAVE_UP, True, _state.instant, False)

    def decide(self, error: HTTPError, exchange: Exchange, plan: RetryPlan) -> Sleep | GiveUp:
        """After a failed attempt: HTTP's own rules (which errors, methods and bodies may be
        sent again), then the shared core's answer for the time left."""
        request = exchange.request
        if not self._retryable(error, exchange.config):
            return NOT_RETRYABLE
        method = request.method
        if method not in IDEMPOTENT_METHODS and "idempotency-key" not in request.headers:
            return GiveUp(
                f"resilient.http did not retry: {method} is not idempotent "
                "(send an Idempotency-Key header to allow retries)"
            )
        if not isinstance(request.stream, httpx.ByteStream):
            return GiveUp("resilient.http did not retry: the request body is a stream")
        return plan.decide(error, _state.now(), exchange.deadline)

    @staticmethod
    def retrying(error: HTTPError, exchange: Exchange, plan: RetryPlan, delay: float) -> None:
        """Before waiting ``delay``: log the retry and count it (``retry_attempts_total``)."""
        request = exchange.request
        logger.info(
            "%s %s: attempt %d failed (%s); retrying in %.3gs",
            request.method,
            request.url,
            plan.attempt,
            error.detail,
            delay,
            extra={"correlation_id": error.correlation_id},
        )
        telemetry.record_retry_attempt(f"http:{exchange.host.name}")

    @staticmethod
    def give_up(error: HTTPError, plan: RetryPlan, decision: GiveUp) -> HTTPError:
        """``error``, noted and logged with why it is not retried (again)."""
        why = decision.reason
        if why is not None:
            plan.note(error, decision)
            logger.info("%s (%s)", error, why, extra={"correlation_id": error.correlation_id})
        return error

    @staticmethod
    def _retryable(error: HTTPError, config: RequestConfig) -> bool:
        if isinstance(error, HTTPStatusError):
            return error.status_code in config.retry_statuses
        if isinstance(error, HTTPTimeoutError):
            return error.phase != "total"
        return isinstance(error, NetworkError)

    # --- metrics -----------------------------------------------------------------------

    @staticmethod
    def started(emit: Any) -> None:
        emit.gauge(ACTIVE_REQUESTS, active.change(1), ())

    @staticmethod
    def finished(emit: Any, exchange: Exchange) -> None:
        emit.gauge(ACTIVE_REQUESTS, active.change(-1), ())
        end = _state.now()
        start = exchange.deadline - exchange.budget
        emit.latency((end - start) * 1000.0, end, exchange.host.tags)


def _replace_correlation(invalid: str) -> str:
    shown = invalid if len(invalid) <= 64 else invalid[:64] + "..."
    digest.report(
        "correlation ID replaced",
        "resilient.http",
        f"{shown!r} is not 1-128 visible ASCII characters; the request carries a new ID",
    )
    return _new_correlation()


# httpx errors raised in this process, before anything reached the host.
LOCAL_ERRORS = (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL)


def _trusted(hosts: object) -> frozenset[str]:
    if isinstance(hosts, Iterable) and not isinstance(hosts, str | bytes):
        names = tuple(hosts)  # read once: a generator is fine too
        if all(isinstance(name, str) for name in names):
            return frozenset(name.lower() for name in names)
    raise ConfigError("trusted_hosts", hosts, "a collection of host names")


def _base_url(base_url: object) -> httpx.URL:
    allowed = "an absolute http:// or https:// URL with a host, or ''"
    if not isinstance(base_url, str | httpx.URL):
        raise ConfigError("base_url", base_url, allowed)
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        raise ConfigError("base_url", base_url, allowed) from None
    if str(base_url) and (url.scheme not in ("http", "https") or not url.host):
        raise ConfigError("base_url", base_url, allowed)
    return url


_OWN_OPTIONS = {
    "timeout": "config=RequestConfig(...) (timeouts come from the config)",
    "follow_redirects": "follow_redirects=True on a request",
    "base_url": "the base_url parameter",
}
_ENGINE_OPTIONS: dict[type, frozenset[str]] = {}


def _check_options(engine: type, options: dict[str, Any]) -> None:
    """``ConfigError`` for a keyword the client sets itself or httpx does not take."""
    known = _ENGINE_OPTIONS.get(engine)
    if known is None:
        known = _ENGINE_OPTIONS[engine] = frozenset(inspect.signature(engine).parameters)
    for key, value in options.items():
        if key in _OWN_OPTIONS:
            raise ConfigError(key, value, _OWN_OPTIONS[key])
        if key not in known:
            hint = closest(key, [*known, "tenant_id", "config", "breaker"])
            raise ConfigError(key, value, f"a parameter of {engine.__name__}{hint}")


_PHASES: dict[type[Exception], str] = {
    httpx.ConnectTimeout: "connect",
    httpx.ReadTimeout: "read",
    httpx.WriteTimeout: "write",
    httpx.PoolTimeout: "pool",
}
