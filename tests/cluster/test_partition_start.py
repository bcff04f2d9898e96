"""A partition whose outbox cannot start (the store failed while loading it) is given back.

The store's connection can fail between acquiring a partition's lease and
loading that partition's backlog (a database failover does exactly that). The
partition must not stay "owned" with no outbox sending it: it is released, and
the next beat takes it again and sends what it holds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.cluster.test_fencing import PARTITIONS, NodeClock, Recording, admit, outbox
from tests.e2e.harness import eventually
from tests.postgres import PgCluster
from thumpflow.core.errors import StoreError
from thumpflow.store.postgresql import PostgresStore


class FailingLoads(PostgresStore):
    """A store whose next `failures` partition loads fail as a lost connection does."""

    failures = 0

    async def partition_pending(self, destination_id: str, partitions: int, partition: int) -> int:
        if self.failures:
            self.failures -= 1
            raise StoreError("the connection to the database was lost")
        return await super().partition_pending(destination_id, partitions, partition)


def test_a_partition_whose_outbox_failed_to_start_is_taken_again_and_sent(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    dsn = pg_cluster.new_database()

    async def scenario() -> None:
        store = FailingLoads(dsn)
        await store.open()
        dest = Recording()
        node = outbox(store, NodeClock(), "a", dest)
        try:
            await node.start()
            deliveries = [await admit(store, f"MRN{n}") for n in range(12)]
            store.failures = 1
            try:
                await node.keep(PARTITIONS, ("a",))
            except StoreError:
                pass
            else:
                raise AssertionError("the failed load reaches the lease keeper")
            assert len(node.owned_partitions) < PARTITIONS, "the failed partition is not kept"
            held = await store.leases("partition:")
            assert sum(1 for record in held if record.held) == len(node.owned_partitions)
            await node.keep(PARTITIONS, ("a",))
            assert node.owned_partitions == list(range(PARTITIONS))
            expected = sorted(d.delivery_id for d in deliveries)
            await eventually(lambda: sorted(dest.sent) == expected, 10, "every delivery sent")
        finally:
            await node.stop()
            await store.close()

    asyncio.run(scenario())
