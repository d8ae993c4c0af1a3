"""``python -m resilient demo``: watch the client and the decorators ride out a bad network."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resilient", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="run a flaky HTTP service on loopback and watch the client handle it",
        description="Start a flaky lesson service on 127.0.0.1 (latency spikes, a 5xx "
        "burst, a captive portal, an outage, recovery) and drive the resilient client "
        "against it, printing retries, fallbacks, breaker states, degradation and health.",
    )
    demo.add_argument("--duration", type=float, default=20.0, help="seconds to run (default 20)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the simulated network")
    demo.add_argument(
        "--statsd", metavar="HOST:PORT", help="also send the metrics to this StatsD daemon"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run

        return run(duration=args.duration, seed=args.seed, statsd=args.statsd)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
