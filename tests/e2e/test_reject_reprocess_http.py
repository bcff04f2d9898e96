"""Rejects that came in over HTTP ingest are reprocessed through HTTP ingest's path.

A real engine process with a channel taking HTTP ingest only and delivering
to a real HTTP receiver process. A FHIR Observation with an invalid status
is POSTed as `application/fhir+json`: 400, kept as a reject with the element
path. `thumpflow rejects reprocess` sends it again as kept: refused again by
R4 validation (not parsed as HL7 v2), kept as a new reject. Edited (the
status fixed), it is accepted as a FHIR event under its original sender and
delivered as sent; the same edit again is the same event (a duplicate, not a
second delivery). An HL7 v2 message POSTed without MSH-9 is fixed and
reprocessed through the API the same way (accepted, with its event id and
no ACK code). The originals stay, and every act is in the audit trail.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.procs import free_port, start_engine, start_receiver
from tests.e2e.test_reject_reprocess import thumpflow

CONFIG = """\
store: {{path: var/t.db}}
api: {{port: {api}}}
channels:
  - id: web
    http_ingest: {{enabled: true}}
    destinations:
      - id: ehr
        type: http
        url: http://127.0.0.1:{receiver}/deliveries
        format: raw
        retry: {{base: 50ms, cap: 200ms}}
"""

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "done-ish",
    "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
    "subject": {"reference": "Patient/p42"},
    "valueQuantity": {"value": 7.2, "unit": "mmol/L"},
}

ADT_WITHOUT_TYPE = (
    "MSH|^~\\&|REG|GEN|ENG|GEN|20261205110000|||WEB1|P|2.5\r"
    "PID|1||MRN42^^^GEN^MR||Doe^Ana||19800101|F\r"
)


def applied(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def wait_applied(log: Path, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while len(applied(log)) < count:
        assert time.monotonic() < deadline, f"the receiver got {count} deliveries"
        time.sleep(0.05)
    return applied(log)


def test_a_fhir_reject_from_http_ingest_is_refused_as_kept_and_accepted_edited(
    tmp_path: Path,
) -> None:
    api, port = free_port(), free_port()
    received = tmp_path / "applied.jsonl"
    receiver = start_receiver(port, received, tmp_path / "receiver.log")
    config = tmp_path / "thumpflow.yaml"
    config.write_text(CONFIG.format(api=api, receiver=port))
    engine = start_engine(config, api, tmp_path / "engine.log")
    base = f"http://127.0.0.1:{api}"
    try:
        token = (tmp_path / "var" / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}

        async def post(session: aiohttp.ClientSession, body: bytes, kind: str) -> Any:
            url = f"{base}/api/channels/web/messages"
            async with session.post(url, data=body, headers={"Content-Type": kind}) as answer:
                assert answer.status == 400, await answer.text()
                return await answer.json()

        async def refused() -> tuple[int, int]:
            async with aiohttp.ClientSession(headers=headers) as session:
                outcome = await post(
                    session, json.dumps(OBSERVATION).encode(), "application/fhir+json"
                )
                problem = await post(session, ADT_WITHOUT_TYPE.encode(), "text/plain")
            assert outcome["resourceType"] == "OperationOutcome"
            note = outcome["issue"][-1]["diagnostics"]
            return int(note.removeprefix("kept as reject ")), int(problem["reject_id"])

        fhir_reject, hl7_reject = asyncio.run(refused())
        listed = thumpflow(config, "rejects", "messages", "--contains", "invalid fhir")
        (row,) = listed.stdout.splitlines()[1:]
        assert row.split()[0] == str(fhir_reject) and "Observation.status" in row

        again = thumpflow(config, "rejects", "reprocess", str(fhir_reject), "--reason", "as is")
        assert again.returncode == 1, again.stdout + again.stderr
        answer = again.stdout.strip()
        assert answer.startswith(f"reject {fhir_reject} (as kept) -> channel web: refused: ")
        assert "invalid FHIR: Observation.status" in answer and "(kept as reject " in answer
        assert "MSH" not in answer and "done-ish" not in answer

        shown = thumpflow(
            config, "rejects", "message", str(fhir_reject), "--reason", "fix the lab's status"
        )
        assert json.loads(shown.stdout) == OBSERVATION
        fixed = tmp_path / "fixed.json"
        fixed.write_text(shown.stdout.replace('"done-ish"', '"final"'))
        edited = thumpflow(
            config, "rejects", "reprocess", str(fhir_reject), "--edit", str(fixed),
            "--reason", "status is final, confirmed with the lab",
        )  # fmt: skip
        assert edited.returncode == 0, edited.stdout + edited.stderr
        prefix = f"reject {fhir_reject} (edited) -> channel web: accepted as event "
        assert edited.stdout.startswith(prefix), edited.stdout
        event_id = edited.stdout.strip().removeprefix(prefix)
        (delivery,) = wait_applied(received, 1)
        assert delivery["event_id"] == event_id
        assert json.loads(delivery["body"])["status"] == "final"
        assert delivery["ordering_key"] == "Patient/p42"

        async def through_the_api() -> None:
            async with aiohttp.ClientSession(headers=headers) as session:
                url = f"{base}/api/rejects/{fhir_reject}/reprocess"
                body = {"reason": "pressed twice", "body": fixed.read_text()}
                async with session.post(url, json=body) as answer:
                    assert answer.status == 200, await answer.text()
                    assert await answer.json() == {
                        "reject_id": fhir_reject,
                        "channel_id": "web",
                        "edited": True,
                        "content_type": "application/fhir+json",
                        "status": "duplicate",
                        "accepted": True,
                        "ack_code": "",
                        "error": None,
                        "event_id": event_id,
                    }
                async with session.get(f"{base}/api/events/{event_id}/timeline") as answer:
                    event = (await answer.json())["event"]
                assert event["event_type"] == "fhir.Observation"
                assert event["source_system"] == "http:admin"
                url = f"{base}/api/events/{event_id}/payload?reason=check"
                async with session.get(url) as answer:
                    assert (await answer.json())["content_type"] == "application/fhir+json"

                fixed_adt = ADT_WITHOUT_TYPE.replace("|||WEB1|", "||ADT^A08^ADT_A01|WEB1|")
                body = {"reason": "MSH-9 added", "body": fixed_adt.replace("\r", "\n")}
                url = f"{base}/api/rejects/{hl7_reject}/reprocess"
                async with session.post(url, json=body) as answer:
                    done = await answer.json()
                assert (done["content_type"], done["status"], done["ack_code"]) == (
                    "x-application/hl7-v2+er7",
                    "accepted",
                    "",
                )
                assert done["event_id"] and done["event_id"] != event_id
                async with session.get(f"{base}/api/rejects?channel=web") as answer:
                    kept = {r["reject_id"] for r in (await answer.json())["rejects"]}
                assert {fhir_reject, hl7_reject} <= kept and len(kept) == 3

        asyncio.run(through_the_api())
        deliveries = wait_applied(received, 2)
        assert len(deliveries) == 2
        assert deliveries[1]["body"].startswith("MSH|^~\\&|REG|GEN|ENG|GEN|20261205110000||ADT^A08")
        assert "\n" not in deliveries[1]["body"]
        trail = thumpflow(config, "audit", "list", "--subject", f"reject:{fhir_reject}", "--json")
        actions = [(e["action"], e["actor"]) for e in json.loads(trail.stdout)]
        assert actions.count(("reject.reprocessed", "admin")) == 3
        assert ("payload.viewed", "admin") in actions
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=30)
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=30)
