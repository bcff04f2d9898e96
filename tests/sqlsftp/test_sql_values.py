"""SQLite upserts of items carrying their values (multi-row statements) store exactly what
binding row by row stores, with the same counts and the same all-or-nothing writes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from thumpflow.connectors.sql import SqlError, SqlUpsertDestination, SqlUpsertDestinationSpec
from thumpflow.connectors.sql.destination import ROWS_PER_STATEMENT
from thumpflow.core.batch import BatchItem, Window
from thumpflow.core.records import canonical_json, content_hash

# Field names with dots, spaces, brackets, accents and a `$`: bound as parameters, any name
# works.
FIELDS = {"key": "mrn", "dotted": "a.b", "spaced": "given name", "odd": "x[0]$", "accent": "ü"}
VALUES: list[Any] = [
    "plain",
    "Müller 😀",
    'quote " and \\ backslash',
    "line\nbreak\u2028",
    "",
    None,
    0,
    -(2**63),
    2**63 - 1,
    True,
    False,
    date(2024, 2, 29),
    datetime(2024, 2, 1, 5, 15, tzinfo=UTC),
    datetime(2024, 2, 1, 5, 15, 0, 500),
    Decimal("-0.000"),
    Decimal("12.50"),
]


def spec(path: Path, table: str, fields: dict[str, str]) -> SqlUpsertDestinationSpec:
    return SqlUpsertDestinationSpec(
        type="sql_upsert",
        dialect="sqlite",
        database=str(path),
        table=table,
        key_columns=["key"],
        columns=fields,
        create_table=True,
    )


def item(data: dict[str, Any], *, values: bool) -> BatchItem:
    """An item as the runner makes it: with its canonical JSON and that JSON's values."""
    text = canonical_json(data)
    loaded = json.loads(text)
    return BatchItem(
        str(data.get("mrn")),
        data,
        content_hash(data),
        "test",
        canonical=text,
        values=tuple(loaded[name] for name in data) if values else None,
    )


async def load(
    path: Path,
    table: str,
    fields: dict[str, str],
    writes: list[list[dict[str, Any]]],
    *,
    values: bool,
) -> tuple[list[tuple[int, int]], list[str]]:
    """(written, skipped) per write, and the statements SQLite ran."""
    destination = SqlUpsertDestination("dst", spec(path, table, fields))
    await destination.begin("job", 1, Window())
    statements: list[str] = []
    assert destination._sqlite is not None
    destination._sqlite.set_trace_callback(statements.append)
    try:
        counts = []
        for data in writes:
            result = await destination.write([item(d, values=values) for d in data])
            counts.append((result.written, result.skipped))
        return counts, statements
    finally:
        await destination.finish()


def table(path: Path, name: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')]
        picks = ", ".join(f'"{c}", typeof("{c}")' for c in columns)
        return conn.execute(f'SELECT {picks} FROM "{name}" ORDER BY "key"').fetchall()


def records(values: list[Any], n: int, *, shift: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "mrn": f"M{i:04d}",
            **{
                field: values[(i * (k + 1) + shift) % len(values)]
                for k, field in enumerate(list(FIELDS.values())[1:])
            },
        }
        for i in range(n)
    ]


def writes_of(values: list[Any]) -> list[list[dict[str, Any]]]:
    first = records(values, 60)
    changed = records(values, 30, shift=1) + records(values, 80)[60:]
    repeated = [first[0], {**first[0], "a.b": "again"}, {**first[0], "a.b": "again"}]
    return [first, first, changed, repeated]


def test_multi_row_upserts_store_what_row_by_row_upserts_store(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writes = writes_of(VALUES)
    by_values, statements = asyncio.run(load(path, "by_values", FIELDS, writes, values=True))
    by_rows, _ = asyncio.run(load(path, "by_rows", FIELDS, writes, values=False))
    assert by_values == by_rows
    assert by_values[1] == (0, 60), "an unchanged batch is all skipped"
    assert by_values[3] == (2, 1), "a key repeated within one write is applied in order"
    assert table(path, "by_values") == table(path, "by_rows")
    multi_row = [s for s in statements if "by_values" in s and "), (" in s]
    assert len(multi_row) == len(writes), "one multi-row statement per write"


def test_nul_text_and_any_field_name_are_stored_as_given(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    fields = {"key": "mrn", "quoted": 'say "hi"', "dotted": "a.b"}
    data = [
        [
            {"mrn": "M1", 'say "hi"': "cut\x00here", "a.b": "x"},
            {"mrn": "M2", 'say "hi"': None, "a.b": "y"},
        ]
    ]
    counts, statements = asyncio.run(load(path, "odd", fields, data, values=True))
    assert counts == [(2, 0)]
    assert any("), (" in s for s in statements)
    assert table(path, "odd") == [
        ("M1", "text", "cut\x00here", "text", "x", "text"),
        ("M2", "text", None, "null", "y", "text"),
    ]


def test_columns_in_another_order_or_a_subset_take_their_own_fields(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writes = writes_of(VALUES)
    reordered = {"key": "mrn", "accent": "ü", "dotted": "a.b"}
    by_values, _ = asyncio.run(load(path, "subset", reordered, writes, values=True))
    by_rows, _ = asyncio.run(load(path, "subset_rows", reordered, writes, values=False))
    assert by_values == by_rows
    assert table(path, "subset") == table(path, "subset_rows")
    single = {"key": "mrn"}
    one, _ = asyncio.run(load(path, "single", single, writes, values=True))
    one_rows, _ = asyncio.run(load(path, "single_rows", single, writes, values=False))
    assert one == one_rows and table(path, "single") == table(path, "single_rows")


def test_more_rows_than_one_statement_holds_are_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    big = records(VALUES, ROWS_PER_STATEMENT * 2 + 7)
    counts, statements = asyncio.run(load(path, "big", FIELDS, [big], values=True))
    assert counts == [(len(big), 0)]
    assert sum("), (" in s for s in statements) == 3
    before = table(path, "big")
    assert len(before) == len(big)
    changed = records(VALUES, ROWS_PER_STATEMENT * 2 + 7, shift=2)
    changed[-1] = {**changed[-1], "mrn": None}  # fails in the last of three statements
    with pytest.raises(SqlError):
        asyncio.run(load(path, "big", FIELDS, [changed], values=True))
    assert table(path, "big") == before, "the first two statements were rolled back too"


def test_a_failing_multi_row_write_applies_none_of_its_items(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    rows = records(VALUES, 5)
    rows[3] = {**rows[3], "mrn": None}  # the key column is NOT NULL
    with pytest.raises(SqlError, match="by_values") as caught:
        asyncio.run(load(path, "by_values", FIELDS, [rows], values=True))
    assert "M0000" not in str(caught.value)
    assert table(path, "by_values") == []


def test_statements_hold_no_more_rows_than_sqlite_s_parameter_limit_allows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.db"
    rows = records(VALUES, 20)

    async def main() -> list[str]:
        destination = SqlUpsertDestination("dst", spec(path, "limited", FIELDS))
        await destination.begin("job", 1, Window())
        statements: list[str] = []
        assert destination._sqlite is not None
        destination._sqlite.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32)
        destination._sqlite.set_trace_callback(statements.append)
        try:
            result = await destination.write([item(d, values=True) for d in rows])
            assert (result.written, result.skipped) == (20, 0)
        finally:
            await destination.finish()
        return statements

    statements = asyncio.run(main())
    inserts = [s for s in statements if s.startswith("INSERT")]
    # 5 columns, 32 parameters: 6 rows a statement, the last of 2.
    assert [s.count("), (") + 1 for s in inserts] == [6, 6, 6, 2]
    assert len(table(path, "limited")) == 20
