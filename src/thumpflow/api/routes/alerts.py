"""Alerts: list active and recent ones; acknowledge one (an audited act with a reason)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from thumpflow.api.auth import Operator, Reader
from thumpflow.api.auth_first import AuthFirstRoute
from thumpflow.api.deps import EngineDep
from thumpflow.api.schemas import Problem, StrictBody
from thumpflow.core.alerts import Alert

router = APIRouter(tags=["alerts"], route_class=AuthFirstRoute)


class AlertView(BaseModel):
    """An alert; its message names ids and figures only."""

    alert_id: int
    kind: str
    subject: str
    severity: str
    message: str
    active: bool
    raised_at: float
    cleared_at: float | None
    acknowledged_by: str | None
    acknowledged_at: float | None
    ack_reason: str | None


class Alerts(BaseModel):
    alerts: list[AlertView]


class AckRequest(StrictBody):
    reason: str = Field(min_length=1, max_length=500, description="Why; lands in the audit.")


def _view(alert: Alert) -> AlertView:
    return AlertView(
        alert_id=alert.alert_id,
        kind=alert.kind.value,
        subject=alert.subject,
        severity=alert.severity.value,
        message=alert.message,
        active=alert.active,
        raised_at=alert.raised_at,
        cleared_at=alert.cleared_at,
        acknowledged_by=alert.acknowledged_by,
        acknowledged_at=alert.acknowledged_at,
        ack_reason=alert.ack_reason,
    )


@router.get("/api/alerts")
async def list_alerts(
    engine: EngineDep,
    _: Reader,
    active: Annotated[bool, Query(description="Only active alerts.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Alerts:
    """Active alerts (newest first), then recently cleared ones (newest first)."""
    found = await engine.store.alerts(active_only=active, limit=limit)
    return Alerts(alerts=[_view(alert) for alert in found])


@router.post("/api/alerts/{alert_id}/ack", responses={404: {"model": Problem}})
async def acknowledge(
    alert_id: int, body: AckRequest, engine: EngineDep, principal: Operator
) -> AlertView:
    """Acknowledge an alert (it stays active until its condition stops); audited."""
    alert = await engine.alerts.acknowledge(alert_id, principal.name, body.reason.strip())
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return _view(alert)
