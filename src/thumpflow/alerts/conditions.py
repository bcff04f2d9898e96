"""Which alert conditions hold, from one reading of the engine. Pure: no I/O, no clock.

- latency budget: a destination's oldest undelivered event is older than its
  channel's `latency_budget`;
- dead-letter growth: a destination's dead count rose by `growth_count` or
  more within `growth_window` seconds (`CountTrend` keeps the history);
- circuit open: a destination's circuit breaker is open;
- zero-record batch: the last finished run of a job that expects records
  read none (the runner also audits and logs it when it happens);
- disk nearly full: free space on the store's file system is below
  `disk_free_min_percent`;
- connection limit: a channel's MLLP listener has `max_connections` open,
  or reached a connection limit (global or per peer) within the last
  `connection_limit_window` seconds;
- control id reused: a channel admitted a message whose sender and MSH-10
  were committed before for different content within `growth_window`
  seconds (admitted as a new event, flagged; the alert clears once a window
  passes without one).
- census drift: the last census snapshot a `census_reconcile` job compared
  had at least the job's `drift_alert` drifted beds (repaired or not); it
  clears when a later snapshot has fewer.

Messages carry ids and figures only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from thumpflow.core.alerts import AlertKind, Condition, Severity


@dataclass(slots=True, frozen=True)
class AlertSettings:
    interval: float = 15.0
    disk_free_min_percent: float = 10.0
    growth_count: int = 10
    growth_window: float = 300.0
    notify_attempts: int = 8
    notify_backoff: float = 1.0
    notify_backoff_cap: float = 300.0
    connection_limit_window: float = 300.0


@dataclass(slots=True, frozen=True)
class OutboxReading:
    channel_id: str
    destination_id: str
    latency_budget: float
    oldest_pending_at: float | None
    dead: int
    circuit_open: bool


@dataclass(slots=True, frozen=True)
class JobReading:
    """The last finished run of a job that expects records."""

    job_id: str
    run_id: int
    read: int


@dataclass(slots=True, frozen=True)
class CensusReading:
    """The last run of a `census_reconcile` job that compared a snapshot, and its threshold."""

    job_id: str
    run_id: int
    as_of: str
    drifted: int
    repaired: int
    threshold: int


@dataclass(slots=True, frozen=True)
class ListenerReading:
    """A channel's MLLP listener: open connections and when a limit was last reached.

    `limit` names the limit last reached (`max_connections` or
    `max_connections_per_peer`); `refused` and `evicted` count new
    connections refused and connections closed to make room since start.
    """

    channel_id: str
    connections: int
    max_connections: int
    limit: str | None
    limit_reached_at: float | None
    refused: int
    evicted: int


@dataclass(slots=True, frozen=True)
class ChannelReading:
    """A channel's ingress counters since the engine started."""

    channel_id: str
    control_ids_reused: int


@dataclass(slots=True, frozen=True)
class Reading:
    at: float
    outboxes: Sequence[OutboxReading] = ()
    jobs: Sequence[JobReading] = ()
    disk_free_percent: float | None = None
    listeners: Sequence[ListenerReading] = ()
    channels: Sequence[ChannelReading] = ()
    census: Sequence[CensusReading] = ()


class CountTrend:
    """Counts per subject (a destination's dead letters, a channel's reused
    control ids) over the last `window` seconds."""

    def __init__(self, window: float) -> None:
        self._window = window
        self._history: dict[str, deque[tuple[float, int]]] = {}

    def growth(self, subject: str, at: float, count: int, start: int | None = None) -> int:
        """Record `count` at `at`; how much it rose since the window's lowest count.

        `start` is the count before a subject's first reading, for counters
        that start at zero with the engine; without it the first reading is
        its own baseline (a store-wide total).
        """
        history = self._history.get(subject)
        if history is None:
            history = self._history[subject] = deque()
            if start is not None:
                history.append((at, start))
        history.append((at, count))
        while history and history[0][0] < at - self._window:
            history.popleft()
        return count - min(seen for _, seen in history)


def conditions(reading: Reading, settings: AlertSettings, trend: CountTrend) -> list[Condition]:
    """Every evaluated condition that holds in `reading`."""
    holding: list[Condition] = []
    for outbox in reading.outboxes:
        destination = outbox.destination_id
        where = f"destination {destination} (channel {outbox.channel_id})"
        if outbox.oldest_pending_at is not None:
            age = reading.at - outbox.oldest_pending_at
            if age > outbox.latency_budget:
                holding.append(
                    Condition(
                        AlertKind.LATENCY_BUDGET,
                        destination,
                        Severity.WARNING,
                        f"{where}: oldest undelivered event is {age:.0f}s old, "
                        f"budget {outbox.latency_budget:g}s",
                    )
                )
        growth = trend.growth(destination, reading.at, outbox.dead)
        if growth >= settings.growth_count:
            holding.append(
                Condition(
                    AlertKind.DEAD_LETTER_GROWTH,
                    destination,
                    Severity.WARNING,
                    f"{where}: {growth} deliveries went dead within "
                    f"{settings.growth_window:g}s ({outbox.dead} dead in all)",
                )
            )
        if outbox.circuit_open:
            holding.append(
                Condition(
                    AlertKind.CIRCUIT_OPEN,
                    destination,
                    Severity.WARNING,
                    f"{where}: circuit open; deliveries wait for the cooldown",
                )
            )
    for job in reading.jobs:
        if job.read == 0:
            holding.append(
                Condition(
                    AlertKind.ZERO_RECORD_BATCH,
                    job.job_id,
                    Severity.WARNING,
                    f"job {job.job_id}: run {job.run_id} read zero records; the job expects some",
                )
            )
    for census in reading.census:
        if census.drifted >= census.threshold:
            holding.append(
                Condition(
                    AlertKind.CENSUS_DRIFT,
                    census.job_id,
                    Severity.WARNING,
                    f"job {census.job_id}: run {census.run_id} found {census.drifted} bed(s) "
                    f"whose occupant differs from the census snapshot of {census.as_of} "
                    f"({census.repaired} repaired); threshold {census.threshold}",
                )
            )
    for listener in reading.listeners:
        reached = listener.limit_reached_at
        recent = reached is not None and reading.at - reached <= settings.connection_limit_window
        if recent or listener.connections >= listener.max_connections:
            last = (
                f"{listener.limit} last reached {reading.at - reached:.0f}s ago"
                if reached is not None
                else "no connection refused or closed yet"
            )
            holding.append(
                Condition(
                    AlertKind.CONNECTION_LIMIT,
                    listener.channel_id,
                    Severity.WARNING,
                    f"channel {listener.channel_id}: MLLP listener at its connection limit: "
                    f"{listener.connections} of {listener.max_connections} connections open, "
                    f"{last}; {listener.refused} refused and {listener.evicted} closed to make "
                    "room since start",
                )
            )
    for channel in reading.channels:
        subject = "channel:" + channel.channel_id
        reused = trend.growth(subject, reading.at, channel.control_ids_reused, start=0)
        if reused:
            holding.append(
                Condition(
                    AlertKind.CONTROL_ID_REUSED,
                    channel.channel_id,
                    Severity.WARNING,
                    f"channel {channel.channel_id}: {reused} message(s) within "
                    f"{settings.growth_window:g}s reused a sender's control id (MSH-10) for "
                    "different content; each was admitted as a new event (control_id_reused "
                    "in the audit trail)",
                )
            )
    free = reading.disk_free_percent
    if free is not None and free < settings.disk_free_min_percent:
        holding.append(
            Condition(
                AlertKind.DISK_NEARLY_FULL,
                "store",
                Severity.CRITICAL,
                f"store file system: {free:.1f}% free, below {settings.disk_free_min_percent:g}%",
            )
        )
    return holding
