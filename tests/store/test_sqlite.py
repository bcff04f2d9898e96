"""Guarantees specific to the SQLite backend: durability settings, group commit,
schema versions, query plans, read-only access from another process, crashes."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from thumpflow.core.errors import StoreError
from thumpflow.core.event import Admission, Admitted, DeadLetterFilter, Duplicate, Reject
from thumpflow.core.outcome import Delivered, Retrying
from thumpflow.store.sqlite import SqliteStore, _rows, _schema

from .support import admission, event, run

CHILD = Path(__file__).with_name("writer_child.py")


class Gate:
    """Holds the writer thread inside its next COMMIT until `release()`.

    While it is held, operations queue up; the writer takes all of them as
    its next group commit.
    """

    def __init__(self, store: SqliteStore) -> None:
        writer = store._writer
        assert writer is not None
        self.writer = writer
        self.entered = threading.Event()
        self._release = threading.Event()
        self.real_commit: Callable[[], None] = writer._commit
        self.next_commit = self.real_commit
        writer._commit = self._held  # type: ignore[method-assign]

    def _held(self) -> None:
        self.entered.set()
        self._release.wait(30)
        self.writer._commit = self.next_commit  # type: ignore[method-assign]
        self.real_commit()

    async def hold(self, store: SqliteStore) -> asyncio.Task[Admitted | Duplicate]:
        first = asyncio.create_task(store.admit(admission("fhir")))
        await asyncio.to_thread(self.entered.wait, 30)
        return first

    def release(self) -> None:
        self._release.set()


async def queued(*coroutines: Any) -> list[asyncio.Task[Any]]:
    tasks = [asyncio.create_task(c) for c in coroutines]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return tasks


def test_open_creates_directory_wal_full_sync_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "thumpflow.db"

    async def body(store: SqliteStore) -> None:
        conn = store._write_conn
        assert conn is not None
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert conn.execute("PRAGMA page_size").fetchone()[0] == _schema.PAGE_SIZE
        versions = conn.execute("SELECT version FROM schema_version").fetchall()
        assert versions == [(v,) for v in range(1, _schema.LATEST_VERSION + 1)]

    run(lambda: SqliteStore(path), body)
    run(lambda: SqliteStore(path), body)
    assert path.exists()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "thumpflow.db"
    run(lambda: SqliteStore(path), _noop)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (_schema.LATEST_VERSION + 1,))
    conn.close()
    for store in (SqliteStore(path), SqliteStore(path, read_only=True)):
        with pytest.raises(StoreError, match="schema version"):
            asyncio.run(store.open())


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [version for version, _ in _schema.migrations()]
    assert versions == list(range(1, _schema.LATEST_VERSION + 1))


async def _noop(store: SqliteStore) -> None:
    return None


def test_a_version_2_database_migrates_and_keeps_its_pending_deliveries(tmp_path: Path) -> None:
    """Deliveries admitted before schema 3 load with no ledger key and never enter the ledger."""
    path = tmp_path / "thumpflow.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL)")
        for version, script in _schema.migrations()[:2]:
            for statement in _schema._statements(script):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
        conn.execute(
            "INSERT INTO events VALUES (1, 'EVT1', 'K1', 'SIM', 'adt', 'adt.admit', 'Patient',"
            " 'P1', 0, 0, 'x-application/hl7-v2+er7', NULL, 2, NULL, NULL, NULL, NULL, x'4d5348')"
        )
        conn.execute(
            "INSERT INTO deliveries (delivery_id, event_seq, destination_id, channel_id,"
            " ordering_key, lane, created_at, status, attempts, next_attempt_at)"
            " VALUES (1, 1, 'bed', 'adt', 'Patient/P1', 2, 0, 0, 0, 0)"
        )
    conn.close()

    async def body(store: SqliteStore) -> None:
        (old,) = await store.load_pending("bed", 0, 10)
        assert (old.business_key, old.content_hash) == (None, None)
        await store.record([Delivered(1, 5.0, 1, "bed", "Patient/P1", None)])
        with sqlite3.connect(path) as check:
            assert check.execute("SELECT status FROM deliveries").fetchone() == (1,)
            assert check.execute("SELECT count(*) FROM delivery_ledger").fetchone() == (0,)
        check.close()

    run(lambda: SqliteStore(path), body)


def test_concurrent_callers_share_one_commit(tmp_path: Path) -> None:
    async def body(store: SqliteStore) -> None:
        gate = Gate(store)
        first = await gate.hold(store)
        tasks = await queued(*(store.admit(admission("fhir")) for _ in range(100)))
        before = store.writer_stats()
        gate.release()
        await first
        results = await asyncio.gather(*tasks)
        after = store.writer_stats()
        assert after.commits - before.commits == 2
        assert after.operations - before.operations == 101
        ids = [r.deliveries[0].delivery_id for r in results if isinstance(r, Admitted)]
        assert len(ids) == 100
        assert ids == sorted(ids)

    run(lambda: SqliteStore(tmp_path / "t.db"), body)


def test_same_key_twice_in_one_commit_is_a_duplicate(tmp_path: Path) -> None:
    async def body(store: SqliteStore) -> None:
        gate = Gate(store)
        first = await gate.hold(store)
        one, two = event(key="SIM|GEN|1"), event(key="SIM|GEN|1")
        tasks = await queued(
            store.admit(admission("fhir", received=one, ack_code="CA")),
            store.admit(admission("fhir", received=two)),
        )
        commits = store.writer_stats().commits
        gate.release()
        await first
        assert isinstance(await tasks[0], Admitted)
        assert await tasks[1] == Duplicate(one.event_id, "CA")
        assert store.writer_stats().commits == commits + 2

    run(lambda: SqliteStore(tmp_path / "t.db"), body)


def test_a_failing_operation_fails_only_its_caller_within_the_commit(tmp_path: Path) -> None:
    async def body(store: SqliteStore) -> None:
        existing = admission("fhir")
        await store.admit(existing)
        gate = Gate(store)
        first = await gate.hold(store)
        clash = Admission(received=event(), derived=(existing.received,))
        tasks = await queued(
            store.admit(admission("fhir")),
            store.admit(clash),
            store.admit(admission("fhir")),
            store.reject(Reject("adt-in", 1.0, "peer", b"raw", "no MSH")),
            store.load_pending("fhir", 0, 100),
        )
        commits = store.writer_stats().commits
        gate.release()
        await first
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert store.writer_stats().commits == commits + 2
        assert isinstance(results[0], Admitted)
        assert isinstance(results[1], StoreError)
        assert isinstance(results[2], Admitted)
        assert isinstance(results[3], int)
        assert isinstance(results[4], list)
        assert len(results[4]) == 4
        assert await store.event(clash.received.event_id) is None
        assert await store.pending_count("fhir") == 4

    run(lambda: SqliteStore(tmp_path / "t.db"), body)


def test_failed_commit_fails_every_caller_and_commits_nothing(tmp_path: Path) -> None:
    async def body(store: SqliteStore) -> None:
        gate = Gate(store)
        first = await gate.hold(store)
        doomed = [admission("fhir") for _ in range(10)]
        tasks = await queued(*(store.admit(a) for a in doomed))

        def failing_commit() -> None:
            gate.writer._commit = gate.real_commit  # type: ignore[method-assign]
            raise sqlite3.OperationalError("disk I/O error")

        gate.next_commit = failing_commit
        gate.release()
        held = await first
        assert isinstance(held, Admitted)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, StoreError) for r in results)
        assert store.writer_stats().failed_commits == 1
        for a in doomed:
            assert await store.event(a.received.event_id) is None
        after = await store.admit(admission("fhir"))
        assert isinstance(after, Admitted)
        assert await store.pending_count("fhir") == 2
        assert [d.delivery_id for d in await store.load_pending("fhir", 0, 100)] == [
            held.deliveries[0].delivery_id,
            after.deliveries[0].delivery_id,
        ]
        [channel] = await store.stats()
        assert channel.received == 2

    run(lambda: SqliteStore(tmp_path / "t.db"), body)


def test_queries_are_served_by_indexes(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    run(lambda: SqliteStore(path), _noop)
    conn = sqlite3.connect(path)
    queries = {
        "load_pending": (
            "SELECT d.delivery_id FROM deliveries d JOIN events e ON e.event_seq = d.event_seq"
            " WHERE d.destination_id = 'x' AND d.status = 0 AND d.delivery_id > 5"
            " ORDER BY d.delivery_id LIMIT 10",
            "deliveries_pending",
        ),
        "oldest pending": (
            "SELECT created_at FROM deliveries WHERE channel_id = 'c' AND destination_id = 'x'"
            " AND status = 0 ORDER BY delivery_id LIMIT 1",
            "deliveries_pending",
        ),
        "dead letters": (
            "SELECT d.delivery_id FROM deliveries d JOIN events e ON e.event_seq = d.event_seq"
            " WHERE d.status = 2 ORDER BY d.died_at, d.delivery_id LIMIT 10",
            "deliveries_dead",
        ),
        "audit subject": (
            "SELECT entry_id FROM audit WHERE subject = 's' ORDER BY entry_id DESC LIMIT 10",
            "audit_subject",
        ),
        "event": ("SELECT body FROM events WHERE event_id = 'e'", "sqlite_autoindex_events_1"),
        "newer delivery of a dead one's key (replay)": (
            _rows.NEWER_DELIVERED.replace("?", "7"),
            "events_patient",
        ),
    }
    for name, (sql, index) in queries.items():
        steps = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        assert any(index in step for step in steps), (name, steps)
        assert not any("TEMP B-TREE" in step for step in steps), (name, steps)
        assert all("INDEX" in s or "PRIMARY KEY" in s for s in steps), (name, steps)
    conn.close()


def test_read_only_store_refuses_writes_and_missing_databases(tmp_path: Path) -> None:
    missing = SqliteStore(tmp_path / "missing.db", read_only=True)
    with pytest.raises(StoreError, match="does not exist"):
        asyncio.run(missing.open())
    assert not (tmp_path / "missing.db").exists()

    path = tmp_path / "t.db"
    result = run(lambda: SqliteStore(path), lambda s: s.admit(admission("fhir")))
    assert isinstance(result, Admitted)

    async def body(store: SqliteStore) -> None:
        assert await store.event(result.event_id) is not None
        assert await store.pending_count("fhir") == 1
        with pytest.raises(StoreError, match="read-only"):
            await store.admit(admission("fhir"))
        with pytest.raises(StoreError, match="read-only"):
            await store.replay(DeadLetterFilter(), "user:x", "why")

    run(lambda: SqliteStore(path, read_only=True), body)


def test_read_only_store_reads_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    total = 3000
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), "LIVE", str(total)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "opened"
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stdout or ()))
    reader.start()

    async def watch() -> list[int]:
        store = SqliteStore(path, read_only=True)
        await store.open()
        seen: list[int] = []
        try:
            while True:
                finished = child.poll() is not None
                stats = await store.stats()
                received = stats[0].received if stats else 0
                seen.append(received)
                outboxes = {o.destination_id: o for s in stats for o in s.outboxes}
                if outboxes:
                    assert outboxes["fhir"].pending == received
                    assert await store.pending_count("bed") >= received
                acknowledged = [line.strip() for line in list(lines) if line.startswith("LIVE")]
                if acknowledged:
                    assert await store.event(acknowledged[-1]) is not None
                if finished:
                    break
                await asyncio.sleep(0.01)
        finally:
            await store.close()
        return seen

    seen = asyncio.run(watch())
    assert child.wait(60) == 0
    reader.join(10)
    assert seen == sorted(seen)
    assert seen[-1] == total
    assert len(set(seen)) > 2, "the reader should have observed the writer in progress"


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_admission(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    acknowledged: list[str] = []
    for attempt in range(3):
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(path), f"K{attempt}", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "opened"
        lines: list[str] = []
        reader = threading.Thread(target=lambda c=child, out=lines: out.extend(c.stdout or ()))
        reader.start()
        threading.Event().wait(rng.uniform(0.2, 1.5))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        reader.join(30)
        complete = [line[:-1] for line in lines if line.endswith("\n")]
        assert complete, f"seed {seed}: the child acknowledged nothing before the kill"
        acknowledged += complete

    async def check(store: SqliteStore) -> None:
        missing = [i for i in acknowledged if await store.event(i) is None]
        assert not missing, f"seed {seed}: {len(missing)} acknowledged admissions lost"
        [channel] = await store.stats()
        outboxes = {o.destination_id: o for o in channel.outboxes}
        assert channel.received == outboxes["fhir"].pending == outboxes["bed"].pending
        assert channel.received >= len(acknowledged)

    run(lambda: SqliteStore(path), check)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    (events,) = conn.execute("SELECT count(*) FROM events").fetchone()
    (counted,) = conn.execute("SELECT received FROM channel_counters").fetchone()
    assert events == counted
    conn.close()


def test_attempt_rows_are_kept_for_failures_and_the_success_comes_from_the_delivery(
    tmp_path: Path,
) -> None:
    """A delivered outcome writes no `attempts` row; the timeline still lists it, last,
    with the receiver's text from the `delivered` audit entry. A store that already
    holds a `delivered` row (written before) shows it once."""

    async def body(store: SqliteStore) -> None:
        first = await store.admit(admission("fhir", "file"))
        assert isinstance(first, Admitted)
        fhir, file = first.deliveries
        await store.record(
            [Retrying(fhir.delivery_id, 1_700_000_001.0, 1, 1_700_000_002.0, "HTTP 503", 1.7e9)]
        )
        await store.record(
            [
                Delivered(
                    fhir.delivery_id, 1_700_000_003.0, 2, "fhir", fhir.ordering_key, None, "201"
                ),
                Delivered(file.delivery_id, 1_700_000_004.0, 1, "file", file.ordering_key, None),
            ]
        )
        conn = sqlite3.connect(tmp_path / "s.db")
        rows = conn.execute("SELECT delivery_id, attempt, outcome FROM attempts").fetchall()
        assert rows == [(fhir.delivery_id, 1, "failed")]
        # As a store written before this change would hold it: a row for the success too.
        conn.execute(
            "INSERT INTO attempts (delivery_id, attempt, at, outcome, detail)"
            " VALUES (?, 1, 1700000004.0, 'delivered', 'old row')",
            (file.delivery_id,),
        )
        conn.commit()
        conn.close()
        timeline = await store.timeline(first.event_id)
        assert timeline is not None
        logs = {d.delivery_id: d.attempt_log for d in timeline.deliveries}
        assert [(a.attempt, a.at, a.outcome, a.detail) for a in logs[fhir.delivery_id]] == [
            (1, 1_700_000_001.0, "failed", "HTTP 503"),
            (2, 1_700_000_003.0, "delivered", "201"),
        ]
        assert [(a.outcome, a.detail) for a in logs[file.delivery_id]] == [("delivered", "old row")]

    run(lambda: SqliteStore(tmp_path / "s.db"), body)


def test_subscription_state_is_stored_as_a_json_array_with_its_time(tmp_path: Path) -> None:
    path = tmp_path / "s.db"

    async def write(store: SqliteStore) -> None:
        await store.advance_subscription("subs", "enc-1", frozenset({1, 2}), None, 1.0)
        await store.advance_subscription("subs", "enc-1", frozenset({4, 5, 7}), 7, 2.0)

    run(lambda: SqliteStore(path), write)
    conn = sqlite3.connect(path)
    row = conn.execute(
        "SELECT last_event_number, missed, updated_at FROM subscription_state"
        " WHERE channel_id = 'subs' AND subscription_id = 'enc-1'"
    ).fetchone()
    conn.close()
    assert row == (7, "[3, 6]", 2.0)
