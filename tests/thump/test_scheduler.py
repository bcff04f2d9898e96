"""The scheduler on a fake clock: due runs, missed-run policies, no overlap, manual, rerun."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from thumpflow.config.jobs import Job
from thumpflow.core.batch import RunStatus, RunTrigger, Window
from thumpflow.store.sqlite import SqliteStore
from thumpflow.testing.batch import FakeClock, MemoryDestination, MemorySource
from thumpflow.thump.runner import Connectors, JobRunner
from thumpflow.thump.scheduler import Scheduler

from .support import config_text, job_of

RECORD = {"mrn": "MRN1", "family": "Ames", "dob": "1970-01-01", "ward": "ICU"}
START = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def interval_job(tmp: Path, policy: str = "run_once") -> Job:
    text = config_text(
        tmp,
        schedule="interval: 1h",
        name="census-{run}.ndjson",
        extra_job=f"    missed_runs: {policy}\n",
    )
    return job_of(text)


def scheduler_for(
    job: Job, store: SqliteStore, clock: FakeClock, gate: asyncio.Event | None = None
) -> tuple[Scheduler, list[MemorySource]]:
    sources: list[MemorySource] = []
    destination = MemoryDestination("warehouse")

    def connect(_: Job) -> Connectors:
        source = MemorySource("census", [RECORD], next_watermark="w", gate=gate)
        sources.append(source)
        return Connectors(source, [destination])

    runner = JobRunner(job, store, clock, connect)
    return Scheduler({job.id: runner}, store, clock, grace=5.0), sources


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def in_store(tmp: Path, body: Callable[[SqliteStore], Awaitable[None]]) -> None:
    async def main() -> None:
        store = SqliteStore(tmp / "db" / "thumpflow.db")
        await store.open()
        try:
            await body(store)
        finally:
            await store.close()

    asyncio.run(main())


def test_runs_fall_due_on_the_clock_and_a_restart_catches_up_once(tmp_path: Path) -> None:
    job = interval_job(tmp_path)

    async def body(store: SqliteStore) -> None:
        clock = FakeClock(START + 10)
        scheduler, _ = scheduler_for(job, store, clock)
        await scheduler.start()
        await clock.wait_sleepers(1)
        assert await store.runs("census") == []
        await clock.advance(3600)

        async def one_run() -> bool:
            runs = await store.runs("census")
            return len(runs) == 1 and runs[0].status is RunStatus.SUCCEEDED

        await until(one_run)
        (first,) = await store.runs("census")
        assert first.trigger is RunTrigger.SCHEDULE and first.scheduled_for == START + 3600
        await clock.wait_sleepers(1)
        await scheduler.stop()

        # Down for five hours: one `missed` run at start, scheduled for the latest missed time.
        later = FakeClock(START + 6 * 3600 + 5)
        scheduler, _ = scheduler_for(job, store, later)
        await scheduler.start()
        await later.wait_sleepers(1)
        runs = await store.runs("census")
        assert [r.trigger for r in runs] == [RunTrigger.MISSED, RunTrigger.SCHEDULE]
        assert runs[0].scheduled_for == START + 6 * 3600
        await scheduler.stop()

    in_store(tmp_path, body)


def test_skip_policy_records_a_skipped_run(tmp_path: Path) -> None:
    job = interval_job(tmp_path, "skip")

    async def body(store: SqliteStore) -> None:
        run_id = await store.start_run("census", RunTrigger.SCHEDULE, Window(), START, START)
        assert run_id is not None
        from thumpflow.core.batch import RunCounts

        await store.finish_run(run_id, RunStatus.SUCCEEDED, RunCounts(), START)
        clock = FakeClock(START + 3 * 3600 + 1)
        scheduler, sources = scheduler_for(job, store, clock)
        await scheduler.start()
        await clock.wait_sleepers(1)
        latest = (await store.runs("census"))[0]
        assert latest.status is RunStatus.SKIPPED and latest.trigger is RunTrigger.MISSED
        assert latest.scheduled_for == START + 3 * 3600
        assert sources == []
        assert await store.last_scheduled("census") == START + 3 * 3600
        await scheduler.stop()

    in_store(tmp_path, body)


def test_no_overlap_manual_trigger_and_rerun(tmp_path: Path) -> None:
    job = interval_job(tmp_path)

    async def body(store: SqliteStore) -> None:
        clock = FakeClock(START + 10)
        gate = asyncio.Event()
        scheduler, sources = scheduler_for(job, store, clock, gate)
        await scheduler.start()
        await clock.wait_sleepers(1)
        run_id = await scheduler.trigger("census")
        assert run_id is not None
        assert await scheduler.trigger("census") is None
        assert await scheduler.rerun("census", Window("a", "b")) is None
        # The due time passes while the manual run is held: that scheduled run is skipped.
        await clock.advance(3600)
        await clock.wait_sleepers(1)
        assert [r.run_id for r in await store.runs("census")] == [run_id]
        gate.set()

        async def finished() -> bool:
            record = await store.run(run_id)
            return record is not None and record.status is RunStatus.SUCCEEDED

        await until(finished)
        rerun_id = await scheduler.rerun("census", Window("a", "b"))
        assert rerun_id is not None

        async def rerun_done() -> bool:
            record = await store.run(rerun_id)
            return record is not None and record.status is RunStatus.SUCCEEDED

        await until(rerun_done)
        record = await store.run(rerun_id)
        assert record is not None and record.trigger is RunTrigger.RERUN
        assert sources[-1].windows == [Window("a", "b")]
        await scheduler.stop()

    in_store(tmp_path, body)


def test_stop_cancels_a_run_past_its_grace_and_records_it(tmp_path: Path) -> None:
    job = interval_job(tmp_path)

    async def body(store: SqliteStore) -> None:
        clock = FakeClock(START + 10)
        scheduler, sources = scheduler_for(job, store, clock, asyncio.Event())
        scheduler._grace = 0.05
        await scheduler.start()
        run_id = await scheduler.trigger("census")
        assert run_id is not None
        await scheduler.stop()
        record = await store.run(run_id)
        assert record is not None
        assert record.status is RunStatus.FAILED and record.error == "cancelled"
        assert sources[0].failed is None

    in_store(tmp_path, body)
