"""The dispatcher of one destination's durable outbox.

Guarantees (with the store's and the destination's):
- Nothing is lost: a delivery leaves the outbox only as delivered, dead or
  superseded, each recorded in the store with an audit entry. The in-memory
  schedule holds at most `memory_capacity` deliveries; beyond that the outbox
  "spills": deliveries stay only in the store and are paged back in id order,
  so memory stays bounded however long a destination is down.
- Order per ordering key, urgent lanes first, a retrying key blocks only
  itself (see `LaneScheduler`).
- Bounded, classified retries (`RetryPolicy`); a permanent failure or an
  exhausted delivery is dead-lettered with its reason.
- Monotonic state: a delivery whose entity version is not above the version
  already applied at this destination is recorded as superseded, not sent.
- Rate limit and circuit breaker per destination; no attempt is charged while
  the breaker is open. A `Retry-After` from the receiver pauses the whole
  destination for that long (throttling and unavailability are the
  receiver's, not one patient's), and is the floor of that delivery's backoff.
- Outcomes are recorded asynchronously after the send, gathered for up to
  `record_linger_seconds` so that many share one commit; a crash between a
  send and its record makes the delivery go out again after restart with the
  same `Delivery.key`, which the destination (or receiver) recognises as a
  resend.
- Destinations that take batches get at most one partial batch per
  `batch_linger_seconds` (a full batch goes at once), so a file destination
  pays one fsync per batch rather than one per message at low load.
- Pause: while `paused` (an operator's act, see `Engine.pause_destination`)
  no new send starts; a send already under way finishes and is recorded.
  Deliveries keep arriving durably (and count toward backpressure); `resume`
  sends them in the same order as if there had been no pause.
- Operating mode (`set_policy`, from `runtime.surge`): the lane weights, the
  deferred lanes (not sent while the mode holds; they stay durable, count
  toward backpressure and go out in order when it ends), a pace (a rate
  limit applied on top of the configured one, the slower wins) and a hold
  (no send starts, as under a pause, but apart from an operator's pause).
  Deferral yields to the memory bound: while the outbox has spilled and
  nothing else in memory is ready, deferred deliveries are sent to make room
  for the work waiting in the store, so a deferred lane never stalls a
  more urgent one.
- Backpressure: `blocking` is true from `high_water` durable pending
  deliveries down to `low_water`; ingress stops reading while it is.
- Metrics (`OutboxMetrics`): every outcome is counted when it is decided
  (delivered, failed attempt by kind, dead, superseded), with the send's
  duration and, for a delivery accepted, its lag from receipt; waits for the
  rate limit and pauses by `Retry-After` are counted as they start. State
  gauges are set by `sample_metrics` when scraped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from thumpflow.core.clock import Clock
from thumpflow.core.errors import StoreError
from thumpflow.core.event import Delivery
from thumpflow.core.lanes import Lane
from thumpflow.core.outcome import (
    Delivered,
    Died,
    Outcome,
    Permanent,
    Retrying,
    SendResult,
    Sent,
    Superseded,
    Transient,
)
from thumpflow.core.ports import Destination
from thumpflow.flow.limits import CircuitBreaker, DestinationLimits, TokenBucket
from thumpflow.flow.metrics import OutboxMetrics
from thumpflow.flow.retry import RetryPolicy
from thumpflow.flow.scheduler import LanePolicy, LaneScheduler

log = logging.getLogger("thumpflow.flow.outbox")

_RECORD_BATCH = 1000


@dataclass(slots=True, frozen=True)
class OutboxSettings:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate_per_second: float | None = None
    burst: float = 1.0
    failure_threshold: int = 5
    cooldown_seconds: float = 30.0
    concurrency: int = 1
    memory_capacity: int = 20_000
    high_water: int = 100_000
    low_water: int = 80_000
    starvation_seconds: float = 30.0
    batch_linger_seconds: float = 0.01
    record_linger_seconds: float = 0.01


class OutboxStore(Protocol):
    """What an outbox needs of the store (`core.ports.Store` has it; so has a partition's view)."""

    async def pending_count(self, destination_id: str) -> int: ...

    async def load_pending(
        self, destination_id: str, after_delivery_id: int, limit: int
    ) -> list[Delivery]: ...

    async def record(self, outcomes: Sequence[Outcome]) -> None: ...

    async def applied_version(self, destination_id: str, ordering_key: str) -> int | None: ...


class Outbox:
    """Sends one destination's pending deliveries; see the module docstring."""

    def __init__(
        self,
        destination: Destination,
        store: OutboxStore,
        clock: Clock,
        settings: OutboxSettings,
        *,
        metrics: OutboxMetrics,
        rng: random.Random | None = None,
        limits: DestinationLimits | None = None,
    ) -> None:
        self.destination = destination
        self.destination_id = destination.destination_id
        self._metrics = metrics
        self._store = store
        self._clock = clock
        self._settings = settings
        self._rng = rng or random.Random()
        self._schedule = LaneScheduler(starvation_seconds=settings.starvation_seconds)
        self.limits = limits or DestinationLimits(
            settings.rate_per_second,
            settings.burst,
            CircuitBreaker(settings.failure_threshold, settings.cooldown_seconds),
            clock.monotonic(),
        )
        self.policy = LanePolicy()
        self.pending = 0
        self.blocking = False
        self._listeners: list[Callable[[], None]] = []
        self._spilled = False
        self._cursor = 0
        self._max_seen = 0
        self._applied: dict[str, int] = {}
        self._outcomes: list[Outcome] = []
        self._work = asyncio.Event()
        self._outcomes_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._last_batch_at = 0.0
        self._refilling = False
        self.paused = False

    @property
    def breaker(self) -> CircuitBreaker:
        """The destination's circuit breaker (shared with the node's other partitions)."""
        return self.limits.breaker

    def pause(self) -> None:
        """Start no new send until `resume`; the queue keeps filling."""
        self.paused = True

    def resume(self) -> None:
        """Send again, in order, from where the pause left off."""
        self.paused = False
        self._work.set()

    def set_policy(self, policy: LanePolicy) -> None:
        """Serve by an operating mode's lane policy from the next send on (see the docstring)."""
        self.policy = policy
        self._schedule.set_lanes(policy.weights, policy.deferred)
        self.limits.set_pace(policy.pace, self._clock.monotonic())
        self._work.set()

    def on_blocking_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        """Start the destination, load the durable backlog, start the workers."""
        await self.destination.start()
        self.pending = await self._store.pending_count(self.destination_id)
        self._update_blocking()
        self._spilled = True
        await self._refill()
        for index in range(max(1, self._settings.concurrency)):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"outbox-{index}"))
        self._tasks.append(asyncio.create_task(self._recorder(), name="outbox-recorder"))

    async def stop(self) -> None:
        """Stop sending, record every outcome already known, close the destination."""
        self._stopping = True
        self._work.set()
        workers, recorder = self._tasks[:-1], self._tasks[-1:]
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._outcomes_ready.set()
        await asyncio.gather(*recorder, return_exceptions=True)
        await self.destination.close()

    def offer(self, deliveries: Sequence[Delivery]) -> None:
        """Take deliveries just committed (in commit order); ids already seen are ignored."""
        if deliveries and deliveries[0].delivery_id <= self._max_seen:
            deliveries = [d for d in deliveries if d.delivery_id > self._max_seen]
            if not deliveries:
                return
        self.pending += len(deliveries)
        self._update_blocking()
        if self._spilled or len(self._schedule) + len(deliveries) > self._settings.memory_capacity:
            if not self._spilled:
                self._spilled = True
                self._cursor = self._max_seen
            self._work.set()
            return
        self._schedule.add(deliveries, self._clock.now())
        self._max_seen = max(self._max_seen, deliveries[-1].delivery_id)
        self._work.set()

    def readmit(self, deliveries: Sequence[Delivery]) -> None:
        """Take replayed deliveries (pending again, with their original ids)."""
        self.pending += len(deliveries)
        self._update_blocking()
        self._schedule.add(deliveries, self._clock.now())
        self._work.set()

    @property
    def in_memory(self) -> int:
        return len(self._schedule)

    def lane_depths(self) -> dict[Lane, int]:
        """Deliveries held in memory, per lane."""
        return self._schedule.lane_depths()

    def sample_metrics(self, oldest_pending_at: float | None) -> None:
        """Set the state gauges now; `oldest_pending_at` as the store's stats know it.

        Outcomes reach the store a little after they are decided, so when this
        outbox knows nothing is pending the age is 0 whatever the store says.
        """
        age = None
        if oldest_pending_at is not None and self.pending > 0:
            age = self._clock.now() - oldest_pending_at
        self._metrics.sample(
            pending=self.pending,
            lane_depths=self.lane_depths(),
            circuit=self.limits.breaker.state,
            blocking=self.blocking,
            oldest_pending_age=age,
        )

    async def _refill(self) -> None:
        """Page spilled deliveries back in, one page at a time (single flight).

        Two pages read from the same cursor would hand out deliveries that
        were already sent and finished in between, so a worker that finds a
        refill in progress leaves it to that one.
        """
        room = self._settings.memory_capacity - len(self._schedule)
        if self._refilling or room <= self._settings.memory_capacity // 2:
            return
        self._refilling = True
        try:
            page = await self._store.load_pending(self.destination_id, self._cursor, room)
        finally:
            self._refilling = False
        if page:
            self._cursor = page[-1].delivery_id
            self._max_seen = max(self._max_seen, self._cursor)
            self._schedule.add(page, self._clock.now())
        if len(page) < room:
            self._spilled = False

    def _update_blocking(self) -> None:
        before = self.blocking
        if self.pending >= self._settings.high_water:
            self.blocking = True
        elif self.pending <= self._settings.low_water:
            self.blocking = False
        if before != self.blocking:
            if self.blocking:
                log.warning(
                    "destination %s passed its high-water mark (%d pending); ingress slows",
                    self.destination_id,
                    self.pending,
                    extra={"destination": self.destination_id},
                )
            for listener in self._listeners:
                listener()

    async def _wait(self, seconds: float | None) -> None:
        self._work.clear()
        if seconds is None:
            await self._work.wait()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout=max(0.001, seconds))

    async def _worker(self) -> None:
        while not self._stopping:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "outbox worker of destination %s failed a step",
                    self.destination_id,
                    extra={"destination": self.destination_id},
                )
                await self._wait(1.0)

    def _bucket_now(self) -> TokenBucket | None:
        """The rate limit in force: the configured one or the mode's pace, the slower."""
        pace, bucket = self.limits.pace, self.limits.bucket
        if pace is None or (bucket is not None and bucket.rate <= pace.rate):
            return bucket
        return pace

    async def _step(self) -> None:
        if self.paused or self.policy.hold:
            await self._wait(None)
            return
        if self._spilled:
            await self._refill()
        now = self._clock.now()
        make_room = self._spilled
        if not self._schedule.has_ready(now, deferred=make_room):
            due = self._schedule.next_due()
            await self._wait(None if due is None else due - now)
            return
        if self.limits.paused_until > now:
            await self._wait(self.limits.paused_until - now)
            return
        limit = self.destination.max_batch
        mono = self._clock.monotonic()
        linger = self._settings.batch_linger_seconds
        if limit > 1 and linger > 0:
            since = mono - self._last_batch_at
            if since < linger and self._schedule.ready_estimate() < limit:
                await asyncio.sleep(linger - since)
                return
        bucket = self._bucket_now()
        if bucket is not None:
            token_wait = bucket.wait_for_one(mono)
            if token_wait > 0:
                self._metrics.rate_limit_waits.inc()
                self._metrics.rate_limit_wait_seconds.inc(token_wait)
                await asyncio.sleep(token_wait)
                return
        breaker_wait = self.limits.breaker.allows(now)
        if breaker_wait > 0:
            await self._wait(breaker_wait)
            return
        if bucket is not None:
            limit = bucket.take(limit, mono)
        self._last_batch_at = mono
        taken = self._schedule.take(limit, now, deferred=make_room)
        batch = await self._drop_stale(taken, now)
        if not batch:
            self.limits.breaker.cancel_probe()
            return
        started = self._clock.monotonic()
        results = await self.destination.send(batch)
        self._metrics.attempt_seconds.observe(self._clock.monotonic() - started)
        self._settle(batch, results)
        self._work.set()

    async def _drop_stale(self, batch: list[Delivery], now: float) -> list[Delivery]:
        fresh: list[Delivery] = []
        for delivery in batch:
            if delivery.sequence is not None:
                applied = await self._applied_version(delivery.ordering_key)
                if applied is not None and delivery.sequence <= applied:
                    reason = (
                        f"entity version {delivery.sequence} is not above the applied "
                        f"version {applied}"
                    )
                    self._metrics.superseded.inc()
                    self._finish(delivery, Superseded(delivery.delivery_id, now, reason))
                    continue
            fresh.append(delivery)
        return fresh

    async def _applied_version(self, ordering_key: str) -> int | None:
        if ordering_key in self._applied:
            return self._applied[ordering_key]
        version = await self._store.applied_version(self.destination_id, ordering_key)
        if version is not None:
            self._applied[ordering_key] = max(version, self._applied.get(ordering_key, version))
        return self._applied.get(ordering_key)

    def _settle(self, batch: Sequence[Delivery], results: Sequence[SendResult]) -> None:
        now = self._clock.now()
        if len(results) != len(batch):
            results = [Transient("destination returned a wrong number of results")] * len(batch)
        answered = False
        any_transient = False
        for delivery, result in zip(batch, results, strict=True):
            attempts = delivery.attempts + 1
            if isinstance(result, Sent):
                answered = True
                self._metrics.delivered.inc()
                self._metrics.lag.observe(now - delivery.created_at)
                if delivery.sequence is not None:
                    previous = self._applied.get(delivery.ordering_key)
                    if previous is None or delivery.sequence > previous:
                        self._applied[delivery.ordering_key] = delivery.sequence
                self._finish(
                    delivery,
                    Delivered(
                        delivery.delivery_id,
                        now,
                        attempts,
                        self.destination_id,
                        delivery.ordering_key,
                        delivery.sequence,
                        result.detail,
                    ),
                )
            elif isinstance(result, Permanent):
                answered = True
                self._metrics.permanent.inc()
                self._metrics.dead.inc()
                self._finish(delivery, Died(delivery.delivery_id, now, attempts, result.reason))
            else:
                any_transient = True
                self._metrics.transient.inc()
                if result.retry_after is not None:
                    pause = min(result.retry_after, self._settings.retry.max_retry_after_seconds)
                    if now + pause > self.limits.paused_until:
                        self._metrics.retry_after_seconds.inc(
                            now + pause - max(now, self.limits.paused_until)
                        )
                        self.limits.paused_until = now + pause
                self._retry(delivery, attempts, result, now)
        if answered:
            self.limits.breaker.success()
        elif any_transient:
            self.limits.breaker.failure(now)

    def _retry(self, delivery: Delivery, attempts: int, result: Transient, now: float) -> None:
        first_failed = delivery.first_failed_at if delivery.first_failed_at is not None else now
        exhausted = self._settings.retry.exhausted(attempts, first_failed, now)
        if exhausted is not None:
            reason = f"{exhausted}; last error: {result.reason}"
            self._metrics.dead.inc()
            self._finish(delivery, Died(delivery.delivery_id, now, attempts, reason))
            return
        wait = self._settings.retry.delay(attempts, result.retry_after, self._rng)
        delivery.attempts = attempts
        delivery.first_failed_at = first_failed
        delivery.last_error = result.reason
        delivery.next_attempt_at = now + wait
        self._schedule.retry_at(delivery, now + wait, now)
        self._outcomes.append(
            Retrying(delivery.delivery_id, now, attempts, now + wait, result.reason, first_failed)
        )
        self._outcomes_ready.set()

    def _finish(self, delivery: Delivery, outcome: Outcome) -> None:
        self._schedule.finished(delivery, outcome.at)
        self.pending -= 1
        self._update_blocking()
        self._outcomes.append(outcome)
        self._outcomes_ready.set()

    async def _recorder(self) -> None:
        while not self._stopping or self._outcomes:
            await self._outcomes_ready.wait()
            if not self._stopping and len(self._outcomes) < _RECORD_BATCH:
                await asyncio.sleep(self._settings.record_linger_seconds)
            self._outcomes_ready.clear()
            while self._outcomes:
                batch, self._outcomes = self._outcomes, []
                try:
                    await self._store.record(batch)
                except StoreError:
                    log.exception(
                        "recording outcomes for destination %s failed",
                        self.destination_id,
                        extra={"destination": self.destination_id},
                    )
                    self._outcomes = batch + self._outcomes
                    if self._stopping:
                        return
                    await asyncio.sleep(1.0)
