"""Jobs with `read_processes`: the same run, read in worker processes.

The end-to-end test runs one file through a job twice, in the engine and in
a real process pool (forkserver), into SQLite and NDJSON, and compares
everything the run leaves: counts, rejects, destination rows and file bytes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.batch.helpers import drop as drop_file
from thumpflow.batch import CsvOptions
from thumpflow.batch.parts import plan_csv
from thumpflow.config import parse_config
from thumpflow.config.jobs import Job
from thumpflow.core.batch import (
    BatchItem,
    ItemReject,
    PreparedRecord,
    RunTrigger,
    Window,
    WriteResult,
)
from thumpflow.core.clock import SystemClock
from thumpflow.core.errors import ConfigError
from thumpflow.core.records import canonical_json
from thumpflow.runtime.build import job_runner
from thumpflow.runtime.workers import close_read_processes
from thumpflow.store.sqlite import SqliteStore
from thumpflow.testing.batch import FakeClock, MemoryDestination, MemorySource
from thumpflow.thump.parallel import PART_BYTES, ParallelCsvReader, TypedFields, _Shape
from thumpflow.thump.runner import Connectors, JobRunner
from thumpflow.thump.validate import RecordValidator

WINDOW = Window("2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z")

SCHEMA = """
    schema:
      - {name: encounter_id, required: true}
      - {name: mrn, required: true, pattern: 'MRN[0-9]+'}
      - {name: admit_at, type: datetime}
      - {name: discharge_at, type: datetime}
      - {name: birth_date, type: date}
      - {name: charge, type: decimal}
      - {name: stays, type: integer}
      - {name: active, type: boolean}
      - {name: note}
    rules:
      - {id: discharge-after-admit, field: discharge_at, op: ge, other: admit_at}
    business_key: [encounter_id]
    unknown_fields: drop
    batch_size: 700
"""


def _config(tmp: Path, processes: int) -> str:
    out = tmp / f"out{processes}"
    return f"""
store: {{path: {tmp}/store{processes}/thumpflow.db}}
api: {{enabled: false}}
channels:
  - id: unused
    source: {{type: mllp, port: 0}}
    destinations: [{{id: unused-file, type: file, path: {tmp}/unused.hl7}}]
jobs:
  - id: encounters
    schedule: {{cron: "0 2 * * *"}}
    read_processes: {processes}
    source: {{type: file_drop, directory: {tmp}/drop{processes}, pattern: "*.csv", format: csv,
             manifest: required, source_system: registration, settle_seconds: 0}}
{SCHEMA}
    destinations:
      - {{id: file, type: batch_file, directory: {out}, name: "enc-{{date}}.ndjson", format: ndjson,
         source_system: thumpflow}}
      - id: db
        type: sql_upsert
        dialect: sqlite
        database: {out}/warehouse.db
        table: encounters
        create_table: true
        key_columns: [encounter_id]
        columns: {{encounter_id: encounter_id, mrn: mrn, admit_at: admit_at,
                  discharge_at: discharge_at, charge: charge, stays: stays, active: active,
                  note: note}}
"""


def _csv(rows: int) -> bytes:
    """Synthetic encounters: valid rows, and every few hundred an invalid or odd one."""
    lines = [b"encounter_id,mrn,admit_at,discharge_at,birth_date,charge,stays,active,note"]
    for n in range(rows):
        note = f"visit {n} ward {n % 7}"
        if n % 301 == 0:
            note = f'"multi\r\nline ""note"" {n}"'
        elif n % 97 == 0:
            note = f'"quoted, {n}"'
        admit = f"2024-02-{1 + n % 28:02d}T0{n % 10}:15:00Z"
        discharge = "" if n % 7 == 0 else f"2024-03-01T1{n % 10}:40:00+01:00"
        mrn = f"MRN{n % 5000:07d}" if n % 409 else "bad-mrn"
        key = f"E{n % 45000:07d}"  # keys repeat: last wins in both destinations
        if n % 503 == 0:
            discharge = "2024-01-01T00:00:00Z"  # before admission: the rule fails
        line = f"{key},{mrn},{admit},{discharge},19{n % 90 + 10}-0{1 + n % 9}-1{n % 10},"
        line += f"{n % 9999}.{n % 100:02d},{n % 12},{'yes' if n % 2 else 'no'},{note}"
        if n % 613 == 0:
            line += ",extra"  # wrong field count: unreadable
        lines.append(line.encode())
    lines.append(b"E9999999,MRN1,2024-02-01T00:00:00Z,,1980-01-01,1.5,1,true,caf\xff")
    return b"\r\n".join(lines) + b"\r\n"


def _drop(tmp: Path, processes: int, data: bytes, *, count: int) -> None:
    drop = tmp / f"drop{processes}"
    drop.mkdir()
    drop_file(drop, "enc-2024-03-02.csv", data, count=count, source="registration", window=WINDOW)
    (tmp / f"out{processes}").mkdir()


async def _run(tmp: Path, processes: int) -> tuple[Any, list[tuple[Any, ...]]]:
    config = parse_config(_config(tmp, processes), "jobs.yaml")
    (job,) = config.jobs
    store = SqliteStore(Path(config.store.path))
    await store.open()
    try:
        outcome = await job_runner(job, store, SystemClock()).run(RunTrigger.MANUAL, window=WINDOW)
        assert outcome is not None
        rejects = await store.row_rejects(job_id="encounters", limit=100_000)
        return outcome, sorted((r.origin, r.rule, r.remedy, r.record) for r in rejects)
    finally:
        await store.close()


@pytest.fixture
def pool_closed() -> Any:
    yield
    close_read_processes()


def test_a_run_read_in_worker_processes_leaves_what_a_run_in_the_engine_does(
    tmp_path: Path, pool_closed: None
) -> None:
    data = _csv(60_000)  # about 6 MB: several parts of 1 MiB
    whole = data.count(b"\r\n") - 1 - data.count(b"multi\r\n")
    _drop(tmp_path, 0, data, count=whole)
    _drop(tmp_path, 2, data, count=whole)
    engine, engine_rejects = asyncio.run(_run(tmp_path, 0))
    workers, worker_rejects = asyncio.run(_run(tmp_path, 2))
    assert engine.status.value == "partial"
    assert workers.status == engine.status
    assert workers.counts == engine.counts
    assert engine.counts.read == whole and engine.counts.rejected > 300
    assert worker_rejects == engine_rejects
    (extract2,) = (tmp_path / "out2").glob("enc-*.ndjson")
    (extract0,) = (tmp_path / "out0").glob("enc-*.ndjson")
    assert extract2.read_bytes() == extract0.read_bytes()
    rows = []
    for processes in (0, 2):
        with sqlite3.connect(tmp_path / f"out{processes}" / "warehouse.db") as db:
            rows.append(db.execute("SELECT * FROM encounters ORDER BY encounter_id").fetchall())
    assert rows[0] == rows[1] and len(rows[0]) > 40_000
    assert (tmp_path / "drop2" / "processed" / "enc-2024-03-02.csv").exists()


def test_a_manifest_count_that_disagrees_refuses_the_file_before_anything_is_written(
    tmp_path: Path, pool_closed: None
) -> None:
    data = _csv(30_000)
    _drop(tmp_path, 2, data, count=29_000)
    dropped = tmp_path / "drop2" / "enc-2024-03-02.csv"
    assert plan_csv(dropped, CsvOptions(), PART_BYTES) is not None  # counted by the workers
    outcome, rejects = asyncio.run(_run(tmp_path, 2))
    assert outcome.status.value == "failed"
    assert "count" in (outcome.error or "")
    assert outcome.counts.read == 0 and rejects == []
    with sqlite3.connect(tmp_path / "out2" / "warehouse.db") as db:
        assert db.execute("SELECT count(*) FROM encounters").fetchone() == (0,)
    assert (tmp_path / "drop2" / "failed" / "enc-2024-03-02.csv").exists()


def test_read_processes_are_refused_where_they_cannot_apply(tmp_path: Path) -> None:
    text = _config(tmp_path, 2).replace("format: csv", "format: ndjson")
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "jobs.yaml")
    assert "read_processes" in str(refused.value) and "encounters" in str(refused.value)
    with_transform = _config(tmp_path, 2).replace(
        "    read_processes: 2\n",
        "    read_processes: 2\n    transform: tests.thump.transforms:upper_family\n",
    )
    with pytest.raises(ConfigError, match="read_processes"):
        parse_config(with_transform, "jobs.yaml")


# ------------------------------------------------------------ typed fields, decoded lazily

_JOB: Job = parse_config(_config(Path("/unused"), 0), "jobs.yaml").jobs[0]
_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
_RECORDS = st.fixed_dictionaries(
    {
        "encounter_id": st.from_regex(r"E[0-9]{1,6}", fullmatch=True),
        "mrn": st.from_regex(r"MRN[0-9]{1,6}", fullmatch=True),
        "admit_at": st.one_of(
            st.just(""),
            st.datetimes(min_value=datetime(1900, 1, 1)).map(lambda d: d.isoformat()),
            st.datetimes(min_value=datetime(1900, 1, 1)).map(
                lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
            ),
            st.sampled_from(["2024-03-01T08:00-05:00", "2024-03-01 08:00:00.5-00:00"]),
        ),
        "discharge_at": st.just(""),
        "birth_date": st.one_of(st.just(""), st.dates().map(date.isoformat)),
        "charge": st.one_of(
            st.just(""),
            st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
            st.sampled_from(["0.0000001", "-0", "+12.50", ".5", "1."]),
        ),
        "stays": st.one_of(st.just(""), st.integers(-(2**62), 2**62).map(str)),
        "active": st.sampled_from(["", "yes", "no", "TRUE", "0"]),
        "note": _TEXT,
    }
)


@settings(max_examples=300)
@given(record=_RECORDS)
def test_typed_fields_decode_to_the_typed_record_validation_gave(record: dict[str, str]) -> None:
    prepared = RecordValidator.for_job(_JOB).prepare(record)
    if prepared is None:
        return
    typed, canonical, values = prepared
    fields = TypedFields(values, _Shape(_JOB.schema_))
    assert list(fields) == list(typed) and len(fields) == len(typed)
    assert "mrn" in fields and "absent" not in fields
    assert fields._typed is None  # names are known without decoding
    decoded = dict(fields)
    assert decoded == typed
    assert [type(v) for v in decoded.values()] == [type(v) for v in typed.values()]
    assert [str(v) for v in decoded.values()] == [str(v) for v in typed.values()]
    assert canonical_json(fields) == canonical


def test_typed_fields_types_are_those_of_the_schema() -> None:
    record = {
        "encounter_id": "E1",
        "mrn": "MRN1",
        "admit_at": "2024-03-01T08:00:00Z",
        "discharge_at": "",
        "birth_date": "1980-02-29",
        "charge": "12.50",
        "stays": "3",
        "active": "yes",
        "note": "  kept as given ",
    }
    prepared = RecordValidator.for_job(_JOB).prepare(record)
    assert prepared is not None
    fields = TypedFields(prepared[2], _Shape(_JOB.schema_))
    assert fields["admit_at"] == datetime.fromisoformat("2024-03-01T08:00:00+00:00")
    assert fields["birth_date"] == date(1980, 2, 29)
    assert fields["charge"] == Decimal("12.50") and str(fields["charge"]) == "12.50"
    assert fields["stays"] == 3 and fields["active"] is True
    assert fields["discharge_at"] is None and fields["note"] == "  kept as given "


class _Refusing(MemoryDestination):
    """Refuses the item of one business key, writes the others."""

    def __init__(self, refused: str) -> None:
        super().__init__("refusing")
        self._refused = refused

    async def write(self, items: Sequence[BatchItem]) -> WriteResult:
        refused = [i for i in items if i.business_key == self._refused]
        result = await super().write([i for i in items if i.business_key != self._refused])
        rejects = tuple(ItemReject(i, "refused", "as told") for i in refused)
        return WriteResult(result.written, result.skipped, rejects)


def test_a_prepared_record_a_destination_refuses_is_kept_as_its_canonical_json(
    tmp_path: Path,
) -> None:
    data = _csv(400)
    path = tmp_path / "enc.csv"
    path.write_bytes(data)
    with ThreadPoolExecutor(2) as executor:
        reader = ParallelCsvReader(executor, _JOB, CsvOptions(), processes=2, part_bytes=4096)
        read = reader.records(path, path.name)
        assert read is not None
        records = list(read)
    prepared = [r for r in records if isinstance(r, PreparedRecord)]
    assert len(prepared) > 300
    target = prepared[5].item
    destination = _Refusing(target.business_key)

    async def main() -> tuple[Any, list[Any]]:
        store = SqliteStore(tmp_path / "store.db")
        await store.open()
        try:
            runner = JobRunner(
                _JOB,
                store,
                FakeClock(),
                lambda job: Connectors(MemorySource("mem", records), [destination]),
            )
            outcome = await runner.run(RunTrigger.MANUAL, window=WINDOW)
            return outcome, await store.row_rejects(job_id=_JOB.id, limit=10_000)
        finally:
            await store.close()

    outcome, rejects = asyncio.run(main())
    refused = [r for r in rejects if r.rule == "refusing: refused"]
    assert [r.origin for r in refused] == [
        p.origin for p in prepared if p.item.business_key == target.business_key
    ]
    assert refused[0].record.encode() in {
        p.item.canonical for p in prepared if p.item.business_key == target.business_key
    }
    assert outcome.counts.rejected == len(rejects)
