"""HTTP plumbing of the simulated EHR: reading a request's resource, writing JSON and
OperationOutcome responses, and dropping a connection on purpose.

A body that is not JSON, not a resource, or XML is refused with FhirError
400/415 before anything runs, so a bad request writes nothing. `dropped`
aborts the connection without a response (a client sees a disconnect,
as after a crash); the fault that asks for it decides whether a write was
committed first.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, NoReturn

from aiohttp import web

from thumpflow.testing.ehr._outcome import FhirError, operation_outcome

FHIR_JSON = "application/fhir+json"


async def read_resource(request: web.Request) -> dict[str, Any] | None:
    """The JSON resource of a POST/PUT (None for other methods); FhirError 400/415."""
    if request.method not in ("POST", "PUT") or request.path.endswith("/_search"):
        return None
    if "xml" in request.content_type:
        raise FhirError(415, "not-supported", "only JSON is accepted")
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise FhirError(400, "structure", f"the body is not JSON: {err}") from None
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirError(
            400, "structure", "the body must be a resource (a JSON object with resourceType)"
        )
    return body


async def form_text(request: web.Request) -> str:
    """A form-encoded body as text (a POST `_search`); empty for any other body."""
    if request.content_type != "application/x-www-form-urlencoded":
        return ""
    return (await request.read()).decode("utf-8", errors="replace")


def json_response(
    body: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str | None = None,
) -> web.Response:
    """`body` as compact UTF-8 JSON (`application/json` unless `content_type` says otherwise)."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return web.Response(
        text=text,
        status=status,
        headers=headers,
        content_type=content_type or "application/json",
        charset="utf-8",
    )


def fhir_error(err: FhirError) -> web.Response:
    """The OperationOutcome of `err` with its status."""
    return json_response(err.outcome(), status=err.status, content_type=FHIR_JSON)


def unauthorized(challenge: str, diagnostics: str) -> web.Response:
    """401 with a `login` OperationOutcome and `challenge` as WWW-Authenticate."""
    response = json_response(
        operation_outcome("login", diagnostics), status=401, content_type=FHIR_JSON
    )
    response.headers["WWW-Authenticate"] = challenge
    return response


def dropped(request: web.Request) -> NoReturn:
    """Close the connection with no response; the client sees a disconnect."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError
