"""A channel's conversion warnings reach the log, naming the event but never a value."""

from __future__ import annotations

import logging

import pytest

from thumpflow.core.event import HL7V2_CONTENT_TYPE, Event
from thumpflow.hl7v2 import Message
from thumpflow.mapping import (
    ConversionError,
    ConversionWarning,
    convert,
    reporting_warnings,
    to_fhir,
)
from thumpflow.mapping._report import MISSING_SEGMENT, NO_MESSAGE_MAP


def received(raw: bytes) -> Event:
    return Event(
        event_id="01JTESTEVENT00000000000000",
        idempotency_key="REG|GHH|C1",
        source_system="REG",
        channel_id="adt",
        event_type="adt",
        entity_type="Patient",
        entity_id="GHH|123456",
        occurred_at=1.0,
        received_at=1.0,
        body=raw,
        content_type=HL7V2_CONTENT_TYPE,
    )


def message(msh9: str) -> bytes:
    return (
        f"MSH|^~\\&|REG|GHH|ENG|GEN|20261121083000||{msh9}|C1|P|2.5.1\r"
        "PID|1||123456^^^GHH^MR||Secretname^Jane||19800101|F\r"
    ).encode()


def test_an_unmapped_message_type_is_converted_and_logged_without_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = message("ZZZ^Z99^ZZZ_Z99")
    with caplog.at_level(logging.WARNING, logger="thumpflow.mapping"):
        (bundle_event,) = to_fhir(received(raw), Message.parse(raw))
    assert b'"resourceType":"Patient"' in bundle_event.body
    (line,) = caplog.messages
    assert line.startswith(
        "channel adt: event 01JTESTEVENT00000000000000 converted to FHIR in part"
    )
    assert "ZZZ^Z99 has no message map" in line
    assert "Secretname" not in line and "123456" not in line


@pytest.mark.parametrize("msh9", ["SECRETNAME^JANE", "ADT^A01 DOE", "A^B"])
def test_a_message_type_that_is_not_one_is_shown_as_invalid(msh9: str) -> None:
    warnings: list[str] = []
    try:
        convert(message(msh9), warnings=warnings)
    except ConversionError as error:
        warnings.append(str(error))
    assert warnings
    for text in warnings:
        assert "(invalid)" in text
        assert "SECRETNAME" not in text and "DOE" not in text and "A^B" not in text


def test_every_listener_in_scope_is_told_each_warning_with_its_code() -> None:
    outer: list[ConversionWarning] = []
    inner: list[ConversionWarning] = []
    raw = message("ZZZ^Z99^ZZZ_Z99") + b"EVN|Z99\r"
    with reporting_warnings(outer.append):
        with reporting_warnings(inner.append), reporting_warnings(None):
            convert(raw)
        convert(message("ADT^A01^ADT_A01"))
    convert(raw)
    assert [w.code for w in inner] == [NO_MESSAGE_MAP]
    assert [w.code for w in outer] == [NO_MESSAGE_MAP, MISSING_SEGMENT]
    assert outer[0] is inner[0] and "ZZZ^Z99 has no message map" in outer[0]
    assert "PV1" in outer[1]


def test_enclosing_listeners_are_told_first_the_innermost_last() -> None:
    heard: list[str] = []
    with (
        reporting_warnings(lambda w: heard.append("outer")),
        reporting_warnings(lambda w: heard.append("inner")),
    ):
        convert(message("ZZZ^Z99^ZZZ_Z99"))
    assert heard[:2] == ["outer", "inner"]
    assert heard == ["outer", "inner"] * (len(heard) // 2)
