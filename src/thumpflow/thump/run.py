"""What one run of a job is made of: its connectors, its state while it runs, and how it
ended (`RunOutcome`).

`RunState` is one run's state in memory: its counts, the batch being
gathered, the rejects not yet kept, the ledger entries to add after the run
commits and the writes in flight. It is never persisted: what survives a
crash is what the `RunStore` recorded (the run itself, rejects flushed,
ledger entries after commit), so a run re-done after a crash starts afresh
and converges on the same destination state (destinations upsert by key).

`safe_reason` is the one way a run's failure is turned into text for
people (logs, the run's recorded error, alerts): thumpflow and OS errors in
full (they promise no patient data), any other exception by its type only.
`record_text` is a rejected record as kept: its fields as canonical JSON
(replayable), else its raw text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thumpflow.config.jobs import Job
from thumpflow.core.batch import (
    BatchItem,
    LedgerEntry,
    Manifest,
    RowReject,
    RunCounts,
    RunStatus,
    SourceRecord,
    Window,
    WriteResult,
)
from thumpflow.core.errors import ThumpflowError
from thumpflow.core.ports import BatchDestination, BatchSource
from thumpflow.core.records import canonical_json

RecordTransform = Callable[[dict[str, Any]], dict[str, Any] | None]


@dataclass(slots=True)
class Connectors:
    """The source and destinations of one run (fresh instances: each has a per-run lifecycle)."""

    source: BatchSource
    destinations: list[BatchDestination]


ConnectorFactory = Callable[[Job], Connectors]


@dataclass(slots=True, frozen=True)
class RunOutcome:
    """How a run ended, as recorded."""

    run_id: int
    status: RunStatus
    counts: RunCounts
    error: str | None = None
    manifests_written: tuple[Manifest, ...] = ()


def safe_reason(exc: BaseException) -> str:
    """An error as people may read it: thumpflow and OS errors in full, others by kind only.

    thumpflow errors promise no patient data; an arbitrary exception's text
    might quote a value, so only its type is kept.
    """
    if isinstance(exc, ThumpflowError | OSError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


def record_text(record: SourceRecord) -> str:
    """The record as kept in a reject: its fields as JSON (replayable), else its raw text."""
    if record.data:
        try:
            return canonical_json(record.data).decode("utf-8", "replace")
        except TypeError:
            pass
    return record.raw


def checked_manifests(connectors: Connectors | None) -> list[Manifest]:
    """The manifests the source checked, as far as it can still say ([] when it cannot)."""
    if connectors is None:
        return []
    try:
        return connectors.source.manifests()
    except Exception:
        return []


@dataclass(slots=True)
class RunState:
    """One run in memory while it runs (see the module docstring)."""

    run_id: int
    window: Window
    counts: RunCounts = field(default_factory=RunCounts)
    items: list[BatchItem] = field(default_factory=list)
    rejects: list[RowReject] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)
    writing: list[InFlightWrite] = field(default_factory=list)
    written_at: float = 0.0


@dataclass(slots=True)
class InFlightWrite:
    """One destination's write of the batch in flight."""

    destination: BatchDestination
    batch: list[BatchItem]
    task: asyncio.Future[WriteResult]
