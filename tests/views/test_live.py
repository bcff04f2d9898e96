"""Views kept live by a running engine, rebuilt from the log, served over the API.

A real engine (SQLite store, MLLP listener on loopback, HTTP API on
loopback): ADT over MLLP and bed-status JSON over HTTP ingest reach the bed
board as they commit; a rebuild from the event log gives exactly the live
state, also across a restart; viewers see the board with patients masked.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.api_support import api_client
from tests.e2e.harness import eventually
from tests.e2e.procs import send_in_order
from tests.views.support import T0, spec
from tests.views.support import event as committed
from thumpflow.api.masking import MASK
from thumpflow.config import parse_config
from thumpflow.core.access import Role
from thumpflow.core.clock import SystemClock
from thumpflow.core.errors import StoreError
from thumpflow.core.event import Event
from thumpflow.runtime.engine import Engine
from thumpflow.testing.hospital import a17, adt, bed_status
from thumpflow.views.facts import BED_STATUS_JSON, read_bed_status
from thumpflow.views.live import LiveViews
from thumpflow.views.read import board
from thumpflow.views.state import Projection

CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
channels:
  - id: adt-in
    source: {{type: mllp, host: 127.0.0.1, port: 0}}
    destinations:
      - {{id: archive, type: file, path: {out}/adt.hl7}}
  - id: evs-in
    http_ingest: {{enabled: true}}
    destinations:
      - {{id: evs-archive, type: file, path: {out}/evs.ndjson}}
views:
  systems:
    - {{id: ehr, channels: [adt-in]}}
    - {{id: evs, channels: [evs-in]}}
  units:
    - {{id: ED, kind: ed, beds: 3}}
    - {{id: 4W, beds: [401-A, 401-B, 402-A]}}
  ownership:
    patient:
      location: {{owners: [ehr], precedence: owner_only}}
    bed:
      cleaning: {{owners: [evs, ehr], precedence: newest}}
"""


@asynccontextmanager
async def engine_at(tmp_path: Path) -> AsyncIterator[Engine]:
    text = CONFIG.format(db=tmp_path / "views.db", out=tmp_path)
    (tmp_path / "views.yaml").write_text(text)
    engine = Engine(parse_config(text, "views.yaml"))
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


def status(engine: Engine) -> dict[str, tuple[str, str | None]]:
    assert engine.views is not None
    return {row["bed"]: (row["status"], row["patient"]) for row in board(engine.views.projection)}


async def rebuilt(engine: Engine) -> Projection:
    assert engine.views is not None
    fresh = Projection(engine.views.spec)
    for position, event in await engine.store.events_after(0, engine.views.channels, 10_000):
        fresh.apply(event, position)
    return fresh


async def get(client: aiohttp.ClientSession, path: str) -> Any:
    async with client.get(path) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def post_bed_status(client: aiohttp.ClientSession, body: bytes) -> tuple[int, Any]:
    headers = {"Content-Type": BED_STATUS_JSON}
    async with client.post("/api/channels/evs-in/messages", data=body, headers=headers) as r:
        return r.status, await r.json()


def test_adt_and_bed_status_reach_the_board_live_and_a_rebuild_agrees(tmp_path: Path) -> None:
    async def main() -> None:
        async with engine_at(tmp_path) as engine:
            assert engine.views is not None
            port = engine.source_port("adt-in")
            messages = [
                adt("A01", "P1", "4W/401-A", T0 + 1, "m1"),
                adt("A01", "P2", "4W/401-B", T0 + 2, "m2"),
                a17("P1", "4W/401-B", "P2", "4W/401-A", at=T0 + 3, control_id="m3"),
                adt("A03", "P2", "4W/401-A", T0 + 4, "m4"),
                adt("A02", "P1", "4W/401-B", T0 + 2.5, "m5"),  # late: older than the swap
            ]
            assert len(await send_in_order(port, messages)) == len(messages)
            await eventually(lambda: status(engine)["4W/401-A"] == ("H", None), 10, "discharge")
            assert status(engine)["4W/401-B"] == ("O", "P1")
            async with (
                api_client(engine, Role.SENDER) as sender,
                api_client(engine, Role.VIEWER) as viewer,
                api_client(engine, Role.OPERATOR) as operator,
            ):
                code, answer = await post_bed_status(
                    sender, bed_status("4W/401-A", T0 + 5, cleaning="clean")
                )
                assert code == 202, answer
                code, answer = await post_bed_status(sender, b'{"bed": "x", "cleaning": 1}')
                assert code == 400 and "reject_id" in answer
                await eventually(lambda: status(engine)["4W/401-A"] == ("U", None), 10, "clean")
                seen = await get(viewer, "/api/views/board?unit=4W")
                rows = {row["bed"]: row for row in seen["beds"]}
                assert rows["4W/401-B"]["patient"] == MASK
                assert rows["4W/401-A"]["source"] == "evs"
                assert seen["position"] == engine.views.projection.position
                full = await get(operator, "/api/views/board")
                assert {row["bed"]: row["patient"] for row in full["beds"]}["4W/401-B"] == "P1"
                census = {u["unit"]: u for u in (await get(viewer, "/api/views/census"))["units"]}
                assert (census["4W"]["occupied"], census["4W"]["open"]) == (1, 2)
                found = await get(viewer, "/api/views/outcomes")
                assert found["counts"] == {"superseded": 1}
                assert found["recent"][0]["subject"] == MASK
                async with viewer.post("/api/views/rebuild") as refused:
                    assert refused.status == 403
                async with operator.post("/api/views/rebuild") as done:
                    assert done.status == 200 and (await done.json())["events"] == 6
            live = engine.views.projection.state()
            assert (await rebuilt(engine)).state() == live
        async with engine_at(tmp_path) as again:  # a restart rebuilds the same state
            assert again.views is not None and again.views.projection.state() == live

    asyncio.run(main())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "thumpflow.cli.main",
            "views",
            "rebuild",
            "--board",
            "-c",
            str(tmp_path / "views.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "unit",
        "kind",
        "occupied",
        "open",
        "unavailable",
        "pending",
        "in",
        "pending",
        "out",
        "total",
    ]
    assert lines[2].split() == ["4W", "inpatient", "1", "2", "0", "0", "0", "3"]
    assert "writes not applied: superseded 1" in done.stdout
    assert any(line.split()[:3] == ["4W/401-B", "O", "P1"] for line in lines)
    assert "rebuilt from 6 events" in done.stdout
    snapshot = tmp_path / "census.csv"
    snapshot.write_text("unit,bed,patient\n4W,401-A,\n4W,401-B,P1\n4W,402-A,P9\n")
    compared = subprocess.run(
        [
            sys.executable,
            "-m",
            "thumpflow.cli.main",
            "views",
            "reconcile",
            str(snapshot),
            "--as-of",
            "2026-12-05T10:00:00Z",
            "-c",
            str(tmp_path / "views.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert compared.returncode == 1, compared.stderr
    assert "compared 3 beds; 0 changed after the snapshot (not compared); drift in 1" in (
        compared.stdout
    )
    assert compared.stdout.splitlines()[-1].split() == ["4W/402-A", "-", "P9"]


def test_bed_status_json_is_read_or_named_without_quoting() -> None:
    assert read_bed_status(bed_status("4W/401-A", T0, cleaning="dirty")) == ("4W/401-A", T0)
    assert read_bed_status(b'{"bed": "4W/1", "at": "noon-ish", "block": true}') == (
        "bed-status JSON `at` is not an ISO 8601 time with a zone"
    )
    assert read_bed_status(b'{"bed": "4W/1", "cleaning": "sparkling"}') == (
        "bed-status JSON `cleaning` is not one of dirty, cleaning, clean, contaminated"
    )
    assert read_bed_status(b"[1]") == "bed-status JSON without `bed`"
    assert read_bed_status(b"\xff") == "bed-status JSON is not a JSON object"


class _FlakyLog:
    """An event log in memory whose read after position `fail_after` fails once."""

    def __init__(self, events: list[tuple[int, Event]], fail_after: int) -> None:
        self.events = events
        self.fail_after = fail_after
        self.reads: list[int] = []

    async def events_after(
        self, position: int, channels: Sequence[str], limit: int = 1000
    ) -> list[tuple[int, Event]]:
        self.reads.append(position)
        if position == self.fail_after:
            self.fail_after = -1
            raise StoreError("the disk went away")
        return [(p, e) for p, e in self.events if p > position][:limit]

    async def last_position(self) -> int:
        return self.events[-1][0] if self.events else 0


def test_a_failed_read_ahead_keeps_what_was_applied_and_the_next_catch_up_resumes() -> None:
    messages = [
        adt("A01", f"P{n}", f"4W/{bed}", T0 + n, f"m{n}")
        for n, bed in enumerate(["401-A", "401-B", "402-A"], 1)
    ]
    log = _FlakyLog([(n, committed(body, n)) for n, body in enumerate(messages, 1)], fail_after=2)

    async def main() -> None:
        views = LiveViews(spec(), log, SystemClock(), batch=2)
        with pytest.raises(StoreError):
            await views.catch_up()
        assert views.projection.position == 2  # the first page, read ahead of its failure
        assert await views.catch_up() == 1
        assert views.projection.position == 3
        assert log.reads == [0, 2, 2]

    asyncio.run(main())
