"""Hybrid proof: a real engine delivers ADT over MLLP to a file and writes the delivery ledger;
the channel's reconciling job then reads a census CSV (with its manifest) and skips the rows
flow already delivered with the same content, writing only the changed and the new ones."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.e2e.harness import outbox_drained
from tests.e2e.procs import ack_code, send_in_order
from tests.thump.census import CENSUS_SOURCE, CHANNEL, adt, drop_census, finished
from thumpflow.config import parse_config
from thumpflow.core.batch import RunStatus
from thumpflow.runtime.engine import Engine

CONFIG = (
    CHANNEL
    + """\
jobs:
  - id: census
    schedule: {{cron: "0 2 * * *", timezone: UTC}}
    missed_runs: skip
    reconciles: adt
"""
    + CENSUS_SOURCE
    + """\
    destinations:
      - {{id: census-feed, type: batch_file, directory: {tmp}/out, name: "census-{{date}}.ndjson",
         format: ndjson, source_system: THUMPFLOW}}
"""
)

DELIVERED = [
    "V1,100001,Ames,1970-01-01,ICU",
    "V2,100002,Boom,1970-02-02,MED",
    "V3,100003,Cole,1970-03-03,SURG",
]


def test_the_reconciling_job_skips_what_flow_delivered_and_writes_the_rest(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        engine = Engine(parse_config(CONFIG.format(tmp=tmp_path), "hybrid.yaml"))
        await engine.start()
        try:
            messages = [adt(f"C{n}", row) for n, row in enumerate(DELIVERED)]
            acks = await send_in_order(engine.source_port("adt"), messages)
            assert [ack_code(ack) for ack in acks] == ["AA"] * 3
            await outbox_drained(engine, "census-feed")
            ledger = await engine.store.ledger("census-feed", ["V1", "V2", "V3"])
            assert set(ledger) == {"V1", "V2", "V3"}

            drop_census(
                tmp_path / "drop",
                "census-1.csv",
                [
                    "V1,100001,Ames,1970-01-01,ICU",  # as flow delivered it
                    "V2,100002,Boom,1970-02-02,MED",  # as flow delivered it
                    "V3,100003,Cole,1970-03-03,ICU",  # moved since: changed
                    "V4,100004,Dunn,1970-04-04,MED",  # never sent by flow: new
                ],
            )
            run_id = await engine.start_run("census")
            assert run_id is not None
            record = await asyncio.wait_for(finished(engine, run_id), 20)
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
