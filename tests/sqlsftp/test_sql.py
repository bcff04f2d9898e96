"""SQL source and upsert destination against real SQLite files and a real PostgreSQL cluster."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from tests.postgres import PG_PASSWORD, PgCluster
from tests.sqlsftp.support import item, run_once
from thumpflow.connectors.sql import (
    SqlError,
    SqlSource,
    SqlSourceSpec,
    SqlUpsertDestination,
    SqlUpsertDestinationSpec,
)
from thumpflow.connectors.sql._query import for_psycopg, parameters
from thumpflow.core.batch import SourceRecord, Window

CHILD = Path(__file__).with_name("sql_load_child.py")


class Db:
    """One empty database of a dialect: connection fields for specs, and plain SQL for setup."""

    def __init__(self, dialect: str, fields: dict[str, Any], path_or_dsn: str) -> None:
        self.dialect = dialect
        self.fields = fields
        self._target = path_or_dsn

    def sql(self, statement: str, rows: Sequence[Sequence[Any]] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (for each of `rows` when given); the result rows of the last."""
        if self.dialect == "sqlite":
            statement = statement.replace("%s", "?")
            with sqlite3.connect(self._target) as conn:
                cur = conn.executemany(statement, rows) if rows else conn.execute(statement)
                return cur.fetchall()
        with psycopg.connect(self._target, password=PG_PASSWORD) as pg, pg.cursor() as cur:
            if rows:
                cur.executemany(statement, rows)
                return []
            cur.execute(statement)
            return cur.fetchall() if cur.description else []


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    if request.param == "sqlite":
        path = str(tmp_path / "test.db")
        with sqlite3.connect(path) as conn:
            # A source reading while a destination writes the same file needs WAL.
            conn.execute("PRAGMA journal_mode=WAL")
        return Db("sqlite", {"dialect": "sqlite", "database": path}, path)
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    dsn = cluster.new_schema()
    fields = {"dialect": "postgresql", "dsn": dsn, "password_file": str(cluster.password_file)}
    return Db("postgresql", fields, dsn)


def source(db: Db, query: str, **extra: Any) -> SqlSource:
    return SqlSource("src", SqlSourceSpec(type="sql", query=query, **db.fields, **extra))


def destination(db: Db, **extra: Any) -> SqlUpsertDestination:
    fields: dict[str, Any] = {
        "table": "patients",
        "key_columns": ["mrn"],
        "columns": {"mrn": "mrn", "family": "family", "visits": "visits"},
        "create_table": True,
        **extra,
    }
    return SqlUpsertDestination(
        "dst", SqlUpsertDestinationSpec(type="sql_upsert", **db.fields, **fields)
    )


async def collect(src: SqlSource, window: Window) -> list[SourceRecord]:
    return [record async for chunk in src.read(window) for record in chunk]


CHANGES = (
    "SELECT mrn, family, updated_at FROM changes "
    "WHERE (updated_at > :window_start OR :window_start IS NULL) "
    "AND (updated_at <= :window_end OR :window_end IS NULL) ORDER BY updated_at"
)


def make_changes(db: Db) -> None:
    kind = "timestamptz" if db.dialect == "postgresql" else "TEXT"
    db.sql(f"CREATE TABLE changes (mrn TEXT PRIMARY KEY, family TEXT, updated_at {kind})")


# --------------------------------------------------------------------------- specs


def test_spec_examples_validate_and_every_field_is_described() -> None:
    for spec in (SqlSourceSpec, SqlUpsertDestinationSpec):
        model = spec.model_validate(spec.example)
        assert model.type == spec.example["type"]
        schema = spec.model_json_schema()
        assert schema["description"] and "\n" not in schema["description"]
        for name, info in spec.model_fields.items():
            assert info.description, f"{spec.__name__}.{name} has no description"
        with pytest.raises(ValidationError):
            spec.model_validate({**spec.example, "unknown": 1})


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"dsn": "host=db user=u password=secret"}, "must not contain a password"),
        ({"dsn": "postgresql://u:secret@db/ehr"}, "must not contain a password"),
        ({"dsn": None}, "needs dsn"),
        ({"password_file": "/run/pw"}, "at most one"),
        ({"database": "x.db"}, "database is for sqlite"),
        ({"query": "SELECT * FROM t WHERE id > :since"}, "unknown parameters :since"),
    ],
)
def test_source_spec_refuses(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        SqlSourceSpec.model_validate({**SqlSourceSpec.example, **change})


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"table": 'patients"; DROP TABLE x; --'}, "pattern"),
        ({"columns": {"mrn": "mrn", "bad name": "x"}}, "pattern"),
        ({"key_columns": ["id"]}, "key_columns not in columns: id"),
        ({"dsn": "host=db"}, "dsn, password_env and password_file are for postgresql"),
    ],
)
def test_destination_spec_refuses(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        SqlUpsertDestinationSpec.model_validate({**SqlUpsertDestinationSpec.example, **change})


def test_window_parameters_are_found_outside_literals_casts_and_comments() -> None:
    query = (
        "SELECT a::text, '50% :nope', \"c:ol\", E'it\\'s :nope', $$ :nope $$, arr[lo:hi] "
        "-- :nope\n/* :nope */ FROM t WHERE ts > :window_start::timestamptz "
        "AND ts <= :window_end"
    )
    assert parameters(query) == {"window_start", "window_end"}
    translated = for_psycopg(query)
    assert "%(window_start)s::timestamptz" in translated
    assert "ts <= %(window_end)s" in translated
    assert "'50%% :nope'" in translated
    assert translated.count(":nope") == 5


# --------------------------------------------------------------------------- source


def test_watermark_windows_read_only_rows_changed_since_the_last_run(db: Db) -> None:
    make_changes(db)
    db.sql(
        "INSERT INTO changes VALUES (%s, %s, %s)",
        [
            ("M1", "Ash", "2026-01-01T08:00:00+00:00"),
            ("M2", "Birch", "2026-01-01T09:00:00+00:00"),
            ("M3", "Cedar", "2026-01-01T10:00:00+00:00"),
        ],
    )
    src = source(db, CHANGES, watermark_column="updated_at")

    first = asyncio.run(collect(src, Window()))
    assert [r.data["mrn"] for r in first] == ["M1", "M2", "M3"]
    assert [r.origin for r in first] == ["query row 1", "query row 2", "query row 3"]
    assert '"mrn": "M1"' in first[0].raw
    watermark = src.next_watermark()
    assert watermark is not None and watermark.startswith("2026-01-01T10:00:00")

    db.sql(
        "UPDATE changes SET family = 'Birchwood', updated_at = '2026-01-02T07:00:00+00:00' "
        "WHERE mrn = 'M2'"
    )
    db.sql("INSERT INTO changes VALUES ('M4', 'Dogwood', '2026-01-02T08:00:00+00:00')")
    second = asyncio.run(collect(src, Window(start=watermark)))
    assert [(r.data["mrn"], r.data["family"]) for r in second] == [
        ("M2", "Birchwood"),
        ("M4", "Dogwood"),
    ]
    advanced = src.next_watermark()
    assert advanced is not None and advanced.startswith("2026-01-02T08:00:00")

    assert asyncio.run(collect(src, Window(start=advanced))) == []
    assert src.next_watermark() == advanced, "an empty run keeps the watermark"

    bounded = asyncio.run(collect(src, Window(end="2026-01-01T09:30:00+00:00")))
    assert [r.data["mrn"] for r in bounded] == ["M1"]


def test_streaming_a_large_result_is_bounded_by_fetch_size(db: Db) -> None:
    rows = 60_000
    if db.dialect == "postgresql":
        query = f"SELECT n, 'row ' || n AS label FROM generate_series(1, {rows}) AS n ORDER BY n"
    else:
        query = (
            f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {rows}) "
            "SELECT n, 'row ' || n AS label FROM s"
        )
    src = source(db, query, fetch_size=500, watermark_column="n")
    seen_fetch: list[str] = []

    async def consume() -> int:
        count = 0
        async for chunk in src.read(Window()):
            for record in chunk:
                count += 1
                assert record.data["n"] == count
            if count == 10_000 and db.dialect == "postgresql":
                seen_fetch.extend(
                    str(q)
                    for (q,) in await asyncio.to_thread(
                        db.sql,
                        "SELECT query FROM pg_stat_activity WHERE query LIKE 'FETCH%' "
                        "AND pid <> pg_backend_pid()",
                    )
                )
        return count

    assert asyncio.run(consume()) == rows
    assert src.next_watermark() == str(rows)
    if db.dialect == "postgresql":
        assert seen_fetch and "thumpflow_sql_source" in seen_fetch[0], (
            "rows come through a server-side cursor"
        )


def test_sqlite_stream_keeps_memory_bounded(tmp_path: Path) -> None:
    db = Db("sqlite", {"dialect": "sqlite", "database": str(tmp_path / "m.db")}, "")
    sqlite3.connect(tmp_path / "m.db").close()
    query = (
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 40000) "
        "SELECT n, printf('%080d', n) AS padding FROM s"
    )
    src = source(db, query, fetch_size=200)

    async def count() -> int:
        total = 0
        async for chunk in src.read(Window()):
            total += len(chunk)
        return total

    tracemalloc.start()
    try:
        total = asyncio.run(count())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 40_000
    assert peak < 8_000_000, f"peak {peak} bytes: rows were held, not streamed"


def test_query_errors_name_the_problem_but_never_a_value(db: Db) -> None:
    db.sql("CREATE TABLE patients (mrn TEXT, family TEXT)")
    db.sql("INSERT INTO patients VALUES ('MRN-7781', 'Zebediah')")
    if db.dialect == "postgresql":
        query = "SELECT CAST(family AS integer) AS n FROM patients"
        expected = "InvalidTextRepresentation (SQLSTATE 22P02)"
    else:
        query = "SELECT mrn FROM no_such_table"
        expected = "no such table: no_such_table"
    with pytest.raises(SqlError) as caught:
        asyncio.run(collect(source(db, query), Window()))
    text = str(caught.value)
    assert expected in text
    assert "Zebediah" not in text and "MRN-7781" not in text


def test_watermark_column_missing_from_the_result_is_a_clear_error(db: Db) -> None:
    make_changes(db)
    db.sql("INSERT INTO changes VALUES ('M1', 'Ash', '2026-01-01T08:00:00+00:00')")
    src = source(db, "SELECT mrn FROM changes", watermark_column="updated_at")
    with pytest.raises(SqlError, match="no column 'updated_at'"):
        asyncio.run(collect(src, Window()))


def test_postgresql_password_from_the_environment(
    pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = {
        "type": "sql",
        "dialect": "postgresql",
        "dsn": pg_cluster.dsn(),
        "query": "SELECT 1 AS one",
    }
    monkeypatch.setenv("TF_TEST_PG_PASSWORD", PG_PASSWORD)
    good = SqlSource("src", SqlSourceSpec(**spec, password_env="TF_TEST_PG_PASSWORD"))
    assert [r.data for r in asyncio.run(collect(good, Window()))] == [{"one": 1}]

    monkeypatch.setenv("TF_TEST_PG_PASSWORD", "wrong")
    with pytest.raises(SqlError, match=r"cannot connect to PostgreSQL.*password authentication"):
        asyncio.run(collect(good, Window()))

    monkeypatch.delenv("TF_TEST_PG_PASSWORD")
    with pytest.raises(SqlError, match="environment variable TF_TEST_PG_PASSWORD is not set"):
        asyncio.run(collect(good, Window()))


# --------------------------------------------------------------------------- destination


def people(n: int, *, family: str = "Fam", start: int = 1) -> list[dict[str, Any]]:
    return [
        {"mrn": f"M{i:05d}", "family": f"{family}{i}", "visits": i % 7 or None}
        for i in range(start, start + n)
    ]


async def load(dst: SqlUpsertDestination, *writes: list[dict[str, Any]]) -> list[tuple[int, int]]:
    await dst.begin("job", 1, Window())
    try:
        results = [await dst.write([item(d, "mrn") for d in data]) for data in writes]
        return [(r.written, r.skipped) for r in results]
    finally:
        await dst.finish()


def test_upsert_counts_written_and_skipped_and_a_rerun_changes_nothing(db: Db) -> None:
    dst = destination(db)
    rows = people(300)
    assert asyncio.run(load(dst, rows[:150], rows[150:])) == [(150, 0), (150, 0)]
    before = db.sql("SELECT mrn, family, visits FROM patients ORDER BY mrn")
    assert len(before) == 300

    assert asyncio.run(load(dst, rows)) == [(0, 300)], "unchanged rows (NULLs too) are skipped"
    assert db.sql("SELECT mrn, family, visits FROM patients ORDER BY mrn") == before

    changed = [{**r, "family": r["family"] + "-x"} for r in rows[:20]]
    assert asyncio.run(load(dst, changed + rows[20:] + people(5, start=301))) == [(25, 280)]
    assert db.sql("SELECT family FROM patients WHERE mrn = 'M00001'") == [("Fam1-x",)]
    assert db.sql("SELECT count(*) FROM patients") == [(305,)]


def test_a_key_repeated_within_one_write_ends_with_its_last_value(db: Db) -> None:
    dst = destination(db)
    a = {"mrn": "M1", "family": "Old", "visits": 1}
    b = {"mrn": "M1", "family": "New", "visits": 1}
    assert asyncio.run(load(dst, [a, b, b])) == [(2, 1)]
    assert db.sql("SELECT family FROM patients") == [("New",)]


def test_a_failing_write_applies_none_of_its_items_and_names_no_value(db: Db) -> None:
    dst = destination(db)
    rows = people(5, family="Quintessa")
    rows[3] = {**rows[3], "mrn": None}

    with pytest.raises(SqlError) as caught:
        asyncio.run(load(dst, rows))
    assert "patients" in str(caught.value)
    assert "Quintessa" not in str(caught.value)
    assert db.sql("SELECT count(*) FROM patients") == [(0,)]

    with pytest.raises(SqlError, match="item from test has no field 'mrn' for key column 'mrn'"):
        asyncio.run(load(dst, [{"family": "X"}]))


def test_key_only_tables_and_reserved_word_columns_are_quoted(db: Db) -> None:
    dst = destination(
        db, table="memberships", key_columns=["order", "user"], columns={"order": "o", "user": "u"}
    )
    data = [{"o": "1", "u": "a"}, {"o": "1", "u": "b"}]
    assert asyncio.run(load(dst, data, data)) == [(2, 0), (0, 2)]


def test_a_run_killed_midway_and_rerun_gives_the_same_table_as_one_clean_run(db: Db) -> None:
    total = 4000
    db.sql("CREATE TABLE source_rows (mrn TEXT PRIMARY KEY, family TEXT, visits INTEGER)")
    db.sql(
        "INSERT INTO source_rows VALUES (%s, %s, %s)",
        [(d["mrn"], d["family"], d["visits"]) for d in people(total)],
    )
    query = "SELECT mrn, family, visits FROM source_rows ORDER BY mrn"
    src_spec = SqlSourceSpec(type="sql", query=query, fetch_size=300, **db.fields)
    dst_fields = {
        "type": "sql_upsert",
        "key_columns": ["mrn"],
        "columns": {"mrn": "mrn", "family": "family", "visits": "visits"},
        "create_table": True,
        **db.fields,
    }
    killed = SqlUpsertDestinationSpec(table="killed", **dst_fields)
    clean = SqlUpsertDestinationSpec(table="clean", **dst_fields)

    child = subprocess.Popen(
        [sys.executable, str(CHILD), src_spec.model_dump_json(), killed.model_dump_json()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    deadline = time.monotonic() + 20
    writes = 0
    while writes < 5 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        writes = int(line.split()[1])
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert writes >= 5, child.stderr.read().decode() if child.stderr else ""
    (present,) = db.sql("SELECT count(*) FROM killed")[0]
    assert 0 < present < total, "the child was killed midway"

    rerun = asyncio.run(
        run_once(
            SqlSource("src", src_spec), SqlUpsertDestination("d", killed), Window(), key_field="mrn"
        )
    )
    assert rerun == (total, total - present, present)
    asyncio.run(
        run_once(
            SqlSource("src", src_spec), SqlUpsertDestination("d", clean), Window(), key_field="mrn"
        )
    )
    order = "SELECT mrn, family, visits FROM {} ORDER BY mrn"
    assert db.sql(order.format("killed")) == db.sql(order.format("clean"))
    assert len(db.sql(order.format("clean"))) == total
