"""The versions setup.cfg admits: code that only the newest wrapt runs is caught here."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter of this environment, from the repository root."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- code that only the newest wrapt runs ------------------------------------------------------

# wrapt's classes accept ``wrapt.FunctionWrapper[...]`` only in its newest releases; older
# ones (all of which setup.cfg admits) raise TypeError. Run resilient on wrapt's pure-Python
# classes with subscripting taken away, as those releases have them.
OLD_WRAPT = """
    import functools, importlib, pkgutil
    import wrapt

    for name in dir(wrapt):
        value = getattr(wrapt, name)
        for cls in value.__mro__ if isinstance(value, type) else ():
            if "__class_getitem__" in cls.__dict__:
                delattr(cls, "__class_getitem__")
    try:
        wrapt.FunctionWrapper[object, object]
    except TypeError:
        pass
    else:
        raise SystemExit("wrapt's classes can still be subscripted")

    import resilient

    for module in pkgutil.walk_packages(resilient.__path__, "resilient."):
        if module.name != "resilient.__main__":
            importlib.import_module(module.name)

    class Adder:
        def __call__(self, x):
            return x + 1

    retry = resilient.retry(attempts=2, initial_delay=0)
    assert retry(Adder())(1) == 2
    assert retry(functools.partial(pow, 2))(3) == 8
    assert resilient.breaker("old-wrapt")(len)("abc") == 3
    print("ok")
"""


def test_resilient_runs_on_wrapt_classes_that_cannot_be_subscripted() -> None:
    """Every module imports and wrapt-wrapped callables work when wrapt classes refuse ``[]``."""
    result = run_python(OLD_WRAPT, WRAPT_DISABLE_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
