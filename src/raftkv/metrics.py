"""A small, dependency-free Prometheus metrics registry for raftkv's ``GET /metrics``.

Counters, gauges and histograms with optional labels, rendered in the Prometheus text
exposition format (version 0.0.4). Everything runs on the server's event loop, so
there is no locking; observing is a dict lookup and a few additions.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Final

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_LATENCY_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "Registry",
]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: Seconds, from 100 µs (a no-fsync apply) to 10 s (a stalled disk).
DEFAULT_LATENCY_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

LabelValues = tuple[str, ...]


def _escape_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if math.isnan(v):
        return "NaN"
    if float(v).is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(float(v))


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)

    def _key(self, labels: Sequence[str]) -> LabelValues:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(v) for v in labels)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A monotonically increasing count."""

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[LabelValues, float] = {}
        if not self.labelnames:
            self._values[()] = 0.0

    def inc(self, amount: float = 1.0, labels: Sequence[str] = ()) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, labels: Sequence[str] = ()) -> float:
        return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[str]:
        return [
            f"{self.name}{_labels(self.labelnames, k)} {_num(v)}"
            for k, v in sorted(self._values.items())
        ]


class Gauge(_Metric):
    """A value that goes up and down; may be computed at scrape time by ``fn``."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        fn: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[LabelValues, float] = {}
        self._fn = fn
        if not self.labelnames and fn is None:
            self._values[()] = 0.0

    def set(self, value: float, labels: Sequence[str] = ()) -> None:
        self._values[self._key(labels)] = float(value)

    def value(self, labels: Sequence[str] = ()) -> float:
        if self._fn is not None and not labels:
            return float(self._fn())
        return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[str]:
        if self._fn is not None:
            return [f"{self.name} {_num(float(self._fn()))}"]
        return [
            f"{self.name}{_labels(self.labelnames, k)} {_num(v)}"
            for k, v in sorted(self._values.items())
        ]


class Histogram(_Metric):
    """Observations counted into cumulative ``le`` buckets, with sum and count."""

    kind = "histogram"

    def __init__(
        self, name: str, help: str, buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS
    ) -> None:
        super().__init__(name, help)
        bs = sorted(float(b) for b in buckets)
        if not bs or bs != sorted(set(bs)):
            raise ValueError("histogram buckets must be distinct and non-empty")
        self.buckets = bs
        self._counts = [0] * (len(bs) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def samples(self) -> list[str]:
        out = []
        acc = 0
        for b, c in zip(self.buckets, self._counts, strict=False):
            acc += c
            out.append(f'{self.name}_bucket{{le="{_num(b)}"}} {acc}')
        out.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{self.name}_sum {_num(self.sum)}")
        out.append(f"{self.name}_count {self.count}")
        return out


Collector = Callable[[], Iterable[str]]


class Registry:
    """The metrics of one server, plus collectors that emit ready-made text lines
    (for counters owned by someone else, such as the transport's)."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._collectors: list[Collector] = []

    def _add(self, m: _Metric) -> None:
        if m.name in self._metrics:
            raise ValueError(f"metric {m.name} registered twice")
        self._metrics[m.name] = m

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        c = Counter(name, help, labelnames)
        self._add(c)
        return c

    def gauge(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        fn: Callable[[], float] | None = None,
    ) -> Gauge:
        g = Gauge(name, help, labelnames, fn)
        self._add(g)
        return g

    def histogram(
        self, name: str, help: str, buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS
    ) -> Histogram:
        h = Histogram(name, help, buckets)
        self._add(h)
        return h

    def add_collector(self, fn: Collector) -> None:
        self._collectors.append(fn)

    def get(self, name: str) -> _Metric | None:
        return self._metrics.get(name)

    def render(self) -> str:
        lines: list[str] = []
        for m in self._metrics.values():
            lines += m.header()
            lines += m.samples()
        for fn in self._collectors:
            lines += fn()
        return "\n".join(lines) + "\n"


def labelled_counter_lines(
    name: str, help: str, kind: str, labelname: str, values: dict[str, float]
) -> list[str]:
    """Text lines for a metric family computed elsewhere, one sample per label value."""
    lines = [f"# HELP {name} {help}", f"# TYPE {name} {kind}"]
    for lv in sorted(values):
        lines.append(f'{name}{{{labelname}="{_escape_label(lv)}"}} {_num(values[lv])}')
    return lines
