"""``StatsdSink``: batched StatsD lines over UDP (or TCP), built on the ``statsd`` package."""

from __future__ import annotations

import re
import socket
import time
from typing import Any, Literal

from .. import _validate
from ..exceptions import ConfigError
from ._buffered import Batch, BufferedSink
from ._protocol import Tags

__all__ = ["StatsdSink"]

_PACKETS_PER_BURST = 32
_PAUSE = 0.002
_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_\-]")  # a folded value is one path segment
_NOT_IN_TAGS = re.compile(r"[|,#@:\s]")  # these separate fields in a DogStatsD line


def _segment(text: str) -> str:
    return _NOT_IN_NAMES.sub("_", text)


def _tag(text: str) -> str:
    return _NOT_IN_TAGS.sub("_", text)


class StatsdSink(BufferedSink):
    """Sends metrics to a StatsD daemon in batched packets from a background thread.

    ``tag_style="dogstatsd"`` appends tags as ``|#key:value`` (DogStatsD, Telegraf,
    statsd-exporter); ``tag_style="name"`` folds their values into the metric name
    (``retry_attempts_total.ai-generate``) for plain StatsD and Graphite. Counters are
    summed in-process, so each flush sends one line per series.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 8125,
        *,
        prefix: str | None = None,
        sample_rate: float = 1.0,
        tag_style: Literal["dogstatsd", "name"] = "dogstatsd",
        protocol: Literal["udp", "tcp"] = "udp",
        max_udp_size: int = 1432,
        flush_interval: float = 0.5,
        batch_size: int = 1000,
        max_buffer: int = 100_000,
    ) -> None:
        given: object = host  # checked at runtime for untyped callers
        if not isinstance(given, str) or not given:
            raise ConfigError("host", host, "a host name or address")
        self.host = host
        self.port = _validate.integer("port", port, minimum=1)
        if self.port > 65535:
            raise ConfigError("port", port, "a port number within 1..65535")
        if tag_style not in ("dogstatsd", "name"):
            raise ConfigError("tag_style", tag_style, "'dogstatsd' or 'name'")
        if protocol not in ("udp", "tcp"):
            raise ConfigError("protocol", protocol, "'udp' or 'tcp'")
        if prefix is not None and not isinstance(prefix, str):
            raise ConfigError("prefix", prefix, "a string or None")
        self.prefix = prefix.rstrip(".") + "." if prefix else ""
        self.tag_style = tag_style
        self.protocol = protocol
        self.max_udp_size = _validate.integer("max_udp_size", max_udp_size, minimum=64)
        self._client: Any = None
        super().__init__(
            flush_interval=flush_interval,
            batch_size=batch_size,
            max_buffer=max_buffer,
            sample_rate=sample_rate,
        )

    def __repr__(self) -> str:
        return f"StatsdSink({self.host}:{self.port}/{self.protocol})"

    def lines(self, batch: Batch) -> list[str]:
        """The StatsD lines for one batch (what goes on the wire)."""
        out = [
            self._line(name, tags, _number(value), "c", "")
            for (name, tags), value in batch.counters.items()
        ]
        for (name, tags), value in batch.gauges.items():
            if value < 0:  # a leading minus means "decrement" to StatsD: set 0 first
                out.append(self._line(name, tags, "0", "g", ""))
            out.append(self._line(name, tags, _number(value), "g", ""))
        rate = f"|@{self.sample_rate:g}" if self.sample_rate < 1 else ""
        out.extend(
            self._line(name, tags, f"{ms:.3f}", "ms", rate) for name, tags, ms in batch.timings
        )
        return out

    def _line(self, name: str, tags: Tags, value: str, kind: str, rate: str) -> str:
        if not tags:
            return f"{self.prefix}{name}:{value}|{kind}{rate}"
        if self.tag_style == "name":
            folded = ".".join(_segment(v) for _, v in tags)
            return f"{self.prefix}{name}.{folded}:{value}|{kind}{rate}"
        labels = ",".join(f"{_tag(k)}:{_tag(v)}" for k, v in tags)
        return f"{self.prefix}{name}:{value}|{kind}{rate}|#{labels}"

    def send(self, batch: Batch) -> None:
        client = self._client or self._connect()
        burst = self.max_udp_size * _PACKETS_PER_BURST
        pipe, size = client.pipeline(), 0
        for line in self.lines(batch):
            if size + len(line) >= burst:
                self._send_pipe(pipe)
                # Give the daemon time to read: a burst larger than its receive buffer
                # (about 200 KB by default) is silently lost. Only this thread waits.
                time.sleep(_PAUSE)
                pipe, size = client.pipeline(), 0
            stat, _, value = line.partition(":")
            # The package's public calls cannot place DogStatsD tags after the type, so
            # lines are built here and queued as-is; the pipeline packs them into packets.
            pipe._send_stat(stat, value, 1)
            size += len(line) + 1
        self._send_pipe(pipe)

    def _send_pipe(self, pipe: Any) -> None:
        try:
            pipe.send()
        except OSError:
            self.disconnect()  # reconnect (TCP) or re-resolve (UDP) on the next flush
            raise

    def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _connect(self) -> Any:
        import statsd

        if self.protocol == "tcp":
            self._client = statsd.TCPStatsClient(self.host, self.port, timeout=1.0)
        else:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            self._client = statsd.StatsClient(
                self.host, self.port, maxudpsize=self.max_udp_size, ipv6=family == socket.AF_INET6
            )
        return self._client


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
