"""Fencing: a node that lost a partition's lease neither sends nor records for it.

Two `PartitionedOutbox`es (nodes a and b) on one PostgreSQL store, each with
its own destination. Node a is "frozen" the way a SIGSTOPped process is: its
lease keeper stops running and its local monotonic clock jumps past the
lease while a send hangs. Node b takes the partitions over (new epochs) and
delivers; when a's hung send then returns, a's outcome is refused by the
store, and a starts no new send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

from tests.e2e.harness import eventually
from tests.postgres import PgCluster
from tests.store.support import admission
from thumpflow.core.event import Admitted, Delivery, DeliveryStatus
from thumpflow.core.metrics import Registry
from thumpflow.core.outcome import SendResult, Sent
from thumpflow.core.search import DeliveryQuery
from thumpflow.flow.metrics import FlowMetrics
from thumpflow.flow.outbox import OutboxSettings
from thumpflow.flow.partitions import PartitionedOutbox, PartitionSettings
from thumpflow.store.postgresql import PostgresStore

PARTITIONS = 4
LEASE = 1.0
LIVE = ("a", "b")


class NodeClock:
    """Real time, with a monotonic clock that can jump forward (a frozen process's view)."""

    def __init__(self) -> None:
        self.jumped = 0.0

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic() + self.jumped

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class Recording:
    """A destination that records what it sent; while `hold` is clear, sends hang."""

    max_batch = 1

    def __init__(self) -> None:
        self.destination_id = "ehr"
        self.sent: list[int] = []
        self.started: list[int] = []
        self.hold = asyncio.Event()
        self.hold.set()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        self.started.extend(d.delivery_id for d in batch)
        await self.hold.wait()
        self.sent.extend(d.delivery_id for d in batch)
        return [Sent()] * len(batch)


def outbox(store: PostgresStore, clock: NodeClock, node: str, dest: Recording) -> PartitionedOutbox:
    return PartitionedOutbox(
        dest,
        store,
        clock,
        OutboxSettings(record_linger_seconds=0.001),
        metrics=FlowMetrics(Registry()).outbox("adt", "ehr"),
        partitioning=PartitionSettings(node, PARTITIONS, LEASE, poll_seconds=0.05),
    )


async def admit(store: PostgresStore, entity: str) -> Delivery:
    result = await store.admit(admission("ehr", entity=entity))
    assert isinstance(result, Admitted)
    return result.deliveries[0]


def test_a_frozen_node_past_its_lease_neither_sends_nor_records_after_a_takeover(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    dsn = pg_cluster.new_database()

    async def scenario() -> None:
        store_a, store_b = PostgresStore(dsn), PostgresStore(dsn)
        await store_a.open()
        await store_b.open()
        clock_a = NodeClock()
        dest_a, dest_b = Recording(), Recording()
        a = outbox(store_a, clock_a, "a", dest_a)
        b = outbox(store_b, NodeClock(), "b", dest_b)
        try:
            await a.start()
            await b.start()
            await a.keep(PARTITIONS, LIVE)
            assert a.owned_partitions == list(range(PARTITIONS))
            await b.keep(PARTITIONS, LIVE)
            assert b.owned_partitions == []

            dest_a.hold.clear()
            first = await admit(store_a, "MRN1")
            a.offer([first])
            await eventually(lambda: dest_a.started == [first.delivery_id], 5, "a sends")

            # a freezes: no renewals, and its monotonic clock passes the lease.
            clock_a.jumped = LEASE * 2
            await asyncio.sleep(LEASE + 0.2)
            dest_b.hold.clear()
            await b.keep(PARTITIONS, LIVE)
            assert b.owned_partitions == list(range(PARTITIONS))
            await eventually(lambda: dest_b.started == [first.delivery_id], 5, "b resends")

            # a thaws: its hung send returns, its outcome is refused, it sends nothing new.
            dest_a.hold.set()
            await eventually(lambda: dest_a.sent == [first.delivery_id], 5, "a's send ends")
            second = await admit(store_b, "MRN2")
            a.offer([second])
            b.offer([second])
            await asyncio.sleep(0.3)
            assert dest_a.started == [first.delivery_id]
            found = await store_a.search_deliveries(DeliveryQuery(destination_id="ehr"))
            assert {r.delivery_id: r.status for r in found}[first.delivery_id] == (
                DeliveryStatus.PENDING
            ), "a's Delivered was refused"

            dest_b.hold.set()
            await eventually(lambda: dest_b.sent == [first.delivery_id, second.delivery_id], 5, "b")
            await eventually(lambda: b.pending == 0, 5, "b records")
            await asyncio.sleep(0.3)
            records = await store_b.search_deliveries(DeliveryQuery(destination_id="ehr"))
            assert {r.delivery_id: r.status for r in records} == {
                first.delivery_id: DeliveryStatus.DELIVERED,
                second.delivery_id: DeliveryStatus.DELIVERED,
            }
            audit = await store_b.audit(None, 200)
            delivered = [e for e in audit if e.action == "delivered"]
            assert len(delivered) == 2
            await a.keep(PARTITIONS, LIVE)
            assert a.owned_partitions == []
        finally:
            await a.stop()
            await b.stop()
            await store_a.close()
            await store_b.close()

    asyncio.run(scenario())
