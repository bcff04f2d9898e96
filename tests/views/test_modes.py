"""Operating modes in a running engine: operator acts, rules on the views, restarts, the CLI.

A real engine (SQLite store, MLLP listeners on loopback, the HTTP API on
loopback): surge declared over the API defers the bulk lane while urgent
traffic flows; the declaration survives a restart; `auto` hands back to the
rules, which enter surge when ED boarding reaches its threshold and leave
it below the hysteresis level, each change audited under the engine's
actor; `thumpflow views mode` reads and declares with the engine stopped.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.api_support import api_client
from tests.e2e.harness import eventually
from tests.e2e.procs import send_in_order
from tests.views.support import T0
from thumpflow.config import parse_config
from thumpflow.core.access import Role
from thumpflow.core.errors import ConfigError
from thumpflow.core.lanes import Lane
from thumpflow.core.modes import ModeOrigin, OperatingMode
from thumpflow.core.search import PauseKind
from thumpflow.runtime.engine import Engine
from thumpflow.testing.hospital import adt

CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
channels:
  - id: adt-in
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    lanes: {{default: urgent}}
    destinations:
      - {{id: archive, type: file, path: {out}/adt.hl7}}
  - id: bulk-in
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    lanes: {{default: bulk}}
    destinations:
      - {{id: research, type: file, path: {out}/research.hl7}}
views:
  systems:
    - {{id: ehr, channels: [adt-in]}}
  units:
    - {{id: ED, kind: ed, beds: 4}}
    - {{id: 4W, beds: 4}}
modes:
  interval: 0.05
  surge:
    defer: [bulk]
    lane_weights: {{urgent: 12}}
  diversion: {{defer: [bulk, routine]}}
  rules:
    - {{id: ed-boarding, mode: surge, measure: ed_boarding, at_least: 2, leave_below: 1}}
"""


@asynccontextmanager
async def engine_at(tmp_path: Path) -> AsyncIterator[Engine]:
    text = CONFIG.format(db=tmp_path / "modes.db", out=tmp_path)
    (tmp_path / "modes.yaml").write_text(text)
    engine = Engine(parse_config(text, "modes.yaml"))
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


def delivered(tmp_path: Path, name: str) -> int:
    path = tmp_path / name
    return path.read_bytes().count(b"MSH|") if path.exists() else 0


async def put_mode(client: aiohttp.ClientSession, mode: str, reason: str) -> tuple[int, Any]:
    async with client.post("/api/mode", json={"mode": mode, "reason": reason}) as response:
        return response.status, await response.json()


def bulk(n: int) -> list[bytes]:
    return [adt("A08", f"R{i}", None, T0 + i, f"b{n}-{i}", sender="LAB") for i in range(n)]


def test_surge_by_act_defers_bulk_survives_a_restart_and_rules_take_over(
    tmp_path: Path,
) -> None:
    async def declared() -> None:
        async with engine_at(tmp_path) as engine:
            assert engine.modes.state.mode is OperatingMode.NORMAL
            async with (
                api_client(engine, Role.OPERATOR) as operator,
                api_client(engine, Role.VIEWER) as viewer,
            ):
                code, _ = await put_mode(viewer, "surge", "not mine to say")
                assert code == 403
                async with operator.post("/api/mode", json={"mode": "surge"}) as missing:
                    assert missing.status == 422
                code, answer = await put_mode(operator, "surge", "mass casualty drill")
                assert code == 200, answer
                assert (answer["mode"], answer["origin"], answer["changed"]) == (
                    "surge",
                    "act",
                    True,
                )
                assert answer["actor"] == "test-operator" and answer["deferred"] == ["bulk"]
                async with viewer.get("/api/mode") as seen:
                    shown = await seen.json()
                assert shown["reason"] == "mass casualty drill"
                assert shown["rules"][0]["id"] == "ed-boarding"
            assert len(await send_in_order(engine.source_port("bulk-in"), bulk(5))) == 5
            urgent = [adt("A08", "P1", "4W/01", T0 + 10, "u1")]
            assert len(await send_in_order(engine.source_port("adt-in"), urgent)) == 1
            await eventually(lambda: delivered(tmp_path, "adt.hl7") == 1, 10, "urgent sent")
            research = engine.outboxes["research"]
            assert research.pending == 5 and research.lane_depths()[Lane.BULK] == 5
            assert delivered(tmp_path, "research.hl7") == 0

    asyncio.run(declared())

    async def restarted() -> None:
        async with engine_at(tmp_path) as engine:
            state = engine.modes.state
            assert (state.mode, state.origin) == (OperatingMode.SURGE, ModeOrigin.ACT)
            await engine.modes.evaluate()  # an act holds against the rules
            research = engine.outboxes["research"]
            assert research.pending == 5 and delivered(tmp_path, "research.hl7") == 0
            async with api_client(engine, Role.OPERATOR) as operator:
                code, answer = await put_mode(operator, "auto", "drill over")
            assert code == 200 and (answer["mode"], answer["origin"]) == ("normal", "rule")
            await eventually(lambda: delivered(tmp_path, "research.hl7") == 5, 10, "bulk sent")
            port = engine.source_port("adt-in")
            admits = [adt("A01", f"E{i}", f"ED/0{i}", T0 + 20 + i, f"e{i}") for i in (1, 2)]
            assert len(await send_in_order(port, admits)) == 2

            def in_mode(mode: OperatingMode) -> bool:
                return engine.modes.state.mode is mode

            await eventually(lambda: in_mode(OperatingMode.SURGE), 10, "surge by rule")
            state = engine.modes.state
            assert (state.origin, state.actor, state.rule) == (
                ModeOrigin.RULE,
                "thumpflow",
                "ed-boarding",
            )
            assert state.reason == "ed_boarding is 2 (at least 2)"
            metrics = await engine.render_metrics()
            assert 'thumpflow_operating_mode{mode="surge"} 1' in metrics
            assert 'thumpflow_operating_mode{mode="normal"} 0' in metrics
            moved = [adt("A02", "E1", "4W/01", T0 + 30, "e3")]
            assert len(await send_in_order(port, moved)) == 1
            await eventually(lambda: engine.modes.status()["rules"][0]["value"] == 1, 10, "1")
            await engine.modes.evaluate()
            assert in_mode(OperatingMode.SURGE)  # 1 is not below `leave_below`
            moved = [adt("A02", "E2", "4W/02", T0 + 31, "e4")]
            assert len(await send_in_order(port, moved)) == 1
            await eventually(lambda: in_mode(OperatingMode.NORMAL), 10, "normal again")
            entries = await engine.store.audit_page(None, 50)
            changes = [(e.subject, e.actor) for e in entries if e.action == "mode.changed"]
            assert changes == [
                ("mode:normal", "thumpflow"),
                ("mode:surge", "thumpflow"),
                ("mode:normal", "test-operator"),
                ("mode:surge", "test-operator"),
            ]

    asyncio.run(restarted())

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "thumpflow.cli.main", "views", "mode", *args]
        command += ["-c", str(tmp_path / "modes.yaml")]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    shown = cli()
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("mode: normal since ")
    assert "decided by the rules" in shown.stdout
    assert cli("diversion").returncode == 2
    done = cli("diversion", "--reason", "regional outage", "--actor", "ann")
    assert done.returncode == 0, done.stderr
    assert "mode: diversion" in done.stdout and "declared by ann" in done.stdout

    async def diverted() -> None:
        async with engine_at(tmp_path) as engine:
            assert engine.modes.state.mode is OperatingMode.DIVERSION
            assert engine.outboxes["archive"].policy.deferred == {Lane.BULK, Lane.ROUTINE}

    asyncio.run(diverted())


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        (
            "{surge: {pace: [{destination: nowhere, per_second: 1}]}}",
            "modes > surge > pace[0] > destination: 'nowhere' is not a destination of any channel",
        ),
        ("{surge: {defer: [stat]}}", "`stat` is never deferred"),
        ("{surge: {defer: [bluk]}}", "bluk"),
        (
            "{rules: [{id: r, mode: surge, measure: ed_boarding, at_least: 1, at_most: 2}]}",
            "exactly one of `at_least`, `at_most`",
        ),
        (
            "{rules: [{id: r, mode: surge, measure: open_beds, unit: 9X, at_most: 1}]}",
            "modes > rules[0] > unit: '9X' is not a unit in views.units",
        ),
        (
            "{rules: [{id: r, mode: surge, measure: ed_boarding, unit: ED, at_least: 1}]}",
            "`ed_boarding` is not measured per unit",
        ),
        ("{rules: [{id: r, mode: normal, measure: ed_boarding, at_least: 1}]}", "`normal`"),
        ("{surge: {lane_weights: {urgnt: 3}}}", "did you mean 'urgent'"),
    ],
)
def test_mode_configuration_errors_are_located_and_worded(
    tmp_path: Path, modes: str, expected: str
) -> None:
    text = CONFIG.format(db=tmp_path / "m.db", out=tmp_path).split("modes:")[0]
    text += f"modes: {modes}\n"
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "modes.yaml")
    assert expected in str(raised.value), str(raised.value)
    assert str(raised.value).startswith("modes.yaml:")
    assert not str(raised.value).startswith("modes.yaml:1:"), "at the line naming it"


POLICY = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
channels:
  - id: mixed-in
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    lanes:
      default: urgent
      rules: [{{lane: bulk, when: [{{path: MSH-3, equals: LAB}}]}}]
    destinations:
      - {{id: mixed, type: file, path: {out}/mixed.hl7, memory_capacity: 10}}
      - {{id: paced, type: file, path: {out}/paced.hl7}}
      - {{id: held, type: file, path: {out}/held.hl7}}
modes:
  surge:
    pace: [{{destination: paced, per_second: 5}}]
    hold: [held]
"""


def test_surge_paces_and_holds_and_deferred_bulk_never_stalls_urgent_work(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        text = POLICY.format(db=tmp_path / "policy.db", out=tmp_path)
        engine = Engine(parse_config(text, "policy.yaml"))
        await engine.start()
        try:
            await engine.modes.declare(OperatingMode.SURGE, actor="user:ann", reason="drill")
            assert engine.outboxes["paced"].policy.pace == (5.0, 1.0)
            await engine.set_paused(PauseKind.DESTINATION, "paced", True, actor="t", reason="t")
            port = engine.source_port("mixed-in")
            lab = [adt("A08", f"L{n}", None, T0 + n, f"lab{n}", sender="LAB") for n in range(30)]
            assert len(await send_in_order(port, lab)) == 30
            urgent = [adt("A08", f"U{n}", None, T0 + 40 + n, f"urg{n}") for n in range(5)]
            assert len(await send_in_order(port, urgent)) == 5
            mixed = engine.outboxes["mixed"]
            # 35 pending, 10 in memory, all of them deferred bulk: bulk is sent to make
            # room, so the urgent deliveries waiting in the store are paged in and sent
            await eventually(
                lambda: {f"urg{n}" for n in range(5)} <= set(ids(tmp_path / "mixed.hl7")),
                20,
                "urgent deliveries past a memory full of deferred bulk",
            )
            paced = engine.outboxes["paced"]
            await engine.set_paused(PauseKind.DESTINATION, "paced", False, actor="t", reason="t")
            await eventually(lambda: paced.pending == 30, 20, "the urgent ones paced out")
            waits = engine.metrics.flow.outbox("mixed-in", "paced").rate_limit_waits.value
            assert waits > 0, "5 ready sends at 5/s with a burst of 1 waited for the pace"
            held = engine.outboxes["held"]
            assert held.pending == 35 and ids(tmp_path / "held.hl7") == []
            await engine.modes.declare(OperatingMode.NORMAL, actor="user:ann", reason="over")
            await eventually(lambda: held.pending == paced.pending == mixed.pending == 0, 20, "all")
        finally:
            await engine.stop()
        everything = sorted([f"lab{n}" for n in range(30)] + [f"urg{n}" for n in range(5)])
        for name in ("mixed", "paced", "held"):
            assert sorted(ids(tmp_path / f"{name}.hl7")) == everything, name

    asyncio.run(main())


def ids(path: Path) -> list[str]:
    """MSH-10 of every message a file destination wrote."""
    if not path.exists():
        return []
    return [record.split(b"|")[8].decode() for record in path.read_bytes().split(b"MSH|")[1:]]
