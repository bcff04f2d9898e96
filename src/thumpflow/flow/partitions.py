"""One destination's outbox split into partitions, each sent by the node holding its lease.

Used when several nodes share one store (PostgreSQL). Guarantees, with the
store's (`core.cluster.ClusterStore`):
- Each partition (the deliveries whose ordering key hashes to it,
  `partition_of`) is sent by the one node holding its lease; inside it an
  ordinary `Outbox` runs unchanged (lanes, per-key order, retries), over a
  view of the store that loads only that partition and records every
  outcome fenced by the lease's epoch. The partitions a node holds share
  the destination's `DestinationLimits`: one breaker, one `Retry-After`
  pause, and the rate limit and pace scaled to the fraction of partitions
  held here, so the whole cluster sends at most the configured rate.
- A node that lost a lease can record nothing for it (the store refuses the
  fenced write, the outcomes are dropped; the new owner sends those
  deliveries again with the same `Delivery.key`) and sends nothing once its
  lease may have ended: the partition's sends are gated on the local
  deadline (monotonic time when the renewal was asked + the lease length -
  a margin), so a node frozen past its lease sends nothing after it thaws.
- Deliveries admitted on any node reach the owner: a tail reader pages the
  destination's pending deliveries by id (ids commit in order, see
  `store/postgresql/_writer.py`) and hands each to its partition's outbox if
  this node owns it, when nudged (another node's commit, see
  `ClusterStore.follow_pending`) and by polling every `poll_seconds` (a cheap read; the page
  itself is loaded in the writer's order only when the read finds something
  new) and `linger_seconds` after a local admission (so the admissions of
  that time share one page). A page is handed only to
  partitions acquired before it was asked for, and an outbox ignores ids it
  has already seen, so nothing is queued twice.
- Backpressure uses the destination's whole pending count (all nodes').
- A destination's `concurrency` is shared out: each partition's outbox gets
  ceil(concurrency / partitions) workers, so a node holding every partition
  sends about as many at once as one engine alone would.
Pause applies to every partition this node owns. A replay (on any node)
returns deliveries to pending below the tail; `reload` (called by the node
when the store's `replay:<destination>` signal moves) loads every owned
partition again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from thumpflow.core.clock import Clock
from thumpflow.core.cluster import (
    ClusterStore,
    Lease,
    LeaseLostError,
    partition_lease,
    partition_of,
)
from thumpflow.core.event import Delivery
from thumpflow.core.lanes import Lane
from thumpflow.core.outcome import Outcome, SendResult, Transient
from thumpflow.core.ports import Destination, Store
from thumpflow.flow.metrics import OutboxMetrics
from thumpflow.flow.outbox import Outbox, OutboxSettings
from thumpflow.flow.scheduler import LanePolicy

log = logging.getLogger("thumpflow.flow.partitions")

_TAIL_PAGE = 1000


class PartitionStore(Store, ClusterStore, Protocol):
    """The store a partitioned outbox works on."""


@dataclass(slots=True, frozen=True)
class PartitionSettings:
    owner: str
    partitions: int
    lease_seconds: float
    poll_seconds: float = 0.2
    linger_seconds: float = 0.02

    @property
    def margin(self) -> float:
        """How long before the lease's end this node stops sending."""
        return self.lease_seconds / 5


class _PartitionView:
    """A partition's store as its `Outbox` sees it: loads filtered, records fenced."""

    def __init__(self, store: PartitionStore, owned: _Owned, partitions: int) -> None:
        self._store = store
        self._owned = owned
        self._partitions = partitions

    async def pending_count(self, destination_id: str) -> int:
        return await self._store.partition_pending(
            destination_id, self._partitions, self._owned.partition
        )

    async def load_pending(
        self, destination_id: str, after_delivery_id: int, limit: int
    ) -> list[Delivery]:
        return await self._store.load_partition(
            destination_id, self._partitions, self._owned.partition, after_delivery_id, limit
        )

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        try:
            await self._store.record_fenced(outcomes, self._owned.lease)
        except LeaseLostError:
            log.warning(
                "%d outcomes of %s not recorded: the lease passed to another node",
                len(outcomes),
                self._owned.lease.name,
            )

    async def applied_version(self, destination_id: str, ordering_key: str) -> int | None:
        return await self._store.applied_version(destination_id, ordering_key)


class _GatedDestination:
    """The shared destination, sending only while the partition's lease surely holds."""

    def __init__(self, destination: Destination, may_send: Callable[[], bool]) -> None:
        self.destination_id = destination.destination_id
        self.max_batch = destination.max_batch
        self._destination = destination
        self._may_send = may_send

    async def start(self) -> None:
        """The destination is started once for all partitions."""

    async def close(self) -> None:
        """The destination is closed once for all partitions."""

    async def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        if not self._may_send():
            return [Transient("the partition's lease is not held")] * len(batch)
        return await self._destination.send(batch)


class _Owned:
    """A partition this node holds: its lease, local deadline and outbox."""

    def __init__(self, partition: int, lease: Lease, deadline: float, since_load: int) -> None:
        self.partition = partition
        self.lease = lease
        self.deadline = deadline
        self.since_load = since_load
        self.outbox: Outbox | None = None


class PartitionedOutbox(Outbox):
    """A destination's outbox on a cluster; see the module docstring.

    It keeps `Outbox`'s face (offer, readmit, pause, blocking, metrics) for
    the ingress and the engine; the sending is done by one `Outbox` per
    owned partition. `keep(share)` is called by the node's lease keeper.
    """

    def __init__(
        self,
        destination: Destination,
        store: PartitionStore,
        clock: Clock,
        settings: OutboxSettings,
        *,
        metrics: OutboxMetrics,
        rng: random.Random | None = None,
        partitioning: PartitionSettings,
    ) -> None:
        super().__init__(destination, store, clock, settings, metrics=metrics, rng=rng)
        self._cluster = store
        self._part = partitioning
        self._owned: dict[int, _Owned] = {}
        self._child_settings = replace(
            settings,
            high_water=1 << 62,
            low_water=1 << 61,
            concurrency=max(1, -(-settings.concurrency // partitioning.partitions)),
        )
        self._child_metrics = metrics
        self._tail = 0
        self._loads = 0
        self._wake = asyncio.Event()
        self._tail_task: asyncio.Task[None] | None = None
        self._keeping = asyncio.Lock()
        self._started = False
        self.on_started: Callable[[], None] | None = None

    # --- the face the engine and the ingress see ---------------------------------

    async def start(self) -> None:
        await self.destination.start()
        self.pending = await self._cluster.pending_count(self.destination_id)
        self._update_blocking()
        self._tail_task = asyncio.create_task(self._follow(), name="partition-tail")
        self._started = True
        if self.on_started is not None:
            self.on_started()

    async def stop(self) -> None:
        if self._tail_task is not None:
            self._tail_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tail_task
        async with self._keeping:
            for partition in list(self._owned):
                await self._let_go(partition, release=True)
        await self.destination.close()

    def offer(self, deliveries: Sequence[Delivery]) -> None:
        """Deliveries this node just admitted: the tail reader is woken to page them in (in
        id order with the other nodes' deliveries; handing them over directly could put a
        later id before an earlier one of another node)."""
        self.pending += len(deliveries)
        self._update_blocking()
        self._wake.set()

    def nudge(self) -> None:
        """Another node committed deliveries of this destination: page them in now (the
        `poll_seconds` poll remains the backstop when a nudge is lost)."""
        self._wake.set()

    def readmit(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            owned = self._owned.get(partition_of(delivery.ordering_key, self._part.partitions))
            if owned is not None and owned.outbox is not None:
                owned.outbox.readmit([delivery])

    def set_policy(self, policy: LanePolicy) -> None:
        """The operating mode's lane policy, for every owned partition and those taken later."""
        super().set_policy(policy)
        for owned in self._owned.values():
            if owned.outbox is not None:
                owned.outbox.set_policy(policy)

    def pause(self) -> None:
        self.paused = True
        for owned in self._owned.values():
            if owned.outbox is not None:
                owned.outbox.pause()

    def resume(self) -> None:
        self.paused = False
        for owned in self._owned.values():
            if owned.outbox is not None:
                owned.outbox.resume()

    @property
    def in_memory(self) -> int:
        return sum(o.outbox.in_memory for o in self._owned.values() if o.outbox is not None)

    def lane_depths(self) -> dict[Lane, int]:
        depths: dict[Lane, int] = {}
        for owned in self._owned.values():
            if owned.outbox is not None:
                for lane, depth in owned.outbox.lane_depths().items():
                    depths[lane] = depths.get(lane, 0) + depth
        return depths

    @property
    def owned_partitions(self) -> list[int]:
        return sorted(self._owned)

    # --- leases --------------------------------------------------------------------

    async def keep(self, share: int, live: Collection[str]) -> None:
        """Renew held leases and drop lost ones; then balance against the `live` node ids.

        Below `share`, take free partitions up to it. At or above it, take
        the free ones anyway when no other live node is below its share (a
        partition never waits for a taker that is not coming), and hand back
        those beyond `share` while another live node is below it. A share of
        0 (this node's id was taken over) hands back everything.
        """
        if not self._started:
            return
        async with self._keeping:
            await self._renew()
            prefix = partition_lease(self.destination_id, 0)[:-1]
            counts = dict.fromkeys(live, 0)
            taken: set[int] = set()
            for record in await self._cluster.leases(prefix):
                if record.held and record.owner != self._part.owner:
                    taken.add(int(record.name[len(prefix) :]))
                    node = record.owner.partition("/")[0]
                    counts[node] = counts.get(node, 0) + 1
            me = self._part.owner.partition("/")[0]
            wanting = any(count < share for node, count in counts.items() if node != me)
            held = len(self._owned)
            if held > share and (wanting or share == 0):
                for partition in sorted(self._owned, reverse=True)[: held - share]:
                    await self._let_go(partition, release=True)
                return
            if share == 0:
                return
            limit = self._part.partitions if not wanting else share
            for partition in range(self._part.partitions):
                if len(self._owned) >= limit:
                    break
                if partition in taken or partition in self._owned:
                    continue
                await self._take(partition)

    async def _renew(self) -> None:
        held = list(self._owned.items())
        asked = self._clock.monotonic()
        answers = await asyncio.gather(
            *(
                self._cluster.renew_lease(owned.lease, self._part.lease_seconds)
                for _, owned in held
            ),
            return_exceptions=True,
        )
        for (partition, owned), renewed in zip(held, answers, strict=True):
            if isinstance(renewed, Lease):
                owned.lease = renewed
                owned.deadline = self._deadline(asked, renewed)
                continue
            if renewed is None or self._clock.monotonic() >= owned.deadline:
                log.warning("lease %s lost; its sending stops", owned.lease.name)
                await self._let_go(partition, release=False)
            else:
                log.warning("renewing %s failed (%s)", owned.lease.name, type(renewed).__name__)

    def _deadline(self, asked: float, lease: Lease) -> float:
        return asked + (lease.expires_at - lease.granted_at) - self._part.margin

    async def _take(self, partition: int) -> None:
        asked = self._clock.monotonic()
        name = partition_lease(self.destination_id, partition)
        lease = await self._cluster.acquire_lease(name, self._part.owner, self._part.lease_seconds)
        if lease is None:
            return
        owned = _Owned(partition, lease, self._deadline(asked, lease), self._loads)
        self._owned[partition] = owned
        self._reshare()
        try:
            await self._start_outbox(owned)
        except Exception:
            # Not started (the store failed while loading it): the partition is given
            # back, so a later beat (here or on another node) takes it again.
            await self._let_go(partition, release=True)
            raise
        log.info("partition %s taken (epoch %d)", name, lease.epoch)

    async def reload(self) -> None:
        """Load every owned partition again from the store (after a replay made anywhere:
        its deliveries are pending again below the tail). Each partition's outbox stops,
        recording what it knows, and a new one starts from the store; a partition whose
        outbox cannot start (the store failed) is given back, for a later beat to take."""
        async with self._keeping:
            for owned in list(self._owned.values()):
                if owned.outbox is not None:
                    await owned.outbox.stop()
                owned.since_load = self._loads
                try:
                    await self._start_outbox(owned)
                except Exception:
                    await self._let_go(owned.partition, release=True)
                    raise

    async def _start_outbox(self, owned: _Owned) -> None:
        gate = _GatedDestination(self.destination, lambda: self._clock.monotonic() < owned.deadline)
        outbox = Outbox(
            gate,
            _PartitionView(self._cluster, owned, self._part.partitions),
            self._clock,
            self._child_settings,
            metrics=self._child_metrics,
            rng=self._rng,
            limits=self.limits,
        )
        if self.paused:
            outbox.pause()
        outbox.set_policy(self.policy)
        owned.outbox = outbox
        await outbox.start()

    def _reshare(self) -> None:
        """This node's share of the destination's rate limit: the fraction of its partitions
        held here (at least one partition's, so a limit never reaches zero)."""
        self.limits.set_share(max(1, len(self._owned)) / self._part.partitions)

    async def _let_go(self, partition: int, *, release: bool) -> None:
        owned = self._owned.pop(partition)
        self._reshare()
        if owned.outbox is not None:
            await owned.outbox.stop()
        if release:
            with contextlib.suppress(Exception):
                await self._cluster.release_lease(owned.lease)

    # --- following the destination's deliveries -----------------------------------

    async def _follow(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._tail_pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following destination %s failed", self.destination_id)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._part.poll_seconds)
            except TimeoutError:
                continue
            await asyncio.sleep(self._part.linger_seconds)

    async def _tail_pass(self) -> None:
        if not await self._cluster.has_pending_after(self.destination_id, self._tail):
            self.pending = await self._cluster.pending_count(self.destination_id)
            self._update_blocking()
            return
        while True:
            self._loads += 1
            load = self._loads
            page = await self._cluster.load_pending(self.destination_id, self._tail, _TAIL_PAGE)
            by_partition: dict[int, list[Delivery]] = {}
            for delivery in page:
                partition = partition_of(delivery.ordering_key, self._part.partitions)
                by_partition.setdefault(partition, []).append(delivery)
            for partition, deliveries in by_partition.items():
                owned = self._owned.get(partition)
                if owned is not None and owned.outbox is not None and load > owned.since_load:
                    owned.outbox.offer(deliveries)
            if page:
                self._tail = page[-1].delivery_id
            if len(page) < _TAIL_PAGE:
                break
        self.pending = await self._cluster.pending_count(self.destination_id)
        self._update_blocking()
