"""Replay respects order per patient: a real engine, store, MLLP source, API and HTTP receiver.

Patient MRN1 sends two messages; the receiver refuses the first (422, dead)
and applies the second. Replaying the first would let an old ADT overwrite
newer state at the receiver, so it is refused, naming the newer delivery
(never a message value), unless the operator asks for an out-of-order
replay; then it is delivered and the timeline shows it. A replay by filter
judges each dead letter on its own. With entity versions configured, an
out-of-order replay of a stale version is superseded, not sent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from tests.api_support import api_client
from tests.e2e.harness import outbox_drained, running_engine
from tests.e2e.procs import ack_code, send_in_order
from tests.e2e.test_flow_guarantees import adt, http_destination
from thumpflow.core.access import Role
from thumpflow.core.event import DeadLetterFilter
from thumpflow.hl7v2 import Message
from thumpflow.testing.http_receiver import HttpReceiver

MARKER = "REJECTME"
# Values from the messages that no refusal, answer or audit detail may quote.
MESSAGE_VALUES = ("MRN1", "MRN2", "Doe", "Jane", MARKER, "ICU")


def applied(receiver: HttpReceiver, mrn: str) -> list[str]:
    """Control ids the receiver applied for one patient, in the order it applied them."""
    return [
        Message.parse(receiver.applied[key]).control_id
        for key in receiver.applied_order(f"Patient/GEN|{mrn}")
    ]


async def replay(operator: aiohttp.ClientSession, **body: Any) -> dict[str, Any]:
    async with operator.post("/api/dead-letters/replay", json=body) as response:
        text = await response.text()
        assert response.status == 200, text
        for value in MESSAGE_VALUES:
            assert value not in text, f"the replay answer quotes {value!r}"
        answer: dict[str, Any] = await response.json()
        return answer


def test_replay_behind_a_newer_delivery_is_refused_until_asked_out_of_order(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(reject_marker=MARKER)
        try:
            async with running_engine(tmp_path, http_destination(receiver.url)) as (engine, port):
                acks = await send_in_order(
                    port,
                    [
                        adt("OLD1", "MRN1", note=MARKER),
                        adt("NEW1", "MRN1"),
                        adt("ONLY2", "MRN2", note=MARKER),
                    ],
                )
                assert [ack_code(a) for a in acks] == ["AA"] * 3
                await outbox_drained(engine, "ehr")
                old, only = await engine.dead_letters(DeadLetterFilter())
                assert applied(receiver, "MRN1") == ["NEW1"]
                newer = (await engine.store.audit(action="delivered", limit=1))[0].subject
                receiver.set_faults(reject_marker=None)
                async with api_client(engine, Role.OPERATOR) as operator:
                    bulk = await replay(operator, all=True, reason="receiver fixed")
                    assert bulk["replayed"] == [only.delivery_id]
                    assert bulk["out_of_order"] == []
                    (refused,) = bulk["refused"]
                    assert refused["delivery_id"] == old.delivery_id
                    assert f"delivery:{refused['newer_delivery_id']}" == newer
                    assert f"delivery {refused['newer_delivery_id']}" in refused["reason"]
                    assert "out of order" in refused["reason"]
                    await outbox_drained(engine, "ehr")
                    assert applied(receiver, "MRN2") == ["ONLY2"]
                    assert applied(receiver, "MRN1") == ["NEW1"], "the old ADT was not sent"
                    still_dead = await engine.dead_letters(DeadLetterFilter())
                    assert [d.delivery_id for d in still_dead] == [old.delivery_id]

                    forced = await replay(
                        operator,
                        delivery_ids=[old.delivery_id],
                        reason="receiver merges by timestamp",
                        out_of_order=True,
                    )
                    assert forced["replayed"] == forced["out_of_order"] == [old.delivery_id]
                    assert forced["refused"] == []
                    await outbox_drained(engine, "ehr")
                    assert applied(receiver, "MRN1") == ["NEW1", "OLD1"]
                    async with operator.get(f"/api/events/{old.event_id}/timeline") as response:
                        timeline = await response.json()
                steps = [step["step"] for step in timeline["steps"]]
                assert "replayed" not in steps
                assert steps.index("dead") < steps.index("replayed_out_of_order")
                assert steps.index("replayed_out_of_order") < steps.index("delivered")
                (mark,) = [s for s in timeline["steps"] if s["step"] == "replayed_out_of_order"]
                assert mark["actor"] == "test-operator"
                assert mark["detail"].startswith("receiver merges by timestamp")
                assert newer.removeprefix("delivery:") in mark["detail"]
                (entry,) = await engine.store.audit(action="replayed.out_of_order")
                assert entry.subject == f"delivery:{old.delivery_id}"
                for value in MESSAGE_VALUES:
                    assert value not in entry.detail
        finally:
            await receiver.close()

    asyncio.run(main())


def test_with_entity_versions_an_out_of_order_replay_of_a_stale_version_is_superseded(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(reject_marker=MARKER)
        try:
            async with running_engine(
                tmp_path, http_destination(receiver.url), "    entity_version: MSH-13\n"
            ) as (engine, port):
                acks = await send_in_order(
                    port,
                    [adt("V1", "MRN1", version=1, note=MARKER), adt("V2", "MRN1", version=2)],
                )
                assert [ack_code(a) for a in acks] == ["AA", "AA"]
                await outbox_drained(engine, "ehr")
                (dead,) = await engine.dead_letters(DeadLetterFilter())
                receiver.set_faults(reject_marker=None)
                by_id = DeadLetterFilter(delivery_ids=(dead.delivery_id,))

                refused = await engine.replay(by_id, "alice", "receiver fixed")
                assert [c.delivery_id for c in refused.refused] == [dead.delivery_id]
                assert refused.replayed == ()

                forced = await engine.replay(by_id, "alice", "receiver fixed", out_of_order=True)
                assert [d.delivery_id for d in forced.replayed] == [dead.delivery_id]
                await outbox_drained(engine, "ehr")
                trail = await engine.store.audit(f"delivery:{dead.delivery_id}")
                assert [entry.action for entry in reversed(trail)] == [
                    "dead_lettered",
                    "replayed.out_of_order",
                    "superseded",
                ]
                stats = (await engine.stats())[0].outboxes[0]
                assert (stats.delivered, stats.superseded, stats.dead) == (1, 1, 0)
            assert applied(receiver, "MRN1") == ["V2"], "the stale version never reached it"
        finally:
            await receiver.close()

    asyncio.run(main())
