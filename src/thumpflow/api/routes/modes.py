"""The operating mode over HTTP: which mode is in force, since when and why; declaring one.

`GET /api/mode` is readable by every role. `POST /api/mode` is an act
(operator role and a reason, audited as `mode.changed` under the caller's
name): `normal`, `surge` or `diversion` holds until an operator declares
another; `auto` hands the choice back to the configured rules, which decide
at once. The answer says what is in force after the act and whether it
changed.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from thumpflow.api.auth import Operator, Reader
from thumpflow.api.auth_first import AuthFirstRoute
from thumpflow.api.browse_schemas import ActRequest
from thumpflow.api.deps import EngineDep
from thumpflow.api.schemas import Problem
from thumpflow.core.errors import StoreError
from thumpflow.core.modes import OperatingMode
from thumpflow.runtime.engine import Engine

router = APIRouter(tags=["mode"], route_class=AuthFirstRoute)


class ModeRuleView(BaseModel):
    id: str
    mode: str
    measure: str
    unit: str | None
    at_least: float | None
    at_most: float | None
    value: float | None = Field(description="The measure now, read from the views.")
    holding: bool


class ModeView(BaseModel):
    """The mode in force: since when, declared by an act or the rules, by whom, why."""

    mode: str = Field(description="`normal`, `surge` or `diversion`.")
    since: float
    origin: str = Field(description="`act` (an operator's; holds) or `rule` (the rules').")
    actor: str
    reason: str
    rule: str | None = Field(description="The rule that declared it, when the rules did.")
    deferred: list[str] = Field(description="Lanes not sent while this mode holds.")
    paced: list[str] = Field(description="Destinations sent to more slowly.")
    held: list[str] = Field(description="Destinations that send nothing while it holds.")
    rules: list[ModeRuleView]
    changed: bool | None = Field(default=None, description="After an act: did it change?")


class ModeRequest(ActRequest):
    """Declare a mode (`auto`: hand the choice back to the rules) and say why."""

    mode: Literal["normal", "surge", "diversion", "auto"]


def _view(engine: Engine, changed: bool | None = None) -> ModeView:
    return ModeView(**engine.modes.status(), changed=changed)


@router.get("/api/mode")
async def mode(engine: EngineDep, _: Reader) -> ModeView:
    """The operating mode in force, since when, why, and each rule's measure now."""
    return _view(engine)


@router.post("/api/mode", responses={503: {"model": Problem}})
async def declare(body: ModeRequest, engine: EngineDep, principal: Operator) -> ModeView:
    """Declare the operating mode (an audited act), or `auto` to let the rules decide."""
    chosen = None if body.mode == "auto" else OperatingMode(body.mode)
    try:
        _, changed = await engine.modes.declare(
            chosen, actor=principal.name, reason=body.reason.strip()
        )
    except StoreError as err:
        raise HTTPException(503, f"the mode could not be recorded: {err}") from None
    return _view(engine, changed)
