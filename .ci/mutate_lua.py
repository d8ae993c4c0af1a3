#!/usr/bin/env python3
"""Mutation testing for the Lua scripts in ``resilient/stores/_lua.py``.

mutmut mutates Python; the Redis scripts are Python string constants, so mutmut leaves their
text alone. This script makes one mutant at a time from the Lua text (a comparison, an
arithmetic or logical operator, a number or a boolean changed at one place), writes it into a
scratch copy of the repository and runs the Redis tests there. A mutant is *killed* when the
tests fail, *survives* when they pass. The score is killed / (killed + survived).

    python .ci/mutate_lua.py                  # every mutant (several minutes)
    python .ci/mutate_lua.py --sample 60      # a seeded sample
    python .ci/mutate_lua.py --list           # the mutants, without running anything

It needs ``redis-server`` on the PATH (the tests start their own on a free port) and the
test dependencies in the running interpreter. Survivors are printed with their line and the
change, so a test can be written for each.
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE = Path("resilient/stores/_lua.py")
SCRIPTS = ("TRANSITION", "SET_FLAG", "BUDGET")
TESTS = ("tests/test_redis_lua.py", "tests/test_redis_store.py", "tests/test_redis_budget.py")

# (pattern, replacement) pairs; each match of a pattern is one mutant.
OPERATORS: tuple[tuple[str, str], ...] = (
    (r"<=", "<"),
    (r">=", ">"),
    (r"(?<![<>=~])<(?!=)", "<="),
    (r"(?<![<>=~-])>(?!=)", ">="),
    (r"==", "~="),
    (r"~=", "=="),
    (r"(?<=[\w)\] ])\+(?= )", "-"),
    (r"(?<=[\w)\] ]) - (?=[\w(])", " + "),
    (r"(?<=[\w)\] ]) \* (?=[\w(])", " / "),
    (r"(?<=[\w)\] ]) / (?=[\w(])", " * "),
    (r"\band\b", "or"),
    (r"\bor\b", "and"),
    (r"\bnot ", ""),
    (r"\btrue\b", "false"),
    (r"\bfalse\b", "true"),
    (r"\bmath\.floor\b", "math.ceil"),
    (r"\bmath\.ceil\b", "math.floor"),
    (r"\bmath\.max\b", "math.min"),
    (r"\bmath\.min\b", "math.max"),
)
NUMBER = re.compile(r"(?<![\w.%'])(\d+)(?![\w.])")


@dataclass(frozen=True)
class Mutant:
    script: str
    offset: int  # in the script's text
    old: str
    new: str
    line: int  # in the script's text, from 1

    def apply(self, text: str) -> str:
        return text[: self.offset] + self.new + text[self.offset + len(self.old) :]

    def __str__(self) -> str:
        return f"{self.script} line {self.line}: {self.old!r} -> {self.new!r}"


def scripts(source: str) -> dict[str, str]:
    """The text of each script constant of the module, as Python evaluates it."""
    found: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in SCRIPTS:
                    found[target.id] = str(node.value.value)
    return found


def code_spans(text: str) -> list[tuple[int, int]]:
    """The spans of a line that are code: not a ``--`` comment and not a quoted string."""
    spans: list[tuple[int, int]] = []
    start = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c in "'\"":
            spans.append((start, i))
            end = text.index(c, i + 1)
            i = start = end + 1
            continue
        if text.startswith("--", i):
            spans.append((start, i))
            i = text.index("\n", i) if "\n" in text[i:] else len(text)
            start = i
            continue
        i += 1
    spans.append((start, len(text)))
    return spans


def mutants(name: str, text: str) -> list[Mutant]:
    found: list[Mutant] = []
    for lo, hi in code_spans(text):
        part = text[lo:hi]
        for pattern, replacement in OPERATORS:
            for match in re.finditer(pattern, part):
                offset = lo + match.start()
                line = text.count("\n", 0, offset) + 1
                found.append(Mutant(name, offset, match.group(), replacement, line))
        for match in NUMBER.finditer(part):
            offset = lo + match.start()
            line = text.count("\n", 0, offset) + 1
            value = int(match.group())
            found.append(Mutant(name, offset, match.group(), str(value + 1), line))
            if value:
                found.append(Mutant(name, offset, match.group(), str(value - 1), line))
    # Replacing "<" in "<=" and "<=" itself can give the same text; keep one of each.
    unique: dict[str, Mutant] = {}
    for mutant in found:
        unique.setdefault(mutant.apply(text), mutant)
    return sorted(unique.values(), key=lambda m: (m.script, m.offset, m.new))


def run_tests(workdir: Path, timeout: float) -> bool:
    """True when the Redis tests pass in ``workdir``."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS]
    try:
        done = subprocess.run(command, cwd=workdir, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False  # a mutant that hangs the tests is killed by the time-out
    return done.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, help="run a seeded sample of this many mutants")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant")
    args = parser.parse_args()

    source = (ROOT / MODULE).read_text()
    texts = scripts(source)
    every = [m for name, text in texts.items() for m in mutants(name, text)]
    chosen = every
    if args.sample and args.sample < len(every):
        chosen = sorted(random.Random(args.seed).sample(every, args.sample), key=str)
    if args.list:
        for mutant in chosen:
            print(mutant)
        print(f"{len(chosen)} of {len(every)} mutants")
        return 0

    with tempfile.TemporaryDirectory(prefix="mutate-lua-") as scratch:
        workdir = Path(scratch)
        for part in ("resilient", "tests"):
            skip = shutil.ignore_patterns("__pycache__")
            shutil.copytree(ROOT / part, workdir / part, ignore=skip)
        for part in ("pyproject.toml", "resilient_pytest.py"):
            shutil.copy2(ROOT / part, workdir / part)
        if not run_tests(workdir, args.timeout):
            print("the Redis tests fail without any mutant: fix them first", file=sys.stderr)
            return 2
        survivors: list[Mutant] = []
        for number, mutant in enumerate(chosen, 1):
            original = texts[mutant.script]
            mutated_source = source.replace(original, mutant.apply(original), 1)
            (workdir / MODULE).write_text(mutated_source)
            killed = not run_tests(workdir, args.timeout)
            print(f"[{number}/{len(chosen)}] {'killed  ' if killed else 'SURVIVED'} {mutant}")
            if not killed:
                survivors.append(mutant)
        (workdir / MODULE).write_text(source)

    killed = len(chosen) - len(survivors)
    print(f"\n{killed} of {len(chosen)} mutants killed: score {killed / len(chosen):.1%}")
    for mutant in survivors:
        print(f"  survived: {mutant}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
