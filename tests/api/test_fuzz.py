"""The API's OpenAPI document, fuzzed with schemathesis against a real served API.

A real engine (store, MLLP channel, HTTP receiver) serves its API on a
loopback port; a few messages are admitted first so searches find data.
Every operation of `/api/openapi.json` is then called with generated
requests, valid and invalid (bounded: `EXAMPLES` per operation and mode):

- as admin: no 5xx, the status code, content type and body conform to the
  document, and invalid input is refused with a 4xx;
- as viewer: the same, and every act (POST but signing in) and every payload view is 403;
- with no token (valid requests) and with an unknown token (invalid
  requests): every operation except `/api/health` answers 401, before the
  request's body or parameters are even looked at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import Case, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.test_browse import adt, destinations
from tests.api_support import issue
from tests.e2e.harness import outbox_drained, running_engine
from tests.e2e.procs import send_in_order
from thumpflow.api.app import build_app
from thumpflow.api.auth import Authenticator
from thumpflow.api.server import serve
from thumpflow.core.access import Role
from thumpflow.testing.http_receiver import HttpReceiver

EXAMPLES = 15
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
PUBLIC = {("GET", "/api/health")}

Check = Callable[[Case, Response], None]


def _fuzz(
    base_url: str,
    token: str | None,
    modes: tuple[GenerationMode, ...],
    check: Check,
    reader: str,
) -> list[str]:
    """Run every operation's generated cases; the failures, one line each.

    The document itself is read with `reader`'s token (it needs one, like
    every route but the health check)."""
    schema = schemathesis.openapi.from_url(
        f"{base_url}/api/openapi.json", headers={"Authorization": f"Bearer {reader}"}
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    failures: list[str] = []
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis.settings(
                max_examples=EXAMPLES,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Case) -> None:
                response = case.call(base_url=base_url, headers=headers, session=session)
                check(case, response)

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                continue  # nothing to make invalid (no parameters, no body)
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.method.upper()} {operation.path} ({mode}): {exc}")
    return failures


def _conforms(case: Case, response: Response) -> None:
    checks = list(CONFORMANCE)
    if case.meta is not None and case.meta.generation.mode is GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)
    case.validate_response(response, checks=checks)


def _viewer(case: Case, response: Response) -> None:
    case.validate_response(response, checks=CONFORMANCE)
    signing_in = case.path == "/api/session"
    is_act = case.method.upper() == "POST" or case.path.endswith("/payload")
    if is_act and not signing_in:
        assert response.status_code == 403, (case.method, case.path, response.status_code)


def _refused(case: Case, response: Response) -> None:
    if (case.method.upper(), case.path) in PUBLIC:
        assert response.status_code == 200
        return
    assert response.status_code == 401, (
        case.method,
        case.formatted_path,
        response.status_code,
        response.text[:200],
    )
    assert response.headers.get("www-authenticate") == ["Bearer"]


def test_the_openapi_document_holds_under_fuzzing(tmp_path: Path) -> None:
    async def main() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        try:
            async with running_engine(tmp_path, destinations(receiver.url)) as (engine, port):
                await send_in_order(port, [adt(f"F-{i}", f"ZQX9{i}") for i in range(3)])
                await outbox_drained(engine, "ehr")
                admin = await issue(engine, Role.ADMIN)
                viewer = await issue(engine, Role.VIEWER)
                server = await serve(build_app(engine, Authenticator(engine.store)), "127.0.0.1", 0)
                base = f"http://127.0.0.1:{server.port}"
                both = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                try:
                    runs: list[tuple[str, str | None, Any, Check]] = [
                        ("admin", admin, both, _conforms),
                        ("viewer", viewer, (GenerationMode.POSITIVE,), _viewer),
                        ("no token", None, (GenerationMode.POSITIVE,), _refused),
                        ("unknown token", "tf_not-a-token", (GenerationMode.NEGATIVE,), _refused),
                    ]
                    report = []
                    for who, token, modes, check in runs:
                        failed = await asyncio.to_thread(_fuzz, base, token, modes, check, viewer)
                        report += [f"[{who}] {line}" for line in failed]
                    assert not report, "\n\n".join(report)
                    anonymous = await asyncio.to_thread(requests.get, f"{base}/api/openapi.json")
                    assert anonymous.status_code == 401
                finally:
                    await server.close()
        finally:
            await receiver.close()

    asyncio.run(main())
