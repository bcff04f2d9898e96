"""Runs, row rejects, watermarks and the delivery ledger: writer operations and row mapping.

The write functions run on the writer thread inside its transaction (one
savepoint per call, see `thumpflow.store.ops`); each returns one answer per call. Every
run transition and every replayed reject writes its audit entry in the same
transaction as the change it records. Audit subjects: the job id for run
started/finished/skipped, alerts and reconciliations, `row_reject:N` for replays.
Audit entries go through the writer's hash chain (`WriteContext.audit`);
rejected records are sealed by its codec when encryption is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thumpflow.core.batch import (
    LedgerEntry,
    Manifest,
    RowReject,
    RunCounts,
    RunStatus,
    RunTrigger,
    Window,
)
from thumpflow.store.crypt import ROW_REJECT_RECORD
from thumpflow.store.ops import WriteContext
from thumpflow.store.rows import (
    manifests_json,
)

_log = logging.getLogger("thumpflow.store")

_RUNNING = RunStatus.RUNNING.value
_ADVANCING = (RunStatus.SUCCEEDED.value, RunStatus.PARTIAL.value)


@dataclass(slots=True, frozen=True)
class StartRun:
    job_id: str
    trigger: RunTrigger
    window: Window
    scheduled_for: float | None
    started_at: float
    node: str | None = None


@dataclass(slots=True, frozen=True)
class FinishRun:
    run_id: int
    status: RunStatus
    counts: RunCounts
    finished_at: float
    manifests_checked: tuple[Manifest, ...]
    manifests_written: tuple[Manifest, ...]
    error: str | None
    next_watermark: str | None
    findings: str | None = None
    reconciled: str | None = None
    alert: str | None = None


@dataclass(slots=True, frozen=True)
class MarkReplayed:
    reject_ids: tuple[int, ...]
    actor: str
    at: float


def _window_text(window: Window) -> str:
    return f"({window.start or '-'}, {window.end or '-'}]"


def start_runs(context: WriteContext, calls: list[StartRun]) -> list[Any]:
    """A new run id per call, or None while the job has a run `running` (nothing written)."""
    conn = context.conn
    answers: list[Any] = []
    for call in calls:
        busy = conn.execute(
            "SELECT 1 FROM runs WHERE job_id = ? AND status = ?", (call.job_id, _RUNNING)
        ).fetchone()
        if busy is not None:
            answers.append(None)
            continue
        cursor = conn.execute(
            "INSERT INTO runs (job_id, trigger, window_start, window_end, status, scheduled_for,"
            " started_at, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING run_id",
            (
                call.job_id,
                call.trigger.value,
                call.window.start,
                call.window.end,
                _RUNNING,
                call.scheduled_for,
                call.started_at,
                call.node,
            ),
        )
        run_id = int(cursor.fetchone()[0])
        context.audit.append(
            [
                (
                    call.started_at,
                    "thump",
                    "run_started",
                    call.job_id,
                    f"run {run_id} ({call.trigger.value}) window {_window_text(call.window)}",
                )
            ]
        )
        answers.append(run_id)
    return answers


def finish_runs(context: WriteContext, calls: list[FinishRun]) -> list[Any]:
    """Close running runs, each with its `run_finished` (or `run_skipped`) audit entry and,
    when given, its `reconciled` and `alert` entries after it; a run that is not running is
    left as it is (logged)."""
    conn = context.conn
    for call in calls:
        row = conn.execute(
            "SELECT job_id, trigger, status FROM runs WHERE run_id = ?", (call.run_id,)
        ).fetchone()
        if row is None or row[2] != _RUNNING:
            _log.warning("finish of run %d ignored: it is not running", call.run_id)
            continue
        job_id, trigger = row[0], row[1]
        counts = call.counts
        conn.execute(
            "UPDATE runs SET status = ?, finished_at = ?, read_count = ?, valid_count = ?,"
            " rejected_count = ?, written_count = ?, skipped_count = ?, manifests_checked = ?,"
            " manifests_written = ?, error = ?, next_watermark = ?, findings = ? WHERE run_id = ?",
            (
                call.status.value,
                call.finished_at,
                counts.read,
                counts.valid,
                counts.rejected,
                counts.written,
                counts.skipped,
                manifests_json(call.manifests_checked),
                manifests_json(call.manifests_written),
                call.error,
                call.next_watermark,
                call.findings,
                call.run_id,
            ),
        )
        if (
            call.status.value in _ADVANCING
            and call.next_watermark is not None
            and trigger != RunTrigger.RERUN.value
        ):
            conn.execute(
                "INSERT INTO watermarks (job_id, watermark, run_id, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET"
                " watermark = excluded.watermark, run_id = excluded.run_id,"
                " updated_at = excluded.updated_at",
                (job_id, call.next_watermark, call.run_id, call.finished_at),
            )
        if call.status is RunStatus.SKIPPED:
            action, detail = "run_skipped", f"run {call.run_id} skipped"
        else:
            action = "run_finished"
            detail = (
                f"run {call.run_id} {call.status.value}: read {counts.read}, valid {counts.valid},"
                f" rejected {counts.rejected}, written {counts.written},"
                f" skipped {counts.skipped}"
            )
        if call.error:
            detail += f"; {call.error}"
        entries = [(call.finished_at, "thump", action, job_id, detail)]
        for extra, about in (("reconciled", call.reconciled), ("alert", call.alert)):
            if about is not None:
                entries.append(
                    (call.finished_at, "thump", extra, job_id, f"run {call.run_id}: {about}")
                )
        context.audit.append(entries)
    return [None] * len(calls)


def recover_runs(context: WriteContext, now: Callable[[], float], calls: list[float]) -> list[Any]:
    """Close every `running` run whose node is not alive (at the database's time `now`) as
    failed ("interrupted"); answer their ids. Without live nodes (an embedded store), every
    `running` run is closed."""
    conn = context.conn
    answers: list[Any] = []
    for at in calls:
        rows = conn.execute(
            "SELECT run_id, job_id FROM runs WHERE status = ? AND (node IS NULL OR node NOT IN"
            " (SELECT incarnation FROM nodes WHERE expires_at > ?)) ORDER BY run_id",
            (_RUNNING, now()),
        ).fetchall()
        for run_id, job_id in rows:
            conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE run_id = ?",
                (RunStatus.FAILED.value, at, "interrupted", run_id),
            )
            context.audit.append(
                [(at, "thump", "run_finished", job_id, f"run {run_id} failed: interrupted")]
            )
        answers.append([row[0] for row in rows])
    return answers


def add_rejects(context: WriteContext, calls: list[tuple[RowReject, ...]]) -> list[Any]:
    """Insert rejects (records sealed when encrypting); answer their ids in order per call."""
    conn, codec = context.conn, context.codec
    answers: list[Any] = []
    for rejects in calls:
        ids: list[int] = []
        for reject in rejects:
            cursor = conn.execute(
                "INSERT INTO row_rejects (job_id, run_id, origin, record, rule, remedy, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING reject_id",
                (
                    reject.job_id,
                    reject.run_id,
                    reject.origin,
                    context.payload(codec.seal_text(reject.record, ROW_REJECT_RECORD)),
                    reject.rule,
                    reject.remedy,
                    reject.at,
                ),
            )
            ids.append(int(cursor.fetchone()[0]))
        answers.append(ids)
    return answers


def mark_replayed(context: WriteContext, calls: list[MarkReplayed]) -> list[Any]:
    """Stamp rejects replayed (the first replay time is kept), one audit entry each."""
    conn = context.conn
    for call in calls:
        for reject_id in call.reject_ids:
            conn.execute(
                "UPDATE row_rejects SET replayed_at = coalesce(replayed_at, ?) WHERE reject_id = ?",
                (call.at, reject_id),
            )
        context.audit.append(
            [
                (call.at, call.actor, "replayed", f"row_reject:{reject_id}", "reject replayed")
                for reject_id in call.reject_ids
            ]
        )
    return [None] * len(calls)


UPSERT_LEDGER = (
    "INSERT INTO delivery_ledger (destination_id, business_key, content_hash, at, version)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (destination_id, business_key) DO UPDATE SET"
    " content_hash = excluded.content_hash, at = excluded.at, version = excluded.version"
)


def record_ledger(context: WriteContext, calls: list[tuple[LedgerEntry, ...]]) -> list[Any]:
    context.conn.executemany(
        UPSERT_LEDGER,
        [
            (entry.destination_id, entry.business_key, entry.content_hash, entry.at, entry.version)
            for entries in calls
            for entry in entries
        ],
    )
    return [None] * len(calls)
