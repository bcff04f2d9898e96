"""PostgreSQL's writer sends statements in few round trips and still fails only the operation
at fault (`thumpflow.store.postgresql._script`).

A real writer on the session's throwaway cluster runs one batch of
operations with handlers of the test's own: statements held back in the
pending script must run in order before a read, a failure must fail only its
own operation whether its statements had reached the server or not (also
when it surfaces only in a later operation's round trip or at COMMIT), the
audit chain must stay intact across such failures, and statements of a
failed operation that were never sent must never run. BEGIN with the chain
head's read, and every statement whose result is not read, ride with the
next round trip: a batch that reads nothing is one round trip.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from tests.postgres import PgCluster
from tests.store.support import admission
from thumpflow.core.clock import SystemClock
from thumpflow.core.errors import StoreError
from thumpflow.store.group import Deltas, Kind, Op
from thumpflow.store.postgresql import PostgresStore
from thumpflow.store.postgresql._db import PgDb, connect
from thumpflow.store.postgresql._script import ScriptDb
from thumpflow.store.postgresql._writer import Writer
from thumpflow.store.reads import verify_audit


@pytest.fixture
def dsn(pg_cluster: PgCluster) -> str:
    dsn = pg_cluster.new_database()

    async def migrate() -> None:
        store = PostgresStore(dsn)
        await store.open()
        await store.close()

    asyncio.run(migrate())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (n integer NOT NULL CHECK (n >= 0))")
    return dsn


def run_ops(
    dsn: str,
    handlers: dict[Kind, Any],
    ops: list[tuple[Kind, Any]],
    round_trips: list[bytes] | None = None,
) -> list[Any]:
    """Queue every op before the writer starts, so that they share one transaction;
    `round_trips` collects what the writer's connection sent, one item a round trip."""

    def connection() -> psycopg.Connection[Any]:
        conn = connect(dsn, None)
        if round_trips is not None:
            send = conn.execute

            def execute(query: Any, *args: Any, **kwargs: Any) -> Any:
                round_trips.append(query if isinstance(query, bytes) else str(query).encode())
                return send(query, *args, **kwargs)

            conn.execute = execute  # type: ignore[method-assign]
        return conn

    writer = Writer(connection, SystemClock())
    for kind, handler in handlers.items():
        writer.handlers[kind] = lambda calls, deltas, handler=handler: handler(
            writer, calls, deltas
        )
    if round_trips is not None:
        round_trips.clear()
    loop = asyncio.new_event_loop()
    try:
        futures = [loop.create_future() for _ in ops]
        for (kind, arg), future in zip(ops, futures, strict=True):
            writer.submit(Op(kind, arg, future, loop))
        writer.start()
        writer.stop()
        return loop.run_until_complete(asyncio.gather(*futures, return_exceptions=True))
    finally:
        loop.close()


def run_batch(dsn: str, handler: Any, args: list[Any]) -> list[Any]:
    return run_ops(dsn, {Kind.AUDIT: handler}, [(Kind.AUDIT, arg) for arg in args])


def insert_and_audit(writer: Writer, calls: list[Any], deltas: Deltas) -> list[Any]:
    """Each call inserts its number and appends an audit entry naming it."""
    for n in calls:
        writer._context.conn.executemany("INSERT INTO probe (n) VALUES (?)", [(n,)])
        writer._audit.append([(1.0, "test", "probe.insert", f"probe:{n}", "{}")])
    return list(calls)


def count_rows(writer: Writer, calls: list[Any], deltas: Deltas) -> list[Any]:
    return [writer._context.conn.execute("SELECT count(*) FROM probe").fetchone()[0] for _ in calls]


def audit_intact(dsn: str) -> tuple[bool, list[str]]:
    with psycopg.connect(dsn) as conn:
        verdict = verify_audit(PgDb(conn), None)
        subjects = [row[0] for row in conn.execute("SELECT subject FROM audit ORDER BY entry_id")]
    return verdict.intact, [s for s in subjects if s.startswith("probe:")]


def stored(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("SELECT n FROM probe ORDER BY n")]


def test_held_back_statements_run_in_order_before_a_read(dsn: str) -> None:
    def handler(writer: Writer, calls: list[Any], deltas: Deltas) -> list[Any]:
        db = writer._context.conn
        for n in calls:
            db.executemany("INSERT INTO probe (n) VALUES (?)", [(n,), (n + 100,)])
        return [db.execute("SELECT count(*) FROM probe").fetchone()[0] for _ in calls]

    assert run_batch(dsn, handler, [1, 2, 3]) == [2, 4, 6]
    assert stored(dsn) == [1, 2, 3, 101, 102, 103]


def test_a_failure_the_server_reports_fails_only_its_own_operation(dsn: str) -> None:
    def handler(writer: Writer, calls: list[Any], deltas: Deltas) -> list[Any]:
        for n in calls:
            writer._context.conn.executemany("INSERT INTO probe (n) VALUES (?)", [(n,)])
        return [n for n in calls]

    results = run_batch(dsn, handler, [1, -5, 2])
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], StoreError)
    assert stored(dsn) == [1, 2]


def test_statements_of_a_failed_operation_never_sent_never_run(dsn: str) -> None:
    def handler(writer: Writer, calls: list[Any], deltas: Deltas) -> list[Any]:
        for n in calls:
            writer._context.conn.executemany("INSERT INTO probe (n) VALUES (?)", [(n,)])
            if n == 7:
                raise ValueError("the operation fails after its insert was held back")
        return [n for n in calls]

    results = run_batch(dsn, handler, [1, 7, 2])
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], StoreError)
    assert stored(dsn) == [1, 2]


def test_a_failure_held_back_past_its_operation_fails_only_that_operation(dsn: str) -> None:
    """The bad insert is held back past its savepoint and fails in the next
    operation's round trip: the batch is executed again, checked in place."""
    results = run_ops(
        dsn,
        {Kind.RECORD_LEDGER: insert_and_audit, Kind.AUDIT: count_rows},
        [
            (Kind.RECORD_LEDGER, 1),
            (Kind.RECORD_LEDGER, -5),
            (Kind.RECORD_LEDGER, 2),
            (Kind.AUDIT, None),
        ],
    )
    assert results[0] == 1 and results[2] == 2 and results[3] == 2
    assert isinstance(results[1], StoreError)
    assert stored(dsn) == [1, 2]
    assert audit_intact(dsn) == (True, ["probe:1", "probe:2"])


def test_a_failure_surfacing_at_commit_fails_only_its_own_operation(dsn: str) -> None:
    results = run_ops(
        dsn,
        {Kind.RECORD_LEDGER: insert_and_audit},
        [(Kind.RECORD_LEDGER, 3), (Kind.RECORD_LEDGER, -1)],
    )
    assert results[0] == 3
    assert isinstance(results[1], StoreError)
    assert stored(dsn) == [3]
    assert audit_intact(dsn) == (True, ["probe:3"])


def test_a_batch_rides_on_as_few_round_trips_as_it_reads(dsn: str) -> None:
    """Nothing read: one round trip. A read, then audited inserts: the head comes
    with the read, the inserts and their entries with COMMIT."""

    def insert_only(writer: Writer, calls: list[Any], deltas: Deltas) -> list[Any]:
        writer._context.conn.executemany("INSERT INTO probe (n) VALUES (?)", [(n,) for n in calls])
        return list(calls)

    sent: list[bytes] = []
    ops = [(Kind.RECORD_LEDGER, 1), (Kind.RECORD_LEDGER, 2)]
    assert run_ops(dsn, {Kind.RECORD_LEDGER: insert_only}, ops, sent) == [1, 2]
    assert len(sent) == 1
    assert sent[0].startswith(b"BEGIN; EXECUTE thumpflow_0")
    assert sent[0].endswith(b"COMMIT")

    ops = [(Kind.AUDIT, None), (Kind.RECORD_LEDGER, 4), (Kind.RECORD_LEDGER, 5)]
    handlers = {Kind.RECORD_LEDGER: insert_and_audit, Kind.AUDIT: count_rows}
    assert run_ops(dsn, handlers, ops, sent) == [2, 4, 5]
    assert len(sent) == 2
    assert sent[0].startswith(b"BEGIN; EXECUTE thumpflow_0")
    assert sent[0].endswith(b"SELECT count(*) FROM probe")
    assert b"INSERT INTO audit" in sent[1] and sent[1].endswith(b"COMMIT")
    assert stored(dsn) == [1, 2, 4, 5]
    assert audit_intact(dsn) == (True, ["probe:4", "probe:5"])


def test_a_transaction_aborted_out_of_sight_is_never_reported_committed(dsn: str) -> None:
    """COMMIT of an aborted transaction ends it as ROLLBACK without an error; the writer
    checks what COMMIT answered instead of trusting its silence."""
    writer = Writer(lambda: connect(dsn, None), SystemClock())
    try:
        writer._begin()
        writer._db.flush()
        with pytest.raises(psycopg.errors.DivisionByZero):
            writer._db.conn.execute("SELECT 1 / 0")
        with pytest.raises(StoreError, match="rolled the group commit back"):
            writer._finish(Deltas())
    finally:
        writer._disconnect()


def test_an_admission_batch_is_two_round_trips_and_its_key_sequences_have_no_gaps(
    dsn: str,
) -> None:
    """The key-sequence upsert rides with the idempotency probe; a duplicate in the
    batch has it rolled back and made again for the accepted ones only."""
    sent: list[bytes] = []
    first = admission("fhir", entity="MRN9", key="K1")
    again = admission("fhir", received=replace(first.received, event_id="EVT-RESENT"))
    results = run_ops(
        dsn,
        {},
        [(Kind.ADMIT, a) for a in (first, again, admission("fhir", entity="MRN9", key="K2"))],
        sent,
    )
    assert [type(r).__name__ for r in results] == ["Admitted", "Duplicate", "Admitted"]
    assert len(sent) == 3
    fresh = [admission("fhir", entity="MRN9", key=f"K{n}") for n in (3, 4)]
    assert len(run_ops(dsn, {}, [(Kind.ADMIT, a) for a in fresh], sent)) == 2
    assert len(sent) == 2
    with psycopg.connect(dsn) as conn:
        seqs = conn.execute(
            "SELECT key_seq FROM deliveries WHERE ordering_key = %s ORDER BY delivery_id",
            (first.deliveries[0].ordering_key,),
        ).fetchall()
    assert [row[0] for row in seqs] == [1, 2, 3, 4]


def test_a_batch_whose_connection_broke_is_never_executed_again(dsn: str) -> None:
    """After a lost connection COMMIT may or may not have happened: the batch fails
    with `StoreError` instead of being executed a second time."""
    executed: list[int] = []

    def handler(writer: Writer, calls: list[Any], deltas: Deltas) -> list[Any]:
        executed.extend(calls)
        if len(executed) == 1:
            with psycopg.connect(dsn, autocommit=True) as other:
                other.execute(
                    "SELECT pg_terminate_backend(%s)", (writer._db.conn.info.backend_pid,)
                )
        writer._context.conn.executemany("INSERT INTO probe (n) VALUES (?)", [(n,) for n in calls])
        writer._context.conn.execute("SELECT count(*) FROM probe")
        return list(calls)

    [result] = run_batch(dsn, handler, [8])
    assert isinstance(result, StoreError)
    assert executed == [8]
    assert stored(dsn) == []


def test_a_deferred_read_reaches_its_reader_only_if_it_was_sent(dsn: str) -> None:
    """A read waiting in the script runs in its place and its rows reach the reader
    before the call that sent it returns; one dropped with a rolled-back savepoint,
    or with a cleared script, never reaches its reader."""
    db = ScriptDb(connect(dsn, None))
    try:
        got: list[list[Any]] = []
        db.defer_statement("BEGIN")
        db.defer("INSERT INTO probe (n) VALUES (?)", [(7,)])
        db.defer_read("SELECT count(*) FROM probe", (), got.append)
        db.defer_statement("SAVEPOINT op")
        db.defer_read("SELECT 1 / 0", (), got.append)
        assert db.drop_from("SAVEPOINT op")
        db.flush()
        assert got == [[(1,)]]
        db.defer_read("SELECT 2", (), got.append)
        db.clear()
        db.flush()
        db.conn.execute("ROLLBACK")
        assert got == [[(1,)]]
    finally:
        db.conn.close()


def test_only_executemany_of_many_rows_is_prepared(dsn: str) -> None:
    """The writer's one-off scripts are never prepared (psycopg keyed its bookkeeping
    on each whole script); `executemany` of more rows than go into a script is, and
    the connection goes back to preparing nothing, also when it failed."""
    db = ScriptDb(connect(dsn, None))
    try:

        def prepared() -> list[str]:
            rows = db.conn.execute("SELECT statement FROM pg_prepared_statements").fetchall()
            return [row[0] for row in rows]

        for n in range(8):
            db.defer("INSERT INTO probe (n) VALUES (?)", [(n,), (n + 1,)])
            db.flush()
            db.execute("SELECT count(*) FROM probe").fetchall()
        assert prepared() == []
        db.executemany("INSERT INTO probe (n) VALUES (?)", [(n,) for n in range(40)])
        assert [s for s in prepared() if "INSERT INTO probe" in s]
        assert db.conn.prepare_threshold is None
        with pytest.raises(psycopg.errors.CheckViolation):
            db.executemany("INSERT INTO probe (n) VALUES (?)", [(-n,) for n in range(1, 41)])
        assert db.conn.prepare_threshold is None
    finally:
        db.conn.close()
