"""Timing helpers and the scenario registry shared by all benchmark modules.

A benchmark module (``benchmarks/<name>.py``, picked up automatically by
``run.py``) builds :class:`TimedScenario` objects (or subclasses of
:class:`Scenario` for anything that is not a per-call timing) and passes them
to :func:`register`.

Timing model: a callable is called ``n`` times in a plain ``for`` loop (sync)
or awaited ``n`` times in a coroutine running inside one event loop (async).
``n`` is auto-calibrated (timeit's ``autorange``) so that one repeat lasts at
least ``min_time`` seconds; the reported figure is the median ns/call over
``repeats`` repeats.  Within a scenario the repeats of its rows are
interleaved (A, B, C, A, B, C, ...) so that a burst of load from elsewhere on
the machine hits all rows alike.  Loop overhead is *not* subtracted: compare
against the ``bare`` row, which pays the same overhead.  The garbage collector
is disabled during a repeat, as :mod:`timeit` does.

Custom scenarios can use :func:`time_sync` / :func:`time_async` directly.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Role = Literal["bare", "ours", "peer", "reference"]
SyncFn = Callable[[], Any]
AsyncFn = Callable[[], Awaitable[Any]]

EXPECTED = 1  # every benchmarked callable returns this
REPO_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------
# options and results


@dataclass(frozen=True)
class Options:
    min_time: float = 0.1  # seconds per repeat (lower bound)
    repeats: int = 5
    import_runs: int = 7  # fresh interpreters per module in import benchmarks


@dataclass
class Timing:
    median_ns: float
    min_ns: float
    n: int  # calls per repeat
    repeats_ns: list[float]


@dataclass
class Row:
    impl: str
    role: Role
    ns: float | None = None  # the figure shown (median ns/call)
    min_ns: float | None = None
    n: int | None = None
    repeats_ns: list[float] = field(default_factory=list)
    status: str = "ok"  # "ok", "not installed", "error: ..."

    @property
    def ok(self) -> bool:
        return self.ns is not None and self.status == "ok"


@dataclass
class TargetResult:
    text: str
    status: Literal["PASS", "FAIL", "SKIP", "INFO"]
    ref_impl: str | None = None  # the row "ours" was compared against
    ref_ns: float | None = None


@dataclass
class ScenarioResult:
    name: str
    rows: list[Row]
    target: TargetResult | None = None
    notes: list[str] = field(default_factory=list)

    def row(self, role: Role) -> Row | None:
        return next((r for r in self.rows if r.role == role), None)


# --------------------------------------------------------------------------
# timing

Looper = Callable[[int], int]  # run the callable n times, return elapsed ns


def _sync_loop(fn: SyncFn, n: int) -> int:
    it = range(n)
    t0 = time.perf_counter_ns()
    for _ in it:
        fn()
    return time.perf_counter_ns() - t0


async def _async_loop(fn: AsyncFn, n: int) -> int:
    it = range(n)
    t0 = time.perf_counter_ns()
    for _ in it:
        await fn()
    return time.perf_counter_ns() - t0


def sync_looper(fn: SyncFn) -> Looper:
    """Check ``fn()`` returns :data:`EXPECTED`, return its timing loop."""
    _check(fn())
    return lambda n: _sync_loop(fn, n)


def async_looper(fn: AsyncFn, loop: asyncio.AbstractEventLoop) -> Looper:
    """Like :func:`sync_looper`; the coroutine loop runs inside ``loop``."""
    _check(loop.run_until_complete(fn()))
    return lambda n: loop.run_until_complete(_async_loop(fn, n))


def _check(result: object) -> None:
    if result != EXPECTED:
        raise AssertionError(f"returned {result!r}, expected {EXPECTED!r}")


def calibrate(looper: Looper, min_time: float) -> int:
    """Smallest n in 1, 2, 5, 10, 20... whose loop lasts >= min_time (autorange)."""
    min_ns = min_time * 1e9
    base = 1
    while True:
        for n in (base, 2 * base, 5 * base):
            if looper(n) >= min_ns:
                return n
        base *= 10


def sample(looper: Looper, n: int) -> float:
    """One repeat: ns/call over n calls, garbage collector off."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return looper(n) / n
    finally:
        if was_enabled:
            gc.enable()


def measure(looper: Looper, opts: Options) -> Timing:
    n = calibrate(looper, opts.min_time)
    samples = [sample(looper, n) for _ in range(opts.repeats)]
    return Timing(statistics.median(samples), min(samples), n, samples)


def time_sync(fn: SyncFn, opts: Options) -> Timing:
    return measure(sync_looper(fn), opts)


def time_async(fn: AsyncFn, opts: Options) -> Timing:
    loop = asyncio.new_event_loop()
    try:
        return measure(async_looper(fn, loop), opts)
    finally:
        loop.close()


# --------------------------------------------------------------------------
# targets


@dataclass(frozen=True)
class Target:
    """What a scenario must achieve.

    kind:
      * ``"fastest_peer"``: ours <= limit x the fastest installed peer
      * ``"reference"``:    ours <= limit x the ``reference`` row
      * ``"absolute"``:     ours <= limit ns/call

    ``limit=None`` makes the comparison informational (status INFO).
    """

    kind: Literal["fastest_peer", "reference", "absolute"]
    limit: float | None

    def describe(self) -> str:
        if self.kind == "absolute":
            return f"<= {self.limit:,.0f} ns" if self.limit is not None else "ns/call"
        what = "fastest peer" if self.kind == "fastest_peer" else "reference"
        return f"<= {self.limit:g}x {what}" if self.limit is not None else f"vs {what}"

    def evaluate(self, rows: list[Row]) -> TargetResult:
        ours = next((r for r in rows if r.role == "ours"), None)
        if ours is None or ours.ns is None or not ours.ok:
            why = ours.status if ours is not None else "missing"
            return TargetResult(f"{self.describe()}: ours {why}", "FAIL")
        if self.kind == "absolute":
            text = f"{self.describe()}: got {ours.ns:,.0f} ns"
            return TargetResult(text, self._status(ours.ns))
        if self.kind == "fastest_peer":
            peers = [r for r in rows if r.role == "peer" and r.ns is not None and r.ok]
            if not peers:
                return TargetResult(f"{self.describe()}: no peer installed", "SKIP")
            ref = min(peers, key=lambda r: r.ns or 0.0)
            label = f"fastest peer ({ref.impl})"
        else:
            found = next((r for r in rows if r.role == "reference"), None)
            if found is None or found.ns is None or not found.ok:
                why = found.status if found is not None else "missing"
                return TargetResult(f"{self.describe()}: reference {why}", "SKIP")
            ref = found
            label = f"reference ({ref.impl})"
        assert ref.ns is not None
        ratio = ours.ns / ref.ns
        bound = f"<= {self.limit:g}x " if self.limit is not None else "vs "
        text = f"{bound}{label}: ratio {ratio:.2f}x"
        return TargetResult(text, self._status(ratio), ref.impl, ref.ns)

    def _status(self, value: float) -> Literal["PASS", "FAIL", "INFO"]:
        if self.limit is None:
            return "INFO"
        return "PASS" if value <= self.limit else "FAIL"


# --------------------------------------------------------------------------
# scenarios


class Scenario:
    """Base class: anything with a name that can produce a ScenarioResult."""

    name: str

    def run(self, opts: Options) -> ScenarioResult:
        raise NotImplementedError


@dataclass
class Impl:
    """One row of a timed scenario.

    ``factory`` builds the callable to time (a zero-argument function, or an
    ``async def`` function for async scenarios).  Import optional packages
    *inside* the factory: an ``ImportError`` there shows "not installed".
    """

    name: str
    role: Role
    factory: Callable[[], Callable[[], Any]]


@dataclass
class TimedScenario(Scenario):
    name: str
    impls: list[Impl]
    target: Target | None = None
    is_async: bool = False
    notes: list[str] = field(default_factory=list)

    def run(self, opts: Options) -> ScenarioResult:
        """Time every impl, interleaving repeats (A, B, C, A, B, C, ...)."""
        rows = [Row(impl.name, impl.role) for impl in self.impls]
        loop = asyncio.new_event_loop() if self.is_async else None
        try:
            live: list[tuple[Row, Looper, int]] = []
            for impl, row in zip(self.impls, rows, strict=True):
                prepared = self._prepare(impl, row, loop, opts)
                if prepared is not None:
                    live.append((row, *prepared))
            for _ in range(opts.repeats):
                for row, looper, n in live:
                    if row.status != "ok":
                        continue  # failed in an earlier repeat
                    try:
                        row.repeats_ns.append(sample(looper, n))
                    except Exception as exc:
                        row.status = _error(exc)
        finally:
            if loop is not None:
                loop.close()
        for row, _, n in live:
            if row.status == "ok" and row.repeats_ns:
                row.ns = statistics.median(row.repeats_ns)
                row.min_ns, row.n = min(row.repeats_ns), n
        target = self.target.evaluate(rows) if self.target else None
        return ScenarioResult(self.name, rows, target, list(self.notes))

    def _prepare(
        self,
        impl: Impl,
        row: Row,
        loop: asyncio.AbstractEventLoop | None,
        opts: Options,
    ) -> tuple[Looper, int] | None:
        """Build, check and calibrate one impl; on failure set ``row.status``."""
        try:
            fn = impl.factory()
        except ImportError as exc:
            row.status = _error(exc) if impl.role == "ours" else "not installed"
            return None
        except Exception as exc:  # report, never crash
            row.status = _error(exc)
            return None
        try:
            looper = async_looper(fn, loop) if loop else sync_looper(fn)
            return looper, calibrate(looper, opts.min_time)
        except Exception as exc:
            row.status = _error(exc)
            return None


def _error(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}: {exc}"


REGISTRY: list[Scenario] = []


def register(*scenarios: Scenario) -> None:
    """Add scenarios to the global registry (in display order)."""
    REGISTRY.extend(scenarios)
