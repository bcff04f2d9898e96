"""Edit a dead letter and send the edited message: through the API, audited, the original kept.

A real engine delivering to an HTTP receiver that refuses messages holding
a marker (422: dead at once). The dead letter's message is edited (marker
removed) and sent through `POST /api/dead-letters/{id}/edit`: the receiver
gets the edited copy, once even when the same edit is sent twice; the
original stays on the dead-letter list; the audit trail names who, why and
the digest.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.api_support import api_client
from tests.e2e.harness import outbox_drained, running_engine
from tests.e2e.procs import ack_code, send_in_order
from tests.e2e.test_flow_guarantees import adt, controls, http_destination
from thumpflow.core.event import DeadLetterFilter
from thumpflow.hl7v2 import Message
from thumpflow.testing.http_receiver import HttpReceiver


def test_an_edited_dead_letter_reaches_its_destination_once_and_the_original_is_kept(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        receiver = HttpReceiver()
        await receiver.start()
        receiver.set_faults(reject_marker="REFUSEME")
        async with running_engine(tmp_path, http_destination(receiver.url)) as (engine, port):
            acks = await send_in_order(port, [adt("E1", "MRN1", note="REFUSEME")])
            assert [ack_code(ack) for ack in acks] == ["AA"]
            await outbox_drained(engine, "ehr")
            (dead,) = await engine.dead_letters(DeadLetterFilter())
            original = await engine.store.event(dead.event_id)
            assert original is not None
            edited = original.body.decode().replace("REFUSEME", "").replace("\r", "\n")
            body = {"reason": "marker removed, agreed with the EHR team", "body": edited}
            async with api_client(engine) as api:
                answers = []
                for _ in range(2):
                    async with api.post(
                        f"/api/dead-letters/{dead.delivery_id}/edit", json=body
                    ) as r:
                        assert r.status == 200, await r.text()
                        answers.append(await r.json())
                async with api.post("/api/dead-letters/999/edit", json=body) as missing:
                    assert missing.status == 404
            assert answers[0]["duplicate"] is False and answers[1]["duplicate"] is True
            assert answers[0]["event_id"] == answers[1]["event_id"] != dead.event_id
            await outbox_drained(engine, "ehr")
            assert controls(receiver) == ["E1"]
            (applied,) = receiver.applied.values()
            assert Message.parse(applied).get("PID-5.2") == "Jane"
            assert [d.delivery_id for d in await engine.dead_letters(DeadLetterFilter())] == [
                dead.delivery_id
            ]
            new_event = await engine.store.event(answers[0]["event_id"])
            assert new_event is not None and new_event.causation_id == dead.event_id
            trail = await engine.store.audit(f"delivery:{dead.delivery_id}")
            edits = [e for e in trail if e.action == "dead_letter.edited"]
            assert len(edits) == 2 and edits[0].actor == "test-admin"
            assert edits[0].detail.startswith("marker removed, agreed with the EHR team (event ")
            assert "REFUSEME" not in edits[0].detail and "Jane" not in edits[0].detail
        await receiver.close()

    asyncio.run(scenario())
