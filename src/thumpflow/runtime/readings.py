"""What the engine's alert conditions are evaluated on, read from the running engine.

One `Reading` per evaluation (see `thumpflow.alerts.conditions`): each
running outbox's oldest pending age, dead count and circuit state; each
enabled job's last finished run; each census job's last snapshot compared;
the store's free disk space; each MLLP
listener's connections and limits; each channel's reused control ids. A
reading only reads: it never changes the engine or the store.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from thumpflow.alerts import (
    CensusReading,
    ChannelReading,
    JobReading,
    ListenerReading,
    OutboxReading,
    Reading,
)
from thumpflow.config.model import Config
from thumpflow.core.batch import RunStatus
from thumpflow.core.clock import Clock
from thumpflow.core.ports import StateStore
from thumpflow.flow.limits import BreakerState
from thumpflow.flow.metrics import FlowMetrics
from thumpflow.runtime.channels import RunningChannels


async def alert_reading(
    config: Config, store: StateStore, clock: Clock, running: RunningChannels, flow: FlowMetrics
) -> Reading:
    """The engine's state now, as the alert conditions read it."""
    stats = {
        outbox.destination_id: outbox
        for channel in await store.stats()
        for outbox in channel.outboxes
    }
    outboxes = []
    for channel in running.channels.values():
        for spec in channel.channel.destinations:
            found = stats.get(spec.id)
            outboxes.append(
                OutboxReading(
                    channel_id=channel.channel.id,
                    destination_id=spec.id,
                    latency_budget=channel.channel.latency_budget,
                    oldest_pending_at=found.oldest_pending_at if found else None,
                    dead=found.dead if found else 0,
                    circuit_open=running.outboxes[spec.id].breaker.state is not BreakerState.CLOSED,
                )
            )
    jobs = []
    for job in config.jobs:
        if not (job.enabled and job.expect_records):
            continue
        finished = [
            run
            for run in await store.runs(job.id, 5)
            if run.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL)
        ]
        if finished:
            jobs.append(JobReading(job.id, finished[0].run_id, finished[0].counts.read))
    return Reading(
        census=await _census(config, store),
        at=clock.now(),
        outboxes=outboxes,
        jobs=jobs,
        disk_free_percent=await asyncio.to_thread(disk_free_percent, Path(config.store.path)),
        listeners=[
            ListenerReading(
                channel_id=channel_id,
                connections=source.connection_count,
                max_connections=source.spec.max_connections,
                limit=source.limit_reached,
                limit_reached_at=source.limit_reached_at,
                refused=source.refused,
                evicted=source.evicted,
            )
            for channel_id, channel in running.channels.items()
            if (source := channel.source) is not None
        ],
        channels=[
            ChannelReading(channel_id, int(flow.control_ids_reused.labels(channel_id).value))
            for channel_id in running.channels
        ],
    )


async def _census(config: Config, store: StateStore) -> list[CensusReading]:
    """Each alerting census job's last run that compared a snapshot (of its last five)."""
    found = []
    for job in config.jobs:
        if job.kind != "census_reconcile" or not job.enabled or job.drift_alert is None:
            continue
        for run in await store.runs(job.id, 5):
            findings = run.findings
            if findings is not None and isinstance(findings.get("drifted"), int):
                found.append(
                    CensusReading(
                        job.id,
                        run.run_id,
                        str(findings.get("as_of")),
                        findings["drifted"],
                        int(findings.get("repaired", 0)),
                        job.drift_alert,
                    )
                )
                break
    return found


def disk_free_percent(store_path: Path) -> float | None:
    """Free space on the file system of the store's folder, in percent of its size."""
    try:
        usage = shutil.disk_usage(store_path.resolve().parent)
    except OSError:
        return None
    return 100.0 * usage.free / usage.total if usage.total else None
