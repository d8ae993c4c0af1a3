"""Foundation scenarios: retry, timeout, stacking and import time.

Peers run with their documented decorators, configured as close as possible
to ours.  Optional packages are imported inside the factories, so a missing
one only turns its row into "not installed".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any

from _harness import Impl, Target, TimedScenario, register
from _importtime import ImportTimeScenario

Fn = Callable[[], Any]

# --------------------------------------------------------------------------
# targets of the benchmarked decorators


def plain() -> int:
    return 1


async def aplain() -> int:
    return 1


def make_flaky() -> Fn:
    """A function raising ValueError on every odd call, returning 1 otherwise.

    Each retried outer call therefore costs exactly one failure and one
    success.  Every implementation gets its own counter.
    """
    calls = 0

    def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls & 1:
            raise ValueError("odd call")
        return 1

    return flaky


def _stamina() -> Any:
    """Import stamina in its production configuration, minus log output.

    Retrying stays active and test mode off; the default instrumentation
    (a WARNING log record per scheduled retry) is kept but sent nowhere so
    it does not flood the terminal.
    """
    import stamina

    stamina.set_active(True)
    stamina.set_testing(False)
    logger = logging.getLogger("stamina")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return stamina


# --------------------------------------------------------------------------
# 1. retry, success path


def _r1_ours() -> Fn:
    import resilient

    return resilient.retry(attempts=3, initial_delay=0.0)(plain)


def _r1_tenacity() -> Fn:
    import tenacity

    return tenacity.retry(stop=tenacity.stop_after_attempt(3))(plain)


def _r1_backoff() -> Fn:
    import backoff

    return backoff.on_exception(backoff.expo, Exception, max_tries=3)(plain)


def _r1_stamina() -> Fn:
    return _stamina().retry(on=Exception, attempts=3)(plain)


def _r1_pyresilience() -> Fn:
    from pyresilience import RetryConfig, resilient

    return resilient(retry=RetryConfig(max_attempts=3))(plain)


# --------------------------------------------------------------------------
# 2. retry, one failure then success, zero wait


def _r2_bare() -> Fn:
    flaky = make_flaky()

    def handwritten() -> int:
        try:
            return flaky()
        except ValueError:
            return flaky()

    return handwritten


def _r2_ours() -> Fn:
    import resilient

    return resilient.retry(attempts=3, initial_delay=0.0, jitter=0.0)(make_flaky())


def _r2_tenacity() -> Fn:
    import tenacity

    return tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_none(),
        retry=tenacity.retry_if_exception_type(ValueError),
    )(make_flaky())


def _r2_backoff() -> Fn:
    import backoff

    return backoff.on_exception(backoff.constant, ValueError, max_tries=3, interval=0, jitter=None)(
        make_flaky()
    )


def _r2_stamina() -> Fn:
    return _stamina().retry(on=ValueError, attempts=3, wait_initial=0, wait_max=0, wait_jitter=0)(
        make_flaky()
    )


def _r2_pyresilience() -> Fn:
    from pyresilience import RetryConfig, resilient

    config = RetryConfig(max_attempts=3, delay=0.0, jitter=False, retry_on=(ValueError,))
    return resilient(retry=config)(make_flaky())


# --------------------------------------------------------------------------
# 3-5. timeouts


def _t_async_ours() -> Fn:
    import resilient

    return resilient.timeout(10.0)(aplain)


async def _t_async_reference() -> int:
    async with asyncio.timeout(10.0):
        return await aplain()


# Module-level pool, as an application would keep one; threads start lazily.
_EXECUTOR = concurrent.futures.ThreadPoolExecutor(4)


def _t_thread_reference() -> int:
    return _EXECUTOR.submit(plain).result(timeout=10.0)


def _t_thread_ours() -> Fn:
    import resilient

    return resilient.timeout(10.0, strategy="thread")(plain)


def _t_signal_ours() -> Fn:
    import resilient

    return resilient.timeout(10.0, strategy="signal")(plain)


# --------------------------------------------------------------------------
# 6. stacking


def _s_timeout_only() -> Fn:
    import resilient

    return resilient.timeout(10.0)(aplain)


def _s_retry_over_timeout() -> Fn:
    import resilient

    return resilient.retry(attempts=3, initial_delay=0.0)(resilient.timeout(10.0)(aplain))


def _s_retry_only() -> Fn:
    import resilient

    return resilient.retry(attempts=3, initial_delay=0.0)(plain)


def _s_retry_over_retry() -> Fn:
    import resilient

    inner = resilient.retry(attempts=3, initial_delay=0.0)(plain)
    return resilient.retry(attempts=3, initial_delay=0.0)(inner)


# --------------------------------------------------------------------------
# registration


def _bare(fn: Fn) -> Impl:
    return Impl("bare", "bare", lambda: fn)


register(
    TimedScenario(
        "retry success path",
        [
            _bare(plain),
            Impl("resilient", "ours", _r1_ours),
            Impl("tenacity", "peer", _r1_tenacity),
            Impl("backoff", "peer", _r1_backoff),
            Impl("stamina", "peer", _r1_stamina),
            Impl("pyresilience", "peer", _r1_pyresilience),
        ],
        Target("fastest_peer", 0.3),
    ),
    TimedScenario(
        "retry one failure, zero wait",
        [
            Impl("bare (try/except)", "bare", _r2_bare),
            Impl("resilient", "ours", _r2_ours),
            Impl("tenacity", "peer", _r2_tenacity),
            Impl("backoff", "peer", _r2_backoff),
            Impl("stamina", "peer", _r2_stamina),
            Impl("pyresilience", "peer", _r2_pyresilience),
        ],
        Target("absolute", 4000.0),
    ),
    TimedScenario(
        "async timeout success path",
        [
            _bare(aplain),
            Impl("asyncio.timeout", "reference", lambda: _t_async_reference),
            Impl("resilient", "ours", _t_async_ours),
        ],
        Target("reference", 1.1),
        is_async=True,
    ),
    TimedScenario(
        "sync timeout thread",
        [
            _bare(plain),
            Impl("ThreadPoolExecutor", "reference", lambda: _t_thread_reference),
            Impl("resilient", "ours", _t_thread_ours),
        ],
        Target("reference", 0.5),
    ),
    TimedScenario(
        "sync timeout signal",
        [_bare(plain), Impl("resilient", "ours", _t_signal_ours)],
        Target("absolute", 2000.0),
    ),
    TimedScenario(
        "stack retry over timeout (async)",
        [
            _bare(aplain),
            Impl("timeout", "reference", _s_timeout_only),
            Impl("retry(timeout)", "ours", _s_retry_over_timeout),
        ],
        Target("reference", 1.2),
        is_async=True,
    ),
    TimedScenario(
        "stack retry over retry (sync)",
        [
            _bare(plain),
            Impl("retry", "reference", _s_retry_only),
            Impl("retry(retry)", "ours", _s_retry_over_retry),
        ],
        Target("reference", None),
        notes=["informational: no target set for the sync stack"],
    ),
    ImportTimeScenario(
        "import time",
        [("resilient", "ours"), ("stamina", "reference"), ("tenacity", "peer"), ("wrapt", "peer")],
        Target("reference", 1.0),
        watch=("wrapt", "asyncio", "tenacity", "statsd", "redis", "httpx"),
    ),
)
