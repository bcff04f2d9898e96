"""A CSV file read in parts gives exactly the records and counts of one whole reading."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thumpflow.batch.csv_format import CsvOptions, count_csv, read_csv
from thumpflow.batch.parts import count_part, plan_csv, read_part_rows
from thumpflow.batch.reading import UnreadableRecord
from thumpflow.config.jobs import FieldSpec, Job
from thumpflow.core.batch import PreparedRecord, SourceRecord
from thumpflow.core.records import business_key
from thumpflow.thump.parallel import ParallelCsvReader, Recipe
from thumpflow.thump.validate import RecordValidator

HEADER = b"id,name,note\r\n"

# Fields that put the csv module's hard cases on every side of a cut: quoted line ends,
# doubled quotes, delimiters in quotes, stray quotes in unquoted text, broken quoting.
_FIELDS = st.sampled_from(
    [
        b"",
        b"a",
        b"plain text",
        b'"quoted, with comma"',
        b'"two\nlines"',
        b'"three\r\nlines\nhere"',
        b'"doubled ""quote"""',
        b'stray"quote',
        b'"unclosed',
        b'"closed"trailing',
        b"caf\xc3\xa9",
        b"bad\xffbyte",
        b" ",
    ]
)
_ROWS = st.lists(
    st.one_of(
        st.lists(_FIELDS, min_size=3, max_size=3),
        st.lists(_FIELDS, min_size=1, max_size=5),
        st.just([]),
    ),
    max_size=40,
)
_ENDS = st.sampled_from([b"\n", b"\r\n"])


def _job(schema: list[dict[str, object]], key: str) -> Job:
    return Job.model_validate(
        {
            "id": "parts",
            "schedule": {"interval": "1h"},
            "source": {"type": "file_drop", "directory": "/unused", "format": "csv"},
            "schema": schema,
            "business_key": [key],
            "destinations": [
                {
                    "id": "out",
                    "type": "batch_file",
                    "directory": "/unused",
                    "name": "x-{run}.ndjson",
                    "format": "ndjson",
                    "source_system": "test",
                }
            ],
        }
    )


JOB = _job(
    [{"name": "id", "required": True}, {"name": "name"}, {"name": "note", "max_length": 12}],
    "id",
)


def _whole(path: Path) -> list[SourceRecord]:
    with open(path, "rb") as data:
        return list(read_csv(data, path.name, CsvOptions()))


def _seen(record: SourceRecord) -> tuple[object, ...]:
    """A record as the run sees it: a prepared one by its item, another by what it holds."""
    if isinstance(record, PreparedRecord):
        item = record.item
        return (
            "item",
            record.origin,
            item.business_key,
            item.canonical,
            item.values,
            dict(item.data),
        )
    problem = record.problem if isinstance(record, UnreadableRecord) else None
    return ("record", record.origin, dict(record.data), record.raw, problem)


def _expected(records: list[SourceRecord]) -> list[tuple[object, ...]]:
    """What a prepared reading must give: `prepare`'s answer for every record it answers."""
    prepare = RecordValidator.for_job(JOB).prepare
    out: list[tuple[object, ...]] = []
    for record in records:
        prepared = None if isinstance(record, UnreadableRecord) else prepare(record.data)
        if prepared is None:
            problem = record.problem if isinstance(record, UnreadableRecord) else None
            out.append(("record", record.origin, dict(record.data), record.raw, problem))
        else:
            typed, canonical, values = prepared
            out.append(
                ("item", record.origin, business_key(typed, ["id"]), canonical, values, typed)
            )
    return out


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_ROWS, end=_ENDS, part_bytes=st.integers(1, 64), final_end=st.booleans())
def test_parts_read_and_count_exactly_as_the_whole_file(
    tmp_path: Path, rows: list[list[bytes]], end: bytes, part_bytes: int, final_end: bool
) -> None:
    body = end.join(b",".join(row) for row in rows)
    path = tmp_path / "data.csv"
    path.write_bytes(HEADER + body + (end if final_end and rows else b""))
    whole = _whole(path)
    with open(path, "rb") as data:
        whole_count = count_csv(data, CsvOptions())
    assert whole_count == len(whole)
    with ThreadPoolExecutor(2) as executor:
        reader = ParallelCsvReader(executor, JOB, CsvOptions(), processes=2, part_bytes=part_bytes)
        plan = plan_csv(path, CsvOptions(), part_bytes)
        if plan is None:
            assert reader.count(path) is None
            assert reader.records(path, path.name) is None
            return
        assert reader.count(path) == whole_count
        records = reader.records(path, path.name)
        assert records is not None
        assert [_seen(record) for record in records] == _expected(whole)
        # Without a count first (no manifest), the reading corrects its own cuts.
        fresh = ParallelCsvReader(executor, JOB, CsvOptions(), processes=1, part_bytes=part_bytes)
        again = fresh.records(path, path.name)
        assert again is not None
        assert [_seen(record) for record in again] == _expected(whole)


def test_a_cut_inside_a_quoted_line_end_is_moved_to_the_record_boundary(tmp_path: Path) -> None:
    rows = [b'1,a,"x\nyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\nz"'] + [
        f"{n},b,c".encode() for n in range(2, 40)
    ]
    path = tmp_path / "multi.csv"
    path.write_bytes(HEADER + b"\n".join(rows) + b"\n")
    plan = plan_csv(path, CsvOptions(), 16)
    assert plan is not None
    first, second = plan.parts[0], plan.parts[1]
    assert second.first_line == 4  # cut before `z"`, inside the quoted field
    rows, stop = read_part_rows(path, path.name, plan, first)
    assert [line for _, line in rows] == [2]
    assert stop.line == 5  # the next record starts after the quoted field's last line
    assert count_part(path, plan, first) == (1, 5)
    with ThreadPoolExecutor(1) as executor:
        reader = ParallelCsvReader(executor, JOB, CsvOptions(), processes=1, part_bytes=16)
        assert reader.count(path) == 39
        read = reader.records(path, path.name)
        assert read is not None
        origins = [record.origin for record in read]
    assert origins == [record.origin for record in _whole(path)]
    assert origins[:2] == ["multi.csv:line 2", "multi.csv:line 5"]


def test_files_that_cannot_be_cut_are_left_to_the_usual_reading(tmp_path: Path) -> None:
    lone_cr = tmp_path / "cr.csv"
    lone_cr.write_bytes(HEADER + b"\r".join(f"{n},a,b".encode() for n in range(200)))
    assert plan_csv(lone_cr, CsvOptions(), 64) is None
    small = tmp_path / "small.csv"
    small.write_bytes(HEADER + b"1,a,b\n")
    assert plan_csv(small, CsvOptions(), 64) is None
    headless = tmp_path / "empty.csv"
    headless.write_bytes(b"\n" * 500)
    assert plan_csv(headless, CsvOptions(), 64) is None
    utf16 = CsvOptions(encoding="utf-16")
    assert plan_csv(small, utf16, 1) is None


def test_a_bom_and_blank_lines_before_the_header_keep_line_numbers(tmp_path: Path) -> None:
    body = b"\n".join(f"{n},n{n},x".encode() for n in range(300))
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf\n\n" + HEADER + body)
    options = CsvOptions(encoding="utf-8-sig")
    plan = plan_csv(path, options, 100)
    assert plan is not None and plan.header == ("id", "name", "note")
    assert plan.parts[0].first_line == 4
    with ThreadPoolExecutor(2) as executor:
        reader = ParallelCsvReader(executor, JOB, options, processes=2, part_bytes=100)
        read = reader.records(path, path.name)
        assert read is not None
        origins = [record.origin for record in read]
    with open(path, "rb") as data:
        assert origins == [r.origin for r in read_csv(io.BytesIO(data.read()), "bom.csv", options)]
    assert origins[0] == "bom.csv:line 4"


def test_field_specs_travel_to_workers_unchanged() -> None:
    recipe = Recipe.of(JOB)
    assert [FieldSpec.model_validate_json(t) for t in recipe.fields] == JOB.schema_
    assert recipe.validator().validate({"id": "7", "name": "n", "note": "x"}) == {
        "id": "7",
        "name": "n",
        "note": "x",
    }
