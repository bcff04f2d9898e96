"""A destination's transform: its failure dead-letters that delivery only, with the reason.

A real engine (store, MLLP source, file destinations): the sender gets AA
for every message, the destination without a transform gets them all, the
one with a transform gets its output, and a message its transform refuses
is dead-lettered there with the transform's reason; after the transform is
fixed, a replay runs it again and delivers.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.e2e.harness import outbox_drained, running_engine
from tests.e2e.procs import ack_code, send_in_order
from thumpflow.core.event import DeadLetterFilter, Delivery, Event
from thumpflow.core.lanes import Lane
from thumpflow.core.outcome import Permanent, SendResult, Sent
from thumpflow.flow.destination_transform import TransformingDestination, delivery_event
from thumpflow.hl7v2 import Message
from thumpflow.transform import TransformError, derive, editable

REFUSING = {"on": True}
ROOT = Path(__file__).resolve().parents[2]


def uppercase_names(event: Event, message: Message | None) -> list[Event]:
    """Upper-cases PID-5.1; refuses a message without PID-5.1 while `REFUSING` is on."""
    assert message is not None
    if not message.get("PID-5.1") and REFUSING["on"]:
        raise TransformError("PID-5.1 (family name) is missing", code="101")
    copy = editable(event)
    copy.set("PID-5.1", message.get("PID-5.1").upper() or "UNKNOWN")
    return [derive(event, copy.to_bytes(), purpose="ehr")]


def adt(control: str, family: str) -> bytes:
    return (
        f"MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^A01^ADT_A01|{control}|P|2.5\r"
        f"PID|1||MRN{control}^^^GEN^MR||{family}^Ana\r"
    ).encode()


def messages_in(path: Path) -> list[Message]:
    text = path.read_bytes().replace(b"\n", b"")
    return [Message.parse(b"MSH" + part) for part in text.split(b"MSH")[1:]]


def test_a_destination_transform_failure_is_confined_to_that_destination(tmp_path: Path) -> None:
    destinations = (
        f"      - {{id: archive, type: file, path: {tmp_path / 'archive.hl7'}}}\n"
        f"      - {{id: ehr, type: file, path: {tmp_path / 'ehr.hl7'},\n"
        "         transform: 'tests.flow.test_destination_transform:uppercase_names'}"
    )

    async def scenario() -> None:
        REFUSING["on"] = True
        async with running_engine(tmp_path, destinations) as (engine, port):
            acks = await send_in_order(port, [adt("D1", "Diaz"), adt("D2", ""), adt("D3", "Lee")])
            assert [ack_code(ack) for ack in acks] == ["AA", "AA", "AA"]
            await outbox_drained(engine, "archive")
            await outbox_drained(engine, "ehr")
            archived = messages_in(tmp_path / "archive.hl7")
            assert [m.control_id for m in archived] == ["D1", "D2", "D3"]
            assert [m.get("PID-5.1") for m in archived] == ["Diaz", "", "Lee"]
            sent = messages_in(tmp_path / "ehr.hl7")
            assert [(m.control_id, m.get("PID-5.1")) for m in sent] == [
                ("D1", "DIAZ"),
                ("D3", "LEE"),
            ]
            (dead,) = await engine.dead_letters(DeadLetterFilter())
            assert dead.destination_id == "ehr" and dead.attempts == 1
            assert dead.reason == ("destination transform failed: PID-5.1 (family name) is missing")
            REFUSING["on"] = False
            await engine.replay(DeadLetterFilter(destination_id="ehr"), "alice", "transform fixed")
            await outbox_drained(engine, "ehr")
            assert await engine.dead_letters(DeadLetterFilter()) == []
        sent = messages_in(tmp_path / "ehr.hl7")
        assert [(m.control_id, m.get("PID-5.1")) for m in sent][-1] == ("D2", "UNKNOWN")

    asyncio.run(scenario())


class Recording:
    destination_id = "ehr"
    max_batch = 8

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        self.batches.append([delivery.body for delivery in batch])
        return [Sent(f"ok {delivery.delivery_id}") for delivery in batch]


def delivery(number: int, body: bytes) -> Delivery:
    return Delivery(
        delivery_id=number,
        event_id=f"01J{number:023d}",
        destination_id="ehr",
        channel_id="adt",
        ordering_key=f"Patient/{number}",
        lane=Lane.ROUTINE,
        sequence=None,
        created_at=1.0,
        body=body,
        content_type="x-application/hl7-v2+er7",
        event_type="adt.admit",
    )


def test_results_keep_the_batch_order_and_wrong_outputs_are_named() -> None:
    def picky(event: Event, message: Message | None) -> list[object]:
        assert message is not None
        if message.control_id == "D2":
            return [event]  # the received event itself: its id is reused
        if message.control_id == "D4":
            return []
        return [derive(event, event.body.lower())]

    inner = Recording()
    wrapped = TransformingDestination(inner, picky)
    batch = [delivery(n, adt(f"D{n}", "X")) for n in range(1, 6)] + [delivery(6, b"garbage")]
    results = asyncio.run(wrapped.send(batch))
    assert inner.batches == [
        [adt("D1", "X").lower(), adt("D3", "X").lower(), adt("D5", "X").lower()]
    ]
    assert [type(result).__name__ for result in results] == [
        "Sent", "Permanent", "Sent", "Permanent", "Sent", "Permanent"
    ]  # fmt: skip
    reasons = [result.reason for result in results if isinstance(result, Permanent)]
    assert reasons[0].startswith(
        "destination transform failed: transform output 1 reuses an event id"
    )
    assert reasons[1] == (
        "destination transform failed: a destination transform returns exactly one event, "
        "not 0 (route with `when` instead)"
    )
    assert reasons[2].startswith("destination transform failed: the body is not HL7 v2")
    assert delivery_event(batch[0]).idempotency_key == f"{batch[0].event_id}.ehr"


def test_try_shows_what_each_destination_transform_makes_or_why_it_would_dead_letter(
    tmp_path: Path,
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "channels:\n  - id: adt\n    source: {type: mllp, port: 0}\n    destinations:\n"
        f"      - {{id: archive, type: file, path: {tmp_path / 'a.hl7'}}}\n"
        f"      - {{id: ehr, type: file, path: {tmp_path / 'e.hl7'},\n"
        "         transform: 'tests.flow.test_destination_transform:uppercase_names'}\n"
    )
    messages = tmp_path / "in.hl7"
    messages.write_bytes(adt("D1", "Diaz") + b"\n" + adt("D2", ""))
    REFUSING["on"] = True
    done = subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", "try", "--config", str(config), "adt",
         str(messages), "--json"],
        capture_output=True, text=True, check=False, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    first, second = (
        {route["destination"]: route for route in found["routes"]}
        for found in json.loads(done.stdout)
    )
    assert first["archive"]["sent"] == [] and first["archive"]["transform_error"] is None
    assert "PID|1||MRND1^^^GEN^MR||DIAZ^Ana" in first["ehr"]["sent"][0]
    assert second["ehr"]["transform_error"] == (
        "destination transform failed: PID-5.1 (family name) is missing"
    )


def test_check_runs_the_transforms_on_sample_messages_and_names_each_refusal(
    tmp_path: Path,
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "channels:\n  - id: adt\n    source: {type: mllp, port: 0}\n"
        "    transform: 'tests.flow.test_transform_api:picky'\n    destinations:\n"
        f"      - {{id: ehr, type: file, path: {tmp_path / 'e.hl7'},\n"
        "         transform: 'tests.flow.test_destination_transform:uppercase_names'}\n"
    )
    messages = tmp_path / "in.hl7"
    no_time = adt("D3", "Lee").replace(b"|20261121083000|", b"||")
    messages.write_bytes(adt("D1", "Diaz") + b"\n" + adt("D2", "") + b"\n" + no_time)
    REFUSING["on"] = True
    done = subprocess.run(
        [sys.executable, "-m", "thumpflow.cli.main", "check", "--config", str(config),
         "--messages", str(messages)],
        capture_output=True, text=True, check=False, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"{messages}: message 2: channel 'adt' > destination 'ehr': would be dead-lettered: "
        "destination transform failed: PID-5.1 (family name) is missing",
        f"{messages}: message 3: channel 'adt': would be refused: "
        "transform failed: MSH-7 (message time) is missing",
    ]
