"""Static checks (mypy only, never run): operating, reconfiguring and listening to a breaker."""

from __future__ import annotations

from datetime import timedelta
from typing import assert_type

import resilient
from resilient import BreakerConfig, BreakerEvent, CircuitBreaker, LastFailure

b = CircuitBreaker("typing-ops")
b.half_open()
b.force_open(for_=30)
b.force_open(for_=timedelta(minutes=5))
b.force_open()
assert_type(b.last_failure, LastFailure | None)
assert_type(b.reconfigure(failure_threshold=3), BreakerConfig)
assert_type(b.reconfigure(BreakerConfig.critical, reset_timeout=10), BreakerConfig)
assert_type(resilient.reload_policies(), dict[str, resilient.Policy])
resilient.configure(breaker_defaults=BreakerConfig(failure_threshold=2, error_on_trip="open"))
assert_type(resilient.configuration().breaker_defaults, BreakerConfig | None)


def heard(event: BreakerEvent) -> None:
    if isinstance(event, resilient.CallRecorded):
        assert_type(event.error, BaseException | None)
    elif isinstance(event, resilient.CallAdmitted):
        assert_type(event.probe, bool)


resilient.add_listener(heard, serial=True, before_call=True, created=True)
b.add_listener(heard, serial=True, before_call=True)
BreakerConfig(error_on_trip="explode")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
