"""The durable, clock-driven scheduler of a configuration's jobs.

Durability comes from the run store, not from memory: on `start` runs left
`running` by a crash are closed as failed ("interrupted"), then for each
enabled job the latest `scheduled_for` recorded is compared with the
schedule. If runs fell due while the engine was down, the job's
`missed_runs` policy applies once, whatever their number: `run_once` runs
now with trigger `missed` (scheduled for the latest missed time), `skip`
records a `skipped` run for it; either is recorded, so a restart never
handles the same missed time twice. A job never run before starts with its
next due time.

No overlap: a job's runs never run concurrently in this process (a run due
while the previous one is still running is skipped and logged), and
`RunStore.start_run` refuses a second `running` run across processes.
`trigger` starts a manual run, `rerun` re-runs a past window (trigger
`rerun`; the store never moves the watermark for it). All waiting goes
through the injected clock; long waits are cut into pieces of at most a
minute so a wall-clock step is noticed.

`stop` stops scheduling, lets runs in progress finish for up to `grace`
seconds, then cancels them (each is then recorded failed, "cancelled").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thumpflow.config.jobs import Job, JobSchedule
from thumpflow.core.batch import RunCounts, RunStatus, RunTrigger, Window
from thumpflow.core.clock import Clock
from thumpflow.core.errors import ThumpflowError
from thumpflow.core.ports import RunStore
from thumpflow.thump.runner import JobRunner, RunOutcome
from thumpflow.thump.schedule import CronSchedule, IntervalSchedule, Schedule

log = logging.getLogger("thumpflow.thump")

_LONGEST_SLEEP = 60.0
_MISSED_SEARCH_LIMIT = 1_000_000


def schedule_of(spec: JobSchedule) -> Schedule:
    """The schedule a job's configuration describes."""
    if spec.cron is not None:
        return CronSchedule.parse(spec.cron, spec.timezone)
    assert spec.interval is not None
    return IntervalSchedule(spec.interval)


def latest_due(schedule: Schedule, after: float, now: float) -> tuple[float | None, int]:
    """The latest due time in (after, now] and how many there are (counted up to a limit)."""
    latest: float | None = None
    count = 0
    due = schedule.next_after(after)
    while due <= now and count < _MISSED_SEARCH_LIMIT:
        latest, count = due, count + 1
        due = schedule.next_after(due)
    return latest, count


class UnknownJobError(ThumpflowError):
    """No enabled job has this id."""


@dataclass(slots=True)
class _JobState:
    runner: JobRunner
    schedule: Schedule
    lock: asyncio.Lock


class Scheduler:
    """Schedules the runs of jobs; see the module docstring for its guarantees."""

    def __init__(
        self,
        runners: Mapping[str, JobRunner],
        runs: RunStore,
        clock: Clock,
        *,
        grace: float = 30.0,
    ) -> None:
        self._jobs = {
            job_id: _JobState(runner, schedule_of(runner.job.schedule), asyncio.Lock())
            for job_id, runner in runners.items()
        }
        self._runs = runs
        self._clock = clock
        self._grace = grace
        self._loops: list[asyncio.Task[None]] = []
        self._active: set[asyncio.Task[RunOutcome | None]] = set()
        self._stopping = asyncio.Event()

    @property
    def job_ids(self) -> list[str]:
        return sorted(self._jobs)

    async def start(self) -> None:
        """Close interrupted runs, then schedule every job (missed runs first).

        May be called again after `stop` (a cluster node taking the scheduler back).
        """
        self._stopping.clear()
        interrupted = await self._runs.recover_runs(self._clock.now())
        if interrupted:
            log.warning("closed %d interrupted run(s) as failed", len(interrupted))
        for job_id, state in self._jobs.items():
            self._loops.append(asyncio.create_task(self._loop(state), name=f"thump-{job_id}"))

    async def stop(self) -> None:
        """Stop scheduling; wait up to `grace` for runs in progress, then cancel them."""
        self._stopping.set()
        for task in self._loops:
            if not self._running(task):
                task.cancel()
        pending: list[asyncio.Task[Any]] = [
            task for task in (*self._loops, *self._active) if not task.done()
        ]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self._grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._loops.clear()

    def _running(self, loop_task: asyncio.Task[None]) -> bool:
        job_id = loop_task.get_name().removeprefix("thump-")
        state = self._jobs.get(job_id)
        return state is not None and state.lock.locked()

    async def trigger(self, job_id: str) -> int | None:
        """Start a manual run now; return its run id once recorded, None if one is running.

        Raises `UnknownJobError` for an unknown job id.
        """
        return await self._launch(job_id, RunTrigger.MANUAL, None)

    async def rerun(self, job_id: str, window: Window) -> int | None:
        """Start a run of a past window (trigger `rerun`); run id, or None if one is running."""
        return await self._launch(job_id, RunTrigger.RERUN, window)

    async def _launch(self, job_id: str, trigger: RunTrigger, window: Window | None) -> int | None:
        state = self._state(job_id)
        if self._stopping.is_set() or state.lock.locked():
            return None
        started: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

        async def body() -> RunOutcome | None:
            async with state.lock:
                return await state.runner.run(trigger, window=window, started=started)

        task = asyncio.create_task(body(), name=f"thump-{job_id}-{trigger.value}")
        self._active.add(task)
        task.add_done_callback(self._finished)
        return await started

    def _finished(self, task: asyncio.Task[RunOutcome | None]) -> None:
        self._active.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a run ended with a store failure (%s)", type(task.exception()).__name__)

    def _state(self, job_id: str) -> _JobState:
        state = self._jobs.get(job_id)
        if state is None:
            raise UnknownJobError(f"no enabled job {job_id!r}")
        return state

    async def _loop(self, state: _JobState) -> None:
        job = state.runner.job
        cursor = self._clock.now()
        last = await self._runs.last_scheduled(job.id)
        if last is not None:
            missed, count = latest_due(state.schedule, last, cursor)
            if missed is not None:
                await self._missed(state, job, missed, count)
        while not self._stopping.is_set():
            due = state.schedule.next_after(cursor)
            await self._sleep_until(due)
            if self._stopping.is_set():
                return
            if state.lock.locked():
                log.warning(
                    "job %s: still running at its next due time; that run is skipped", job.id
                )
            else:
                async with state.lock:
                    await self._guarded(state.runner, RunTrigger.SCHEDULE, due)
            cursor = max(due, self._clock.now())

    async def _missed(self, state: _JobState, job: Job, due: float, count: int) -> None:
        if job.missed_runs == "run_once":
            log.info("job %s: %d run(s) missed while down; running once now", job.id, count)
            async with state.lock:
                await self._guarded(state.runner, RunTrigger.MISSED, due)
            return
        log.info("job %s: %d run(s) missed while down; skipped by policy", job.id, count)
        now = self._clock.now()
        run_id = await self._runs.start_run(job.id, RunTrigger.MISSED, Window(), due, now)
        if run_id is not None:
            await self._runs.finish_run(run_id, RunStatus.SKIPPED, RunCounts(), now)

    async def _guarded(self, runner: JobRunner, trigger: RunTrigger, due: float) -> None:
        """Run; a store failure is logged and the schedule goes on (the next run retries)."""
        try:
            await runner.run(trigger, scheduled_for=due)
        except ThumpflowError as exc:
            log.error("job %s: the run could not be recorded (%s)", runner.job.id, exc)

    async def _sleep_until(self, due: float) -> None:
        while not self._stopping.is_set():
            remaining = due - self._clock.now()
            if remaining <= 0:
                return
            await self._clock.sleep(min(remaining, _LONGEST_SLEEP))
