"""A child process for the outbox crash tests, killed with SIGKILL at random points.

python crash_worker.py enqueue URL FIRST COUNT   stores items k<FIRST>...; prints each
                                                  key once enqueue has returned
python crash_worker.py drain URL LOG              delivers items by appending their
                                                  keys to LOG (fsync'd), printing each
"""

from __future__ import annotations

import os
import sys

from resilient.outbox import Item, Outbox


def enqueue(url: str, first: int, count: int) -> None:
    outbox = Outbox(url)
    for n in range(first, first + count):
        key = f"k{n}"
        group = f"g{n % 10}" if n % 2 else None  # half in groups, half free
        outbox.enqueue("work", {"n": n, "pad": "x" * (n % 7) * 100}, key=key, group=group)
        print(key, flush=True)


def drain(url: str, log: str, lease: float) -> None:
    outbox = Outbox(url, lease=lease)
    with open(log, "a", encoding="ascii") as side_effects:

        @outbox.handler("work")
        def deliver(item: Item) -> None:
            side_effects.write(item.key + "\n")
            side_effects.flush()
            os.fsync(side_effects.fileno())
            print(item.key, flush=True)

        outbox.drain()
    print("drained", flush=True)


if __name__ == "__main__":
    mode, url, *rest = sys.argv[1:]
    if mode == "enqueue":
        enqueue(url, int(rest[0]), int(rest[1]))
    else:
        drain(url, rest[0], float(rest[1]))
