"""Search, timeline, payload and audit over a real API, a real engine and a real receiver.

Messages go in over MLLP; the HTTP receiver answers the first request 503
and rejects one marked message with 422 (dead), which is then replayed by
an operator. What the API shows is checked per role: operators see patient
data, viewers see it masked and may neither search by patient nor open a
payload; every payload view is in the audit trail.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from tests.api_support import api_client
from tests.e2e.harness import outbox_drained, running_engine
from tests.e2e.procs import ack_code, send_in_order
from thumpflow.api.masking import MASK
from thumpflow.core.access import Role
from thumpflow.testing.http_receiver import HttpReceiver

MARKER = "KILLME"


def adt(control: str, mrn: str, note: str = "") -> bytes:
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^A01^ADT_A01|{control}|P|2.5\r"
        "EVN|A01|20261121083000\r"
        f"PID|1||{mrn}^^^GEN^MR||Zyxwabble^Quorra{note}||19800101|F\r"
        "PV1|1|I|ICU^12^A\r"
    ).encode()


def destinations(url: str) -> str:
    return (
        f"      - {{id: ehr, type: http, url: '{url}', format: raw,"
        " retry: {base: 10ms, cap: 50ms}}"
    )


async def get(client: aiohttp.ClientSession, path: str, expect: int = 200, **params: Any) -> Any:
    async with client.get(path, params=params) as response:
        body = await response.json()
        assert response.status == expect, body
        return body


def test_search_timeline_payload_and_audit_by_role(tmp_path: Path) -> None:
    async def main() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(unavailable=1, retry_after=0.01, reject_marker=MARKER)
        try:
            async with running_engine(tmp_path, destinations(receiver.url)) as (engine, port):
                acks = await send_in_order(
                    port,
                    [
                        adt("CTL-1", "ZQX100"),
                        adt("CTL-2", "ZQX100"),
                        adt("CTL-3", "ZQX200", MARKER),
                    ],
                )
                assert [ack_code(ack) for ack in acks] == ["AA", "AA", "AA"]
                await outbox_drained(engine, "ehr")
                async with (
                    api_client(engine, Role.OPERATOR) as operator,
                    api_client(engine, Role.VIEWER) as viewer,
                ):
                    await _search(operator, viewer)
                    await _timeline_and_replay(engine, receiver, operator, viewer)
                    await _payload(operator, viewer)
        finally:
            await receiver.close()

    asyncio.run(main())


async def _search(operator: aiohttp.ClientSession, viewer: aiohttp.ClientSession) -> None:
    page = await get(operator, "/api/events", patient="GEN|ZQX100")
    assert [e["control_id"] for e in page["events"]] == ["CTL-2", "CTL-1"]
    assert {e["ordering_key"] for e in page["events"]} == {"Patient/GEN|ZQX100"}
    assert page["next_cursor"] is None
    assert page["events"][0]["deliveries"] == {"delivered": 1}
    bare = await get(operator, "/api/events", patient="ZQX100")
    assert [e["control_id"] for e in bare["events"]] == ["CTL-2", "CTL-1"], (
        "the id alone finds the patient under its assigning authority"
    )
    other = await get(operator, "/api/events", patient="OTHER|ZQX100")
    assert other["events"] == [], "a named authority must match"
    first = await get(operator, "/api/events", patient="GEN|ZQX100", limit=1)
    assert [e["control_id"] for e in first["events"]] == ["CTL-2"]
    second = await get(
        operator, "/api/events", patient="GEN|ZQX100", limit=1, cursor=first["next_cursor"]
    )
    assert [e["control_id"] for e in second["events"]] == ["CTL-1"]
    last = await get(
        operator, "/api/events", patient="GEN|ZQX100", limit=1, cursor=second["next_cursor"]
    )
    assert last == {"events": [], "next_cursor": None}
    bad = await get(operator, "/api/events", 400, cursor="not-a-cursor")
    assert "cursor" in bad["detail"]

    dead = await get(operator, "/api/events", status="dead")
    assert [e["control_id"] for e in dead["events"]] == ["CTL-3"]
    admits = await get(operator, "/api/events", event_type="adt.admit", channel="flow")
    assert len(admits["events"]) == 3
    assert (await get(operator, "/api/events", since=0, until=1))["events"] == []

    refused = await get(viewer, "/api/events", 403, patient="GEN|ZQX100")
    assert "patient" in refused["detail"]
    seen = await get(viewer, "/api/events", control_id="CTL-1")
    assert [e["ordering_key"] for e in seen["events"]] == [MASK]

    dead_deliveries = await get(operator, "/api/deliveries", status="dead", destination="ehr")
    (letter,) = dead_deliveries["deliveries"]
    assert letter["status"] == "dead" and letter["reason"]
    masked = await get(viewer, "/api/deliveries", status="dead")
    assert masked["deliveries"][0]["reason"] == MASK
    assert masked["deliveries"][0]["ordering_key"] == MASK
    delivered = await get(operator, "/api/deliveries", status="delivered", channel="flow")
    assert len(delivered["deliveries"]) == 2


async def _timeline_and_replay(
    engine: Any,
    receiver: HttpReceiver,
    operator: aiohttp.ClientSession,
    viewer: aiohttp.ClientSession,
) -> None:
    (first,) = (await get(operator, "/api/events", control_id="CTL-1"))["events"]
    timeline = await get(operator, f"/api/events/{first['event_id']}/timeline")
    (delivery,) = timeline["deliveries"]
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["failed", "delivered"]
    assert "503" in delivery["attempt_log"][0]["detail"]
    steps = [step["step"] for step in timeline["steps"]]
    assert steps[0] == "received"
    assert steps.index("queued") < steps.index("attempt_failed") < steps.index("delivered")
    viewed = await get(viewer, f"/api/events/{first['event_id']}/timeline")
    assert {a["detail"] for a in viewed["deliveries"][0]["attempt_log"]} == {MASK}
    assert viewed["event"]["ordering_key"] == MASK
    await get(operator, "/api/events/nope/timeline", 404)

    (dead,) = (await get(operator, "/api/events", control_id="CTL-3"))["events"]
    receiver.set_faults(reject_marker=None)
    dead_id = (await get(operator, "/api/deliveries", event_id=dead["event_id"]))["deliveries"][0][
        "delivery_id"
    ]
    async with operator.post(
        "/api/dead-letters/replay", json={"delivery_ids": [dead_id], "reason": "receiver fixed"}
    ) as response:
        assert response.status == 200, await response.text()
    await outbox_drained(engine, "ehr")
    timeline = await get(operator, f"/api/events/{dead['event_id']}/timeline")
    (delivery,) = timeline["deliveries"]
    assert delivery["status"] == "delivered"
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["dead", "delivered"]
    replayed = [step for step in timeline["steps"] if step["step"] == "replayed"]
    assert [(s["actor"], s["detail"]) for s in replayed] == [("test-operator", "receiver fixed")]
    steps = [step["step"] for step in timeline["steps"]]
    assert steps.index("dead") < steps.index("replayed") < steps.index("delivered")


async def _payload(operator: aiohttp.ClientSession, viewer: aiohttp.ClientSession) -> None:
    (event,) = (await get(operator, "/api/events", control_id="CTL-2"))["events"]
    path = f"/api/events/{event['event_id']}/payload"
    await get(viewer, path, 403, reason="curious")
    await get(operator, path, 422)
    await get(operator, "/api/events/nope/payload", 404, reason="checking")
    shown = await get(operator, path, reason="ticket 4711")
    assert shown["encoding"] == "utf-8" and "ZQX100" in shown["body"]
    assert shown["body"].startswith("MSH|^~\\&|REG|GEN")
    audit = await get(operator, "/api/audit", limit=1)
    (entry,) = audit["entries"]
    assert (entry["action"], entry["subject"], entry["actor"], entry["detail"]) == (
        "payload.viewed",
        event["event_id"],
        "test-operator",
        "ticket 4711",
    )
    older = await get(viewer, "/api/audit", before=audit["next_before"], limit=500)
    assert all(e["entry_id"] < entry["entry_id"] for e in older["entries"])
    assert older["next_before"] is None
    retries = [e for e in older["entries"] if e["action"] == "retry_scheduled"]
    assert retries and {e["detail"] for e in retries} == {MASK}
    timeline = await get(operator, f"/api/events/{event['event_id']}/timeline")
    assert timeline["steps"][-1]["step"] == "payload_viewed"
