"""``collect()``: a full garbage collection that surely ran, for tests that check what the
collector finalizes.

``gc.collect()`` returns at once, collecting nothing, while another thread is collecting
(a worker of the timeout pool, a store's listener); a test asserting right after it would
fail now and then. ``collect()`` repeats it until a collection has run on this thread.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

__all__ = ["collect"]


def collect(tries: int = 1000) -> None:
    """Run ``gc.collect()`` until one full collection ran on the calling thread."""
    me = threading.get_ident()
    ran: list[bool] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2 and threading.get_ident() == me:
            ran.append(True)

    gc.callbacks.append(note)
    try:
        for _ in range(tries):
            gc.collect()
            if ran:
                return
            time.sleep(0.001)  # another thread is collecting: let it finish
    finally:
        gc.callbacks.remove(note)
    raise AssertionError(f"no garbage collection could run on this thread in {tries} tries")
