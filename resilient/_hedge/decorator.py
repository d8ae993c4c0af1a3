"""``@hedge``: when an async call has not answered after ``delay``, start another attempt.

The first attempt runs in the caller's own task, under a timer of the event loop: a call
that answers before ``delay`` costs one timer set and cancelled, and no task is created.
When the timer fires, a hedge starts in a task of its own (with a copy of the caller's
context: the same deadline), and the next timer is set, up to ``max_hedges`` hedges.
The first success wins: a hedge that wins while the first attempt still runs cancels
the caller's task as ``asyncio.timeout`` does (that cancellation is consumed, never seen
by the caller); every other attempt is cancelled and awaited, so no task outlives the
call. Hedging answers slowness, not failure: once the first attempt has failed no new
hedge starts, and the call waits for the hedges already running. When every attempt
fails, the error of the last one to fail is raised, with a note for each other failure.
"""

from __future__ import annotations

from typing import Any, Literal

from .._runtime import config as _config
from .._runtime import validate as _validate
from .._runtime.types import MetricsSink, Seconds
from .._wrapping.emit import Emitter, emitter_for
from .._wrapping.hooks import add_note_once, describe_failure
from .._wrapping.layer import AnyCall, AsyncCall, Decorator, Layer
from ..exceptions import ConfigError
from ..metrics._names import HEDGE_WINS, HEDGES
from ..telemetry import count
from .latency import Latencies

__all__ = ["hedge"]

_NOTE = "resilient.hedge: attempt {} of the same call failed too: {}"


def hedge(
    delay: Seconds | Literal["p95"],
    *,
    max_hedges: int = 1,
    metrics: MetricsSink | None = None,
) -> Decorator:
    """Start another attempt of a slow async call after ``delay``; the first success wins.

    ``delay`` is seconds (a number or a ``timedelta``), or ``"p95"``: the 95th percentile
    of the function's own latest 64 answers, read again every 8 answers; until 16 calls
    have answered no hedge starts. ``max_hedges`` bounds the extra attempts of one call
    (one more every ``delay``). For idempotent ``async def`` functions only: decorating a
    sync function raises ``TypeError``. ``metrics`` overrides the configured sink for
    this function (``hedges_total``, ``hedge_wins_total``).
    """
    fixed: float | None = None
    given: object = delay  # checked at run time: annotations are not enforced
    if given != "p95":
        if isinstance(given, str):
            raise ConfigError("delay", delay, "a number of seconds, a timedelta or 'p95'")
        fixed = _validate.required_duration("delay", delay, maximum=_validate.MAX_SECONDS)
    extra = _validate.integer("max_hedges", max_hedges, minimum=1)
    layer = _Hedge(fixed, extra)
    layer.emitter = emitter_for(metrics)
    return Decorator(layer)


class _Hedge(Layer):
    __slots__ = ("delay", "emitter", "latencies", "max_hedges")
    kind = "hedge"

    def __init__(self, delay: float | None, max_hedges: int) -> None:
        self.delay = delay  # None: the function's own p95
        self.max_hedges = max_hedges
        self.latencies: dict[str, Latencies] = {}
        self.emitter: Emitter | None = None

    def describe(self) -> dict[str, object]:
        return {
            "layer": self.kind,
            "delay": "p95" if self.delay is None else self.delay,
            "max_hedges": self.max_hedges,
        }

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        raise TypeError(
            f"resilient.hedge cannot decorate the sync function {name}: hedging runs "
            "attempts side by side as tasks of an event loop; decorate an async def "
            "function (a sync call cannot be cancelled when another attempt wins)"
        )

    def wrap_async(self, call: AsyncCall, name: str) -> AsyncCall:
        import asyncio

        layer, fixed, state = self, self.delay, _config.state
        get_loop, current_task = asyncio.get_running_loop, asyncio.current_task
        if fixed is not None:

            async def hedged(*args: Any, **kwargs: Any) -> Any:
                if state.instant is not None:
                    return await _Race(layer, name, call, args, kwargs, 0.0).run_instant()
                loop = get_loop()
                race: list[_Race] = []

                def fire() -> None:
                    race.append(_Race(layer, name, call, args, kwargs, fixed))
                    race[0].start(loop, current)

                current = current_task()
                timer = loop.call_at(loop.time() + fixed, fire)
                try:
                    result = await call(*args, **kwargs)
                except BaseException as error:
                    timer.cancel()
                    if race:
                        return await race[0].first_failed(error)
                    raise
                timer.cancel()
                if race:
                    return await race[0].first_answered(result)
                return result

            return hedged

        latencies = self.latencies.setdefault(name, Latencies())  # shared by its chains

        async def hedged_p95(*args: Any, **kwargs: Any) -> Any:
            if state.instant is not None:
                return await _Race(layer, name, call, args, kwargs, 0.0).run_instant()
            loop = get_loop()
            delay = latencies.delay
            start = loop.time()
            if delay is None:  # too few answers yet: learn, do not hedge
                result = await call(*args, **kwargs)
                latencies.add(loop.time() - start)
                return result
            race: list[_Race] = []

            def fire() -> None:
                race.append(_Race(layer, name, call, args, kwargs, delay, latencies, start))
                race[0].start(loop, current)

            current = current_task()
            timer = loop.call_at(start + delay, fire)
            try:
                result = await call(*args, **kwargs)
            except BaseException as error:
                timer.cancel()
                if race:
                    return await race[0].first_failed(error)
                raise
            timer.cancel()
            if race:
                return await race[0].first_answered(result)
            latencies.add(loop.time() - start)
            return result

        return hedged_p95

    def started(self, name: str, attempt: int, delay: float) -> None:
        count(HEDGES, (("policy", name),), emitter=self.emitter)
        from .._runtime.listeners import dispatch, hub

        if hub.active:
            from .._runtime.events import HedgeStarted

            dispatch((), (HedgeStarted(name, attempt, delay),))  # type: ignore[arg-type]

    def won(self, name: str, attempt: int) -> None:
        count(HEDGE_WINS, (("policy", name),), emitter=self.emitter)
        from .._runtime.listeners import dispatch, hub

        if hub.active:
            from .._runtime.events import HedgeWon

            dispatch((), (HedgeWon(name, attempt),))  # type: ignore[arg-type]


class _Race:
    """The attempts of one call once its first attempt was slow (made when the timer fires).

    Runs in the event loop's callbacks and in the caller's task, never in two threads.
    """

    __slots__ = (
        "args",
        "base",
        "call",
        "delay",
        "errors",
        "first_start",
        "kwargs",
        "latencies",
        "layer",
        "loop",
        "name",
        "over",
        "requested",
        "result",
        "starts",
        "task",
        "tasks",
        "timer",
        "winner",
    )

    def __init__(
        self,
        layer: _Hedge,
        name: str,
        call: AsyncCall,
        args: Any,
        kwargs: Any,
        delay: float,
        latencies: Latencies | None = None,
        first_start: float = 0.0,
    ) -> None:
        self.layer = layer
        self.name = name
        self.call = call
        self.args = args
        self.kwargs = kwargs
        self.delay = delay
        self.latencies = latencies
        self.first_start = first_start
        self.tasks: list[Any] = []  # the hedges: attempt 2, 3...
        self.starts: list[float] = []
        self.errors: list[tuple[int, BaseException]] = []  # (attempt, error), as they failed
        self.winner: int | None = None  # the attempt whose result is the answer
        self.result: Any = None
        self.over = False  # the first attempt has ended: hedge successes no longer cancel it
        self.task: Any = None
        self.base = 0  # the caller's pending cancellations when the race began
        self.requested = False  # the race cancelled the caller's task (a hedge won)
        self.timer: Any = None
        self.loop: Any = None

    # --- in the event loop's callbacks -----------------------------------------------

    def start(self, loop: Any, task: Any) -> None:
        """Start one hedge, and set the timer of the next (a timer callback)."""
        self.timer = None
        if self.winner is not None or self.over:
            return
        self.spawn(loop, task)
        if len(self.tasks) < self.layer.max_hedges:
            self.timer = loop.call_at(loop.time() + self.delay, self.start, loop, task)

    def spawn(self, loop: Any, task: Any) -> None:
        """Start the next attempt in a task of its own."""
        if self.task is None:
            self.loop, self.task, self.base = loop, task, task.cancelling()
        attempt = len(self.tasks) + 2
        hedge_task = loop.create_task(self.call(*self.args, **self.kwargs))
        hedge_task.add_done_callback(self._finished)
        self.tasks.append(hedge_task)
        self.starts.append(loop.time())
        self.layer.started(self.name, attempt, self.delay * (attempt - 1))

    def _finished(self, hedge_task: Any) -> None:
        if hedge_task.cancelled():
            return
        error = hedge_task.exception()  # retrieved even when too late to count
        if self.winner is not None:
            return
        if error is not None:
            self.errors.append((self.tasks.index(hedge_task) + 2, error))
            return
        self.winner = self.tasks.index(hedge_task) + 2
        self.result = hedge_task.result()
        # The first attempt still runs: stop it, unless someone else is cancelling the
        # caller already (their cancellation must reach it, not be taken for ours).
        if not self.over and self.task.cancelling() == self.base:
            self.requested = True
            self.task.cancel()

    # --- in the caller's task ---------------------------------------------------------

    async def first_answered(self, result: Any) -> Any:
        """The first attempt returned (perhaps after a hedge won and cancelled it)."""
        self.over = True
        if self.requested and self.task.cancelling() > self.base:
            self.task.uncancel()  # the attempt swallowed our cancellation and returned
        if self.winner is None:
            self.winner = 1
            self.result = result
        self._won()
        await self._stop()
        return self.result

    async def first_failed(self, error: BaseException) -> Any:
        """The first attempt raised: a hedge's win (our cancellation), a failure, or the
        caller's own cancellation."""
        import asyncio

        self.over = True
        if self.timer is not None:
            self.timer.cancel()  # no new hedge once the first attempt has failed
        if self.requested:
            if self.task.uncancel() <= self.base:  # ours alone: the hedge's answer stands
                self._won()
                await self._stop()
                return self.result
            await self._stop()  # someone else cancelled the caller too
            raise error
        if isinstance(error, asyncio.CancelledError) or not isinstance(error, Exception):
            await self._stop()
            raise error
        self.errors.append((1, error))
        try:
            while True:
                pending = [t for t in self.tasks if not t.done()]
                if self.winner is not None:
                    self._won()
                    return self.result
                if not pending:
                    raise self._last()
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._stop()

    async def run_instant(self) -> Any:
        """Under ``resilient.testing.instant()``: every attempt (up to its cap) at once."""
        import asyncio

        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        hedges = min((_config.state.instant or 1) - 1, self.layer.max_hedges)
        for _ in range(hedges):  # nothing waits: every hedge starts with the first attempt
            self.spawn(loop, task)
        try:
            result = await self.call(*self.args, **self.kwargs)
        except BaseException as error:
            return await self.first_failed(error)
        return await self.first_answered(result)

    def _won(self) -> None:
        assert self.winner is not None
        if self.winner > 1:
            self.layer.won(self.name, self.winner)
        self._learn(self.winner)

    def _learn(self, attempt: int) -> None:
        """Add the winning attempt's own duration to the window (``"p95"``)."""
        if self.latencies is not None and self.loop is not None:
            began = self.first_start if attempt == 1 else self.starts[attempt - 2]
            self.latencies.add(self.loop.time() - began)

    def _last(self) -> BaseException:
        """The last failure, with a note for each earlier one."""
        last = self.errors[-1][1]
        for attempt, error in self.errors[:-1]:
            add_note_once(last, _NOTE.format(attempt, describe_failure(error)))
        return last

    async def _stop(self) -> None:
        """Cancel the hedges still running and wait for them: none outlives the call."""
        import asyncio

        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        running = [t for t in self.tasks if not t.done()]
        for hedge_task in running:
            hedge_task.cancel()
        if running:
            await asyncio.wait(running)
