"""The scheduler is a singleton duty: one node schedules, each window runs once, and the
node taking the duty over closes only the runs of nodes that are gone.

Two in-process nodes on one PostgreSQL database, a job due every second
(reading an empty drop folder, so each run is quick). Runs are recorded
with the incarnation of the node that started them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from tests.cluster.support import pg_store
from tests.e2e.harness import eventually
from thumpflow.config import parse_config
from thumpflow.core.batch import RunRecord, RunStatus, RunTrigger, Window
from thumpflow.runtime.engine import Engine

CONFIG = """\
version: 1
{store}cluster: {{node_id: {node}, lease: 1s, shared_folders: [{shared}]}}
api: {{enabled: false}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations:
      - {{id: ehr, type: http, url: "http://127.0.0.1:9/"}}
jobs:
  - id: census
    schedule: {{interval: 1s}}
    missed_runs: skip
    source: {{type: file_drop, directory: {drop}, pattern: '*.csv', format: csv,
              manifest: none, settle_seconds: 0}}
    schema:
      - {{name: mrn, required: true}}
    business_key: [mrn]
    destinations:
      - {{id: warehouse, type: batch_file, directory: {shared}/out, name: 'c-{{run}}.ndjson',
          format: ndjson, source_system: thumpflow}}
"""


def node(dsn: str, tmp_path: Path, name: str) -> Engine:
    home = tmp_path / name
    text = CONFIG.format(
        store=pg_store(dsn, home),
        node=name,
        drop=tmp_path / "drop",
        shared=tmp_path,
    )
    return Engine(parse_config(text, f"{name}.yaml"))


def holder(a: Engine, b: Engine) -> Engine | None:
    """The node running the scheduler duty, if any."""
    held = [
        engine
        for engine in (a, b)
        if engine.cluster is not None
        and any(d.name == "scheduler" and d.lease is not None for d in engine.cluster.duties)
    ]
    assert len(held) <= 1, "one scheduler in the cluster"
    return held[0] if held else None


def scheduled(runs: list[RunRecord]) -> Counter[float]:
    return Counter(
        run.scheduled_for
        for run in runs
        if run.trigger is RunTrigger.SCHEDULE and run.scheduled_for is not None
    )


def test_one_node_schedules_each_window_runs_once_and_a_takeover_recovers_only_gone_runs(
    dsn: str, tmp_path: Path
) -> None:
    (tmp_path / "drop").mkdir()

    async def scenario() -> None:
        a, b = node(dsn, tmp_path, "a"), node(dsn, tmp_path, "b")
        await a.start()
        await b.start()
        try:
            await eventually(lambda: holder(a, b) is not None, 10, "a scheduler")
            first = holder(a, b)
            assert first is not None
            other = b if first is a else a
            started = time.monotonic()
            while len(scheduled(await a.store.runs("census", 100))) < 3:
                assert time.monotonic() - started < 20, "runs every second"
                await asyncio.sleep(0.1)
            # A run left running by a node that is gone, and one by the live other node.
            now = await a.store.db_now()
            a.store.act_as("gone-incarnation")
            orphan = await a.store.start_run("orphan", RunTrigger.MANUAL, Window(), None, now)
            assert other.cluster is not None and a.cluster is not None
            a.store.act_as(other.cluster.node.incarnation)
            alive = await a.store.start_run("alive", RunTrigger.MANUAL, Window(), None, now)
            a.store.act_as(a.cluster.node.incarnation)
            assert orphan is not None and alive is not None

            await first.stop()
            await eventually(lambda: holder(a, b) is other, 10, "the other takes the scheduler")
            before = len(scheduled(await other.store.runs("census", 100)))
            started = time.monotonic()
            while len(scheduled(await other.store.runs("census", 100))) < before + 2:
                assert time.monotonic() - started < 20, "runs go on after the takeover"
                await asyncio.sleep(0.1)
            runs = await other.store.runs("census", 200)
            assert max(scheduled(runs).values()) == 1, "each window ran once"
            assert all(run.status is not RunStatus.FAILED for run in runs)
            closed = await other.store.run(orphan)
            assert closed is not None and closed.error == "interrupted"
            kept = await other.store.run(alive)
            assert kept is not None and kept.status is RunStatus.RUNNING
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())
