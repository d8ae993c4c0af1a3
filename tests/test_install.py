"""The versions setup.cfg admits: the lowest-versions pins stay in step, and old wrapt imports.

``.ci/run`` runs the whole suite in a virtual environment built from
``.ci/lowest-constraints.txt``; these tests keep that file equal to the floors in
``setup.cfg`` and catch, under any installed wrapt, code that only the newest wrapt runs.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / ".ci" / "check_lowest.py"


def load_check() -> ModuleType:
    """``.ci/check_lowest.py`` as a module."""
    spec = importlib.util.spec_from_file_location("check_lowest", CHECK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


# -- the constraints file follows setup.cfg ---------------------------------------------------


def test_lowest_constraints_pin_exactly_the_setup_cfg_floors() -> None:
    """``.ci/check_lowest.py`` passes on the repository's own setup.cfg and constraints."""
    result = subprocess.run(
        [sys.executable, str(CHECK)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "wrapt==" in result.stdout


SETUP_CFG = """\
[options]
install_requires =
    wrapt>=1.16
    httpx>=0.27
[options.extras_require]
redis =
    redis>=5.0.1
test =
    pytest>=8.0
    types-cachetools
    redis>=5.0.1
"""


@pytest.mark.parametrize(
    ("setup_cfg", "constraints", "complaint"),
    [
        (SETUP_CFG, "wrapt==1.16.0\nhttpx==0.27\nredis==5.0.1\n", None),
        (
            SETUP_CFG.replace("wrapt>=1.16", "wrapt>=1.16,!=2.2.0"),
            "wrapt==1.16.0\nhttpx==0.27\nredis==5.0.1\n",
            None,
        ),
        (SETUP_CFG, "wrapt==1.17.0\nhttpx==0.27\nredis==5.0.1\n", "admits >=1.16 but"),
        (SETUP_CFG, "wrapt==1.16\nredis==5.0.1\n", "httpx>=0.27 in setup.cfg is not pinned"),
        (SETUP_CFG, "wrapt==1.16\nhttpx==0.27\n", "redis>=5.0.1 in setup.cfg is not pinned"),
        (
            SETUP_CFG,
            "wrapt==1.16\nhttpx==0.27\nredis==5.0.1\npytest==8.0\n",
            "pins pytest, a test or bench tool",
        ),
        (
            SETUP_CFG,
            "wrapt==1.16\nhttpx==0.27\nredis==5.0.1\nrequests==2.0\n",
            "pins requests, not a dependency",
        ),
        (SETUP_CFG, "wrapt>=1.16\nhttpx==0.27\nredis==5.0.1\n", "expected name==X.Y.Z"),
        (
            SETUP_CFG.replace("    redis>=5.0.1\n", "    redis>=5.0\n", 1),
            "wrapt==1.16\nhttpx==0.27\nredis==5.0.1\n",
            "redis>=5.0.1 in [extra test] but >=5.0 in [extra redis]",
        ),
        (
            SETUP_CFG.replace("wrapt>=1.16", "wrapt"),
            "wrapt==1.16\nhttpx==0.27\nredis==5.0.1\n",
            "wrapt has no >= floor",
        ),
    ],
    ids=[
        "agree",
        "agree-beside-an-exclusion",
        "pin-above-floor",
        "runtime-not-pinned",
        "extra-not-pinned",
        "tool-pinned",
        "stranger-pinned",
        "not-a-pin",
        "floors-differ-between-extras",
        "no-floor",
    ],
)
def test_check_lowest_reports_every_drift(
    tmp_path: Path, setup_cfg: str, constraints: str, complaint: str | None
) -> None:
    """The check passes when pins equal floors and names each way the two can drift apart."""
    (tmp_path / "setup.cfg").write_text(setup_cfg)
    (tmp_path / "lowest-constraints.txt").write_text(constraints)
    found = load_check().problems(tmp_path / "setup.cfg", tmp_path / "lowest-constraints.txt")
    if complaint is None:
        assert found == []
    else:
        assert any(complaint in problem for problem in found), found


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
