"""A destination's rate limit and breaker hold for the whole cluster, not per partition.

A node sends each partition it holds through its own outbox. Those outboxes
share one `DestinationLimits`: the rate limit scaled to the fraction of the
partitions this node holds (so the nodes together send at most the
configured rate), one breaker (consecutive failures anywhere open it for all
partitions) and one `Retry-After` pause. Before, each of the partitions had
the full rate and its own breaker: sixteen times the configured rate, and
sixteen times the failures before the circuit opened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tests.cluster.test_fencing import PARTITIONS, NodeClock, Recording, admit
from tests.e2e.harness import eventually
from tests.postgres import PgCluster
from thumpflow.core.event import Delivery
from thumpflow.core.metrics import Registry
from thumpflow.core.outcome import SendResult, Transient
from thumpflow.flow.limits import BreakerState
from thumpflow.flow.metrics import FlowMetrics
from thumpflow.flow.outbox import OutboxSettings
from thumpflow.flow.partitions import PartitionedOutbox, PartitionSettings
from thumpflow.store.postgresql import PostgresStore

RATE = 10.0
LEASE = 5.0


class Timed(Recording):
    """Records when each delivery went out."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    async def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        self.at.extend(time.monotonic() for _ in batch)
        return await super().send(batch)


class Down(Recording):
    """A destination that is down: every send fails transiently."""

    async def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        self.started.extend(d.delivery_id for d in batch)
        return [Transient("connection refused")] * len(batch)


def node(
    store: PostgresStore, name: str, dest: Recording, settings: OutboxSettings
) -> PartitionedOutbox:
    return PartitionedOutbox(
        dest,
        store,
        NodeClock(),
        settings,
        metrics=FlowMetrics(Registry()).outbox("adt", "ehr"),
        partitioning=PartitionSettings(name, PARTITIONS, LEASE, poll_seconds=0.05),
    )


def test_the_rate_limit_is_shared_by_the_partitions_and_split_between_nodes(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    dsn = pg_cluster.new_database()
    settings = OutboxSettings(record_linger_seconds=0.001, rate_per_second=RATE, burst=2)

    async def scenario() -> None:
        store = PostgresStore(dsn)
        await store.open()
        dest = Timed()
        a = node(store, "a", dest, settings)
        try:
            await a.start()
            await a.keep(PARTITIONS, ("a",))
            assert a.owned_partitions == list(range(PARTITIONS))
            for n in range(30):
                a.offer([await admit(store, f"MRN{n}")])
            await eventually(lambda: len(dest.sent) >= 12, 20, "sends under the limit")
            first = dest.at[0]
            in_a_second = [t for t in dest.at if t - first <= 1.0]
            # One bucket at RATE (burst 2): at most 2 + RATE in the first second. Each of
            # the four partitions at the full rate would allow four times that.
            assert len(in_a_second) <= 2 + RATE + 1, len(in_a_second)
            assert a.limits.bucket is not None and a.limits.bucket.rate == RATE

            other = PostgresStore(dsn)
            await other.open()
            b = node(other, "b", Recording(), settings)
            try:
                await b.start()
                await a.keep(PARTITIONS // 2, ("a", "b"))
                await b.keep(PARTITIONS // 2, ("a", "b"))
                assert len(a.owned_partitions) == len(b.owned_partitions) == PARTITIONS // 2
                assert a.limits.bucket.rate == b.limits.bucket.rate == RATE / 2  # type: ignore[union-attr]
            finally:
                await b.stop()
                await other.close()
        finally:
            await a.stop()
            await store.close()

    asyncio.run(scenario())


def test_one_breaker_opens_for_every_partition_after_the_threshold_of_failures(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    dsn = pg_cluster.new_database()
    settings = replace(
        OutboxSettings(record_linger_seconds=0.001),
        failure_threshold=3,
        cooldown_seconds=60.0,
    )

    async def scenario() -> None:
        store = PostgresStore(dsn)
        await store.open()
        dest = Down()
        a = node(store, "a", dest, settings)
        try:
            await a.start()
            await a.keep(PARTITIONS, ("a",))
            for n in range(20):
                a.offer([await admit(store, f"MRN{n}")])
            await eventually(lambda: a.breaker.state is BreakerState.OPEN, 10, "the breaker opens")
            # Three failures open it; partitions whose sends had already passed the breaker
            # finish them (at most one each), and nothing more goes out in the cooldown: a
            # breaker per partition would need three failures in each of them.
            await asyncio.sleep(0.5)
            assert 3 <= len(dest.started) <= 3 + PARTITIONS, dest.started
        finally:
            await a.stop()
            await store.close()

    asyncio.run(scenario())
