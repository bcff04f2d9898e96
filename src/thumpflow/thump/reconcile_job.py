"""A run of a `kind: reconcile` job: the source window against a flow destination's ledger.

The run is started, recorded, failed, cancelled and alerted exactly as a
load run (`JobRunner`); only what happens to the valid records differs:

- the source window is the truth. Each record is validated and keyed and
  hashed exactly as a load run does (`thumpflow.core.records`), but never
  transformed for hashing: the hash is of the validated record, which is what
  the channel's `ledger` projects each delivered message into;
- the other side is the delivery ledger of the job's flow `destination`:
  with `extras: all` every key of it, paged in key order
  (`RunStore.ledger_page`, a merge in bounded memory on that side), so a key
  the window lacks is `unexpected_extra`; with `extras: window_keys` only
  the window's keys (`RunStore.ledger_entries`), so no extra can be found;
- each key is classified by `thumpflow.thump.reconcile.classify`: `matched`
  (same hash), `missing_in_destination`, and, when the hashes differ, by
  version (the job's `version_field`, kept in the ledger beside the hash):
  `stale_version` (the ledger's is lower), `destination_ahead` (higher) or
  `content_mismatch` (equal, or either unknown);
- the report (`ReconciliationReport`) is written to `report_dir` as
  `<job>-run-<run id>.json` and `<job>-run-<run id>.txt` (a readable table),
  each to a temporary name, flushed to disk and renamed, before the source
  commits; a failure to write it fails the run;
- with `repair: true`, each missing, stale or differing record is handed to the
  job's transform (`record -> bytes`, an HL7 v2 message) and the message to
  the reconciled channel's ingress with peer `reconcile:<job>`: it is
  admitted, delivered, deduplicated (by MSH-3/MSH-4 and MSH-10, so a
  transform that derives MSH-10 from the record's content makes a repeated
  repair of the same content a duplicate) and audited like any message, and
  its delivery writes the ledger. A repair counts as `written` when the
  channel answers AA or CA; a transform that raises, or a message the channel
  does not accept (no ACK asked for included), makes that record a row
  reject (rule `transform` or `repair`) and the run `partial`;
- the run records read (source records), valid, rejected, written (repairs
  admitted) and skipped (matched keys); after a run that did not fail, one
  audit entry `reconciled` (subject the job id) holds the counts of every
  class and the report's name.

The window's keys, hashes and records are held in memory for the
comparison; the ledger side is read a page (`batch_size` keys) at a time.
Logs and the audit entry carry ids and counts only; business keys appear
only in the report.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thumpflow.batch.files import write_atomically
from thumpflow.config.jobs import Job
from thumpflow.core.batch import Manifest, SourceRecord
from thumpflow.core.clock import Clock
from thumpflow.core.errors import MessageError
from thumpflow.core.ports import BatchDestination, RunStore
from thumpflow.hl7v2 import Message
from thumpflow.thump.reconcile import (
    Difference,
    DifferenceKind,
    KeyState,
    ReconciliationReport,
    reconcile,
)
from thumpflow.thump.run import RunState
from thumpflow.thump.runner import ConnectorFactory, JobRunner, RunOutcome
from thumpflow.thump.validate import Failure

RepairTransform = Callable[[dict[str, Any]], bytes]
RepairSink = Callable[[bytes, str], Awaitable[bytes | None]]

_ACCEPTED = frozenset({"AA", "CA"})


@dataclass(slots=True)
class _Reconciliation:
    states: list[KeyState] = field(default_factory=list)
    report: ReconciliationReport | None = None
    report_name: str = ""


async def _each(items: Iterable[KeyState]) -> AsyncIterator[KeyState]:
    for item in items:
        yield item


def write_report(directory: Path, stem: str, report: ReconciliationReport) -> None:
    """Write `<stem>.json` and `<stem>.txt` atomically (temporary name, fsync, rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_atomically(directory / f"{stem}.json", (report.to_json() + "\n").encode())
    write_atomically(directory / f"{stem}.txt", (report.render_table() + "\n").encode())


def _ack_code(ack: bytes | None) -> str:
    if ack is None:
        return "none"
    try:
        return Message.parse(ack).get("MSA-1") or "none"
    except MessageError:
        return "unreadable"


class ReconcileRunner(JobRunner):
    """Executes runs of one `kind: reconcile` job; see the module docstring.

    `transform` builds a record's repair message and `repairs` admits it into
    the reconciled channel; both are needed only when the job has `repair: true`.
    """

    def __init__(
        self,
        job: Job,
        runs: RunStore,
        clock: Clock,
        connect: ConnectorFactory,
        *,
        transform: RepairTransform | None = None,
        repairs: RepairSink | None = None,
    ) -> None:
        if job.kind != "reconcile" or job.destination is None or job.report_dir is None:
            raise ValueError(f"job {job.id!r} is not a reconcile job")
        if job.repair and (transform is None or repairs is None):
            raise ValueError(f"job {job.id!r} repairs: it needs its transform and the channel")
        super().__init__(job, runs, clock, connect)
        self._destination = job.destination
        self._report_dir = Path(job.report_dir)
        self._repair_transform = transform
        self._repairs = repairs
        self._open: dict[int, _Reconciliation] = {}

    async def _execute(self, state: RunState) -> RunOutcome:
        self._open[state.run_id] = _Reconciliation()
        try:
            return await super()._execute(state)
        finally:
            del self._open[state.run_id]

    def _reconciled(self, state: RunState) -> str | None:
        reconciliation = self._open[state.run_id]
        report = reconciliation.report
        if report is None:
            return None
        counts = ", ".join(f"{kind} {report.counts.get(kind, 0)}" for kind in DifferenceKind)
        return (
            f"read {state.counts.read}, matched {report.matched}, {counts}, "
            f"repairs {state.counts.written}, rejected {state.counts.rejected}; "
            f"report {reconciliation.report_name}"
        )

    async def _flush(self, state: RunState, destinations: Sequence[BatchDestination]) -> None:
        items, state.items = state.items, []
        self._open[state.run_id].states.extend(
            KeyState(
                item.business_key,
                item.content_hash,
                item.version,
                SourceRecord(item.data, item.origin),
            )
            for item in items
        )

    async def _complete(
        self, state: RunState, destinations: Sequence[BatchDestination]
    ) -> list[Manifest]:
        """Compare with the ledger, repair, keep the rejects, write the report."""
        await self._flush(state, destinations)
        reconciliation = self._open[state.run_id]
        sources = sorted(reconciliation.states, key=lambda item: item.business_key)
        if self.job.extras == "all":
            delivered = self._whole_ledger()
        else:
            delivered = self._ledger_of(sorted({item.business_key for item in sources}))

        async def repair(difference: Difference) -> None:
            await self._repair(state, difference)

        report = await reconcile(
            _each(sources), delivered, window=state.window, on_difference=repair
        )
        state.counts.skipped += report.matched
        await self._flush_rejects(state)
        stem = f"{self.job.id}-run-{state.run_id}"
        await asyncio.to_thread(write_report, self._report_dir, stem, report)
        reconciliation.report = report
        reconciliation.report_name = f"{stem}.json"
        return []

    async def _whole_ledger(self) -> AsyncIterator[KeyState]:
        """Every ledger entry of the destination, in key order, a page at a time."""
        after: str | None = None
        while True:
            page = await self._runs.ledger_page(self._destination, after, self.job.batch_size)
            for entry in page:
                yield KeyState(entry.business_key, entry.content_hash, entry.version)
            if len(page) < self.job.batch_size:
                return
            after = page[-1].business_key

    async def _ledger_of(self, keys: list[str]) -> AsyncIterator[KeyState]:
        """The ledger entries of sorted `keys`, in key order."""
        size = self.job.batch_size
        for start in range(0, len(keys), size):
            page = await self._runs.ledger_entries(self._destination, keys[start : start + size])
            for entry in page:
                yield KeyState(entry.business_key, entry.content_hash, entry.version)

    async def _repair(self, state: RunState, difference: Difference) -> None:
        record = difference.record
        if (
            not self.job.repair
            or self._repair_transform is None
            or self._repairs is None
            or record is None
            or not difference.kind.repairable
        ):
            return
        try:
            message = self._repair_transform(dict(record.data))
        except Exception as exc:
            self._refuse(
                state,
                record,
                Failure(
                    "transform",
                    f"the job's transform failed to build the repair message "
                    f"({type(exc).__name__}); correct the record or the transform, then run "
                    "the job again",
                ),
            )
            return
        code = _ack_code(await self._repairs(message, f"reconcile:{self.job.id}"))
        if code in _ACCEPTED:
            state.counts.written += 1
            return
        self._refuse(
            state,
            record,
            Failure(
                "repair",
                f"the channel did not accept the repair message (ACK {code}); the channel's "
                "reject says why (the message must ask for an accept ACK); correct the "
                "transform or the record, then run the job again",
            ),
        )

    def _refuse(self, state: RunState, record: SourceRecord, failure: Failure) -> None:
        state.counts.valid -= 1
        self._reject(state, record, [failure])
