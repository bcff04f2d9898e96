"""A FHIR reject from HTTP ingest, fixed and reprocessed from its dashboard page.

An in-process engine whose channel takes HTTP ingest only and archives to a
file. A FHIR Observation with an invalid status is POSTed: 400, kept. An
operator opens it on its page (audited), the editor holds the JSON as
received, reprocessing it unchanged is refused again by R4 validation
(named by element path), and the status fixed is accepted as a FHIR event,
named on the page, and archived.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from tests.api_support import issue
from tests.browser import chromium
from tests.dashboard.test_browser import sign_in
from tests.dashboard.test_browser_acts import act
from thumpflow.api.app import build_app
from thumpflow.api.auth import Authenticator
from thumpflow.api.server import serve
from thumpflow.config import parse_config
from thumpflow.core.access import Role
from thumpflow.runtime.engine import Engine

CONFIG = """\
version: 1
store: {{path: {db}}}
channels:
  - id: web
    http_ingest: {{enabled: true}}
    destinations:
      - {{id: archive, type: file, path: {out}, format: jsonl}}
"""

OBSERVATION = {
    "resourceType": "Observation",
    "status": "done-ish",
    "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
    "subject": {"reference": "Patient/p7"},
}


def test_a_fhir_reject_is_refused_as_kept_and_accepted_edited_from_its_page(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        out = tmp_path / "archive.jsonl"
        engine = Engine(parse_config(CONFIG.format(db=tmp_path / "web.db", out=out)))
        await engine.start()
        server = None
        try:
            server = await serve(build_app(engine, Authenticator(engine.store)), "127.0.0.1", 0)
            url = f"http://127.0.0.1:{server.port}"
            token = await issue(engine, Role.OPERATOR, "lab-operator")
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"{url}/api/channels/web/messages",
                    data=json.dumps(OBSERVATION),
                    headers=headers,
                ) as answer,
            ):
                assert answer.status == 400
            ((reject_id, _),) = await engine.store.rejects("web", 10)
            async with chromium() as page:
                await sign_in(page, url, token)
                await page.goto(f"{url}/#/reject/{reject_id}")
                await page.wait_for("document.getElementById('open-reject') !== null")
                await act(page, "#open-reject", "the lab asks why it was refused")
                shown = await page.evaluate("document.getElementById('reject-body').value")
                assert json.loads(shown) == OBSERVATION

                await act(page, "#reprocess", "try again as received")
                refused = await page.text("#reprocess-answer")
                assert refused.startswith("Refused again: invalid FHIR: Observation.status"), (
                    refused
                )
                assert "done-ish" not in refused and "It is kept as a new reject." in refused

                fixed = shown.replace('"done-ish"', '"final"')
                await page.evaluate(
                    f"document.getElementById('reject-body').value = {json.dumps(fixed)}"
                )
                accepted = await act(page, "#reprocess", "status confirmed final")
                assert accepted.startswith("Accepted by channel web as event "), accepted
                event_id = accepted.removeprefix("Accepted by channel web as event ").rstrip(".")
                event = await engine.store.event(event_id)
                assert event is not None and event.content_type == "application/fhir+json"
                for _ in range(300):
                    if out.exists() and event_id in out.read_text():
                        break
                    await asyncio.sleep(0.05)
                assert event_id in out.read_text()
                assert not page.errors
        finally:
            if server is not None:
                await server.close()
            await engine.stop()

    asyncio.run(scenario())
