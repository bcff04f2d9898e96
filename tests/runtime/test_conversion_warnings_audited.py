"""A message converted only in part says so in its own audit trail and timeline.

A channel whose transform converts to FHIR (`thumpflow.mapping:to_fhir`)
records each message's conversion warnings as one `converted_in_part` audit
entry, committed with the message: the API's timeline of that event shows it
as a step, `GET /api/audit?action=converted_in_part` and
`GET /api/events?converted_in_part=true` list such messages, and a message
converted in full has none. No value of the message reaches the
entry.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.api_support import api_client
from tests.e2e.harness import outbox_drained, running_engine
from tests.e2e.procs import ack_code, send_in_order
from tests.runtime.test_conversion_warning_metric import adt, unmapped
from thumpflow.core.access import Role


def test_each_message_converted_in_part_has_its_warnings_in_its_timeline(
    tmp_path: Path,
) -> None:
    destination = f"      - {{id: out, type: file, path: {tmp_path}/out.jsonl, format: jsonl}}"

    async def main() -> None:
        async with running_engine(
            tmp_path, destination, extra="    transform: thumpflow.mapping:to_fhir"
        ) as (engine, port):
            messages = [adt("C1", pv1=False), adt("C2", pv1=True), unmapped("C3")]
            acks = await send_in_order(port, messages)
            assert [ack_code(ack) for ack in acks] == ["AA"] * 3
            await outbox_drained(engine, "out")
            received = {
                entry.subject: entry for entry in await engine.store.audit(action="received")
            }
            flagged = await engine.store.audit(action="converted_in_part")
            by_control = {}
            for entry in flagged:
                event = await engine.store.event(entry.subject)
                assert event is not None and entry.subject in received
                by_control[event.correlation_id] = entry
            assert sorted(by_control) == ["C1", "C3"], "C2 converted in full"
            assert by_control["C1"].detail == ("ADT^A01 (ADT_A01): required segment PV1 is missing")
            assert "ZZZ^Z99" in by_control["C3"].detail
            assert "no message map" in by_control["C3"].detail
            for entry in flagged:
                assert "Zyxwabble" not in entry.detail and "ZQX77" not in entry.detail
            async with api_client(engine, Role.VIEWER) as viewer:
                event_id = by_control["C1"].subject
                async with viewer.get(f"/api/events/{event_id}/timeline") as response:
                    assert response.status == 200
                    steps = (await response.json())["steps"]
                names = [step["step"] for step in steps]
                assert names.index("converted_in_part") == names.index("received") + 1
                [step] = [step for step in steps if step["step"] == "converted_in_part"]
                assert step["subject"] == event_id
                assert "required segment PV1 is missing" in step["detail"]
                async with viewer.get("/api/audit?action=converted_in_part") as response:
                    assert response.status == 200
                    listed = (await response.json())["entries"]
                assert [e["subject"] for e in listed] == [entry.subject for entry in flagged]
                async with viewer.get("/api/audit?action=DROP%20TABLE") as response:
                    assert response.status in {400, 422}
                async with viewer.get("/api/events?converted_in_part=true") as response:
                    assert response.status == 200
                    events = (await response.json())["events"]
                assert [e["event_id"] for e in events] == [entry.subject for entry in flagged]

    asyncio.run(main())


def test_a_destination_transforms_warnings_are_counted_not_audited(tmp_path: Path) -> None:
    """Run at delivery, once per attempt, a destination's own conversion has no
    admission to record in: its warnings reach the channel's counter only."""
    destination = (
        f"      - {{id: out, type: file, path: {tmp_path}/out.jsonl, format: jsonl,"
        " transform: 'thumpflow.mapping:to_fhir'}"
    )

    async def main() -> None:
        async with running_engine(tmp_path, destination) as (engine, port):
            acks = await send_in_order(port, [adt("D1", pv1=False)])
            assert [ack_code(ack) for ack in acks] == ["AA"]
            await outbox_drained(engine, "out")
            assert engine.metrics.conversion.counts("flow")["missing_segment"] == 1
            assert await engine.store.audit(action="converted_in_part") == []
            (record,) = (tmp_path / "out.jsonl").read_text().splitlines()
            assert '"resourceType":"Bundle"' in json.loads(record)["body"]

    asyncio.run(main())
