"""Fail when the public API's type completeness, as pyright measures it, drops below FLOOR.

``pyright --verifytypes resilient --ignoreexternal`` scores the share of exported symbols
(functions, classes, attributes, module values) whose types are declared and known; a
symbol with an inferred type ("ambiguous": another type checker may infer it otherwise)
or an unknown one does not count. The package analysed is this checkout's (its folder
goes first on the interpreter's path), whatever is installed. On failure the symbols
that are not known are listed with pyright's reasons.

Raise FLOOR when the score rises; never lower it to let a change through: annotate.

Usage: python .ci/type_completeness.py   (pyright from the interpreter's bin folder, or PATH)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

FLOOR = 1.0
"""The lowest score accepted (0 to 1): every public symbol's type is declared."""

ROOT = Path(__file__).resolve().parent.parent


def _pyright() -> str:
    beside = Path(sys.executable).parent / "pyright"
    found = str(beside) if beside.exists() else shutil.which("pyright")
    if found is None:
        sys.exit("pyright not found (pip install pyright)")
    return found


def main() -> int:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        _pyright(),
        "--pythonpath",
        sys.executable,
        "--verifytypes",
        "resilient",
        "--ignoreexternal",
        "--outputjson",
    ]
    # pyright exits 1 whenever any symbol is incomplete: the score decides here.
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    try:
        report = json.loads(run.stdout)["typeCompleteness"]
    except (ValueError, KeyError):
        sys.stderr.write(run.stdout + run.stderr)
        print("type completeness: pyright gave no report (see above)", file=sys.stderr)
        return 2
    where = Path(report["packageRootDirectory"])
    if where != ROOT / "resilient":
        print(f"type completeness: pyright analysed {where}, not this checkout", file=sys.stderr)
        return 2
    score = report["completenessScore"]
    counts = report["exportedSymbolCounts"]
    print(
        f"type completeness of resilient's public API: {score:.1%} "
        f"({counts['withKnownType']} known, {counts['withAmbiguousType']} inferred, "
        f"{counts['withUnknownType']} unknown; floor {FLOOR:.1%})"
    )
    if score >= FLOOR:
        return 0
    for symbol in report["symbols"]:
        if symbol["isExported"] and not symbol["isTypeKnown"]:
            reasons = "; ".join(" ".join(d["message"].split()) for d in symbol["diagnostics"])
            reasons = reasons or "a member or base class is not fully typed"
            print(f"  {symbol['name']}: {reasons}", file=sys.stderr)
    print(f"type completeness {score:.1%} is below the floor of {FLOOR:.1%}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
