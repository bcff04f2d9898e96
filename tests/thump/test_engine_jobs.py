"""Jobs in the engine: the scheduler starts with it, and the HTTP API starts a run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.api_support import api_client
from thumpflow.batch import CsvOptions
from thumpflow.batch.parts import plan_csv
from thumpflow.config import parse_config
from thumpflow.core.batch import RunStatus
from thumpflow.runtime.engine import Engine
from thumpflow.thump.parallel import PART_BYTES

from .census import finished
from .support import config_text, csv_rows, drop, now_clock


def test_engine_runs_a_job_started_through_the_control_api(tmp_path: Path) -> None:
    config = parse_config(config_text(tmp_path))
    drop(tmp_path, "census-1.csv", csv_rows(10))

    async def main() -> None:
        engine = Engine(config, clock=now_clock())
        await engine.start()
        try:
            assert engine.scheduler is not None and engine.scheduler.job_ids == ["census"]
            async with api_client(engine) as client:
                unexplained = await client.post("/api/jobs/census/runs", json={})
                assert unexplained.status == 422, "a run by hand needs a reason"
                body = {"reason": "census file re-sent by the registry"}
                response = await client.post("/api/jobs/census/runs", json=body)
                assert response.status == 202
                run_id = (await response.json())["run_id"]
                missing = await client.post("/api/jobs/nope/runs", json=body)
                assert missing.status == 404
            (requested,) = [
                e for e in await engine.store.audit("census") if e.action == "run.requested"
            ]
            assert requested.actor == "test-admin"
            assert requested.detail == f"run {run_id}: census file re-sent by the registry"
            for _ in range(500):
                record = await engine.store.run(run_id)
                if record is not None and record.status is not RunStatus.RUNNING:
                    break
                await asyncio.sleep(0.01)
            assert record is not None and record.status is RunStatus.SUCCEEDED
            assert record.counts.written == 10
        finally:
            await engine.stop()

    asyncio.run(main())


def test_engine_reads_a_job_s_large_csv_in_its_read_processes(tmp_path: Path) -> None:
    config = parse_config(config_text(tmp_path, extra_job="    read_processes: 2\n"))
    drop(tmp_path, "census-1.csv", csv_rows(45_000))  # about 3 MB: three parts of 1 MiB
    assert plan_csv(tmp_path / "drop" / "census-1.csv", CsvOptions(), PART_BYTES) is not None

    async def main() -> None:
        engine = Engine(config, clock=now_clock())
        await engine.start()
        try:
            run_id = await engine.start_run("census")
            assert run_id is not None
            record = await asyncio.wait_for(finished(engine, run_id), 60)
            assert record.status is RunStatus.SUCCEEDED
            assert record.counts.read == record.counts.written == 45_000
        finally:
            await engine.stop()

    asyncio.run(main())
    lines = (tmp_path / "out").glob("census-*.ndjson")
    (written,) = list(lines)
    assert sum(1 for _ in written.open("rb")) == 45_000
