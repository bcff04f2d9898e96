"""A small Prometheus registry: counters, gauges and histograms in text format 0.0.4.

Guarantees:
- `Registry.render` is valid text exposition format 0.0.4: one `# HELP` and
  one `# TYPE` line per family, then its samples; label values and help text
  are escaped (backslash, double quote in label values, newline); values are
  written as integers when integral, else as Python's shortest round-trip
  float, with `+Inf`, `-Inf` and `NaN` spelled as the format wants.
- Histograms have fixed upper bounds chosen at registration; every child
  renders cumulative `_bucket` samples with `le` (ending with `le="+Inf"`,
  equal to `_count`), then `_sum` and `_count`.
- Thread safety: every family has one lock, taken by each update of its
  children and by `render`, so any thread may update and a scrape sees each
  family consistently (a histogram's buckets always add up to its count).
- Cost: an update of a bound child (`family.labels(...)` called once, the
  child kept) is one lock and one addition; `labels` itself is a dict look-up.
- Names and label names are checked at registration (`ValueError`); a name
  registered twice is an error, so two parts cannot silently share a metric.

Label values are whatever the caller passes: callers pass configuration ids
(channels, destinations, jobs) and fixed words, never message content.
"""

from __future__ import annotations

import math
import re
import threading
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

DEFAULT_BUCKETS: tuple[float, ...] = (
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
    30.0,
    60.0,
)

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def format_value(value: float) -> str:
    """A sample value as the text format writes it."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label_text(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(
        f'{name}="{_escape_label(value)}"' for name, value in zip(names, values, strict=True)
    )
    return "{" + pairs + "}"


class CounterChild:
    """One labelled series of a counter: only goes up."""

    __slots__ = ("_lock", "value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add `amount` (>= 0; a negative amount raises `ValueError`)."""
        if amount < 0:
            raise ValueError("a counter only goes up")
        with self._lock:
            self.value += amount


class GaugeChild:
    """One labelled series of a gauge: set to any value."""

    __slots__ = ("_lock", "value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.value = 0.0

    def set(self, value: float) -> None:
        with self._lock:
            self.value = value

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount


class HistogramChild:
    """One labelled series of a histogram with the family's fixed upper bounds."""

    __slots__ = ("_bounds", "_lock", "count", "counts", "sum")

    def __init__(self, lock: threading.Lock, bounds: tuple[float, ...]) -> None:
        self._lock = lock
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count `value` in the first bucket whose upper bound is >= it (`le`)."""
        index = bisect_left(self._bounds, value)
        with self._lock:
            self.counts[index] += 1
            self.count += 1
            self.sum += value


Child = TypeVar("Child", CounterChild, GaugeChild, HistogramChild)


class _Family(ABC, Generic[Child]):
    """A metric family: its name, help, label names and one child series per label set."""

    kind = ""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str]) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in label_names:
            if not _LABEL.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} for {name}")
        if len(set(label_names)) != len(label_names):
            raise ValueError(f"repeated label name for {name}")
        self.name = name
        self.help = help_text
        self.label_names = tuple(label_names)
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], Child] = {}

    @abstractmethod
    def _new_child(self) -> Child:
        """A fresh series of this family's kind."""

    def labels(self, *values: str) -> Child:
        """The series for these label values (in label-name order), created at first use."""
        child = self._children.get(values)
        if child is not None:
            return child
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {len(values)}")
        with self._lock:
            return self._children.setdefault(values, self._new_child())

    def clear(self) -> None:
        """Forget every series (for figures re-read whole at each scrape)."""
        with self._lock:
            self._children.clear()

    @abstractmethod
    def _samples(self, lines: list[str]) -> None:
        """Append the sample lines of every series (the lock is held)."""

    def render(self, lines: list[str]) -> None:
        lines.append(f"# HELP {self.name} {_escape_help(self.help)}")
        lines.append(f"# TYPE {self.name} {self.kind}")
        with self._lock:
            self._samples(lines)


class Counter(_Family[CounterChild]):
    kind = "counter"

    def _new_child(self) -> CounterChild:
        return CounterChild(self._lock)

    def _samples(self, lines: list[str]) -> None:
        for values, child in sorted(self._children.items()):
            lines.append(
                f"{self.name}{_label_text(self.label_names, values)} {format_value(child.value)}"
            )


class Gauge(_Family[GaugeChild]):
    kind = "gauge"

    def _new_child(self) -> GaugeChild:
        return GaugeChild(self._lock)

    def _samples(self, lines: list[str]) -> None:
        for values, child in sorted(self._children.items()):
            lines.append(
                f"{self.name}{_label_text(self.label_names, values)} {format_value(child.value)}"
            )


class Histogram(_Family[HistogramChild]):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        label_names: Sequence[str],
        buckets: Iterable[float] = DEFAULT_BUCKETS,
    ) -> None:
        if "le" in label_names:
            raise ValueError(f"{name}: `le` is reserved for histogram buckets")
        super().__init__(name, help_text, label_names)
        bounds = tuple(sorted(float(b) for b in buckets if not math.isinf(b)))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be distinct finite numbers")
        self.bounds = bounds

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self._lock, self.bounds)

    def _samples(self, lines: list[str]) -> None:
        names = (*self.label_names, "le")
        for values, child in sorted(self._children.items()):
            cumulative = 0
            for bound, count in zip((*self.bounds, math.inf), child.counts, strict=True):
                cumulative += count
                labels = _label_text(names, (*values, format_value(bound)))
                lines.append(f"{self.name}_bucket{labels} {cumulative}")
            plain = _label_text(self.label_names, values)
            lines.append(f"{self.name}_sum{plain} {format_value(child.sum)}")
            lines.append(f"{self.name}_count{plain} {child.count}")


class Registry:
    """The metric families of one process, rendered together for `GET /metrics`."""

    def __init__(self) -> None:
        self._families: dict[str, Counter | Gauge | Histogram] = {}
        self._lock = threading.Lock()

    def _add(self, family: Counter | Gauge | Histogram) -> None:
        with self._lock:
            if family.name in self._families:
                raise ValueError(f"metric {family.name} is registered already")
            self._families[family.name] = family

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        family = Counter(name, help_text, labels)
        self._add(family)
        return family

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        family = Gauge(name, help_text, labels)
        self._add(family)
        return family

    def histogram(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Iterable[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        family = Histogram(name, help_text, labels, buckets)
        self._add(family)
        return family

    def render(self) -> str:
        """Every family in registration order, in text format 0.0.4 (ends with a newline)."""
        with self._lock:
            families = list(self._families.values())
        lines: list[str] = []
        for family in families:
            family.render(lines)
        return "\n".join(lines) + "\n"
