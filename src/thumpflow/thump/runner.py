"""One run of a job: read a window, validate, transform, key, write in batches, record.

The run is recorded before anything is read (`RunStore.start_run`, which is
also the no-overlap guard) and closed with its counts, the manifests the
source checked and the destinations wrote, and the next watermark:

- every record read is counted; an unreadable or invalid record becomes a
  `RowReject` (its fields as JSON, or its raw text when it has none; rule;
  remedy; run) and the rest go on; the run
  ends `partial` when any record was rejected, else `succeeded`;
- a record the source already prepared for the job (`PreparedRecord`, from
  a job's `read_processes`; only for jobs without a transform) counts as
  valid and is written as the item it carries;
- a valid record is transformed (a transform that raises rejects that record
  only; one that returns None drops it, counted as skipped), keyed by the
  job's business key and hashed (SHA-256 of canonical JSON, by
  `thumpflow.core.records`, as flow's delivery ledger is), then written to
  every destination in batches of `batch_size` (a batch goes to all
  destinations at once while the next one is validated; each destination
  gets its batches in order, one at a time, and a failure is raised only
  after every write of its batch has ended); destinations upsert by key,
  so a re-run of a window, or a run re-done after a crash midway, converges
  on the same destination state;
- an item a destination refuses on its own (`WriteResult.rejected`, e.g. a
  resource a FHIR server answers with an OperationOutcome) becomes a row
  reject holding the record as read, the destination's rule and remedy, and
  the rest of the write proceeds; the record counts as rejected (once, however
  many destinations refuse it), no longer as valid, and enters no ledger;
- for a job that `reconciles` a flow channel, items the delivery ledger shows
  already delivered to that destination with the same content hash are not
  written (counted as skipped); after the run commits, what it wrote is
  added to the ledger;
- on success destinations `finish` (manifests), then the source `commit`s;
  on any failure destinations `abort`, the source `fail`s with the reason,
  the run ends `failed` with the reason and the watermark does not move;
  if the run is cancelled (shutdown) destinations abort, the input is left
  for the next run and the run ends `failed` ("cancelled");
- a run that read zero records of a job with `expect_records` ends as it
  would, and an alert is recorded (audit `alert`, subject the job id) and
  logged as a WARNING; so is input the source refused (`BatchSourceError`)
  and a destination's refusal to replace another window's output
  (`OutputConflictError`: the run fails, its input is left for a later run).

`written` and `skipped` count (item, destination) pairs. Logs and recorded
reasons carry ids, counts and error kinds, never record values. What a run
is made of (connectors, its state, its outcome) is in `thumpflow.thump.run`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from hashlib import sha256
from typing import Any

from thumpflow.batch.reading import UnreadableRecord
from thumpflow.config.jobs import Job
from thumpflow.core.batch import (
    BatchItem,
    ItemReject,
    LedgerEntry,
    Manifest,
    PreparedRecord,
    RowReject,
    RunStatus,
    RunTrigger,
    SourceRecord,
    Window,
    WriteResult,
)
from thumpflow.core.clock import Clock
from thumpflow.core.errors import BatchSourceError, OutputConflictError
from thumpflow.core.ports import BatchDestination, RunStore
from thumpflow.core.records import business_key, content_hasher, version_number
from thumpflow.thump.run import (
    ConnectorFactory,
    Connectors,
    InFlightWrite,
    RecordTransform,
    RunOutcome,
    RunState,
    checked_manifests,
    record_text,
    safe_reason,
)
from thumpflow.thump.validate import Failure, RecordValidator

__all__ = [
    "ConnectorFactory",
    "Connectors",
    "JobRunner",
    "RecordTransform",
    "RunOutcome",
    "safe_reason",
]

log = logging.getLogger("thumpflow.thump")


class JobRunner:
    """Executes runs of one job; see the module docstring for what a run guarantees.

    `transform` is the job's loaded transform (None without one); `connect`
    builds the source and destinations for each run.
    """

    def __init__(
        self,
        job: Job,
        runs: RunStore,
        clock: Clock,
        connect: ConnectorFactory,
        transform: RecordTransform | None = None,
    ) -> None:
        self.job = job
        self._runs = runs
        self._clock = clock
        self._connect = connect
        self._transform = transform
        self._validator = validator = RecordValidator.for_job(job)
        self._hash = content_hasher([spec.name for spec in job.schema_])
        self._prepare = validator.prepare if transform is None else None

    async def run(
        self,
        trigger: RunTrigger,
        *,
        window: Window | None = None,
        scheduled_for: float | None = None,
        started: asyncio.Future[int | None] | None = None,
    ) -> RunOutcome | None:
        """Execute one run; None (nothing recorded) when the job already has a run `running`.

        Without `window` the run covers (watermark, unbounded]. `started`, if
        given, is resolved with the run id (or None) as soon as it is recorded.
        Raises only what the store raises (`StoreError`) and cancellation;
        every connector or record failure is recorded in the run.
        """
        job = self.job
        try:
            if window is None:
                window = Window(start=await self._runs.watermark(job.id))
            run_id = await self._runs.start_run(
                job.id, trigger, window, scheduled_for, self._clock.now()
            )
        except BaseException as exc:
            if started is not None and not started.done():
                started.set_exception(exc)
            raise
        if started is not None and not started.done():
            started.set_result(run_id)
        if run_id is None:
            log.info("job %s: a run is still running; %s run not started", job.id, trigger.value)
            return None
        log.info("job %s: run %d started (%s)", job.id, run_id, trigger.value)
        return await self._execute(RunState(run_id, window))

    async def _execute(self, state: RunState) -> RunOutcome:
        job = self.job
        connectors: Connectors | None = None
        try:
            connectors = self._connect(job)
            for destination in connectors.destinations:
                await destination.begin(job.id, state.run_id, state.window)
            take, destinations = self._take, connectors.destinations
            async for chunk in connectors.source.read(state.window):
                position = 0
                while (position := take(state, chunk, position)) < len(chunk):
                    await self._drain(state, destinations)
                await self._drain(state, destinations)
            written = await self._complete(state, connectors.destinations)
            await connectors.source.commit()
        except asyncio.CancelledError:
            await asyncio.shield(self._failed(state, connectors, "cancelled", fail_source=False))
            raise
        except Exception as exc:
            reason = safe_reason(exc)
            log.debug("job %s run %d failure detail", job.id, state.run_id, exc_info=True)
            conflict = isinstance(exc, OutputConflictError)
            return await self._failed(
                state,
                connectors,
                reason,
                fail_source=not conflict,
                alert=conflict or isinstance(exc, BatchSourceError),
            )
        if state.ledger:
            await self._runs.record_ledger(state.ledger)
        status = RunStatus.PARTIAL if state.counts.rejected else RunStatus.SUCCEEDED
        source = connectors.source
        alert = None
        if state.counts.read == 0 and job.expect_records:
            alert = self._alert(state.run_id, "the run read zero records; the job expects some")
        await self._runs.finish_run(
            state.run_id,
            status,
            state.counts,
            self._clock.now(),
            manifests_checked=source.manifests(),
            manifests_written=written,
            next_watermark=source.next_watermark(),
            findings=self._findings(state),
            reconciled=self._reconciled(state),
            alert=alert,
        )
        counts = state.counts
        log.info(
            "job %s: run %d %s: read %d, valid %d, rejected %d, written %d, skipped %d",
            job.id,
            state.run_id,
            status.value,
            counts.read,
            counts.valid,
            counts.rejected,
            counts.written,
            counts.skipped,
        )
        return RunOutcome(state.run_id, status, counts, None, tuple(written))

    def _take(self, state: RunState, chunk: Sequence[SourceRecord], start: int) -> int:
        """Validate, key and hash the records of `chunk` from `start` on, until a batch or
        the rejects are full; the position after the last record taken."""
        counts, items, rejects = state.counts, state.items, state.rejects
        size = self.job.batch_size
        prepare, keys = self._prepare, self.job.business_key
        version_field = self.job.version_field
        position = start
        end = len(chunk)
        while position < end and len(items) < size and len(rejects) < size:
            record = chunk[position]
            position += 1
            counts.read += 1
            if type(record) is PreparedRecord and prepare is not None:
                counts.valid += 1
                items.append(record.item)
            elif isinstance(record, UnreadableRecord):
                self._reject(state, record, [Failure("unreadable", record.problem)])
            elif prepare is not None and (prepared := prepare(record.data)) is not None:
                typed, canonical, values = prepared
                counts.valid += 1
                items.append(
                    BatchItem(
                        business_key(typed, keys),
                        typed,
                        sha256(canonical).hexdigest(),
                        record.origin,
                        record.data,
                        None if version_field is None else version_number(typed.get(version_field)),
                        canonical,
                        values,
                    )
                )
            else:
                result = self._validator.validate(record.data)
                if isinstance(result, list):
                    self._reject(state, record, result)
                else:
                    counts.valid += 1
                    item = self._item(state, record, result)
                    if item is not None:
                        items.append(item)
        return position

    async def _drain(self, state: RunState, destinations: Sequence[BatchDestination]) -> None:
        """Write the batch gathered when it is full, and keep the rejects when they are."""
        if len(state.items) >= self.job.batch_size:
            await self._flush(state, destinations)
        if len(state.rejects) >= self.job.batch_size:
            await self._flush_rejects(state)

    async def _complete(
        self, state: RunState, destinations: Sequence[BatchDestination]
    ) -> list[Manifest]:
        """After the last record: write what is left, keep the rejects, finish every destination."""
        await self._flush(state, destinations)
        await self._settle(state)
        await self._flush_rejects(state)
        written: list[Manifest] = []
        for destination in destinations:
            written.extend(await destination.finish())
        return written

    def _findings(self, state: RunState) -> dict[str, Any] | None:
        """What the run found beyond its counts, recorded with it (None: nothing of the kind)."""
        return None

    def _reconciled(self, state: RunState) -> str | None:
        """The `reconciled` audit detail of a run that did not fail (counts only, no record
        values), recorded in the commit that finishes the run (None: not a reconciling job)."""
        return None

    def _item(
        self, state: RunState, record: SourceRecord, typed: dict[str, Any]
    ) -> BatchItem | None:
        key = business_key(typed, self.job.business_key)
        data = typed
        if self._transform is not None:
            try:
                transformed = self._transform(dict(typed))
            except Exception as exc:
                state.counts.valid -= 1
                remedy = (
                    f"the job's transform failed on this record ({type(exc).__name__}); "
                    "correct the record or the transform, then replay"
                )
                self._reject(state, record, [Failure("transform", remedy)])
                return None
            if transformed is None:
                state.counts.skipped += 1
                return None
            data = transformed
        version = None
        if self.job.version_field is not None:
            version = version_number(typed.get(self.job.version_field))
        return BatchItem(key, data, self._hash(data), record.origin, record.data, version)

    def _refused(self, state: RunState, destination_id: str, refused: Sequence[ItemReject]) -> None:
        """Keep each item a destination refused as a row reject of its record as read."""
        for reject in refused:
            item = reject.item
            if item.origin not in state.refused:
                state.refused.add(item.origin)
                state.counts.valid -= 1
                state.counts.rejected += 1
            data = item.source if item.source is not None else item.data
            self._keep(
                state,
                SourceRecord(data, item.origin),
                f"{destination_id}: {reject.rule}",
                reject.remedy,
            )

    def _reject(self, state: RunState, record: SourceRecord, failures: Sequence[Failure]) -> None:
        state.counts.rejected += 1
        self._keep(
            state,
            record,
            "; ".join(failure.rule for failure in failures),
            "; ".join(failure.remedy for failure in failures),
        )

    def _keep(self, state: RunState, record: SourceRecord, rule: str, remedy: str) -> None:
        state.rejects.append(
            RowReject(
                job_id=self.job.id,
                run_id=state.run_id,
                origin=record.origin,
                record=record_text(record),
                rule=rule,
                remedy=remedy,
                at=self._clock.now(),
            )
        )

    async def _flush(self, state: RunState, destinations: Sequence[BatchDestination]) -> None:
        """Hand the batch gathered to every destination at once, after the previous batch ended.

        The writes run while the next batch is read and validated (the
        destinations' blocking work is in threads); `_settle` takes their
        results. So each destination still gets its batches one at a time,
        in order, and a batch's results are taken in destination order.
        """
        items, state.items = state.items, []
        await self._settle(state)
        if not items:
            return
        writes: list[InFlightWrite] = []
        for destination in destinations:
            batch = items
            if self.job.reconciles is not None:
                known = await self._runs.ledger(
                    destination.destination_id, [item.business_key for item in items]
                )
                batch = [
                    item for item in items if known.get(item.business_key) != item.content_hash
                ]
                state.counts.skipped += len(items) - len(batch)
            if batch:
                writes.append(
                    InFlightWrite(
                        destination, batch, asyncio.ensure_future(destination.write(batch))
                    )
                )
        state.writing = writes
        state.written_at = self._clock.now()
        await asyncio.sleep(0)  # start them now, not at the reader's next chunk

    async def _settle(self, state: RunState) -> None:
        """Wait for every write of the batch in flight; then count it, or raise its failure.

        Every write has ended before anything is raised (the first failure in
        destination order), so a destination is never aborted mid-write. The
        writes are shielded: if the run is cancelled meanwhile, they stay in
        `state.writing` and `_failed` waits for them before aborting.
        """
        writes = state.writing
        if not writes:
            return
        gathered = asyncio.gather(*(w.task for w in writes), return_exceptions=True)
        results = await asyncio.shield(gathered)
        state.writing = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
        now = state.written_at
        for write, result in zip(writes, results, strict=True):
            assert isinstance(result, WriteResult)
            destination, batch = write.destination, write.batch
            state.counts.written += result.written
            state.counts.skipped += result.skipped
            self._refused(state, destination.destination_id, result.rejected)
            if self.job.reconciles is not None:
                refused = {id(reject.item) for reject in result.rejected}
                state.ledger.extend(
                    LedgerEntry(
                        destination.destination_id,
                        item.business_key,
                        item.content_hash,
                        now,
                        item.version,
                    )
                    for item in batch
                    if id(item) not in refused
                )

    async def _flush_rejects(self, state: RunState) -> None:
        rejects, state.rejects = state.rejects, []
        if rejects:
            await self._runs.add_rejects(rejects)

    async def _failed(
        self,
        state: RunState,
        connectors: Connectors | None,
        reason: str,
        *,
        fail_source: bool = True,
        alert: bool = False,
    ) -> RunOutcome:
        job = self.job
        writing, state.writing = state.writing, []
        # Let a batch still being written end (its outcome no longer matters) before aborting.
        await asyncio.gather(*(w.task for w in writing), return_exceptions=True)
        if connectors is not None:
            for destination in connectors.destinations:
                try:
                    await destination.abort()
                except Exception as exc:
                    log.error(
                        "job %s run %d: destination %s abort failed (%s)",
                        job.id,
                        state.run_id,
                        destination.destination_id,
                        safe_reason(exc),
                    )
            if fail_source:
                try:
                    await connectors.source.fail(reason)
                except Exception as exc:
                    log.error(
                        "job %s run %d: setting the input aside failed (%s)",
                        job.id,
                        state.run_id,
                        safe_reason(exc),
                    )
        await self._flush_rejects(state)
        await self._runs.finish_run(
            state.run_id,
            RunStatus.FAILED,
            state.counts,
            self._clock.now(),
            manifests_checked=checked_manifests(connectors),
            error=reason,
            alert=self._alert(state.run_id, f"input refused: {reason}") if alert else None,
        )
        log.error("job %s: run %d failed: %s", job.id, state.run_id, reason)
        return RunOutcome(state.run_id, RunStatus.FAILED, state.counts, reason)

    def _alert(self, run_id: int, reason: str) -> str:
        """Log an alert about the run; its reason, to be recorded with the run's finish."""
        log.warning("ALERT job %s run %d: %s", self.job.id, run_id, reason)
        return reason
