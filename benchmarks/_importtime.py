"""Import-time measurement in fresh interpreters (``python -X importtime``)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass, field

from _harness import REPO_ROOT, Options, Role, Row, Scenario, ScenarioResult, Target

_MARKER = "--benchmark-import-start--"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    parts = [str(REPO_ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    # Measure imports as an installed package runs them: from cached bytecode. With
    # PYTHONDONTWRITEBYTECODE set, a checkout would be compiled from source every time.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=_env(),
        timeout=60,
        check=False,
    )


def parse_importtime(stderr: str) -> float:
    """Sum (in µs) the cumulative column of top-level ``-X importtime`` lines.

    Only lines after the marker printed by :func:`import_time_us` count, so
    the interpreter's own start-up imports (``site``, ``encodings``...) are
    excluded.  Top-level lines are those whose name has no indentation.
    """
    lines = stderr.splitlines()
    if _MARKER in lines:
        lines = lines[lines.index(_MARKER) + 1 :]
    total = 0.0
    for line in lines:
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:") :].split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue  # header line
        name = fields[2]
        if name.startswith(" ") and not name.startswith("  "):
            total += float(fields[1])
    return total


def import_time_us(module: str) -> float:
    """Cumulative import time of ``module`` (µs) in a fresh interpreter."""
    _run(f"import {module}")  # warm-up: writes the bytecode cache
    code = f"import sys; print({_MARKER!r}, file=sys.stderr, flush=True); import {module}"
    proc = _run(code, "-X", "importtime")
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or ["failed"]
        if "ModuleNotFoundError" in last[0]:
            raise ModuleNotFoundError(last[0])
        raise RuntimeError(last[0])
    return parse_importtime(proc.stderr)


def modules_imported_by(module: str, candidates: tuple[str, ...]) -> list[str] | str:
    """Which of ``candidates`` end up in ``sys.modules`` after ``import module``."""
    code = f"import {module}, sys; print([m for m in {candidates!r} if m in sys.modules])"
    proc = _run(code)
    if proc.returncode != 0:
        return "error: " + (proc.stderr.strip().splitlines()[-1:] or ["failed"])[0]
    return list(ast.literal_eval(proc.stdout.strip()))


@dataclass
class ImportTimeScenario(Scenario):
    """Min over ``opts.import_runs`` fresh interpreters of each module's import time."""

    name: str
    modules: list[tuple[str, Role]]  # (module, role)
    target: Target | None = None
    watch: tuple[str, ...] = ()  # heavy deps that ``ours`` should not import
    notes: list[str] = field(default_factory=list)

    def run(self, opts: Options) -> ScenarioResult:
        """Alternate modules run by run (A, B, A, B, ...); keep each one's min."""
        rows = [Row(module, role) for module, role in self.modules]
        runs = max(1, opts.import_runs)
        for _ in range(runs):
            for row in rows:
                if row.status == "ok":
                    self._sample(row)
        for row in rows:
            if row.status == "ok" and row.repeats_ns:
                row.ns = row.min_ns = min(row.repeats_ns)
                row.n = 1
        timed = ", ".join(f"{r.impl} {r.ns / 1e6:.2f} ms" for r in rows if r.ns)
        notes = [f"min cumulative import time over {runs} interpreters: {timed}"]
        ours = next((r.impl for r in rows if r.role == "ours"), None)
        if ours is not None and self.watch:
            found = modules_imported_by(ours, self.watch)
            notes.append(f"`import {ours}` also imports {list(self.watch)} -> {found}")
        target = self.target.evaluate(rows) if self.target else None
        return ScenarioResult(self.name, rows, target, notes + self.notes)

    @staticmethod
    def _sample(row: Row) -> None:
        try:
            row.repeats_ns.append(import_time_us(row.impl) * 1000.0)
        except ModuleNotFoundError as exc:
            row.status = f"error: {exc}" if row.role == "ours" else "not installed"
        except Exception as exc:  # report, never crash
            row.status = f"error: {type(exc).__name__}: {exc}"
