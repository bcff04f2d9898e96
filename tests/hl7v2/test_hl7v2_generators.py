"""The seeded message generators produce realistic, parseable, deterministic messages."""

from __future__ import annotations

import pytest

from thumpflow.hl7v2 import Message, build_ack, parse_ack
from thumpflow.testing.generators import adt_a01, adt_a03, adt_a08, oru_r01

ADT_SEGMENTS = [
    "MSH", "EVN", "PID", "PD1", "NK1", "NK1", "PV1", "PV2",
    "OBX", "OBX", "AL1", "AL1", "DG1", "GT1", "IN1", "ZPV",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_adt_a01_shape(seed: int) -> None:
    raw = adt_a01(seed=seed)
    assert 1700 <= len(raw) <= 2100
    msg = Message.parse(raw)
    msg.validate_structure()
    assert msg.segment_ids() == ADT_SEGMENTS
    assert (msg.message_type, msg.trigger_event, msg.message_structure) == ("ADT", "A01", "ADT_A01")
    assert msg.get("PID-3.5") == "MR"
    assert msg.get("PID-5.1") and msg.get("PID-11.3") and msg.get("PID-13.7")
    assert "\\T\\" in msg.get_raw("GT1-16") or "\\T\\" in msg.get_raw("IN1-4")
    assert "&" in msg.get("GT1-16") + msg.get("IN1-4")
    assert "|" in msg.get("ZPV-2.2")
    assert msg.charset == "UNICODE UTF-8" and msg.charset_warning is None
    assert msg.to_bytes() == raw
    assert parse_ack(build_ack(msg, "CA")).control_id == msg.control_id


def test_deterministic_and_varied() -> None:
    assert adt_a01("MRN1", "C1", seed=3) == adt_a01("MRN1", "C1", seed=3)
    assert adt_a01("MRN1", "C1", seed=3) != adt_a01("MRN1", "C1", seed=4)
    senders = {Message.parse(adt_a01(seed=s)).sending_application for s in range(30)}
    assert len(senders) >= 3
    msg = Message.parse(adt_a01("MRN42", "CTRL42"))
    assert (msg.get("PID-3.1"), msg.control_id) == ("MRN42", "CTRL42")


def test_adt_variants_describe_the_same_patient() -> None:
    a01, a08, a03 = (Message.parse(f("MRN7", seed=1)) for f in (adt_a01, adt_a08, adt_a03))
    assert a08.trigger_event == "A08" and a08.message_structure == "ADT_A01"
    assert a03.trigger_event == "A03" and a03.message_structure == "ADT_A03"
    assert a01.get("PID-5") == a08.get("PID-5") == a03.get("PID-5")
    assert a01.get("PID-7") == a03.get("PID-7")
    assert a03.get("PV1-45") and not a01.get("PV1-45")
    assert a03.get("PV1-36") == "01"
    assert len({a01.control_id, a08.control_id, a03.control_id}) == 3


@pytest.mark.parametrize("n_obx", [1, 10, 25])
def test_oru_r01(n_obx: int) -> None:
    raw = oru_r01("MRN9", n_obx=n_obx, seed=2)
    msg = Message.parse(raw)
    msg.validate_structure()
    assert msg.message_type == "ORU" and msg.trigger_event == "R01"
    assert len(msg.segments_named("OBX")) == n_obx
    assert msg.get(f"OBX[{n_obx}]-1") == str(n_obx)
    assert msg.get("OBX-11") == "F"
    assert msg.get("OBX-8") in ("H", "L", "N")
    assert msg.get("OBR-4.2") == "Basic metabolic panel & CBC"
    assert msg.segment_ids()[-1] == "NTE"
    assert msg.to_bytes() == raw
