"""What ``import resilient`` and decorating plain functions load: neither wrapt nor asyncio.

Each check runs in a fresh interpreter, since this process has loaded both long ago.
wrapt comes with the first callable that is not a plain function (a partial, a callable
object, a builtin); asyncio with the first timeout on a coroutine function or the first
asynchronous sleep on the system clock (an async program has loaded it anyway).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("asyncio", "wrapt")


def loaded_after(code: str) -> list[str]:
    """Which of ``HEAVY`` a fresh interpreter has loaded after running ``code``."""
    script = (
        f"{textwrap.dedent(code)}\nimport sys\nprint([m for m in {HEAVY!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found: list[str] = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    return found


def test_import_resilient_loads_neither_wrapt_nor_asyncio() -> None:
    """``import resilient`` leaves wrapt and asyncio unloaded."""
    assert loaded_after("import resilient") == []


def test_decorating_and_calling_sync_functions_loads_neither() -> None:
    """Every decorator on plain functions and methods, called, still loads neither."""
    code = """
        import resilient

        def work(x):
            return x

        stacked = resilient.fallback(lambda x: -1)(
            resilient.retry(attempts=2)(resilient.breaker("import-cost")(resilient.timeout(1.0)(work)))
        )
        assert stacked(3) == 3
        assert resilient.timeout(1.0, strategy="signal")(work)(4) == 4

        class Service:
            @resilient.retry(attempts=2)
            def method(self, x):
                return x

            @resilient.retry(attempts=2)
            @classmethod
            def factory(cls, x):
                return x

        assert Service().method(5) == 5
        assert Service.factory(6) == 6
        resilient.configure(metrics=resilient.MemorySink())
        assert stacked(7) == 7
    """
    assert loaded_after(code) == []


def test_a_callable_object_brings_wrapt_and_still_works() -> None:
    """Decorating a partial loads wrapt then, and the wrapper behaves as before."""
    code = """
        import functools
        import resilient

        add = resilient.retry(attempts=2)(functools.partial(pow, 2))
        assert add(3) == 8
        assert resilient._wrapping.layer.layers_of(add)
    """
    assert "wrapt" in loaded_after(code)
