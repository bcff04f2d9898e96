"""FHIR Subscriptions rest-hook receiver against the simulated EHR as the notifying server.

The EHR (a real HTTP FHIR server, bearer-protected) writes resources, posts
R4 Backport or R5 notification Bundles to the engine's served API, serves
the focus resources and `$events`; its request log proves read-after-notify.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.api_support import issue
from tests.e2e.harness import outbox_drained
from thumpflow.api.app import build_app
from thumpflow.api.auth import Authenticator
from thumpflow.api.server import ApiServer, serve
from thumpflow.config import parse_config
from thumpflow.core.access import Role
from thumpflow.runtime.engine import Engine
from thumpflow.testing.ehr import SimulatedEhr, SubscriptionFeed
from thumpflow.testing.http_receiver import HttpReceiver

TOPIC = "http://example.org/SubscriptionTopic/encounter-start"
EHR_TOKEN = "ehr-static-token"

CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
channels:
  - id: subs
    source:
      type: fhir_subscription
      base_url: {base}
      subscription_id: enc-1
      topic: {topic}
      content: {content}
      heartbeat_period: {period}
      events_operation: {events}
      auth: {{type: bearer, token_file: {token_file}}}
    destinations:
      - {{id: out, type: http, url: {url}, format: raw, retry: {{base: 20ms, cap: 100ms}}}}
"""


@dataclass
class World:
    engine: Engine
    ehr: SimulatedEhr
    receiver: HttpReceiver
    feed: SubscriptionFeed
    reader: aiohttp.ClientSession
    server: ApiServer
    config: str

    async def down(self) -> None:
        """Stop serving and stop the engine (the store stays on disk)."""
        await self.reader.close()
        await self.server.close()
        await self.engine.stop()

    async def up(self) -> None:
        """Start a new engine on the same store and point the Subscription at it."""
        self.engine = Engine(parse_config(self.config, "test.yaml"))
        await self.engine.start()
        self.server = await serve(
            build_app(self.engine, Authenticator(self.engine.store)), "127.0.0.1", 0
        )
        base = f"http://127.0.0.1:{self.server.port}"
        self.feed.endpoint = f"{base}/api/subscriptions/subs"
        if self.feed.token is None:
            self.feed.token = await issue(self.engine, Role.SENDER)
        admin = await issue(self.engine, Role.ADMIN)
        self.reader = aiohttp.ClientSession(
            base_url=base, headers={"Authorization": f"Bearer {admin}"}
        )


@asynccontextmanager
async def world(
    tmp_path: Path,
    *,
    content: str = "id-only",
    version: str = "R4",
    period: float = 3600,
    events: bool = False,
) -> AsyncIterator[World]:
    token_file = tmp_path / "ehr-token"
    token_file.write_text(EHR_TOKEN)
    async with SimulatedEhr(auth="bearer", static_token=EHR_TOKEN) as ehr:
        receiver = HttpReceiver()
        await receiver.start()
        text = CONFIG.format(
            db=tmp_path / "flow.db",
            base=ehr.base_url,
            topic=TOPIC,
            content=content,
            period=period,
            events=str(events).lower(),
            token_file=token_file,
            url=receiver.url,
        )
        feed = ehr.subscribe(
            "enc-1",
            "http://127.0.0.1:9/unset",
            topic=TOPIC,
            token=None,
            content=content,  # type: ignore[arg-type]
            version=version,  # type: ignore[arg-type]
        )
        w = World(None, ehr, receiver, feed, None, None, text)  # type: ignore[arg-type]
        await w.up()
        try:
            yield w
        finally:
            await w.down()
            await receiver.close()


def patient(patient_id: str, family: str = "Doe") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": patient_id, "name": [{"family": family}]}


def reads(ehr: SimulatedEhr, path: str) -> int:
    return sum(1 for r in ehr.requests if r.method == "GET" and r.path == path)


async def state(w: World) -> dict[str, Any]:
    async with w.reader.get("/api/subscriptions/subs") as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def alerts(w: World) -> list[str]:
    """Messages of the channel's active alerts, as the alert system recorded them."""
    found = await w.engine.store.alerts(active_only=True)
    return [alert.message for alert in found if alert.subject == "subs"]


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_handshake_heartbeat_and_full_resource_r4(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path, content="full-resource") as w:
            assert await w.feed.handshake() == (
                200,
                {"type": "handshake", "accepted": [], "duplicates": [], "missed": []},
            )
            status, body = await w.feed.heartbeat()
            assert (status, body["type"]) == (200, "heartbeat")
            seen = await state(w)
            assert seen["handshake_at"] is not None and seen["last_heartbeat_at"] is not None
            assert seen["heartbeat_overdue"] is False and seen["status"] == "active"
            status, body = await w.feed.event(patient("p1"))
            assert status == 200 and len(body["accepted"]) == 1
            assert reads(w.ehr, "/fhir/Patient/p1") == 0, "full-resource needs no read-back"
            await outbox_drained(w.engine, "out")
            (delivered,) = w.receiver.requests
            assert json.loads(delivered.body)["name"] == [{"family": "Doe"}]
            assert delivered.ordering_key == "Patient/p1"
            stored = await w.engine.store.event(body["accepted"][0])
            assert stored is not None and stored.event_type == "fhir.Patient"
            async with w.reader.get("/metrics") as response:
                metrics = await response.text()
            assert 'thumpflow_subscription_last_heartbeat_timestamp_seconds{channel="subs"}' in (
                metrics
            )
            assert 'thumpflow_subscription_heartbeat_overdue{channel="subs"} 0' in metrics
            async with w.reader.get("/api/status") as response:
                assert (await response.json())["subscriptions"]["subs"]["last_event_number"] == 1

    run(scenario())


def test_id_only_reads_back_and_a_repeated_notification_is_harmless_r5(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path, version="R5") as w:
            await w.feed.handshake()
            status, first = await w.feed.event(patient("p7", "Roe"))
            assert status == 200 and len(first["accepted"]) == 1
            assert reads(w.ehr, "/fhir/Patient/p7") == 1, "read-after-notify"
            status, again = await w.feed.resend(1)
            assert status == 200
            assert again["accepted"] == [] and again["duplicates"] == first["accepted"]
            await outbox_drained(w.engine, "out")
            assert len(w.receiver.applied) == 1
            assert json.loads(next(iter(w.receiver.applied.values())))["name"][0]["family"] == "Roe"

    run(scenario())


def test_a_gap_is_recovered_with_events(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path, events=True) as w:
            await w.feed.handshake()
            await w.feed.event(patient("a1"))
            assert await w.feed.event(patient("a2"), send=False) == (0, None)
            status, body = await w.feed.event(patient("a3"))
            assert status == 200 and body["missed"] == []
            assert reads(w.ehr, "/fhir/Subscription/enc-1/$events") == 1
            assert reads(w.ehr, "/fhir/Patient/a2") == 1
            await outbox_drained(w.engine, "out")
            delivered = {json.loads(r.body)["id"] for r in w.receiver.requests}
            assert delivered == {"a1", "a2", "a3"}
            assert (await state(w))["missed_events"] == []
            assert await alerts(w) == []

    run(scenario())


def test_a_gap_without_events_is_reported_and_closed_by_a_late_arrival(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            await w.feed.handshake()
            await w.feed.event(patient("b1"))
            await w.feed.event(patient("b2"), send=False)
            await w.feed.event(patient("b3"), send=False)
            status, body = await w.feed.event(patient("b4"))
            assert status == 200 and body["missed"] == [2, 3]
            assert (await state(w))["missed_events"] == [2, 3]
            (alert,) = await alerts(w)
            assert "2 event(s) missed (2-3); not recovered: 2-3" in alert
            assert "b2" not in alert
            status, body = await w.feed.resend(3)
            assert status == 200 and len(body["accepted"]) == 1
            assert (await state(w))["missed_events"] == [2]
            assert len(await alerts(w)) == 1, "one gap stays open"
            status, body = await w.feed.resend(2)
            assert status == 200 and (await state(w))["missed_events"] == []
            assert await alerts(w) == [], "the gap alert clears when no gap is left"
            async with w.reader.get("/metrics") as response:
                metrics = await response.text()
            assert 'thumpflow_subscription_missed_events_total{channel="subs"} 2' in metrics

    run(scenario())


def test_empty_notifications_ask_events_then_read_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path, content="empty", events=True) as w:
            await w.feed.handshake()
            status, body = await w.feed.event(patient("e1"))
            assert status == 200 and len(body["accepted"]) == 1
            assert reads(w.ehr, "/fhir/Subscription/enc-1/$events") == 1
            assert reads(w.ehr, "/fhir/Patient/e1") == 1
            await outbox_drained(w.engine, "out")
            assert len(w.receiver.applied) == 1

    run(scenario())


def test_stopped_heartbeats_are_alerted_once_and_cleared(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path, period=0.2) as w:
            await w.feed.handshake()

            async def overdue() -> bool:
                return bool((await state(w))["heartbeat_overdue"])

            for _ in range(600):
                if await overdue():
                    break
                await asyncio.sleep(0.05)
            assert await overdue()
            for _ in range(600):
                if await alerts(w):
                    break
                await asyncio.sleep(0.05)
            found = await alerts(w)
            assert len(found) == 1 and found[0].startswith("heartbeat missing")
            async with w.reader.get("/metrics") as response:
                assert 'thumpflow_subscription_heartbeat_overdue{channel="subs"} 1' in (
                    await response.text()
                )
            await w.feed.heartbeat()
            assert not await overdue()
            for _ in range(600):
                if not await alerts(w):
                    break
                await asyncio.sleep(0.05)
            assert await alerts(w) == [], "a heartbeat clears the alert"

    run(scenario())


def test_unusable_notifications_are_400_with_the_path_and_kept(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            bundle = w.feed.bundle("heartbeat", [])
            bundle["entry"][0]["resource"]["parameter"][3] = {"name": "type"}
            status, outcome = await w.feed.post(bundle)
            assert status == 400 and outcome["resourceType"] == "OperationOutcome"
            assert outcome["issue"][0]["expression"] == [
                "Bundle.entry[0].resource.parameter[3].valueCode"
            ]
            other = w.ehr.subscribe("enc-2", w.feed.endpoint, token=w.feed.token)
            status, outcome = await other.handshake()
            assert status == 400 and "Subscription/enc-1" in outcome["issue"][0]["diagnostics"]
            rejects = await w.engine.store.rejects("subs")
            assert len(rejects) == 2
            assert all(r.reason.startswith("unusable notification") for _, r in rejects)

    run(scenario())


def test_events_sent_while_the_engine_was_down_are_missed_after_a_restart(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            await w.feed.handshake()
            await w.feed.event(patient("r1"))
            await w.feed.event(patient("r2"))
            await w.down()
            assert await w.feed.event(patient("r3"), send=False) == (0, None)
            assert await w.feed.event(patient("r4"), send=False) == (0, None)
            await w.up()
            assert (await state(w))["last_event_number"] == 2, "loaded from the store"
            status, body = await w.feed.event(patient("r5"))
            assert status == 200 and len(body["accepted"]) == 1
            assert body["missed"] == [3, 4]
            seen = await state(w)
            assert seen["missed_events"] == [3, 4] and seen["last_event_number"] == 5
            (alert,) = await alerts(w)
            assert "2 event(s) missed (3-4)" in alert
            saved = await w.engine.store.subscription_state("subs", "enc-1")
            assert saved is not None and (saved.last, saved.missed) == (5, (3, 4))

    run(scenario())


def test_events_sent_while_the_engine_was_down_are_recovered_after_a_restart(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with world(tmp_path, events=True) as w:
            await w.feed.handshake()
            await w.feed.event(patient("s1"))
            await w.feed.event(patient("s2"))
            await w.down()
            await w.feed.event(patient("s3"), send=False)
            await w.feed.event(patient("s4"), send=False)
            await w.up()
            status, body = await w.feed.event(patient("s5"))
            assert status == 200 and body["missed"] == []
            assert reads(w.ehr, "/fhir/Subscription/enc-1/$events") == 1
            assert reads(w.ehr, "/fhir/Patient/s3") == 1 and reads(w.ehr, "/fhir/Patient/s4") == 1
            await outbox_drained(w.engine, "out")
            delivered = [json.loads(r.body)["id"] for r in w.receiver.requests]
            assert sorted(delivered) == ["s1", "s2", "s3", "s4", "s5"]
            assert (await state(w))["missed_events"] == []
            assert await alerts(w) == []

    run(scenario())


def test_a_gap_open_before_a_restart_is_listed_after_it_and_closes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            await w.feed.handshake()
            await w.feed.event(patient("t1"))
            await w.feed.event(patient("t2"), send=False)
            status, body = await w.feed.event(patient("t3"))
            assert status == 200 and body["missed"] == [2]
            await w.down()
            await w.up()
            seen = await state(w)
            assert seen["missed_events"] == [2] and seen["last_event_number"] == 3
            assert len(await alerts(w)) == 1, "the gap alert outlives the restart"
            status, body = await w.feed.resend(2)
            assert status == 200 and len(body["accepted"]) == 1
            assert (await state(w))["missed_events"] == []
            assert await alerts(w) == [], "the gap closed after the restart clears the alert"
            saved = await w.engine.store.subscription_state("subs", "enc-1")
            assert saved is not None and (saved.last, saved.missed) == (3, ())

    run(scenario())


def test_a_handshake_after_a_restart_resets_the_saved_baseline(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            await w.feed.handshake()
            await w.feed.event(patient("h1"))
            await w.feed.event(patient("h2"), send=False)
            await w.feed.event(patient("h3"))
            assert (await state(w))["missed_events"] == [2]
            await w.down()
            await w.up()
            assert len(await alerts(w)) == 1, "the open gap's alert survives the restart"
            await w.feed.handshake()
            seen = await state(w)
            assert seen["missed_events"] == [] and seen["last_event_number"] == 3
            saved = await w.engine.store.subscription_state("subs", "enc-1")
            assert saved is not None and (saved.last, saved.missed) == (3, ())
            assert await alerts(w) == [], "a handshake starts afresh: the gap alert clears"

    run(scenario())
