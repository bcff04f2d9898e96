"""Reconcile job proof: a real engine delivers ADT over MLLP to a file and writes the delivery
ledger; a `kind: reconcile` job reads a census CSV drop, classifies each row against that ledger,
writes its report, and repairs the drift through the channel; a second run finds none."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.e2e.harness import outbox_drained
from tests.e2e.procs import ack_code, send_in_order
from tests.thump.census import CENSUS_SOURCE, CHANNEL, adt, drop_census, finished
from tests.thump.support import config_text
from thumpflow.config import parse_config
from thumpflow.core.batch import RunRecord, RunStatus
from thumpflow.core.errors import ConfigError
from thumpflow.runtime.engine import Engine

CONFIG = (
    CHANNEL
    + """\
jobs:
  - id: census-check
    kind: reconcile
    schedule: {{cron: "0 3 * * *", timezone: UTC}}
    missed_runs: skip
    reconciles: adt
    destination: census-feed
    report_dir: {tmp}/reports
    repair: true
    transform: tests.thump.transforms:census_adt
"""
    + CENSUS_SOURCE
)

CENSUS = [
    "V1,100001,Ames,1970-01-01,ICU",  # as flow delivered it
    "V2,100002,Boom,1970-02-02,SURG",  # flow delivered MED: content mismatch
    "V3,100003,Cole,1970-03-03,MED",  # flow never delivered it: missing
]


async def reconcile_once(engine: Engine) -> RunRecord:
    run_id = await engine.start_run("census-check")
    assert run_id is not None
    record = await asyncio.wait_for(finished(engine, run_id), 20)
    assert record.status is RunStatus.SUCCEEDED, record
    return record


def test_reconcile_classifies_reports_and_repairs_through_the_channel(tmp_path: Path) -> None:
    reports = tmp_path / "reports"

    async def scenario() -> None:
        engine = Engine(parse_config(CONFIG.format(tmp=tmp_path), "reconcile.yaml"))
        await engine.start()
        try:
            sent = [adt("C1", CENSUS[0]), adt("C2", "V2,100002,Boom,1970-02-02,MED")]
            acks = await send_in_order(engine.source_port("adt"), sent)
            assert [ack_code(ack) for ack in acks] == ["AA", "AA"]
            await outbox_drained(engine, "census-feed")

            drop_census(tmp_path / "drop", "census-1.csv", CENSUS)
            first = await reconcile_once(engine)
            counts = first.counts
            assert (counts.read, counts.valid, counts.rejected) == (3, 3, 0)
            assert (counts.written, counts.skipped) == (2, 1)
            report = json.loads((reports / f"census-check-run-{first.run_id}.json").read_text())
            assert report["matched"] == 1
            assert {d["business_key"]: d["kind"] for d in report["differences"]} == {
                "V2": "content_mismatch",
                "V3": "missing_in_destination",
            }
            table = (reports / f"census-check-run-{first.run_id}.txt").read_text()
            assert "content_mismatch" in table and "V3" in table

            await outbox_drained(engine, "census-feed")
            ledger = await engine.store.ledger("census-feed", ["V1", "V2", "V3"])
            assert set(ledger) == {"V1", "V2", "V3"}

            drop_census(tmp_path / "drop", "census-2.csv", CENSUS)
            second = await reconcile_once(engine)
            assert (second.counts.read, second.counts.written, second.counts.skipped) == (3, 0, 3)
            again = json.loads((reports / f"census-check-run-{second.run_id}.json").read_text())
            assert again["matched"] == 3 and again["differences"] == []

            audit = await engine.store.audit("census-check")
            reconciled = [entry for entry in audit if entry.action == "reconciled"]
            assert len(reconciled) == 2
            assert any("repairs 2" in entry.detail for entry in reconciled)
            assert all("V2" not in entry.detail for entry in reconciled)
            trail = [entry.action for entry in await engine.store.audit(limit=1000)]
            assert trail.count("received") == trail.count("delivered") == 4
        finally:
            await engine.stop()

    asyncio.run(scenario())
    delivered = (tmp_path / "flow" / "adt.hl7").read_bytes()
    assert delivered.count(b"MSH|") == 4
    assert delivered.count(b"|RECON|") == 2


def test_without_repair_the_job_only_reports(tmp_path: Path) -> None:
    text = CONFIG.format(tmp=tmp_path).replace("repair: true", "repair: false")

    async def scenario() -> None:
        engine = Engine(parse_config(text, "reconcile.yaml"))
        await engine.start()
        try:
            (ack,) = await send_in_order(engine.source_port("adt"), [adt("C1", CENSUS[0])])
            assert ack_code(ack) == "AA"
            await outbox_drained(engine, "census-feed")
            drop_census(tmp_path / "drop", "census-1.csv", CENSUS)
            record = await reconcile_once(engine)
            assert (record.counts.read, record.counts.written, record.counts.skipped) == (3, 0, 1)
            report = json.loads(
                (tmp_path / "reports" / f"census-check-run-{record.run_id}.json").read_text()
            )
            assert report["counts"]["missing_in_destination"] == 2
        finally:
            await engine.stop()

    asyncio.run(scenario())
    assert (tmp_path / "flow" / "adt.hl7").read_bytes().count(b"MSH|") == 1


def test_a_reconcile_job_checks_its_channel_destination_and_ledger(tmp_path: Path) -> None:
    text = CONFIG.format(tmp=tmp_path)
    with pytest.raises(ConfigError, match="no destination 'elsewhere'"):
        parse_config(text.replace("destination: census-feed", "destination: elsewhere"), "x.yaml")
    with pytest.raises(ConfigError, match="needs a `transform`"):
        parse_config(text.replace("    transform: tests.thump.transforms:census_adt\n", ""), "x")


VERSIONED = (
    CONFIG.replace("        unit: PV1-3.1\n", "        unit: PV1-3.1\n        updated_at: MSH-7\n")
    .replace(
        "transforms:census_adt\n",
        "transforms:census_adt_versioned\n    version_field: updated_at\n",
    )
    .replace(
        "      - {{name: unit, type: code, allowed: [ICU, MED, SURG]}}\n",
        "      - {{name: unit, type: code, allowed: [ICU, MED, SURG]}}\n"
        "      - {{name: updated_at, type: datetime, required: true}}\n",
    )
)
T1, T2, T3 = "2026-11-21T08:30:00", "2026-11-21T09:00:00", "2026-11-21T09:30:00"
FLOW = [  # (control, row, sent at): what flow delivered before the census was taken
    ("C1", "V1,100001,Ames,1970-01-01,ICU", T1),
    ("C2", "V2,100002,Boom,1970-02-02,MED", T1),
    ("C4", "V4,100004,Dahl,1970-04-04,MED", T1),
    ("C5", "V5,100005,Eyre,1970-05-05,SURG", T1),
    ("C6", "V6,100006,Fenn,1970-06-06,ICU", T3),
]
VERSIONED_CENSUS = [
    f"V1,100001,Ames,1970-01-01,ICU,{T1}",  # matched
    f"V2,100002,Boom,1970-02-02,SURG,{T1}",  # same version, other unit: content_mismatch
    f"V3,100003,Cole,1970-03-03,MED,{T1}",  # never delivered: missing_in_destination
    f"V4,100004,Dahl,1970-04-04,ICU,{T2}",  # the ledger holds T1 < T2: stale_version
    f"V6,100006,Fenn,1970-06-06,MED,{T2}",  # the ledger holds T3 > T2: destination_ahead
]  # V5 is in the ledger only: unexpected_extra
HEADER = "visit,mrn,family,birth_date,unit,updated_at"


def hl7_time(iso: str) -> str:
    return iso.replace("-", "").replace("T", "").replace(":", "")


SEEDED = {
    "V2": "content_mismatch",
    "V3": "missing_in_destination",
    "V4": "stale_version",
    "V5": "unexpected_extra",
    "V6": "destination_ahead",
}


def test_every_class_is_found_reported_and_the_repairable_ones_repaired(tmp_path: Path) -> None:
    reports = tmp_path / "reports"

    async def scenario() -> None:
        engine = Engine(parse_config(VERSIONED.format(tmp=tmp_path), "reconcile.yaml"))
        await engine.start()
        try:
            sent = [adt(control, row, hl7_time(at)) for control, row, at in FLOW]
            acks = await send_in_order(engine.source_port("adt"), sent)
            assert [ack_code(ack) for ack in acks] == ["AA"] * len(FLOW)
            await outbox_drained(engine, "census-feed")

            drop_census(tmp_path / "drop", "census-1.csv", VERSIONED_CENSUS, HEADER)
            first = await reconcile_once(engine)
            report = json.loads((reports / f"census-check-run-{first.run_id}.json").read_text())
            found = {d["business_key"]: d["kind"] for d in report["differences"]}
            assert found == SEEDED
            assert report["matched"] == 1 and report["total_keys"] == 6
            assert report["counts"] == {
                "missing_in_destination": 1,
                "stale_version": 1,
                "content_mismatch": 1,
                "destination_ahead": 1,
                "unexpected_extra": 1,
            }
            stale = next(d for d in report["differences"] if d["kind"] == "stale_version")
            assert stale["destination_version"] < stale["source_version"]
            table = (reports / f"census-check-run-{first.run_id}.txt").read_text()
            for key, kind in SEEDED.items():
                assert any(key in line and kind in line for line in table.splitlines())
            # Missing, stale and mismatched are re-sent through the channel; the others are not.
            assert (first.counts.read, first.counts.written, first.counts.skipped) == (5, 3, 1)

            await outbox_drained(engine, "census-feed")
            drop_census(tmp_path / "drop", "census-2.csv", VERSIONED_CENSUS, HEADER)
            second = await reconcile_once(engine)
            again = json.loads((reports / f"census-check-run-{second.run_id}.json").read_text())
            assert again["matched"] == 4
            assert {d["business_key"]: d["kind"] for d in again["differences"]} == {
                "V5": "unexpected_extra",
                "V6": "destination_ahead",
            }
            assert (second.counts.written, second.counts.skipped) == (0, 4)
        finally:
            await engine.stop()

    asyncio.run(scenario())
    delivered = (tmp_path / "flow" / "adt.hl7").read_bytes()
    assert delivered.count(b"|RECON|") == 3


def test_window_keys_only_finds_no_extras(tmp_path: Path) -> None:
    text = VERSIONED.format(tmp=tmp_path).replace(
        "    version_field: updated_at\n",
        "    version_field: updated_at\n    extras: window_keys\n",
    )

    async def scenario() -> None:
        engine = Engine(parse_config(text, "reconcile.yaml"))
        await engine.start()
        try:
            control, row, at = FLOW[3]
            (ack,) = await send_in_order(
                engine.source_port("adt"), [adt(control, row, hl7_time(at))]
            )
            assert ack_code(ack) == "AA"
            await outbox_drained(engine, "census-feed")
            drop_census(tmp_path / "drop", "census-1.csv", VERSIONED_CENSUS[:1], HEADER)
            record = await reconcile_once(engine)
            report = json.loads(
                (tmp_path / "reports" / f"census-check-run-{record.run_id}.json").read_text()
            )
            assert report["counts"]["unexpected_extra"] == 0
            assert report["counts"]["missing_in_destination"] == 1
        finally:
            await engine.stop()

    asyncio.run(scenario())


def test_version_field_and_extras_are_checked_where_they_are_written(tmp_path: Path) -> None:
    text = VERSIONED.format(tmp=tmp_path)
    with pytest.raises(ConfigError, match="version_field 'unit' must be a field declared"):
        parse_config(text.replace("version_field: updated_at", "version_field: unit"), "x.yaml")
    with pytest.raises(ConfigError, match=r"x.yaml:\d+:\d+: .*are for `kind: reconcile`"):
        parse_config(config_text(tmp_path, extra_job="    extras: all\n"), "x.yaml")
