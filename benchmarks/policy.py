"""Policy scenarios: retry + circuit breaker + fallback declared together, success path.

Every stack allows 3 attempts with no wait, a consecutive-failure breaker and a
fallback answering 0 (so a fallback that wrongly answers fails the harness's check).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from _harness import Impl, Target, TimedScenario, register
from foundation import aplain, plain

Fn = Callable[[], Any]
FALLBACK = 0
_NOTE = "backoff+cb: backoff over circuitbreaker, in a hand-written try/except fallback"


def _ours(name: str, fn: Fn) -> Fn:
    import resilient
    from resilient._policy import policy

    config = resilient.BreakerConfig.standard.replace(failure_threshold=1_000_000)
    declared = policy(
        retry=resilient.retry(attempts=3, initial_delay=0.0, jitter=0.0),
        breaker=(name, config),
        fallback=FALLBACK,
    )
    return declared(fn)  # type: ignore[no-any-return]


def _pyresilience(fn: Fn) -> Fn:
    from pyresilience import CircuitBreakerConfig, FallbackConfig, RetryConfig, resilient

    return resilient(  # type: ignore[no-any-return]
        retry=RetryConfig(max_attempts=3, delay=0.0, jitter=False),
        circuit_breaker=CircuitBreakerConfig(),
        fallback=FallbackConfig(handler=FALLBACK),
    )(fn)


def _backoff_circuitbreaker(fn: Fn) -> Fn:
    """backoff over circuitbreaker, under a hand-written try/except fallback (neither has one)."""
    import backoff
    from circuitbreaker import CircuitBreaker

    retried = backoff.on_exception(
        backoff.constant, Exception, max_tries=3, interval=0, jitter=None
    )
    stacked = retried(CircuitBreaker()(fn))

    def guarded() -> Any:
        try:
            return stacked()
        except Exception:
            return FALLBACK

    async def aguarded() -> Any:
        try:
            return await stacked()
        except Exception:
            return FALLBACK

    return aguarded if inspect.iscoroutinefunction(fn) else guarded


def _hyx() -> Fn:
    """hyx's decorators stacked outermost first: fallback, retry, breaker."""
    from hyx.circuitbreaker import consecutive_breaker
    from hyx.fallback import fallback
    from hyx.retry import retry

    async def answer(error: BaseException, *args: Any, **kwargs: Any) -> int:
        return FALLBACK

    # hyx counts retries, not attempts: attempts=2 is 3 calls in all.
    guarded = consecutive_breaker()(aplain)
    return fallback(answer)(retry(attempts=2, backoff=0.0)(guarded))  # type: ignore[no-any-return]


register(
    TimedScenario(
        "policy stack success (sync)",
        [
            Impl("bare", "bare", lambda: plain),
            Impl("resilient policy", "ours", lambda: _ours("bench-policy", plain)),
            Impl("pyresilience", "reference", lambda: _pyresilience(plain)),
            Impl("backoff+cb", "peer", lambda: _backoff_circuitbreaker(plain)),
        ],
        Target("reference", 0.3),
        notes=[_NOTE],
    ),
    TimedScenario(
        "policy stack success (async)",
        [
            Impl("bare", "bare", lambda: aplain),
            Impl("resilient policy", "ours", lambda: _ours("bench-policy-async", aplain)),
            Impl("hyx", "reference", _hyx),
            Impl("pyresilience", "peer", lambda: _pyresilience(aplain)),
            Impl("backoff+cb", "peer", lambda: _backoff_circuitbreaker(aplain)),
        ],
        Target("reference", 0.3),
        is_async=True,
        notes=[_NOTE],
    ),
)
