"""Every bad argument of the HTTP client and its request config names what the user typed.

One table over every constructor parameter of ``Client``/``AsyncClient``, every
``RequestConfig`` field and the per-request ``config=``: the ``ConfigError`` must carry
the parameter's own name and the value given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from resilient.exceptions import ConfigError
from resilient.http import AsyncClient, Client, RequestConfig

CLIENT_CASES: list[tuple[dict[str, Any], str]] = [
    ({"breaker": "nope"}, "breaker"),
    ({"breaker": 3}, "breaker"),
    ({"breaker": "critcal"}, "breaker"),
    ({"config": "lightning"}, "config"),
    ({"config": 3}, "config"),
    ({"config": "standrd"}, "config"),
    ({"base_url": 42}, "base_url"),
    ({"base_url": "ftp://example.org"}, "base_url"),
    ({"base_url": "example.org"}, "base_url"),
    ({"base_url": "http://"}, "base_url"),
    ({"base_url": "http://[::1"}, "base_url"),
    ({"tenant_id": ""}, "tenant_id"),
    ({"tenant_id": 7}, "tenant_id"),
    ({"tenant_id": "a\r\nb"}, "tenant_id"),
    ({"headers": "X-A: 1"}, "headers"),
    ({"headers": {"X-A": "1\n"}}, "headers"),
    ({"trusted_hosts": "cdn.example"}, "trusted_hosts"),
    ({"trusted_hosts": [3]}, "trusted_hosts"),
    ({"trusted_hosts": None}, "trusted_hosts"),
    ({"trusted_hosts": 3}, "trusted_hosts"),
    ({"timeout": 3}, "timeout"),
    ({"follow_redirects": True}, "follow_redirects"),
    ({"colour": "red"}, "colour"),
    ({"verfy": False}, "verfy"),
]


@pytest.mark.parametrize("kind", [Client, AsyncClient])
@pytest.mark.parametrize(("options", "parameter"), CLIENT_CASES)
def test_client_construction_names_the_parameter(
    kind: type[Client | AsyncClient], options: dict[str, Any], parameter: str
) -> None:
    """``Client(**options)`` raises ``ConfigError`` naming that parameter and its value."""
    with pytest.raises(ConfigError) as caught:
        kind(**options)
    assert caught.value.parameter == parameter
    assert caught.value.value == options[parameter]


@pytest.mark.parametrize(
    ("options", "suggestion"),
    [
        ({"breaker": "critcal"}, "'critical'"),
        ({"config": "standrd"}, "'standard'"),
        ({"verfy": False}, "'verify'"),
    ],
)
def test_a_near_miss_is_answered_with_the_closest_name(
    options: dict[str, Any], suggestion: str
) -> None:
    """A typo in a preset or keyword name gets a "did you mean" with the closest name."""
    with pytest.raises(ConfigError, match=f"did you mean {suggestion}"):
        Client(**options)


def test_every_client_parameter_is_in_the_table() -> None:
    """A new constructor parameter cannot skip the table above."""
    import inspect

    own = set(inspect.signature(Client).parameters) - {"httpx_options"}
    assert own == set(inspect.signature(AsyncClient).parameters) - {"httpx_options"}
    assert own <= {parameter for _, parameter in CLIENT_CASES}


CONFIG_CASES: list[tuple[Callable[[], object], str, object]] = [
    (lambda: RequestConfig(connect=-1), "connect", -1),
    (lambda: RequestConfig(receive="5"), "receive", "5"),  # type: ignore[arg-type]
    (lambda: RequestConfig(total=float("inf")), "total", float("inf")),
    (lambda: RequestConfig(retry="sometimes"), "retry", "sometimes"),  # type: ignore[arg-type]
    (lambda: RequestConfig(retry=3), "retry", 3),  # type: ignore[arg-type]
    (lambda: RequestConfig(retry_statuses=frozenset({700})), "retry_statuses", frozenset({700})),
    (lambda: RequestConfig(retry_statuses="503"), "retry_statuses", "503"),  # type: ignore[arg-type]
    (lambda: RequestConfig.standard.replace(colour="red"), "colour", "red"),
    (lambda: RequestConfig.standard.replace(retry="often"), "retry", "often"),
    (lambda: RequestConfig.standard.replace(connect=0), "connect", 0),
    (lambda: RequestConfig.get("turbo"), "config", "turbo"),
]


@pytest.mark.parametrize(("build", "parameter", "value"), CONFIG_CASES)
def test_request_config_names_the_field(
    build: Callable[[], object], parameter: str, value: object
) -> None:
    """``RequestConfig`` refuses a bad field with ``ConfigError`` naming that field."""
    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.parameter == parameter
    assert caught.value.value == value


def test_every_request_config_field_is_in_the_table() -> None:
    """A new ``RequestConfig`` field cannot skip the table above."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(RequestConfig) if f.init}
    assert fields <= {parameter for _, parameter, _ in CONFIG_CASES}


@pytest.mark.parametrize(
    ("options", "parameter"), [({"config": "nope"}, "config"), ({"timeout": 3}, "timeout")]
)
def test_a_request_names_its_own_parameter(options: dict[str, Any], parameter: str) -> None:
    """``client.get(url, config=...)`` and ``timeout=`` are refused before anything is sent."""
    with Client("http://127.0.0.1:1") as client, pytest.raises(ConfigError) as caught:
        client.get("/a", **options)
    assert caught.value.parameter == parameter


async def test_an_async_request_names_its_own_parameter() -> None:
    """The async twin refuses ``config="nope"`` naming ``config``."""
    async with AsyncClient("http://127.0.0.1:1") as client:
        with pytest.raises(ConfigError) as caught:
            await client.get("/a", config="nope")
    assert caught.value.parameter == "config"


def test_trusted_hosts_may_be_a_generator() -> None:
    """A one-shot iterable of trusted hosts is read once, not emptied by the check."""
    with Client(trusted_hosts=(host for host in ["CDN.example", "assets.example"])) as client:
        assert client.trusted_hosts == {"cdn.example", "assets.example"}
