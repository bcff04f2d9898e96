"""The flow's metrics: per channel (ingress) and per destination (outbox).

`FlowMetrics` registers the families once in a `Registry`; `ingress` and
`outbox` bind the series of one channel or destination, so the hot path
touches only bound children (see `core.metrics` for the cost). Gauges that
describe a state (queue depth, circuit, oldest pending age) are set at
scrape time by `OutboxMetrics.sample`, not on every change.

Labels are channel and destination ids from the configuration, lanes and
fixed reason words; never anything from a message.
"""

from __future__ import annotations

from collections.abc import Mapping

from thumpflow.core.lanes import Lane
from thumpflow.core.metrics import Registry
from thumpflow.flow.limits import BreakerState

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

REJECT_REASONS = ("framing", "batch", "structure", "transform", "fhir", "notification")

CIRCUIT_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class IngressMetrics:
    """The series of one channel's ingress."""

    __slots__ = ("control_ids_reused", "duplicates", "received", "rejected", "store_failures")

    def __init__(self, flow: FlowMetrics, channel_id: str) -> None:
        self.received = flow.received.labels(channel_id)
        self.duplicates = flow.duplicates.labels(channel_id)
        self.control_ids_reused = flow.control_ids_reused.labels(channel_id)
        self.store_failures = flow.store_failures.labels(channel_id)
        self.rejected = {
            reason: flow.rejected.labels(channel_id, reason) for reason in REJECT_REASONS
        }


class OutboxMetrics:
    """The series of one destination's outbox."""

    __slots__ = (
        "attempt_seconds",
        "blocking",
        "circuit",
        "dead",
        "delivered",
        "in_memory",
        "lag",
        "oldest_age",
        "pending",
        "permanent",
        "rate_limit_wait_seconds",
        "rate_limit_waits",
        "retry_after_seconds",
        "superseded",
        "transient",
    )

    def __init__(self, flow: FlowMetrics, channel_id: str, destination_id: str) -> None:
        ids = (channel_id, destination_id)
        self.delivered = flow.delivered.labels(*ids)
        self.transient = flow.failed_attempts.labels(*ids, "transient")
        self.permanent = flow.failed_attempts.labels(*ids, "permanent")
        self.dead = flow.dead.labels(*ids)
        self.superseded = flow.superseded.labels(*ids)
        self.attempt_seconds = flow.attempt_seconds.labels(*ids)
        self.lag = flow.lag.labels(*ids)
        self.rate_limit_waits = flow.rate_limit_waits.labels(*ids)
        self.rate_limit_wait_seconds = flow.rate_limit_wait_seconds.labels(*ids)
        self.retry_after_seconds = flow.retry_after_seconds.labels(*ids)
        self.pending = flow.pending.labels(*ids)
        self.in_memory = {lane: flow.in_memory.labels(*ids, lane.label) for lane in Lane}
        self.oldest_age = flow.oldest_age.labels(*ids)
        self.circuit = flow.circuit.labels(*ids)
        self.blocking = flow.blocking.labels(*ids)

    def sample(
        self,
        *,
        pending: int,
        lane_depths: Mapping[Lane, int],
        circuit: BreakerState,
        blocking: bool,
        oldest_pending_age: float | None,
    ) -> None:
        """Set the state gauges (called at scrape time). No pending delivery: age 0."""
        self.pending.set(pending)
        for lane, depth in lane_depths.items():
            self.in_memory[lane].set(depth)
        self.circuit.set(CIRCUIT_VALUES[circuit])
        self.blocking.set(1 if blocking else 0)
        self.oldest_age.set(max(0.0, oldest_pending_age or 0.0))


class FlowMetrics:
    """Registers the flow's metric families (names in README, "Metrics and logs")."""

    def __init__(self, registry: Registry) -> None:
        channel = ("channel",)
        outbox = ("channel", "destination")
        self.received = registry.counter(
            "thumpflow_received_total",
            "Messages admitted (durably committed and positively acknowledged).",
            channel,
        )
        self.duplicates = registry.counter(
            "thumpflow_duplicates_total",
            "Resent messages recognised by idempotency key: acknowledged, not processed again.",
            channel,
        )
        self.control_ids_reused = registry.counter(
            "thumpflow_control_ids_reused_total",
            "Messages whose sender and MSH-10 were committed before for different content: "
            "admitted as new events, flagged control_id_reused.",
            channel,
        )
        self.rejected = registry.counter(
            "thumpflow_rejected_total",
            "Input kept as a reject and negatively acknowledged, by reason class "
            "(framing, batch, structure, transform).",
            (*channel, "reason"),
        )
        self.store_failures = registry.counter(
            "thumpflow_ingress_store_failures_total",
            "Messages answered 'send again later' (AR/CE) because the store failed.",
            channel,
        )
        self.delivered = registry.counter(
            "thumpflow_delivered_total", "Deliveries the destination accepted.", outbox
        )
        self.failed_attempts = registry.counter(
            "thumpflow_failed_attempts_total",
            "Delivery attempts that failed, by kind (transient: retried unless exhausted; "
            "permanent: dead at once).",
            (*outbox, "kind"),
        )
        self.dead = registry.counter(
            "thumpflow_dead_total",
            "Deliveries moved to the dead-letter list (permanent failure or retries exhausted).",
            outbox,
        )
        self.superseded = registry.counter(
            "thumpflow_superseded_total",
            "Deliveries not sent because a higher entity version was already applied.",
            outbox,
        )
        self.attempt_seconds = registry.histogram(
            "thumpflow_attempt_duration_seconds",
            "Duration of one send to the destination (one batch of deliveries).",
            outbox,
        )
        self.lag = registry.histogram(
            "thumpflow_delivery_lag_seconds",
            "From receipt of the event to its delivery being accepted.",
            outbox,
            LAG_BUCKETS,
        )
        self.rate_limit_waits = registry.counter(
            "thumpflow_rate_limit_waits_total",
            "Times a sender waited for the destination's rate limit.",
            outbox,
        )
        self.rate_limit_wait_seconds = registry.counter(
            "thumpflow_rate_limit_wait_seconds_total",
            "Seconds senders waited for the destination's rate limit.",
            outbox,
        )
        self.retry_after_seconds = registry.counter(
            "thumpflow_retry_after_pause_seconds_total",
            "Seconds the destination was paused by the receiver's Retry-After.",
            outbox,
        )
        self.pending = registry.gauge(
            "thumpflow_pending",
            "Deliveries durably queued for the destination (its outbox depth).",
            outbox,
        )
        self.in_memory = registry.gauge(
            "thumpflow_in_memory",
            "Queued deliveries held in memory by the lane scheduler, per lane.",
            (*outbox, "lane"),
        )
        self.oldest_age = registry.gauge(
            "thumpflow_oldest_pending_age_seconds",
            "Age of the oldest queued delivery (0 when none is queued).",
            outbox,
        )
        self.circuit = registry.gauge(
            "thumpflow_circuit_state",
            "Circuit breaker of the destination: 0 closed, 1 half-open, 2 open.",
            outbox,
        )
        self.blocking = registry.gauge(
            "thumpflow_backpressure",
            "1 while the outbox is past its high-water mark and its channel's ingress is closed.",
            outbox,
        )

    def ingress(self, channel_id: str) -> IngressMetrics:
        return IngressMetrics(self, channel_id)

    def outbox(self, channel_id: str, destination_id: str) -> OutboxMetrics:
        return OutboxMetrics(self, channel_id, destination_id)
