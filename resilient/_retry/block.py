"""``retrying()`` / ``aretrying()``: retry a block of code that is not a function.

::

    for attempt in resilient.retrying(attempts=3, on=ConnectionError):
        with attempt:
            reply = fetch()

The block runs under the same layer and per-call plan as ``@retry``: the same settings,
deadline, hooks, metrics, events and statistics. Each ``with attempt:`` keeps what the
block raised (an ``Exception``; cancellation and exits pass through); the loop decides,
waits and yields the next attempt, or raises the last error with its note (a
``StopIteration`` or ``StopAsyncIteration``, which would end the loop silently, as the
cause of a ``RuntimeError``). A block that does not raise ends the loop.

The ``async for`` loop is written once (``block_async``) and its ``for`` twin generated
from it (``block_sync``); what both use lives in ``block_base``.
"""

from __future__ import annotations

from .block_async import AsyncRetrying, aretrying
from .block_base import Attempt
from .block_sync import Retrying, retrying

__all__ = ["AsyncRetrying", "Attempt", "Retrying", "aretrying", "retrying"]
