"""The public transform API: derive events the engine can store; the wrong way is refused, said why.

The example transforms of `examples/transforms/` run through the same
pipeline the engine runs; a transform that fails becomes a reject whose
reason is in the NAK's ERR segment, the reject list and the log, without
message values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.e2e.harness import running_engine
from tests.e2e.procs import ack_code, send_in_order
from thumpflow.config import load_config, parse_config
from thumpflow.core.event import Event
from thumpflow.flow.pipeline import ChannelPipeline
from thumpflow.hl7v2 import Message
from thumpflow.runtime.transform_modules import add_transforms_path, load_transform
from thumpflow.transform import TransformError, derive, route

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "transforms"

CHANNEL = """\
transforms_path: [{examples}]
channels:
  - id: lab
    source: {{type: mllp, port: 0}}
    transform: {transform}
    destinations:
      - {{id: archive, type: file, path: out/archive.hl7}}
      - {{id: feed, type: file, path: out/feed.hl7}}
"""

ORU = (
    "MSH|^~\\&|LAB|GEN|ENG|GEN|20261121090000||ORU^R01^ORU_R01|L9|P|2.5\r"
    "PID|1||123456^^^GEN^MR||Doe^Jane||19800101|Female|||||||||||123-45-6789\r"
    "PV1|1|I|ICU^12^A\r"
    "OBR|1|||K^Potassium^LN\r"
    "OBX|1|NM|K^Potassium^LN||6.9|mmol/L|3.5-5.1|HH|||F\r"
    "OBX|2|NM|NA^Sodium^LN||140|mmol/L|135-145|N|||F\r"
)


def pipeline_for(transform: str) -> ChannelPipeline:
    config = parse_config(CHANNEL.format(examples=EXAMPLES, transform=transform))
    add_transforms_path(config.transforms_path)
    channel = config.channels[0]
    assert channel.transform is not None
    return ChannelPipeline(channel, load_transform(channel.transform, channel.id))


def run(pipeline: ChannelPipeline, text: str = ORU) -> tuple[Event, list[tuple[str, bytes]]]:
    result = pipeline.run(Message.parse(text), text.encode(), 1_800_000_000.0)
    bodies = {event.event_id: event.body for event in result.derived}
    return result.received, [(d.destination_id, bodies[d.event_id]) for d in result.deliveries]


def received_event() -> Event:
    return pipeline_for("split:one_per_observation").event(
        Message.parse(ORU), ORU.encode(), 1_800_000_000.0
    )


def test_derive_gives_a_new_deterministic_id_a_key_suffix_and_the_cause() -> None:
    source = received_event()
    derived = derive(source, "OBX|1", purpose="obx-1", event_type="lab.observation")
    assert derived.event_id != source.event_id and len(derived.event_id) == 26
    assert derived.event_id[:10] == source.event_id[:10]
    assert derive(source, b"other body", purpose="obx-1").event_id == derived.event_id
    assert derive(source, "OBX|1", purpose="obx-2").event_id != derived.event_id
    assert derived.idempotency_key == f"{source.idempotency_key}#obx-1"
    assert derived.causation_id == source.event_id
    assert derived.correlation_id == source.correlation_id
    assert (derived.body, derived.event_type) == (b"OBX|1", "lab.observation")
    with pytest.raises(TypeError, match="cannot set event_id"):
        derive(source, "x", event_id="mine")


def other_id(event_id: str) -> str:
    """An event id differing from `event_id` in its last character (ULIDs end at random)."""
    return event_id[:-1] + ("Y" if event_id.endswith("Z") else "Z")


def refused(transform: object) -> str:
    config = parse_config(CHANNEL.format(examples=EXAMPLES, transform="split:x"))
    pipeline = ChannelPipeline(config.channels[0], transform)  # type: ignore[arg-type]
    with pytest.raises(TransformError) as caught:
        pipeline.run(Message.parse(ORU), ORU.encode(), 0.0)
    return caught.value.describe()


def test_the_wrong_ways_are_refused_before_the_store_with_the_rule_and_remedy() -> None:
    same = refused(lambda event, message: [dataclasses.replace(event, body=b"x")])
    assert same.startswith("transform output 1 reuses an event id")
    assert "thumpflow.transform.derive(event, body, purpose=...)" in same
    new_id_same_key = refused(
        lambda event, message: [
            dataclasses.replace(
                event, event_id=other_id(event.event_id), causation_id=event.event_id
            )
        ]
    )
    assert "reuses an idempotency key" in new_id_same_key
    twice = refused(lambda event, message: [derive(event, "a"), derive(event, "b")])
    assert twice.startswith("transform output 2 reuses an event id")
    uncaused = refused(
        lambda event, message: [dataclasses.replace(derive(event, "a"), causation_id=None)]
    )
    assert "does not name the received event as its cause" in uncaused
    assert "is a str, not an Event" in refused(lambda event, message: ["MSH|..."])
    assert refused(lambda event, message: [route(derive(event, "a"), "nowhere")]) == (
        "transform output 1 is routed to nowhere, not a destination of the channel "
        "(destinations: archive, feed)"
    )


def test_example_route_sends_critical_results_everywhere_and_others_to_the_archive() -> None:
    pipeline = pipeline_for("route:critical_everywhere")
    _, critical = run(pipeline)
    assert [destination for destination, _ in critical] == ["archive", "feed"]
    normal = ORU.replace("|HH|", "|N|")
    _, routed = run(pipeline, normal)
    assert routed == [("archive", normal.encode())]


def test_example_enrich_adds_the_ward_name_and_rejects_an_unknown_ward() -> None:
    pipeline = pipeline_for("enrich:ward_names")
    _, outputs = run(pipeline)
    (body,) = {body for _, body in outputs}
    assert Message.parse(body).get("PV1-3.9") == "Intensive Care Unit"
    assert Message.parse(body).get("PV1-3.2") == "12"
    with pytest.raises(TransformError, match=r"^PV1-3.1 \(point of care\) is not in wards.csv$"):
        run(pipeline, ORU.replace("ICU^12", "ZZ^12"))


def test_example_split_gives_one_message_per_observation_in_order() -> None:
    received, outputs = run(pipeline_for("split:one_per_observation"))
    archive = [Message.parse(body) for destination, body in outputs if destination == "archive"]
    assert [m.segment_ids() for m in archive] == [["MSH", "PID", "PV1", "OBR", "OBX"]] * 2
    assert [m.get("OBX-3.1") for m in archive] == ["K", "NA"]
    assert ORU.encode() == received.body


def test_example_rewrite_changes_one_field_on_a_copy() -> None:
    pipeline = pipeline_for("rewrite:hl7_sex_no_ssn")
    message = Message.parse(ORU)
    result = pipeline.run(message, ORU.encode(), 0.0)
    (event,) = result.derived
    rewritten = Message.parse(event.body)
    assert (rewritten.get("PID-8"), rewritten.get("PID-19")) == ("F", "")
    assert rewritten.get("PID-5.1") == "Doe"
    assert message.get("PID-8") == "Female", "the engine's message is not changed"
    with pytest.raises(TransformError, match=r"PID-8 .* is not a known word or code"):
        run(pipeline, ORU.replace("|Female|", "|Robot|"))


def test_transforms_path_is_relative_to_the_configuration_file(tmp_path: Path) -> None:
    (tmp_path / "transforms").mkdir()
    (tmp_path / "transforms" / "tf_relative_probe.py").write_text(
        "from thumpflow.transform import derive\n"
        "def passthrough(event, message):\n"
        "    return [derive(event, event.body)]\n"
    )
    (tmp_path / "chan.yaml").write_text(
        CHANNEL.format(examples="transforms", transform="tf_relative_probe:passthrough")
    )
    config = load_config(tmp_path / "chan.yaml")
    assert config.transforms_path == [str(tmp_path / "transforms")]
    add_transforms_path(config.transforms_path)
    channel = config.channels[0]
    assert channel.transform is not None
    transform = load_transform(channel.transform, channel.id)
    result = ChannelPipeline(channel, transform).run(Message.parse(ORU), ORU.encode(), 0.0)
    assert [e.body for e in result.derived] == [ORU.encode()]


def picky(event: Event, message: Message) -> Iterable[Event]:
    """Refuses messages without an MSH-7 with a reason; fails on SODIUM like a careless one."""
    if not message.get("MSH-7"):
        raise TransformError("MSH-7 (message time) is missing", code="101")
    if b"Sodium" in event.body:
        raise KeyError(message.get("PID-3.1"))
    return [derive(event, event.body)]


def test_a_failing_transform_is_a_reject_with_its_real_reason_in_nak_list_and_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    no_time = ORU.replace("|20261121090000|", "||").replace("|L9|", "|T1|")
    careless = ORU.replace("|L9|", "|T2|")
    fine = ORU.replace("|L9|", "|T3|").replace("OBX|2|NM|NA^Sodium", "OBX|2|NM|CL^Chloride")

    async def scenario() -> tuple[list[bytes], list[str]]:
        destinations = "      - {id: archive, type: file, path: " + str(tmp_path / "a.hl7") + "}"
        extra = "    transform: tests.flow.test_transform_api:picky"
        async with running_engine(tmp_path, destinations, extra) as (engine, port):
            acks = await send_in_order(port, [m.encode() for m in (no_time, careless, fine)])
            rejects = await engine.store.rejects("flow")
        return acks, [reject.reason for _, reject in rejects]

    with caplog.at_level(logging.INFO):
        acks, reasons = asyncio.run(scenario())
    assert [ack_code(ack) for ack in acks] == ["AE", "AE", "AA"]
    err = next(s for s in acks[0].split(b"\r") if s.startswith(b"ERR"))
    assert b"transform failed: MSH-7 (message time) is missing" in err
    assert b"|101^" in err
    careless_reason, missing_reason = sorted(reasons)
    assert re.fullmatch(
        r"transform failed: KeyError at test_transform_api.py:\d+ \(raise "
        r"thumpflow.transform.TransformError to give a reason\)",
        careless_reason,
    )
    assert missing_reason == "transform failed: MSH-7 (message time) is missing"
    logged = caplog.text
    assert "transform failed: MSH-7 (message time) is missing" in logged
    assert "123456" not in logged and "Doe" not in logged
