"""Bodies of the ingest endpoints (HTTP ingest, FHIR Subscriptions) and FHIR error answers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from thumpflow.fhir import FhirIssue

_ISSUE_TYPES = {
    "required": "required",
    "value": "value",
    "code-invalid": "code-invalid",
    "structure": "structure",
    "array-expected": "structure",
    "array-not-allowed": "structure",
    "unknown-element": "structure",
    "type": "structure",
    "cardinality": "structure",
}


class EventLinks(BaseModel):
    event: str


class Accepted(BaseModel):
    """A message durably committed as an event; a repeat of its key is answered the same."""

    channel: str
    event_id: str
    links: EventLinks


class Hl7Problem(BaseModel):
    """A refused request: what is wrong and, for a refused message, where, and its reject id.

    A message that was read but refused is kept as reject `reject_id`; a
    request refused before its body was read (a bad header) has none.
    """

    detail: str
    segment: str | None = None
    segment_index: int | None = None
    field: int | None = None
    reject_id: int | None = None


class NotificationAnswer(BaseModel):
    """What a Subscription notification produced: its type, events admitted, duplicates."""

    type: str
    accepted: list[str]
    duplicates: list[str]
    missed: list[int]


class SubscriptionState(BaseModel):
    """A subscription channel's liveness and gaps, as last seen (this process, since start)."""

    channel: str
    subscription_id: str
    status: str | None
    handshake_at: float | None
    last_heartbeat_at: float | None
    last_notification_at: float | None
    heartbeat_period: float | None
    heartbeat_overdue: bool
    last_event_number: int | None
    missed_events: list[int]


def operation_outcome(
    issues: list[FhirIssue] | tuple[FhirIssue, ...] = (),
    *,
    diagnostics: str | None = None,
    code: str = "invalid",
    note: str | None = None,
) -> dict[str, Any]:
    """An OperationOutcome: one issue per finding (with its element path), or one from words."""
    found: list[dict[str, Any]] = [
        {
            "severity": issue.severity,
            "code": _ISSUE_TYPES.get(issue.code, "invalid"),
            "details": {"text": issue.code},
            "diagnostics": issue.message,
            "expression": [issue.path],
        }
        for issue in issues
    ]
    if diagnostics is not None:
        found.append({"severity": "error", "code": code, "diagnostics": diagnostics})
    if note is not None:
        found.append({"severity": "information", "code": "informational", "diagnostics": note})
    return {"resourceType": "OperationOutcome", "issue": found}
