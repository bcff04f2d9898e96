"""A census feed shared by the hybrid and reconcile proofs: an ADT channel with a delivery
ledger, the census CSV drop a partner job reads, and the helpers both tests drive them with."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from thumpflow.batch import sha256_of, write_manifest
from thumpflow.batch.files import manifest_path
from thumpflow.core.batch import Manifest, RunRecord, RunStatus, Window
from thumpflow.runtime.engine import Engine

# The channel (`adt`, ledger for destination `census-feed`); `{tmp}` is the test's directory.
CHANNEL = """\
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
"""

# A job's source, schema and business key for the census drop (indented as a job's fields).
CENSUS_SOURCE = """\
    source: {{type: file_drop, directory: {tmp}/drop, pattern: "census-*.csv", format: csv,
             manifest: required, source_system: REG, settle_seconds: 0}}
    schema:
      - {{name: visit, type: string, required: true}}
      - {{name: mrn, type: string, required: true}}
      - {{name: family, type: string}}
      - {{name: birth_date, type: date}}
      - {{name: unit, type: code, allowed: [ICU, MED, SURG]}}
    business_key: [visit]
"""


def adt(control: str, row: str, at: str = "20261121083000") -> bytes:
    """The ADT^A01 flow receives for a census row (`visit,mrn,family,birth_date,unit`), sent `at`
    (MSH-7)."""
    visit, mrn, family, birth_date, unit = row.split(",")
    born = birth_date.replace("-", "")
    pv1 = {1: "1", 2: "I", 3: f"{unit}^1^A", 19: visit}
    return (
        f"MSH|^~\\&|REG|GENHOSP|ENGINE|GENHOSP|{at}||ADT^A01^ADT_A01|{control}|P|2.5\r"
        f"PID|1||{mrn}^^^GENHOSP^MR||{family}^Pat||{born}\r"
        + "|".join(["PV1", *(pv1.get(n, "") for n in range(1, 20))])
        + "\r"
    ).encode()


def drop_census(
    directory: Path,
    name: str,
    rows: list[str],
    header: str = "visit,mrn,family,birth_date,unit",
    *,
    now: float | None = None,
) -> None:
    """A census CSV with its manifest, old enough to count as settled at `now` (default: the
    real time)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("\n".join([header, *rows]) + "\n")
    old = (time.time() if now is None else now) - 120
    write_manifest(
        manifest_path(path), Manifest(path.name, len(rows), sha256_of(path), old, "REG", Window())
    )
    for written in (path, manifest_path(path)):
        os.utime(written, (old, old))


async def finished(engine: Engine, run_id: int) -> RunRecord:
    """The run once it is no longer running."""
    while True:
        record = await engine.store.run(run_id)
        assert record is not None
        if record.status is not RunStatus.RUNNING:
            return record
        await asyncio.sleep(0.02)
