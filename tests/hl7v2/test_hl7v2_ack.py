"""ACK building (checked by parsing the ACK back), modes, NAKs and parse_ack."""

from __future__ import annotations

import re

import pytest

from thumpflow.core.errors import MessageError
from thumpflow.hl7v2 import (
    Message,
    accept_ack_wanted,
    ack_mode,
    build_ack,
    build_ack_for_raw,
    parse_ack,
)
from thumpflow.hl7v2.ack import hl7_timestamp, new_control_id

ORIGINAL = (
    b"MSH|^~\\&|EPIC|STMARYS^1.2^ISO|HUB|OPS|20240301120000||ADT^A01^ADT_A01|C\\F\\1|P^T|2.5.1\r"
    b"PID|1||MRN1||Smith^John\r"
)


def _with_ack_types(accept: str, app: str) -> Message:
    return Message.parse(
        f"MSH|^~\\&|A|B|C|D|20240301||ADT^A08|77|P|2.5.1|||{accept}|{app}\rPID|1\r".encode()
    )


def test_original_mode_aa() -> None:
    msg = Message.parse(ORIGINAL)
    raw = build_ack(msg, "AA", control_id="ACK1", timestamp="20240301120001")
    assert raw.endswith(b"\r") and b"\n" not in raw
    ack = Message.parse(raw)
    assert ack.get("MSH-3") == "HUB" and ack.get("MSH-4") == "OPS"
    assert ack.get("MSH-5") == "EPIC" and ack.get_raw("MSH-6") == "STMARYS^1.2^ISO"
    assert ack.get("MSH-7") == "20240301120001"
    assert ack.get("MSH-9") == "ACK^A01^ACK"
    assert ack.control_id == "ACK1"
    assert ack.get_raw("MSH-11") == "P^T" and ack.version == "2.5.1"
    assert ack.get("MSA-1") == "AA"
    assert ack.get("MSA-2") == "C|1"
    assert ack.segment_ids() == ["MSH", "MSA"]
    info = parse_ack(raw)
    assert (info.code, info.control_id, info.text, info.error_text) == ("AA", "C|1", "", "")
    assert info.accepted


def test_error_ack_has_err_segment() -> None:
    msg = Message.parse(ORIGINAL)
    error = MessageError(
        "value not in table ^|~&", segment="PID", segment_index=2, field=8, code="103"
    )
    raw = build_ack(msg, "AE", error=error)
    ack = Message.parse(raw)
    assert ack.segment_ids() == ["MSH", "MSA", "ERR"]
    assert ack.get("MSA-1") == "AE"
    assert ack.get("MSA-3") == error.describe()
    assert ack.get("ERR-2.1") == "PID"
    assert ack.get("ERR-2.2") == "2"
    assert ack.get("ERR-2.3") == "8"
    assert ack.get("ERR-3.1") == "103"
    assert ack.get("ERR-3.2") == "Table value not found"
    assert ack.get("ERR-3.3") == "HL70357"
    assert ack.get("ERR-4") == "E"
    assert ack.get("ERR-8") == error.describe()
    info = parse_ack(raw)
    assert info.error_text == error.describe()
    assert not info.accepted


def test_error_without_location_and_explicit_text() -> None:
    msg = Message.parse(ORIGINAL)
    long_text = "x" * 200
    raw = build_ack(msg, "AR", error=MessageError("storage unavailable"), text=long_text)
    ack = Message.parse(raw)
    assert ack.get("MSA-3") == "x" * 80
    assert ack.get_raw("ERR-2") == ""
    assert ack.get("ERR-3.1") == "207"
    assert ack.get("ERR-8") == "storage unavailable"


def test_enhanced_mode() -> None:
    msg = _with_ack_types("AL", "NE")
    assert ack_mode(msg) == "enhanced"
    ack = Message.parse(build_ack(msg, "CA"))
    assert ack.get("MSA-1") == "CA"
    assert ack.get("MSA-2") == "77"
    assert ack.get("MSH-9") == "ACK^A08^ACK"
    assert ack_mode(Message.parse(ORIGINAL)) == "original"
    assert ack_mode(_with_ack_types("", "AL")) == "enhanced"


def test_ack_defaults_timestamp_and_unique_ids() -> None:
    msg = Message.parse(ORIGINAL)
    a, b = Message.parse(build_ack(msg, "AA")), Message.parse(build_ack(msg, "AA"))
    assert a.control_id != b.control_id
    assert len(a.control_id) <= 20
    assert re.fullmatch(r"\d{14}\.\d{4}[+-]\d{4}", a.get("MSH-7"))
    assert re.fullmatch(r"\d{14}\.\d{4}[+-]\d{4}", hl7_timestamp(1_700_000_000.5))
    ids = {new_control_id() for _ in range(1000)}
    assert len(ids) == 1000


def test_ack_uses_message_delimiters_and_charset() -> None:
    raw = "MSH*!@$%*APP*FAC*R*RF*20240101**ADT!A03*C9*P*2.3******8859/1\rPID*1**Zoë\r"
    msg = Message.parse(raw.encode("latin-1"))
    ack_bytes = build_ack(msg, "AE", error=MessageError("bad * field", segment="PID", field=3))
    ack = Message.parse(ack_bytes)
    assert ack.delimiters == msg.delimiters
    assert ack.get("MSH-9") == "ACK!A03!ACK"
    assert ack.charset == "8859/1" and ack.encoding == "iso8859-1"
    assert ack.get("ERR-8") == "PID, field 3: bad * field"
    assert ack.get("ERR-2") == "PID!!3"


def test_invalid_code_rejected() -> None:
    with pytest.raises(ValueError, match="acknowledgment code"):
        build_ack(Message.parse(ORIGINAL), "OK")


@pytest.mark.parametrize(
    ("accept", "app", "success", "wanted"),
    [
        ("", "", True, True),
        ("", "", False, True),
        ("AL", "", True, True),
        ("AL", "", False, True),
        ("NE", "AL", True, False),
        ("NE", "AL", False, False),
        ("ER", "AL", True, False),
        ("ER", "AL", False, True),
        ("SU", "AL", True, True),
        ("SU", "AL", False, False),
        ("", "AL", False, True),
        ("XX", "", False, True),
    ],
)
def test_accept_ack_wanted(accept: str, app: str, success: bool, wanted: bool) -> None:
    assert accept_ack_wanted(_with_ack_types(accept, app), success) is wanted


def test_nak_salvages_msh() -> None:
    raw = b"\x0bMSH|^~\\&|LAB|NORTH|HUB|OPS|2024||ORU^R01|X9|D|2.3\rPID|\xff\xfe broken"
    err = MessageError("unparseable", segment="PID", segment_index=2, code="102")
    nak = Message.parse(build_ack_for_raw(raw, "AR", err))
    assert (nak.get("MSH-3"), nak.get("MSH-5")) == ("HUB", "LAB")
    assert nak.get("MSH-9") == "ACK^R01^ACK"
    assert nak.get("MSH-11") == "D" and nak.version == "2.3"
    assert nak.get("MSA-1") == "AR" and nak.get("MSA-2") == "X9"
    assert nak.get("ERR-2") == "PID^2"
    assert nak.get("ERR-3.1") == "102"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage",
        b"MSH",
        b"MSH|^~",
        b"MSH|^^\\&|A",
        b"PID|1\rMSH|^~\\&|A",
        b"MSH\r\x00\x00\x00\x00",
        bytes(range(256)),
    ],
)
def test_nak_defaults_when_msh_unusable(raw: bytes) -> None:
    nak = Message.parse(build_ack_for_raw(raw, "AR", MessageError("no MSH", code="100")))
    assert nak.get("MSH-2") == "^~\\&"
    assert nak.version == "2.5"
    assert nak.get("MSA-1") == "AR"
    assert nak.get("MSA-2") == ""
    assert nak.get("ERR-3.1") == "100"


def test_nak_strips_framing_bytes_from_salvaged_fields() -> None:
    raw = b"MSH|^~\\&|A\x1cB|F|||||ADT^A01|C\x0b1|P|2.5\r"
    out = build_ack_for_raw(raw, "AE", MessageError("x"))
    assert b"\x1c" not in out and b"\x0b" not in out
    assert Message.parse(out).get("MSA-2") == "C1"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"MSH|^~\\&|A|B|||||ACK|1|P|2.5\r", "100"),
        (b"MSH|^~\\&|A|B|||||ACK|1|P|2.5\rMSA|ZZ|1\r", "103"),
        (b"not hl7", "100"),
    ],
)
def test_parse_ack_rejects_non_acks(raw: bytes, code: str) -> None:
    with pytest.raises(MessageError) as info:
        parse_ack(raw)
    assert info.value.code == code


def test_parse_ack_v23_error_layout() -> None:
    raw = (
        b"MSH|^~\\&|A|B|||||ACK|1|P|2.3\rMSA|AE|C1|bad\r"
        b"ERR|PID^1^3^101&Required field missing&HL70357\r"
    )
    info = parse_ack(raw)
    assert (info.code, info.control_id, info.text) == ("AE", "C1", "bad")
    assert info.error_text == "Required field missing"
