"""``StatsdSink``: batched StatsD lines over UDP (or TCP), built on the ``statsd`` package."""

from __future__ import annotations

import re
import socket
import time
from collections import Counter
from typing import Any, Final, Literal

from .._runtime import validate as _validate
from .._runtime.logs import digest
from .._runtime.types import Tags
from ..exceptions import ConfigError
from ._buffered import Batch, BufferedSink
from ._names import METRICS_DROPPED

__all__ = ["StatsdSink"]

_PACKETS_PER_BURST = 32
_PAUSE = 0.002
MAX_UDP_PAYLOAD: Final = 65_507
"""The largest UDP datagram IPv4 can carry (65,535 less the IP and UDP headers)."""

# Separators of the StatsD line (``name:value|type|@rate|#tag:value,tag``), whitespace and
# control characters: none of them may reach the wire inside a name, or one value could
# end its line and add lines of its own.
_NOT_IN_NAMES = re.compile(r"[:|@#,\s\x00-\x1f\x7f-\x9f]")  # nor in tag keys or values
_NOT_IN_SEGMENTS = re.compile(r"[^A-Za-z0-9_\-]")  # a folded value is one path segment
_UNSENDABLE: Final = ("", "")
"""The form of a series whose name cannot be encoded (a lone surrogate): never sent."""


def _clean(text: str) -> str:
    return _NOT_IN_NAMES.sub("_", text)


def _segment(text: str) -> str:
    return _NOT_IN_SEGMENTS.sub("_", text)


def _check_prefix(prefix: object) -> str:
    if prefix is None:
        return ""
    allowed = "None or printable text without whitespace or any of : | @ # ,"
    if not isinstance(prefix, str) or not prefix.isprintable() or _NOT_IN_NAMES.search(prefix):
        raise ConfigError("prefix", prefix, allowed)
    stripped = prefix.rstrip(".")
    return stripped + "." if stripped else ""


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
        self.port: int = _validate.integer("port", port, minimum=1)
        if self.port > 65535:
            raise ConfigError("port", port, "a port number within 1..65535")
        if tag_style not in ("dogstatsd", "name"):
            raise ConfigError("tag_style", tag_style, "'dogstatsd' or 'name'")
        if protocol not in ("udp", "tcp"):
            raise ConfigError("protocol", protocol, "'udp' or 'tcp'")
        self.prefix: str = _check_prefix(prefix)
        self.tag_style = tag_style
        self.protocol = protocol
        self.max_udp_size: int = _validate.integer("max_udp_size", max_udp_size, minimum=64)
        if self.max_udp_size > MAX_UDP_PAYLOAD:
            raise ConfigError(
                "max_udp_size", max_udp_size, f"an integer within 64..{MAX_UDP_PAYLOAD:,}"
            )
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
        """The StatsD lines for one batch (what goes on the wire).

        A value that cannot be sent (NaN, infinite or not a number, or in a series whose
        name cannot be encoded) is left out alone and counted in ``metrics_dropped_total``.
        """
        return [line for chunk in self._chunks(batch) for line in chunk.split("\n")]

    def _chunks(self, batch: Batch) -> list[str]:
        """:meth:`lines`, with the lines of one timing value repeated in one string."""
        forms, build = self._forms, self._form
        out: list[str] = []
        append = out.append
        lost = 0
        for (name, tags), value in batch.counters.items():
            head, tail = forms.get((name, tags, "c")) or build(name, tags, "c")
            try:
                text = _number(value)
            except (TypeError, ValueError):
                text = None
            if text is None or not head:
                lost += 1
                continue
            append(head + text + tail)
        for (name, tags), value in batch.gauges.items():
            head, tail = forms.get((name, tags, "g")) or build(name, tags, "g")
            try:
                text = _number(value)
            except (TypeError, ValueError):
                text = None
            if text is None or not head:
                lost += 1
                continue
            if value < 0:  # a leading minus means "decrement" to StatsD: set 0 first
                append(head + "0" + tail)
            append(head + text + tail)
        for (name, tags), values in batch.series.items():
            head, tail = forms.get((name, tags, "ms")) or build(name, tags, "ms")
            if not head:
                lost += len(values)
                continue
            # Values that read the same at the wire's precision (a microsecond) are formatted
            # once: a thousand calls of a fast function take one format and one repetition.
            try:
                counts = Counter(map(round, map(_PER_MS, values)))
            except (TypeError, ValueError, OverflowError):  # NaN, ±inf or not a number
                counts, dropped = _microseconds(values)
                lost += dropped
            for us, repeats in counts.items():
                line = f"{head}{us / 1000:.3f}{tail}"
                append(line + f"\n{line}" * (repeats - 1) if repeats > 1 else line)
        if lost:
            head, tail = build(METRICS_DROPPED, (), "c")
            append(f"{head}{lost}{tail}")
            digest.report(
                "metrics dropped",
                repr(self),
                f"{lost} value(s) left out: not a finite number, or a name that cannot be "
                "encoded as UTF-8",
            )
        return out

    def _form(self, name: str, tags: Tags, kind: str) -> tuple[str, str]:
        """What goes before and after the value of one series, built once per series.

        Names and tags are cleaned of separators and control characters here, once, so
        no name can add a line of its own; ``_UNSENDABLE`` for a series whose text
        cannot be encoded as UTF-8.
        """
        key = (name, tags, kind)
        found = self._forms.get(key)
        if found is None:
            rate = f"|@{self.sample_rate:g}" if kind == "ms" and self.sample_rate < 1 else ""
            if tags and self.tag_style == "name":
                folded = ".".join(_segment(v) for _, v in tags)
                found = (f"{self.prefix}{_clean(name)}.{folded}:", f"|{kind}{rate}")
            elif tags:
                labels = ",".join(f"{_clean(k)}:{_clean(v)}" for k, v in tags)
                found = (f"{self.prefix}{_clean(name)}:", f"|{kind}{rate}|#{labels}")
            else:
                found = (f"{self.prefix}{_clean(name)}:", f"|{kind}{rate}")
            try:
                (found[0] + found[1]).encode()
            except UnicodeEncodeError:
                found = _UNSENDABLE
            if len(self._forms) < 10_000:  # series are few; never let this grow unbounded
                self._forms[key] = found
        return found

    def send(self, batch: Batch) -> None:
        client = self._client or self._connect()
        # The batch is encoded once (UTF-8: every series was checked when its form was
        # built) and cut at line ends into packets of at most max_udp_size bytes.
        data = "\n".join(self._chunks(batch)).encode()
        udp = self.protocol == "udp"
        limit, end, start, packets, oversize = self.max_udp_size, len(data), 0, 0, 0
        while start < end:
            stop = start + limit
            if stop >= end:
                cut = end
            else:
                cut = data.rfind(b"\n", start, stop + 1)
                if cut <= start:  # one line longer than a packet: it goes alone
                    cut = data.find(b"\n", stop)
                    cut = end if cut < 0 else cut
            packet, first, start = data[start:cut], start, cut + 1
            if udp and len(packet) > MAX_UDP_PAYLOAD:  # no datagram can carry that line
                oversize += 1
                continue
            if not self._deliver(client, packet):
                self._dropped += data.count(b"\n", first) + 1 + oversize  # the rest is lost
                return
            packets += 1
            if packets % _PACKETS_PER_BURST == 0:
                # Give the daemon time to read: a burst larger than its receive buffer
                # (about 200 KB by default) is silently lost. Only this thread waits.
                time.sleep(_PAUSE)
        if oversize:
            digest.report("metrics dropped", repr(self), "a line longer than a UDP datagram")
            head, tail = self._form(METRICS_DROPPED, (), "c")
            if not self._deliver(client, f"{head}{oversize}{tail}".encode()):
                self._dropped += oversize

    def _deliver(self, client: Any, packet: bytes) -> bool:
        """Send one packet; ``False`` (logged once) when the socket refused it."""
        try:
            self._send_packet(client, packet)
        except OSError as error:
            digest.report("metrics not sent", repr(self), f"{type(error).__name__}: {error}")
            return False
        return True

    def _send_packet(self, client: Any, packet: bytes) -> None:
        # Bytes go straight to the package's socket: its own send encodes as ASCII (one
        # non-ASCII name would fail the whole packet) and hides every UDP error.
        try:
            if self.protocol == "tcp":
                if client._sock is None:
                    client.connect()
                client._sock.sendall(packet + b"\n")
            else:
                client._sock.sendto(packet, client._addr)
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


_PER_MS: Final = (1000.0).__mul__
"""Milliseconds to microseconds, the precision of a timing on the wire (``%.3f``)."""


def _microseconds(values: list[float]) -> tuple[Counter[int], int]:
    """How many times each whole microsecond occurs, and how many values cannot be sent."""
    counts: Counter[int] = Counter()
    lost = 0
    for ms in values:
        try:
            if ms - ms:  # NaN or infinite: ms - ms is NaN, which is true
                lost += 1
                continue
            counts[round(ms * 1000.0)] += 1
        except (TypeError, ValueError, OverflowError):
            lost += 1
    return counts, lost


def _number(value: float) -> str | None:
    """The value as StatsD reads it; ``None`` for NaN or infinity, which it cannot."""
    if float(value).is_integer():
        return str(int(value))
    return None if value - value else f"{value:g}"
