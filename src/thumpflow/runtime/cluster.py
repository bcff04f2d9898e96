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
  each node aims at ceil(partitions / ready nodes) partitions per destination,
  taking free or expired ones and handing back those beyond its share. A
  node is ready once its engine has opened its channels and outboxes
  (`mark_ready`, carried by its next heartbeat); until then the others do
  not count it, so partitions released by a restart (below) or expired are
  taken by the running nodes within a beat rather than kept free for a
  node still starting, or stuck starting;
- runs the singleton duties (the scheduler with run recovery, retention
  purge, alert evaluation, the audit anchor) each under its lease
  (`duty:<name>`): a duty starts on the node that acquires its lease and is
  stopped when the lease cannot be renewed before its local deadline, so
  another node takes it over after the lease (on the same beat as partitions);
- holds leases as `<node id>/<incarnation>`, so a restarted node is a new
  owner (new epochs); when it replaces a process of its own id proven dead
  (same host, pid gone) it releases that process's leases at once, so its
  partitions and duties move without waiting for the lease;
- listens for the store's notices of new pending deliveries
  (`ClusterStore.follow_pending`: PostgreSQL's LISTEN/NOTIFY, sent at each
  admission's COMMIT by any node) and wakes that destination's tail reader
  at once, so a delivery admitted on another node is read within the
  linger (20 ms) rather than the next poll; polling stays as the backstop
  when a notice is lost;
- applies, on every beat, the pauses recorded in the store (a pause or
  resume made through any node reaches every node within a beat), and
  reloads the partitions of a destination whose `replay:` signal moved (a
  replay made through any node, or `thumpflow dlq replay` on the store);
- stamps the runs it starts with its incarnation (`ClusterStore.act_as`), so
  a scheduler taken over closes only runs whose node is gone;
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
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from thumpflow.config.model import Config
from thumpflow.core.clock import Clock
from thumpflow.core.cluster import (
    ClusterStatus,
    Lease,
    NodeConflictError,
    NodeInfo,
    cluster_status,
    duty_lease,
    lease_owner,
)
from thumpflow.core.errors import ConfigError, StoreError
from thumpflow.core.ids import new_ulid
from thumpflow.core.ports import Destination, StateStore
from thumpflow.core.search import PauseKind
from thumpflow.flow.metrics import OutboxMetrics
from thumpflow.flow.outbox import OutboxSettings
from thumpflow.flow.partitions import PartitionedOutbox, PartitionSettings
from thumpflow.runtime.workers import pid_alive

log = logging.getLogger("thumpflow.runtime.cluster")

Action = Callable[[], Coroutine[Any, Any, None]]


class _Duty:
    """A singleton duty: what starts and stops it, and its lease while this node holds it."""

    def __init__(self, name: str, start: Action, stop: Action) -> None:
        self.name = name
        self.start = start
        self.stop = stop
        self.lease: Lease | None = None
        self.deadline = 0.0


def loop_duty(body: Action) -> tuple[Action, Action]:
    """Start and stop actions running `body` (an endless loop) as one task."""
    task: asyncio.Task[None] | None = None

    async def start() -> None:
        nonlocal task
        task = asyncio.create_task(body())

    async def stop() -> None:
        nonlocal task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            task = None

    return start, stop


async def read_status(store: StateStore) -> ClusterStatus:
    """The cluster as the store knows it now (nodes, their heartbeats, partitions and duties)."""
    at = await store.db_now()
    return cluster_status(await store.nodes(), await store.leases(), at)


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
        self.owner = lease_owner(self.node.node_id, self.node.incarnation)
        self.outboxes: dict[str, PartitionedOutbox] = {}
        self.duties: list[_Duty] = []
        self._stopping: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._pauses: Callable[[set[tuple[PauseKind, str]]], None] | None = None
        self._replays: dict[str, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.replaced = False
        self.ready = False

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
            partitioning=PartitionSettings(self.owner, self.partitions, self.lease_seconds),
        )
        self.outboxes[outbox.destination_id] = outbox
        outbox.on_started = self._wake.set
        return outbox

    def follow_pauses(self, apply: Callable[[set[tuple[PauseKind, str]]], None]) -> None:
        """On every beat, hand `apply` the store's pauses (so a pause or resume made on
        any node reaches this one within a beat)."""
        self._pauses = apply

    def duty(self, name: str, start: Action, stop: Action) -> None:
        """Run a singleton duty on whichever node holds its lease (see the module docstring)."""
        self.duties.append(_Duty(name, start, stop))
        self._wake.set()

    async def start(self) -> None:
        """Join the node table (see the module docstring), then keep leases in the background."""
        await self._join()
        self._store.act_as(self.node.incarnation)
        self._task = asyncio.create_task(self._keep(), name="cluster-keeper")
        self._listener = asyncio.create_task(
            self._store.follow_pending(self._nudge), name="cluster-pending-listener"
        )

    def mark_ready(self) -> None:
        """The engine has opened its channels and outboxes: from the next beat (now), other
        nodes count this one when they share partitions out."""
        self.ready = True
        self._wake.set()

    def _nudge(self, destination_id: str) -> None:
        """A node committed new deliveries of `destination_id`: its tail reader reads now."""
        outbox = self.outboxes.get(destination_id)
        if outbox is not None:
            outbox.nudge()

    async def stop_duties(self) -> None:
        """Stop keeping leases; stop the duties this node runs and release their leases."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.gather(*self._stopping, return_exceptions=True)
        for duty in self.duties:
            if duty.lease is not None:
                await self._drop(duty, release=True)

    async def stop(self) -> None:
        """Leave the node table (duties and outboxes were stopped before)."""
        await self.stop_duties()
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
        await self._store.join_node(self.node, self.lease_seconds, replace=holder.incarnation)
        if holder.host == self.node.host and not pid_alive(holder.pid):
            gone = lease_owner(holder.node_id, holder.incarnation)
            for record in await self._store.leases():
                if record.owner == gone and record.held:
                    await self._store.release_lease(
                        Lease(record.name, record.owner, record.epoch, 0.0, record.expires_at)
                    )
        log.warning("node id %s taken over from a stopped process", self.node.node_id)

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
            self._wake.clear()
            try:
                await self._keep_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("cluster lease keeping failed (%s)", type(error).__name__)
            sleeping = asyncio.ensure_future(self._clock.sleep(beat))
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeping.cancel()
                woken.cancel()

    async def _keep_once(self) -> None:
        alive = await self._store.heartbeat(
            self.node.node_id, self.node.incarnation, self.lease_seconds, ready=self.ready
        )
        if not alive and not self.replaced:
            self.replaced = True
            log.error("node id %s was taken by another process", self.node.node_id)
        if self._pauses is not None:
            self._pauses({(pause.kind, pause.target_id) for pause in await self._store.pauses()})
        await self._follow_replays()
        me = self.node.node_id
        live = [
            node.node_id
            for node in await self._store.nodes()
            if node.alive and (node.ready or node.node_id == me)
        ]
        share = 0 if self.replaced else math.ceil(self.partitions / max(1, len(live)))
        await asyncio.gather(
            *(outbox.keep(share, live) for outbox in self.outboxes.values()),
            *(self._keep_duty(duty) for duty in self.duties),
        )

    async def _follow_replays(self) -> None:
        """Reload the partitions of each destination whose replay signal moved."""
        seen = await self._store.signals("replay:")
        known, self._replays = self._replays, seen
        if known is None:
            return
        for name, generation in seen.items():
            outbox = self.outboxes.get(name.removeprefix("replay:"))
            if outbox is not None and known.get(name) != generation:
                await outbox.reload()

    async def _keep_duty(self, duty: _Duty) -> None:
        asked = self._clock.monotonic()
        if duty.lease is not None:
            renewed: Lease | None = None
            try:
                if not self.replaced:
                    renewed = await self._store.renew_lease(duty.lease, self.lease_seconds)
            except StoreError:
                if self._clock.monotonic() < duty.deadline:
                    return
            if renewed is not None:
                duty.lease = renewed
                duty.deadline = self._deadline(asked, renewed)
                return
            log.warning("duty %s lost its lease (or this node its id); it stops here", duty.name)
            duty.lease = None
            stopping = asyncio.create_task(duty.stop(), name=f"duty-{duty.name}-stop")
            self._stopping.add(stopping)
            stopping.add_done_callback(self._stopping.discard)
            return
        if self.replaced:
            return
        lease = await self._store.acquire_lease(
            duty_lease(duty.name), self.owner, self.lease_seconds
        )
        if lease is None:
            return
        duty.lease = lease
        duty.deadline = self._deadline(asked, lease)
        log.info("duty %s taken (epoch %d)", duty.name, lease.epoch)
        try:
            await duty.start()
        except Exception:
            log.exception("duty %s failed to start; its lease is given back", duty.name)
            await self._drop(duty, release=True)

    def _deadline(self, asked: float, lease: Lease) -> float:
        return asked + (lease.expires_at - lease.granted_at) - self.lease_seconds / 5

    async def _drop(self, duty: _Duty, *, release: bool) -> None:
        lease, duty.lease = duty.lease, None
        try:
            await duty.stop()
        finally:
            if release and lease is not None:
                with contextlib.suppress(StoreError):
                    await self._store.release_lease(lease)
