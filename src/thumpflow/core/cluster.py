"""Nodes, leases and partitions: the vocabulary of several engines on one store.

A **node** is one engine process. It joins the store's node table under its
node id with an incarnation (new at every start) and keeps a heartbeat there;
two live nodes with the same id are refused (`NodeConflictError`).

A **lease** is a named row (owner, epoch, expires_at) in the store. Times are
the database's clock, never a node's: every node compares with the same
clock. Acquiring a lease that was free, released or expired makes the
caller its owner with the epoch raised by one; renewing keeps the epoch.
The epoch fences writes: a write made under a lease names (name, owner,
epoch) and the store refuses it (`LeaseLostError`) once the lease has passed
to another epoch, so a node that was paused and lost its lease can record
nothing.

A **partition** is a slice of one destination's deliveries: those whose
ordering key hashes to it (`partition_of`). All deliveries of one key are in
one partition, so one owner sends them, in order.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from thumpflow.core.errors import StoreError
from thumpflow.core.event import Delivery
from thumpflow.core.outcome import Outcome


@dataclass(slots=True, frozen=True)
class Lease:
    """A lease as its owner holds it; times on the database clock.

    `granted_at` is the database time of the acquire or renew that gave this
    view; the lease holds until `expires_at` unless renewed.
    """

    name: str
    owner: str
    epoch: int
    granted_at: float
    expires_at: float


@dataclass(slots=True, frozen=True)
class LeaseRecord:
    """A lease as the store lists it; `held` at the database time of the read."""

    name: str
    owner: str
    epoch: int
    expires_at: float
    held: bool


@dataclass(slots=True, frozen=True)
class NodeInfo:
    """What a node tells the store about itself when it joins."""

    node_id: str
    incarnation: str
    host: str
    pid: int
    api: str


@dataclass(slots=True, frozen=True)
class NodeRecord:
    """A node as the store lists it; `alive` when its heartbeat had not expired at the read;
    `ready` once its incarnation said it has started its outboxes (a node still starting
    takes no partitions, so the others do not leave partitions free for it)."""

    node_id: str
    incarnation: str
    host: str
    pid: int
    api: str
    started_at: float
    heartbeat_at: float
    expires_at: float
    alive: bool
    ready: bool

    @property
    def state(self) -> str:
        """`alive`, `starting` (alive, its channels and outboxes not open yet) or `gone`."""
        if not self.alive:
            return "gone"
        return "alive" if self.ready else "starting"


class NodeConflictError(StoreError):
    """Another live node already runs under this node id; `holder` is that node."""

    def __init__(self, message: str, holder: NodeRecord) -> None:
        super().__init__(message)
        self.holder = holder


class LeaseLostError(StoreError):
    """A write fenced by a lease was refused: the lease passed to another epoch or owner."""


@dataclass(slots=True, frozen=True)
class NodeStatus:
    """A node with what it holds: partitions by destination id, and duties."""

    node: NodeRecord
    partitions: dict[str, list[int]]
    duties: list[str]


@dataclass(slots=True, frozen=True)
class ClusterStatus:
    """Every node with its holdings; `unheld` names leases nobody holds now."""

    nodes: list[NodeStatus]
    unheld: list[str]
    at: float


def cluster_status(nodes: list[NodeRecord], leases: list[LeaseRecord], at: float) -> ClusterStatus:
    """Who holds what, from the node table and the leases read at database time `at`."""
    held: dict[str, tuple[dict[str, list[int]], list[str]]] = {
        node.node_id: ({}, []) for node in nodes
    }
    unheld: list[str] = []
    for lease in leases:
        holdings = held.get(lease.owner.partition("/")[0]) if lease.held else None
        if holdings is None:
            unheld.append(lease.name)
            continue
        kind, _, rest = lease.name.partition(":")
        if kind == "partition":
            destination, _, partition = rest.rpartition(":")
            holdings[0].setdefault(destination, []).append(int(partition))
        else:
            holdings[1].append(rest)
    return ClusterStatus(
        [
            NodeStatus(
                node,
                {d: sorted(ps) for d, ps in sorted(held[node.node_id][0].items())},
                sorted(held[node.node_id][1]),
            )
            for node in nodes
        ],
        unheld,
        at,
    )


def partition_of(ordering_key: str, partitions: int) -> int:
    """The partition (0..partitions-1) of an ordering key; the same on every node and run."""
    return zlib.crc32(ordering_key.encode("utf-8")) % partitions


def lease_owner(node_id: str, incarnation: str) -> str:
    """The owner name a node incarnation holds leases under: `<node id>/<incarnation>`."""
    return f"{node_id}/{incarnation}"


def partition_lease(destination_id: str, partition: int) -> str:
    """The lease name of one destination's partition."""
    return f"partition:{destination_id}:{partition}"


def duty_lease(duty: str) -> str:
    """The lease name of a singleton duty (scheduler, retention, alerts, ...)."""
    return f"duty:{duty}"


class ClusterStore(Protocol):
    """Nodes, leases and the fenced, partitioned side of the outbox, on the store.

    Every time here is the database's clock (`db_now`), so nodes never compare
    their own clocks. Node and lease writes are durable when they return, like
    every store write; joins, takeovers and leaves are audited, renewals and
    heartbeats are not (they would flood the audit trail).
    """

    async def db_now(self) -> float:
        """The database's clock, seconds since the Unix epoch."""
        ...

    def act_as(self, incarnation: str) -> None:
        """Record runs started through this store as this node incarnation's, so that
        `RunStore.recover_runs` leaves them alone while the node is alive."""
        ...

    async def join_node(self, node: NodeInfo, ttl: float, *, replace: str | None = None) -> None:
        """Enter `node` in the node table, alive for `ttl` seconds (audited `node.joined`).

        Raises `NodeConflictError` when another incarnation of the same node
        id is alive, unless that incarnation is `replace` (the caller proved
        it dead). A row left by a dead or departed incarnation is taken over.
        """
        ...

    async def heartbeat(self, node_id: str, incarnation: str, ttl: float, *, ready: bool) -> bool:
        """Keep this incarnation alive `ttl` seconds more, and record whether it is `ready`
        (a joined incarnation is not, until a heartbeat says so); False if the row is no
        longer its."""
        ...

    async def leave_node(self, node_id: str, incarnation: str) -> None:
        """Mark this incarnation gone now (audited `node.left`); nothing if it was replaced."""
        ...

    async def nodes(self) -> list[NodeRecord]:
        """Every node ever joined, by node id, each `alive` at the database's time."""
        ...

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take lease `name` for `ttl` seconds if it is free, released, expired or already ours.

        A new owner (or an owner coming back after expiry or release) gets
        the epoch raised by one (audited `lease.acquired`); an owner still
        holding it gets it renewed with the same epoch. None when another
        owner holds it. Concurrent callers: at most one gets each epoch.
        """
        ...

    async def renew_lease(self, lease: Lease, ttl: float) -> Lease | None:
        """Extend a lease still held under the same owner and epoch; None once it was lost."""
        ...

    async def release_lease(self, lease: Lease) -> bool:
        """Give a held lease up now (it expires at once); False if it was no longer held."""
        ...

    async def leases(self, prefix: str = "") -> list[LeaseRecord]:
        """Every lease whose name starts with `prefix`, by name, `held` at the database's time."""
        ...

    async def record_fenced(self, outcomes: Sequence[Outcome], fence: Lease) -> None:
        """`Store.record` under a lease: refused whole (`LeaseLostError`, nothing written)
        unless `fence` is, in the same transaction, still held by its owner and epoch."""
        ...

    async def load_partition(
        self, destination_id: str, partitions: int, partition: int, after: int, limit: int
    ) -> list[Delivery]:
        """`Store.load_pending` for one partition (`partition_of`) of a destination."""
        ...

    async def signals(self, prefix: str) -> dict[str, int]:
        """Generations of the signals whose name starts with `prefix` (a read).
        `replay:<destination>` is raised by every replay that returned deliveries of that
        destination to pending, in the replay's transaction."""
        ...

    async def has_pending_after(self, destination_id: str, after: int) -> bool:
        """Whether a delivery of the destination with id > `after` is pending (a read: no
        write transaction, so cheap to poll)."""
        ...

    async def follow_pending(self, wake: Callable[[str], None]) -> None:
        """Call `wake(destination id)` soon after any node commits a new pending delivery of
        that destination; runs until cancelled (reconnecting after a failure). A backend
        without notifications returns at once: the partitions' polling finds them."""
        ...

    async def partition_pending(self, destination_id: str, partitions: int, partition: int) -> int:
        """How many deliveries of one partition of a destination are pending."""
        ...
