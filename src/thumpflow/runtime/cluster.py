"""This engine as one node of a cluster on a shared PostgreSQL store: identity, heartbeat, leases.

`Cluster` is built by the engine when the store is PostgreSQL (the embedded
SQLite store has one node, which owns everything: no `Cluster`, outboxes as
before). It:
- gives the node its id (`cluster.node_id`, or one generated once and kept in
  `node-id` beside `store.path`) and joins the store's node table at start.
  Another live node under the same id is a located error
  (`cluster.node_id: ...`); a row left by a dead process of this host, or one
  whose heartbeat stops for a lease, is taken over;
- heartbeats every third of `cluster.lease`, and on the same beat renews and
  balances the partition leases of every destination (`PartitionedOutbox.keep`):
  each node aims at ceil(partitions / live nodes) partitions per destination,
  taking free or expired ones and handing back those beyond its share;
- leaves the node table at stop, after the outboxes released their leases.
Guarantees on sending, fencing and takeover are `flow.partitions`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import secrets
import socket
from pathlib import Path

from thumpflow.config.model import Config
from thumpflow.core.clock import Clock
from thumpflow.core.cluster import NodeConflictError, NodeInfo
from thumpflow.core.errors import ConfigError, StoreError
from thumpflow.core.ids import new_ulid
from thumpflow.core.ports import Destination, StateStore
from thumpflow.flow.metrics import OutboxMetrics
from thumpflow.flow.outbox import OutboxSettings
from thumpflow.flow.partitions import PartitionedOutbox, PartitionSettings
from thumpflow.runtime.workers import pid_alive

log = logging.getLogger("thumpflow.runtime.cluster")


def node_id_of(config: Config) -> str:
    """The configured node id, or the one generated once and kept beside the store path."""
    if config.cluster.node_id is not None:
        return config.cluster.node_id
    path = Path(config.store.path).parent / "node-id"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    node_id = f"{socket.gethostname().split('.')[0][:40]}-{secrets.token_hex(3)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(node_id + "\n")
    return node_id


class Cluster:
    """This node's membership and lease keeping; see the module docstring."""

    def __init__(self, config: Config, store: StateStore, clock: Clock) -> None:
        spec = config.cluster
        self._store = store
        self._clock = clock
        self.lease_seconds = spec.lease
        self.partitions = spec.partitions
        self.node = NodeInfo(
            node_id_of(config),
            new_ulid(),
            socket.gethostname(),
            os.getpid(),
            f"{config.api.host}:{config.api.port}",
        )
        self.outboxes: dict[str, PartitionedOutbox] = {}
        self._task: asyncio.Task[None] | None = None
        self.replaced = False

    def outbox(
        self,
        destination: Destination,
        store: StateStore,
        clock: Clock,
        settings: OutboxSettings,
        *,
        metrics: OutboxMetrics,
        rng: random.Random | None = None,
    ) -> PartitionedOutbox:
        """A destination's outbox sending only the partitions this node holds."""
        outbox = PartitionedOutbox(
            destination,
            store,
            clock,
            settings,
            metrics=metrics,
            rng=rng,
            partitioning=PartitionSettings(self.node.node_id, self.partitions, self.lease_seconds),
        )
        self.outboxes[outbox.destination_id] = outbox
        return outbox

    async def start(self) -> None:
        """Join the node table (see the module docstring), then keep leases in the background."""
        await self._join()
        self._task = asyncio.create_task(self._keep(), name="cluster-keeper")

    async def stop(self) -> None:
        """Stop keeping leases and leave the node table (outboxes were stopped before)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(StoreError):
            await self._store.leave_node(self.node.node_id, self.node.incarnation)

    async def _join(self) -> None:
        try:
            await self._store.join_node(self.node, self.lease_seconds)
            return
        except NodeConflictError as conflict:
            holder = conflict.holder
            message = str(conflict)
        if holder.host != self.node.host or pid_alive(holder.pid):
            await self._outwait(holder.heartbeat_at, holder.expires_at, message)
        log.warning("node id %s taken over from a stopped process", self.node.node_id)
        await self._store.join_node(self.node, self.lease_seconds, replace=holder.incarnation)

    async def _outwait(self, heartbeat_at: float, expires_at: float, message: str) -> None:
        """Wait until the holder's heartbeat expires; refuse if it beats meanwhile."""
        while await self._store.db_now() <= expires_at:
            await self._clock.sleep(self.lease_seconds / 10)
            current = {n.node_id: n for n in await self._store.nodes()}.get(self.node.node_id)
            if current is None or not current.alive:
                return
            if current.heartbeat_at != heartbeat_at:
                raise ConfigError([f"cluster.node_id: {message}"])

    async def _keep(self) -> None:
        beat = self.lease_seconds / 3
        while True:
            try:
                await self._keep_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("cluster lease keeping failed (%s)", type(error).__name__)
            await self._clock.sleep(beat)

    async def _keep_once(self) -> None:
        alive = await self._store.heartbeat(
            self.node.node_id, self.node.incarnation, self.lease_seconds
        )
        if not alive and not self.replaced:
            self.replaced = True
            log.error("node id %s was taken by another process", self.node.node_id)
        live = sum(1 for node in await self._store.nodes() if node.alive)
        share = 0 if self.replaced else math.ceil(self.partitions / max(1, live))
        await asyncio.gather(*(outbox.keep(share) for outbox in self.outboxes.values()))
