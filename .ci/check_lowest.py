#!/usr/bin/env python3
"""Fail when .ci/lowest-constraints.txt and the version floors in setup.cfg disagree.

Every package of ``install_requires`` and of the user-facing extras must have a ``>=``
floor and be pinned ``==`` that floor in the constraints file, which pins nothing else.
A package named in several places (an extra, the ``test`` or ``bench`` tools) must have
the same floor everywhere. The test and benchmark tools themselves are not pinned: the
suite runs them at their newest versions.

    python .ci/check_lowest.py [SETUP_CFG CONSTRAINTS]

Prints each disagreement and exits 1, or prints the pins it checked and exits 0.
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUP_CFG = ROOT / "setup.cfg"
CONSTRAINTS = ROOT / ".ci" / "lowest-constraints.txt"
TOOL_EXTRAS = frozenset({"test", "bench"})  # tools, not what a user installs with resilient

_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")
_RELEASE = re.compile(r"^\d+(?:\.\d+)*$")


def normalize(name: str) -> str:
    """The package name as the index compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def release(version: str) -> tuple[int, ...]:
    """``1.16`` and ``1.16.0`` as the same tuple; plain release numbers only."""
    if not _RELEASE.match(version):
        raise ValueError(f"not a plain release number: {version!r}")
    parts = [int(part) for part in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _floor(section: str, line: str, problems: list[str]) -> tuple[str, str | None] | None:
    """``(name, floor)`` of one requirement line (``floor`` None when it has none)."""
    line = line.split(";", 1)[0].split("#", 1)[0].strip()
    if not line:
        return None
    match = _REQUIREMENT.match(line)
    if match is None:
        problems.append(f"setup.cfg [{section}]: cannot read requirement {line!r}")
        return None
    name, specifiers = normalize(match.group(1)), match.group(2)
    floors = [spec.strip()[2:].strip() for spec in specifiers.split(",") if ">=" in spec]
    if len(floors) > 1:
        problems.append(f"setup.cfg [{section}]: {name} has more than one >= floor")
    return name, floors[0] if floors else None


def floors(setup_cfg: Path, problems: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The runtime floors (to pin; "" where missing) and the tools' floors, from ``setup.cfg``."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(setup_cfg, encoding="utf-8")
    sections = [("install_requires", parser.get("options", "install_requires", fallback=""))]
    if parser.has_section("options.extras_require"):
        sections += [
            (f"extra {key}", value) for key, value in parser["options.extras_require"].items()
        ]
    runtime: dict[str, str] = {}
    tools: dict[str, str] = {}
    seen: dict[str, tuple[str, str]] = {}  # name -> (section, floor) where first met
    unfloored: set[str] = set()
    for section, text in sections:
        is_tool = section.removeprefix("extra ") in TOOL_EXTRAS
        for line in text.splitlines():
            found = _floor(section, line, problems)
            if found is None:
                continue
            name, floor = found
            if floor is None:
                if not is_tool:
                    problems.append(f"setup.cfg [{section}]: {name} has no >= floor")
                    unfloored.add(name)
                continue
            if not _RELEASE.match(floor):
                problems.append(f"setup.cfg [{section}]: {name}>={floor} is not a plain release")
                continue
            if name in seen and release(seen[name][1]) != release(floor):
                first, first_floor = seen[name]
                problems.append(
                    f"setup.cfg: {name}>={floor} in [{section}] but >={first_floor} in [{first}]"
                )
            seen.setdefault(name, (section, floor))
            (tools if is_tool else runtime).setdefault(name, floor)
    runtime.update(dict.fromkeys(unfloored - set(runtime), ""))  # reported above; no pin to match
    return runtime, {name: floor for name, floor in tools.items() if name not in runtime}


def pins(constraints: Path, problems: list[str]) -> dict[str, str]:
    """The ``name==version`` lines of the constraints file."""
    pinned: dict[str, str] = {}
    for number, raw in enumerate(constraints.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not _RELEASE.match(version.strip()):
            problems.append(f"{constraints.name}:{number}: expected name==X.Y.Z, got {line!r}")
            continue
        key = normalize(name.strip())
        if key in pinned:
            problems.append(f"{constraints.name}:{number}: {key} pinned twice")
        pinned[key] = version.strip()
    return pinned


def problems(setup_cfg: Path = SETUP_CFG, constraints: Path = CONSTRAINTS) -> list[str]:
    """Every disagreement between the floors of ``setup_cfg`` and the ``constraints`` pins."""
    found: list[str] = []
    runtime, tools = floors(setup_cfg, found)
    pinned = pins(constraints, found)
    for name, floor in sorted(runtime.items()):
        if not floor:
            continue
        if name not in pinned:
            found.append(f"{name}>={floor} in setup.cfg is not pinned in {constraints.name}")
        elif release(pinned[name]) != release(floor):
            found.append(
                f"{name}: setup.cfg admits >={floor} but {constraints.name} pins =={pinned[name]}"
            )
    for name in sorted(set(pinned) - set(runtime)):
        where = "a test or bench tool" if name in tools else "not a dependency in setup.cfg"
        found.append(f"{constraints.name} pins {name}, {where}: pin only runtime dependencies")
    return found


def main(argv: list[str]) -> int:
    paths = [Path(arg) for arg in argv] if argv else [SETUP_CFG, CONSTRAINTS]
    if len(paths) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    found = problems(*paths)
    for problem in found:
        print(f"check_lowest: {problem}", file=sys.stderr)
    if found:
        return 1
    pinned = pins(paths[1], [])
    print("check_lowest: " + ", ".join(f"{name}=={v}" for name, v in sorted(pinned.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
