"""Routes that authenticate before they read the request body.

FastAPI parses a JSON body before it resolves dependencies, so a caller with
no valid credential would learn from a 400/422 what the body should look
like. Routes of this class check the bearer credential first and answer 401
before touching the body; the route's own dependency then checks the
permission (403) as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from thumpflow.api.auth import current_principal

_bearer = HTTPBearer(auto_error=False)


class AuthFirstRoute(APIRoute):
    """An API route that answers 401 before parsing the body of an unauthenticated request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def authenticated_first(request: Request) -> Response:
            await current_principal(request, await _bearer(request))
            return await handler(request)

        return authenticated_first
