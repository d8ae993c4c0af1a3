"""The suite's own servers never outlive the test process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis_server import missing

HERE = Path(__file__).parents[1]  # tests/, where the server helpers live


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@pytest.mark.realtime
@pytest.mark.skipif(sys.platform != "linux", reason="parent-death signal is Linux only")
def test_a_killed_test_process_leaves_no_redis_server_behind() -> None:
    """A process killed without its teardown (a timeout, a mutation tester's worker) takes
    the redis-server it started with it."""
    why = missing()
    if why is not None:
        pytest.skip(why)
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1])\n"
        "from redis_server import RedisServer\n"
        "server = RedisServer().start(); print(server.pid, flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(HERE)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    pid = int(child.stdout.readline())
    assert _alive(pid)
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(pid)
