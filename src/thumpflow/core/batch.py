"""The canonical shapes of scheduled batch exchange ("thump"): windows, records, runs.

A run reads the records of one window from a batch source, validates each
record (a failing record becomes a `RowReject`, the rest go on), transforms
the valid ones into `BatchItem`s keyed by business key, and writes them to
batch destinations, which upsert by business key so a re-run of the same
window never duplicates anything. Every run is recorded with its window,
counts and the manifests it checked and wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(slots=True, frozen=True)
class Window:
    """The slice of source data a run covers: (start, end], watermarks as opaque text.

    Watermarks are whatever the source orders by (an ISO timestamp, an
    integer id, a FHIR `transactionTime`); None means unbounded.
    """

    start: str | None = None
    end: str | None = None


@dataclass(slots=True)
class SourceRecord:
    """One record as read: its fields, where it came from, and its original text.

    Never changed once made (not frozen only because a frozen dataclass costs
    several times as much to create, and a run creates one per row).

    `raw` is kept for a record that has no fields (unreadable: wrong field
    count, bad bytes, broken quoting), so its reject holds the text as it was;
    a record with fields is kept in a reject as its fields.
    """

    data: Mapping[str, Any]
    origin: str
    raw: str = ""


@dataclass(slots=True)
class BatchItem:
    """A valid, transformed record ready to load, identified by its business key.

    Never changed once made (not frozen for the cost of creating one per row,
    as `SourceRecord`).

    `source` is the record's fields as read, before validation and transform
    (kept in a reject should a destination refuse the item), when known;
    `version` its entity version (the job's `version_field`, as
    `thumpflow.core.records.version_number` gives it), when the job has one.
    `canonical` is `thumpflow.core.records.canonical_json(data)`, the bytes
    whose SHA-256 is `content_hash`, when the runner made it while validating
    (None otherwise), so destinations need not encode the record again;
    `values`, made with it, are `data`'s values in its key order as that JSON
    gives them back (text, integers, booleans, None), ready to bind.
    """

    business_key: str
    data: Mapping[str, Any]
    content_hash: str
    origin: str
    source: Mapping[str, Any] | None = None
    version: int | None = None
    canonical: bytes | None = None
    values: tuple[Any, ...] | None = None


@dataclass(slots=True)
class PreparedRecord(SourceRecord):
    """A record read, validated, keyed and hashed for its job before it reached the run
    (by a reader working in other processes): `item` is the `BatchItem` the run would have
    made of it, which the run takes as it is. `data` is `item.data`."""

    item: BatchItem = field(kw_only=True)


@dataclass(slots=True, frozen=True)
class ItemReject:
    """An item a destination refused on its own (not the whole write): why, and how to fix it.

    `rule` and `remedy` are read by people beside the kept record; `remedy`
    may quote what the receiving system answered about the record.
    """

    item: BatchItem
    rule: str
    remedy: str


@dataclass(slots=True, frozen=True)
class WriteResult:
    """What one `BatchDestination.write` did: items written, skipped, and refused one by one."""

    written: int
    skipped: int
    rejected: tuple[ItemReject, ...] = ()


@dataclass(slots=True, frozen=True)
class Manifest:
    """What a batch file claims or proves: record count, SHA-256, time, window, source."""

    name: str
    record_count: int
    sha256: str
    created_at: float
    source: str
    window: Window = field(default_factory=Window)


@dataclass(slots=True, frozen=True)
class RowReject:
    """A record that failed validation, kept with the rule that failed and how to fix it."""

    job_id: str
    run_id: int
    origin: str
    record: str
    rule: str
    remedy: str
    at: float
    reject_id: int = 0
    replayed_at: float | None = None


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    SKIPPED = "skipped"


class RunTrigger(StrEnum):
    SCHEDULE = "schedule"
    MISSED = "missed"
    MANUAL = "manual"
    RERUN = "rerun"


@dataclass(slots=True)
class RunCounts:
    read: int = 0
    valid: int = 0
    rejected: int = 0
    written: int = 0
    skipped: int = 0


@dataclass(slots=True, frozen=True)
class RunRecord:
    """One run as recorded: what it covered, what it did, how it ended."""

    run_id: int
    job_id: str
    trigger: RunTrigger
    window: Window
    status: RunStatus
    scheduled_for: float | None
    started_at: float
    finished_at: float | None
    counts: RunCounts
    manifests_checked: tuple[Manifest, ...] = ()
    manifests_written: tuple[Manifest, ...] = ()
    error: str | None = None
    next_watermark: str | None = None
    findings: Mapping[str, Any] | None = None
    """What the run found beyond its counts (a census reconciliation's beds compared,
    drifted and repaired), as JSON values; never patient data."""


@dataclass(slots=True, frozen=True)
class LedgerEntry:
    """A business key delivered to a destination with a content hash (flow or thump).

    `version` is the entity version delivered (None when unknown), so
    reconciliation can tell a destination that is behind from one that differs.
    """

    destination_id: str
    business_key: str
    content_hash: str
    at: float
    version: int | None = None
