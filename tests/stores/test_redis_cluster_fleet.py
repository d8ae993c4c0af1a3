"""Real processes sharing one Redis Cluster: a fleet-wide threshold and exactly the
probes allowed fleet-wide, with 4 and 16 processes."""

from __future__ import annotations

import pytest
from redis_cluster import RedisCluster, missing
from redis_fleet import release_herd, run_workers, tripped
from redis_server import FLEET_THRESHOLD, unique_prefix

from resilient import BreakerMode

if missing() is None:
    from resilient.stores.redis import RedisStore

WAIT = 10.0


@pytest.mark.cluster
@pytest.mark.parametrize(("processes", "threads", "calls"), [(4, 2, 100), (16, 1, 40)])
def test_a_fleet_on_a_cluster_stops_calling_at_the_threshold(
    redis_cluster: RedisCluster,
    processes: int,
    threads: int,
    calls: int,
) -> None:
    """Processes x threads callers of a dead service, sharing a breaker on a cluster:
    the calls that reach it are the threshold plus at most one in flight per other
    caller, and no Redis error reaches any caller. (The stores' timeout is 0.5 s: a
    process starved of CPU by its 15 siblings would otherwise time out, go local by
    design, and count its own threshold.)"""
    results = run_workers(
        redis_cluster,
        unique_prefix(),
        "failing",
        str(threads),
        str(calls),
        "0.5",  # up to 16 busy processes on a small machine: no outage from our own load
        processes=processes,
    )
    reached = sum(r["reached"] for r in results)
    assert sum(r["other"] for r in results) == 0
    assert sum(r["reached"] + r["rejected"] for r in results) == processes * threads * calls
    assert FLEET_THRESHOLD <= reached <= FLEET_THRESHOLD + processes * threads - 1


@pytest.mark.cluster
def test_half_open_on_a_cluster_admits_exactly_the_probes_fleet_wide(
    redis_cluster: RedisCluster,
) -> None:
    """16 processes x 20 concurrent tasks meet a half-open breaker on a cluster: 3
    probes in all (half_open_max_calls), every other call rejected."""
    processes, callers = 16, 20
    prefix = unique_prefix()
    with RedisStore(redis_cluster.url, prefix=prefix) as store:
        tripper = tripped(store)
        assert tripper.snapshot().mode is BreakerMode.OPEN
        entered, results = release_herd(
            redis_cluster,
            tripper,
            prefix,
            callers,
            "0.5",  # 16 busy processes on a small machine: no outage from our own load
            processes=processes,
            settle=WAIT * 2,
        )
        assert entered == [3], [(r["reached"], r["reachable"]) for r in results]
        assert sum(r["reached"] for r in results) == 3
        assert sum(r["ok"] for r in results) == 3
        assert sum(r["rejected"] for r in results) == processes * callers - 3
        assert sum(r["other"] for r in results) == 0
