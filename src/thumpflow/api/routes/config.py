"""Reload the configuration: an act (administrator role, a reason), audited.

`POST /api/config/reload` makes the engine read its configuration file again
and apply it channel by channel, as SIGHUP and `thumpflow reload` do
(`Engine.reload_file`). A file that does not validate, names a missing
secret or changes what only a restart changes is refused (422) with every
located problem, and the running configuration stays; the refusal is
audited as `config.reload_refused`, an applied change as `config.changed`,
both under the caller's name with the reason.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from thumpflow.api.auth import Administrator
from thumpflow.api.auth_first import AuthFirstRoute
from thumpflow.api.browse_schemas import ActRequest
from thumpflow.api.deps import EngineDep
from thumpflow.api.schemas import Problem
from thumpflow.core.errors import ConfigError, ThumpflowError
from thumpflow.core.event import AuditEntry

router = APIRouter(route_class=AuthFirstRoute)


class Reloaded(BaseModel):
    """What the reload did, by channel id."""

    unchanged: list[str]
    changed: list[str]
    removed: list[str]
    added: list[str]


@router.post(
    "/api/config/reload",
    tags=["configuration"],
    responses={422: {"model": Problem}, 409: {"model": Problem}},
)
async def reload_config(engine: EngineDep, principal: Administrator, body: ActRequest) -> Reloaded:
    """Read the configuration file again and apply it per channel (see the module)."""
    actor = principal.name
    await engine.store.append_audit(
        AuditEntry(engine.clock.now(), actor, "config.reload", "config", body.reason.strip())
    )
    try:
        plan = await engine.reload_file(actor)
    except ConfigError as err:
        raise HTTPException(422, "; ".join(err.problems)) from None
    except ThumpflowError as err:
        raise HTTPException(409, str(err)) from None
    return Reloaded(
        unchanged=list(plan.unchanged),
        changed=list(plan.changed),
        removed=list(plan.removed),
        added=list(plan.added),
    )
