"""Hybrid proof: a real engine delivers ADT over MLLP to a file and writes the delivery ledger;
the channel's reconciling job then reads a census CSV (with its manifest) and skips the rows
flow already delivered with the same content, writing only the changed and the new ones."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from tests.e2e.harness import outbox_drained
from tests.e2e.procs import ack_code, send_in_order
from thumpflow.batch import sha256_of, write_manifest
from thumpflow.batch.files import manifest_path
from thumpflow.config import parse_config
from thumpflow.core.batch import Manifest, RunRecord, RunStatus, Window
from thumpflow.runtime.engine import Engine

CONFIG = """\
version: 1
store: {{path: {tmp}/db/thumpflow.db}}
api: {{enabled: false}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations:
      - {{id: census-feed, type: file, path: {tmp}/flow/adt.hl7}}
    ledger:
      business_key: [visit]
      record:
        visit: PV1-19.1
        mrn: PID-3[1].1
        family: PID-5.1
        birth_date: PID-7
        unit: PV1-3.1
jobs:
  - id: census
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
    missed_runs: skip
    reconciles: adt
    source: {{type: file_drop, directory: {tmp}/drop, pattern: "census-*.csv", format: csv,
             manifest: required, source_system: REG, settle_seconds: 0}}
    schema:
      - {{name: visit, type: string, required: true}}
      - {{name: mrn, type: string, required: true}}
      - {{name: family, type: string}}
      - {{name: birth_date, type: date}}
      - {{name: unit, type: code, allowed: [ICU, MED, SURG]}}
    business_key: [visit]
    destinations:
      - {{id: census-feed, type: batch_file, directory: {tmp}/out, name: "census-{{date}}.ndjson",
         format: ndjson, source_system: THUMPFLOW}}
"""

PATIENTS = [
    ("V1", "100001", "Ames", "19700101", "ICU"),
    ("V2", "100002", "Boom", "19700202", "MED"),
    ("V3", "100003", "Cole", "19700303", "SURG"),
]


def adt(control: str, patient: tuple[str, str, str, str, str]) -> bytes:
    visit, mrn, family, born, unit = patient
    pv1 = {1: "1", 2: "I", 3: f"{unit}^1^A", 19: visit}
    return (
        f"MSH|^~\\&|REG|GENHOSP|ENGINE|GENHOSP|20261121083000||ADT^A01^ADT_A01|{control}|P|2.5\r"
        f"PID|1||{mrn}^^^GENHOSP^MR||{family}^Pat||{born}\r"
        + "|".join(["PV1", *(pv1.get(n, "") for n in range(1, 20))])
        + "\r"
    ).encode()


def drop_census(directory: Path, rows: list[str]) -> None:
    directory.mkdir(parents=True)
    path = directory / "census-1.csv"
    path.write_text("\n".join(["visit,mrn,family,birth_date,unit", *rows]) + "\n")
    old = time.time() - 120
    write_manifest(
        manifest_path(path), Manifest(path.name, len(rows), sha256_of(path), old, "REG", Window())
    )
    for written in (path, manifest_path(path)):
        os.utime(written, (old, old))


def test_the_reconciling_job_skips_what_flow_delivered_and_writes_the_rest(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        engine = Engine(parse_config(CONFIG.format(tmp=tmp_path), "hybrid.yaml"))
        await engine.start()
        try:
            messages = [adt(f"C{n}", p) for n, p in enumerate(PATIENTS)]
            acks = await send_in_order(engine.source_port("adt"), messages)
            assert [ack_code(ack) for ack in acks] == ["AA"] * 3
            await outbox_drained(engine, "census-feed")
            ledger = await engine.store.ledger("census-feed", ["V1", "V2", "V3"])
            assert set(ledger) == {"V1", "V2", "V3"}

            drop_census(
                tmp_path / "drop",
                [
                    "V1,100001,Ames,1970-01-01,ICU",  # as flow delivered it
                    "V2,100002,Boom,1970-02-02,MED",  # as flow delivered it
                    "V3,100003,Cole,1970-03-03,ICU",  # moved since: changed
                    "V4,100004,Dunn,1970-04-04,MED",  # never sent by flow: new
                ],
            )
            run_id = await engine.start_run("census")
            assert run_id is not None

            async def finished() -> RunRecord:
                while True:
                    record = await engine.store.run(run_id)
                    assert record is not None
                    if record.status is not RunStatus.RUNNING:
                        return record
                    await asyncio.sleep(0.02)

            record = await asyncio.wait_for(finished(), 20)
            assert record.status is RunStatus.SUCCEEDED, record
            counts = record.counts
            assert (counts.read, counts.valid, counts.rejected) == (4, 4, 0)
            assert (counts.skipped, counts.written) == (2, 2)
            after = await engine.store.ledger("census-feed", ["V1", "V2", "V3", "V4"])
            assert after["V1"] == ledger["V1"] and after["V2"] == ledger["V2"]
            assert after["V3"] != ledger["V3"] and "V4" in after
        finally:
            await engine.stop()

    asyncio.run(scenario())
    (extract,) = (tmp_path / "out").glob("census-*.ndjson")
    rows = [json.loads(line) for line in extract.read_text().splitlines()]
    assert sorted(row["visit"] for row in rows) == ["V3", "V4"]
    assert len((tmp_path / "flow" / "adt.hl7").read_bytes().split(b"MSH|")) == 4
