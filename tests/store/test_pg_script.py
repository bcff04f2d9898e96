"""PostgreSQL's writer sends statements in few round trips and still fails only the operation
at fault (`thumpflow.store.postgresql._script`).

A real writer on the session's throwaway cluster runs one batch of
operations with handlers of the test's own: statements held back in the
pending script must run in order before a read, a failure must fail only its
own operation whether its statements had reached the server or not, and
statements of a failed operation that were never sent must never run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from tests.postgres import PgCluster
from thumpflow.core.clock import SystemClock
from thumpflow.core.errors import StoreError
from thumpflow.store.group import Deltas, Kind, Op
from thumpflow.store.postgresql import PostgresStore
from thumpflow.store.postgresql._db import connect
from thumpflow.store.postgresql._writer import Writer


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


def run_batch(dsn: str, handler: Any, args: list[Any]) -> list[Any]:
    """Queue every op before the writer starts, so that they share one transaction."""
    writer = Writer(lambda: connect(dsn, None), SystemClock())
    writer.handlers[Kind.AUDIT] = lambda calls, deltas: handler(writer, calls, deltas)
    loop = asyncio.new_event_loop()
    try:
        futures = [loop.create_future() for _ in args]
        for arg, future in zip(args, futures, strict=True):
            writer.submit(Op(Kind.AUDIT, arg, future, loop))
        writer.start()
        writer.stop()
        return loop.run_until_complete(asyncio.gather(*futures, return_exceptions=True))
    finally:
        loop.close()


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
