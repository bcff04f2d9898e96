"""A real API listener on loopback for an in-process engine, with a client holding a token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from thumpflow.api.app import build_app
from thumpflow.api.auth import Authenticator
from thumpflow.api.server import serve
from thumpflow.core.access import Role, new_token, token_hash
from thumpflow.runtime.engine import Engine


async def issue(engine: Engine, role: Role, name: str | None = None) -> str:
    """A new token of `role`, stored hashed in the engine's store."""
    token = new_token()
    await engine.store.add_token(
        name or f"test-{role.value}", role, token_hash(token), "test", engine.clock.now()
    )
    return token


@asynccontextmanager
async def api_client(
    engine: Engine, role: Role = Role.ADMIN
) -> AsyncIterator[aiohttp.ClientSession]:
    """Serve the engine's API on an ephemeral loopback port; a session with a `role` token."""
    token = await issue(engine, role)
    server = await serve(build_app(engine, Authenticator(engine.store)), "127.0.0.1", 0)
    session = aiohttp.ClientSession(
        base_url=f"http://127.0.0.1:{server.port}",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        yield session
    finally:
        await session.close()
        await server.close()
