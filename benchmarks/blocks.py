"""The block form of retrying, ``for attempt in ...: with attempt:``, on its success path.

Ours is ``resilient.retrying``; the peers are tenacity's ``Retrying`` and stamina's
``retry_context``. "made once" builds the retrying object once and loops over it on
every call (how ``retrying`` and ``tenacity.Retrying`` are meant to be kept); "made
each call" builds it inside the call, as a loop written inline does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from _harness import Impl, Target, TimedScenario, register

Fn = Callable[[], Any]


def plain() -> int:
    return 1


def _ours_once() -> Fn:
    import resilient

    block = resilient.retrying(attempts=3, initial_delay=0.0)

    def call() -> int:
        for attempt in block:
            with attempt:
                return 1
        return 0

    return call


def _ours_each() -> Fn:
    import resilient

    def call() -> int:
        for attempt in resilient.retrying(attempts=3, initial_delay=0.0):
            with attempt:
                return 1
        return 0

    return call


def _tenacity_once() -> Fn:
    import tenacity

    block = tenacity.Retrying(stop=tenacity.stop_after_attempt(3))

    def call() -> int:
        for attempt in block:
            with attempt:
                return 1
        return 0

    return call


def _tenacity_each() -> Fn:
    import tenacity

    def call() -> int:
        for attempt in tenacity.Retrying(stop=tenacity.stop_after_attempt(3)):
            with attempt:
                return 1
        return 0

    return call


def _stamina_each() -> Fn:
    import stamina

    stamina.set_active(True)
    stamina.set_testing(False)
    logger = logging.getLogger("stamina")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False

    def call() -> int:
        for attempt in stamina.retry_context(on=Exception, attempts=3):
            with attempt:
                return 1
        return 0

    return call


register(
    TimedScenario(
        "retry block success path (made once)",
        [
            Impl("bare", "bare", lambda: plain),
            Impl("resilient.retrying", "ours", _ours_once),
            Impl("tenacity.Retrying", "peer", _tenacity_once),
        ],
        Target("fastest_peer", 0.3),
    ),
    TimedScenario(
        "retry block success path (made each call)",
        [
            Impl("bare", "bare", lambda: plain),
            Impl("resilient.retrying", "ours", _ours_each),
            Impl("tenacity.Retrying", "peer", _tenacity_each),
            Impl("stamina.retry_context", "peer", _stamina_each),
        ],
        Target("fastest_peer", None),
    ),
)
