"""Reconciliation: compare a source and a destination by business key, classify the drift.

Each side is an async iterable of `KeyState` (business key, content hash,
version, and optionally the source record). Every distinct business key seen
on either side lands in exactly one class, so the classes partition the keys:

| class | meaning | repair |
|---|---|---|
| `matched` | same content hash (versions are not compared then) | none |
| `missing_in_destination` | only the source has the key | resend the source record |
| `stale_version` | hashes differ, destination version lower | resend the source record |
| `content_mismatch` | hashes differ, versions equal or either unknown | resend the source record |
| `destination_ahead` | hashes differ, destination version higher | review (a resend goes back) |
| `unexpected_extra` | only the destination has the key | review (never deleted for you) |

`destination_ahead` is not drift to repair: the destination already holds a
later state than the source read (typically a flow delivery that arrived
after the window was read); it is counted so it can be seen.

A key that occurs more than once on one side is taken at its *first*
occurrence; later ones are counted in `source_duplicates` /
`destination_duplicates` and otherwise ignored.

Two strategies, both exact:

- `ordered=True` (the default): both sides arrive sorted by business key
  (Python string order, i.e. code point order: SQLite's default BINARY
  collation, PostgreSQL `ORDER BY key COLLATE "C"`). A merge join holds one
  item per side, so memory does not grow with the number of keys. A key
  smaller than its predecessor raises `UnorderedInputError`.
- `ordered=False`: any order. The destination side is indexed first, one
  dict entry per key holding a 64-bit digest of its content hash and its
  version; then the source side streams past it. Memory grows with the
  destination's keys. Two different hashes are taken as equal with
  probability 2^-64 per key; the destination's hash text is not kept, so it
  is empty in that strategy's differences.

Measured (1,000,000 keys per side, 13-character keys, SHA-256 hex hashes,
1,000 differences, inputs generated on the fly, one shared CPU core):
`ordered=True` about 4.6 s with no measurable growth of the process
(+0.2 MB peak RSS); `ordered=False` about 4.2 s and +137 MB peak RSS (about
140 bytes per destination key). Generating the inputs is most of the time.

The report counts every key; it keeps the first `keep` differences found (in
key order with `ordered=True`) with `truncated` set when there were more.
`on_difference`, when given, is awaited with every difference as it is found,
so a caller can emit every repair without the report holding them all.
Nothing here does I/O or logs; business keys appear only in the report.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from thumpflow.core.batch import SourceRecord, Window

T = TypeVar("T")

_HASH_MASK = (1 << 64) - 1
_SEEN = -1


class UnorderedInputError(ValueError):
    """A side of an `ordered=True` reconciliation was not sorted by business key."""


class DifferenceKind(StrEnum):
    MISSING_IN_DESTINATION = "missing_in_destination"
    STALE_VERSION = "stale_version"
    CONTENT_MISMATCH = "content_mismatch"
    DESTINATION_AHEAD = "destination_ahead"
    UNEXPECTED_EXTRA = "unexpected_extra"

    @property
    def repairable(self) -> bool:
        """Whether resending the source record repairs it."""
        return self in _REPAIRABLE


_REPAIRABLE = frozenset(
    {
        DifferenceKind.MISSING_IN_DESTINATION,
        DifferenceKind.STALE_VERSION,
        DifferenceKind.CONTENT_MISMATCH,
    }
)


@dataclass(slots=True, frozen=True)
class KeyState:
    """What one side holds for one business key; `record` is the source record, if known."""

    business_key: str
    content_hash: str
    version: int | None = None
    record: SourceRecord | None = None


@dataclass(slots=True, frozen=True)
class Difference:
    """One key whose two sides disagree; the side it is absent from has None fields."""

    kind: DifferenceKind
    business_key: str
    source_hash: str | None = None
    destination_hash: str | None = None
    source_version: int | None = None
    destination_version: int | None = None
    record: SourceRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "business_key": self.business_key,
            "source_hash": self.source_hash,
            "destination_hash": self.destination_hash,
            "source_version": self.source_version,
            "destination_version": self.destination_version,
        }


@dataclass(slots=True, frozen=True)
class RepairAction:
    """What to do about one difference: `resend` the source record, or `review` by a person.

    `record` is the source record to resend when the source side carried it;
    when it is None the caller reads the key again from the source.
    """

    action: str
    kind: DifferenceKind
    business_key: str
    record: SourceRecord | None


@dataclass(slots=True, frozen=True)
class ReconciliationReport:
    """Counts of every class over all keys, and the first differences found."""

    window: Window
    source_keys: int
    destination_keys: int
    matched: int
    counts: Mapping[DifferenceKind, int]
    differences: tuple[Difference, ...]
    truncated: bool
    source_duplicates: int = 0
    destination_duplicates: int = 0

    @property
    def total_keys(self) -> int:
        """Distinct business keys seen on either side."""
        return self.matched + sum(self.counts.values())

    @property
    def total_differences(self) -> int:
        return sum(self.counts.values())

    @property
    def in_sync(self) -> bool:
        """No difference that needs a repair or a review."""
        return self.total_differences == 0

    def repairs(self) -> list[RepairAction]:
        """One action per kept difference: `resend` (repairable) or `review`."""
        return [
            RepairAction(
                "resend" if d.kind.repairable else "review", d.kind, d.business_key, d.record
            )
            for d in self.differences
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": {"start": self.window.start, "end": self.window.end},
            "source_keys": self.source_keys,
            "destination_keys": self.destination_keys,
            "total_keys": self.total_keys,
            "matched": self.matched,
            "counts": {str(kind): self.counts.get(kind, 0) for kind in DifferenceKind},
            "source_duplicates": self.source_duplicates,
            "destination_duplicates": self.destination_duplicates,
            "truncated": self.truncated,
            "differences": [d.to_dict() for d in self.differences],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def render_table(self, limit: int = 50) -> str:
        """A plain-text summary and the first `limit` differences, for people."""
        window = f"{self.window.start or '-'} .. {self.window.end or '-'}"
        lines = [
            f"reconciliation over {window}",
            f"source keys {self.source_keys}, destination keys {self.destination_keys}, "
            f"matched {self.matched}",
        ]
        if self.source_duplicates or self.destination_duplicates:
            lines.append(
                f"duplicate keys ignored: source {self.source_duplicates}, "
                f"destination {self.destination_duplicates}"
            )
        lines.append("")
        width = max(len(str(kind)) for kind in DifferenceKind)
        lines.extend(
            f"  {kind!s:<{width}}  {self.counts.get(kind, 0):>9}" for kind in DifferenceKind
        )
        if not self.differences:
            lines.append("")
            lines.append("no differences")
            return "\n".join(lines)
        rows = [("kind", "business key", "source v/hash", "destination v/hash")]
        rows.extend(
            (
                str(d.kind),
                d.business_key,
                _side(d.source_version, d.source_hash),
                _side(d.destination_version, d.destination_hash),
            )
            for d in self.differences[:limit]
        )
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines.append("")
        for index, row in enumerate(rows):
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
            if index == 0:
                lines.append("  ".join("-" * w for w in widths))
        shown = min(limit, len(self.differences))
        if self.total_differences > shown:
            lines.append(f"... {self.total_differences - shown} more difference(s) not shown")
        return "\n".join(line.rstrip() for line in lines)


def _side(version: int | None, content_hash: str | None) -> str:
    if content_hash is None and version is None:
        return "-"
    shown = "v?" if version is None else f"v{version}"
    return f"{shown} {content_hash[:12]}" if content_hash else shown


class _Tally:
    def __init__(
        self,
        keep: int,
        on_difference: Callable[[Difference], Awaitable[None]] | None,
    ) -> None:
        self.keep = keep
        self.on_difference = on_difference
        self.counts = dict.fromkeys(DifferenceKind, 0)
        self.kept: list[Difference] = []
        self.matched = 0
        self.source_keys = 0
        self.destination_keys = 0
        self.source_duplicates = 0
        self.destination_duplicates = 0

    async def add(self, difference: Difference) -> None:
        self.counts[difference.kind] += 1
        if len(self.kept) < self.keep:
            self.kept.append(difference)
        if self.on_difference is not None:
            await self.on_difference(difference)

    def report(self, window: Window) -> ReconciliationReport:
        return ReconciliationReport(
            window=window,
            source_keys=self.source_keys,
            destination_keys=self.destination_keys,
            matched=self.matched,
            counts=dict(self.counts),
            differences=tuple(self.kept),
            truncated=sum(self.counts.values()) > len(self.kept),
            source_duplicates=self.source_duplicates,
            destination_duplicates=self.destination_duplicates,
        )


def classify(source: KeyState, destination: KeyState) -> DifferenceKind | None:
    """The class of a key both sides hold; None when they match (same content hash)."""
    if source.content_hash == destination.content_hash:
        return None
    if source.version is None or destination.version is None:
        return DifferenceKind.CONTENT_MISMATCH
    if destination.version < source.version:
        return DifferenceKind.STALE_VERSION
    if destination.version > source.version:
        return DifferenceKind.DESTINATION_AHEAD
    return DifferenceKind.CONTENT_MISMATCH


def _both(kind: DifferenceKind, source: KeyState, destination: KeyState) -> Difference:
    return Difference(
        kind,
        source.business_key,
        source.content_hash,
        destination.content_hash or None,
        source.version,
        destination.version,
        source.record,
    )


def _missing(source: KeyState) -> Difference:
    return Difference(
        DifferenceKind.MISSING_IN_DESTINATION,
        source.business_key,
        source_hash=source.content_hash,
        source_version=source.version,
        record=source.record,
    )


def _extra(destination: KeyState) -> Difference:
    return Difference(
        DifferenceKind.UNEXPECTED_EXTRA,
        destination.business_key,
        destination_hash=destination.content_hash or None,
        destination_version=destination.version,
    )


async def reconcile(
    source_items: AsyncIterable[KeyState],
    destination_items: AsyncIterable[KeyState],
    *,
    window: Window | None = None,
    ordered: bool = True,
    keep: int = 10_000,
    on_difference: Callable[[Difference], Awaitable[None]] | None = None,
) -> ReconciliationReport:
    """Compare both sides by business key; see the module docstring for the guarantees.

    Raises `UnorderedInputError` when `ordered` and a side is not sorted.
    """
    tally = _Tally(keep, on_difference)
    if ordered:
        await _merge(source_items, destination_items, tally)
    else:
        await _indexed(source_items, destination_items, tally)
    return tally.report(window or Window())


async def _distinct(
    items: AsyncIterable[KeyState], side: str, on_duplicate: Callable[[], None]
) -> AsyncIterator[KeyState]:
    """Items in key order, first occurrence of each key only; raises on a key out of order."""
    previous: str | None = None
    async for item in items:
        key = item.business_key
        if previous is not None:
            if key == previous:
                on_duplicate()
                continue
            if key < previous:
                raise UnorderedInputError(
                    f"the {side} side is not sorted by business key (a key follows a greater one)"
                )
        previous = key
        yield item


async def _merge(
    source_items: AsyncIterable[KeyState],
    destination_items: AsyncIterable[KeyState],
    tally: _Tally,
) -> None:
    def source_duplicate() -> None:
        tally.source_duplicates += 1

    def destination_duplicate() -> None:
        tally.destination_duplicates += 1

    sources = aiter(_distinct(source_items, "source", source_duplicate))
    destinations = aiter(_distinct(destination_items, "destination", destination_duplicate))
    source = await anext(sources, None)
    destination = await anext(destinations, None)
    while source is not None or destination is not None:
        if destination is None or (
            source is not None and source.business_key < destination.business_key
        ):
            assert source is not None
            tally.source_keys += 1
            await tally.add(_missing(source))
            source = await anext(sources, None)
        elif source is None or destination.business_key < source.business_key:
            tally.destination_keys += 1
            await tally.add(_extra(destination))
            destination = await anext(destinations, None)
        else:
            tally.source_keys += 1
            tally.destination_keys += 1
            kind = classify(source, destination)
            if kind is None:
                tally.matched += 1
            else:
                await tally.add(_both(kind, source, destination))
            source = await anext(sources, None)
            destination = await anext(destinations, None)


def _pack(item: KeyState) -> int:
    """Version and a 64-bit digest of the content hash in one non-negative int."""
    if item.version is not None and item.version < 0:
        raise ValueError("versions must not be negative")
    version = 0 if item.version is None else item.version + 1
    return (version << 64) | (hash(item.content_hash) & _HASH_MASK)


def _unpack(packed: int) -> tuple[int | None, int]:
    version = packed >> 64
    return (None if version == 0 else version - 1), packed & _HASH_MASK


async def _indexed(
    source_items: AsyncIterable[KeyState],
    destination_items: AsyncIterable[KeyState],
    tally: _Tally,
) -> None:
    index: dict[str, int] = {}
    async for item in destination_items:
        if item.business_key in index:
            tally.destination_duplicates += 1
            continue
        index[item.business_key] = _pack(item)
    tally.destination_keys = len(index)
    seen_missing: set[str] = set()
    async for item in source_items:
        key = item.business_key
        packed = index.get(key)
        if packed == _SEEN or key in seen_missing:
            tally.source_duplicates += 1
            continue
        tally.source_keys += 1
        if packed is None:
            seen_missing.add(key)
            await tally.add(_missing(item))
            continue
        index[key] = _SEEN
        version, digest = _unpack(packed)
        if digest == hash(item.content_hash) & _HASH_MASK:
            tally.matched += 1
            continue
        destination = KeyState(key, "", version)
        await tally.add(
            _both(classify(item, destination) or DifferenceKind.CONTENT_MISMATCH, item, destination)
        )
    for key, packed in index.items():
        if packed != _SEEN:
            version, _ = _unpack(packed)
            await tally.add(_extra(KeyState(key, "", version)))


async def key_states(
    records: AsyncIterable[T],
    key: Callable[[T], str],
    content_hash: Callable[[T], str],
    version: Callable[[T], int | None] | None = None,
    record: Callable[[T], SourceRecord | None] | None = None,
) -> AsyncIterator[KeyState]:
    """Turn any records into `KeyState`s with key/hash (and version/record) functions."""
    async for item in records:
        yield KeyState(
            key(item),
            content_hash(item),
            None if version is None else version(item),
            None if record is None else record(item),
        )
