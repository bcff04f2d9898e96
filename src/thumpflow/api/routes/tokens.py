"""API tokens and sign-in: issue, list and revoke tokens; record a login.

Issuing and revoking are administrator acts with a reason, audited in the
same commit as the change (`token.issued`, `token.revoked`). A new token is
answered once and never again: the store keeps its SHA-256 only, and the
listing shows names, roles and times, never a token or a hash. A revoked
token fails its next request (the lookup reads the committed row).
`POST /api/session` is what the dashboard calls at sign-in: it records a
`login` audit entry with the caller's name and how they authenticated.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from thumpflow.api.auth import Administrator, current_principal
from thumpflow.api.auth_first import AuthFirstRoute
from thumpflow.api.deps import EngineDep
from thumpflow.api.schemas import Problem, StrictBody
from thumpflow.core.access import Principal, Role, new_token, token_hash
from thumpflow.core.event import AuditEntry

router = APIRouter(tags=["access"], route_class=AuthFirstRoute)


class TokenRequest(StrictBody):
    """A token to issue: who it is for, its role, and why (audited)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")
    role: Role
    reason: str = Field(min_length=1, max_length=500, description="Why; lands in the audit.")


class IssuedToken(BaseModel):
    """The new token, shown this once; keep it in a secret store."""

    token_id: int
    name: str
    role: Role
    token: str


class TokenView(BaseModel):
    token_id: int
    name: str
    role: Role
    created_at: float
    created_by: str
    revoked_at: float | None


class Tokens(BaseModel):
    tokens: list[TokenView]


class RevokeRequest(StrictBody):
    reason: str = Field(min_length=1, max_length=500, description="Why; lands in the audit.")


class Revoked(BaseModel):
    token_id: int
    revoked: bool


class Session(BaseModel):
    name: str
    role: Role
    via: str


@router.post("/api/tokens", status_code=201, responses={400: {"model": Problem}})
async def issue_token(
    body: TokenRequest, engine: EngineDep, principal: Administrator
) -> IssuedToken:
    """Issue a token with a role; the answer is the only time the token is shown."""
    token = new_token()
    token_id = await engine.store.add_token(
        body.name,
        body.role,
        token_hash(token),
        principal.name,
        engine.clock.now(),
        reason=body.reason.strip(),
    )
    return IssuedToken(token_id=token_id, name=body.name, role=body.role, token=token)


@router.get("/api/tokens")
async def list_tokens(engine: EngineDep, _: Administrator) -> Tokens:
    """Every token issued, revoked ones included, oldest first; never a token or its hash."""
    return Tokens(
        tokens=[
            TokenView(
                token_id=token.token_id,
                name=token.name,
                role=token.role,
                created_at=token.created_at,
                created_by=token.created_by,
                revoked_at=token.revoked_at,
            )
            for token in await engine.store.tokens()
        ]
    )


@router.post("/api/tokens/{token_id}/revoke", responses={404: {"model": Problem}})
async def revoke_token(
    token_id: int, body: RevokeRequest, engine: EngineDep, principal: Administrator
) -> Revoked:
    """Revoke an active token at once (audited with the reason); 404 if none is active."""
    revoked = await engine.store.revoke_token(
        token_id, principal.name, body.reason.strip(), engine.clock.now()
    )
    if not revoked:
        raise HTTPException(404, f"no active token {token_id}")
    return Revoked(token_id=token_id, revoked=True)


@router.post("/api/session")
async def sign_in(
    engine: EngineDep, principal: Annotated[Principal, Depends(current_principal)]
) -> Session:
    """Record a `login` for the caller (any role) and say who they are."""
    await engine.store.append_audit(
        AuditEntry(
            at=engine.clock.now(),
            actor=principal.name,
            action="login",
            subject=f"principal:{principal.name}",
            detail=f"via {principal.via} as {principal.role.value}",
        )
    )
    return Session(name=principal.name, role=principal.role, via=principal.via)
