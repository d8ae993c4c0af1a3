#!/usr/bin/env python3
"""Mutation testing for the Lua scripts in ``resilient/stores/_lua.py``.

mutmut mutates Python; the Redis scripts are Python string constants, so mutmut leaves their
text alone. This script makes one mutant at a time from the Lua text (a comparison, an
arithmetic or logical operator, a number or a boolean changed at one place), writes it into a
scratch copy of the repository and runs the Redis tests there. A mutant is *killed* when the
tests fail, *survives* when they pass. Mutants listed in ``EQUIVALENT`` below (no test can
tell them from the original; the reason is given for each) are not run. The score is
killed / (killed + survived).

    python .ci/mutate_lua.py                          # every mutant (about half an hour)
    python .ci/mutate_lua.py --sample 80 --seed 1     # a seeded sample (about ten minutes)
    python .ci/mutate_lua.py --list                   # the mutants, without running anything

The tests run in two tiers: the fast Lua, store and budget tests first; only a mutant they
miss meets the slower ones (faults, fleets, and the breaker tests against Redis, the model
test among them). It needs ``redis-server`` on the PATH (the tests start their own on a free
port) and the test dependencies in the running interpreter. Survivors are printed with their
line and the change, so a test can be written for each. The Python modules are mutated by
``mutmut run`` (README.rst, "Development").
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
SCRIPTS = ("TRANSITION", "SET_FLAG", "BUDGET", "PROBE")
# Each tier runs only for mutants the earlier ones did not kill: most mutants die in the first.
TIERS: tuple[tuple[str, ...], ...] = (
    (
        "tests/stores/test_redis_lua.py",
        "tests/stores/test_redis_lua_rules.py",
        "tests/stores/test_redis_store.py",
        "tests/stores/test_redis_budget.py",
    ),
    (
        "tests/stores/test_redis_faults.py",
        "tests/stores/test_redis_fleet.py",
        "tests/breaker/test_breaker_model.py",
        "tests/breaker/test_breaker_api.py",
        "tests/breaker/test_breaker_concurrency.py",
        "-k",
        "redis",
    ),
)

# Mutants no test can tell from the original, keyed by (script, the line's code with its
# surrounding spaces stripped, the text changed, its replacement, which occurrence of that
# text on the line counting from 1): line numbers may shift, the keys do not.
_PROBE_SET = ("PROBE", "redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000)")
_BUDGET_EXPIRY = (
    "BUDGET",
    "redis.call('PEXPIRE', key, string.format('%d', math.ceil(window * 1000) + 1000))",
)
_BACKOFF = (
    "TRANSITION",
    "if R.reset_backoff ~= 1.0 and trips > 1 then wait = wait * R.reset_backoff ^ (trips - 1) end",
)
_CAP = ("TRANSITION", "if cap ~= nil and wait > cap then wait = cap end")
_COPY_STATE = ("TRANSITION", "for j = 1, 10 do out[#out + 1] = enc[j] end")
_FLOORDIV = ("TRANSITION", "if mod ~= 0 and ((wx < 0) ~= (mod < 0)) then div = div - 1 end")
EQUIVALENT: dict[tuple[str, str, str, str, int], str] = {
    # The callers ignore what SET_FLAG and PROBE return; they only need the call to succeed.
    ("SET_FLAG", "return 1", "1", "0", 1): "the reply is not read",
    ("SET_FLAG", "return 1", "1", "2", 1): "the reply is not read",
    ("PROBE", "return 1", "1", "0", 1): "the reply is not read",
    ("PROBE", "return 1", "1", "2", 1): "the reply is not read",
    # A millisecond more or less on an expiry cannot be observed: reading a key's TTL takes
    # at least that long after the script set it.
    (*_PROBE_SET, "60000", "59999", 1): "1 ms on the probe key's expiry",
    (*_PROBE_SET, "60000", "60001", 1): "1 ms on the probe key's expiry",
    (*_BUDGET_EXPIRY, "1000", "999", 2): "1 ms on the budget's expiry",
    (*_BUDGET_EXPIRY, "1000", "1001", 2): "1 ms on the budget's expiry",
    (*_BUDGET_EXPIRY, "math.ceil", "math.floor", 1): "window * 1000 rounded down: under 1 ms",
    # open(): b ^ (trips - 1) is exactly 1 when b == 1 or trips == 1, so the guard only
    # saves a power; and capping a wait equal to the cap gives the cap.
    (*_BACKOFF, "and", "or", 1): "the guarded product equals wait whenever the guard is false",
    (*_CAP, ">", ">=", 1): "wait == cap: both give cap",
    # Appending enc[0] (nil) to a Lua table is a no-op: the reply is the same.
    (*_COPY_STATE, "1", "0", 1): "out[#out + 1] = nil changes nothing",
    (*_COPY_STATE, "10", "11", 1): "out[#out + 1] = nil changes nothing",
    # floordiv: mod == 0 never gets past the `mod ~= 0` before it.
    (*_FLOORDIV, "<", "<=", 2): "mod <= 0 and mod < 0 differ only at 0, excluded before",
}

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
    code: str  # the whole line, stripped
    occurrence: int  # of ``old`` on that line, from 1

    @property
    def key(self) -> tuple[str, str, str, str, int]:
        return (self.script, self.code, self.old, self.new, self.occurrence)

    def apply(self, text: str) -> str:
        return text[: self.offset] + self.new + text[self.offset + len(self.old) :]

    def __str__(self) -> str:
        nth = f" (#{self.occurrence})" if self.occurrence > 1 else ""
        return f"{self.script} line {self.line}: {self.old!r}{nth} -> {self.new!r}  | {self.code}"


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


def _mutant(name: str, text: str, offset: int, old: str, new: str) -> Mutant:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    line_text = text[start : end if end >= 0 else len(text)]
    occurrence = 1 + text[start:offset].count(old)
    line = text.count("\n", 0, offset) + 1
    return Mutant(name, offset, old, new, line, line_text.strip(), occurrence)


def mutants(name: str, text: str) -> list[Mutant]:
    found: list[Mutant] = []
    for lo, hi in code_spans(text):
        part = text[lo:hi]
        for pattern, replacement in OPERATORS:
            for match in re.finditer(pattern, part):
                found.append(_mutant(name, text, lo + match.start(), match.group(), replacement))
        for match in NUMBER.finditer(part):
            value = int(match.group())
            offset = lo + match.start()
            found.append(_mutant(name, text, offset, match.group(), str(value + 1)))
            if value:
                found.append(_mutant(name, text, offset, match.group(), str(value - 1)))
    # Replacing "<" in "<=" and "<=" itself can give the same text; keep one of each.
    unique: dict[str, Mutant] = {}
    for mutant in found:
        unique.setdefault(mutant.apply(text), mutant)
    return sorted(unique.values(), key=lambda m: (m.script, m.offset, m.new))


def run_tests(workdir: Path, timeout: float) -> bool:
    """True when every tier of the Redis tests passes in ``workdir`` (stops at a failure)."""
    for tier in TIERS:
        present = [t for t in tier if not t.endswith(".py") or (workdir / t).exists()]
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *present]
        try:
            done = subprocess.run(command, cwd=workdir, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False  # a mutant that hangs the tests is killed by the time-out
        if done.returncode != 0:
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, help="run a seeded sample of this many mutants")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    parser.add_argument(
        "--match",
        action="append",
        help="only the mutants whose description contains this text (repeatable: any of them)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant")
    args = parser.parse_args()

    source = (ROOT / MODULE).read_text()
    texts = scripts(source)
    every = [m for name, text in texts.items() for m in mutants(name, text)]
    stale = set(EQUIVALENT) - {m.key for m in every}
    if stale:
        print(f"EQUIVALENT names mutants that no longer exist: {sorted(stale)}", file=sys.stderr)
        return 2
    chosen = every
    if args.match:
        chosen = [m for m in every if any(text in str(m) for text in args.match)]
    if args.sample and args.sample < len(chosen):
        # Sampled before the equivalents are left out, so listing one keeps the same sample.
        chosen = sorted(random.Random(args.seed).sample(chosen, args.sample), key=str)
    equivalent = [m for m in chosen if m.key in EQUIVALENT]
    chosen = [m for m in chosen if m.key not in EQUIVALENT]
    if args.list:
        for mutant in chosen:
            print(mutant)
        print(f"{len(chosen)} of {len(every)} mutants ({len(equivalent)} equivalent left out)")
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
    print(f"({len(equivalent)} of the chosen mutants left out as equivalent)")
    for mutant in survivors:
        print(f"  survived: {mutant}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
