"""``python -m resilient demo``: see the decorators handle a flaky call."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resilient", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a short demonstration against a flaky call")
    demo.add_argument("--seed", type=int, default=7, help="seed of the simulated network")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run

        return run(seed=args.seed)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
