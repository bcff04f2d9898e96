"""Alerts: writer operations and row mapping.

The write functions run on the writer thread inside its transaction (one
savepoint per call, see `thumpflow.store.ops`); each transition writes its audit entry
in the same transaction. The partial unique index `alerts_active` keeps at
most one active alert per (kind, subject).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thumpflow.core.alerts import Alert, AlertKind, Severity
from thumpflow.store.ops import WriteContext
from thumpflow.store.rows import ALERT_COLUMNS, alert_from_row

_SELECT = f"SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id = ?"
_ACTOR = "thumpflow"


@dataclass(slots=True, frozen=True)
class RaiseAlert:
    kind: AlertKind
    subject: str
    severity: Severity
    message: str
    at: float


@dataclass(slots=True, frozen=True)
class ClearAlert:
    alert_id: int
    at: float


@dataclass(slots=True, frozen=True)
class AcknowledgeAlert:
    alert_id: int
    actor: str
    reason: str
    at: float


def raise_alerts(context: WriteContext, calls: list[RaiseAlert]) -> list[Any]:
    """Insert alerts not already active; answer (alert, raised) for each."""
    conn = context.conn
    answers: list[Any] = []
    for call in calls:
        active = conn.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts"
            " WHERE kind = ? AND subject = ? AND cleared_at IS NULL",
            (call.kind.value, call.subject),
        ).fetchone()
        if active is not None:
            answers.append((alert_from_row(active), False))
            continue
        cursor = conn.execute(
            "INSERT INTO alerts (kind, subject, severity, message, raised_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING alert_id",
            (call.kind.value, call.subject, call.severity.value, call.message, call.at),
        )
        alert_id = int(cursor.fetchone()[0])
        context.audit.append(
            [(call.at, _ACTOR, "alert.raised", f"alert:{alert_id}", _detail(call.kind, call))]
        )
        alert = Alert(alert_id, call.kind, call.subject, call.severity, call.message, call.at)
        answers.append((alert, True))
    return answers


def clear_alerts(context: WriteContext, calls: list[ClearAlert]) -> list[Any]:
    """Clear active alerts; answer the cleared alert, or None when it was not active."""
    conn = context.conn
    answers: list[Any] = []
    for call in calls:
        cursor = conn.execute(
            "UPDATE alerts SET cleared_at = ? WHERE alert_id = ? AND cleared_at IS NULL",
            (call.at, call.alert_id),
        )
        if cursor.rowcount != 1:
            answers.append(None)
            continue
        alert = alert_from_row(conn.execute(_SELECT, (call.alert_id,)).fetchone())
        detail = _detail(alert.kind, alert)
        context.audit.append([(call.at, _ACTOR, "alert.cleared", f"alert:{call.alert_id}", detail)])
        answers.append(alert)
    return answers


def acknowledge_alerts(context: WriteContext, calls: list[AcknowledgeAlert]) -> list[Any]:
    """Stamp alerts acknowledged (the latest acknowledgement wins); None when unknown."""
    conn = context.conn
    answers: list[Any] = []
    for call in calls:
        cursor = conn.execute(
            "UPDATE alerts SET acknowledged_by = ?, acknowledged_at = ?, ack_reason = ?"
            " WHERE alert_id = ?",
            (call.actor, call.at, call.reason, call.alert_id),
        )
        if cursor.rowcount != 1:
            answers.append(None)
            continue
        context.audit.append(
            [(call.at, call.actor, "alert.acknowledged", f"alert:{call.alert_id}", call.reason)]
        )
        answers.append(alert_from_row(conn.execute(_SELECT, (call.alert_id,)).fetchone()))
    return answers


def _detail(kind: AlertKind, what: RaiseAlert | Alert) -> str:
    return f"{kind.value} {what.subject}: {what.message}"
