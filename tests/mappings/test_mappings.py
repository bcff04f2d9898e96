"""Golden mapping cases, FHIR validity, determinism, errors, CLI and transform."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thumpflow.cli import convert as convert_cli
from thumpflow.cli.mapping_test import actual_bundle, find_cases, golden_differences
from thumpflow.core.event import Event
from thumpflow.fhir import validate
from thumpflow.hl7v2 import Message, escape
from thumpflow.hl7v2.delimiters import DEFAULT_DELIMITERS
from thumpflow.mapping import (
    ConversionError,
    FhirDecimal,
    all_maps,
    convert,
    map_for,
    supported_messages,
    to_fhir,
    to_json,
)
from thumpflow.mapping import _stdlib_json as stdlib_json
from thumpflow.testing.generators import adt_a01, adt_a03, adt_a08, oru_r01

HERE = Path(__file__).parent
CASES = find_cases(HERE)


def test_enough_cases_cover_every_message_map() -> None:
    assert len(CASES) >= 60
    seen = set()
    for case in CASES:
        msg = Message.parse((case / "input.hl7").read_bytes())
        seen.add(map_for(msg.message_type, msg.trigger_event, msg.get("MSH-9.3"))[0])
    assert set(all_maps()) <= seen
    assert len(supported_messages()) >= 100


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case(case: Path) -> None:
    text = (case / "expected.json").read_text(encoding="utf-8")
    assert golden_differences(text, actual_bundle(case)) == []
    bundle = convert((case / "input.hl7").read_bytes())
    assert to_json(bundle) == stdlib_json(bundle, False)
    errors = [i for i in validate(json.loads(text)) if i.severity == "error"]
    assert errors == [], errors


def _assert_valid(bundle: dict[str, object]) -> None:
    """Validate the Bundle as it leaves thumpflow: the JSON `to_json` writes."""
    decoded = json.loads(to_json(bundle))
    errors = [f"{i.path}: {i.message}" for i in validate(decoded) if i.severity == "error"]
    assert errors == []


def test_batch_bundles_are_valid_and_use_plain_references() -> None:
    for case in CASES[::5]:
        bundle = convert((case / "input.hl7").read_bytes(), bundle_type="batch")
        _assert_valid(bundle)
        resources = {"entry": [e["resource"] for e in bundle["entry"]]}  # type: ignore[index]
        assert b"urn:uuid:" not in to_json(resources)


def test_every_message_type_converts_and_warns_what_was_not_mapped() -> None:
    warnings: list[str] = []
    bundle = convert(
        b"MSH|^~\\&|A|B|C|D|20240101||ZZZ^Z99|1|P|2.5\rPID|1||X^^^H\rOBX|1|NM|8867-4^HR^LN||72",
        warnings=warnings,
    )
    assert warnings == [
        "message type ZZZ^Z99 has no message map; its common segments (PID, PD1, NK1, PV1,"
        " PV2, OBX, AL1, DG1, PR1, IN1 ...) were converted generically"
    ]
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert sorted(kinds) == [
        "MessageHeader",
        "Observation",
        "Organization",
        "Organization",
        "Organization",
        "Patient",
        "Provenance",
    ]
    _assert_valid(bundle)
    warnings = []
    bundle = convert(b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPV1|1|I|W^1", warnings=warnings)
    assert warnings == ["ADT^A01 (ADT_A01): required segment PID is missing"]
    assert "Encounter" in [e["resource"]["resourceType"] for e in bundle["entry"]]
    _assert_valid(bundle)
    with pytest.raises(ConversionError):
        convert(b"not hl7 at all")
    with pytest.raises(ConversionError, match="nothing to convert; segment PID is missing"):
        convert(b"MSH|^~\\&|A|B|C|D|20240101||QBP^Q22^QBP_Q21|1|P|2.5\rQPD|Q22|Q1|@PID.5.1^X")


def test_a_query_response_takes_the_generic_map_as_the_ig_has_none() -> None:
    warnings: list[str] = []
    bundle = convert(
        b"MSH|^~\\&|A|B|C|D|20240101||RSP^K22^RSP_K21|1|P|2.5\rMSA|AA|Q1\rQAK|Q1|OK\r"
        b"QPD|Q22|Q1|@PID.5.1^X\rPID|1||MRN1^^^H^MR||DOE^JANE||19800101|F",
        warnings=warnings,
    )
    assert warnings[0].startswith("message type RSP^K22 has no message map")
    patients = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert [p["name"][0]["family"] for p in patients] == ["DOE"]
    _assert_valid(bundle)


def test_order_without_orc_converts_from_obr_with_a_warning() -> None:
    warnings: list[str] = []
    raw = (
        b"MSH|^~\\&|A|B|C|D|20240101||OML^O21^OML_O21|1|P|2.5.1\rPID|1||X^^^H\r"
        b"OBR|1|P77^ORD||24331-1^Lipid panel^LN|||20240101"
    )
    bundle = convert(raw, warnings=warnings)
    assert warnings == ["OML^O21 (ORM_O01): required segment ORC is missing"]
    orders = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ServiceRequest"
    ]
    assert len(orders) == 1
    assert orders[0]["status"] == "unknown" and orders[0]["intent"] == "order"
    assert orders[0]["code"]["coding"][0]["code"] == "24331-1"
    _assert_valid(bundle)


def test_collection_bundles_carry_the_warnings_in_an_operation_outcome() -> None:
    raw = b"MSH|^~\\&|A|B|C|D|20240101||QRY^Q99|1|P|2.5\rPID|1||X^^^H"
    bundle = convert(raw, bundle_type="collection")
    assert bundle["type"] == "collection"
    assert all("request" not in e and "id" in e["resource"] for e in bundle["entry"])
    outcome = bundle["entry"][-1]["resource"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "warning"
    assert "QRY^Q99" in outcome["issue"][0]["diagnostics"]
    _assert_valid(bundle)


def test_to_fhir_derives_one_deterministic_event() -> None:
    raw = adt_a01("MRN1", "C1", seed=3)
    event = Event(
        event_id="01HZZZZZZZZZZZZZZZZZZZZZZZ",
        idempotency_key="EPIC@HOSP|C1",
        source_system="EPIC",
        channel_id="adt",
        event_type="adt.admit",
        entity_type="Patient",
        entity_id="MRN1",
        occurred_at=1.0,
        received_at=2.0,
        body=raw,
        sequence=7,
    )
    first = to_fhir(event, Message.parse(raw))
    second = to_fhir(event, Message.parse(raw))
    assert first == second and len(first) == 1
    out = first[0]
    assert out.content_type == "application/fhir+json"
    assert out.causation_id == event.event_id
    assert out.event_id != event.event_id and len(out.event_id) == 26
    assert out.event_id[:10] == event.event_id[:10]
    assert out.ordering_key == event.ordering_key and out.sequence == 7
    assert out.body == to_json(convert(raw))
    # A message without a time of its own: the event's received_at stands in,
    # so converting the same event again (a replay) gives the same Bundle.
    untimed = b"MSH|^~\\&|A|B|C|D|||ADT^A01|C9|P|2.5\rPID|1||X^^^H\rPV1|1|I\r"
    event = dataclasses.replace(event, body=untimed, received_at=1_735_732_800.5)
    (first_untimed,) = to_fhir(event, Message.parse(untimed))
    (again,) = to_fhir(event, Message.parse(untimed))
    assert first_untimed.body == again.body
    assert json.loads(first_untimed.body)["timestamp"] == "2025-01-01T12:00:00Z"


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    convert_cli.add_arguments(parser)
    return convert_cli.run(parser.parse_args(list(argv)))


def test_cli_converts_many_messages_and_reports_failures_and_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = adt_a01("MRN1", "C1", seed=1) + b"\n" + oru_r01("MRN1", "C2", seed=1)
    partial = b"MSH|^~\\&|A|B|C|D|20240101||ZZZ^Z01|9|P|2.5\rPID|1||SECRET^^^H\r"
    bad = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A40|9|P|2.5\rEVN|A40|20240101\r"
    untimed = b"MSH|^~\\&|A|B|C|D|||ADT^A01|9|P|2.5\rPID|1||SECRET^^^H\rPV1|1|I\r"
    path = tmp_path / "in.hl7"
    path.write_bytes(good.replace(b"\r", b"\r\n") + b"\n" + partial + b"\n" + bad + b"\n" + untimed)
    status = _cli(str(path), "--bundle-type", "batch")
    out, err = capsys.readouterr()
    assert status == 1
    assert len(out.splitlines()) == 4
    assert all(json.loads(line)["type"] == "batch" for line in out.splitlines())
    assert "message 3: warning: message type ZZZ^Z01 has no message map" in err
    assert "message 4: " in err and "segment PID is missing" in err
    assert "message 5: warning: " in err and "no message time" in err and "SECRET" not in err


def test_cli_names_a_file_with_no_message_or_a_line_outside_any(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.hl7"
    empty.write_bytes(b"\r\n")
    stray = tmp_path / "stray.hl7"
    stray.write_bytes(b"\n\nPID|1||SECRET\r" + adt_a01("MRN1", "C1", seed=1))
    good = tmp_path / "good.hl7"
    good.write_bytes(adt_a01("MRN2", "C2", seed=2))
    assert _cli(str(empty), str(stray), str(good)) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1  # the good file still converts
    assert f"{empty}: no HL7 v2 message (no MSH segment) in it" in err
    assert f"{stray}: not converted: line 3 is outside any message" in err
    assert "SECRET" not in err


def test_cli_writes_one_file_per_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = tmp_path / "one.hl7"
    one.write_bytes(adt_a01("MRN1", "C1", seed=1))
    two = tmp_path / "two.hl7"
    two.write_bytes(adt_a01("MRN2", "C2", seed=2) + b"\n" + oru_r01("MRN2", "C3", seed=2))
    out_dir = tmp_path / "out"
    assert _cli(str(one), str(two), "--out", str(out_dir), "--bundle-type", "collection") == 0
    assert capsys.readouterr().out == ""
    assert sorted(p.name for p in out_dir.iterdir()) == ["one.hl7.json", "two.hl7.json"]
    first = json.loads((out_dir / "one.hl7.json").read_text())
    assert first["resourceType"] == "Bundle" and first["type"] == "collection"
    both = json.loads((out_dir / "two.hl7.json").read_text())
    assert [b["type"] for b in both] == ["collection", "collection"]
    assert _cli(str(one), "--batch", "--bundle-type", "collection") == 2
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")
    assert _cli(str(one), "--out", str(blocked)) == 1
    assert "cannot create" in capsys.readouterr().err


_names = st.text(
    alphabet=st.sampled_from(list("abcXYZ &|^~\\-'éü")), min_size=1, max_size=12
).filter(lambda s: s.strip())


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    family=_names,
    kind=st.sampled_from(["a01", "a08", "a03", "oru"]),
    drop=st.sets(st.sampled_from(["PD1", "NK1", "PV2", "AL1", "DG1", "IN1", "NTE", "ORC", "PV1"])),
)
def test_generated_messages_convert_deterministically_to_valid_fhir(
    seed: int, family: str, kind: str, drop: set[str]
) -> None:
    make = {"a01": adt_a01, "a08": adt_a08, "a03": adt_a03}.get(kind)
    raw = make("P1", "C1", seed=seed) if make else oru_r01("P1", "C1", seed=seed, n_obx=4)
    msg = Message.parse(raw)
    msg.set("PID-5[1].1", family)
    msg.set("PID-5[2].1", escape(family, DEFAULT_DELIMITERS)[:5] or "x")
    data = b"\r".join(line for line in msg.to_bytes().split(b"\r") if line[:3].decode() not in drop)
    try:
        first = convert(data)
    except ConversionError:
        return
    assert to_json(first) == to_json(convert(data)) == stdlib_json(first, False)
    _assert_valid(first)


def test_message_time_falls_back_to_evn2_else_the_time_received() -> None:
    base = b"MSH|^~\\&|A|B|C|D|%s||ADT^A01|1|P|2.5\rEVN|A01|%s\rPID|1||X^^^H\rPV1|1|I"
    bundle = convert(base % (b"2024-13", b"202401021530+0100"))
    provenance = bundle["entry"][-1]["resource"]
    assert provenance["recorded"] == bundle["timestamp"] == "2024-01-02T15:30:00+01:00"
    _assert_valid(bundle)
    received = 1_735_732_800.0  # 2025-01-01T12:00:00Z
    for msh7, evn2 in ((b"", b""), (b"20241340", b"not a time")):
        warnings: list[str] = []
        bundle = convert(base % (msh7, evn2), warnings=warnings, received=received)
        provenance = bundle["entry"][-1]["resource"]
        assert provenance["recorded"] == bundle["timestamp"] == "2025-01-01T12:00:00Z"
        assert [w.code for w in warnings] == ["no_message_time"]  # type: ignore[attr-defined]
        assert "MSH-7" in warnings[0] and "20241340" not in warnings[0]
        _assert_valid(bundle)
        again = convert(base % (msh7, evn2), received=received)
        assert to_json(again) == to_json(bundle)
    # Without a time received, the clock's now stands in.
    before = time.time()
    bundle = convert(b"MSH|^~\\&|A|B|C|D|||ORU^R01|1|P|2.5\rPID|1||X^^^H\rOBR|1|P1||C^Chem")
    stamp = datetime.fromisoformat(bundle["timestamp"].replace("Z", "+00:00")).timestamp()
    assert int(before) <= stamp <= time.time()


def test_message_that_would_yield_only_a_provenance_is_rejected() -> None:
    with pytest.raises(
        ConversionError, match="nothing to convert; segment PID is missing"
    ) as caught:
        convert(b"MSH|^~\\&|A|B|C|D|20240101||ADT^A40|1|P|2.5\rEVN|A40|20240101")
    assert caught.value.segment == "PID"
    with pytest.raises(ConversionError, match="segment PID is missing"):
        convert(b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\rNTE|1||just a note")


def test_decimals_keep_the_senders_precision() -> None:
    raw = (
        b"MSH|^~\\&|LIS|LAB|A|B|20240101120000||ORU^R01|1|P|2.5\rPID|1||X^^^H\r"
        b"OBR|1|P1|F1|C^Chem\r"
        b"OBX|1|NM|A^a^LN||1.50|mg|||||F\rOBX|2|NM|B^b^LN||+007.0|mg|||||F\r"
        b"OBX|3|NM|C^c^LN||.25|mg|||||F\rOBX|4|NM|D^d^LN||12|mg|||||F\r"
    )
    text = to_json(convert(raw)).decode()
    for number in ('"value":1.50', '"value":7.0', '"value":0.25', '"value":12'):
        assert number in text
    values = [
        e["resource"]["valueQuantity"]["value"]
        for e in json.loads(text)["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]
    assert values == [1.5, 7.0, 0.25, 12]
    assert all(type(v) in (int, float) for v in values)
    pretty = to_json(convert(raw), pretty=True).decode()
    assert '"value": 1.50' in pretty
    _assert_valid(convert(raw))


def test_to_json_writes_decimals_verbatim_whatever_the_strings_hold() -> None:
    data = {"a": [FhirDecimal("1.50"), "\x00", "\x00\x00"], "b": FhirDecimal("-0.10")}
    assert to_json(data) == b'{"a":[1.50,"\\u0000","\\u0000\\u0000"],"b":-0.10}'
    with pytest.raises(TypeError):
        to_json({"a": object()})


def test_to_json_is_what_the_standard_library_writes_even_where_orjson_refuses() -> None:
    data = {
        "z": [2**70, -(2**64), 2**63 - 1, True, None, {}, []],
        "\u00e9\U0001f600": '\x00\x1f\x7f\u2028\\"\n\t',
        "a": {"nested": FhirDecimal("0.001")},
    }
    assert to_json(data) == stdlib_json(data, False)
    assert to_json(data, pretty=True) == stdlib_json(data, True)
    assert to_json({1: "key"}) == b'{"1":"key"}'
    with pytest.raises(TypeError):
        to_json({"a": FhirDecimal("1.5"), "b": object()})


@settings(max_examples=30)
@given(
    layout=st.lists(
        st.tuples(st.integers(0, 3), st.booleans(), st.booleans()), min_size=1, max_size=5
    )
)
def test_each_observation_gets_the_participations_that_follow_it(
    layout: list[tuple[int, bool, bool]],
) -> None:
    """PRTs after an OBX (with NTEs among them) are that OBX's performers and
    device, never a neighbour's; every Bundle is valid R4."""
    lines = [
        "MSH|^~\\&|LIS|LAB|A|B|20240101120000||ORU^R01^ORU_R01|1|P|2.8.2",
        "PID|1||X1^^^H^MR||Doe^Jo",
        "OBR|1|P1|F1|C^Chem^LN",
    ]
    for n, (performers, device, note) in enumerate(layout, start=1):
        lines.append(f"OBX|{n}|NM|T{n}^Test {n}^LN||{n}|mg|||||F")
        if note:
            lines.append(f"NTE|1||note {n}")
        lines.extend(f"PRT||UC||RO|P{n}x{k}^Tech^K{k}" for k in range(performers))
        if device:
            lines.append(f"PRT||UC||EQUIP||||||D{n}^LAB")
    bundle = convert("\r".join(lines).encode())
    _assert_valid(bundle)
    resources = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    observations = [r for r in resources.values() if r["resourceType"] == "Observation"]
    assert len(observations) == len(layout)
    for n, (obs, (performers, device, _)) in enumerate(
        zip(observations, layout, strict=True), start=1
    ):
        people = [
            resources[resources[p["reference"]]["practitioner"]["reference"]]["identifier"][0]
            for p in obs.get("performer", [])
        ]
        assert [i["value"] for i in people] == [f"P{n}x{k}" for k in range(performers)]
        if device:
            found = resources[obs["device"]["reference"]]["identifier"][0]["value"]
            assert found == f"D{n}"
        else:
            assert "device" not in obs


def test_v21_and_v22_messages_find_their_map_and_a_charset_fallback_is_a_warning() -> None:
    """v2.1/v2.2: the event from EVN-1 (ADT), or the type's one event then
    (a bare ORU is R01); a declared character set not used is a warning with
    its own code, naming no value."""
    adt = (
        b"MSH|^~\\&|A|B|C|D|20240101||ADT|1|P|2.1\rEVN|A01|20240101\r"
        b"PID|1||X^^^H||Doe^Jo\rPV1|1|I\r"
    )
    warnings: list[str] = []
    bundle = convert(adt, warnings=warnings)
    assert warnings == []
    (header,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MessageHeader"
    ]
    assert header["eventCoding"]["code"] == "A01"
    assert any(e["resource"]["resourceType"] == "Encounter" for e in bundle["entry"])
    oru = (
        b"MSH|^~\\&|A|B|C|D|20240101||ORU|1|P|2.2\rPID|1||X^^^H\r"
        b"OBR|1||F1|C^Chem\rOBX|1|NM|G^Glu^L||5|||||F\r"
    )
    bundle = convert(oru, warnings=warnings)
    assert warnings == []
    assert any(e["resource"]["resourceType"] == "DiagnosticReport" for e in bundle["entry"])
    klingon = (
        b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5||||||KLINGON\r"
        b"PID|1||X^^^H||D\xc3\xb6e^Jo\rPV1|1|I\r"
    )
    convert(klingon, warnings=warnings)
    codes = [(w.code, "not recognised" in w) for w in warnings]  # type: ignore[attr-defined]
    assert codes == [("charset_fallback", True)]
    assert "D\u00f6e" not in warnings[0]


def test_cli_reads_times_without_offset_in_the_zone_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.hl7"
    path.write_bytes(b"MSH|^~\\&|A|B|C|D|202407010800||ADT^A01|1|P|2.5\rPID|1||X^^^H||Doe^Jo\r")
    assert _cli(str(path), "--timezone", "Europe/Berlin") == 0
    out, _ = capsys.readouterr()
    assert json.loads(out)["timestamp"] == "2024-07-01T08:00:00+02:00"
    assert _cli(str(path), "--timezone", "Mars/Olympus") == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("--timezone: unknown time zone")
