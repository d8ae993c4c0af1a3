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
        self._forms: dict[tuple[str, Tags, str], tuple[str, str]] = {}
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
        form = self._form
        out: list[str] = []
        for (name, tags), value in batch.counters.items():
            head, tail = form(name, tags, "c")
            out.append(head + _number(value) + tail)
        for (name, tags), value in batch.gauges.items():
            head, tail = form(name, tags, "g")
            if value < 0:  # a leading minus means "decrement" to StatsD: set 0 first
                out.append(head + "0" + tail)
            out.append(head + _number(value) + tail)
        for name, tags, ms in batch.timings:
            head, tail = form(name, tags, "ms")
            out.append(f"{head}{ms:.3f}{tail}")
        return out

    def _form(self, name: str, tags: Tags, kind: str) -> tuple[str, str]:
        """What goes before and after the value of one series, built once per series."""
        key = (name, tags, kind)
        found = self._forms.get(key)
        if found is None:
            rate = f"|@{self.sample_rate:g}" if kind == "ms" and self.sample_rate < 1 else ""
            if tags and self.tag_style == "name":
                folded = ".".join(_segment(v) for _, v in tags)
                found = (f"{self.prefix}{name}.{folded}:", f"|{kind}{rate}")
            elif tags:
                labels = ",".join(f"{_tag(k)}:{_tag(v)}" for k, v in tags)
                found = (f"{self.prefix}{name}:", f"|{kind}{rate}|#{labels}")
            else:
                found = (f"{self.prefix}{name}:", f"|{kind}{rate}")
            if len(self._forms) < 10_000:  # series are few; never let this grow unbounded
                self._forms[key] = found
        return found

    def send(self, batch: Batch) -> None:
        client = self._client or self._connect()
        # Lines are packed into packets here and handed to the client as they are: the
        # package's public calls cannot place DogStatsD tags after the type, and its
        # pipeline would parse and re-format every line.
        limit, packets, size = self.max_udp_size, 0, 0
        packet: list[str] = []
        for line in self.lines(batch):
            if size + len(line) >= limit and packet:
                self._send_packet(client, "\n".join(packet))
                packet, size = [], 0
                packets += 1
                if packets % _PACKETS_PER_BURST == 0:
                    # Give the daemon time to read: a burst larger than its receive buffer
                    # (about 200 KB by default) is silently lost. Only this thread waits.
                    time.sleep(_PAUSE)
            packet.append(line)
            size += len(line) + 1
        if packet:
            self._send_packet(client, "\n".join(packet))

    def _send_packet(self, client: Any, packet: str) -> None:
        try:
            client._after(packet)
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
