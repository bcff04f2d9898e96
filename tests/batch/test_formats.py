"""Record formats: round trips (hypothesis), per-record problems with their lines, HL7 counts."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thumpflow.batch import (
    CsvEncoder,
    CsvOptions,
    FormatError,
    Hl7BatchEncoder,
    NdjsonEncoder,
    UnreadableRecord,
    count_records,
    csv_format,
    read_records,
)
from thumpflow.core.batch import BatchItem
from thumpflow.core.records import canonical_json, content_hash

COLUMNS = ["id", "name", "note"]
text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
rows = st.lists(st.fixed_dictionaries({c: text for c in COLUMNS}), max_size=15)


def write_csv(records: list[dict[str, Any]], options: CsvOptions) -> bytes:
    encoder = CsvEncoder(COLUMNS, options)
    return encoder.header() + b"".join(encoder.encode(r) for r in records)


@settings(max_examples=150)
@given(rows, st.sampled_from([",", ";", "\t", "|"]), st.sampled_from(["minimal", "all"]))
def test_csv_round_trip(records: list[dict[str, str]], delimiter: str, quoting: Any) -> None:
    options = CsvOptions(delimiter=delimiter, quoting=quoting)
    data = write_csv(records, options)
    read = list(read_records("csv", io.BytesIO(data), "f.csv", options))
    assert not [r for r in read if isinstance(r, UnreadableRecord)]
    assert [dict(r.data) for r in read] == records
    assert count_records("csv", io.BytesIO(data), options) == len(read)


@settings(max_examples=150)
@given(
    st.lists(st.dictionaries(text, st.none() | st.booleans() | st.integers() | text), max_size=15)
)
def test_ndjson_round_trip(records: list[dict[str, Any]]) -> None:
    encoder = NdjsonEncoder()
    data = b"".join(encoder.encode(r) for r in records)
    read = list(read_records("ndjson", io.BytesIO(data), "f.ndjson"))
    assert [dict(r.data) for r in read] == records
    assert [r.origin for r in read] == [f"f.ndjson:line {n}" for n in range(1, len(records) + 1)]
    assert count_records("ndjson", io.BytesIO(data)) == len(records)


def test_csv_bom_origins_and_malformed_rows_are_per_record_problems() -> None:
    data = (
        '\ufeffid,name\r\n1,"multi\r\nline"\r\n\r\n2\r\n3,"bad"x\r\n4,ok\r\n'.encode()
        + b"5,\xff\xfe\r\n6,last"
    )
    read = list(read_records("csv", io.BytesIO(data), "in.csv", CsvOptions()))
    summary = [(r.origin, type(r).__name__, dict(r.data)) for r in read]
    assert summary == [
        ("in.csv:line 2", "SourceRecord", {"id": "1", "name": "multi\r\nline"}),
        ("in.csv:line 5", "UnreadableRecord", {}),
        ("in.csv:line 6", "UnreadableRecord", {}),
        ("in.csv:line 7", "SourceRecord", {"id": "4", "name": "ok"}),
        ("in.csv:line 8", "UnreadableRecord", {}),
        ("in.csv:line 9", "SourceRecord", {"id": "6", "name": "last"}),
    ]
    problems = [r.problem for r in read if isinstance(r, UnreadableRecord)]
    assert problems[0] == "1 fields, the header has 2"
    assert problems[1].startswith("CSV: ")
    assert problems[2] == "not valid utf-8"
    assert [r.raw for r in read if isinstance(r, UnreadableRecord)] == [
        "2",
        '3,"bad"x',
        "5,\ufffd\ufffd",
    ]
    assert count_records("csv", io.BytesIO(data), CsvOptions()) == len(read)


def test_csv_unreadable_records_keep_their_lines_across_read_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(csv_format._Lines, "_HINT", 8)  # a block of lines per 8 characters read
    long_field = "x" * 50 + "\r\n" + "y" * 50
    data = (
        f'id,name\r\n1,"{long_field}"\r\n2,"{long_field}",extra\r\n'.encode()
        + b"3,\xff"
        + ("z" * 40).encode()
        + b"\r\n4,done\r\n"
    )
    read = list(read_records("csv", io.BytesIO(data), "b.csv", CsvOptions()))
    assert [(r.origin, type(r).__name__) for r in read] == [
        ("b.csv:line 2", "SourceRecord"),
        ("b.csv:line 4", "UnreadableRecord"),
        ("b.csv:line 6", "UnreadableRecord"),
        ("b.csv:line 7", "SourceRecord"),
    ]
    assert read[0].data["name"] == long_field
    assert read[1].raw == f'2,"{long_field}",extra'
    assert read[2].raw == "3,\ufffd" + "z" * 40
    assert read[3].data == {"id": "4", "name": "done"}


def test_csv_header_problems_refuse_the_file() -> None:
    for data in (b"", b"id,,x\r\n", b"id,id\r\n1,2\r\n"):
        with pytest.raises(FormatError):
            list(read_records("csv", io.BytesIO(data), "h.csv", CsvOptions()))


def test_ndjson_bad_lines_are_located_problems() -> None:
    data = b'{"a":1}\n\n{"a":\n[1,2]\n{"a":2}\n'
    read = list(read_records("ndjson", io.BytesIO(data), "x.ndjson"))
    assert [(r.origin, isinstance(r, UnreadableRecord)) for r in read] == [
        ("x.ndjson:line 1", False),
        ("x.ndjson:line 3", True),
        ("x.ndjson:line 4", True),
        ("x.ndjson:line 5", False),
    ]
    assert isinstance(read[1], UnreadableRecord) and read[1].problem.startswith("not JSON")
    assert isinstance(read[2], UnreadableRecord) and read[2].problem == "a JSON list, not an object"


MSG = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01|C{n}|P|2.5\rPID|1||MRN{n}\rOBX|1|NM|GLU||5.{n}"


def test_hl7_batch_writer_counts_and_reader_round_trip() -> None:
    encoder = Hl7BatchEncoder("LAB", "r.hl7")
    messages = [MSG.format(n=n) for n in range(3)]
    data = encoder.header() + b"".join(encoder.encode({"message": m}) for m in messages)
    data += encoder.trailer(3)
    assert data.endswith(b"BTS|3\rFTS|1\r")
    read = list(read_records("hl7_batch", io.BytesIO(data), "r.hl7"))
    assert [r.data["message"].rstrip("\r") for r in read] == messages
    assert [r.data["control_id"] for r in read] == ["C0", "C1", "C2"]
    assert read[0].data["message_type"] == "ORU^R01"
    assert [r.origin for r in read] == ["r.hl7:line 3", "r.hl7:line 6", "r.hl7:line 9"]
    assert count_records("hl7_batch", io.BytesIO(data)) == 3


def test_hl7_batch_count_mismatch_rejects_the_whole_file() -> None:
    encoder = Hl7BatchEncoder("LAB", "r.hl7")
    body = encoder.header() + encoder.encode({"message": MSG.format(n=1)})
    for trailer, where in ((b"BTS|2\rFTS|1\r", "BTS-1"), (b"BTS|1\rFTS|3\r", "FTS-1")):
        with pytest.raises(FormatError, match=where):
            read_records("hl7_batch", io.BytesIO(body + trailer), "r.hl7")
        with pytest.raises(FormatError):
            count_records("hl7_batch", io.BytesIO(body + trailer))


@pytest.mark.parametrize(
    "record",
    [
        {"a": 'Müller "q" \\ \n\u2028', "b": None, "c": date(2024, 1, 2)},
        {"a": datetime(2024, 1, 2, 3, 4, tzinfo=UTC), "b": Decimal("1.50"), "c": True},
        {"a": 1, "b": 2.5, "c": float("nan"), "d": [1, date(2024, 1, 1)], "e": {"z": 1}},
        {"z": "last", "a": "first"},
        {},
    ],
)
def test_ndjson_lines_are_the_records_canonical_json(record: dict[str, Any]) -> None:
    line = NdjsonEncoder().encode(record)
    assert line == canonical_json(record) + b"\n"
    assert hashlib.sha256(line[:-1]).hexdigest() == content_hash(record)
    item = BatchItem("k", record, content_hash(record), "o")
    assert NdjsonEncoder().encode_item(item) == line
    carried = BatchItem("k", record, "h", "o", canonical=b'{"carried":true}')
    assert NdjsonEncoder().encode_item(carried) == b'{"carried":true}\n'


@pytest.mark.parametrize("record", [{"a": object()}, {("t",): 1}, {"a": "x", 1: "y"}])
def test_ndjson_refuses_what_json_cannot_hold(record: dict[Any, Any]) -> None:
    with pytest.raises(TypeError):
        NdjsonEncoder().encode(record)
