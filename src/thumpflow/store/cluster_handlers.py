"""The writer handlers of nodes, leases, fenced outcomes and partition loads, for every backend.

`clock_sql` reads the database's clock inside the transaction (PostgreSQL);
without it (SQLite, one machine) the store's clock is the database's.
A fenced record checks its lease under the backend's row lock, in the same
transaction as the outcomes, and answers `LeaseLostError` (writing nothing
of that call) when the lease moved on; consecutive fenced records (of any
partitions) check their leases in one read and record what passed in one.
A partition load pages through the destination's pending deliveries by id
(the same order as `load_pending`) and keeps those whose ordering key falls
in the partition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from thumpflow.core.clock import Clock
from thumpflow.core.cluster import Lease, partition_of
from thumpflow.core.event import Delivery
from thumpflow.core.outcome import Outcome
from thumpflow.store.group import Deltas, Handler, Kind
from thumpflow.store.ops import WriteContext
from thumpflow.store.ops import cluster as _cluster
from thumpflow.store.ops import runs as _runs
from thumpflow.store.rows import DELIVERY_COLUMNS, delivery_from_row

_PAGE = 2000

_PENDING_KEYS = (
    "SELECT delivery_id, ordering_key FROM deliveries"
    " WHERE destination_id = ? AND status = 0 AND delivery_id > ?"
    " ORDER BY delivery_id LIMIT ?"
)


class LoadPartition:
    """One partition load: destination, partition count and index, after id, limit."""

    __slots__ = ("after", "destination_id", "limit", "partition", "partitions")

    def __init__(
        self, destination_id: str, partitions: int, partition: int, after: int, limit: int
    ) -> None:
        self.destination_id = destination_id
        self.partitions = partitions
        self.partition = partition
        self.after = after
        self.limit = limit


def cluster_handlers(
    context: WriteContext,
    clock_sql: str | None,
    lock: str,
    clock: Clock,
    record_states: Callable[[list[Sequence[Outcome]], Deltas], None],
) -> dict[Kind, Handler]:
    """The handlers of `ClusterStore`'s writes (see the module docstring)."""
    db, codec = context.conn, context.codec

    def now() -> float:
        if clock_sql is None:
            return clock.now()
        return float(db.execute(clock_sql).fetchone()[0])

    def on(operation: Callable[[WriteContext, _cluster.Now, list[Any]], list[Any]]) -> Handler:
        return lambda args, deltas: operation(context, now, args)

    def record_fenced(calls: list[tuple[Sequence[Outcome], Lease]], deltas: Deltas) -> list[Any]:
        refusals = _cluster.check_fences(db, [fence for _, fence in calls], lock)
        accepted = [
            outcomes
            for (outcomes, _), refused in zip(calls, refusals, strict=True)
            if refused is None
        ]
        if accepted:
            record_states(accepted, deltas)
        return refusals

    def load_partition(loads: list[LoadPartition], deltas: Deltas) -> list[Any]:
        return [_load(load) for load in loads]

    def _load(load: LoadPartition) -> list[Delivery]:
        ids: list[int] = []
        after = load.after
        while len(ids) < load.limit:
            rows = db.execute(_PENDING_KEYS, (load.destination_id, after, _PAGE)).fetchall()
            ids.extend(
                int(delivery_id)
                for delivery_id, key in rows
                if partition_of(key, load.partitions) == load.partition
            )
            if len(rows) < _PAGE:
                break
            after = rows[-1][0]
        del ids[load.limit :]
        if not ids:
            return []
        dialect_ids = ", ".join("?" * len(ids))
        return [
            delivery_from_row(row, codec)
            for row in db.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries d"
                " JOIN events e ON e.event_seq = d.event_seq"
                f" WHERE d.delivery_id IN ({dialect_ids}) ORDER BY d.delivery_id",
                ids,
            )
        ]

    return {
        Kind.RECOVER_RUNS: on(_runs.recover_runs),
        Kind.JOIN_NODE: on(_cluster.join_nodes),
        Kind.HEARTBEAT: on(_cluster.heartbeats),
        Kind.LEAVE_NODE: on(_cluster.leave_nodes),
        Kind.ACQUIRE_LEASE: on(_cluster.acquire_leases),
        Kind.RENEW_LEASE: on(_cluster.renew_leases),
        Kind.RELEASE_LEASE: on(_cluster.release_leases),
        Kind.RECORD_FENCED: record_fenced,
        Kind.LOAD_PARTITION: load_partition,
    }
