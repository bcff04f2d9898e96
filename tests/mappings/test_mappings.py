"""Golden mapping cases, FHIR validity, determinism, errors, CLI and transform."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thumpflow.cli import convert as convert_cli
from thumpflow.cli.mapping_test import actual_bundle, differences, find_cases
from thumpflow.core.event import Event
from thumpflow.fhir import validate
from thumpflow.hl7v2 import Message, escape
from thumpflow.hl7v2.delimiters import DEFAULT_DELIMITERS
from thumpflow.mapping import ConversionError, convert, supported_messages, to_fhir, to_json
from thumpflow.testing.generators import adt_a01, adt_a03, adt_a08, oru_r01

HERE = Path(__file__).parent
CASES = find_cases(HERE)


def test_enough_cases_cover_every_supported_message() -> None:
    assert len(CASES) >= 60
    seen = set()
    for case in CASES:
        msg = Message.parse((case / "input.hl7").read_bytes())
        seen.add(f"{msg.message_type}^{msg.trigger_event}")
    assert set(supported_messages()) <= seen


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    actual = actual_bundle(case)
    assert differences(expected, actual) == []
    errors = [i for i in validate(expected) if i.severity == "error"]
    assert errors == [], errors


def _assert_valid(bundle: dict[str, object]) -> None:
    errors = [f"{i.path}: {i.message}" for i in validate(bundle) if i.severity == "error"]
    assert errors == []


def test_batch_bundles_are_valid_and_use_plain_references() -> None:
    for case in CASES[::5]:
        bundle = convert((case / "input.hl7").read_bytes(), bundle_type="batch")
        _assert_valid(bundle)
        assert "urn:uuid:" not in json.dumps(
            [e["resource"] for e in bundle["entry"]]  # type: ignore[index]
        )


def test_unsupported_type_and_missing_segment_raise_located_errors() -> None:
    with pytest.raises(ConversionError, match="ADT\\^A99 is not supported"):
        convert(b"MSH|^~\\&|A|B|C|D|20240101||ADT^A99|1|P|2.5\rPID|1||X^^^H")
    with pytest.raises(ConversionError, match="required segment PID is missing"):
        convert(b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPV1|1|I")
    with pytest.raises(ConversionError):
        convert(b"not hl7 at all")


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


def test_cli_converts_many_messages_and_reports_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = adt_a01("MRN1", "C1", seed=1) + b"\n" + oru_r01("MRN1", "C2", seed=1)
    bad = b"MSH|^~\\&|A|B|C|D|20240101||ZZZ^Z01|9|P|2.5\rPID|1||SECRET^^^H\r"
    path = tmp_path / "in.hl7"
    path.write_bytes(good.replace(b"\r", b"\r\n") + b"\n" + bad)
    parser = argparse.ArgumentParser()
    convert_cli.add_arguments(parser)
    status = convert_cli.run(parser.parse_args([str(path)]))
    out, err = capsys.readouterr()
    assert status == 1
    assert len(out.splitlines()) == 2
    assert all(json.loads(line)["resourceType"] == "Bundle" for line in out.splitlines())
    assert "message 3" in err and "SECRET" not in err


_names = st.text(
    alphabet=st.sampled_from(list("abcXYZ &|^~\\-'éü")), min_size=1, max_size=12
).filter(lambda s: s.strip())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
    assert to_json(first) == to_json(convert(data))
    _assert_valid(first)
