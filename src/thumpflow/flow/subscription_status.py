"""What a FHIR Subscription receiver answers and shows: the answer to a notification, the
channel's liveness and gaps, and its metric families (see `flow.subscription`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from thumpflow.core.metrics import Registry


def heartbeat_overdue(last_sign_of_life: float, period: float | None, now: float) -> bool:
    """True when nothing arrived for more than twice the heartbeat period (never without one)."""
    return period is not None and now - last_sign_of_life > 2 * period


@dataclass(slots=True, frozen=True)
class NotifyResult:
    """The answer to one notification; see the module docstring.

    `invalid`: not a usable notification (kept as reject `reject_id`, `reason`
    names where); `retry`: some events could not be admitted now (`reason`).
    """

    status: Literal["ok", "invalid", "retry"]
    type: str | None = None
    accepted: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()
    missed: tuple[int, ...] = ()
    reason: str | None = None
    reject_id: int | None = None


@dataclass(slots=True, frozen=True)
class SubscriptionView:
    """A subscription channel's liveness and gaps, for status and the API."""

    channel_id: str
    subscription_id: str
    status: str | None
    handshake_at: float | None
    last_heartbeat_at: float | None
    last_notification_at: float | None
    heartbeat_period: float | None
    heartbeat_overdue: bool
    last_event_number: int | None
    missed_events: tuple[int, ...]


class SubscriptionMetrics:
    """The families of every subscription channel (bound per channel by `labels`)."""

    def __init__(self, registry: Registry) -> None:
        channel = ("channel",)
        self.last_heartbeat = registry.gauge(
            "thumpflow_subscription_last_heartbeat_timestamp_seconds",
            "When the last heartbeat notification arrived (Unix time).",
            channel,
        )
        self.overdue = registry.gauge(
            "thumpflow_subscription_heartbeat_overdue",
            "1 while no notification arrived for over twice the heartbeat period.",
            channel,
        )
        self.missed = registry.counter(
            "thumpflow_subscription_missed_events_total",
            "Event numbers found missing (gaps), before any recovery with $events.",
            channel,
        )
        self.notifications = registry.counter(
            "thumpflow_subscription_notifications_total",
            "Notifications received, by type.",
            (*channel, "type"),
        )
