"""The HTTP API application (ASGI): routers, error bodies and the OpenAPI document.

The OpenAPI document is served at `/api/openapi.json` to any authenticated
caller (like every route but `/api/health`: an unauthenticated caller learns
nothing about the installation); every route declares its request and
response bodies, so the document is the contract the tests fuzz.
Errors are JSON `{"detail": ...}`; a request that fails validation is
422 naming the field; a store that cannot be reached or written (a database
failover in progress) is 503 with `Retry-After`, for every route, so nothing
was changed and the caller may try again; an unexpected failure is 500 with
no detail (the log has the exception type and frames, never its text, see
`cli.logs`).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from thumpflow.api.auth import Authenticator, current_principal
from thumpflow.api.contract import document_answers
from thumpflow.api.routes import (
    alerts,
    browse,
    cluster,
    config,
    dashboard,
    ingest,
    modes,
    operations,
    overview,
    rejects,
    subscriptions,
    targets,
    tokens,
    views,
)
from thumpflow.core.access import Principal
from thumpflow.core.errors import StoreError
from thumpflow.runtime.engine import Engine

log = logging.getLogger("thumpflow.api")

# Seconds a caller is asked to wait when the store cannot be read or written.
STORE_RETRY_AFTER = 5


def build_app(engine: Engine, authenticator: Authenticator) -> FastAPI:
    """The API for `engine`, with callers resolved by `authenticator`."""
    app = FastAPI(
        title="thumpflow",
        version="1",
        summary="Healthcare integration engine: operate flow channels and batch jobs.",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.authenticator = authenticator
    app.include_router(operations.router)
    app.include_router(ingest.router)
    app.include_router(subscriptions.router)
    app.include_router(overview.router)
    app.include_router(dashboard.router)
    app.include_router(browse.router)
    app.include_router(targets.router)
    app.include_router(tokens.router)
    app.include_router(alerts.router)
    app.include_router(config.router)
    app.include_router(rejects.router)
    app.include_router(views.router)
    app.include_router(cluster.router)
    app.include_router(modes.router)
    document_answers(app)

    @app.get("/api/openapi.json", include_in_schema=False)
    async def _openapi(_: Annotated[Principal, Depends(current_principal)]) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.exception_handler(StoreError)
    async def _store_unavailable(request: Request, exc: StoreError) -> JSONResponse:
        log.error(
            "api: %s %s: the store is unavailable (%s)",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return JSONResponse(
            {"detail": "the store is unavailable; nothing was changed, try again later"},
            status_code=503,
            headers={"Retry-After": str(STORE_RETRY_AFTER)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("api: %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error; see the engine log"}, status_code=500)

    return app
