"""The ``resilient`` command (also ``python -m resilient``): the demo and a service's status."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

_DESCRIPTION = """\
The command-line tools of the resilient library: a live demonstration, and the status of
a running service. "COMMAND --help" describes each."""

_STATUS = """\
Fetch the status of a running service and print its degradation level, its health and
its circuit breakers as a table.

URL is the JSON state of a resilient status page (for example
http://localhost:8000/status/state; the page's own address, /status, works too) or a
resilient health endpoint (http://localhost:8000/health). Breaker names are shown to
operators only: give the token the service was set up with (--token, or the
RESILIENT_TOKEN environment variable); without it, the counts are printed.

Exits with 0 once the status is printed, 1 when the URL gives none."""


def main(argv: Sequence[str] | None = None) -> int:
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    parser = argparse.ArgumentParser(
        # As it was run: the ``resilient`` console script, or ``python -m resilient``.
        prog="python -m resilient" if program in ("", "__main__.py", "-c") else program,
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    status = commands.add_parser(
        "status",
        help="print the breakers and the degradation level of a running service",
        description=_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("url", metavar="URL", help="the status state or health endpoint")
    status.add_argument(
        "--token",
        default=os.environ.get("RESILIENT_TOKEN"),
        help="the operator token (default: $RESILIENT_TOKEN)",
    )
    status.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run

        return run(duration=args.duration, seed=args.seed, statsd=args.statsd)
    if args.command == "status":
        from ._status_cli import main as status_main

        return status_main(args.url, token=args.token, timeout=args.timeout, out=sys.stdout)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
