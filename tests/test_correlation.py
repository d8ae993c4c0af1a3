"""Correlation IDs: the context variable, the context manager and the logging filter."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from contextvars import copy_context

import pytest

from resilient import correlation


def test_no_id_outside_a_request() -> None:
    """Outside any ``use`` block there is no current ID."""
    assert correlation.current() is None


def test_new_ids_are_32_hex_digits_and_unique() -> None:
    """``new`` hands out UUID-shaped IDs that do not repeat."""
    ids = {correlation.new() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)


def test_use_sets_and_restores_the_id() -> None:
    """``use`` makes an ID current for the block and restores the outer one after."""
    with correlation.use("outer") as outer:
        assert outer == "outer"
        with correlation.use() as inner:
            assert correlation.current() == inner != "outer"
        assert correlation.current() == "outer"
    assert correlation.current() is None


async def test_the_id_follows_tasks() -> None:
    """A task started inside ``use`` sees the same ID; its own changes stay inside it."""

    async def child() -> str | None:
        seen = correlation.current()
        with correlation.use("child"):
            pass
        return seen

    with correlation.use("request-1"):
        assert await asyncio.create_task(child()) == "request-1"
        assert correlation.current() == "request-1"


def test_the_id_follows_a_copied_context_into_a_thread() -> None:
    """Worker threads run with a copied context see the request's ID."""
    seen: list[str | None] = []
    with correlation.use("request-2"):
        context = copy_context()
    worker = threading.Thread(
        target=context.run, args=(lambda: seen.append(correlation.current()),)
    )
    worker.start()
    worker.join()
    assert seen == ["request-2"]


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("a83671ba1b81c1e9b2ed6e55759c4b01", True),
        ("req-42.retry:1_x", True),
        ("", False),
        ("x" * 129, False),
        ("evil\nINFO forged log line", False),
        ("spaces are not allowed", False),
        ("-leading-dash", False),
    ],
)
def test_incoming_ids_are_checked(value: str, valid: bool) -> None:
    """Only short IDs of safe characters are accepted from clients."""
    assert correlation.is_valid(value) is valid


def test_the_filter_adds_the_current_id_to_records(caplog: pytest.LogCaptureFixture) -> None:
    """The filter stamps records with the current ID, or ``-`` outside a request."""
    logger = logging.getLogger("tests.correlation")
    log_filter = correlation.CorrelationIdFilter()
    caplog.handler.addFilter(log_filter)
    try:
        with caplog.at_level(logging.INFO, logger="tests.correlation"):
            logger.info("outside")
            with correlation.use("abc123"):
                logger.info("inside")
            logger.info("explicit", extra={"correlation_id": "given"})
    finally:
        caplog.handler.removeFilter(log_filter)
    assert [r.correlation_id for r in caplog.records] == ["-", "abc123", "given"]  # type: ignore[attr-defined]
