"""The MLLP listener's metrics: open connections, refusals and closures, per channel.

`MllpMetrics` registers the families once in a `Registry`; `listener` binds
the series of one channel. Labels are the channel id and fixed reason words.
"""

from __future__ import annotations

from thumpflow.core.metrics import Registry

REFUSAL_REASONS = ("limit", "peer_limit")
CLOSURE_REASONS = ("idle", "slow", "evicted")


class ListenerMetrics:
    """The series of one channel's MLLP listener."""

    __slots__ = ("closed", "open", "refused")

    def __init__(self, families: MllpMetrics, channel_id: str) -> None:
        self.open = families.connections.labels(channel_id)
        self.refused = {
            reason: families.refused.labels(channel_id, reason) for reason in REFUSAL_REASONS
        }
        self.closed = {
            reason: families.closed.labels(channel_id, reason) for reason in CLOSURE_REASONS
        }


class MllpMetrics:
    """Registers the MLLP listener's families (names in README, "Metrics and logs")."""

    def __init__(self, registry: Registry) -> None:
        self.connections = registry.gauge(
            "thumpflow_mllp_connections",
            "Open connections of the channel's MLLP listener.",
            ("channel",),
        )
        self.refused = registry.counter(
            "thumpflow_mllp_connections_refused_total",
            "New MLLP connections refused because a limit was reached and no connection could "
            "be closed to make room, by reason (limit: max_connections, peer_limit: "
            "max_connections_per_peer).",
            ("channel", "reason"),
        )
        self.closed = registry.counter(
            "thumpflow_mllp_connections_closed_total",
            "MLLP connections the listener closed, by reason (idle: idle timeout, slow: a frame "
            "below the minimum rate, evicted: closed to make room for a new connection).",
            ("channel", "reason"),
        )

    def listener(self, channel_id: str) -> ListenerMetrics:
        return ListenerMetrics(self, channel_id)
