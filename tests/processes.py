"""Helpers for the servers the suite starts as child processes."""

from __future__ import annotations

import os
import signal
import sys


def die_with_parent() -> None:
    """In the child, before exec: ask Linux to kill it when the test process dies, so that
    a test run killed without its teardown (a timeout, a mutation tester's worker) leaves
    no server behind. Elsewhere the fixtures' teardown alone stops it."""
    if sys.platform != "linux":
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the line above
        os._exit(1)
