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

_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+")


def test_oids_uuids_uris_table_and_default() -> None:
    assert system_for("2.16.840.1.113883.4.6") == "urn:oid:2.16.840.1.113883.4.6"
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
