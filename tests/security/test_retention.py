"""Retention purges what is finished and old, keeps what is not, and the file really shrinks.

A real store file filled through the store's own writes, an injected clock
moved forward, a purge; then rows are counted, the audit trail checked and
the file (database plus WAL after a checkpoint) measured.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.security.support import cli, file_size, write_config
from tests.store.support import StepClock, admission
from thumpflow.core.batch import RowReject, RunCounts, RunStatus, RunTrigger, Window
from thumpflow.core.event import Admitted, Duplicate, Reject
from thumpflow.core.outcome import Delivered, Died
from thumpflow.core.retention import DAY, RetentionPolicy
from thumpflow.store.sqlite import SqliteStore

BODY = b"MSH|^~\\&|SIM|GEN|||1\r" + b"OBX|1|TX|NOTE||" + b"x" * 8000 + b"\r"
POLICY = RetentionPolicy(events_days=30, rejects_days=30, runs_days=30)


def first(result: Admitted | Duplicate) -> int:
    assert isinstance(result, Admitted)
    return result.deliveries[0].delivery_id


def done(delivery_id: int, at: float) -> Delivered:
    return Delivered(delivery_id, at, 1, "out", "Patient/MRN001", None, "ok")


def count(db: Path, table: str, where: str = "1") -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])


def test_purge_removes_finished_old_rows_keeps_pending_and_dead_and_shrinks_the_file(
    tmp_path: Path,
) -> None:
    db = tmp_path / "thumpflow.db"
    clock = StepClock()
    start = clock.value

    async def main() -> None:
        store = SqliteStore(db, clock=clock)
        await store.open()
        try:
            delivered = [
                first(await store.admit(admission("out", body=BODY, at=start + n)))
                for n in range(600)
            ]
            await store.admit(admission("out", body=BODY, at=start + 700))
            dead_id = first(await store.admit(admission("out", body=BODY, at=start + 701)))
            await store.record([done(d, start + 800) for d in delivered])
            await store.record([Died(dead_id, start + 801, 3, "HTTP 422")])
            for n in range(20):
                await store.reject(Reject("adt-in", start + n, "peer", BODY, "no MSH-9"))
            window = Window(None, "a")
            run_id = await store.start_run("nightly", RunTrigger.SCHEDULE, window, start, start)
            assert run_id is not None
            await store.add_rejects(
                [RowReject("nightly", run_id, "f.csv:2", "x" * 500, "rule", "fix it", start)]
            )
            await store.finish_run(run_id, RunStatus.PARTIAL, RunCounts(1, 0, 1, 0, 0), start + 1)
            newest = await store.start_run(
                "nightly", RunTrigger.SCHEDULE, Window("a", "b"), start, start + 2
            )
            assert newest is not None
            await store.finish_run(newest, RunStatus.SUCCEEDED, RunCounts(0, 0, 0, 0, 0), start + 3)
            young = first(await store.admit(admission("out", body=BODY, at=start + 31 * DAY)))
            await store.record([done(young, start + 31 * DAY)])
        finally:
            await store.close()

    asyncio.run(main())
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = file_size(db)
    assert before > 5_000_000

    clock.value = start + 31 * DAY + 1

    async def purge() -> None:
        store = SqliteStore(db, clock=clock)
        await store.open()
        try:
            counts = await store.purge(POLICY, batch=100)
            assert (counts.events, counts.deliveries, counts.idempotency) == (600, 600, 600)
            assert (counts.rejects, counts.row_rejects, counts.runs) == (20, 1, 1)
            (entry,) = await store.audit(action="purged")
            assert entry.actor == "store" and entry.subject == "retention"
            assert entry.detail.startswith("events 600, deliveries 600, idempotency 600")
            again = await store.purge(POLICY)
            assert again.total == 0
        finally:
            await store.close()

    asyncio.run(purge())
    assert count(db, "events") == 3, "pending, dead and the young event stay"
    assert count(db, "deliveries", "status = 0") == 1
    assert count(db, "deliveries", "status = 2") == 1
    assert count(db, "idempotency") == 3
    assert count(db, "rejects") == 0 and count(db, "row_rejects") == 0
    assert count(db, "runs") == 1, "each job's newest run is kept"
    assert count(db, "audit", "action = 'received'") == 603, "the audit trail is never purged"
    after = file_size(db)
    assert after < before / 4, f"file went from {before} to {after} bytes"
    verified = cli(write_config(tmp_path), "audit", "verify")
    assert verified.returncode == 0, verified.stdout


def test_store_vacuum_shrinks_a_database_made_without_incremental_vacuum(tmp_path: Path) -> None:
    db = tmp_path / "thumpflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE filler (x)")
    clock = StepClock()

    async def main() -> None:
        store = SqliteStore(db, clock=clock)
        await store.open()
        try:
            for _ in range(300):
                delivery_id = first(await store.admit(admission("out", body=BODY, at=clock.value)))
                await store.record([done(delivery_id, clock.value)])
            clock.value += 40 * DAY
            counts = await store.purge(RetentionPolicy(events_days=30))
            assert counts.events == 300
        finally:
            await store.close()

    asyncio.run(main())
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = file_size(db)
    vacuumed = cli(write_config(tmp_path), "store", "vacuum")
    assert vacuumed.returncode == 0, vacuumed.stderr
    assert vacuumed.stdout.startswith("vacuumed:")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    assert file_size(db) < before / 4
