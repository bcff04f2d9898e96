"""FHIR as a batch destination, against the simulated EHR (real HTTP on loopback, real
SQLite store, real drop directory): chunked transaction Bundles, retries under 429/503 and
lost responses, refused records as row rejects, and re-runs that create no duplicate."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.thump_extras.fhir_transforms import MRN_SYSTEM
from thumpflow.config import parse_config
from thumpflow.core.batch import RunStatus, RunTrigger
from thumpflow.core.clock import SystemClock
from thumpflow.core.errors import ConfigError
from thumpflow.fhir import deterministic_id
from thumpflow.runtime.build import job_runner
from thumpflow.store.sqlite import SqliteStore
from thumpflow.testing.ehr import REJECT_DIAGNOSTICS, SimulatedEhr
from thumpflow.thump.runner import RunOutcome

HEADER = "mrn,family,birth_date"

CONFIG = """\
store: {{path: {tmp}/db/thumpflow.db}}
api: {{enabled: false}}
channels:
  - id: unused
    source: {{type: mllp, port: 0}}
    destinations:
      - {{id: unused-file, type: file, path: {tmp}/flow.hl7}}
jobs:
  - id: patients
    schedule: {{interval: 1h}}
    source: {{type: file_drop, directory: {tmp}/drop, pattern: "{pattern}", format: {fmt},
             manifest: none, settle_seconds: 0}}
    schema: {schema}
    business_key: [{key}]
{transform}    batch_size: 20
    destinations:
      - id: ehr
        type: fhir
        base_url: {base_url}
        chunk_size: 5
        retry: {{base: 0.01, cap: 0.05, max_attempts: {attempts}, max_retry_after: 0.05}}
{auth}"""

CSV_SCHEMA = "[{name: mrn, required: true}, {name: family}, {name: birth_date, type: date}]"


def config(tmp: Path, ehr: SimulatedEhr, **kw: Any) -> str:
    fields: dict[str, Any] = {
        "tmp": tmp,
        "base_url": ehr.base_url,
        "pattern": "*.csv",
        "fmt": "csv",
        "schema": CSV_SCHEMA,
        "key": "mrn",
        "transform": "    transform: tests.thump_extras.fhir_transforms:patient\n",
        "attempts": 6,
        "auth": "",
    }
    fields.update(kw)
    return CONFIG.format(**fields)


def census(count: int) -> list[str]:
    rows = [f"MRN{n:04d},Family{n},1970-01-{1 + n % 28:02d}" for n in range(count)]
    rows[3] = "MRN0003,AnonThree,"
    rows[7] = "MRN0007,Reject,1970-02-02"
    rows[11] = "MRN0011,NotFhir,"
    rows[18] = "MRN0018,AnonEighteen,1980-05-05"
    return rows


def drop(tmp: Path, name: str, lines: list[str]) -> None:
    directory = tmp / "drop"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    old = time.time() - 60
    os.utime(path, (old, old))


def in_ehr(body: Callable[[SimulatedEhr], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with SimulatedEhr(**kw) as ehr:
            await asyncio.wait_for(body(ehr), 60)

    asyncio.run(main())


async def run_job(text: str, trigger: RunTrigger = RunTrigger.MANUAL) -> tuple[RunOutcome, Any]:
    """One run of the configuration's job in process; (outcome, its row rejects)."""
    (job,) = parse_config(text, "fhir-batch.yaml").jobs
    store = SqliteStore(Path(parse_config(text, "x").store.path))
    await store.open()
    try:
        outcome = await job_runner(job, store, SystemClock()).run(trigger)
        assert outcome is not None
        return outcome, await store.row_rejects(run_id=outcome.run_id)
    finally:
        await store.close()


def test_chunks_survive_faults_refused_rows_become_rejects_and_a_rerun_duplicates_nothing(
    tmp_path: Path,
) -> None:
    rows = census(40)

    async def body(ehr: SimulatedEhr) -> None:
        ehr.set_faults(
            throttle=2,
            server_errors=1,
            drop_after_apply=1,
            retry_after=0.01,
            reject_marker="Reject",
        )
        text = config(tmp_path, ehr)
        drop(tmp_path, "census-1.csv", [HEADER, *rows])
        first, rejects = await run_job(text)

        assert first.status is RunStatus.PARTIAL, first
        counts = first.counts
        assert (counts.read, counts.valid, counts.rejected, counts.written) == (40, 38, 2, 38)
        by_rule = {reject.rule: reject for reject in rejects}
        assert set(by_rule) == {"ehr: refused", "ehr: unwritable"}
        assert REJECT_DIAGNOSTICS in by_rule["ehr: refused"].remedy
        assert json.loads(by_rule["ehr: refused"].record)["family"] == "Reject"
        assert "no resourceType" in by_rule["ehr: unwritable"].remedy
        assert json.loads(by_rule["ehr: unwritable"].record)["mrn"] == "MRN0011"
        statuses = [request.status for request in ehr.requests]
        assert 429 in statuses and 503 in statuses and 422 in statuses
        assert ehr.faults.drop_after_apply == 0 and ehr.faults.throttle == 0

        patients = {resource["id"]: resource for resource in ehr.resources("Patient")}
        assert len(patients) == 38 and ehr.duplicates() == {}
        anonymous = deterministic_id("Patient", "MRN0003")
        assert patients[anonymous]["name"] == [{"family": "AnonThree"}]
        assert deterministic_id("Patient", "MRN0018") in patients
        identified = {
            r["identifier"][0]["value"]
            for r in patients.values()
            if r.get("identifier", [{}])[0].get("system") == MRN_SYSTEM
        }
        assert len(identified) == 36 and "MRN0007" not in identified

        # The same window again (the file dropped again): same resources, same ids, none new.
        ehr.set_faults(throttle=1, drop_after_apply=2, retry_after=0.01)
        drop(tmp_path, "census-2.csv", [HEADER, *rows])
        second, _ = await run_job(text, RunTrigger.RERUN)
        assert second.status is RunStatus.PARTIAL
        assert (second.counts.written, second.counts.rejected) == (38, 2)
        assert {r["id"] for r in ehr.resources("Patient")} == set(patients)
        assert ehr.duplicates() == {} and ehr.counts() == {"Patient": 38}

    in_ehr(body)


def test_resources_read_as_ndjson_keep_their_ids_and_bearer_auth_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EHR_TOKEN", "t0k3n")
    observations = [
        {
            "resourceType": "Observation",
            "id": f"obs-{n}",
            "status": "final",
            "code": {"text": "heart rate"},
            "valueQuantity": {"value": 60 + n, "unit": "/min"},
        }
        for n in range(12)
    ]

    async def body(ehr: SimulatedEhr) -> None:
        text = config(
            tmp_path,
            ehr,
            pattern="*.ndjson",
            fmt="ndjson",
            schema="[{name: id, required: true}, {name: resourceType, required: true}]",
            key="id",
            transform="",
            auth="        auth: {type: bearer, token_env: EHR_TOKEN}\n",
        )
        drop(tmp_path, "obs.ndjson", [json.dumps(o) for o in observations])
        outcome, rejects = await run_job(text)
        assert outcome.status is RunStatus.SUCCEEDED and rejects == []
        assert outcome.counts.written == 12
        stored = {r["id"]: r for r in ehr.resources("Observation")}
        assert sorted(stored) == sorted(o["id"] for o in observations)
        assert stored["obs-5"]["valueQuantity"]["value"] == 65
        posts = [r for r in ehr.requests if r.method == "POST"]
        assert len(posts) == 3  # 12 resources in chunks of 5

    in_ehr(body, auth="bearer", static_token="t0k3n")


def test_exhausted_retries_fail_the_run_without_moving_the_watermark(tmp_path: Path) -> None:
    async def body(ehr: SimulatedEhr) -> None:
        ehr.set_faults(server_errors=100, retry_after=0.01)
        text = config(tmp_path, ehr, attempts=3)
        drop(tmp_path, "census-1.csv", [HEADER, "MRN0001,Ames,1970-01-01"])
        outcome, _ = await run_job(text)
        assert outcome.status is RunStatus.FAILED
        assert outcome.error is not None
        assert "failed 3 times (HTTP 503)" in outcome.error and "Ames" not in outcome.error
        assert ehr.counts() == {}
        assert list((tmp_path / "drop" / "failed").glob("census-1.csv"))

    in_ehr(body)


def test_a_bad_chunk_size_is_a_located_error(tmp_path: Path) -> None:
    text = config(tmp_path, SimulatedEhr(port=1)).replace("chunk_size: 5", "chunk_size: 0")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "fhir-batch.yaml")
    message = str(caught.value)
    assert "chunk_size" in message and "fhir-batch.yaml" in message
