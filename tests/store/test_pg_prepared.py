"""The PostgreSQL writer's fixed statements are prepared once a connection and sent as
`EXECUTE` with their values inlined (`thumpflow.store.postgresql._script`).

On the session's throwaway cluster: the writer's connection holds its
statements prepared, and its scripts carry `EXECUTE` instead of their text;
a prepared statement given hostile values of every column type the store
uses stores and finds exactly what the same statement inlined does, and
fails as it does; a statement that cannot be prepared when the connection
is made is sent inlined; a new connection prepares them again; statements
the server session lost are sent inlined from then on, and the writer's
batch that met the loss still commits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.postgres import PgCluster
from tests.store.support import admission
from thumpflow.store.postgresql import PostgresStore
from thumpflow.store.postgresql._db import connect
from thumpflow.store.postgresql._script import ScriptDb
from thumpflow.store.postgresql._writer import Writer

_TABLE = (
    "CREATE TABLE {name} (k bigint PRIMARY KEY, n integer NOT NULL CHECK (n >= 0), big bigint,"
    " f double precision, b bytea, t text)"
)
_INSERT = "INSERT INTO {name} (k, n, big, f, b, t) VALUES (?, ?, ?, ?, ?, ?)"
_FIND = "SELECT k FROM {name} WHERE t = ANY(?::text[]) ORDER BY k"

ROW = st.tuples(
    st.integers(min_value=0, max_value=2**31 - 1),
    st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.none() | st.floats(),
    st.none() | st.binary(max_size=12),
    st.none() | st.text(alphabet=st.sampled_from("\x00\uffff'\"\\$-;%?é😀a \n)("), max_size=10),
)


@pytest.fixture(scope="module")
def dsn(pg_cluster: PgCluster) -> str:
    dsn = pg_cluster.new_database()
    with psycopg.connect(dsn, autocommit=True) as setup:
        for name in ("prepared", "inlined"):
            setup.execute(_TABLE.format(name=name))
    return dsn


@pytest.fixture(scope="module")
def dbs(dsn: str) -> Iterator[tuple[ScriptDb, ScriptDb]]:
    """A script with the table's statements prepared, and one without."""
    prepared = ScriptDb(
        connect(dsn, None), [_INSERT.format(name="prepared"), _FIND.format(name="prepared")]
    )
    inlined = ScriptDb(connect(dsn, None))
    yield prepared, inlined
    prepared.conn.close()
    inlined.conn.close()


def prepared_names(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute("SELECT name FROM pg_prepared_statements ORDER BY name").fetchall()
    return [row[0] for row in rows]


def test_the_writers_statements_are_prepared_and_sent_as_execute(pg_cluster: PgCluster) -> None:
    dsn = pg_cluster.new_database()
    sent: list[bytes] = []

    async def admit() -> None:
        store = PostgresStore(dsn)
        await store.open()
        try:
            writer = store._writer
            assert isinstance(writer, Writer)
            conn = writer._db.conn
            send = conn.execute

            def execute(query: Any, *args: Any, **kwargs: Any) -> Any:
                sent.append(query if isinstance(query, bytes) else str(query).encode())
                return send(query, *args, **kwargs)

            conn.execute = execute  # type: ignore[method-assign]
            admissions = [admission("fhir", entity=f"MRN{n}", key=f"K{n}") for n in range(3)]
            results = await asyncio.gather(*(store.admit(a) for a in admissions))
            assert [type(r).__name__ for r in results] == ["Admitted"] * 3
            assert prepared_names(conn) == [f"thumpflow_{n}" for n in range(6)]
        finally:
            await store.close()

    asyncio.run(admit())
    script = b"; ".join(sent)
    assert b"EXECUTE thumpflow_0" in script  # the chain head's read
    for text in (b"FOR UPDATE", b"INSERT INTO key_sequences", b"UPDATE audit_head"):
        assert text not in script
    for text in (b"INSERT INTO channel_counters", b"INSERT INTO outbox_counters", b"pg_notify"):
        assert text not in script
    # A read whose plan depends on the table's size is planned each time.
    assert b"SELECT key, event_id, ack_code, digest FROM idempotency" in script
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM deliveries").fetchone() == (3,)
        assert conn.execute("SELECT received FROM channel_counters").fetchone() == (3,)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=st.lists(ROW, min_size=1, max_size=6))
def test_prepared_statements_store_and_find_what_inlined_ones_do(
    dbs: tuple[ScriptDb, ScriptDb], rows: list[tuple[Any, ...]]
) -> None:
    prepared, inlined = dbs
    for db, name in ((prepared, "prepared"), (inlined, "inlined")):
        db.conn.execute(f"DELETE FROM {name}")
        for key, row in enumerate(rows):
            db.execute(_INSERT.format(name=name), (key, *row))
    assert prepared.render(_INSERT.format(name="prepared"), (0, *rows[0])).startswith(
        b"EXECUTE thumpflow_0("
    )
    read = "SELECT k, n, big, f::text, b, t FROM {name} ORDER BY k"
    assert (
        prepared.conn.execute(read.format(name="prepared")).fetchall()
        == inlined.conn.execute(read.format(name="inlined")).fetchall()
    )
    texts = [row[4] for row in rows if row[4] is not None] or ["absent"]
    found = [
        db.execute(_FIND.format(name=name), (texts,)).fetchall()
        for db, name in zip(dbs, ("prepared", "inlined"), strict=True)
    ]
    assert found[0] == found[1]


def test_a_prepared_statement_fails_where_its_inlined_form_fails(
    dbs: tuple[ScriptDb, ScriptDb],
) -> None:
    prepared, _ = dbs
    prepared.defer_statement("BEGIN")
    with pytest.raises(psycopg.errors.CheckViolation):
        prepared.execute(_INSERT.format(name="prepared"), (99, -1, None, None, None, None))
    prepared.conn.execute("ROLLBACK")
    assert prepared.conn.execute("SELECT count(*) FROM prepared WHERE k = 99").fetchone() == (0,)


def test_a_statement_that_cannot_be_prepared_yet_is_sent_inlined(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    later = "INSERT INTO made_later (n) VALUES (?)"
    with caplog.at_level(logging.WARNING, logger="thumpflow.store.postgresql"):
        db = ScriptDb(connect(dsn, None), [later])
    try:
        assert "statement 0 stays unprepared: 42P01" in caplog.text
        db.conn.execute("CREATE TABLE made_later (n integer)")
        assert db.render(later, (7,)) == b"INSERT INTO made_later (n) VALUES (7)"
        db.execute(later, (7,))
        assert db.conn.execute("SELECT n FROM made_later").fetchall() == [(7,)]
    finally:
        db.conn.execute("DROP TABLE IF EXISTS made_later")
        db.conn.close()


def test_values_literals_cannot_quote_are_sent_with_the_statement_inlined(
    dbs: tuple[ScriptDb, ScriptDb],
) -> None:
    prepared, _ = dbs
    prepared.conn.execute("DELETE FROM prepared")
    prepared.execute(_INSERT.format(name="prepared"), (5, 0, None, None, None, "nested"))
    statement = _FIND.format(name="prepared")
    nested = ([["nested"]],)  # a nested list: left to mogrify
    assert prepared.render(statement, nested).startswith(b"SELECT k FROM prepared WHERE")
    found: list[Any] = []
    prepared.defer_read(statement, nested, found.extend)
    prepared.flush()
    prepared.conn.execute("DELETE FROM prepared")
    assert found == [(5,)]


def test_a_new_connection_prepares_the_statements_again(dsn: str) -> None:
    statement = _FIND.format(name="prepared")
    db = ScriptDb(connect(dsn, None), [statement])
    try:
        db.conn.close()
        db.rebind(connect(dsn, None))
        assert prepared_names(db.conn) == ["thumpflow_0"]
        assert db.render(statement, (["x"],)) == b"EXECUTE thumpflow_0(ARRAY['x'])"
        assert db.execute(statement, (["x"],)).fetchall() == []
    finally:
        db.conn.close()


def test_statements_the_session_lost_are_sent_inlined_from_then_on(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    statement = _FIND.format(name="prepared")
    db = ScriptDb(connect(dsn, None), [statement])
    found: list[Any] = []
    try:
        db.conn.execute("DEALLOCATE ALL")
        db.defer_read(statement, (["x"],), found.extend)
        with (
            caplog.at_level(logging.WARNING, logger="thumpflow.store.postgresql"),
            pytest.raises(psycopg.errors.InvalidSqlStatementName),
        ):
            db.flush()
        assert "lost the writer's prepared statements" in caplog.text
        assert db.render(statement, (["x"],)).startswith(b"SELECT k FROM prepared")
        db.defer_read(statement, (["x"],), found.extend)
        db.flush()
        assert found == []
    finally:
        db.conn.close()


def test_a_writer_whose_session_lost_its_statements_goes_on_admitting(
    pg_cluster: PgCluster,
) -> None:
    """The batch that meets the loss fails on the server, is executed again (the
    writer's one recheck), inlined, and commits: no sender is refused."""
    dsn = pg_cluster.new_database()

    async def admit() -> list[str]:
        store = PostgresStore(dsn)
        await store.open()
        try:
            writer = store._writer
            assert isinstance(writer, Writer)
            writer._db.conn.execute("DEALLOCATE ALL")
            keys = [f"K{n}" for n in range(3)]
            return [type(await store.admit(admission("fhir", key=k))).__name__ for k in keys]
        finally:
            await store.close()

    assert asyncio.run(admit()) == ["Admitted"] * 3
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (3,)
