"""``@timeout``: bound one call's duration and publish its deadline.

Async calls are cancelled at the deadline by a timer on their event loop, as
``asyncio.timeout`` cancels them.
Sync calls run on a worker thread and the caller is released at the deadline
(``strategy="thread"``), or are interrupted by ``SIGALRM`` on the main thread
(``strategy="signal"``). A call that comes back after its deadline is a timeout, whose
error says how late and why. Under a clock other than the system clock (a ``FakeClock``,
a user's clock) the same strategies run and the deadline is a time on that clock.
"""

from __future__ import annotations

import threading
import time
from contextvars import copy_context
from threading import TIMEOUT_MAX
from types import FunctionType
from typing import Any, Literal, cast

from .._runtime import config as _config
from .._runtime import deadline as _deadline
from .._runtime import validate as _validate
from .._runtime.clock import SYSTEM_CLOCK
from .._runtime.listeners import dispatch, hub
from .._runtime.types import MetricsSink, Seconds
from .._wrapping.emit import Emitter, emitter_for
from .._wrapping.layer import (
    CALL,
    AnyCall,
    AsyncCall,
    AsyncStreamCall,
    Decorator,
    Layer,
    StreamCall,
)
from ..exceptions import ConfigError, ResilienceError, TimeoutExceededError
from ..metrics._names import TIMEOUTS
from ..presets import TimeoutPreset, Timeouts
from ..telemetry import count
from . import alarm as _alarm
from .stream import timeout_stream_async, timeout_stream_sync
from .workers import ABANDONED, CROWDED, EXPIRED, REFUSED, PoolStats, Share, WorkerPool

__all__ = ["Strategy", "timeout", "timeout_pool_stats"]

Strategy = Literal["thread", "signal"]

_POOL_SIZE = 64
_DEFAULT_SHARE = 8  # abandoned calls one function may leave running before it is refused
_pool = WorkerPool(_POOL_SIZE)  # a quarter of it stays for functions that are not hanging
_NOTABLE = 0.01  # released this much past the deadline or more: say why
_IN_C = (
    "the call was in C code (a blocking call or a long computation), which a signal "
    "cannot interrupt until it returns"
)
_HELD_GIL = (
    "the call held the GIL in C code that does not release it (a long regular "
    "expression, a C extension), so the caller could only be released when it let go"
)
_QUEUED = "it never started: every pool thread was busy until its deadline"


def _in_c(late: float) -> str | None:
    return _IN_C if late >= _NOTABLE else None


def _refused(limit: int) -> str:
    return (
        f"it was not started: {limit} earlier calls of it are still running past their "
        f"deadline and hold pool threads (max_threads={limit})"
    )


def _crowded(pool: WorkerPool) -> str:
    return (
        "it was not started: earlier calls of it are still running past their deadline, "
        f"and such calls already hold {pool.max_workers - pool.reserve} of the pool's "
        f"{pool.max_workers} threads; the other {pool.reserve} are kept for functions "
        "that are not hanging"
    )


def timeout_pool_stats() -> PoolStats:
    """The pool behind ``strategy="thread"``: threads, idle threads, calls still running
    after their caller gave up (``abandoned``), calls waiting for a thread (``queued``),
    and, since start-up, calls that never started before their deadline (``expired``) and
    calls refused because their function had too many calls running past their deadline
    (``refused``)."""
    return _pool.stats()


def timeout(
    seconds: Seconds | TimeoutPreset,
    *,
    strategy: Strategy = "thread",
    max_threads: int = _DEFAULT_SHARE,
    metrics: MetricsSink | None = None,
    per_item: Seconds | None = None,
) -> Decorator:
    """Fail a call with ``TimeoutExceededError`` once it runs past ``seconds``.

    ``seconds`` is a number, a ``timedelta`` or a preset name from ``Timeouts``
    (``"quick"``, ``"standard"``, ``"heavy"``, ``"ai_operation"``). ``strategy`` chooses
    how a sync call is bounded; async calls are always cancelled by the event loop.
    ``max_threads`` (thread strategy) is how many of the pool's 64 threads one function
    may leave running past their deadline (abandoned): with that many, its next call is
    refused at once with ``TimeoutExceededError`` (its ``reason`` says so), so one
    hanging dependency cannot starve the others. Calls running on time never count.
    ``metrics`` overrides the configured sink for this function (``timeouts_total``).

    On a generator or async generator function the budget covers the whole stream, from
    the first item asked for to its end, and ``per_item`` (seconds, only for streams)
    bounds each wait for the next item; an async producer is cancelled at the deadline,
    a sync one (run on the caller's thread, whatever the ``strategy``) is stopped when it
    sleeps on the configured clock past the deadline, or else closed when it next hands
    over an item or ends. The producer sees the deadline through ``remaining()``.
    """
    budget = Timeouts.get(seconds, parameter="seconds") if isinstance(seconds, str) else seconds
    budget = _validate.required_duration("seconds", budget, allow_zero=False)
    if strategy not in ("thread", "signal"):
        raise ConfigError("strategy", strategy, "'thread' or 'signal'")
    threads = _validate.integer("max_threads", max_threads, minimum=1)
    if threads > _POOL_SIZE:
        raise ConfigError("max_threads", max_threads, f"an integer from 1 to {_POOL_SIZE}")
    layer = _Timeout(budget, strategy, threads)
    layer.emitter = emitter_for(metrics)
    layer.per_item = _validate.duration("per_item", per_item, allow_zero=False, allow_none=True)
    return Decorator(layer)


class _Timeout(Layer):
    __slots__ = ("emitter", "max_threads", "per_item", "seconds", "shares", "strategy")
    kind = "timeout"

    def __init__(
        self, seconds: float, strategy: Strategy, max_threads: int = _DEFAULT_SHARE
    ) -> None:
        self.seconds = seconds
        self.strategy = strategy
        self.max_threads = max_threads
        self.shares: dict[str, Share] = {}  # per function name: the workers it holds
        self.emitter: Emitter | None = None
        self.per_item: float | None = None
        """The budget of each wait for a stream's next item (streams only)."""

    def expired(
        self, name: str, late: float | None = None, why: str | None = None
    ) -> TimeoutExceededError:
        """The error for a call that ran out of time, counted in ``timeouts_total``.

        ``late`` is how many seconds past the deadline the caller was released, kept
        when it is long enough to matter; ``why`` says why it was late, or why the call
        never ran.
        """
        # Counted with metrics off too, so the health report sees it.
        count(TIMEOUTS, (("policy", name),), emitter=self.emitter)
        error = TimeoutExceededError(name, self.seconds)
        if late is not None and late >= _NOTABLE:
            error.late_by = late
        if why is not None:
            error.reason = why
        if hub.active:  # listeners: built only when someone listens
            from .._runtime.events import TimeoutExceeded

            dispatch((), (TimeoutExceeded(name, self.seconds),))  # type: ignore[arg-type]  # listeners take any event
        return error

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {
            "layer": self.kind,
            "seconds": self.seconds,
            "strategy": self.strategy,
        }
        if self.max_threads != _DEFAULT_SHARE:
            described["max_threads"] = self.max_threads
        if self.per_item is not None:
            described["per_item"] = self.per_item
        return described

    def describe_for(self, form: str) -> dict[str, object]:
        """A sync call shows ``strategy`` and ``max_threads``, which bound it; a coroutine
        (cancelled by its event loop) and a stream (run on the consumer's thread, with
        ``per_item``) show neither."""
        described = self.describe()
        if form != CALL:
            del described["strategy"]
            described.pop("max_threads", None)
        return described

    def wrap_async(self, call: AsyncCall, name: str) -> AsyncCall:
        import asyncio  # here: only coroutine functions need it, and they load it anyway

        self._calls_take_no_per_item(name)
        layer, seconds = self, self.seconds
        state = _config.state
        # Inlined deadline bookkeeping and the loop's timer, as ``asyncio.timeout`` sets
        # it: this path is measured against a bare asyncio.timeout.
        get_deadline, set_deadline, reset_deadline = _deadline.get, _deadline.set, _deadline.reset
        running_loop, current_task = asyncio.get_running_loop, asyncio.current_task
        cancelled = asyncio.CancelledError

        async def timed(*args: Any, **kwargs: Any) -> Any:
            clock = state.clock
            if clock is not SYSTEM_CLOCK:
                return await _clocked_async(layer, clock, name, call, args, kwargs)
            loop = running_loop()
            task = current_task(loop)
            if task is None:  # a coroutine driven by hand: asyncio.timeout says why not
                return await _clocked_async(layer, clock, name, call, args, kwargs)
            when = loop.time() + seconds
            expiry = _Expiry(task)
            handle = loop.call_at(when, expiry)
            cancelling = task.cancelling()
            parent = get_deadline()
            token = set_deadline(when if parent is None or when < parent else parent)
            try:
                result = await call(*args, **kwargs)
            except cancelled as error:
                if expiry.fired and task.uncancel() <= cancelling:
                    raise layer.expired(name) from _timed_out(error)
                raise
            except BaseException as error:
                if expiry.fired and task.uncancel() <= cancelling:
                    _mark_timed_out(error)  # the body ended its own way: its error stands
                raise
            finally:
                handle.cancel()
                reset_deadline(token)
            if expiry.fired:
                task.uncancel()
            return result

        return timed

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        self._calls_take_no_per_item(name)
        if self.strategy == "signal":
            return self._wrap_signal(call, name)
        layer, seconds = self, self.seconds
        wait = min(seconds, TIMEOUT_MAX)  # a longer wait overflows; ~292 years is enough
        share = self.shares.setdefault(name, Share(min(self.max_threads, _pool.max_workers)))
        state = _config.state
        get_deadline, set_deadline, reset_deadline = _deadline.get, _deadline.set, _deadline.reset
        monotonic, run = time.monotonic, _pool.run
        abandoned, expired, refused, crowded = ABANDONED, EXPIRED, REFUSED, CROWDED

        def timed(*args: Any, **kwargs: Any) -> Any:
            clock = state.clock
            if clock is not SYSTEM_CLOCK:
                return _clocked_thread(layer, clock, share, name, call, args, kwargs)
            when = monotonic() + seconds
            parent = get_deadline()
            token = set_deadline(when if parent is None or when < parent else parent)
            try:
                result = run(copy_context(), call, args, kwargs, wait, share)
            finally:
                reset_deadline(token)
            if (
                monotonic() > when
                or result is abandoned
                or result is expired
                or result is refused
                or result is crowded
            ):
                raise layer.unfinished(name, result, when)
            return result

        return timed

    def unfinished(self, name: str, result: Any, when: float) -> TimeoutExceededError:
        """The error for a thread-strategy call that did not come back by its deadline."""
        if result is REFUSED:
            return self.expired(name, None, _refused(self.max_threads))
        if result is CROWDED:
            return self.expired(name, None, _crowded(_pool))
        late = time.monotonic() - when
        if result is EXPIRED:
            return self.expired(name, late, _QUEUED)
        # abandoned, or a result that came back late
        return self.expired(name, late, _HELD_GIL if late >= _NOTABLE else None)

    def _wrap_signal(self, call: AnyCall, name: str) -> AnyCall:
        layer, seconds = self, self.seconds
        state = _config.state
        get_deadline, set_deadline, reset_deadline = _deadline.get, _deadline.set, _deadline.reset
        arm, disarm, monotonic = _alarm.arm, _alarm.disarm, time.monotonic
        on_main_thread, fired_type = _alarm.on_main_thread, _alarm.AlarmFired
        body = call if isinstance(call, FunctionType) else _in_python_frame(call)
        _alarm.protect(body=body.__code__)  # an alarm in it (or below) is the body's

        # Everything here but ``body`` is bookkeeping: an alarm arriving in this frame is
        # deferred by the handler (see ``_alarm``), never raised between two of its lines.
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not on_main_thread():
                raise ResilienceError(
                    f"timeout(strategy='signal') on {name} needs the main thread: signals "
                    "are only delivered there; use strategy='thread' in other threads"
                )
            clock = state.clock
            if clock is not SYSTEM_CLOCK:
                return _clocked_signal(layer, clock, name, body, args, kwargs)
            when = monotonic() + seconds
            parent = get_deadline()
            token = set_deadline(when if parent is None or when < parent else parent)
            try:
                arm(when, seconds)
                result = body(*args, **kwargs)
            except fired_type as fired:
                if fired.when != when:
                    raise  # an enclosing call's deadline: its wrapper converts it
                raise layer.expired(name, fired.late, _in_c(fired.late)) from None
            finally:
                late = disarm(when)
                reset_deadline(token)
            if late is not None:  # the alarm came as the call returned: not a success
                raise layer.expired(name, late, _in_c(late))
            return result

        _alarm.protect(timed.__code__)
        return timed

    # Generator functions: the stream forms live in ``stream``.

    def wrap_stream_sync(self, call: StreamCall, name: str) -> StreamCall:
        return timeout_stream_sync(self, call, name)

    def wrap_stream_async(self, call: AsyncStreamCall, name: str) -> AsyncStreamCall:
        return timeout_stream_async(self, call, name)

    def _calls_take_no_per_item(self, name: str) -> None:
        if self.per_item is not None:
            raise ConfigError(
                "per_item", self.per_item, f"None: {name} is not a generator function"
            )


def _in_python_frame(call: AnyCall) -> FunctionType:
    """Give a C callable a Python frame, so an alarm during it is raised in the body."""

    def body(*args: Any, **kwargs: Any) -> Any:
        return call(*args, **kwargs)

    return cast(FunctionType, body)


# Under a clock other than the system clock (a FakeClock, a user's clock) the deadline is
# a time on that clock: the timeout fires when that clock reaches it, and a call seen to
# come back after it is a timeout too. A FakeClock's sleep that reaches the deadline stops
# there (DeadlineReached). A clock with an ``autojump`` (the pytest plugin's fake_clock)
# jumps to the deadline of a sync call that spent that many real seconds without using
# the CPU (waiting on something that will not answer in the test), as the plugin's event
# loop jumps to the next timer when every task waits; a call that keeps computing is let
# run. A clock that cannot be moved (no ``advance``) is taken to be real time.

_SLICE = 0.005  # real seconds between two looks at a clock another thread may move
_START = 1.0  # real seconds a body may take to start before its call is taken to hang
_BUSY = 0.02  # a body using this share of a window's real time on the CPU is working


def _clocked_thread(
    layer: _Timeout, clock: Any, share: Share, name: str, call: AnyCall, args: Any, kwargs: Any
) -> Any:
    own = clock.monotonic() + layer.seconds
    token = _deadline.enter(own)
    try:
        body = _Tracked(call)
        job = _pool.submit(
            copy_context(), body, args, kwargs, min(layer.seconds, TIMEOUT_MAX), share
        )
        if job is REFUSED or job is CROWDED:
            result = job
        else:
            try:
                finished = _wait_on_clock(clock, job.done, own, body)
            except BaseException:  # KeyboardInterrupt while waiting: the call is given up
                _pool.give_up(job)
                raise
            result = _pool.collect(job, finished)
    except _deadline.DeadlineReached as reached:
        if reached.when < own:
            raise  # an enclosing deadline
        raise layer.expired(name) from None
    finally:
        _deadline.leave(token)
    if result is REFUSED:
        raise layer.expired(name, None, _refused(layer.max_threads))
    if result is CROWDED:
        raise layer.expired(name, None, _crowded(_pool))
    if result is EXPIRED:
        raise layer.expired(name, _late(clock, own), _QUEUED)
    if result is ABANDONED or clock.monotonic() > own:
        raise layer.expired(name, _late(clock, own))
    return result


class _Tracked:
    """Runs the call and notes the thread it runs on, whose activity the caller reads."""

    __slots__ = ("call", "native", "thread")

    def __init__(self, call: AnyCall) -> None:
        self.call = call
        self.thread: int | None = None
        self.native: int | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.thread = threading.get_ident()
        self.native = threading.get_native_id()
        return self.call(*args, **kwargs)


def _active_seconds(thread: int | None, native: int | None) -> float | None:
    """Seconds ``thread`` spent on a CPU or waiting for one (runnable, but the machine was
    busy) so far; CPU time alone where the platform keeps no scheduler statistics, and
    ``None`` where it cannot say. A thread blocked on a lock or a socket adds to neither."""
    if native is not None:
        try:
            with open(f"/proc/self/task/{native}/schedstat", "rb") as stats:
                on_cpu, runnable = stats.read().split()[:2]
            return (int(on_cpu) + int(runnable)) / 1e9
        except (OSError, ValueError):
            pass
    if thread is None:
        return None
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread))
    except (AttributeError, OSError, OverflowError, ValueError):
        return None


def _wait_on_clock(clock: Any, done: Any, own: float, body: _Tracked) -> bool:
    """Wait for ``done`` until ``clock`` reaches ``own``; true when it was released."""
    if not hasattr(clock, "advance"):  # real time: wait on it in real time
        while True:
            left = own - clock.monotonic()
            if left <= 0:
                return bool(done.acquire(False))
            if done.acquire(True, min(left, TIMEOUT_MAX)):
                return True
    jump: float | None = getattr(clock, "autojump", None)
    window = time.monotonic()
    active = _active_seconds(body.thread, body.native)
    while True:
        left = own - clock.monotonic()
        if left <= 0:
            return bool(done.acquire(False))
        if done.acquire(True, min(left, _SLICE)):
            return True
        if jump is None:
            continue
        if active is None:
            active = _active_seconds(body.thread, body.native)
            if active is not None:  # it has just started: its first window starts now
                window = time.monotonic()
                continue
            if body.thread is None and time.monotonic() - window < max(jump, _START):
                continue  # not started yet: a busy machine, or queued behind hung calls
        if time.monotonic() - window >= jump:
            now = _active_seconds(body.thread, body.native)
            if now is None and active is not None:  # its thread has just ended: look again
                active, window = None, time.monotonic()
                continue
            if now is None or active is None or now - active < jump * _BUSY:
                if done.acquire(False):
                    return True  # it finished as the window closed
                _jump(clock, own)  # neither running nor runnable for a whole window: it hangs
                return bool(done.acquire(False))
            window, active = time.monotonic(), now  # it works: let it run another window


def _jump(clock: Any, own: float) -> None:
    now = clock.monotonic()
    if now < own:
        clock.advance(own - now)


def _late(clock: Any, own: float) -> float:
    late = clock.monotonic() - own
    return late if late > 0.0 else 0.0


class _Patience:
    """Asked by the alarm handler when a window ends: more real seconds for a body on
    this (the main) thread that was running or runnable during the window, else ``None``."""

    __slots__ = ("active", "native", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self.native = threading.get_native_id()
        self.active = self._now()

    def _now(self) -> float:
        active = _active_seconds(None, self.native)
        return time.thread_time() if active is None else active

    def __call__(self) -> float | None:
        now = self._now()
        used, self.active = now - self.active, now
        return self.window if used >= self.window * _BUSY else None


def _clocked_signal(
    layer: _Timeout, clock: Any, name: str, body: AnyCall, args: Any, kwargs: Any
) -> Any:
    own = clock.monotonic() + layer.seconds
    jump: float | None = getattr(clock, "autojump", None)
    real = layer.seconds if jump is None else min(layer.seconds, jump)
    when = time.monotonic() + real
    token = _deadline.enter(own)
    try:
        if jump is not None:
            _alarm.patient(when, _Patience(real))
        _alarm.arm(when, real)
        result = body(*args, **kwargs)
    except _alarm.AlarmFired as fired:
        if fired.when != when:
            raise
        if jump is not None:
            _jump(clock, own)  # no CPU used for autojump real seconds: hanging
        raise layer.expired(name, _late(clock, own)) from None
    except _deadline.DeadlineReached as reached:
        if reached.when < own:
            raise
        raise layer.expired(name) from None
    finally:
        late = _alarm.disarm(when)
        if jump is not None:
            _alarm.patient(when, None)
        _deadline.leave(token)
    if late is not None or clock.monotonic() > own:
        raise layer.expired(name, _late(clock, own))
    return result


class _Expiry:
    """The loop's timer callback of one async call: cancels the call's task at its
    deadline and remembers that it did (as ``asyncio.timeout`` does, without its context
    manager's cost on every call)."""

    __slots__ = ("fired", "task")

    def __init__(self, task: Any) -> None:
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()


def _timed_out(cancelled: BaseException) -> TimeoutError:
    """The ``TimeoutError`` ``asyncio.timeout`` would raise for ``cancelled``."""
    error = TimeoutError()
    error.__cause__ = cancelled
    return error


def _mark_timed_out(error: BaseException) -> None:
    """Show, in the context chain of an error a body raised while handling the timeout's
    cancellation, that the cancellation was a timeout (``asyncio.timeout`` does so from
    Python 3.13): a ``TimeoutError`` goes between the error and the cancellation."""
    import asyncio

    grouped = error.exceptions if isinstance(error, BaseExceptionGroup) else ()
    for raised in (error, *grouped):
        seen = {id(raised)}  # a chain someone made into a loop ends here
        while raised.__context__ is not None and id(raised.__context__) not in seen:
            context = raised.__context__
            if isinstance(context, TimeoutError) and isinstance(
                context.__cause__, asyncio.CancelledError
            ):
                break  # marked already (a group and the error it holds share a chain)
            if isinstance(context, asyncio.CancelledError):
                raised.__context__ = _timed_out(context)
                raised.__context__.__context__ = context
                break
            seen.add(id(context))
            raised = context


async def _clocked_async(
    layer: _Timeout, clock: Any, name: str, call: AsyncCall, args: Any, kwargs: Any
) -> Any:
    import asyncio

    own = clock.monotonic() + layer.seconds
    token = _deadline.enter(own)
    budget = asyncio.timeout(layer.seconds)  # on the loop's clock (virtual under fake_clock)
    try:
        async with budget:
            result = await call(*args, **kwargs)
    except TimeoutError as error:
        if budget.expired():
            raise layer.expired(name) from error
        raise
    except _deadline.DeadlineReached as reached:
        if reached.when < own:
            raise
        raise layer.expired(name) from None
    finally:
        _deadline.leave(token)
    if clock.monotonic() > own:
        raise layer.expired(name, _late(clock, own))
    return result


_alarm.protect(_clocked_signal.__code__)
