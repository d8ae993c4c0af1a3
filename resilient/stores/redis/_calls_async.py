"""A breaker's events applied by Redis, one transition script call at a time.

Written once, for asyncio (``_calls_async.py``, what ``AsyncRedisStore`` does in
coroutines); the blocking twin (``_calls_sync.py``, what both stores do in sync code)
is generated from it by ``.ci/unasync.py``, which CI runs with ``--check``. What the
twins share without I/O (the answers given without Redis, the script's arguments,
reading its reply) lives in ``_base``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..._circuit.rules import BreakerState, Decision, Event
from ..._runtime import config as _config

if TYPE_CHECKING:
    from ..._circuit.config import BreakerConfig

from ._asyncio import _AsyncioClients
from ._cells import _begin, _Cell, _end
from ._errors import _count_error


class _AsyncCalls(_AsyncioClients):
    """The transitions of a breaker that go through Redis."""

    async def aapply(
        self, name: str, event: Event, now: float, config: BreakerConfig
    ) -> tuple[BreakerState, Decision]:
        """Apply ``event`` to the shared state of ``name`` in one script call (or, during
        an outage, to this process's own copy); return the result. Waits at most
        ``timeout`` for Redis."""
        cell = self._cells.get(name) or self.cell(name)
        here = self._here(cell, event, now, config)
        if here is None:
            return await self._asubmit(cell, event, now, config)
        state, decision, tripped = here
        if tripped:
            await self._ahint(cell, state, now)
        return state, decision

    async def _asend(
        self, cell: _Cell, events: list[tuple[Event, float]], config: BreakerConfig
    ) -> list[tuple[BreakerState, Decision]]:
        """Apply ``events`` in order in one script call (locally during an outage, or
        while the breaker holds a state of its own)."""
        local = any(self._local(cell, event) for event, _ in events)
        _begin(cell)
        try:
            if not local:
                args = self._args(cell, config)
                for event, now in events:
                    args.extend(self._event_args(event, now))
                reply = await self._acall(cell, args)
                if reply is not None:
                    ran = (events[0][1] + _config.state.now()) / 2  # while the script ran
                    results = self._accept(cell, reply, ran, config)
                    if len(results) == len(events):
                        return results
            return [self._fallback(cell, event, now, config) for event, now in events]
        finally:
            _end(cell)

    async def _acall(self, cell: _Cell, args: list[str]) -> list[Any] | None:
        """One script call for ``cell``: the reply, or ``None`` when Redis did not apply
        it (the error is dealt with: an outage, or trouble of this breaker alone)."""
        where, clock = self._server_of(cell)
        for _ in range(2):
            sent = time.monotonic()
            try:
                reply = await self._arun(cell, args)
            except Exception as error:  # timeouts included: the caller must not see it
                self._failed(error, cell, where)
                return None
            if not self._late(clock, reply, sent, args):
                return reply
        late = TimeoutError("Redis ran the script after its deadline twice")
        self._failed(late, cell, where)
        return None

    async def _ahint(self, cell: _Cell, own: BreakerState, now: float) -> None:
        """Tell the fleet this process's breaker tripped (one script call); with a quorum
        of live hints the shared breaker opens, and the reply brings it here."""
        args = self._hint_args(cell, own, now)
        if args is None or cell.config is None:
            return
        _begin(cell)
        try:
            reply = await self._acall(cell, args)
            if reply is None:
                _count_error()
                return
            self._accept(cell, reply, now, cell.config)
        finally:
            _end(cell)
