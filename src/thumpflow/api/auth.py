"""Authentication and authorization for the HTTP API.

Every endpoint but `/api/health` needs a bearer credential: an API token
issued by thumpflow (looked up by its SHA-256 hash) or, when configured, an
OpenID Connect access token (`api.oidc`). A missing or unknown credential is
answered 401 with `WWW-Authenticate: Bearer`; a known caller whose role lacks
the endpoint's permission gets 403. Neither answer says which tokens exist.

At first start the engine issues one admin token and writes it, readable only
by its owner, to `api.admin_token_file`; the store keeps its hash only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from thumpflow.core.access import Permission, Principal, Role, new_token, token_hash
from thumpflow.core.clock import Clock
from thumpflow.core.ports import AccessStore

log = logging.getLogger("thumpflow.api")

BOOTSTRAP_ACTOR = "thumpflow"


class BearerVerifier(Protocol):
    """Turns a bearer credential that is not a thumpflow token into a principal."""

    async def verify(self, credential: str) -> Principal | None: ...


class Authenticator:
    """Resolves a bearer credential: thumpflow tokens first, then OpenID Connect."""

    def __init__(self, store: AccessStore, oidc: BearerVerifier | None = None) -> None:
        self._store = store
        self._oidc = oidc

    async def authenticate(self, credential: str) -> Principal | None:
        token = await self._store.token_by_hash(token_hash(credential))
        if token is not None:
            return Principal(name=token.name, role=token.role, via="token")
        if self._oidc is not None:
            return await self._oidc.verify(credential)
        return None


_bearer = HTTPBearer(auto_error=False, description="A thumpflow API token or an OIDC token.")


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """The authenticated caller, or 401."""
    authenticator: Authenticator = request.app.state.authenticator
    principal = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        principal = await authenticator.authenticate(credentials.credentials)
    if principal is None:
        raise HTTPException(
            status_code=401,
            detail="a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, who must hold `permission` (else 403)."""

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if not principal.may(permission):
            act = permission.value.replace("_", " ")
            raise HTTPException(403, f"role {principal.role.value!r} may not {act}")
        return principal

    return dependency


Reader = Annotated[Principal, Depends(require(Permission.READ))]
Operator = Annotated[Principal, Depends(require(Permission.ACT))]
Administrator = Annotated[Principal, Depends(require(Permission.ADMINISTER))]


async def ensure_admin_token(store: AccessStore, path: Path, clock: Clock) -> bool:
    """Issue the first admin token when no active admin token exists.

    The token is written to `path` (mode 0600, created atomically); only its
    hash is stored, after the file is in place: a crash between the two leaves
    a file whose token does not work, and the next start issues a new one.
    Returns True when a token was issued. With an active admin token in the
    store nothing happens, even if the file is gone (`thumpflow tokens create
    --role admin` with the engine stopped issues another).
    """
    if any(t.role is Role.ADMIN and t.revoked_at is None for t in await store.tokens()):
        return False
    token = new_token()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    await store.add_token("admin", Role.ADMIN, token_hash(token), BOOTSTRAP_ACTOR, clock.now())
    log.info("issued the first admin API token; it is in %s (readable by its owner only)", path)
    return True
