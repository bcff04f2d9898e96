"""Jobs and their runs through the API: schedule, last run, next due, counts, manifests."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.api.test_browse import get
from tests.api_support import api_client
from tests.thump.support import config_text, csv_rows, drop, now_clock
from thumpflow.config import parse_config
from thumpflow.core.access import Role
from thumpflow.core.batch import RunStatus
from thumpflow.runtime.engine import Engine


def test_jobs_list_their_schedule_last_run_and_runs(tmp_path: Path) -> None:
    config = parse_config(config_text(tmp_path))
    drop(tmp_path, "census-1.csv", csv_rows(10))

    async def main() -> None:
        engine = Engine(config, clock=now_clock())
        await engine.start()
        try:
            async with api_client(engine, Role.VIEWER) as viewer:
                (job,) = (await get(viewer, "/api/jobs"))["jobs"]
                assert job["job_id"] == "census" and job["last_run"] is None
                assert job["schedule"] == "cron 0 2 * * * (America/New_York)"
                assert job["next_due"] > engine.clock.now()
                run_id = await engine.start_run("census")
                assert run_id is not None
                for _ in range(1500):
                    record = await engine.store.run(run_id)
                    if record is not None and record.status is not RunStatus.RUNNING:
                        break
                    await asyncio.sleep(0.02)
                run = await get(viewer, f"/api/runs/{run_id}")
                assert run["status"] == "succeeded" and run["trigger"] == "manual"
                assert run["counts"]["written"] == 10 and run["rejects"] == 0
                assert [m["record_count"] for m in run["manifests_written"]] == [10]
                (job,) = (await get(viewer, "/api/jobs"))["jobs"]
                assert job["last_run"] == run and not job["running"]
                runs = await get(viewer, "/api/jobs/census/runs", limit=5)
                assert runs["runs"] == [run]
                await get(viewer, "/api/jobs/nope/runs", 404)
                await get(viewer, "/api/runs/999999", 404)
        finally:
            await engine.stop()

    asyncio.run(main())
