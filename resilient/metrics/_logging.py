"""``LoggingSink``: a periodic summary of the metrics in the log, never a line per call."""

from __future__ import annotations

import logging

from .._runtime import validate as _validate
from .._runtime.types import Tags
from ..exceptions import ConfigError
from ._buffered import Batch, BufferedSink

__all__ = ["LoggingSink"]


def _label(name: str, tags: Tags) -> str:
    return f"{name}{{{','.join(f'{k}={v}' for k, v in tags)}}}" if tags else name


class LoggingSink(BufferedSink):
    """Logs one summary line per ``flush_interval`` (default 60 s) when anything happened."""

    def __init__(
        self,
        logger: logging.Logger | str = "resilient.metrics",
        *,
        level: int = logging.INFO,
        flush_interval: float = 60.0,
        max_buffer: int = 100_000,
    ) -> None:
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        elif not isinstance(logger, logging.Logger):
            raise ConfigError("logger", logger, "a logging.Logger or a logger's name")
        given: object = level  # checked at run time whatever the annotation says
        if isinstance(given, bool) or not isinstance(given, int) or given < 0:
            raise ConfigError("level", level, "a logging level such as logging.INFO (an int)")
        _validate.integer("max_buffer", max_buffer, minimum=1)
        self.logger = logger
        self.level = level
        super().__init__(
            flush_interval=flush_interval, batch_size=max_buffer, max_buffer=max_buffer
        )

    def __repr__(self) -> str:
        return f"LoggingSink({self.logger.name!r})"

    def send(self, batch: Batch) -> None:
        parts = [f"{_label(n, t)}={v:g}" for (n, t), v in sorted(batch.counters.items())]
        parts += [f"{_label(n, t)}={v:g}" for (n, t), v in sorted(batch.gauges.items())]
        for (name, tags), values in sorted(batch.series.items()):
            values.sort()
            median = values[len(values) // 2]
            parts.append(
                f"{_label(name, tags)} n={len(values)} p50={median:.1f}ms max={values[-1]:.1f}ms"
            )
        self.logger.log(self.level, "metrics: %s", "; ".join(parts))
