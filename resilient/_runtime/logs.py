"""Aggregated logging: one line per kind of trouble per window, never one per call.

``digest``: the first error of a kind from a source is logged at once; repeats inside the
window are only counted; when the window ends one line says how many were folded in, and
when a window passes with none, a recovery line says the trouble stopped.

``transitions``: state changes (a breaker opening, the degradation level moving) are
logged one line each, up to a few per source and window; a source that keeps changing
(a flapping breaker) has the rest folded into one line when its window ends.
"""

from __future__ import annotations

import logging
import threading

from . import config as _config

__all__ = ["ErrorDigest", "TransitionLog", "digest", "transitions"]

logger = logging.getLogger("resilient")


class _Entry:
    __slots__ = ("folded", "latest", "until")

    def __init__(self, until: float, latest: str) -> None:
        self.until = until
        self.latest = latest
        self.folded = 0


class ErrorDigest:
    """Folds repeated errors of one ``(kind, source)`` into one line per ``window`` seconds."""

    def __init__(self, window: float = 60.0, log: logging.Logger = logger) -> None:
        self.window = window
        self.log = log
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()

    def report(self, kind: str, source: str, message: str) -> None:
        """Note one occurrence; it is logged now only if it opens a window."""
        now = _config.state.clock.monotonic()
        lines: list[str] = []
        with self._lock:
            self._expire(now, lines)
            entry = self._entries.get((kind, source))
            if entry is None:
                self._entries[kind, source] = _Entry(now + self.window, message)
                lines.append(f"{source}: {kind}: {message}")
            else:
                entry.folded += 1
                entry.latest = message
        for line in lines:
            self.log.warning("%s", line)

    def tick(self) -> None:
        """Close the windows that ended: summary lines and recovery lines."""
        now = _config.state.clock.monotonic()
        lines: list[str] = []
        with self._lock:
            self._expire(now, lines)
        for line in lines:
            self.log.warning("%s", line)

    def _expire(self, now: float, lines: list[str]) -> None:
        for (kind, source), entry in list(self._entries.items()):
            if now < entry.until:
                continue
            if entry.folded:
                lines.append(
                    f"{source}: {kind}: {entry.folded} more in the last {self.window:g}s; "
                    f"latest: {entry.latest}"
                )
                entry.folded = 0
                entry.until = now + self.window
            else:
                lines.append(f"{source}: {kind}: recovered (none in the last {self.window:g}s)")
                del self._entries[kind, source]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


digest = ErrorDigest()
_config.on_reset(digest.clear)


class _Burst:
    __slots__ = ("folded", "latest", "logged", "until")

    def __init__(self, until: float) -> None:
        self.until = until
        self.logged = 0
        self.folded = 0
        self.latest = ""


class TransitionLog:
    """Logs state changes one line each, at most ``burst`` per source per ``window``
    seconds; the rest of a window are folded into one WARNING line once it ends (written
    with the source's next change, or by ``tick``)."""

    def __init__(self, window: float = 60.0, burst: int = 4, log: logging.Logger = logger) -> None:
        self.window = window
        self.burst = burst
        self.log = log
        self._entries: dict[str, _Burst] = {}
        self._lock = threading.Lock()

    def note(self, source: str, message: str, level: int) -> None:
        """Log ``message`` (a change of ``source``) at ``level``, unless folded."""
        now = _config.state.clock.monotonic()
        lines: list[tuple[int, str]] = []
        with self._lock:
            self._expire(now, lines)
            entry = self._entries.get(source)
            if entry is None:
                entry = self._entries[source] = _Burst(now + self.window)
            if entry.logged < self.burst:
                entry.logged += 1
                lines.append((level, message))
            else:
                entry.folded += 1
                entry.latest = message
        for found, line in lines:
            self.log.log(found, "%s", line)

    def tick(self) -> None:
        """Write the summary lines of the windows that ended."""
        now = _config.state.clock.monotonic()
        lines: list[tuple[int, str]] = []
        with self._lock:
            self._expire(now, lines)
        for found, line in lines:
            self.log.log(found, "%s", line)

    def _expire(self, now: float, lines: list[tuple[int, str]]) -> None:
        for source, entry in list(self._entries.items()):
            if now < entry.until:
                continue
            if entry.folded:
                lines.append(
                    (
                        logging.WARNING,
                        f"{source}: {entry.folded} more changes in the last "
                        f"{self.window:g}s were not logged one by one; latest: {entry.latest}",
                    )
                )
            del self._entries[source]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


transitions = TransitionLog()
_config.on_reset(transitions.clear)
