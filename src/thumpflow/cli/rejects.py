"""`thumpflow rejects list [--job J] [--run R] | show ID | replay ID... [--file F]`, and
`messages | message ID | reprocess ID` for flow rejects (`cli/flow_rejects.py`).

`list` and `show` open the store read-only. `show` prints the kept record
(patient data: it is what the operator must fix), `list` only ids, rules and
remedies. `replay` re-validates the kept records, or the corrected records of
`--file` (CSV with a header row, or NDJSON), and writes the valid ones to the
job's destinations as one small manual run in this process; the rejects are
marked replayed (audited with `--actor`) only when that run succeeds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from thumpflow.cli import flow_rejects
from thumpflow.cli._shared import config_argument, table, when
from thumpflow.config import load_config
from thumpflow.config.model import Config
from thumpflow.core.clock import SystemClock
from thumpflow.core.errors import ThumpflowError
from thumpflow.runtime.build import batch_connectors, open_store
from thumpflow.runtime.transform_modules import add_transforms_path, load_record_transform
from thumpflow.thump.replay import file_records, load_rejects, replay_rejects


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `list`, `show` and `replay` actions."""
    actions = parser.add_subparsers(dest="rejects_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="kept rejected records, newest first")
    listing.add_argument("--job", help="only this job")
    listing.add_argument("--run", type=int, help="only this run")
    listing.add_argument("--limit", type=int, default=100)
    show = actions.add_parser("show", help="one reject with its record, rule and remedy")
    show.add_argument("reject_id", type=int)
    replay = actions.add_parser("replay", help="validate and load rejected records again")
    replay.add_argument("reject_ids", type=int, nargs="+", metavar="ID")
    replay.add_argument("--file", type=Path, help="corrected records (.csv or .ndjson)")
    replay.add_argument(
        "--actor", default=os.environ.get("USER", "operator"), help="who (default: $USER)"
    )
    for sub in (listing, show, replay):
        config_argument(sub)
    flow_rejects.add_actions(actions)


def run(args: argparse.Namespace) -> int:
    """Execute the chosen action; see the module docstring."""
    config = load_config(args.config)
    add_transforms_path(config.transforms_path)
    if args.rejects_command in ("messages", "message", "reprocess"):
        return flow_rejects.run(config, args)
    if args.rejects_command == "list":
        return asyncio.run(_list(config, args.job, args.run, args.limit))
    if args.rejects_command == "show":
        return asyncio.run(_show(config, args.reject_id))
    return asyncio.run(_replay(config, args.reject_ids, args.file, args.actor))


async def _list(config: Config, job_id: str | None, run_id: int | None, limit: int) -> int:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        rejects = await store.row_rejects(job_id, run_id, limit)
    finally:
        await store.close()
    if not rejects:
        print("no batch rejects (`thumpflow rejects messages` lists the messages channels refused)")
        return 0
    rows = [["ID", "JOB", "RUN", "ORIGIN", "RULE", "REPLAYED", "REMEDY"]]
    rows.extend(
        [
            str(r.reject_id),
            r.job_id,
            str(r.run_id),
            r.origin,
            r.rule,
            when(r.replayed_at),
            r.remedy[:90],
        ]
        for r in rejects
    )
    print(table(rows))
    return 0


async def _show(config: Config, reject_id: int) -> int:
    store = open_store(config, read_only=True)
    await store.open()
    try:
        reject = await store.row_reject(reject_id)
    finally:
        await store.close()
    if reject is None:
        print(f"no reject {reject_id}")
        return 1
    print(f"reject       {reject.reject_id}")
    print(f"job          {reject.job_id}")
    print(f"run          {reject.run_id}")
    print(f"origin       {reject.origin}")
    print(f"rejected     {when(reject.at)}")
    print(f"replayed     {when(reject.replayed_at)}")
    print(f"rule         {reject.rule}")
    print(f"remedy       {reject.remedy}")
    print("record:")
    print(reject.record)
    return 0


async def _replay(config: Config, reject_ids: list[int], file: Path | None, actor: str) -> int:
    corrected = file_records(file) if file is not None else None
    store = open_store(config)
    await store.open()
    try:
        rejects = await load_rejects(store, reject_ids)
        job_id = rejects[0].job_id
        job = next((job for job in config.jobs if job.id == job_id), None)
        if job is None:
            raise ThumpflowError(f"job {job_id!r} is not in the configuration")
        transform = load_record_transform(job.transform, job.id) if job.transform else None
        clock = SystemClock()
        result = await replay_rejects(
            job,
            rejects,
            store,
            clock,
            batch_connectors(clock),
            transform=transform,
            actor=actor,
            corrected=corrected,
        )
    finally:
        await store.close()
    outcome = result.outcome
    if outcome is None:
        print(f"job {job_id} has a run in progress; nothing replayed")
        return 1
    c = outcome.counts
    print(
        f"replay run {outcome.run_id} {outcome.status.value}: read {c.read}, valid {c.valid}, "
        f"rejected {c.rejected}, written {c.written}, skipped {c.skipped}"
    )
    if outcome.error:
        print(f"error: {outcome.error}")
    if result.marked:
        print("marked replayed: " + ", ".join(str(i) for i in result.marked))
        return 0
    print("rejects left open: the replay did not succeed (see `thumpflow rejects list --run`)")
    return 1
