"""Output that was invalid R4 on hostile but parseable input, found by mutating the
golden inputs (random delimiters, deletions, duplicated segments, odd values;
another message type in MSH-9, swapped segments, long repetitions, fields past
a segment's end) and validating every Bundle; each case here failed before its
fix."""

from __future__ import annotations

import json
import random
from pathlib import Path

from thumpflow.core.errors import MessageError
from thumpflow.fhir import validate
from thumpflow.hl7v2 import Message
from thumpflow.mapping import convert, to_json
from thumpflow.testing.mutations import mutate

_INPUTS = [path.read_bytes() for path in sorted(Path(__file__).parent.glob("*/input.hl7"))]


def test_seeded_mutations_of_the_golden_inputs_are_refused_or_converted_to_valid_r4() -> None:
    rng = random.Random(20261206)
    converted = 0
    for n in range(1500):
        raw = mutate(rng.choice(_INPUTS), rng)
        bundle_type = ("transaction", "batch", "collection")[n % 3]
        try:
            bundle = convert(raw, bundle_type=bundle_type)
        except MessageError:
            continue
        converted += 1
        issues = [i for i in validate(json.loads(to_json(bundle))) if i.severity == "error"]
        assert issues == [], (n, [f"{i.path}: {i.message}" for i in issues[:3]])
    assert converted > 1000, "most mutations still convert, so the check means something"


def test_a_code_not_in_a_vocabulary_keeps_single_spaces_only() -> None:
    raw = (
        b"MSH|^~\\&|A|B|C|D|20240101120000||ADT^A01^ADT_A01|1|P|2.5.1\r"
        b"PID|1||P1^^^H^MR||Doe^Jo\rPV1|1|[  O\r"
    )
    entries = convert(raw)["entry"]
    (encounter,) = [e["resource"] for e in entries if e["resource"]["resourceType"] == "Encounter"]
    assert encounter["class"] == {"code": "[ O"}


def test_a_document_without_a_trigger_event_in_msh_9_still_has_its_required_status() -> None:
    def status(msh9: bytes, evn: bytes) -> object:
        raw = (
            b"MSH|^~\\&|T|S|E|S|20240317143000-0500||" + msh9 + b"|MD2|P|2.6\r" + evn + b"PID|1||"
            b"E1^^^EPIC^MR||Doe^Jo\rTXA|1|DS^Discharge summary^L|TX|20240317140000-0500\r"
        )
        entries = convert(raw)["entry"]
        (document,) = [
            e["resource"] for e in entries if e["resource"]["resourceType"] == "DocumentReference"
        ]
        return document["status"]

    assert status(b"MDM^^MDM_T02", b"EVN|T02|20240317143000-0500\r") == "current"
    assert status(b"MDM^^MDM_T02", b"EVN|T11|20240317143000-0500\r") == "entered-in-error"
    assert status(b"MDM^^MDM_T02", b"") == "current"
    assert status(b"MDM^T11^MDM_T02", b"") == "entered-in-error"


def test_an_offset_past_14_hours_in_msh_7_is_no_zone_for_the_other_times() -> None:
    raw = (
        b"MSH|^~\\&|A|B|C|D|20040301-1445||ADT^A01^ADT_A01|1|P|2.3\r"
        b"EVN|A01|200403011445\rPID|1||P1^^^H^MR||Doe^Jo\r"
        b"PV1|1|E|ED^^^GH||||||||||||||||V1^^^GH|||||||||||||||||||||||||200403011432\r"
    )
    entries = convert(raw)["entry"]
    (encounter,) = [e["resource"] for e in entries if e["resource"]["resourceType"] == "Encounter"]
    assert encounter["period"]["start"] == "2004-03-01T14:32:00Z"
    issues = [i for i in validate(json.loads(to_json(convert(raw)))) if i.severity == "error"]
    assert issues == []


def test_control_characters_raw_or_escaped_are_dropped_and_large_decimals_omitted() -> None:
    raw = (
        b"MSH|^~\\&|A|B|C|D|20240101120000||ORU^R01^ORU_R01|1|P|2.5.1\r"
        b"PID|1||P1^^^H^MR||Do\x0ce^J\\X0C01\\o\x01\r"
        b"OBR|1|P1|F1|1^X^L\r"
        b"OBX|1|NM|2^Y^L||" + b"1" * 400 + b".5|mg\rNTE|1||line\x02one\r"
    )
    bundle = convert(raw)
    issues = [i for i in validate(json.loads(to_json(bundle))) if i.severity == "error"]
    assert issues == []
    resources = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    assert resources["Patient"]["name"][0] == {"family": "Doe", "given": ["Jo"]}
    assert "valueQuantity" not in resources["Observation"]


def test_control_characters_are_dropped_from_text_that_its_character_set_cannot_encode() -> None:
    # A message given as str with a lone surrogate cannot be encoded to bytes, so
    # the check reads its text instead.
    text = (
        "MSH|^~\\&|A|B|C|D|20240101120000||ADT^A01^ADT_A01|1|P|2.5.1\r"
        "PID|1||P1^^^H^MR||Do\x0ce^J\ud800o\r"
    )
    entries = convert(Message.parse(text))["entry"]
    (patient,) = [e["resource"] for e in entries if e["resource"]["resourceType"] == "Patient"]
    assert patient["name"][0]["family"] == "Doe"
