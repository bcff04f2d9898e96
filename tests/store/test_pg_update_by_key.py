"""PostgreSQL's writer sends an update by key for many rows as one statement, with the same
effect as one statement per row (`thumpflow.store.postgresql._script`).

The server parses, analyses and plans every statement of a script, so the
writer turns `UPDATE t SET c = ?, s = 1 WHERE k = ?` for many rows into one
`UPDATE ... FROM (VALUES ...)`, each value cast to its column's type. On the
session's throwaway cluster, for hostile values of every column type the
store uses (NULL in every row too), the table must end exactly as when each
row is sent alone; a key given twice, a table made after the connection,
and an assignment that is not a value keep one statement per row (last
write wins, as before).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.postgres import PgCluster
from thumpflow.store.postgresql._db import connect
from thumpflow.store.postgresql._script import ScriptDb

_TABLE = (
    "CREATE TABLE {name} (k bigint PRIMARY KEY, n integer NOT NULL, big bigint, f double precision,"
    " b bytea, t text, status integer NOT NULL)"
)
_UPDATE = "UPDATE {name} SET n = ?, big = ?, f = ?, b = ?, t = ?, status = 1 WHERE k = ?"
KEYS = range(1, 9)

ROW = st.tuples(
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.none() | st.floats(allow_nan=False),
    st.none() | st.binary(max_size=12),
    st.none() | st.text(alphabet=st.sampled_from("\x00\uffff'\"\\$-;%?é😀a \n"), max_size=10),
)


@pytest.fixture(scope="module")
def db(pg_cluster: PgCluster) -> Iterator[ScriptDb]:
    dsn = pg_cluster.new_database()
    with psycopg.connect(dsn, autocommit=True) as setup:
        for name in ("batched", "one_by_one"):
            setup.execute(_TABLE.format(name=name))
    script = ScriptDb(connect(dsn, None))
    yield script
    script.conn.close()


def reset(db: ScriptDb) -> None:
    for name in ("batched", "one_by_one"):
        db.conn.execute(f"DELETE FROM {name}")
        db.conn.execute(
            f"INSERT INTO {name} (k, n, status) SELECT k, 0, 0 FROM generate_series(1, 8) k"
        )


def table(db: ScriptDb, name: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in db.conn.execute(f"SELECT * FROM {name} ORDER BY k").fetchall()]


@settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keys=st.lists(st.sampled_from(KEYS), min_size=2, max_size=8, unique=True),
    data=st.data(),
)
def test_many_rows_are_one_statement_with_the_effect_of_one_per_row(
    db: ScriptDb, keys: list[int], data: st.DataObject
) -> None:
    reset(db)
    rows = [(*data.draw(ROW), key) for key in keys]
    db.defer(_UPDATE.format(name="batched"), rows)
    assert len(db.pending) == 1 and b"FROM (VALUES" in db.pending[0]
    for row in rows:
        db.defer(_UPDATE.format(name="one_by_one"), [row])
    assert len(db.pending) == 1 + len(rows)
    db.flush()
    assert table(db, "batched") == table(db, "one_by_one")


def test_the_most_negative_numbers_keep_their_sign(db: ScriptDb) -> None:
    # `-9223372036854775808::bigint` would cast the number before its sign: out of range.
    reset(db)
    rows = [(-(2**31), -(2**63), -1.5, None, None, 1), (2**31 - 1, 2**63 - 1, 0.0, None, None, 2)]
    db.defer(_UPDATE.format(name="batched"), rows)
    db.flush()
    assert table(db, "batched")[:2] == [
        (1, -(2**31), -(2**63), -1.5, None, None, 1),
        (2, 2**31 - 1, 2**63 - 1, 0.0, None, None, 1),
    ]


def test_a_column_null_in_every_row_takes_the_column_type(db: ScriptDb) -> None:
    reset(db)
    db.defer(
        _UPDATE.format(name="batched"),
        [(5, None, None, None, None, 1), (6, None, None, None, None, 2)],
    )
    db.flush()
    assert table(db, "batched")[:3] == [
        (1, 5, None, None, None, None, 1),
        (2, 6, None, None, None, None, 1),
        (3, 0, None, None, None, None, 0),
    ]


def test_what_it_cannot_join_stays_one_statement_per_row(db: ScriptDb) -> None:
    reset(db)
    twice = [(1, None, None, None, "first", 3), (2, None, None, None, "second", 3)]
    db.defer(_UPDATE.format(name="batched"), twice)
    db.defer("UPDATE batched SET n = n + ? WHERE k = ?", [(10, 4), (10, 5)])
    assert len(db.pending) == 4
    db.flush()
    rows = table(db, "batched")
    assert rows[2][1] == 2 and rows[2][5] == "second"
    assert rows[3][1] == rows[4][1] == 10


def test_a_table_made_after_the_connection_keeps_one_statement_per_row(db: ScriptDb) -> None:
    db.conn.execute("CREATE TABLE IF NOT EXISTS later (k bigint PRIMARY KEY, n integer)")
    db.conn.execute("INSERT INTO later VALUES (1, 0), (2, 0) ON CONFLICT DO NOTHING")
    db.defer("UPDATE later SET n = ? WHERE k = ?", [(7, 1), (8, 2)])
    assert len(db.pending) == 2
    db.flush()
    assert db.conn.execute("SELECT n FROM later ORDER BY k").fetchall() == [(7,), (8,)]
