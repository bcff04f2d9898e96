"""Alerts: a condition an operator should know about, raised once and cleared once.

An alert is about one subject (a destination, channel or job id, `store`, or
a subscription id) and one kind. While its condition holds there is exactly
one active alert for (kind, subject): raising it again changes nothing, so a
condition that lasts hours is one alert, not a storm. When the condition
stops, the alert is cleared (`cleared_at` set) and stays listed as recent.
An operator may acknowledge an active alert (with a reason, audited); that
does not clear it. Messages name ids and figures only, never patient data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class AlertKind(Enum):
    LATENCY_BUDGET = "latency_budget"
    DEAD_LETTER_GROWTH = "dead_letter_growth"
    CIRCUIT_OPEN = "circuit_open"
    ZERO_RECORD_BATCH = "zero_record_batch"
    DISK_NEARLY_FULL = "disk_nearly_full"
    HEARTBEAT_MISSING = "heartbeat_missing"
    SUBSCRIPTION_GAP = "subscription_gap"
    CONNECTION_LIMIT = "connection_limit"
    CONTROL_ID_REUSED = "control_id_reused"
    CENSUS_DRIFT = "census_drift"


class Severity(Enum):
    WARNING = "warning"
    CRITICAL = "critical"


# Kinds the engine evaluates itself; others (heartbeat) are raised and cleared
# by the component that watches for them.
EVALUATED_KINDS = frozenset(
    {
        AlertKind.LATENCY_BUDGET,
        AlertKind.DEAD_LETTER_GROWTH,
        AlertKind.CIRCUIT_OPEN,
        AlertKind.ZERO_RECORD_BATCH,
        AlertKind.DISK_NEARLY_FULL,
        AlertKind.CONNECTION_LIMIT,
        AlertKind.CONTROL_ID_REUSED,
        AlertKind.CENSUS_DRIFT,
    }
)


@dataclass(slots=True, frozen=True)
class Condition:
    """A condition that holds now: what an alert of this kind and subject would say."""

    kind: AlertKind
    subject: str
    severity: Severity
    message: str

    @property
    def key(self) -> tuple[AlertKind, str]:
        return (self.kind, self.subject)


@dataclass(slots=True, frozen=True)
class Alert:
    """An alert as recorded."""

    alert_id: int
    kind: AlertKind
    subject: str
    severity: Severity
    message: str
    raised_at: float
    cleared_at: float | None = None
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    ack_reason: str | None = None

    @property
    def key(self) -> tuple[AlertKind, str]:
        return (self.kind, self.subject)

    @property
    def active(self) -> bool:
        return self.cleared_at is None


def notice(alert: Alert, transition: str) -> dict[str, Any]:
    """The JSON body sent to webhooks for a `raised` or `cleared` transition."""
    return {
        "alert_id": alert.alert_id,
        "transition": transition,
        "kind": alert.kind.value,
        "subject": alert.subject,
        "severity": alert.severity.value,
        "message": alert.message,
        "raised_at": alert.raised_at,
        "cleared_at": alert.cleared_at,
    }
