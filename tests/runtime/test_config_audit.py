"""The configuration an engine starts with is in the audit trail, and so is every change."""

from __future__ import annotations

import asyncio
from pathlib import Path

from thumpflow.config import parse_config
from thumpflow.runtime.config_audit import changes, fingerprint, parse
from thumpflow.runtime.engine import Engine

CONFIG = """
store: {{path: {db}}}
api: {{enabled: false}}
channels:
  - id: adt
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations:
      - {{id: archive, type: file, path: {out}, format: hl7}}
{extra}
"""

SECOND = """
  - id: lab
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations:
      - {{id: lab-archive, type: file, path: {out}.lab, format: hl7}}
"""


def start_and_stop(tmp_path: Path, extra: str = "", budget: str = "") -> list[tuple[str, str]]:
    out = tmp_path / "archive.hl7"
    text = CONFIG.format(db=tmp_path / "t.db", out=out, extra=extra.format(out=out))
    if budget:
        text = text.replace(
            "    destinations:\n", f"    latency_budget: {budget}\n    destinations:\n", 1
        )
    config = parse_config(text, "t.yaml")

    async def main() -> list[tuple[str, str]]:
        engine = Engine(config)
        await engine.start()
        try:
            trail = await engine.store.audit("config", limit=50)
        finally:
            await engine.stop()
        return [(e.action, e.detail) for e in reversed(trail)]

    return asyncio.run(main())


def test_first_start_change_and_unchanged_restart_are_audited(tmp_path: Path) -> None:
    (first,) = start_and_stop(tmp_path)
    assert first[0] == "config.loaded" and first[1].startswith("1 channel(s), 0 job(s): ")
    assert "channel:adt=" in first[1]
    assert len(start_and_stop(tmp_path)) == 1, "an unchanged restart records nothing"
    trail = start_and_stop(tmp_path, extra=SECOND, budget="5")
    assert [action for action, _ in trail] == ["config.loaded", "config.changed"]
    assert trail[1][1].startswith("added channel:lab; changed channel:adt: ")
    trail = start_and_stop(tmp_path, budget="5")
    assert trail[-1][1].startswith("removed channel:lab: ")


def test_fingerprints_round_trip_and_name_every_part(tmp_path: Path) -> None:
    text = CONFIG.format(db=tmp_path / "t.db", out=tmp_path / "o", extra="")
    parts = fingerprint(parse_config(text, "t.yaml"))
    assert set(parts) == {"store", "api", "alerts", "channel:adt"}
    detail = "1 channel(s), 0 job(s): " + " ".join(f"{k}={v}" for k, v in sorted(parts.items()))
    assert parse(detail) == parts
    assert changes(parts, parts) == ""
    assert changes({}, {"job:x": "1"}) == "added job:x"
