"""Mutual TLS, and the request headers, against a tiny aiohttp FHIR endpoint.

The endpoint requires a client certificate. The simulated EHR speaks plain
HTTP, so this one case uses its own TLS server; the test generates the
certificates.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.connectors.fhir.conftest import delivery, make_certs
from thumpflow.connectors.fhir import FhirDestination, FhirDestinationSpec
from thumpflow.core.outcome import Sent, Transient

BUNDLE = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [{"resource": {"resourceType": "Patient", "id": "p1"}}],
}


def test_mutual_tls(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    seen: list[tuple[Mapping[str, str], dict[str, Any]]] = []

    async def transaction(request: web.Request) -> web.Response:
        bundle = await request.json()
        seen.append((request.headers.copy(), bundle))
        entries = [{"response": {"status": "201 Created"}} for _ in bundle["entry"]]
        return web.json_response(
            {"resourceType": "Bundle", "type": "transaction-response", "entry": entries},
            content_type="application/fhir+json",
        )

    async def main() -> tuple[object, object, object]:
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(certs.server_cert, certs.server_key)
        server_ctx.load_verify_locations(cafile=certs.ca)
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        app = web.Application()
        app.router.add_post("/fhir", transaction)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = {"type": "fhir", "base_url": f"https://127.0.0.1:{port}/fhir"}
        good = FhirDestination(
            "ehr",
            FhirDestinationSpec.model_validate(
                {
                    **base,
                    "headers": {"X-Site": "north"},
                    "tls": {
                        "ca_file": str(certs.ca),
                        "cert_file": str(certs.client_cert),
                        "key_file": str(certs.client_key),
                    },
                }
            ),
        )
        anonymous = FhirDestination(
            "ehr", FhirDestinationSpec.model_validate({**base, "tls": {"ca_file": str(certs.ca)}})
        )
        untrusting = FhirDestination("ehr", FhirDestinationSpec.model_validate(base))
        results = []
        try:
            for dest in (good, anonymous, untrusting):
                await dest.start()
                (result,) = await asyncio.wait_for(dest.send([delivery(BUNDLE)]), 10)
                results.append(result)
                await dest.close()
        finally:
            await runner.cleanup()
        return results[0], results[1], results[2]

    accepted, anonymous, untrusting = asyncio.run(main())
    assert accepted == Sent("HTTP 200 transaction: 1 entries applied")
    assert isinstance(anonymous, Transient)
    assert isinstance(untrusting, Transient)
    ((headers, bundle),) = seen
    assert headers["X-Request-Id"] == "EV1.ehr"
    assert headers["Idempotency-Key"] == "EV1.ehr"
    assert headers["Content-Type"] == "application/fhir+json"
    assert headers["Accept"] == "application/fhir+json"
    assert headers["X-Site"] == "north"
    assert "Authorization" not in headers
    assert bundle["entry"][0]["request"] == {"method": "PUT", "url": "Patient/p1"}
