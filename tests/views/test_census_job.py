"""A `census_reconcile` job: the EHR's census snapshot dropped as a file, compared with the bed
board on the job's schedule or by hand; drift reported (and alerted), repaired only with
`repair: true`, once; a bad snapshot refused by file and line, kept in failed/.

Real engine, real SQLite store, real files; the schedule runs on the fake clock."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path

import pytest

from tests.api_support import api_client, issue
from tests.browser import chromium
from tests.dashboard.test_browser import sign_in
from tests.e2e.harness import eventually
from tests.views.support import T0
from thumpflow.api.app import build_app
from thumpflow.api.auth import Authenticator
from thumpflow.api.server import serve
from thumpflow.batch import count_and_hash, manifest_to_json
from thumpflow.batch.manifest import parse_time
from thumpflow.config import parse_config
from thumpflow.config.views import SETTLEMENTS_CHANNEL
from thumpflow.core.access import Role
from thumpflow.core.alerts import AlertKind
from thumpflow.core.batch import Manifest, RunRecord, RunStatus, RunTrigger, Window
from thumpflow.core.errors import ConfigError
from thumpflow.runtime.engine import Engine
from thumpflow.testing.batch import FakeClock
from thumpflow.testing.hospital import adt
from thumpflow.views.state import Projection

PATIENTS = ("PX101", "PX102", "PX103")
AS_OF = "2026-12-05T23:00:00Z"
# The board: PX101 in 401-A, PX103 in 401-B. The EHR: PX102 in 401-A, 401-B free, PX101 in 402-A.
DRIFTED = "unit,bed,patient\n4W,401-A,PX102\n4W,401-B,\n4W,402-A,PX101\n"

CONFIG = """\
version: 1
store: {{path: {tmp}/views.db}}
api: {{enabled: false}}
alerts: {{interval: 50ms}}
channels:
  - id: beds-in
    http_ingest: {{enabled: true}}
    destinations:
      - {{id: beds-archive, type: file, path: {tmp}/beds.ndjson}}
views:
  systems:
    - {{id: beds, channels: [beds-in]}}
  units:
    - {{id: 4W, beds: [401-A, 401-B, 402-A]}}
  ownership:
    patient:
      location: {{owners: [beds], precedence: newest}}
jobs:
  - id: census-check
    kind: census_reconcile
    schedule: {{interval: 1h}}
    missed_runs: skip
{extra}    source:
      type: file_drop
      directory: {tmp}/census
      pattern: 'census-*.csv'
      format: csv
      source_system: ehr
      settle_seconds: 0
"""


def config_text(tmp: Path, extra: str = "") -> str:
    return CONFIG.format(tmp=tmp, extra=extra)


def drop_snapshot(tmp: Path, name: str, text: str, as_of: str = AS_OF) -> Path:
    """A census file with its manifest (window end: the snapshot's time), written a minute ago."""
    directory = tmp / "census"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    count, digest = count_and_hash(path, "ndjson" if name.endswith(".ndjson") else "csv")
    taken = parse_time(as_of)
    assert taken is not None
    manifest = Manifest(name, count, digest, taken.timestamp() + 5, "ehr", Window(None, as_of))
    sidecar = directory / f"{name}.manifest.json"
    sidecar.write_bytes(manifest_to_json(manifest))
    old = time.time() - 60
    for one in (path, sidecar):
        os.utime(one, (old, old))
    return path


async def admit_board(engine: Engine) -> None:
    """PX101 into 4W/401-A and PX103 into 4W/401-B over HTTP ingest, applied by the views."""
    views = engine.views
    assert views is not None
    async with api_client(engine, Role.SENDER) as sender:
        for n, (patient, bed) in enumerate([("PX101", "4W/401-A"), ("PX103", "4W/401-B")]):
            body = adt("A01", patient, bed, T0 + n, f"c{n}")
            headers = {"Content-Type": "x-application/hl7-v2+er7"}
            async with sender.post(
                "/api/channels/beds-in/messages", data=body, headers=headers
            ) as r:
                assert r.status == 202
    await eventually(lambda: views.projection.beds["4W/401-B"].occupant == "PX103")


async def run_by_hand(engine: Engine) -> RunRecord:
    """Start a run through the API's job run act and wait for its end."""
    async with api_client(engine, Role.OPERATOR) as operator:
        body = {"reason": "census re-sent by the EHR"}
        async with operator.post("/api/jobs/census-check/runs", json=body) as r:
            assert r.status == 202, await r.text()
            run_id = (await r.json())["run_id"]
    return await finished(engine, run_id)


def engine_of(tmp: Path, extra: str = "") -> Engine:
    return Engine(parse_config(config_text(tmp, extra), "capacity.yaml"))


async def board_then_run(engine: Engine, tmp: Path, snapshot: str = DRIFTED) -> RunRecord:
    """The board admitted, then a run by hand over one dropped snapshot `census-0001.csv`."""
    await admit_board(engine)
    drop_snapshot(tmp, "census-0001.csv", snapshot)
    return await run_by_hand(engine)


async def finished(engine: Engine, run_id: int) -> RunRecord:
    for _ in range(1500):
        record = await engine.store.run(run_id)
        if record is not None and record.status is not RunStatus.RUNNING:
            return record
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} did not finish")


async def rebuild_equals_live(engine: Engine) -> None:
    views = engine.views
    assert views is not None
    fresh = Projection(views.spec)
    for position, one in await engine.store.events_after(0, views.channels, 1000):
        fresh.apply(one, position)
    assert fresh.state() == views.projection.state()


async def no_patient_in_the_job_s_trail(engine: Engine, record: RunRecord) -> None:
    entries = await engine.store.audit("census-check")
    shown = json.dumps([record.error, dict(record.findings or {})]) + " ".join(
        e.detail for e in [*entries, *await engine.store.audit(action="views.drift_repaired")]
    )
    assert not any(patient in shown for patient in PATIENTS)


def test_drift_is_reported_and_alerted_not_repaired_by_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    engine = engine_of(tmp_path)

    async def scenario() -> None:
        await engine.start()
        try:
            record = await board_then_run(engine, tmp_path)
            assert record.status is RunStatus.SUCCEEDED, record.error
            assert record.findings == {
                "snapshot": "census-0001.csv",
                "as_of": AS_OF,
                "compared": 3,
                "changed_after": 0,
                "drifted": 3,
                "repaired": 0,
                "older_snapshots": 0,
                "beds": ["4W/401-A", "4W/401-B", "4W/402-A"],
            }
            assert (record.counts.read, record.counts.valid, record.counts.written) == (3, 3, 0)
            assert engine.views is not None
            assert engine.views.projection.beds["4W/401-A"].occupant == "PX101"
            assert await engine.store.audit(action="views.drift_repaired") == []
            (reconciled,) = [
                e for e in await engine.store.audit("census-check") if e.action == "reconciled"
            ]
            assert "drifted 3, repaired 0" in reconciled.detail
            await eventually(
                lambda: [a.kind for a in engine.alerts.active] == [AlertKind.CENSUS_DRIFT],
                30,
                "census drift alert",
            )
            assert "found 3 bed(s)" in engine.alerts.active[0].message
            async with (
                api_client(engine, Role.VIEWER) as viewer,
                viewer.get("/api/jobs/census-check/runs") as r,
            ):
                (shown,) = (await r.json())["runs"]
            assert shown["findings"]["drifted"] == 3 and shown["status"] == "succeeded"
            assert (tmp_path / "census" / "processed" / "census-0001.csv").exists()
            await no_patient_in_the_job_s_trail(engine, record)
        finally:
            await engine.stop()

    asyncio.run(scenario())
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("thumpflow"))
    assert not any(patient in logged for patient in PATIENTS)


def test_the_drift_a_run_found_is_on_the_dashboard_s_job_page(tmp_path: Path) -> None:
    engine = engine_of(tmp_path)

    async def scenario() -> None:
        await engine.start()
        server = await serve(build_app(engine, Authenticator(engine.store)), "127.0.0.1", 0)
        try:
            record = await board_then_run(engine, tmp_path)
            assert record.status is RunStatus.SUCCEEDED, record.error
            url = f"http://127.0.0.1:{server.port}"
            async with chromium() as page:
                await sign_in(page, url, await issue(engine, Role.VIEWER, "bed-manager"))
                await page.goto(url + "/#/job/census-check")
                shown = await page.wait_for(
                    "document.querySelector('#runs td[data-field=\"findings\"]')?.textContent",
                    what="the run's findings",
                )
                assert page.errors == []
        finally:
            await server.close()
            await engine.stop()
        assert shown == (
            f"snapshot census-0001.csv of {AS_OF}: 3 beds compared, 0 changed after it, "
            "3 drifted: 4W/401-A, 4W/401-B, 4W/402-A, 0 repaired"
        )

    asyncio.run(scenario())


def test_with_repair_the_drift_is_repaired_once_and_a_rebuild_repairs_again(
    tmp_path: Path,
) -> None:
    engine = engine_of(tmp_path, "    repair: true\n")

    async def scenario() -> None:
        await engine.start()
        try:
            views = engine.views
            assert views is not None
            first = await board_then_run(engine, tmp_path)
            assert first.status is RunStatus.SUCCEEDED, first.error
            assert first.findings is not None
            assert (first.findings["drifted"], first.findings["repaired"]) == (3, 3)
            assert first.counts.written == 3
            beds = views.projection.beds
            await eventually(lambda: beds["4W/402-A"].occupant == "PX101")
            assert (beds["4W/401-A"].occupant, beds["4W/401-B"].occupant) == ("PX102", None)
            (entry,) = await engine.store.audit(action="views.drift_repaired")
            assert entry.actor == "thump"
            assert entry.detail.startswith("3 beds corrected from the census snapshot of ")
            assert entry.detail.endswith(
                f"job census-check run {first.run_id}, census snapshot census-0001.csv"
            )
            await rebuild_equals_live(engine)
            drop_snapshot(tmp_path, "census-0001.csv", DRIFTED)  # the same snapshot again
            second = await run_by_hand(engine)
            assert second.status is RunStatus.SUCCEEDED, second.error
            assert second.findings is not None
            assert (second.findings["drifted"], second.findings["repaired"]) == (0, 0)
            assert len(await engine.store.audit(action="views.drift_repaired")) == 1
            repairs = await engine.store.events_after(0, [SETTLEMENTS_CHANNEL], 100)
            assert len(repairs) == 1
            assert (tmp_path / "census" / "processed" / "census-0001.csv.1").exists()
            await eventually(lambda: not engine.alerts.active, 30, "alert cleared")
            await rebuild_equals_live(engine)
            await no_patient_in_the_job_s_trail(engine, second)
        finally:
            await engine.stop()

    asyncio.run(scenario())


def test_of_several_snapshots_waiting_only_the_newest_is_compared(tmp_path: Path) -> None:
    """The older snapshot is moved to processed/ too, its rows counted as skipped."""
    engine = engine_of(tmp_path, "    repair: true\n")

    async def scenario() -> None:
        await engine.start()
        try:
            await admit_board(engine)
            drop_snapshot(tmp_path, "census-0001.csv", DRIFTED, "2026-12-05T22:00:00Z")
            drop_snapshot(tmp_path, "census-0002.csv", DRIFTED)
            record = await run_by_hand(engine)
            assert record.status is RunStatus.SUCCEEDED, record.error
            assert record.findings is not None
            assert record.findings["snapshot"] == "census-0002.csv"
            assert record.findings["older_snapshots"] == 1
            assert (record.counts.read, record.counts.skipped) == (6, 3)
            for name in ("census-0001.csv", "census-0002.csv"):
                assert (tmp_path / "census" / "processed" / name).exists()
        finally:
            await engine.stop()

    asyncio.run(scenario())


def test_a_malformed_snapshot_fails_the_run_by_file_and_line_and_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    engine = engine_of(tmp_path, "    repair: true\n")
    bad = "unit,bed,patient\n4W,401-A,PX102\n4W,,PX103\n4W,401-A,PX101\n"

    async def scenario() -> None:
        await engine.start()
        try:
            record = await board_then_run(engine, tmp_path, bad)
            assert record.status is RunStatus.FAILED
            assert record.error is not None and record.findings is None
            assert "census-0001.csv:3: unit and bed are required" in record.error
            assert "census-0001.csv:4: this bed is listed twice" in record.error
            assert record.counts.rejected == 2
            failed = tmp_path / "census" / "failed"
            assert (failed / "census-0001.csv").read_text(encoding="utf-8") == bad
            reason = (failed / "census-0001.csv.reason").read_text(encoding="utf-8")
            assert "census-0001.csv:3: unit and bed are required" in reason
            assert not any(patient in reason for patient in PATIENTS)
            assert await engine.store.audit(action="views.drift_repaired") == []
            alerts = [e for e in await engine.store.audit("census-check") if e.action == "alert"]
            assert alerts and "census-0001.csv:3" in alerts[0].detail
            await no_patient_in_the_job_s_trail(engine, record)
        finally:
            await engine.stop()

    asyncio.run(scenario())
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.ERROR)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Traceback" not in logged
    assert not any(patient in logged for patient in PATIENTS)


def test_a_snapshot_without_a_patient_column_is_refused_not_read_as_free_beds(
    tmp_path: Path,
) -> None:
    engine = engine_of(tmp_path, "    repair: true\n")

    async def scenario() -> None:
        await engine.start()
        try:
            record = await board_then_run(engine, tmp_path, "unit,bed,mrn\n4W,401-A,PX102\n")
            assert record.status is RunStatus.FAILED
            assert record.error is not None
            assert "census-0001.csv:2: no patient column" in record.error
            assert await engine.store.audit(action="views.drift_repaired") == []
            assert (tmp_path / "census" / "failed" / "census-0001.csv").exists()
        finally:
            await engine.stop()

    asyncio.run(scenario())


def test_an_ndjson_snapshot_is_compared_and_a_value_that_is_not_text_refuses_it(
    tmp_path: Path,
) -> None:
    text = config_text(tmp_path).replace("'census-*.csv'", "'census-*.ndjson'")
    engine = Engine(parse_config(text.replace("format: csv", "format: ndjson"), "capacity.yaml"))
    rows = [
        {"unit": "4W", "bed": "401-A", "patient": "PX102"},
        {"unit": "4W", "bed": "401-B", "patient": None},
        {"unit": "4W", "bed": "402-A", "patient": "PX101"},
    ]
    good = "".join(json.dumps(row) + "\n" for row in rows)

    async def scenario() -> None:
        await engine.start()
        try:
            await admit_board(engine)
            drop_snapshot(tmp_path, "census-0001.ndjson", good)
            record = await run_by_hand(engine)
            assert record.status is RunStatus.SUCCEEDED, record.error
            assert record.findings is not None and record.findings["drifted"] == 3
            drop_snapshot(tmp_path, "census-0002.ndjson", good.replace('"401-A"', "401"))
            refused = await run_by_hand(engine)
            assert refused.status is RunStatus.FAILED and refused.error is not None
            assert "census-0002.ndjson:1: unit, bed and patient must be text" in refused.error
        finally:
            await engine.stop()

    asyncio.run(scenario())


def test_the_job_runs_on_its_schedule_from_the_fake_clock(tmp_path: Path) -> None:
    clock = FakeClock(3600.0 * (int(time.time()) // 3600) + 1800)  # half past an hour
    engine = Engine(parse_config(config_text(tmp_path), "capacity.yaml"), clock=clock)

    async def scenario() -> None:
        await engine.start()
        try:
            await admit_board(engine)
            drop_snapshot(tmp_path, "census-0001.csv", DRIFTED)
            assert await engine.store.runs("census-check") == []
            await eventually(lambda: clock.sleepers > 0, 10, "the scheduler waits")
            await clock.advance(1800)
            for _ in range(1500):
                runs = await engine.store.runs("census-check")
                if runs and runs[0].status is not RunStatus.RUNNING:
                    break
                await asyncio.sleep(0.02)
            (run,) = runs
            assert run.trigger is RunTrigger.SCHEDULE
            assert run.scheduled_for == clock.now()
            assert run.findings is not None and run.findings["drifted"] == 3
        finally:
            await engine.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("views:\n", "unused:\n"), "add a `views:` section"),
        (
            ("      settle_seconds: 0\n", "      settle_seconds: 0\n      manifest: optional\n"),
            "needs `manifest: required`",
        ),
        (
            ("    missed_runs: skip\n", "    missed_runs: skip\n    business_key: [bed]\n"),
            "business_key do not apply",
        ),
        (("      format: csv\n", "      format: hl7_batch\n"), "`format: csv` or `ndjson`"),
    ],
)
def test_a_census_job_s_mistakes_are_located(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    text = config_text(tmp_path).replace(*change)
    if change[0] == "views:\n":
        text = text.split("unused:\n")[0] + "jobs:" + text.split("jobs:")[1]
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "capacity.yaml")
    assert message in str(caught.value)
    assert "capacity.yaml:" in str(caught.value)
