"""One run end to end: real files in, validation and rejects, real files out, recorded."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from thumpflow.batch import manifest_path, write_manifest
from thumpflow.config.jobs import Job
from thumpflow.core.batch import BatchItem, Manifest, RunStatus, RunTrigger, Window, WriteResult
from thumpflow.core.records import business_key, content_hash, version_number
from thumpflow.runtime.build import job_runner
from thumpflow.store.sqlite import SqliteStore
from thumpflow.testing.batch import MemoryDestination, MemorySource
from thumpflow.thump.runner import Connectors, JobRunner, RunOutcome

from .support import HEADER, config_text, csv_rows, drop, job_of, now_clock, with_store


def read_ndjson(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_run_validates_rejects_and_writes_the_rest_with_a_manifest(tmp_path: Path) -> None:
    job = job_of(config_text(tmp_path))
    rows = csv_rows(120)
    rows[10] = "MRN000011,Smith,1961-02-30,ICU,,"  # not a calendar date
    rows[20] = "bad-mrn,Jones,1970-01-01,ZOO,,"  # pattern and allowed values
    rows[30] = "MRN000031,Late,1970-01-01,MED,2024-01-05T08:00:00Z,2024-01-04T08:00:00Z"
    drop(tmp_path, "census-1.csv", rows)

    async def body(store: SqliteStore) -> None:
        outcome = await job_runner(job, store, now_clock()).run(RunTrigger.MANUAL)
        assert outcome is not None
        assert outcome.status is RunStatus.PARTIAL
        counts = outcome.counts
        assert (counts.read, counts.valid, counts.rejected) == (120, 117, 3)
        assert (counts.written, counts.skipped) == (117, 0)
        record = await store.run(outcome.run_id)
        assert record is not None and record.status is RunStatus.PARTIAL
        (written,) = record.manifests_written
        assert written.record_count == 117
        assert record.next_watermark is not None
        assert await store.watermark("census") == record.next_watermark
        rejects = sorted(await store.row_rejects("census"), key=lambda r: r.reject_id)
        assert [r.rule for r in rejects] == [
            "dob.type",
            "mrn.pattern; ward.allowed",
            "rule:discharge-after-admit",
        ]
        assert rejects[0].remedy == (
            "field `dob` must be a date YYYY-MM-DD (a real calendar date); "
            "got a value of 10 characters"
        )
        assert json.loads(rejects[0].record)["family"] == "Smith"
        assert rejects[0].origin.endswith("line 12")
        assert all("Smith" not in r.remedy and "Jones" not in r.remedy for r in rejects)

    with_store(tmp_path / "db" / "thumpflow.db", body)
    (out,) = [p for p in (tmp_path / "out").iterdir() if p.suffix == ".ndjson"]
    lines = read_ndjson(out)
    assert len(lines) == 117
    assert lines[0]["dob"] == "1951-02-11" and lines[0]["mrn"] == "MRN000001"
    assert manifest_path(out).exists()
    assert (tmp_path / "drop" / "processed" / "census-1.csv").exists()


def test_zero_records_raise_an_alert_without_patient_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job = job_of(config_text(tmp_path))
    (tmp_path / "drop").mkdir()

    async def body(store: SqliteStore) -> None:
        with caplog.at_level(logging.WARNING, logger="thumpflow.thump"):
            outcome = await job_runner(job, store, now_clock()).run(RunTrigger.SCHEDULE)
        assert outcome is not None and outcome.status is RunStatus.SUCCEEDED
        assert outcome.counts.read == 0
        alerts = [e for e in await store.audit("census") if e.action == "alert"]
        assert len(alerts) == 1 and "zero records" in alerts[0].detail
        quiet = job.model_copy(update={"expect_records": False})
        await job_runner(quiet, store, now_clock()).run(RunTrigger.SCHEDULE)
        assert len([e for e in await store.audit("census") if e.action == "alert"]) == 1

    with_store(tmp_path / "db" / "thumpflow.db", body)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "census" in warnings[0].getMessage()


def test_a_manifest_mismatch_blocks_the_import_and_alerts(tmp_path: Path) -> None:
    text = config_text(tmp_path).replace("manifest: none", "manifest: required")
    job = job_of(text)
    data = drop(tmp_path, "census-1.csv", csv_rows(5))
    write_manifest(
        manifest_path(data), Manifest(data.name, 6, "0" * 64, 1_700_000_000.0, "ehr", Window())
    )

    async def body(store: SqliteStore) -> None:
        outcome = await job_runner(job, store, now_clock()).run(RunTrigger.MANUAL)
        assert outcome is not None and outcome.status is RunStatus.FAILED
        assert outcome.counts.read == 0
        assert outcome.error is not None and "census-1.csv" in outcome.error
        assert await store.watermark("census") is None
        actions = [e.action for e in await store.audit("census")]
        assert "alert" in actions

    with_store(tmp_path / "db" / "thumpflow.db", body)
    assert (tmp_path / "drop" / "failed" / "census-1.csv").exists()
    assert not (tmp_path / "out").exists() or not any(
        p.suffix == ".ndjson" for p in (tmp_path / "out").iterdir()
    )


def memory_runner(
    job: Job, store: SqliteStore, source: MemorySource, destination: MemoryDestination
) -> JobRunner:
    return JobRunner(job, store, now_clock(), lambda _: Connectors(source, [destination]))


RECORDS = [
    {"mrn": "MRN1", "family": "Ames", "dob": "1970-01-01", "ward": "ICU"},
    {"mrn": "MRN2", "family": "Boom", "dob": "1970-01-02", "ward": "ICU"},
    {"mrn": "MRN3", "family": "Cole", "dob": "1970-01-03", "ward": "SURG"},
    {"mrn": "MRN4", "family": "Dunn", "dob": "1970-01-04", "ward": "MED"},
]


def test_transform_drops_and_rejects_per_record(tmp_path: Path) -> None:
    text = config_text(tmp_path, extra_job="    transform: tests.thump.transforms:upper_family\n")
    job = job_of(text)
    destination = MemoryDestination("warehouse")

    async def body(store: SqliteStore) -> None:
        runner = job_runner(job, store, now_clock())
        runner = JobRunner(
            job,
            store,
            now_clock(),
            lambda _: Connectors(MemorySource("census", RECORDS), [destination]),
            runner._transform,
        )
        outcome = await runner.run(RunTrigger.MANUAL)
        assert outcome is not None
        c = outcome.counts
        assert (c.read, c.valid, c.rejected, c.written, c.skipped) == (4, 3, 1, 2, 1)
        (reject,) = await store.row_rejects("census")
        assert reject.rule == "transform" and "RuntimeError" in reject.remedy

    with_store(tmp_path / "db" / "thumpflow.db", body)
    assert destination.rows["MRN1"]["family"] == "AMES"
    assert set(destination.rows) == {"MRN1", "MRN4"}


def test_a_failing_destination_aborts_everything_and_a_rerun_converges(tmp_path: Path) -> None:
    job = job_of(config_text(tmp_path)).model_copy(update={"batch_size": 1})
    store_rows: dict[str, tuple[str, object]] = {}

    async def body(store: SqliteStore) -> None:
        broken = MemoryDestination("warehouse", store_rows, fail_on_write=3)  # type: ignore[arg-type]
        source = MemorySource("census", RECORDS)
        outcome = await memory_runner(job, store, source, broken).run(RunTrigger.MANUAL)
        assert outcome is not None and outcome.status is RunStatus.FAILED
        assert outcome.error == "DestinationFailedError"
        assert broken.aborted == 1 and source.failed == "DestinationFailedError"
        assert store_rows == {}
        fixed = MemoryDestination("warehouse", store_rows)  # type: ignore[arg-type]
        again = await memory_runner(job, store, MemorySource("census", RECORDS), fixed).run(
            RunTrigger.MANUAL
        )
        assert again is not None and again.status is RunStatus.SUCCEEDED
        assert again.counts.written == 4
        third = await memory_runner(job, store, MemorySource("census", RECORDS), fixed).run(
            RunTrigger.RERUN, window=Window("a", "b")
        )
        assert third is not None and (third.counts.written, third.counts.skipped) == (0, 4)

    with_store(tmp_path / "db" / "thumpflow.db", body)
    assert sorted(store_rows) == ["MRN1", "MRN2", "MRN3", "MRN4"]


def test_hybrid_job_skips_what_flow_already_delivered(tmp_path: Path) -> None:
    job = job_of(config_text(tmp_path, extra_job="    reconciles: adt\n"))
    destination = MemoryDestination("warehouse")
    validated = {"mrn": "MRN1", "family": "Ames", "dob": "1970-01-01", "ward": "ICU"}

    async def body(store: SqliteStore) -> None:
        from thumpflow.core.batch import LedgerEntry
        from thumpflow.thump.validate import RecordValidator

        typed = RecordValidator.for_job(job).validate(validated)
        assert isinstance(typed, dict)
        await store.record_ledger(
            [
                LedgerEntry("warehouse", business_key(typed, ["mrn"]), content_hash(typed), 1.0),
                LedgerEntry("warehouse", "MRN4", "an older hash", 1.0),
            ]
        )
        source = MemorySource("census", [RECORDS[0], RECORDS[3]])
        outcome = await memory_runner(job, store, source, destination).run(RunTrigger.MANUAL)
        assert outcome is not None
        assert (outcome.counts.written, outcome.counts.skipped) == (1, 1)
        ledger = await store.ledger("warehouse", ["MRN1", "MRN4"])
        assert ledger["MRN4"] != "an older hash"

    with_store(tmp_path / "db" / "thumpflow.db", body)
    assert set(destination.rows) == {"MRN4"}


def test_header_only_file_counts_as_zero_records(tmp_path: Path) -> None:
    job = job_of(config_text(tmp_path))
    drop(tmp_path, "census-1.csv", [], header=HEADER)

    async def body(store: SqliteStore) -> None:
        outcome = await job_runner(job, store, now_clock()).run(RunTrigger.MANUAL)
        assert outcome is not None and outcome.counts.read == 0

    with_store(tmp_path / "db" / "thumpflow.db", body)


def test_versions_compare_as_their_values_do() -> None:
    assert version_number(None) is None
    assert version_number(7) == 7
    assert version_number(date(2026, 11, 21)) - version_number(date(2026, 11, 20)) == 1
    naive = datetime(2026, 11, 21, 8, 30)
    assert version_number(naive) == version_number(naive.replace(tzinfo=UTC))
    later = datetime(2026, 11, 21, 8, 30, 0, 1, tzinfo=timezone(timedelta(hours=-5)))
    assert version_number(later) - version_number(naive) == 5 * 3_600_000_000 + 1
    with pytest.raises(TypeError):
        version_number(True)


class _Slow(MemoryDestination):
    """Records the order of its batches and when each write ended; each write yields a while."""

    def __init__(self, destination_id: str, log: list[str], **kw: object) -> None:
        super().__init__(destination_id, **kw)  # type: ignore[arg-type]
        self.log = log
        self.batches: list[list[str]] = []
        self.started = asyncio.Event()

    async def write(self, items: Sequence[BatchItem]) -> WriteResult:
        self.log.append(f"{self.destination_id} start {len(self.batches)}")
        self.started.set()
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            self.log.append(f"{self.destination_id} cancelled")
            raise
        self.batches.append([item.business_key for item in items])
        try:
            return await super().write(items)
        finally:
            self.log.append(f"{self.destination_id} end {len(self.batches) - 1}")

    async def abort(self) -> None:
        self.log.append(f"{self.destination_id} abort")
        await super().abort()


def test_destinations_are_written_at_once_in_order_and_aborted_only_after_their_writes(
    tmp_path: Path,
) -> None:
    job = job_of(config_text(tmp_path)).model_copy(update={"batch_size": 1})
    records = [{**r, "mrn": f"MRN{n}"} for n, r in enumerate(RECORDS * 3)]

    async def run(store: SqliteStore, destinations: list[_Slow]) -> RunOutcome | None:
        source = MemorySource("census", records)
        connect = lambda _: Connectors(source, list(destinations))  # noqa: E731
        return await JobRunner(job, store, now_clock(), connect).run(RunTrigger.MANUAL)

    async def body(store: SqliteStore) -> None:
        log: list[str] = []
        good, other = _Slow("a", log), _Slow("b", log)
        outcome = await run(store, [good, other])
        assert outcome is not None and outcome.status is RunStatus.SUCCEEDED
        assert outcome.counts.written == 2 * len(records)
        expected = [[f"MRN{n}"] for n in range(len(records))]
        assert good.batches == other.batches == expected
        # Both destinations write each batch at the same time; a batch starts after both ended.
        assert log[:4] == ["a start 0", "b start 0", "a end 0", "b end 0"]

        log.clear()
        slow, broken = _Slow("a", log), _Slow("b", log, fail_on_write=2)
        failed = await run(store, [slow, broken])
        assert failed is not None and failed.status is RunStatus.FAILED
        assert failed.error == "DestinationFailedError"
        first_abort = log.index("a abort")
        assert "a end 1" in log[:first_abort] and "b end 1" in log[:first_abort]
        assert "a start 2" not in log

    with_store(tmp_path / "db" / "thumpflow.db", body)


def test_a_cancelled_run_aborts_a_destination_only_after_its_write_ended(tmp_path: Path) -> None:
    job = job_of(config_text(tmp_path)).model_copy(update={"batch_size": 1})

    async def body(store: SqliteStore) -> None:
        log: list[str] = []
        slow = _Slow("a", log)
        connect = lambda _: Connectors(MemorySource("census", RECORDS), [slow])  # noqa: E731
        run = asyncio.ensure_future(
            JobRunner(job, store, now_clock(), connect).run(RunTrigger.MANUAL)
        )
        await slow.started.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert log == ["a start 0", "a end 0", "a abort"]

    with_store(tmp_path / "db" / "thumpflow.db", body)
