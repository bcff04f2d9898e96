"""A job that expects records and reads none raises `zero_record_batch`; a later run that
reads records clears it. Real engine, real scheduler, real files."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.harness import eventually
from tests.thump.support import config_text, csv_rows, drop
from thumpflow.config import parse_config
from thumpflow.core.alerts import AlertKind
from thumpflow.core.batch import RunStatus
from thumpflow.runtime.engine import Engine


async def finished(engine: Engine, run_id: int) -> None:
    async def done() -> bool:
        record = await engine.store.run(run_id)
        return record is not None and record.status is not RunStatus.RUNNING

    for _ in range(1500):
        if await done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} did not finish")


def test_zero_record_batch_alert_raised_then_cleared(tmp_path: Path) -> None:
    text = config_text(tmp_path, extra_job="    expect_records: true\n").replace(
        "api:\n  enabled: false\n", "api:\n  enabled: false\nalerts:\n  interval: 50ms\n"
    )
    (tmp_path / "drop").mkdir()

    async def main() -> None:
        engine = Engine(parse_config(text, "jobs.yaml"))
        await engine.start()
        try:
            run_id = await engine.start_run("census")
            assert run_id is not None
            await finished(engine, run_id)
            await eventually(
                lambda: [a.kind for a in engine.alerts.active] == [AlertKind.ZERO_RECORD_BATCH],
                30,
                "zero-record alert",
            )
            alert = engine.alerts.active[0]
            assert alert.subject == "census" and f"run {run_id} read zero" in alert.message
            drop(tmp_path, "census-1.csv", csv_rows(5))
            second = await engine.start_run("census")
            assert second is not None
            await finished(engine, second)
            await eventually(lambda: not engine.alerts.active, 30, "cleared")
            recorded = await engine.store.alerts()
            assert [(a.kind, a.active) for a in recorded] == [(AlertKind.ZERO_RECORD_BATCH, False)]
        finally:
            await engine.stop()

    asyncio.run(main())
