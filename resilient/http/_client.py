"""``Client`` and ``AsyncClient``: the two thin shells that send, wait and retry.

Every decision lives in ``ClientCore``; these loops only act on it, once in sync form
and once in async form. The first attempt runs straight through; the retry loop is
entered only after a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final

import httpx

from .. import correlation
from .._circuit.config import BreakerConfig
from .._retry.plan import GiveUp
from .._runtime import config as _config
from .._runtime import deadline as _deadline
from ..exceptions import CircuitOpenError
from ..presets import BreakerPreset, RequestPreset
from ._config import RequestConfig, resolve
from ._core import LOCAL_ERRORS, ClientCore
from ._errors import HTTPError
from ._exchange import (
    BoundedStream,
    BudgetSpentError,
    Exchange,
    raised_by_transport,
    shim_transports,
)
from ._hostile import NetworkState, looks_like_markup

__all__ = ["AsyncClient", "Client"]

_state = _config.state
_get_deadline = _deadline.get
_set_correlation = correlation.CONTEXT.set
_reset_correlation = correlation.CONTEXT.reset


# httpx recognises its sentinel by type (``isinstance``) and exports only the instance.
if TYPE_CHECKING:
    from httpx._client import UseClientDefault as _UseClientDefault
else:
    _UseClientDefault = type(httpx.USE_CLIENT_DEFAULT)


class _ClientAuth(_UseClientDefault):
    """The default of ``request(auth=...)``: the client's own auth (``auth=`` given to
    the client, if any). httpx knows it as its ``USE_CLIENT_DEFAULT``; its repr is what
    ``help()`` and ``inspect.signature`` show."""

    def __repr__(self) -> str:
        return "<the client's auth>"


_DEFAULT: Final[Any] = _ClientAuth()
# Statuses that count as the host failing (and are worth retrying when configured so).
_FAILING = frozenset(range(500, 600)) - {501, 505, 511} | {408, 429}


def _budget(config: RequestConfig, start: float) -> float:
    """The smaller of the config's total and the time left before the enclosing deadline."""
    budget = config.total
    when = _get_deadline()
    if when is not None and when - start < budget:
        budget = when - start
    return budget


def is_local(error: Exception) -> bool:
    """Whether an error raised while sending is this process's own: httpx's local errors
    (an unsendable header, an unsupported scheme), or any error that did not come out of
    the transport (an auth flow, an event hook, httpx's client layer)."""
    if isinstance(error, LOCAL_ERRORS):
        return True
    return not isinstance(error, httpx.HTTPError) and not raised_by_transport(error)


def _failing(status: int, config: RequestConfig) -> bool:
    return status in _FAILING or status in config.retry_statuses


class Client(ClientCore):
    """A synchronous HTTP client (httpx underneath) that times out, retries and backs off.

    Each request gets the ``config`` timeouts (cut to the enclosing deadline), retries
    for idempotent requests, the breaker of its host (``breaker`` config, ``None`` for
    none), an ``X-Correlation-ID`` and ``X-Tenant-ID``, and is checked for captive
    portals and content filters. Error statuses raise ``HTTPStatusError``. Other keyword
    arguments (``transport``, ``proxy``, ``verify``, ``trust_env``...) go to
    ``httpx.Client``; proxies come from the environment as httpx reads them.

    What counts against the host: timeouts, connection errors, failing statuses and any
    error a transport raises (a custom transport's own types included). What never does:
    errors of this process, raised before the request leaves it or outside the transport
    (an unsendable header, an unsupported scheme, an error from an auth flow or an event
    hook); they reach the caller as they are (httpx's as ``LocalRequestError``).
    """

    _http: httpx.Client
    engine: ClassVar[type[httpx.Client]] = httpx.Client

    def __init__(
        self,
        base_url: str | httpx.URL = "",
        *,
        tenant_id: str | None = None,
        config: RequestConfig | RequestPreset = RequestConfig.standard,
        breaker: BreakerConfig | BreakerPreset | None = BreakerConfig.external_api,
        headers: Mapping[str, str] | None = None,
        trusted_hosts: Iterable[str] = (),
        **httpx_options: Any,
    ) -> None:
        super().__init__(
            base_url,
            tenant_id=tenant_id,
            config=config,
            breaker=breaker,
            headers=headers,
            trusted_hosts=trusted_hosts,
            httpx_options=httpx_options,
        )
        self._http = httpx.Client(**self.httpx_arguments())
        shim_transports(self._http)

    def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        config: RequestConfig | RequestPreset | None = None,
        auth: Any = _DEFAULT,
        follow_redirects: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request; other keyword arguments are httpx's (``json``, ``params``...).

        ``auth`` defaults to the client's own (the ``auth=`` it was made with, if any);
        ``None`` sends this request without auth.
        """
        config = self.config if config is None else resolve(config)
        start = _state.now()
        budget = _budget(config, start)
        exchange = self.prepare(
            method.upper(), url, config, start, budget, auth, follow_redirects, kwargs
        )
        if budget <= 0.0:
            raise self.timed_out(exchange)
        emit = _state.emit
        if emit is not None:
            self.started(emit)
        # A made-up ID is current while the request runs, so log records of httpx and
        # of event hooks carry it too (see ``correlation.CorrelationIdFilter``).
        token = _set_correlation(exchange.cid) if exchange.fresh else None
        try:
            response = self._send(exchange)
            if response.status_code >= 300 or NetworkState.degraded:
                return self.check(response, exchange)
            if looks_like_markup(response.content):
                return self.check(response, exchange)
            return response
        finally:
            if token is not None:
                _reset_correlation(token)
            if emit is not None:
                self.finished(emit, exchange)

    def _send(self, exchange: Exchange) -> httpx.Response:
        try:
            return self._once(exchange)
        except HTTPError as error:
            failure = error
        plan = self.retry_plan(exchange)
        while True:
            decision = self.decide(failure, exchange, plan)
            if isinstance(decision, GiveUp):
                raise self.give_up(failure, plan, decision)
            delay = decision.seconds
            self.retrying(failure, exchange, plan, delay)
            if delay:
                _state.clock.sleep(delay)
            exchange.request.extensions["timeout"] = exchange.config.clamped(
                exchange.deadline - _state.now()
            )
            try:
                return self._once(exchange)
            except HTTPError as error:
                failure = error

    def _once(self, exchange: Exchange) -> httpx.Response:
        breaker = exchange.host.breaker
        if breaker is None:
            outcome = self._attempt(exchange)
        else:
            try:
                permit = breaker.admit()
            except CircuitOpenError as error:
                if isinstance(error, HTTPError):
                    raise
                raise self.rejected(error, exchange) from None
            try:
                outcome = self._attempt(exchange)
            except BaseException as error:
                breaker.record(permit, error)
                raise
            if isinstance(outcome, Exception):
                breaker.withdraw(permit)  # it never reached the host: nothing to count
            else:
                breaker.record(permit, None, outcome)
        if isinstance(outcome, Exception):
            raise outcome  # outside any handler: the caller's error keeps no stray context
        return outcome

    def _attempt(self, exchange: Exchange) -> httpx.Response | Exception:
        """The response, or (returned, not raised) an error of this process to raise
        uncounted; raises what counts against the host."""
        try:
            response = self._http.send(
                exchange.request, stream=True, auth=exchange.auth, follow_redirects=exchange.follow
            )
        except Exception as error:
            if is_local(error):
                return self.local(error, exchange)
            if isinstance(error, httpx.HTTPError):
                raise self.failure(error, exchange) from error
            raise  # a transport's own error type: counted, unchanged
        try:
            response.stream = BoundedStream(response.stream, exchange.deadline)  # type: ignore[arg-type]
            response.read()
        except (httpx.HTTPError, BudgetSpentError) as error:
            response.close()
            raise self.failure(error, exchange) from error
        except BaseException:
            response.close()
            raise
        status = response.status_code
        if status >= 400 and _failing(status, exchange.config):
            raise self.status_failure(response, exchange)
        return response

    def get(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``GET url`` (retried on transient failures)."""
        return self.request("GET", url, **kwargs)

    def head(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``HEAD url`` (retried on transient failures)."""
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``OPTIONS url`` (retried on transient failures)."""
        return self.request("OPTIONS", url, **kwargs)

    def delete(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``DELETE url`` (retried on transient failures)."""
        return self.request("DELETE", url, **kwargs)

    def put(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``PUT url`` (retried on transient failures)."""
        return self.request("PUT", url, **kwargs)

    def post(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``POST url``: retried only with an ``Idempotency-Key`` header."""
        return self.request("POST", url, **kwargs)

    def patch(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``PATCH url``: retried only with an ``Idempotency-Key`` header."""
        return self.request("PATCH", url, **kwargs)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return _describe(self)


class AsyncClient(ClientCore):
    """The asyncio twin of ``Client``: the same parameters, ``await`` on every request.

    The total budget is enforced by the event loop, so a request never outlives it.
    """

    _http: httpx.AsyncClient
    engine: ClassVar[type[httpx.AsyncClient]] = httpx.AsyncClient

    def __init__(
        self,
        base_url: str | httpx.URL = "",
        *,
        tenant_id: str | None = None,
        config: RequestConfig | RequestPreset = RequestConfig.standard,
        breaker: BreakerConfig | BreakerPreset | None = BreakerConfig.external_api,
        headers: Mapping[str, str] | None = None,
        trusted_hosts: Iterable[str] = (),
        **httpx_options: Any,
    ) -> None:
        super().__init__(
            base_url,
            tenant_id=tenant_id,
            config=config,
            breaker=breaker,
            headers=headers,
            trusted_hosts=trusted_hosts,
            httpx_options=httpx_options,
        )
        self._http = httpx.AsyncClient(**self.httpx_arguments())
        shim_transports(self._http)

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        config: RequestConfig | RequestPreset | None = None,
        auth: Any = _DEFAULT,
        follow_redirects: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request; other keyword arguments are httpx's (``json``, ``params``...).

        ``auth`` defaults to the client's own (the ``auth=`` it was made with, if any);
        ``None`` sends this request without auth.
        """
        config = self.config if config is None else resolve(config)
        start = _state.now()
        budget = _budget(config, start)
        exchange = self.prepare(
            method.upper(), url, config, start, budget, auth, follow_redirects, kwargs
        )
        if budget <= 0.0:
            raise self.timed_out(exchange)
        emit = _state.emit
        if emit is not None:
            self.started(emit)
        token = _set_correlation(exchange.cid) if exchange.fresh else None
        try:
            response = await self._send(exchange)
            if response.status_code >= 300 or NetworkState.degraded:
                return self.check(response, exchange)
            if looks_like_markup(response.content):
                return self.check(response, exchange)
            return response
        finally:
            if token is not None:
                _reset_correlation(token)
            if emit is not None:
                self.finished(emit, exchange)

    async def _send(self, exchange: Exchange) -> httpx.Response:
        try:
            return await self._once(exchange)
        except HTTPError as error:
            failure = error
        plan = self.retry_plan(exchange)
        while True:
            decision = self.decide(failure, exchange, plan)
            if isinstance(decision, GiveUp):
                raise self.give_up(failure, plan, decision)
            delay = decision.seconds
            self.retrying(failure, exchange, plan, delay)
            if delay:
                await _state.clock.asleep(delay)
            exchange.request.extensions["timeout"] = exchange.config.clamped(
                exchange.deadline - _state.now()
            )
            try:
                return await self._once(exchange)
            except HTTPError as error:
                failure = error

    async def _once(self, exchange: Exchange) -> httpx.Response:
        breaker = exchange.host.breaker
        if breaker is None:
            outcome = await self._attempt(exchange)
        else:
            try:
                permit = await breaker.aadmit()
            except CircuitOpenError as error:
                if isinstance(error, HTTPError):
                    raise
                raise self.rejected(error, exchange) from None
            try:
                outcome = await self._attempt(exchange)
            except BaseException as error:
                await breaker.arecord(permit, error)
                raise
            if isinstance(outcome, Exception):
                await breaker.awithdraw(permit)  # it never reached the host
            else:
                await breaker.arecord(permit, None, outcome)
        if isinstance(outcome, Exception):
            raise outcome  # outside any handler: the caller's error keeps no stray context
        return outcome

    async def _attempt(self, exchange: Exchange) -> httpx.Response | Exception:
        """The response, or (returned, not raised) an error of this process to raise
        uncounted; raises what counts against the host."""
        timer = asyncio.timeout(exchange.deadline - _state.now())
        response: httpx.Response | None = None
        try:
            async with timer:
                response = await self._http.send(
                    exchange.request,
                    stream=True,
                    auth=exchange.auth,
                    follow_redirects=exchange.follow,
                )
                await response.aread()
        except TimeoutError:
            if response is not None:
                await response.aclose()
            if timer.expired():
                raise self.timed_out(exchange) from None
            raise
        except Exception as error:
            if response is not None:  # reading the body failed: the host's side
                await response.aclose()
            elif is_local(error):
                return self.local(error, exchange)
            if isinstance(error, httpx.HTTPError):
                raise self.failure(error, exchange) from error
            raise  # a transport's own error type: counted, unchanged
        except BaseException:
            if response is not None:
                await response.aclose()
            raise
        status = response.status_code
        if status >= 400 and _failing(status, exchange.config):
            raise self.status_failure(response, exchange)
        return response

    async def get(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``GET url`` (retried on transient failures)."""
        return await self.request("GET", url, **kwargs)

    async def head(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``HEAD url`` (retried on transient failures)."""
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``OPTIONS url`` (retried on transient failures)."""
        return await self.request("OPTIONS", url, **kwargs)

    async def delete(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``DELETE url`` (retried on transient failures)."""
        return await self.request("DELETE", url, **kwargs)

    async def put(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``PUT url`` (retried on transient failures)."""
        return await self.request("PUT", url, **kwargs)

    async def post(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``POST url``: retried only with an ``Idempotency-Key`` header."""
        return await self.request("POST", url, **kwargs)

    async def patch(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """``PATCH url``: retried only with an ``Idempotency-Key`` header."""
        return await self.request("PATCH", url, **kwargs)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return _describe(self)


def _describe(client: ClientCore) -> str:
    config = client.config
    preset = next((n for n in RequestConfig.names if RequestConfig.get(n) == config), None)
    hosts = ", ".join(repr(b) for b in client.breakers()) or "no hosts yet"
    return (
        f"<resilient.http.{type(client).__name__} base_url={str(client.base_url)!r} "
        f"config={preset or config!r} tenant_id={client.tenant_id!r} [{hosts}]>"
    )
