"""HTTP ingest through a real served API, a real engine (SQLite store) and a real HTTP receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.api_support import api_client, issue
from tests.e2e.harness import eventually, outbox_drained
from thumpflow.config import parse_config
from thumpflow.core.access import Role
from thumpflow.core.search import EventQuery, PauseKind
from thumpflow.runtime.engine import Engine
from thumpflow.testing.http_receiver import HttpReceiver

HL7 = {"Content-Type": "x-application/hl7-v2+er7"}
FHIR = {"Content-Type": "application/fhir+json"}

CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
channels:
  - id: web
    http_ingest: {{enabled: true, retry_after: 2}}
    destinations:
      - id: ehr
        type: http
        url: {url}
        format: raw
        retry: {{base: 20ms, cap: 100ms, max_attempts: 1000}}
        circuit_breaker: {{failure_threshold: 1000, cooldown: 100ms}}
        high_water: {high_water}
  - id: mllp-only
    source: {{port: 0, host: 127.0.0.1}}
    destinations:
      - {{id: archive, type: file, path: {out}}}
"""


def adt(control: str, mrn: str = "MRN1") -> bytes:
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^A08^ADT_A01|{control}|P|2.5\r"
        "EVN|A08|20261121083000\r"
        f"PID|1||{mrn}^^^GEN^MR||Doe^Jane||19800101|F\r"
    ).encode()


def observation(patient: str = "p1", value: float = 7.2) -> bytes:
    resource = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": value, "unit": "mmol/L"},
    }
    return json.dumps(resource).encode()


@asynccontextmanager
async def ingest_engine(
    tmp_path: Path, high_water: int = 100_000
) -> AsyncIterator[tuple[Engine, HttpReceiver, aiohttp.ClientSession]]:
    receiver = HttpReceiver()
    await receiver.start()
    text = CONFIG.format(
        db=tmp_path / "flow.db",
        url=receiver.url,
        high_water=high_water,
        out=tmp_path / "archive.hl7",
    )
    engine = Engine(parse_config(text, "test.yaml"))
    await engine.start()
    try:
        async with api_client(engine, Role.SENDER) as client:
            yield engine, receiver, client
    finally:
        await engine.stop()
        await receiver.close()


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_hl7_is_accepted_after_commit_and_delivered(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ingest_engine(tmp_path) as (engine, receiver, client):
            async with client.post("/api/channels/web/messages", data=adt("H1"), headers=HL7) as r:
                assert r.status == 202
                body = await r.json()
            event_id = body["event_id"]
            assert body == {
                "channel": "web",
                "event_id": event_id,
                "links": {"event": f"/api/events/{event_id}/timeline"},
            }
            assert r.headers["Location"] == f"/api/events/{event_id}/timeline"
            stored = await engine.store.event(event_id)
            assert stored is not None and stored.body == adt("H1")
            await outbox_drained(engine, "ehr")
            assert list(receiver.applied.values()) == [adt("H1")]
            trail = await engine.store.audit(event_id)
            assert any("over HTTP from 'test-sender'" in e.detail for e in trail)

    run(scenario())


def test_repeat_key_gets_the_first_answer_and_one_delivery(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ingest_engine(tmp_path) as (engine, receiver, client):
            headers = {**FHIR, "Idempotency-Key": "order-1"}
            answers = []
            for _ in range(3):
                async with client.post(
                    "/api/channels/web/messages", data=observation(), headers=headers
                ) as r:
                    answers.append((r.status, await r.read(), r.headers.get("Idempotent-Replayed")))
            assert [a[0] for a in answers] == [202, 202, 202]
            assert answers[0][1] == answers[1][1] == answers[2][1]
            assert [a[2] for a in answers] == [None, "true", "true"]
            async with client.post(
                "/api/channels/web/messages", data=observation(value=9.9), headers=headers
            ) as r:
                assert r.status == 422
                problem = await r.json()
            assert problem["resourceType"] == "OperationOutcome"
            assert "different body" in problem["issue"][0]["diagnostics"]
            await outbox_drained(engine, "ehr")
            assert len(receiver.applied) == 1
            delivered = next(iter(receiver.requests))
            assert delivered.content_type == "application/fhir+json"
            assert delivered.ordering_key == "Patient/p1"
            stats = {c.channel_id: c for c in await engine.store.stats()}
            assert stats["web"].received == 1 and stats["web"].duplicates == 3

    run(scenario())


def test_hl7_without_key_is_deduplicated_by_control_id(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ingest_engine(tmp_path) as (engine, receiver, client):
            bodies = []
            for _ in range(2):
                async with client.post(
                    "/api/channels/web/messages", data=adt("SAME"), headers=HL7
                ) as r:
                    assert r.status == 202
                    bodies.append(await r.read())
            assert bodies[0] == bodies[1]
            await outbox_drained(engine, "ehr")
            assert len(receiver.applied) == 1

    run(scenario())


def test_invalid_fhir_is_400_with_the_element_path_and_kept(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ingest_engine(tmp_path) as (engine, receiver, client):
            bad = json.loads(observation())
            bad["status"] = "done-ish"
            bad["valueQuantity"]["value"] = "seven"
            raw = json.dumps(bad).encode()
            async with client.post("/api/channels/web/messages", data=raw, headers=FHIR) as r:
                assert r.status == 400
                assert r.headers["Content-Type"].startswith("application/fhir+json")
                outcome = await r.json()
            assert outcome["resourceType"] == "OperationOutcome"
            paths = {p for issue in outcome["issue"] for p in issue.get("expression", [])}
            assert {"Observation.status", "Observation.valueQuantity.value"} <= paths
            note = outcome["issue"][-1]["diagnostics"]
            assert note.startswith("kept as reject ")
            rejects = await engine.store.rejects("web")
            assert [reject.raw for _, reject in rejects] == [raw]
            assert "Observation.status" in rejects[0][1].reason
            async with client.post("/api/channels/web/messages", data=b"[1, 2]", headers=FHIR) as r:
                assert r.status == 400
                assert (await r.json())["issue"][0]["expression"] == ["(body)"]
            assert receiver.requests == []

    run(scenario())


def test_bad_hl7_is_400_naming_segment_and_field_and_kept(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ingest_engine(tmp_path) as (engine, _receiver, client):
            broken = b"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^A08|\rPID|1\r"
            async with client.post("/api/channels/web/messages", data=broken, headers=HL7) as r:
                assert r.status == 400
                problem = await r.json()
            assert problem["segment"] == "MSH" and problem["field"] == 10
            assert "MSH" in problem["detail"] and "field 10" in problem["detail"]
            rejects = await engine.store.rejects("web")
            assert rejects[0][0] == problem["reject_id"]
            assert rejects[0][1].raw == broken
            async with client.post(
                "/api/channels/web/messages", data=b"{}", headers={"Content-Type": "image/png"}
            ) as r:
                assert r.status == 415

    run(scenario())


def test_backpressure_is_429_with_retry_after_then_accepted(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ingest_engine(tmp_path, high_water=10) as (engine, receiver, client):
            receiver.set_faults(unavailable=10**6, retry_after=0.05)
            for n in range(10):
                async with client.post(
                    "/api/channels/web/messages", data=adt(f"B{n}", f"M{n}"), headers=HL7
                ) as r:
                    assert r.status == 202
            await eventually(lambda: not engine.channels["web"].ingress.is_open(), 10, "closed")
            async with client.post(
                "/api/channels/web/messages", data=adt("LATE", "M99"), headers=HL7
            ) as r:
                assert r.status == 429
                assert r.headers["Retry-After"] == "2"
                assert "backpressure" in (await r.json())["detail"]
            stats = {c.channel_id: c for c in await engine.store.stats()}
            assert stats["web"].received == 10
            receiver.set_faults(unavailable=0)
            await eventually(engine.channels["web"].ingress.is_open, 30, "reopened")
            async with client.post(
                "/api/channels/web/messages", data=adt("LATE", "M99"), headers=HL7
            ) as r:
                assert r.status == 202
            await outbox_drained(engine, "ehr")
            assert len(receiver.applied) == 11

    run(scenario())


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/channels/nope/messages", 404), ("/api/channels/mllp-only/messages", 409)],
)
def test_unknown_and_non_http_channels(tmp_path: Path, path: str, status: int) -> None:
    async def scenario() -> None:
        async with (
            ingest_engine(tmp_path) as (_engine, _receiver, client),
            client.post(path, data=adt("X1"), headers=HL7) as r,
        ):
            assert r.status == status
            assert "channel" in (await r.json())["detail"]

    run(scenario())


def test_sender_may_ingest_but_not_read_and_viewer_may_not_ingest(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ingest_engine(tmp_path) as (engine, _receiver, client):
            async with client.get("/api/status") as r:
                assert r.status == 403
            viewer = await issue(engine, Role.VIEWER)
            async with client.post(
                "/api/channels/web/messages",
                data=adt("V1"),
                headers={**HL7, "Authorization": f"Bearer {viewer}"},
            ) as r:
                assert r.status == 403
            async with client.post(
                "/api/channels/web/messages",
                data=adt("V1"),
                headers={**HL7, "Authorization": "Bearer nope"},
            ) as r:
                assert r.status == 401
            stats = await engine.store.stats()
            assert all(c.received == 0 for c in stats)

    run(scenario())


def test_a_paused_channel_answers_503_then_accepts_after_resume(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ingest_engine(tmp_path) as (engine, receiver, client):
            paused = await engine.set_paused(
                PauseKind.CHANNEL, "web", True, actor="ops", reason="EHR maintenance"
            )
            assert paused
            async with client.post("/api/channels/web/messages", data=adt("P1"), headers=HL7) as r:
                assert r.status == 503
                assert r.headers["Retry-After"].isdigit()
                assert "paused by an operator" in (await r.json())["detail"]
            assert await engine.store.search_events(EventQuery(limit=10)) == []
            await engine.set_paused(
                PauseKind.CHANNEL, "web", False, actor="ops", reason="maintenance over"
            )
            async with client.post("/api/channels/web/messages", data=adt("P1"), headers=HL7) as r:
                assert r.status == 202
            await outbox_drained(engine, "ehr")
            assert list(receiver.applied.values()) == [adt("P1")]

    run(scenario())
