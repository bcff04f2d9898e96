"""A channel's own naming-system table: two senders, one namespace, two identifier systems."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.e2e.harness import eventually, outbox_drained
from tests.e2e.procs import ack_code, send_in_order
from thumpflow.config import parse_config
from thumpflow.core.errors import ConfigError
from thumpflow.runtime.engine import Engine

CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
naming_systems:
  systems: {{TFLAB: "https://engine.example.org/lab", TFGHH: "https://engine.example.org/ghh"}}
channels:
  - id: lab-north
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    transform: thumpflow.mapping:to_fhir
    naming_systems:
      systems: {{TFLAB: "urn:oid:1.2.840.99.10"}}
    destinations:
      - {{id: north-out, type: file, path: {tmp}/north.jsonl, format: jsonl}}
  - id: lab-south
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    transform: thumpflow.mapping:to_fhir
    naming_systems:
      file: {tmp}/south.yaml
      base: "https://south.example.org/ns/"
    destinations:
      - {{id: south-out, type: file, path: {tmp}/south.jsonl, format: jsonl}}
  - id: plain
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    transform: thumpflow.mapping:to_fhir
    destinations:
      - {{id: plain-out, type: file, path: {tmp}/plain.jsonl, format: jsonl}}
"""


def message(control_id: str) -> bytes:
    return (
        f"MSH|^~\\&|LIS|LAB|ENG|GEN|20261121083000||ADT^A01^ADT_A01|{control_id}|P|2.5.1\r"
        "PID|1||123^^^TFLAB^MR~77^^^TFGHH^MR~9^^^TFOTHER^MR||Doe^Jane||19800101|F\r"
        "PV1|1|I\r"
    ).encode()


def patient_systems(path: Path) -> list[str]:
    (line,) = path.read_text().splitlines()
    bundle = json.loads(json.loads(line)["body"])
    (patient,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    return [identifier["system"] for identifier in patient["identifier"]]


def test_each_channel_converts_with_its_own_table_over_the_engines(tmp_path: Path) -> None:
    (tmp_path / "south.yaml").write_text('TFLAB: "urn:oid:1.2.840.99.20"\n')
    config = parse_config(CONFIG.format(db=tmp_path / "e.db", tmp=tmp_path), "engine.yaml")

    async def main() -> None:
        engine = Engine(config)
        await engine.start()
        try:
            for channel, number in (("lab-north", 1), ("lab-south", 2), ("plain", 3)):
                acks = await send_in_order(engine.source_port(channel), [message(f"C{number}")])
                assert [ack_code(ack) for ack in acks] == ["AA"]
            for destination in ("north-out", "south-out", "plain-out"):
                await outbox_drained(engine, destination)
                out = tmp_path / f"{destination.removesuffix('-out')}.jsonl"
                await eventually(out.exists, what=f"{destination} written")
        finally:
            await engine.stop()

    asyncio.run(main())
    assert patient_systems(tmp_path / "north.jsonl") == [
        "urn:oid:1.2.840.99.10",
        "https://engine.example.org/ghh",
        "http://thumpflow.invalid/naming-system/TFOTHER",
    ]
    assert patient_systems(tmp_path / "south.jsonl") == [
        "urn:oid:1.2.840.99.20",
        "https://engine.example.org/ghh",
        "https://south.example.org/ns/TFOTHER",
    ]
    assert patient_systems(tmp_path / "plain.jsonl") == [
        "https://engine.example.org/lab",
        "https://engine.example.org/ghh",
        "http://thumpflow.invalid/naming-system/TFOTHER",
    ]


def test_a_channel_system_that_is_not_an_absolute_uri_is_located(tmp_path: Path) -> None:
    text = CONFIG.format(db="e.db", tmp=tmp_path).replace(
        '{TFLAB: "urn:oid:1.2.840.99.10"}', '{TFLAB: "north lab"}'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "engine.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith("engine.yaml:11:")
    assert "naming_systems" in problem and "TFLAB" in problem
    assert "not an absolute URI" in problem


def test_a_namespace_listed_twice_inline_is_located(tmp_path: Path) -> None:
    text = CONFIG.format(db="e.db", tmp=tmp_path).replace(
        '{TFLAB: "urn:oid:1.2.840.99.10"}', '{TFLAB: "urn:oid:1.2.3", TFLAB: "urn:oid:1.2.4"}'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "engine.yaml")
    assert any(
        p.startswith("engine.yaml:11:") and "'TFLAB' appears twice" in p
        for p in caught.value.problems
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            'TFLAB: "urn:oid:1.2.3"\nX: "urn:oid:1.2.5"\nTFLAB: "urn:oid:1.2.4"\n',
            "south.yaml:3: namespace 'TFLAB' is listed twice",
        ),
        (
            'TFLAB: "urn:oid:1.2.3"\nX: "not a uri"\n',
            "south.yaml:2: naming system for 'X' is not an absolute URI",
        ),
    ],
)
def test_a_bad_table_file_names_the_file_and_line(
    tmp_path: Path, content: str, reason: str
) -> None:
    (tmp_path / "south.yaml").write_text(content)
    config = parse_config(CONFIG.format(db=tmp_path / "e.db", tmp=tmp_path), "engine.yaml")

    async def main() -> None:
        engine = Engine(config)
        try:
            await engine.start()
        finally:
            await engine.stop()

    with pytest.raises(ConfigError) as caught:
        asyncio.run(main())
    assert caught.value.problems == [f"channel 'lab-south' > naming_systems: {tmp_path}/{reason}"]
