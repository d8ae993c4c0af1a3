"""Fail when a module of the package reads or writes another unit's private names.

A unit is one subpackage folder (``_breaker/``, ``stores/redis/``...: its modules work
together and share their private names), or one module at the package's top. A private
name (one leading underscore, not a dunder) used as ``something._name`` must be defined
in the unit that uses it: as a function, class, variable, class attribute, slot or
``self._name`` assignment there. ``self._name`` and ``cls._name`` are the object's own (a
subclass using its base's attributes included). A unit reaching into another's
internals makes both harder to change; give the other a public name instead.

Usage: python .ci/private_access.py [PACKAGE_DIR]   (default: resilient)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# Names of other libraries' objects the package must reach (no public spelling exists),
# each with the reason. Keep this list short.
ALLOWED = {
    "_transport": "httpx: the client's transport, to wrap it (no public setter)",
    "_mounts": "httpx: the client's mounted transports, wrapped the same way",
    "_initialize": "redis-py: whether an asyncio cluster client is connected (no public flag)",
    "_connections": "redis-py: an asyncio cluster node's sockets, closed after its loop ended",
    "_available_connections": "redis-py: a pool's idle sockets, closed after its loop ended",
    "_in_use_connections": "redis-py: a pool's busy sockets, closed after its loop ended",
    "_writer": "redis-py: an asyncio connection's stream writer, closed after its loop ended",
    "_reader": "redis-py: an asyncio connection's stream reader, dropped with its writer",
    "_sock": "asyncio: a transport's socket, closed when its loop is gone",
    "_replace": "NamedTuple._replace, the documented way to copy a named tuple with changes",
    "_addr": "statsd: the UDP client's resolved address (the client sends through its socket)",
    "_thread": "the standard library module _thread",
    "_exit": "os._exit in a forked child",
    "_current_frames": "sys._current_frames, to find a worker's frame",
    "_getframe": "sys._getframe, to find the caller",
}


def defined_in(tree: ast.Module) -> set[str]:
    """Every private name the module defines, in any of the ways listed above."""
    names: set[str] = set()
    aliases = {  # ``_x = other._x`` only renames another module's private name
        id(node.targets[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == node.targets[0].id
    }
    for node in ast.walk(tree):
        if id(node) in aliases:
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.rpartition(".")[2])
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries and names given to getattr/setattr
    return {name for name in names if name.startswith("_")}


def violations(path: Path, own: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        attr = node.attr
        if not attr.startswith("_") or attr.startswith("__") or attr in own or attr in ALLOWED:
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append(f"{path}:{node.lineno}: uses {ast.unparse(node)} (defined in another unit)")
    return found


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "resilient")
    units: dict[Path, list[Path]] = {}
    for path in sorted(root.rglob("*.py")):
        units.setdefault(path if path.parent == root else path.parent, []).append(path)
    found = []
    for paths in units.values():
        own = set().union(*(defined_in(ast.parse(p.read_text(), str(p))) for p in paths))
        found.extend(line for path in paths for line in violations(path, own))
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} use(s) of another unit's private names", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
