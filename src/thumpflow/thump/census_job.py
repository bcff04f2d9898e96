"""A run of a `kind: census_reconcile` job: the EHR's census snapshot against the bed board.

The run is started, recorded, failed, cancelled and alerted exactly as a
load run (`JobRunner`); its source is a drop directory (`file_drop`,
`sftp_drop`) whose files each hold one census snapshot (rows `unit`, `bed`,
`patient`; an empty patient is a free bed) with a manifest. What differs:

- every row is checked (columns unit, bed and patient present, unit and bed
  given, text, each bed once). A bad row
  anywhere refuses the whole run: a census with rows missing would look like
  discharges. The run fails with a `BatchSourceError` naming each bad row by
  file and line (never its values), the files go to failed/ with that
  reason beside them (kept, never lost) and the `alert` is audited, as for
  any refused input;
- a snapshot's time is its manifest's window end, else its `created_at`.
  When several snapshots wait, only the newest is compared (the EHR's
  latest belief); the older are moved to processed/ with it and their rows
  counted as skipped;
- the comparison and the repair are the `BoardCheck` the runtime hands in
  (the running engine's views, caught up with the log first, compared as
  `thumpflow views reconcile` does: beds the board learnt of after the
  snapshot's time are not compared). With the job's `repair: true` the
  drift is repaired through the same path as a person's repair
  (`views.drift_repaired`, an event in the log, so a rebuild repairs again;
  its key is its content and the snapshot's time, so the same snapshot run
  twice repairs once);
- counts: read (rows read), valid (beds compared), rejected (bad rows; the
  run then failed), written (beds repaired by a repair admitted in this run),
  skipped (beds the board changed after the snapshot, and the rows of older
  snapshots). The run's `findings` hold the snapshot's name and time, beds
  compared, changed after, drifted and repaired, and the drifted beds'
  names; one audit entry `reconciled` (subject the job id) the same counts.

Logs, the recorded error, the findings and the audit entries carry file
names, line numbers, bed names and counts, never a patient identifier.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from thumpflow.batch import format_time
from thumpflow.batch.manifest import parse_time
from thumpflow.batch.reading import UnreadableRecord
from thumpflow.config.jobs import Job
from thumpflow.core.batch import Manifest, SourceRecord
from thumpflow.core.clock import Clock
from thumpflow.core.errors import BatchSourceError
from thumpflow.core.ports import BatchDestination, RunStore
from thumpflow.thump.run import RunState
from thumpflow.thump.runner import ConnectorFactory, Connectors, JobRunner, RunOutcome

_COLUMNS = ("unit", "bed", "patient")
_LISTED = 20


@dataclass(frozen=True, slots=True)
class CensusCheck:
    """What one comparison found: beds compared, beds the board changed after the snapshot
    (not compared), the drifted beds' names, and the beds a repair admitted now corrects
    (0 without a repair, or when the same repair was admitted before)."""

    compared: int
    newer: int
    drifted: tuple[str, ...]
    repaired: int


BoardCheck = Callable[[Mapping[str, str | None], float, bool, str], Awaitable[CensusCheck]]
"""Compare (bed `<unit>/<bed>` -> patient or None, the snapshot's time, repair?, the repair's
reason for the audit) with the bed board; the runtime's, over the running engine's views."""


@dataclass(slots=True)
class _Snapshots:
    """The snapshots of one run as read: per file, bed -> patient; the bad rows, located."""

    beds: dict[str, dict[str, str | None]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def take(self, record: SourceRecord) -> None:
        name, _, line = record.origin.rpartition(":line ")
        name, where = (name, f"{name}:{line}") if name else (record.origin, record.origin)
        snapshot = self.beds.setdefault(name, {})
        self.rows[name] = self.rows.get(name, 0) + 1
        if isinstance(record, UnreadableRecord):
            self.problems.append(f"{where}: {record.problem}")
            return
        missing = [column for column in _COLUMNS if column not in record.data]
        if missing:
            # without a `patient` column every bed would read as free: refused, never guessed
            self.problems.append(f"{where}: no {' or '.join(missing)} column")
            return
        values = [record.data[column] for column in _COLUMNS]
        if not all(value is None or isinstance(value, str) for value in values):
            self.problems.append(f"{where}: unit, bed and patient must be text")
            return
        unit, bed, patient = ((value or "").strip() for value in values)
        if not unit or not bed:
            self.problems.append(f"{where}: unit and bed are required")
            return
        key = f"{unit}/{bed}"
        if key in snapshot:
            self.problems.append(f"{where}: this bed is listed twice")
            return
        snapshot[key] = patient or None

    def refusal(self) -> str:
        shown = self.problems[:_LISTED]
        more = len(self.problems) - len(shown)
        lines = [
            f"the census snapshot has {len(self.problems)} bad row(s) and was not compared "
            "(a census with rows missing would look like discharges):",
            *(f"  {problem}" for problem in shown),
        ]
        if more:
            lines.append(f"  and {more} more")
        return "\n".join(lines)


def snapshot_time(manifest: Manifest) -> float:
    """A snapshot's time: its manifest's window end when that is a timestamp, else its
    `created_at`."""
    end = parse_time(manifest.window.end) if manifest.window.end is not None else None
    return end.timestamp() if end is not None else manifest.created_at


class CensusRunner(JobRunner):
    """Executes runs of one `kind: census_reconcile` job; see the module docstring."""

    def __init__(
        self, job: Job, runs: RunStore, clock: Clock, connect: ConnectorFactory, board: BoardCheck
    ) -> None:
        if job.kind != "census_reconcile":
            raise ValueError(f"job {job.id!r} is not a census_reconcile job")
        self._connectors: Connectors | None = None

        def remembered(job: Job) -> Connectors:
            self._connectors = connect(job)
            return self._connectors

        super().__init__(job, runs, clock, remembered)
        self._board = board
        self._open: dict[int, _Snapshots] = {}
        self._found: dict[int, dict[str, Any]] = {}

    async def _execute(self, state: RunState) -> RunOutcome:
        self._open[state.run_id] = _Snapshots()
        try:
            return await super()._execute(state)
        finally:
            del self._open[state.run_id]
            self._connectors = None
            self._found.pop(state.run_id, None)

    def _take(self, state: RunState, chunk: Sequence[SourceRecord], start: int) -> int:
        snapshots = self._open[state.run_id]
        for record in chunk[start:]:
            state.counts.read += 1
            snapshots.take(record)
        return len(chunk)

    async def _complete(
        self, state: RunState, destinations: Sequence[BatchDestination]
    ) -> list[Manifest]:
        """Refuse a snapshot with bad rows; else compare the newest and repair if asked."""
        snapshots = self._open[state.run_id]
        if snapshots.problems:
            state.counts.rejected = len(snapshots.problems)
            raise BatchSourceError(snapshots.refusal())
        connectors = self._connectors
        manifests = connectors.source.manifests() if connectors is not None else []
        if not manifests:
            return []
        newest = max(manifests, key=lambda m: (snapshot_time(m), m.name))
        for manifest in manifests:
            if manifest is not newest:
                state.counts.skipped += snapshots.rows.get(manifest.name, 0)
        as_of = snapshot_time(newest)
        reason = f"job {self.job.id} run {state.run_id}, census snapshot {newest.name}"
        check = await self._board(
            snapshots.beds.get(newest.name, {}), as_of, self.job.repair, reason
        )
        state.counts.valid = check.compared
        state.counts.written = check.repaired
        state.counts.skipped += check.newer
        self._found[state.run_id] = {
            "snapshot": newest.name,
            "as_of": format_time(as_of),
            "compared": check.compared,
            "changed_after": check.newer,
            "drifted": len(check.drifted),
            "repaired": check.repaired,
            "older_snapshots": len(manifests) - 1,
            "beds": list(check.drifted),
        }
        return []

    def _findings(self, state: RunState) -> dict[str, Any] | None:
        return self._found.get(state.run_id)

    def _reconciled(self, state: RunState) -> str | None:
        found = self._found.get(state.run_id)
        if found is None:
            return None
        summary = ", ".join(f"{key} {found[key]}" for key in _SUMMARY)
        return f"census snapshot {found['snapshot']} of {found['as_of']}: {summary}"


_SUMMARY = ("compared", "changed_after", "drifted", "repaired", "older_snapshots")
