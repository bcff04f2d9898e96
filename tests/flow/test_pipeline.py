"""The channel pipeline is pure: filter, lanes, ordering key, events, transforms, routing."""

from __future__ import annotations

from collections.abc import Iterable

from thumpflow.config import parse_config
from thumpflow.core.event import Event
from thumpflow.core.lanes import Lane
from thumpflow.flow.hl7_facts import entity_version, event_type, parse_hl7_time
from thumpflow.flow.pipeline import ChannelPipeline
from thumpflow.hl7v2 import Message
from thumpflow.transform import derive

CONFIG = """\
channels:
  - id: lab
    source: {type: mllp, port: 0}
    entity_version: MSH-13
    filter:
      - {path: MSH-9.1, in: [ADT, ORU]}
    lanes:
      default: routine
      rules:
        - lane: stat
          when:
            - {path: MSH-9.1, equals: ORU}
            - {any: [{path: OBX-8, in: [HH, LL]}, {path: OBR-5, equals: S}]}
        - lane: bulk
          when: [{path: MSH-9.2, prefix: A3}]
    destinations:
      - {id: everything, type: file, path: a.hl7}
      - {id: adt-only, type: file, path: b.hl7, when: [{path: MSH-9.1, equals: ADT}]}
"""

ADT = (
    "MSH|^~\\&|REG|GENHOSP|ENGINE|GENHOSP|20261121083000-0500||ADT^A01^ADT_A01|C1|P|2.5|7\r"
    "EVN|A01|20261121082955-0500\r"
    "PID|1||123456^^^GENHOSP^MR~999^^^SSA^SS||Doe^Jane||19800101|F\r"
    "PV1|1|I|ICU^12^A\r"
)
ORU = (
    "MSH|^~\\&|LAB|GENHOSP|ENGINE|GENHOSP|20261121090000||ORU^R01^ORU_R01|L9|P|2.5\r"
    "PID|1||123456^^^GENHOSP^MR\r"
    "OBR|1|||K^Potassium^LN" + "|" * 21 + "P\r"
    "OBX|1|NM|K^Potassium^LN||6.9|mmol/L|3.5-5.1|HH|||P\r"
)


def pipeline(transform=None) -> ChannelPipeline:  # type: ignore[no-untyped-def]
    return ChannelPipeline(parse_config(CONFIG).channels[0], transform)


def test_adt_event_carries_type_key_version_time_and_routes() -> None:
    message = Message.parse(ADT)
    result = pipeline().run(message, ADT.encode(), received_at=1000.0)
    event = result.received
    assert event.event_type == "adt.admit"
    assert event.ordering_key == "Patient/GENHOSP|123456"
    assert event.sequence == 7
    assert event.idempotency_key == "REG@GENHOSP|C1"
    assert event.occurred_at == parse_hl7_time("20261121132955", parse_hl7_time.__globals__["UTC"])
    assert event.lane is Lane.ROUTINE
    assert event.body == ADT.encode()
    assert [(d.destination_id, d.event_id) for d in result.deliveries] == [
        ("everything", event.event_id),
        ("adt-only", event.event_id),
    ]


def test_abnormal_result_goes_stat_and_keeps_its_preliminary_status() -> None:
    result = pipeline().run(Message.parse(ORU), ORU.encode(), received_at=0.0)
    assert result.received.event_type == "lab.result.preliminary"
    assert result.received.lane is Lane.STAT
    assert [d.destination_id for d in result.deliveries] == ["everything"]
    assert result.deliveries[0].lane is Lane.STAT


def test_bulk_rule_and_filter() -> None:
    a31 = ADT.replace("ADT^A01^ADT_A01", "ADT^A31^ADT_A05")
    assert pipeline().run(Message.parse(a31), a31.encode(), 0.0).received.lane is Lane.BULK
    mfn = ADT.replace("ADT^A01^ADT_A01", "MFN^M02^MFN_M02")
    filtered = pipeline().run(Message.parse(mfn), mfn.encode(), 0.0)
    assert filtered.filtered and filtered.deliveries == ()


def test_message_without_patient_is_ordered_per_channel() -> None:
    bare = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|X|P|2.5\r"
    event = pipeline().run(Message.parse(bare), bare.encode(), 0.0).received
    assert event.ordering_key == "Channel/lab"


def test_transform_may_emit_zero_or_many_events_each_routed() -> None:
    def split_names(event: Event, message: Message) -> Iterable[Event]:
        for n, name in enumerate(message.get_all("PID-3")):
            yield derive(event, name, purpose=f"name-{n}")

    result = pipeline(split_names).run(Message.parse(ADT), ADT.encode(), 0.0)
    assert [e.body for e in result.derived] == [b"123456^^^GENHOSP^MR", b"999^^^SSA^SS"]
    assert len(result.deliveries) == 4
    assert {d.event_id for d in result.deliveries} == {e.event_id for e in result.derived}
    none = pipeline(lambda event, message: ()).run(Message.parse(ADT), ADT.encode(), 0.0)
    assert none.deliveries == () and not none.filtered


def test_event_types_and_hl7_times() -> None:
    def kind(text: str) -> str:
        return event_type(Message.parse(text))

    assert kind(ADT.replace("A01^ADT_A01", "A40^ADT_A39")) == "adt.merge"
    assert kind(ORU.replace("||||P\rOBX", "||||C\rOBX")) == "lab.result.corrected"
    assert kind("MSH|^~\\&|A|B|C|D|1||ORM^O01|X|P|2.3\rORC|CA\r") == "order.cancel_request"
    assert kind("MSH|^~\\&|A|B|C|D|1||ZZZ^Z99|X|P|2.3\r") == "zzz.z99"
    utc = parse_hl7_time.__globals__["UTC"]
    assert parse_hl7_time("20260102030405.12+0100", utc) == 1767319445.12
    assert parse_hl7_time("2026", utc) == 1767225600.0
    assert parse_hl7_time("20261340", utc) is None
    assert parse_hl7_time("garbage", utc) is None
    assert entity_version("2026-11-21 08:30") == 202611210830
    assert entity_version("n/a") is None
