"""The engine purges on its own: at start and again every `retention.interval` of its clock."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

from tests.store.support import StepClock
from thumpflow.config import parse_config
from thumpflow.core.event import Reject
from thumpflow.core.retention import DAY
from thumpflow.runtime.engine import Engine
from thumpflow.store.sqlite import SqliteStore

CONFIG = """
store:
  path: {db}
  retention: {{rejects_days: 1, interval: 3600}}
api: {{enabled: false}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations:
      - {{id: archive, type: file, path: {out}, format: hl7}}
"""
START = 1_800_000_000.0


class RunningClock(StepClock):
    """Time that moves forward by each sleep's length, a few milliseconds of real time apart."""

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        await asyncio.sleep(0.005)


def rejects(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM rejects").fetchone()[0])


def test_the_purge_loop_runs_at_start_and_every_interval(tmp_path: Path) -> None:
    db = tmp_path / "t.db"

    async def fill() -> None:
        store = SqliteStore(db)
        await store.open()
        try:
            for n in range(5):
                await store.reject(Reject("adt", START + n, "peer", b"garbage", "no MSH"))
        finally:
            await store.close()

    asyncio.run(fill())
    config = parse_config(CONFIG.format(db=db, out=tmp_path / "out.hl7"), "t.yaml")

    async def purged_rejects(engine: Engine) -> int:
        """Rejects the recorded purges deleted (the audit entry follows the deletions)."""
        details = [e.detail for e in await engine.store.audit(action="purged", limit=10_000)]
        found = [re.search(r"\brejects (\d+)", detail) for detail in details]
        return sum(int(match.group(1)) for match in found if match)

    async def main() -> None:
        clock = RunningClock(START + DAY / 2)
        engine = Engine(config, clock=clock)
        await engine.start()
        try:
            assert rejects(db) == 5, "at start the rejects are younger than a day: kept"
            for _ in range(2000):
                if await purged_rejects(engine) == 5:
                    break
                await asyncio.sleep(0.01)
            assert rejects(db) == 0
            assert clock.now() > START + DAY, "gone only once the clock passed the day"
            # Other timers (alerts, the MLLP watchdog) move this clock too, so
            # the day may end between two rejects' times: more than one purge.
            assert await purged_rejects(engine) == 5
        finally:
            await engine.stop()

    asyncio.run(main())
