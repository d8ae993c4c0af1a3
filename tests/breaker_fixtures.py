"""Fixtures for the breaker tests; import the ones a module uses.

``make_store`` is parametrized over every store, so a test taking it runs once per
store: the Redis issue adds one ``pytest.param`` here and every such test covers it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from resilient import MemoryStore
from resilient.typing import StateStore

STORES = [pytest.param(MemoryStore, id="memory")]


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest) -> Callable[[], StateStore]:
    """A factory of fresh, empty stores of one kind."""
    factory: Callable[[], StateStore] = request.param
    return factory
