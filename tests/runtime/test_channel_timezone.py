"""A channel's `timezone` is the sender's zone in its FHIR conversion: times
without an offset (in a message whose MSH-7 has none) get that zone's offset
on their own date; another channel's stay UTC."""

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
channels:
  - id: east
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    timezone: America/New_York
    transform: thumpflow.mapping:to_fhir
    destinations:
      - {{id: east-out, type: file, path: {tmp}/east.jsonl, format: jsonl}}
  - id: plain
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    transform: thumpflow.mapping:to_fhir
    destinations:
      - {{id: plain-out, type: file, path: {tmp}/plain.jsonl, format: jsonl}}
"""


def message(control_id: str, admitted: str) -> bytes:
    return (
        f"MSH|^~\\&|ADT|EAST|ENG|GEN|20260701083000||ADT^A01^ADT_A01|{control_id}|P|2.5.1\r"
        "PID|1||123^^^H^MR||Doe^Jane||19800101|F\r"
        f"PV1|1|I|||||||||||||||||V{control_id}^^^H^VN|||||||||||||||||||||||||{admitted}\r"
    ).encode()


def starts_and_stamps(path: Path) -> list[tuple[str, str]]:
    found = []
    for line in path.read_text().splitlines():
        bundle = json.loads(json.loads(line)["body"])
        (encounter,) = [
            e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"
        ]
        found.append((encounter["period"]["start"], bundle["timestamp"]))
    return found


def test_the_channel_zone_applies_to_conversion_with_daylight_saving(tmp_path: Path) -> None:
    config = parse_config(CONFIG.format(db=tmp_path / "e.db", tmp=tmp_path), "engine.yaml")

    async def main() -> None:
        engine = Engine(config)
        await engine.start()
        try:
            for n, channel in enumerate(("east", "plain")):
                summer, winter = message(f"{n}1", "202607010700"), message(f"{n}2", "202601150700")
                acks = await send_in_order(engine.source_port(channel), [summer, winter])
                assert [ack_code(ack) for ack in acks] == ["AA", "AA"]
            for destination in ("east-out", "plain-out"):
                await outbox_drained(engine, destination)
                out = tmp_path / f"{destination.removesuffix('-out')}.jsonl"
                await eventually(
                    lambda out=out: out.exists() and len(out.read_text().splitlines()) == 2,
                    what=f"{destination} written",
                )
        finally:
            await engine.stop()

    asyncio.run(main())
    assert starts_and_stamps(tmp_path / "east.jsonl") == [
        ("2026-07-01T07:00:00-04:00", "2026-07-01T08:30:00-04:00"),
        ("2026-01-15T07:00:00-05:00", "2026-07-01T08:30:00-04:00"),
    ]
    assert starts_and_stamps(tmp_path / "plain.jsonl") == [
        ("2026-07-01T07:00:00Z", "2026-07-01T08:30:00Z"),
        ("2026-01-15T07:00:00Z", "2026-07-01T08:30:00Z"),
    ]


def test_a_zone_that_is_not_an_iana_name_is_located(tmp_path: Path) -> None:
    text = CONFIG.format(db="e.db", tmp=tmp_path).replace("America/New_York", "Eastern Time")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "engine.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith("engine.yaml:7:")
    assert "timezone" in problem and "not an IANA time zone name" in problem
