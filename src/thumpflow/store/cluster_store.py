"""`core.cluster.ClusterStore` for every backend: nodes, leases, fenced and partitioned outboxes.

Writes go through the backend's group writer (`thumpflow.store.cluster_handlers`),
so they are durable when they return and, on PostgreSQL, serialised with
every other write of every node by the `audit_head` row lock. Times come
from the database's clock: `_clock_sql` (PostgreSQL) or, for the embedded
SQLite store, the store's clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from thumpflow.core.clock import Clock
from thumpflow.core.cluster import Lease, LeaseRecord, NodeInfo, NodeRecord, partition_of
from thumpflow.core.event import Delivery
from thumpflow.core.outcome import Outcome
from thumpflow.store.cluster_handlers import LoadPartition
from thumpflow.store.group import Kind
from thumpflow.store.ops import Db
from thumpflow.store.ops.cluster import NODE_COLUMNS, Acquire, Beat, Join, Leave, Renew, node_record

_T = TypeVar("_T")


class ClusterMethods:
    """The `ClusterStore` methods of a store with `_write`, `_read` and a clock."""

    _clock: Clock
    _clock_sql: str | None = None
    _node: str | None = None

    def act_as(self, incarnation: str) -> None:
        """`ClusterStore.act_as`."""
        self._node = incarnation

    def _read(self, query: Callable[[Db], _T]) -> Awaitable[_T]:
        raise NotImplementedError

    async def _write(self, kind: Kind, arg: Any) -> Any:
        raise NotImplementedError

    def _now(self, db: Db) -> float:
        if self._clock_sql is None:
            return self._clock.now()
        return float(db.execute(self._clock_sql).fetchone()[0])

    async def follow_pending(self, wake: Callable[[str], None]) -> None:
        """`ClusterStore.follow_pending`: no notifications here (the embedded store has one
        node, whose own admissions wake its outboxes)."""
        return None

    async def db_now(self) -> float:
        """`ClusterStore.db_now`."""
        return await self._read(self._now)

    async def join_node(self, node: NodeInfo, ttl: float, *, replace: str | None = None) -> None:
        """`ClusterStore.join_node`."""
        await self._write(Kind.JOIN_NODE, Join(node, ttl, replace))

    async def heartbeat(self, node_id: str, incarnation: str, ttl: float, *, ready: bool) -> bool:
        """`ClusterStore.heartbeat`."""
        beat: bool = await self._write(Kind.HEARTBEAT, Beat(node_id, incarnation, ttl, ready))
        return beat

    async def leave_node(self, node_id: str, incarnation: str) -> None:
        """`ClusterStore.leave_node`."""
        await self._write(Kind.LEAVE_NODE, Leave(node_id, incarnation))

    async def nodes(self) -> list[NodeRecord]:
        """`ClusterStore.nodes`."""

        def query(db: Db) -> list[NodeRecord]:
            now = self._now(db)
            rows = db.execute(f"SELECT {NODE_COLUMNS} FROM nodes ORDER BY node_id").fetchall()
            return [node_record(row, now) for row in rows]

        return await self._read(query)

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None:
        """`ClusterStore.acquire_lease`."""
        lease: Lease | None = await self._write(Kind.ACQUIRE_LEASE, Acquire(name, owner, ttl))
        return lease

    async def renew_lease(self, lease: Lease, ttl: float) -> Lease | None:
        """`ClusterStore.renew_lease`."""
        renewed: Lease | None = await self._write(Kind.RENEW_LEASE, Renew(lease, ttl))
        return renewed

    async def release_lease(self, lease: Lease) -> bool:
        """`ClusterStore.release_lease`."""
        released: bool = await self._write(Kind.RELEASE_LEASE, lease)
        return released

    async def leases(self, prefix: str = "") -> list[LeaseRecord]:
        """`ClusterStore.leases`."""

        def query(db: Db) -> list[LeaseRecord]:
            now = self._now(db)
            rows = db.execute(
                "SELECT name, owner, epoch, expires_at FROM leases"
                " WHERE substr(name, 1, ?) = ? ORDER BY name",
                (len(prefix), prefix),
            ).fetchall()
            return [
                LeaseRecord(name, owner, int(epoch), expires, expires > now)
                for name, owner, epoch, expires in rows
            ]

        return await self._read(query)

    async def record_fenced(self, outcomes: Sequence[Outcome], fence: Lease) -> None:
        """`ClusterStore.record_fenced`."""
        await self._write(Kind.RECORD_FENCED, (tuple(outcomes), fence))

    async def load_partition(
        self, destination_id: str, partitions: int, partition: int, after: int, limit: int
    ) -> list[Delivery]:
        """`ClusterStore.load_partition`."""
        deliveries: list[Delivery] = await self._write(
            Kind.LOAD_PARTITION, LoadPartition(destination_id, partitions, partition, after, limit)
        )
        return deliveries

    async def signals(self, prefix: str) -> dict[str, int]:
        """`ClusterStore.signals`."""

        def query(db: Db) -> dict[str, int]:
            rows = db.execute(
                "SELECT name, generation FROM signals WHERE substr(name, 1, ?) = ?",
                (len(prefix), prefix),
            ).fetchall()
            return {name: int(generation) for name, generation in rows}

        return await self._read(query)

    async def has_pending_after(self, destination_id: str, after: int) -> bool:
        """`ClusterStore.has_pending_after`."""

        def query(db: Db) -> bool:
            row = db.execute(
                "SELECT 1 FROM deliveries WHERE destination_id = ? AND status = 0"
                " AND delivery_id > ? LIMIT 1",
                (destination_id, after),
            ).fetchone()
            return row is not None

        return await self._read(query)

    async def partition_pending(self, destination_id: str, partitions: int, partition: int) -> int:
        """`ClusterStore.partition_pending`."""

        def query(db: Db) -> int:
            rows = db.execute(
                "SELECT ordering_key FROM deliveries WHERE destination_id = ? AND status = 0",
                (destination_id,),
            )
            return sum(1 for (key,) in rows if partition_of(key, partitions) == partition)

        return await self._read(query)
