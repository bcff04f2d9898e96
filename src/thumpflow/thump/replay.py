"""Replay of row rejects: re-validate kept (or corrected) records and load the valid ones.

`replay_rejects` takes reject ids of one job. Without a corrected file it
replays each reject's kept record (the fields as JSON, as the run kept
them); with one, it replays the records of that file instead (CSV with a
header row, or NDJSON, by extension). The records go through the job's
validation, transform and business key, and are written to the job's
destinations as one small run with trigger `manual` and an unbounded window
(it never moves the watermark). Records that fail again become new rejects
of that run. Only when the replay run ends `succeeded` (nothing rejected,
nothing failed) are the given rejects marked replayed, audited with the
actor; otherwise they stay open and the new rejects say what still fails.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from thumpflow.batch import Format, read_records
from thumpflow.config.jobs import Job
from thumpflow.core.batch import Manifest, RowReject, RunStatus, RunTrigger, SourceRecord, Window
from thumpflow.core.clock import Clock
from thumpflow.core.errors import ThumpflowError
from thumpflow.core.ports import RunStore
from thumpflow.thump.runner import (
    ConnectorFactory,
    Connectors,
    JobRunner,
    RecordTransform,
    RunOutcome,
)


class ReplayError(ThumpflowError):
    """The rejects cannot be replayed as asked (unknown, of several jobs, not replayable)."""


@dataclass(slots=True, frozen=True)
class ReplayResult:
    """The replay run (None when a run of the job was already running) and what was marked."""

    outcome: RunOutcome | None
    marked: tuple[int, ...]


class _RecordsSource:
    """A `BatchSource` over records in memory; commit and fail do nothing (nothing to move)."""

    def __init__(self, source_id: str, records: Sequence[SourceRecord]) -> None:
        self.source_id = source_id
        self._records = list(records)

    async def read(self, window: Window) -> AsyncIterator[list[SourceRecord]]:
        if self._records:
            yield self._records

    def manifests(self) -> list[Manifest]:
        return []

    def next_watermark(self) -> str | None:
        return None

    async def commit(self) -> None:
        return None

    async def fail(self, reason: str) -> None:
        return None


def kept_records(rejects: Sequence[RowReject]) -> list[SourceRecord]:
    """The kept record of each reject; `ReplayError` for one kept only as raw text."""
    records: list[SourceRecord] = []
    for reject in rejects:
        try:
            data = json.loads(reject.record)
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise ReplayError(
                f"reject {reject.reject_id} was kept as raw text (it could not be read); "
                "replay it with a corrected file"
            )
        records.append(SourceRecord(data, f"reject {reject.reject_id}", reject.record))
    return records


def file_records(path: Path) -> list[SourceRecord]:
    """The records of a corrected file: `.csv` (header row) or `.ndjson`/`.jsonl`."""
    suffix = path.suffix.lower()
    fmt: Format
    if suffix == ".csv":
        fmt = "csv"
    elif suffix in (".ndjson", ".jsonl"):
        fmt = "ndjson"
    else:
        raise ReplayError(f"{path.name}: a corrected file must be .csv or .ndjson")
    try:
        with path.open("rb") as stream:
            return list(read_records(fmt, stream, path.name))
    except OSError as err:
        raise ReplayError(f"{path.name}: cannot read: {err.strerror or err}") from None


async def load_rejects(runs: RunStore, reject_ids: Sequence[int]) -> list[RowReject]:
    """The rejects, all of one job; `ReplayError` naming any unknown id or a job mix."""
    rejects: list[RowReject] = []
    for reject_id in reject_ids:
        reject = await runs.row_reject(reject_id)
        if reject is None:
            raise ReplayError(f"no reject {reject_id}")
        rejects.append(reject)
    jobs = {reject.job_id for reject in rejects}
    if len(jobs) != 1:
        raise ReplayError(
            "replay rejects of one job at a time (got " + ", ".join(sorted(jobs)) + ")"
        )
    return rejects


async def replay_rejects(
    job: Job,
    rejects: Sequence[RowReject],
    runs: RunStore,
    clock: Clock,
    connect: ConnectorFactory,
    *,
    transform: RecordTransform | None,
    actor: str,
    corrected: Sequence[SourceRecord] | None = None,
) -> ReplayResult:
    """Replay `rejects` of `job` (see the module docstring).

    A `reconcile` job loads nothing, so its rejects are not replayed:
    `ReplayError` says to correct the source and run the job again.
    """
    if job.kind == "reconcile":
        raise ReplayError(
            f"job {job.id!r} reconciles: correct the source or the transform and run it again "
            "(`thumpflow runs rerun`); its rejects are not replayed"
        )
    records = list(corrected) if corrected is not None else kept_records(rejects)

    def replay_connectors(job: Job) -> Connectors:
        destinations = connect(job).destinations
        return Connectors(_RecordsSource(job.id, records), destinations)

    runner = JobRunner(job, runs, clock, replay_connectors, transform)
    outcome = await runner.run(RunTrigger.MANUAL, window=Window())
    marked: tuple[int, ...] = ()
    if outcome is not None and outcome.status is RunStatus.SUCCEEDED:
        marked = tuple(reject.reject_id for reject in rejects)
        await runs.mark_replayed(marked, actor, clock.now())
    return ReplayResult(outcome, marked)
