"""Real processes sharing one Redis: a fleet-wide threshold, exactly the probes allowed
fleet-wide, and a Redis that dies and comes back in the middle of a run."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

import pytest
from redis_fleet import PROCESSES, WAIT, release_herd, run_workers, tripped
from redis_server import FLEET_THRESHOLD, RedisServer, boom, eventually, unique_prefix
from strategies import BoomError

import resilient
from resilient import BreakerConfig, BreakerMode, CircuitBreaker, CircuitOpenError
from resilient.metrics import MemorySink


def test_a_fleet_stops_calling_at_the_threshold(redis_server: RedisServer) -> None:
    """4 processes x 2 threads x 100 calls to a dead service: the calls that reach it are
    the threshold plus at most one in flight per other caller."""
    threads = 2
    results = run_workers(redis_server, unique_prefix(), "failing", str(threads), "100")
    reached = sum(r["reached"] for r in results)
    assert sum(r["other"] for r in results) == 0
    assert sum(r["reached"] + r["rejected"] for r in results) == PROCESSES * threads * 100
    assert FLEET_THRESHOLD <= reached <= FLEET_THRESHOLD + PROCESSES * threads - 1


def test_half_open_admits_exactly_the_probes_fleet_wide(
    redis_server: RedisServer,
) -> None:
    """4 processes x 50 concurrent tasks meet a half-open breaker: 3 probes in all."""
    from resilient.stores.redis import RedisStore

    prefix = unique_prefix()
    with RedisStore(redis_server.url, prefix=prefix) as store:
        tripper = tripped(store)
        assert tripper.snapshot().mode is BreakerMode.OPEN
        entered, results = release_herd(
            redis_server, tripper, prefix, 50, "0.05", processes=PROCESSES, settle=WAIT
        )
        assert entered == [3]  # while every other task had its answer, 3 probes were in
        assert sum(r["reached"] for r in results) == 3
        assert sum(r["ok"] for r in results) == 3
        assert sum(r["rejected"] for r in results) == PROCESSES * 50 - 3
        assert sum(r["other"] for r in results) == 0
        # Three probe successes closed it, for everyone.
        assert eventually(lambda: tripper.snapshot().mode is BreakerMode.CLOSED)


def test_redis_killed_and_restarted_mid_run(
    own_redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Calls go on through a Redis crash and restart: no store error reaches a caller,
    errors are counted, one warning per outage, and the processes agree again after."""
    from resilient.stores.redis import RedisStore

    sink = MemorySink()
    resilient.configure(metrics=sink)
    prefix = unique_prefix()
    options: dict[str, Any] = {"prefix": prefix, "timeout": 0.05, "retry_interval": 0.05}
    config = BreakerConfig(failure_threshold=4, reset_timeout=0.05)
    stores = [RedisStore(own_redis_server.url, **options) for _ in range(2)]
    breakers = [CircuitBreaker("svc", config, store=s) for s in stores]
    unexpected: list[BaseException] = []
    stop = threading.Event()
    calls = [0, 0]

    def service() -> None:
        if random.random() < 0.3:
            raise BoomError

    def caller(k: int) -> None:
        while not stop.is_set():
            try:
                breakers[k].call(service)
            except (BoomError, CircuitOpenError):
                pass
            except BaseException as error:  # a store error would land here
                unexpected.append(error)
            calls[k] += 1
            time.sleep(0.0005)

    try:
        with caplog.at_level(logging.WARNING, logger="resilient"):
            threads = [threading.Thread(target=caller, args=(k,)) for k in range(2)]
            for thread in threads:
                thread.start()
            time.sleep(0.3)
            own_redis_server.kill()  # SIGKILL: a crash; nothing was saved
            time.sleep(0.3)
            during = list(calls)
            own_redis_server.start()  # same port, empty
            assert eventually(lambda: all(s.reachable for s in stores))
            time.sleep(0.2)
            stop.set()
            for thread in threads:
                thread.join(WAIT)
        assert unexpected == []
        assert all(n > 0 for n in during)  # calls went on during the outage
        assert sink.counter("store_errors_total") > 0
        warnings = [r for r in caplog.records if "store unreachable" in r.getMessage()]
        assert 1 <= len(warnings) <= len(stores)  # one per store and outage, not per call
        # Converged: a trip in one process is the other's state too.
        for _ in range(4):
            with pytest.raises((BoomError, CircuitOpenError)):
                breakers[0].call(boom)
        assert breakers[0].snapshot().mode is BreakerMode.OPEN
        assert eventually(lambda: breakers[1].snapshot()[:3] == breakers[0].snapshot()[:3])
    finally:
        stop.set()
        for store in stores:
            store.close()
