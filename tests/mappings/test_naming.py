"""The naming-system table: every identifier system is a valid absolute URI."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thumpflow.cli import convert as convert_cli
from thumpflow.mapping import DEFAULT_BASE, configure_naming_systems, convert, system_for
from thumpflow.mapping._naming import uri, url

_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+")


def test_oids_uuids_uris_table_and_default() -> None:
    assert system_for("1.2.840.99.77") == "urn:oid:1.2.840.99.77"
    # An OID the table lists is its URI (FHIR names a system with a URI by it).
    assert system_for("2.16.840.1.113883.4.6") == "http://hl7.org/fhir/sid/us-npi"
    uuid = "0F8FAD5B-D9CB-469F-A165-70867728950E"
    assert system_for(uuid) == "urn:uuid:" + uuid.lower()
    assert system_for("http://hospital.example/mrn") == "http://hospital.example/mrn"
    assert system_for("SSA") == "http://hl7.org/fhir/sid/us-ssn"
    assert system_for("npi") == "http://hl7.org/fhir/sid/us-npi"
    assert system_for("GHH LAB") == DEFAULT_BASE + "GHH%20LAB"
    assert system_for("1.2.x") == DEFAULT_BASE + "1.2.x"


@given(st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s and s))
def test_every_namespace_gives_a_valid_uri(namespace: str) -> None:
    assert _ABSOLUTE_URI.fullmatch(system_for(namespace))


def test_the_table_is_configurable_and_refuses_what_is_not_a_uri() -> None:
    configure_naming_systems({"TF TEST HOSP": "https://hosp.example/id/mrn"})
    assert system_for("TF TEST HOSP") == "https://hosp.example/id/mrn"
    with pytest.raises(ValueError, match="TF BAD"):
        configure_naming_systems({"TF BAD": "not a uri"}, where="test")
    assert system_for("TF BAD") == DEFAULT_BASE + "TF%20BAD"


def test_cli_takes_a_naming_system_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "ns.yaml"
    table.write_text('"TF CLI NS": "urn:oid:1.2.3.4"\n')
    message = tmp_path / "m.hl7"
    message.write_bytes(
        b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||X1^^^TF CLI NS\rPV1|1|I"
    )
    parser = argparse.ArgumentParser()
    convert_cli.add_arguments(parser)
    assert convert_cli.run(parser.parse_args([str(message), "--naming-systems", str(table)])) == 0
    bundle = json.loads(capsys.readouterr().out)
    (patient,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert patient["identifier"][0]["system"] == "urn:oid:1.2.3.4"
    table.write_text("- a list\n")
    assert convert_cli.run(parser.parse_args([str(message), "--naming-systems", str(table)])) == 2
    assert "must be a mapping" in capsys.readouterr().err
    assert "X1" in json.dumps(convert(message.read_bytes()))


# Found by mutating the golden inputs: a universal id marked ISO that is no OID
# (a space, a stray character) became an invalid `urn:oid:` system, and one
# written with the prefix already became `urn:oid:urn:oid:...`.
_NOT_OIDS = ["2.16.840.1.113883.*Ovd_ 4.6", "1.2.36.14 6.595", "NPI", "1..2", "urn:oid:1.2 3"]


def _resources(raw: bytes) -> list[dict[str, object]]:
    return [entry["resource"] for entry in convert(raw)["entry"]]  # type: ignore[index]


def _systems(resource: object) -> list[str]:
    """Every `system` and `endpoint` anywhere in `resource`, and the value of every
    Identifier whose system says its value is a URI (RFC 3986)."""
    found: list[str] = []
    if isinstance(resource, dict):
        if resource.get("system") == "urn:ietf:rfc:3986":
            found.append(str(resource.get("value")))
        for key, value in resource.items():
            if key in ("system", "endpoint") and isinstance(value, str):
                found.append(value)
            else:
                found += _systems(value)
    elif isinstance(resource, list):
        for item in resource:
            found += _systems(item)
    return found


@pytest.mark.parametrize("universal_id", _NOT_OIDS)
def test_an_iso_universal_id_that_is_no_oid_never_becomes_a_urn_oid(universal_id: str) -> None:
    raw = (
        f"MSH|^~\\&|APP^{universal_id}^ISO|FAC^{universal_id}^ISO|RCV|RF^{universal_id}^ISO|"
        "20240101120000||ADT^A01^ADT_A01|C1|P|2.5.1\r"
        f"PID|1||M1^^^HOSP&{universal_id}&ISO^MR||Doe^Jo\r"
        f"PV1|1|I|W^1^A||||123^Kim^Al^^^^^^NPI&{universal_id}&ISO\r"
    ).encode()
    systems = [s for resource in _resources(raw) for s in _systems(resource)]
    assert systems, "the identifiers still have systems"
    for system in systems:
        assert _ABSOLUTE_URI.fullmatch(system), system
        assert not system.startswith("urn:oid:") or re.fullmatch(
            r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+", system
        ), system
    patient = next(r for r in _resources(raw) if r["resourceType"] == "Patient")
    assert patient["identifier"][0]["system"] == DEFAULT_BASE + "HOSP"  # type: ignore[index]


def test_a_universal_id_written_with_its_urn_prefix_gets_the_prefix_once() -> None:
    raw = (
        b"MSH|^~\\&|APP|FAC|RCV|RF|20240101120000||ADT^A01^ADT_A01|C1|P|2.8\r"
        b"PID|1||M1^^^HOSP&urn:oid:1.2.36.146.595.217.0.1&ISO^MR||Doe^Jo\r"
    )
    patient = next(r for r in _resources(raw) if r["resourceType"] == "Patient")
    assert patient["identifier"][0]["system"] == "urn:oid:1.2.36.146.595.217.0.1"  # type: ignore[index]


def test_a_uuid_universal_id_gets_its_prefix_once_and_only_when_it_is_a_uuid() -> None:
    uuid = "0f8fad5b-d9cb-469f-a165-70867728950e"

    def system(universal_id: str) -> object:
        raw = (
            b"MSH|^~\\&|APP|FAC|RCV|RF|20240101120000||ADT^A01^ADT_A01|C1|P|2.8\r"
            b"PID|1||M1^^^HOSP&" + universal_id.encode() + b"&UUID^MR||Doe^Jo\r"
        )
        patient = next(r for r in _resources(raw) if r["resourceType"] == "Patient")
        return patient["identifier"][0]["system"]  # type: ignore[index]

    assert system(uuid) == f"urn:uuid:{uuid}"
    assert system(f"urn:uuid:{uuid}") == f"urn:uuid:{uuid}"
    assert system("not-a-uuid") == DEFAULT_BASE + "HOSP"


def test_the_provenance_names_an_agent_even_when_msh_3_and_msh_4_hold_no_name() -> None:
    for sender in (b"|^^^^STMARYS|", b"||"):
        raw = (
            b"MSH|^~\\&|" + sender + b"RCV|RF|20240101120000||ADT^A01^ADT_A01|C1|P|2.5.1\r"
            b"PID|1||M1^^^HOSP^MR||Doe^Jo\r"
        )
        provenance = next(r for r in _resources(raw) if r["resourceType"] == "Provenance")
        assert provenance["agent"][0]["who"] == {  # type: ignore[index]
            "display": "sender not stated (MSH-3, MSH-4 empty)"
        }


@given(st.text(max_size=40))
def test_a_url_is_an_absolute_uri_or_nothing(text: str) -> None:
    found = url(text)
    assert found is None or (found == uri(text) and _ABSOLUTE_URI.match(found))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mllp://lab.example.org:2575", "mllp://lab.example.org:2575"),
        (" https://x.example/fhir ", "https://x.example/fhir"),
        ("urn:oid:1.2.3", "urn:oid:1.2.3"),
        ("lab.example.org", None),
        ("05D0123456", None),
        ("hl7/in", None),
        (":2575", None),
        ("mllp:", None),
        ("", None),
    ],
)
def test_url_keeps_only_addresses_with_their_scheme(text: str, expected: str | None) -> None:
    assert url(text) == expected
