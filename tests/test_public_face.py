"""The main namespace: one home per name; names moved elsewhere still answer, with a warning."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import resilient
import resilient.metrics
import resilient.stores

MOVED = {
    "FanoutSink": "metrics",
    "LoggingSink": "metrics",
    "MemorySink": "metrics",
    "NullSink": "metrics",
    "PrometheusSink": "metrics",
    "StatsdSink": "metrics",
    "AsyncRedisStore": "stores",
    "MemoryStore": "stores",
    "RedisStore": "stores",
    "CircuitBreakerRegistry": "compat",
    "FiringBreaker": "compat",
    "create_circuit_breaker": "compat",
}


# --- the main namespace -------------------------------------------------------------------


def test_every_public_name_resolves_without_a_warning() -> None:
    """Each name in ``resilient.__all__`` is there, and reading it warns of nothing."""
    for name in resilient.__all__:
        assert getattr(resilient, name) is not None, name


def test_moved_names_are_not_advertised() -> None:
    """Names with a home elsewhere are not in ``__all__``, and ``__all__`` is sorted."""
    assert not set(MOVED) & set(resilient.__all__)
    assert resilient.__all__ == sorted(resilient.__all__)


@pytest.mark.parametrize(("name", "home"), [(n, h) for n, h in MOVED.items() if h != "compat"])
def test_a_sink_or_store_named_in_the_main_namespace_warns_and_is_the_same_class(
    name: str, home: str
) -> None:
    """``resilient.MemorySink`` (and the other sinks and stores) still work, with a warning
    naming their one home."""
    with pytest.warns(DeprecationWarning, match=f"resilient.{home}.{name}") as record:
        found = getattr(resilient, name)
    assert found is getattr(getattr(resilient, home), name)
    assert record[0].filename == __file__


def test_subpackages_are_attributes_after_a_bare_import() -> None:
    """After ``import resilient`` alone, ``resilient.stores`` and ``resilient.compat`` load
    on first use (``stores`` is in ``__all__``)."""
    code = (
        "import resilient, sys\n"
        "assert 'resilient.stores' not in sys.modules\n"
        "print(resilient.stores.MemoryStore.__name__, resilient.compat.FiringBreaker.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["MemoryStore", "FiringBreaker"]


def test_import_resilient_does_not_load_the_breaker_or_compat() -> None:
    """The deprecation table is only data: ``import resilient`` loads no breaker module."""
    code = (
        "import resilient, sys\n"
        "print(sorted(m for m in sys.modules if m.startswith(('resilient._breaker', "
        "'resilient.compat', 'resilient.stores'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_resilient_leaves_policies_and_the_retry_budget_for_later() -> None:
    """``import resilient`` loads neither the policy parser nor the retry budget; naming
    ``resilient.policy`` or ``resilient.RetryBudget`` loads them."""
    code = (
        "import resilient, sys\n"
        "print(sorted(m for m in ('resilient._policy', 'resilient._retry.budget') "
        "if m in sys.modules))\n"
        "print(resilient.policy.__module__, resilient.RetryBudget.__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines() == ["[]", "resilient._policy.declare resilient._retry.budget"]


# --- signatures as help() shows them ------------------------------------------------------


@pytest.mark.parametrize("client", ["Client", "AsyncClient"])
def test_request_signature_reads_without_httpx_internals(client: str) -> None:
    """``help(Client.request)`` shows the ``auth`` default as the client's own auth, not
    the repr of httpx's private sentinel object."""
    http = pytest.importorskip("resilient.http")
    shown = str(inspect.signature(getattr(http, client).request))
    assert "auth: 'Any' = <the client's auth>," in shown
    assert "UseClientDefault" not in shown
    assert " object at 0x" not in shown


def test_request_auth_default_is_still_the_clients_auth() -> None:
    """Without ``auth=`` a request carries the client's auth; ``auth=None`` sends none."""
    httpx = pytest.importorskip("httpx")
    http = pytest.importorskip("resilient.http")
    sent: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("authorization"))
        return httpx.Response(200)

    transport = httpx.MockTransport(answer)
    with http.Client("http://api", auth=("u", "p"), transport=transport, breaker=None) as client:
        client.get("/a")
        client.request("GET", "/b", auth=None)
    assert sent == ["Basic dTpw", None]  # base64 of "u:p"
