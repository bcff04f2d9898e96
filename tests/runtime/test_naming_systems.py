"""`naming_systems` in the configuration: validated with its place, applied to conversion."""

from __future__ import annotations

from pathlib import Path

import pytest

from thumpflow.config import parse_config
from thumpflow.core.errors import ConfigError
from thumpflow.mapping import convert
from thumpflow.runtime.engine import Engine

BASE = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
{naming}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations:
      - {{id: out, type: file, path: {out}}}
"""


def message(namespace: str) -> bytes:
    return (
        "MSH|^~\\&|REG|GEN|ENG|GEN|20261121083000||ADT^A01^ADT_A01|N1|P|2.5.1\r"
        f"PID|1||123^^^{namespace}^MR||Doe^Jane||19800101|F\r"
        "PV1|1|I\r"
    ).encode()


def patient_systems(raw: bytes) -> list[str]:
    bundle = convert(raw)
    return [
        identifier["system"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Patient"
        for identifier in entry["resource"]["identifier"]
    ]


def test_a_system_that_is_not_an_absolute_uri_is_located() -> None:
    text = BASE.format(
        db="x.db", out="o.hl7", naming='naming_systems:\n  systems: {GHH: "GHH lab"}'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "engine.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith("engine.yaml:5:13: naming_systems > systems > GHH: ")
    assert "the system is not an absolute URI" in problem


def test_the_engine_applies_inline_and_file_systems_to_conversion(tmp_path: Path) -> None:
    table = tmp_path / "systems.yaml"
    table.write_text('TF-FILE-NS: "urn:oid:1.2.840.99.1"\n')
    naming = (
        "naming_systems:\n"
        '  systems: {TF-INLINE-NS: "https://hospital.example.org/ids/mrn"}\n'
        f"  file: {table}"
    )
    text = BASE.format(db=tmp_path / "e.db", out=tmp_path / "o.hl7", naming=naming)
    Engine(parse_config(text, str(tmp_path / "engine.yaml")))
    assert patient_systems(message("TF-INLINE-NS")) == ["https://hospital.example.org/ids/mrn"]
    assert patient_systems(message("TF-FILE-NS")) == ["urn:oid:1.2.840.99.1"]


def test_an_unreadable_table_file_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    naming = f"naming_systems:\n  file: {missing}"
    text = BASE.format(db=tmp_path / "e.db", out=tmp_path / "o.hl7", naming=naming)
    with pytest.raises(ConfigError) as caught:
        Engine(parse_config(text, str(tmp_path / "engine.yaml")))
    assert caught.value.problems == [
        f"naming_systems: {missing}: cannot read naming systems: FileNotFoundError"
    ]
