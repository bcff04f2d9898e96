"""`thumpflow runs list [JOB] | show RUN | start JOB | rerun JOB --from W --to W`.

Reads open the store read-only, so they work whether or not the engine runs.
`start` asks the running engine through its HTTP API (the engine's
scheduler runs it, never beside another run of the job); when no engine
answers it runs in this process with the store, to the end. `rerun` runs a
past window in this process (trigger `rerun`; the watermark does not move).
Either way the store refuses a second concurrent run of a job. Output holds
ids, counts, times and reasons, never record values.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from thumpflow.cli._api import call
from thumpflow.cli._shared import config_argument, table, when
from thumpflow.config import load_config
from thumpflow.config.jobs import Job
from thumpflow.config.model import Config
from thumpflow.core.batch import RunRecord, RunTrigger, Window
from thumpflow.core.clock import SystemClock
from thumpflow.core.errors import ThumpflowError
from thumpflow.runtime.build import job_runner, open_store
from thumpflow.thump.runner import RunOutcome


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `list`, `show`, `start` and `rerun` actions."""
    actions = parser.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="recent runs, newest first")
    listing.add_argument("job", nargs="?", help="only this job")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = actions.add_parser("show", help="one run with its manifests and audit trail")
    show.add_argument("run_id", type=int)
    start = actions.add_parser("start", help="run a job now (through the engine if it runs)")
    start.add_argument("job")
    start.add_argument(
        "--reason",
        default="started from the command line",
        help="why (audited with the API token's name when the engine runs)",
    )
    rerun = actions.add_parser("rerun", help="run a job again for a past window")
    rerun.add_argument("job")
    rerun.add_argument("--from", dest="window_from", help="window start watermark (exclusive)")
    rerun.add_argument("--to", dest="window_to", help="window end watermark (inclusive)")
    for sub in (listing, show, start, rerun):
        config_argument(sub)


def run(args: argparse.Namespace) -> int:
    """Execute the chosen action; see the module docstring."""
    config = load_config(args.config)
    if args.runs_command == "list":
        return asyncio.run(_list(config, args.job, args.limit, args.json))
    if args.runs_command == "show":
        return asyncio.run(_show(config, args.run_id))
    job = _job(config, args.job)
    if args.runs_command == "start":
        run_id = _start_via_api(config, job.id, args.reason)
        if run_id is not None:
            print(f"run {run_id} of job {job.id} started by the running engine")
            return 0
        return _report(asyncio.run(_in_process(config, job, RunTrigger.MANUAL, None)), job)
    window = Window(args.window_from, args.window_to)
    return _report(asyncio.run(_in_process(config, job, RunTrigger.RERUN, window)), job)


def _job(config: Config, job_id: str) -> Job:
    for job in config.jobs:
        if job.id == job_id:
            return job
    raise ThumpflowError(f"no job {job_id!r} in the configuration")


def _duration(record: RunRecord) -> str:
    if record.finished_at is None:
        return "-"
    return f"{record.finished_at - record.started_at:.1f}s"


async def _list(config: Config, job_id: str | None, limit: int, as_json: bool) -> int:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        records = await store.runs(job_id, limit)
    finally:
        await store.close()
    if as_json:
        print(json.dumps([_as_dict(record) for record in records], indent=2))
        return 0
    if not records:
        print("no runs")
        return 0
    header = "RUN JOB TRIGGER STATUS STARTED DURATION READ VALID REJECTED WRITTEN SKIPPED"
    rows = [header.split()]
    for record in records:
        c = record.counts
        rows.append(
            [
                str(record.run_id),
                record.job_id,
                record.trigger.value,
                record.status.value,
                when(record.started_at),
                _duration(record),
                str(c.read),
                str(c.valid),
                str(c.rejected),
                str(c.written),
                str(c.skipped),
            ]
        )
    print(table(rows))
    return 0


def _as_dict(record: RunRecord) -> dict[str, object]:
    return {
        "run_id": record.run_id,
        "job_id": record.job_id,
        "trigger": record.trigger.value,
        "status": record.status.value,
        "window": {"start": record.window.start, "end": record.window.end},
        "scheduled_for": record.scheduled_for,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "counts": {
            "read": record.counts.read,
            "valid": record.counts.valid,
            "rejected": record.counts.rejected,
            "written": record.counts.written,
            "skipped": record.counts.skipped,
        },
        "manifests_checked": [m.name for m in record.manifests_checked],
        "manifests_written": [m.name for m in record.manifests_written],
        "error": record.error,
        "next_watermark": record.next_watermark,
        "findings": None if record.findings is None else dict(record.findings),
    }


async def _show(config: Config, run_id: int) -> int:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        record = await store.run(run_id)
        trail = [] if record is None else await store.audit(record.job_id, 200)
    finally:
        await store.close()
    if record is None:
        print(f"no run {run_id}")
        return 1
    c = record.counts
    print(f"run          {record.run_id}")
    print(f"job          {record.job_id}")
    print(f"trigger      {record.trigger.value}")
    print(f"status       {record.status.value}")
    print(f"window       ({record.window.start or '-'}, {record.window.end or '-'}]")
    print(f"scheduled    {when(record.scheduled_for)}")
    print(f"started      {when(record.started_at)}")
    print(f"finished     {when(record.finished_at)} ({_duration(record)})")
    print(
        f"counts       read {c.read}, valid {c.valid}, rejected {c.rejected}, "
        f"written {c.written}, skipped {c.skipped}"
    )
    print(f"watermark    {record.next_watermark or '-'}")
    if record.error:
        print(f"error        {record.error}")
    for name, value in (record.findings or {}).items():
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{name:<12} {shown}")
    for title, manifests in (
        ("checked", record.manifests_checked),
        ("written", record.manifests_written),
    ):
        for manifest in manifests:
            print(
                f"{title:<12} {manifest.name}: {manifest.record_count} records, "
                f"sha256 {manifest.sha256[:16]}…"
            )
    marker = f"run {record.run_id}"
    entries = [e for e in reversed(trail) if e.detail.startswith(marker)]
    if entries:
        print("audit trail:")
        for entry in entries:
            print(f"  {when(entry.at)}  {entry.actor:<8} {entry.action:<14} {entry.detail}")
    return 0


def _start_via_api(config: Config, job_id: str, reason: str) -> int | None:
    body = {"reason": reason}
    answer = call(config, "POST", f"/api/jobs/{job_id}/runs", body, "to start the run")
    return None if answer is None else int(answer["run_id"])


async def _in_process(
    config: Config, job: Job, trigger: RunTrigger, window: Window | None
) -> RunOutcome | None:
    store = open_store(config)
    await store.open()
    try:
        return await job_runner(job, store, SystemClock()).run(trigger, window=window)
    finally:
        await store.close()


def _report(outcome: RunOutcome | None, job: Job) -> int:
    if outcome is None:
        print(f"job {job.id} has a run in progress; nothing started")
        return 1
    c = outcome.counts
    print(
        f"run {outcome.run_id} of job {job.id} {outcome.status.value}: read {c.read}, "
        f"valid {c.valid}, rejected {c.rejected}, written {c.written}, skipped {c.skipped}"
    )
    if outcome.error:
        print(f"error: {outcome.error}")
    return 1 if outcome.status.value == "failed" else 0
