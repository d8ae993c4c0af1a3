"""Every Python code block of README.rst and docs/**/*.rst runs as a reader would paste it.

Each ``.. code-block:: python`` block is one test (``README.rst:56``): it runs in a module
of its own, from fresh global state, in an empty working folder, with the plugin's
``fake_clock`` as the clock (sleeps and timeouts never wait for real). ``asyncio.run``
inside a block runs on a ``VirtualTimeLoop`` on that clock, and a block with top-level
``await`` (as in ``python -m asyncio``) is compiled with ``PyCF_ALLOW_TOP_LEVEL_AWAIT``
and awaited on one. ``test_*`` functions a block defines are then called, as pytest
would, with a fresh ``fake_clock`` when they ask for one. A block that raises, or that
warns, fails its test.

A block that only illustrates (it names an application's own servers, functions or
settings) is marked with the comment line ``.. illustration`` right before its
``.. code-block::``, and is skipped. TOML blocks are parsed; those that declare policies
are loaded with ``resilient.load_policies`` and each policy is applied to a function.
A block that names ``REDIS_URL`` gets it set to the session's test Redis server.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import sys
import textwrap
import tomllib
import types
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import resilient
from resilient.testing import FakeClock, VirtualTimeLoop, use_clock

ROOT = Path(__file__).resolve().parents[1]

MARKER = ".. illustration"
_DIRECTIVE = re.compile(
    r"^(?P<indent>[ \t]*)\.\. (?:code-block|code|sourcecode)::[ \t]*(?P<lang>\S*)"
)
PYTHON = frozenset({"python", "python3", "py"})


@dataclass(frozen=True)
class Block:
    """One code block: where it is, its language, its code and whether it only illustrates."""

    path: Path
    line: int  # the directive's line, counted from 1
    first: int  # the line of the code's first line
    language: str
    code: str
    illustration: bool

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documents(root: Path = ROOT) -> list[Path]:
    """README.rst and every .rst file under docs/ (when the folder exists)."""
    docs = root / "docs"
    found = sorted(docs.rglob("*.rst")) if docs.is_dir() else []
    return [root / "README.rst", *(p for p in found if "_build" not in p.parts)]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _marked(lines: list[str], directive: int, indent: int) -> bool:
    """Whether the nearest non-blank line before ``lines[directive]`` is the marker."""
    index = directive - 1
    while index >= 0 and not lines[index].strip():
        index -= 1
    if index < 0:
        return False
    line = lines[index]
    text = line.strip()
    return _indent(line) == indent and (text == MARKER or text.startswith(MARKER + ":"))


def blocks(path: Path) -> list[Block]:
    """The code blocks of one reStructuredText file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    for index, line in enumerate(lines):
        match = _DIRECTIVE.match(line)
        if match is None:
            continue
        indent = _indent(line)
        body = index + 1
        while (
            body < len(lines)
            and lines[body].strip().startswith(":")
            and (_indent(lines[body]) > indent)
        ):
            body += 1  # the directive's options (:caption:, :emphasize-lines: ...)
        end = body
        while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
            end += 1
        content = lines[body:end]
        while content and not content[0].strip():
            content.pop(0)
            body += 1
        found.append(
            Block(
                path=path,
                line=index + 1,
                first=body + 1,
                language=match["lang"].lower(),
                code=textwrap.dedent("\n".join(content)).rstrip() + "\n",
                illustration=_marked(lines, index, indent),
            )
        )
    return found


def stray_markers(path: Path) -> list[int]:
    """Lines of ``.. illustration`` markers that no code block follows."""
    lines = path.read_text(encoding="utf-8").splitlines()
    stray = []
    for index, line in enumerate(lines):
        text = line.strip()
        if text != MARKER and not text.startswith(MARKER + ":"):
            continue
        after = index + 1
        while after < len(lines) and not lines[after].strip():
            after += 1
        following = lines[after] if after < len(lines) else ""
        if _DIRECTIVE.match(following) is None or _indent(following) != _indent(line):
            stray.append(index + 1)
    return stray


ALL = [block for path in documents() for block in blocks(path)]
PYTHON_BLOCKS = [block for block in ALL if block.language in PYTHON]
TOML_BLOCKS = [block for block in ALL if block.language == "toml"]


def _params(found: list[Block]) -> list[Any]:
    return [
        pytest.param(
            block,
            id=block.name,
            marks=[pytest.mark.skip(reason="marked .. illustration")] if block.illustration else [],
        )
        for block in found
    ]


def _virtual_run(clock: FakeClock) -> Callable[..., Any]:
    """``asyncio.run`` on a ``VirtualTimeLoop`` driven by ``clock`` (a fresh loop per call)."""

    def run(main: Coroutine[Any, Any, Any], *, debug: bool | None = None, **_: Any) -> Any:
        with asyncio.Runner(debug=debug, loop_factory=lambda: VirtualTimeLoop(clock)) as runner:
            return runner.run(main)

    return run


def _call_tests(module: types.ModuleType) -> list[str]:
    """Call the ``test_*`` functions the block defined, each from fresh state, as pytest
    would (``fake_clock`` is the only fixture they may ask for)."""
    called = []
    for name, value in list(vars(module).items()):
        if not (name.startswith("test_") and inspect.isfunction(value)):
            continue
        if getattr(inspect.unwrap(value), "__globals__", None) is not vars(module):
            continue  # imported, not defined by the block
        resilient.testing.reset()
        clock = FakeClock(autojump=0.5)
        fixtures = {"fake_clock": clock}
        unknown = set(inspect.signature(value).parameters) - set(fixtures)
        assert not unknown, f"{name} asks for fixtures the snippet runner lacks: {unknown}"
        arguments = {p: fixtures[p] for p in inspect.signature(value).parameters}
        with use_clock(clock):
            if inspect.iscoroutinefunction(value):
                _virtual_run(clock)(value(**arguments))
            else:
                value(**arguments)
        called.append(name)
    return called


def run_python(block: Block, clock: FakeClock) -> types.ModuleType:
    """Run the block as a script's ``__main__`` module of its own; return that module.

    As ``runpy`` does, the module stands in for ``sys.modules["__main__"]`` while it runs,
    so ``if __name__ == "__main__":`` holds and the block's classes and functions are found
    by their module."""
    tree = ast.parse(block.code, str(block.path))
    ast.increment_lineno(tree, block.first - 1)  # tracebacks point at the document's lines
    code = compile(tree, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    module = types.ModuleType("__main__")
    module.__file__ = str(block.path)
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        if code.co_flags & inspect.CO_COROUTINE:
            _virtual_run(clock)(eval(code, vars(module)))
        else:
            exec(code, vars(module))
    except BaseException:
        close_resources(module)
        raise
    finally:
        if main is None:
            del sys.modules["__main__"]
        else:
            sys.modules["__main__"] = main
    return module


# The environment of a deployed app, for blocks that read it (``os.environ["..."]``).
ENVIRONMENT = {
    "STATUS_TOKEN": "snippet-operator-token-0123",
    "HEALTH_TOKEN": "snippet-health-token-0123",
}


@pytest.fixture
def snippet_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """An empty working folder and the app's environment; ``REDIS_URL`` (the session's
    test server) for a block that names it; a Prometheus registry of the block's own."""
    block: Block = request.node.callspec.params["block"]
    monkeypatch.chdir(tmp_path)
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("REDIS_URL", raising=False)
    if "REDIS_URL" in block.code:
        from redis_server import shared_server

        monkeypatch.setenv("REDIS_URL", shared_server().url)
    if "prometheus" in block.code.lower():
        import prometheus_client

        monkeypatch.setattr(prometheus_client, "REGISTRY", prometheus_client.CollectorRegistry())
    yield tmp_path
    resilient.testing.reset()


def close_resources(module: types.ModuleType) -> None:
    """Stop what a block left running, as the end of its process would: outbox drainers,
    Redis stores' listeners and connections."""
    from resilient.outbox import Outbox
    from resilient.stores import AsyncRedisStore, RedisStore

    for value in vars(module).values():
        if isinstance(value, Outbox):
            value.stop()
            value.close()
        elif isinstance(value, (RedisStore, AsyncRedisStore)):
            value.close()


@pytest.mark.parametrize("block", _params(PYTHON_BLOCKS))
def test_python_block_runs(
    block: Block, snippet_env: Path, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The block runs as pasted, and so do the tests it defines."""
    monkeypatch.setattr(asyncio, "run", _virtual_run(fake_clock))
    module = run_python(block, fake_clock)
    try:
        _call_tests(module)
    finally:
        close_resources(module)


@pytest.mark.parametrize("block", _params(TOML_BLOCKS))
def test_toml_block_loads(block: Block, snippet_env: Path) -> None:
    """The block is valid TOML; the policies it declares load and apply to a function."""
    data = tomllib.loads(block.code)
    declared = data.get("tool", {}).get("resilient", {}).get("policies", data.get("policies"))
    if not declared:
        return  # a fragment of a table, shown for one key: parsing it is the check
    path = snippet_env / ("pyproject.toml" if "tool" in data else "policies.toml")
    path.write_text(block.code, encoding="utf-8")
    loaded = resilient.load_policies(path)
    assert sorted(loaded) == sorted(declared)
    for name in loaded:
        resilient.policy(name)(lambda: None)


def test_snippets_are_found() -> None:
    """The extractor finds the README's blocks, their first lines and their markers."""
    readme = [block for block in ALL if block.path.name == "README.rst"]
    assert [b for b in readme if b.language in PYTHON]
    first = next(b for b in readme if b.language in PYTHON)
    lines = (ROOT / "README.rst").read_text(encoding="utf-8").splitlines()
    assert lines[first.line - 1].strip() == ".. code-block:: python"
    assert lines[first.first - 1].strip() == first.code.splitlines()[0].strip()


def test_extractor_reads_indentation_options_and_markers(tmp_path: Path) -> None:
    """Nested blocks end at the dedent, options are not code, a marker skips only its block."""
    page = tmp_path / "page.rst"
    page.write_text(
        textwrap.dedent(
            """\
            Title
            =====

            - a list item:

              .. code-block:: python
                 :caption: nested

                 x = 1

                 y = 2
              after the block

            .. illustration

            .. code-block:: python

                app.run()

            .. illustration: needs the app
            .. code-block:: toml

                a = 1

            .. code-block:: python

                z = 3
            """
        ),
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(b.line, b.first, b.language, b.illustration) for b in found] == [
        (6, 9, "python", False),
        (16, 18, "python", True),
        (21, 23, "toml", True),
        (25, 27, "python", False),
    ]
    assert found[0].code == "x = 1\n\ny = 2\n"
    assert found[1].code == "app.run()\n"


def test_a_stray_marker_is_reported(tmp_path: Path) -> None:
    """A marker with no code block right after it is found, so it cannot silently do nothing."""
    page = tmp_path / "page.rst"
    page.write_text(
        ".. illustration\n\nSome text.\n\n.. illustration\n.. code-block:: python\n\n    x\n",
        encoding="utf-8",
    )
    assert stray_markers(page) == [1]


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_marker_precedes_a_block(path: Path) -> None:
    """Every ``.. illustration`` marker in the documents sits right before a code block."""
    assert stray_markers(path) == []


def test_a_failing_block_fails_with_its_document_line(fake_clock: FakeClock) -> None:
    """A block that raises fails, and the traceback names the document and the line."""
    page = ROOT / "README.rst"
    block = Block(page, 10, 12, "python", "x = 1\nraise LookupError(x)\n", False)
    with pytest.raises(LookupError) as raised:
        run_python(block, fake_clock)
    last = raised.traceback[-1]
    assert str(last.path) == str(page)
    assert last.lineno + 1 == 13


def test_top_level_await_runs_on_virtual_time(fake_clock: FakeClock) -> None:
    """A block with top-level ``await`` is awaited, and its sleeps take no real time."""
    code = "import asyncio\nawait asyncio.sleep(60)\nDONE = True\n"
    module = run_python(Block(ROOT / "README.rst", 1, 2, "python", code, False), fake_clock)
    assert module.DONE is True
    assert fake_clock.monotonic() >= 60


def test_tests_a_block_defines_are_called(fake_clock: FakeClock) -> None:
    """``test_*`` functions defined by a block are called, with their own fake clock."""
    code = (
        "import time\nCALLS = []\n"
        "def test_one(fake_clock):\n    CALLS.append(fake_clock.monotonic())\n"
        "def test_two():\n    raise AssertionError('the block test ran')\n"
    )
    module = run_python(Block(ROOT / "README.rst", 1, 2, "python", code, False), fake_clock)
    with pytest.raises(AssertionError, match="the block test ran"):
        _call_tests(module)
    assert module.CALLS == [0.0]


def test_a_block_runs_as_a_script(fake_clock: FakeClock) -> None:
    """``__name__`` is ``"__main__"`` inside a block, whose main guard runs, and the
    process's own ``__main__`` module is back afterwards."""
    before = sys.modules["__main__"]
    code = (
        "import asyncio\nSTEPS = []\n"
        "async def main():\n    await asyncio.sleep(5)\n    STEPS.append(__name__)\n"
        "if __name__ == '__main__':\n    asyncio.run(main())\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asyncio, "run", _virtual_run(fake_clock))
        module = run_python(Block(ROOT / "README.rst", 1, 2, "python", code, False), fake_clock)
    assert module.STEPS == ["__main__"]
    assert sys.modules["__main__"] is before
