"""Benchmark ``resilient`` against bare calls, references and peer libraries.

Run from the repository root (a checkout works, no install needed)::

    python benchmarks/run.py                   # full run
    python benchmarks/run.py --quick           # CI smoke run, < 20 s
    python benchmarks/run.py --only retry      # scenarios whose name contains "retry"
    python benchmarks/run.py --json out.json   # also write the results as JSON
    python benchmarks/run.py --check           # exit 1 if any target FAILs

Every ``benchmarks/*.py`` module not starting with ``_`` (except this one) is
imported and registers its scenarios with ``_harness.register``; add a new
module to add scenarios (benchmarks/ is first on ``sys.path``, so do not name
a module after a package it benchmarks).  Peers that are not installed show as
"not installed".  Figures are the median ns/call over several repeats;
"x bare" is relative to the bare call of the same scenario and "x ref" to the
row the scenario's target compares against.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

# Running as a script puts benchmarks/ on sys.path, so _harness imports.
from _harness import REGISTRY, REPO_ROOT, Options, Row, ScenarioResult

_HERE = Path(__file__).resolve().parent
if str(REPO_ROOT) not in sys.path:  # make a checkout's `resilient` importable
    sys.path.insert(0, str(REPO_ROOT))

FIRST_MODULES = ("foundation",)  # shown first; the rest alphabetically


def discover() -> list[str]:
    names = sorted(
        p.stem for p in _HERE.glob("*.py") if not p.stem.startswith("_") and p.stem != "run"
    )
    return [n for n in FIRST_MODULES if n in names] + [n for n in names if n not in FIRST_MODULES]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="fewer iterations (CI smoke)")
    ap.add_argument("--only", metavar="SUBSTRING", help="run scenarios whose name contains this")
    ap.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    ap.add_argument("--check", action="store_true", help="exit 1 if any target FAILs")
    ap.add_argument("--repeats", type=int, help="repeats per row (default 5, quick 3)")
    ap.add_argument("--min-time", type=float, help="seconds per repeat (default 0.1, quick 0.01)")
    return ap.parse_args(argv)


def make_options(args: argparse.Namespace) -> Options:
    base = Options(min_time=0.01, repeats=3, import_runs=3) if args.quick else Options()
    return Options(
        min_time=args.min_time if args.min_time is not None else base.min_time,
        repeats=args.repeats if args.repeats is not None else base.repeats,
        import_runs=base.import_runs,
    )


# --------------------------------------------------------------------------
# output

_COLS = ("scenario", "implementation", "ns/call", "x bare", "x ref", "")


def _fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "-"
    return f"{ns:.1f}" if ns < 1000 else f"{ns:,.0f}"


def _fmt_ratio(num: float | None, den: float | None) -> str:
    if num is None or den is None or den <= 0:
        return "-"
    return f"{num / den:.2f}"


def _cells(res: ScenarioResult, row: Row, first: bool) -> tuple[str, ...]:
    bare = res.row("bare")
    ref_ns = res.target.ref_ns if res.target else None
    if not row.ok:
        return (res.name if first else "", row.impl, "-", "-", "-", row.status)
    return (
        res.name if first else "",
        row.impl,
        _fmt_ns(row.ns),
        _fmt_ratio(row.ns, bare.ns if bare and bare.ok else None),
        _fmt_ratio(row.ns, ref_ns),
        "<- ref" if res.target and row.impl == res.target.ref_impl else "",
    )


class Table:
    """Prints rows as they arrive with fixed column widths."""

    widths = (34, 20, 12, 8, 7, 0)

    def line(self, cells: tuple[str, ...]) -> None:
        out = []
        for i, (cell, width) in enumerate(zip(cells, self.widths, strict=True)):
            out.append(cell.rjust(width) if 2 <= i <= 4 else cell.ljust(width))
        print("  ".join(out).rstrip(), flush=True)

    def header(self) -> None:
        self.line(_COLS)
        print("-" * (sum(self.widths) + 2 * (len(self.widths) - 1) + 6))

    def scenario(self, res: ScenarioResult) -> None:
        for i, row in enumerate(res.rows):
            self.line(_cells(res, row, i == 0))
        pad = " " * (self.widths[0] + 2)
        if res.target:
            print(f"{pad}target: {res.target.text} -> {res.target.status}")
        for note in res.notes:
            print(f"{pad}note: {note}")
        print(flush=True)


def _versions(results: list[ScenarioResult]) -> dict[str, str]:
    names = {row.impl for res in results for row in res.rows} | {"resilient"}
    found = {}
    for name in sorted(names):
        try:
            found[name] = importlib.metadata.version(name)
        except (importlib.metadata.PackageNotFoundError, ValueError):
            continue
    if "resilient" not in found:
        try:
            found["resilient"] = str(importlib.import_module("resilient").__version__)
        except Exception:
            found["resilient"] = "checkout"
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    opts = make_options(args)
    for name in discover():
        importlib.import_module(name)
    scenarios = [s for s in REGISTRY if not args.only or args.only.lower() in s.name.lower()]
    if not scenarios:
        known = ", ".join(repr(s.name) for s in REGISTRY)
        print(f"no scenario matches --only {args.only!r}; known: {known}", file=sys.stderr)
        return 2
    mode = "quick" if args.quick else "full"
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}) "
        f"on {platform.platform()}; {mode} mode: {opts.repeats} repeats x >= "
        f"{opts.min_time * 1000:g} ms, median ns/call\n"
    )
    table = Table()
    table.header()
    started = time.perf_counter()
    results: list[ScenarioResult] = []
    for scenario in scenarios:
        res = scenario.run(opts)
        results.append(res)
        table.scenario(res)
    elapsed = time.perf_counter() - started

    statuses = [r.target.status for r in results if r.target]
    summary = {s: statuses.count(s) for s in ("PASS", "FAIL", "SKIP", "INFO") if s in statuses}
    versions = _versions(results)
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"targets: {summary or 'none'}; {len(results)} scenarios in {elapsed:.1f} s")

    if args.json:
        payload = {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "mode": mode,
            "options": asdict(opts),
            "versions": versions,
            "elapsed_s": elapsed,
            "scenarios": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if args.check and "FAIL" in statuses else 0


if __name__ == "__main__":
    sys.exit(main())
