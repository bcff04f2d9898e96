"""Pausing and resuming destinations and channels through the API, across a restart.

A channel fans out to two HTTP receivers. While `ehr` is paused, `copy`
keeps receiving (the witness that the messages flowed), `ehr` receives
nothing and its queue fills durably; the pause survives a restart of the
engine; on resume `ehr` receives everything, in order. A paused channel
holds its MLLP sender unanswered until it is resumed. Acts need the
operator role and a reason, and are in the audit trail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tests.api.test_browse import adt, get
from tests.api_support import api_client
from tests.e2e.harness import eventually, outbox_drained, running_engine
from tests.e2e.procs import ack_code, send_in_order
from thumpflow.core.access import Role
from thumpflow.testing.http_receiver import HttpReceiver


def _destinations(ehr: str, copy: str) -> str:
    return "\n".join(
        f"      - {{id: {name}, type: http, url: '{url}', format: raw,"
        " retry: {base: 10ms, cap: 50ms}}"
        for name, url in (("ehr", ehr), ("copy", copy))
    )


async def post(
    client: aiohttp.ClientSession, path: str, body: dict[str, Any], expect: int = 200
) -> Any:
    async with client.post(path, json=body) as response:
        answer = await response.json()
        assert response.status == expect, answer
        return answer


@asynccontextmanager
async def receivers() -> AsyncIterator[tuple[HttpReceiver, HttpReceiver, str]]:
    """Two receivers, `ehr` and `copy`, and the destinations block sending to both."""
    ehr, copy = HttpReceiver(), HttpReceiver()
    await ehr.start()
    await copy.start()
    try:
        yield ehr, copy, _destinations(ehr.url, copy.url)
    finally:
        await ehr.close()
        await copy.close()


def _applied(receiver: HttpReceiver) -> list[str]:
    return [r.event_id or "" for r in receiver.requests if r.status == 201]


def test_a_paused_destination_queues_durably_and_resumes_in_order(tmp_path: Path) -> None:
    async def main() -> None:
        async with receivers() as (ehr, copy, destinations):
            async with (
                running_engine(tmp_path, destinations) as (engine, port),
                api_client(engine, Role.OPERATOR) as operator,
                api_client(engine, Role.VIEWER) as viewer,
            ):
                path = "/api/destinations/ehr/pause"
                await post(viewer, path, {"reason": "maintenance"}, 403)
                await post(operator, path, {}, 422)
                await post(operator, path, {"reason": "   "}, 422)
                await post(operator, "/api/destinations/nope/pause", {"reason": "x"}, 404)
                state = await post(operator, path, {"reason": "EHR maintenance window"})
                assert state == {
                    "kind": "destination",
                    "id": "ehr",
                    "paused": True,
                    "changed": True,
                }
                again = await post(operator, path, {"reason": "EHR maintenance window"})
                assert again["changed"] is False

                messages = [adt(f"P-{i}", "ZQX300") for i in range(5)]
                acks = await send_in_order(port, messages)
                assert [ack_code(ack) for ack in acks] == ["AA"] * 5
                await eventually(lambda: len(_applied(copy)) == 5, what="copy received all")
                assert _applied(ehr) == []
                listing = await get(viewer, "/api/destinations")
                by_id = {d["destination_id"]: d for d in listing["destinations"]}
                assert by_id["ehr"]["paused"] and by_id["ehr"]["pending"] == 5
                assert by_id["ehr"]["oldest_pending_age"] >= 0
                assert by_id["ehr"]["pause"]["paused_by"] == "test-operator"
                assert by_id["ehr"]["pause"]["reason"] == "EHR maintenance window"
                assert not by_id["copy"]["paused"] and by_id["copy"]["pending"] == 0

            async with (
                running_engine(tmp_path, destinations) as (engine, port),
                api_client(engine, Role.OPERATOR) as operator,
            ):
                assert engine.outboxes["ehr"].paused
                acks = await send_in_order(port, [adt("P-5", "ZQX300")])
                assert [ack_code(ack) for ack in acks] == ["AA"]
                await eventually(lambda: len(_applied(copy)) == 6, what="copy received the 6th")
                assert _applied(ehr) == []
                await post(operator, "/api/destinations/ehr/resume", {"reason": "window over"})
                await outbox_drained(engine, "ehr")
                assert _applied(ehr) == _applied(copy)
                assert len(_applied(ehr)) == 6 and all(_applied(ehr))
                listing = await get(operator, "/api/destinations")
                assert not any(d["paused"] for d in listing["destinations"])
                audit = await get(operator, "/api/audit", limit=500)
                acts = [
                    (e["action"], e["subject"], e["actor"], e["detail"])
                    for e in audit["entries"]
                    if e["action"] in {"paused", "resumed"}
                ]
                assert acts == [
                    ("resumed", "destination:ehr", "test-operator", "window over"),
                    ("paused", "destination:ehr", "test-operator", "EHR maintenance window"),
                ]

    asyncio.run(main())


def test_a_paused_channel_holds_its_sender_until_resumed(tmp_path: Path) -> None:
    async def main() -> None:
        async with receivers() as (ehr, _copy, destinations):
            async with (
                running_engine(tmp_path, destinations) as (engine, port),
                api_client(engine, Role.OPERATOR) as operator,
            ):
                await post(operator, "/api/channels/flow/pause", {"reason": "sender cutover"})
                (channel,) = (await get(operator, "/api/channels"))["channels"]
                assert channel["paused"] and not channel["accepting"]

            async with (
                running_engine(tmp_path, destinations) as (engine, port),
                api_client(engine, Role.OPERATOR) as operator,
            ):
                (channel,) = (await get(operator, "/api/channels"))["channels"]
                assert channel["paused"] and channel["pause"]["reason"] == "sender cutover"
                sender = asyncio.create_task(
                    send_in_order(port, [adt("H-1", "ZQX400")], timeout=30)
                )
                source = engine.channels["flow"].source
                await eventually(lambda: source.connection_count == 1, what="sender connected")
                done, _ = await asyncio.wait([sender], timeout=0.5)
                assert not done, "a paused channel answered its sender"
                assert (await engine.store.stats()) == []
                await post(operator, "/api/channels/flow/resume", {"reason": "cutover done"})
                acks = await asyncio.wait_for(sender, 30)
                assert [ack_code(ack) for ack in acks] == ["AA"]
                await outbox_drained(engine, "ehr")
                assert len(_applied(ehr)) == 1
                (channel,) = (await get(operator, "/api/channels"))["channels"]
                assert channel["accepting"] and not channel["paused"]
                assert channel["received"] == 1 and channel["destinations"] == ["ehr", "copy"]

    asyncio.run(main())
