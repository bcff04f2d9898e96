"""`core.ports.RunStore` for every backend: batch runs, kept rejected records, the ledger.

Writes go through the backend's group writer (`store/ops/runs.py`), so each
returns after its transaction committed; reads see the last committed state.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from thumpflow.core.batch import (
    LedgerEntry,
    Manifest,
    RowReject,
    RunCounts,
    RunRecord,
    RunStatus,
    RunTrigger,
    Window,
)
from thumpflow.store import reads
from thumpflow.store.crypt import Codec
from thumpflow.store.group import Kind
from thumpflow.store.ops import Db, Dialect
from thumpflow.store.ops import runs as _runs

_T = TypeVar("_T")


class RunMethods:
    """The `RunStore` methods of a store with `_write`, `_read`, a codec and a dialect."""

    _codec: Codec
    _dialect: Dialect
    _node: str | None = None

    def _read(self, query: Callable[[Db], _T]) -> Awaitable[_T]:
        raise NotImplementedError

    async def _write(self, kind: Kind, arg: Any) -> Any:
        raise NotImplementedError

    async def start_run(
        self,
        job_id: str,
        trigger: RunTrigger,
        window: Window,
        scheduled_for: float | None,
        started_at: float,
    ) -> int | None:
        """Record a new `running` run and its `run_started` audit entry; return its id.

        Returns None, writing nothing, while the job has a run `running`
        (checked in the writer, so two concurrent starts cannot both win).
        """
        run_id: int | None = await self._write(
            Kind.START_RUN,
            _runs.StartRun(job_id, trigger, window, scheduled_for, started_at, self._node),
        )
        return run_id

    async def finish_run(
        self,
        run_id: int,
        status: RunStatus,
        counts: RunCounts,
        finished_at: float,
        *,
        manifests_checked: Sequence[Manifest] = (),
        manifests_written: Sequence[Manifest] = (),
        error: str | None = None,
        next_watermark: str | None = None,
        findings: Mapping[str, Any] | None = None,
        reconciled: str | None = None,
        alert: str | None = None,
    ) -> None:
        """Close a running run with its counts and manifests (and `findings`, kept as JSON),
        audited.

        The audit action is `run_skipped` for a skipped run, else `run_finished`;
        `reconciled` and `alert`, when given, are the details of a `reconciled`
        and an `alert` entry (subject the job id, in that order) recorded in the
        same commit, so a run seen finished has them.

        A succeeded or partial run that is not a rerun moves the job's
        watermark to `next_watermark` (when given) in the same commit; a rerun
        never moves it. Finishing a run that is not running changes nothing.
        """
        await self._write(
            Kind.FINISH_RUN,
            _runs.FinishRun(
                run_id,
                status,
                RunCounts(
                    counts.read, counts.valid, counts.rejected, counts.written, counts.skipped
                ),
                finished_at,
                tuple(manifests_checked),
                tuple(manifests_written),
                error,
                next_watermark,
                None if findings is None else json.dumps(findings, sort_keys=True),
                reconciled,
                alert,
            ),
        )

    async def recover_runs(self, at: float) -> list[int]:
        """Close every run left `running` by a node no longer alive (on an embedded store:
        every run left `running`, by a crash) as failed "interrupted"; return their ids.

        Call it at start-up, before any run starts (in a cluster: on taking the scheduler).
        """
        ids: list[int] = await self._write(Kind.RECOVER_RUNS, at)
        return ids

    async def add_rejects(self, rejects: Sequence[RowReject]) -> list[int]:
        """Keep rejected records with rule and remedy, atomically; return their ids in order."""
        if not rejects:
            return []
        ids: list[int] = await self._write(Kind.ADD_REJECTS, tuple(rejects))
        return ids

    async def mark_replayed(self, reject_ids: Sequence[int], actor: str, at: float) -> None:
        """Stamp rejects replayed (a second replay keeps the first time), one audit entry each."""
        if reject_ids:
            await self._write(Kind.MARK_REPLAYED, _runs.MarkReplayed(tuple(reject_ids), actor, at))

    async def record_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        """Remember (destination, business key) -> content hash; the latest call wins."""
        if entries:
            await self._write(Kind.RECORD_LEDGER, tuple(entries))

    async def runs(self, job_id: str | None = None, limit: int = 50) -> list[RunRecord]:
        """Runs, newest first, optionally of one job."""
        return await self._read(lambda conn: reads.runs(conn, job_id, limit))

    async def run(self, run_id: int) -> RunRecord | None:
        """One run, if recorded."""
        return await self._read(lambda conn: reads.run(conn, run_id))

    async def watermark(self, job_id: str) -> str | None:
        """Where the job's next run starts: the `next_watermark` of its last advancing run."""
        return await self._read(lambda conn: reads.watermark(conn, job_id))

    async def last_scheduled(self, job_id: str) -> float | None:
        """The latest `scheduled_for` of the job's runs, skipped ones included."""
        return await self._read(lambda conn: reads.last_scheduled(conn, job_id))

    async def row_rejects(
        self, job_id: str | None = None, run_id: int | None = None, limit: int = 100
    ) -> list[RowReject]:
        """Kept rejected records, newest first, optionally of one job and/or one run."""
        return await self._read(
            lambda conn: reads.row_rejects(conn, job_id, run_id, limit, self._codec)
        )

    async def row_reject(self, reject_id: int) -> RowReject | None:
        """One kept rejected record, if any."""
        return await self._read(lambda conn: reads.row_reject(conn, reject_id, self._codec))

    async def ledger(self, destination_id: str, business_keys: Sequence[str]) -> dict[str, str]:
        """Content hashes recorded for those keys at that destination (absent keys left out)."""
        entries = await self.ledger_entries(destination_id, business_keys)
        return {entry.business_key: entry.content_hash for entry in entries}

    async def ledger_entries(
        self, destination_id: str, business_keys: Sequence[str]
    ) -> list[LedgerEntry]:
        """The ledger entries of those keys at that destination (absent keys left out), by key."""
        return await self._read(
            lambda conn: reads.ledger_entries(conn, self._dialect, destination_id, business_keys)
        )

    async def ledger_page(
        self, destination_id: str, after: str | None, limit: int
    ) -> list[LedgerEntry]:
        """Up to `limit` entries with a key greater than `after`, in key (code point) order."""
        return await self._read(lambda conn: reads.ledger_page(conn, destination_id, after, limit))
