"""The views over HTTP: bed board, census, transfer queue, ED boarding, dirty beds, outcomes.

Readable by every role (`read`). Patient identifiers are patient data: shown
only to roles with `read_patient_data`, masked for the rest (as everywhere
in the API). Every answer carries the views' commit position, the source
time of the newest applied event (`as_of`) and `lag`: seconds from the
newest applied event's receipt to now, when the views have applied one.
404 when the configuration has no `views:` section.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import Field

from thumpflow.api.auth import Operator, Reader
from thumpflow.api.auth_first import AuthFirstRoute
from thumpflow.api.deps import EngineDep
from thumpflow.api.masking import shown
from thumpflow.api.schemas import Problem, StrictBody
from thumpflow.core.access import Principal
from thumpflow.core.event import AuditEntry
from thumpflow.runtime.engine import Engine
from thumpflow.runtime.settlements import ConflictNotOpenError, settle_conflict
from thumpflow.views import read
from thumpflow.views.live import LiveViews

router = APIRouter(tags=["views"], route_class=AuthFirstRoute)
_NO_VIEWS: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}


def _views(engine: Engine) -> LiveViews:
    if engine.views is None:
        raise HTTPException(404, "no views are configured (add a `views:` section)")
    return engine.views


def _masked(principal: Principal, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for given in rows:
        row = dict(given)
        if row.get("patient") is not None:
            row["patient"] = shown(principal, row["patient"])
        if str(row.get("field", "")).startswith("patient.") and row.get("subject"):
            row["subject"] = shown(principal, row["subject"])
        out.append(row)
    return out


def _envelope(engine: Engine, views: LiveViews, **parts: Any) -> dict[str, Any]:
    projection = views.projection
    now = engine.clock.now()
    applied = projection.applied_at
    return {
        "position": projection.position,
        "as_of": projection.as_of,
        "lag": None if applied is None else max(0.0, now - applied),
        "now": now,
        **parts,
    }


@router.get("/api/views", responses=_NO_VIEWS)
async def summary(engine: EngineDep, _: Reader) -> dict[str, Any]:
    """Census by unit and the counts of writes not applied, with freshness."""
    views = _views(engine)
    counts = read.outcomes(views.projection)["counts"]
    return _envelope(engine, views, census=read.census(views.projection), outcomes=counts)


@router.get("/api/views/board", responses=_NO_VIEWS)
async def board(
    engine: EngineDep,
    principal: Reader,
    unit: Annotated[str | None, Query(max_length=64, description="One unit only.")] = None,
) -> dict[str, Any]:
    """One row per bed: status (HL7 table 0116), patient, since, source, as-of, lag."""
    views = _views(engine)
    rows = read.board(views.projection, unit)
    return _envelope(engine, views, beds=_masked(principal, rows))


@router.get("/api/views/census", responses=_NO_VIEWS)
async def census(engine: EngineDep, _: Reader) -> dict[str, Any]:
    """Per unit: occupied, open, unavailable, pending in, pending out, total beds."""
    views = _views(engine)
    return _envelope(engine, views, units=read.census(views.projection))


@router.get("/api/views/transfers", responses=_NO_VIEWS)
async def transfers(engine: EngineDep, principal: Reader) -> dict[str, Any]:
    """Pending transfers and discharges, oldest first."""
    views = _views(engine)
    rows = read.transfers(views.projection)
    return _envelope(engine, views, transfers=_masked(principal, rows))


@router.get("/api/views/boarding", responses=_NO_VIEWS)
async def boarding(engine: EngineDep, principal: Reader) -> dict[str, Any]:
    """Admitted patients still in an ED unit, with the time since the admit decision."""
    views = _views(engine)
    rows = read.boarding(views.projection, engine.clock.now())
    return _envelope(engine, views, boarding=_masked(principal, rows))


@router.get("/api/views/dirty-beds", responses=_NO_VIEWS)
async def dirty_beds(engine: EngineDep, _: Reader) -> dict[str, Any]:
    """Free beds waiting for cleaning, longest waiting first."""
    views = _views(engine)
    rows = read.dirty_beds(views.projection, engine.clock.now())
    return _envelope(engine, views, beds=rows)


@router.get("/api/views/outcomes", responses=_NO_VIEWS)
async def outcomes(engine: EngineDep, principal: Reader) -> dict[str, Any]:
    """Writes not applied (superseded, rejected, conflicts, displaced) and the rule that decided."""
    views = _views(engine)
    found = read.outcomes(views.projection)
    return _envelope(
        engine,
        views,
        counts=found["counts"],
        recent=_masked(principal, found["recent"]),
        conflicts=_masked(principal, found["conflicts"]),
    )


@router.post("/api/views/rebuild", responses=_NO_VIEWS)
async def rebuild(engine: EngineDep, principal: Operator) -> dict[str, Any]:
    """Rebuild the views from the event log (an audited act); the number of events read."""
    views = _views(engine)
    applied = await views.rebuild()
    await engine.store.append_audit(
        AuditEntry(
            at=engine.clock.now(),
            actor=principal.name,
            action="views_rebuilt",
            subject="views",
            detail=f"{applied} events",
        )
    )
    return _envelope(engine, views, events=applied)


class SettleRequest(StrictBody):
    """How a person settles an open conflict, and why (audited under the caller's name)."""

    accept: bool = Field(description="true: apply the conflicting write; false: dismiss it.")
    reason: str = Field(min_length=1, max_length=500, description="Why; lands in the audit.")


@router.post("/api/views/conflicts/{conflict_id}/settle", responses=_NO_VIEWS)
async def settle(
    conflict_id: str, body: SettleRequest, engine: EngineDep, principal: Operator
) -> dict[str, Any]:
    """Settle an open conflict (`id` from `/api/views/outcomes`): an audited act, applied by
    the views in commit order; 404 when it is not open (settled or overtaken)."""
    _views(engine)
    try:
        event_id, again = await settle_conflict(
            engine,
            conflict_id,
            accept=body.accept,
            actor=principal.name,
            reason=body.reason.strip(),
        )
    except ConflictNotOpenError:
        raise HTTPException(404, "no open conflict has this id (settled or overtaken)") from None
    return {"event_id": event_id, "accepted": body.accept, "duplicate": again}
