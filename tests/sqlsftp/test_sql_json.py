"""SQLite upserts of items carrying their canonical JSON (one statement over a JSON array)
store exactly what binding row by row stores, with the same counts and the same
all-or-nothing writes."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from thumpflow.connectors.sql import SqlError, SqlUpsertDestination, SqlUpsertDestinationSpec
from thumpflow.core.batch import BatchItem, Window
from thumpflow.core.records import canonical_json, content_hash

# Field names SQLite's JSON paths hold (dots, spaces, brackets, accents, a `$`) and one
# they cannot (a double quote), which keeps the row-by-row path for its whole table.
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


def item(data: dict[str, Any], *, canonical: bool) -> BatchItem:
    text = canonical_json(data)
    return BatchItem(
        str(data.get("mrn")),
        data,
        content_hash(data),
        "test",
        canonical=text if canonical else None,
    )


async def load(
    path: Path,
    table: str,
    fields: dict[str, str],
    writes: list[list[dict[str, Any]]],
    *,
    canonical: bool,
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
            result = await destination.write([item(d, canonical=canonical) for d in data])
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


def test_json_upserts_store_what_row_by_row_upserts_store(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writes = writes_of(VALUES)
    by_json, statements = asyncio.run(load(path, "by_json", FIELDS, writes, canonical=True))
    by_rows, _ = asyncio.run(load(path, "by_rows", FIELDS, writes, canonical=False))
    assert by_json == by_rows
    assert by_json[1] == (0, 60), "an unchanged batch is all skipped"
    assert by_json[3] == (2, 1), "a key repeated within one write is applied in order"
    assert table(path, "by_json") == table(path, "by_rows")
    assert sum("json_each" in s for s in statements) == len(writes), "one statement per write"


def test_nul_text_and_unquotable_field_names_are_bound_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    with_nul = [[{"mrn": "M1", "a.b": "cut\x00here"}, {"mrn": "M2", "a.b": "whole"}]]
    fields = {"key": "mrn", "dotted": "a.b"}
    counts, statements = asyncio.run(load(path, "nul", fields, with_nul, canonical=True))
    assert counts == [(2, 0)]
    assert not any("json_each" in s for s in statements)
    assert table(path, "nul")[0][2] == "cut\x00here"

    quoted = {"key": "mrn", "quoted": 'say "hi"'}
    data = [[{"mrn": "M1", 'say "hi"': "x"}]]
    counts, statements = asyncio.run(load(path, "quoted", quoted, data, canonical=True))
    assert counts == [(1, 0)]
    assert not any("json_each" in s for s in statements)
    assert table(path, "quoted") == [("M1", "text", "x", "text")]


def test_a_failing_json_write_applies_none_of_its_items(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    rows = records(VALUES, 5)
    rows[3] = {**rows[3], "mrn": None}  # the key column is NOT NULL
    with pytest.raises(SqlError, match="by_json") as caught:
        asyncio.run(load(path, "by_json", FIELDS, [rows], canonical=True))
    assert "M0000" not in str(caught.value)
    assert table(path, "by_json") == []
