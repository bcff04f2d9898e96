"""A run never replaces the output of another window (issue 11, defect 8).

The shape of `examples/hybrid.yaml`: a census CSV drop loaded into a SQLite
table and written as an NDJSON extract named `census-{date}.ndjson`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from thumpflow.batch import manifest_path, read_manifest
from thumpflow.config import parse_config
from thumpflow.config.jobs import Job
from thumpflow.connectors.batchfile import BatchFileDestination, BatchFileDestinationSpec
from thumpflow.core.batch import BatchItem, RunStatus, RunTrigger, Window
from thumpflow.core.errors import ConfigError, OutputConflictError
from thumpflow.runtime.build import job_runner
from thumpflow.store.sqlite import SqliteStore
from thumpflow.testing.batch import FakeClock
from thumpflow.thump.runner import RunOutcome

from .census import CENSUS_SOURCE, CHANNEL, drop_census
from .support import now_clock, with_store

ROWS = ["V1,MRN0001,Ames,1970-01-01,ICU", "V2,MRN0002,Boom,1971-02-03,MED", "V3,MRN0003,Cole,,SURG"]


def config(tmp: Path, *, name: str = "census-{date}.ndjson", schedule: str = "") -> str:
    schedule = schedule or "{cron: '0 2 * * *', timezone: America/New_York}"
    return f"""{CHANNEL.format(tmp=tmp)}jobs:
  - id: census-nightly
    schedule: {schedule}
{CENSUS_SOURCE.format(tmp=tmp)}    destinations:
      - {{id: warehouse, type: sql_upsert, dialect: sqlite, database: {tmp}/warehouse.db,
         table: census, key_columns: [visit], create_table: true,
         columns: {{visit: visit, mrn: mrn, family: family, birth_date: birth_date, unit: unit}}}}
      - {{id: census-extract, type: batch_file, directory: {tmp}/out, name: "{name}",
         format: ndjson, source_system: THUMPFLOW}}
"""


def midday_clock() -> FakeClock:
    """A fake clock at noon UTC, so an hour later is the same day for `{date}` whenever the
    test runs (files are dropped settled at this clock's time)."""
    return FakeClock(datetime(2026, 3, 10, 12, tzinfo=UTC).timestamp())


async def first_run(tmp: Path, job: Job, store: SqliteStore, clock: FakeClock) -> RunOutcome:
    """Run 1: the three-row census file dropped and loaded."""
    drop_census(tmp / "drop", "census-1.csv", ROWS, now=clock.now())
    first = await job_runner(job, store, clock).run(RunTrigger.MANUAL)
    assert first is not None and first.status is RunStatus.SUCCEEDED
    assert first.counts.written == 6  # three rows, two destinations
    return first


def extract(tmp: Path) -> Path:
    (path,) = [p for p in (tmp / "out").iterdir() if p.suffix == ".ndjson"]
    return path


def test_a_second_run_with_no_new_file_keeps_the_first_run_s_extract(tmp_path: Path) -> None:
    (job,) = parse_config(config(tmp_path)).jobs
    clock = midday_clock()

    async def body(store: SqliteStore) -> None:
        await first_run(tmp_path, job, store, clock)
        await clock.advance(3600)
        second = await job_runner(job, store, clock).run(RunTrigger.MANUAL)
        assert second is not None and second.status is RunStatus.SUCCEEDED
        assert second.counts.read == 0 and second.manifests_written == ()
        alerts = [e for e in await store.audit("census-nightly") if e.action == "alert"]
        assert len(alerts) == 1 and alerts[0].detail.startswith(f"run {second.run_id}: ")
        assert "zero records" in alerts[0].detail

    with_store(tmp_path / "db" / "thumpflow.db", body)
    path = extract(tmp_path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["visit"] for line in lines] == ["V1", "V2", "V3"]
    assert read_manifest(manifest_path(path)).record_count == 3
    with sqlite3.connect(tmp_path / "warehouse.db") as db:
        assert db.execute("SELECT count(*) FROM census").fetchone() == (3,)


def test_a_run_of_another_window_refuses_to_replace_an_extract_and_alerts(
    tmp_path: Path,
) -> None:
    (job,) = parse_config(config(tmp_path)).jobs
    clock = midday_clock()

    async def body(store: SqliteStore) -> None:
        await first_run(tmp_path, job, store, clock)
        drop_census(
            tmp_path / "drop", "census-2.csv", ["V4,MRN0004,Dunn,1972-03-04,ICU"], now=clock.now()
        )
        second = await job_runner(job, store, clock).run(RunTrigger.MANUAL)
        assert second is not None and second.status is RunStatus.FAILED
        assert second.error is not None and "census-extract" in second.error
        assert "another window" in second.error
        alerts = [e for e in await store.audit("census-nightly") if e.action == "alert"]
        assert len(alerts) == 1 and alerts[0].detail.startswith(f"run {second.run_id}: ")
        assert "another window" in alerts[0].detail
        assert "MRN0004" not in alerts[0].detail and "Dunn" not in alerts[0].detail

    with_store(tmp_path / "db" / "thumpflow.db", body)
    path = extract(tmp_path)
    assert len(path.read_text().splitlines()) == 3
    assert read_manifest(manifest_path(path)).record_count == 3
    assert (tmp_path / "drop" / "census-2.csv").exists(), "the input waits for the next run"


def test_a_rerun_of_the_same_window_replaces_its_own_extract(tmp_path: Path) -> None:
    (job,) = parse_config(config(tmp_path)).jobs
    clock = midday_clock()

    async def body(store: SqliteStore) -> None:
        first = await first_run(tmp_path, job, store, clock)
        record = await store.run(first.run_id)
        assert record is not None
        (tmp_path / "drop" / "processed" / "census-1.csv").unlink()
        drop_census(tmp_path / "drop", "census-1.csv", ROWS[:2], now=clock.now())
        again = await job_runner(job, store, clock).run(RunTrigger.RERUN, window=record.window)
        assert again is not None and again.status is RunStatus.SUCCEEDED

    with_store(tmp_path / "db" / "thumpflow.db", body)
    path = extract(tmp_path)
    assert len(path.read_text().splitlines()) == 2
    assert read_manifest(manifest_path(path)).record_count == 2


SAME_FILE = (
    "<config>:29:5: job 'census-nightly' > destinations: destination 'census-extract': every "
    "run would write the same file"
)
SAME_DATE = (
    "<config>:29:5: job 'census-nightly' > destinations: destination 'census-extract': `name` "
    "tells runs apart by `{date}` only, and the schedule has more than one run a day"
)


@pytest.mark.parametrize(
    ("name", "schedule", "expected"),
    [
        ("census.ndjson", "", SAME_FILE),
        ("census-{window_end}.ndjson", "", SAME_FILE),
        ("census-{date}.ndjson", "{interval: 1h}", SAME_DATE),
        ("census-{date}.ndjson", "{cron: '0 */6 * * *'}", SAME_DATE),
    ],
)
def test_a_name_template_that_collides_across_windows_is_a_located_error(
    tmp_path: Path, name: str, schedule: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config(tmp_path, name=name, schedule=schedule))
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("name", "schedule"),
    [
        ("census-{date}.ndjson", ""),
        ("census-{date}.ndjson", "{interval: 1d}"),
        ("census-{date}.ndjson", "{cron: '0 2 * * *', timezone: Asia/Tokyo}"),  # 17:00 UTC
        ("census-{date}.ndjson", "{cron: '30 1 * * *', timezone: Europe/London}"),  # DST
        ("census-{run}.ndjson", "{interval: 1h}"),
        ("{job}-{window_end}-{run}.ndjson", "{cron: '*/5 * * * *'}"),
    ],
)
def test_name_templates_that_tell_windows_apart_are_accepted(
    tmp_path: Path, name: str, schedule: str
) -> None:
    parse_config(config(tmp_path, name=name, schedule=schedule))


def test_the_default_name_identifies_the_run(tmp_path: Path) -> None:
    text = config(tmp_path).replace('name: "census-{date}.ndjson",', "")
    (job,) = parse_config(text).jobs
    drop_census(tmp_path / "drop", "census-1.csv", ROWS)

    async def body(store: SqliteStore) -> None:
        outcome = await job_runner(job, store, now_clock()).run(RunTrigger.MANUAL)
        assert outcome is not None and outcome.status is RunStatus.SUCCEEDED
        (written,) = [m for m in outcome.manifests_written if m.name.endswith(".ndjson")]
        assert written.name == f"census-nightly-{outcome.run_id}.ndjson"

    with_store(tmp_path / "db" / "thumpflow.db", body)


def test_a_file_that_does_not_say_its_window_is_never_replaced(tmp_path: Path) -> None:
    spec = BatchFileDestinationSpec(
        type="batch_file",
        directory=str(tmp_path),
        name="x-{date}.ndjson",
        format="ndjson",
        source_system="t",
    )
    destination = BatchFileDestination("out", spec)
    window = Window("a", "2026-12-01T00:00:00Z")
    foreign = tmp_path / "x-2026-12-01.ndjson"
    foreign.write_bytes(b"put here by someone else\n")

    async def run() -> None:
        await destination.begin("job", 1, window)
        await destination.write([BatchItem("1", {"id": "1"}, "h", "t")])
        with pytest.raises(OutputConflictError, match="without a manifest"):
            await destination.finish()
        await destination.abort()

    asyncio.run(run())
    assert sorted(p.name for p in tmp_path.iterdir()) == [foreign.name]
    assert foreign.read_bytes() == b"put here by someone else\n"
