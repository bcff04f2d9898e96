"""Bed status changes published to a channel's destinations: in order per bed, once each.

A running engine with `views.publish` to a channel with a file destination:
ADT changes beds, each change of a bed's status arrives once as a FHIR
Location (table 0116 operationalStatus), in order; a restart publishes every
bed's state again and nothing arrives twice (the idempotency keys make them
duplicates). The A20 form is checked as HL7.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.e2e.harness import eventually
from tests.e2e.procs import send_in_order
from tests.views.support import T0
from tests.views.test_live import CONFIG
from thumpflow.config import parse_config
from thumpflow.fhir import validate
from thumpflow.hl7v2 import Message
from thumpflow.runtime.engine import Engine
from thumpflow.testing.hospital import adt
from thumpflow.views.publish import publication

PUBLISH = """\
  - id: beds-out
    http_ingest: {{enabled: true}}
    destinations:
      - {{id: bed-feed, type: file, path: {out}/beds.jsonl, format: jsonl}}
views:
  publish: {{channel: beds-out}}
"""


@asynccontextmanager
async def publishing(tmp_path: Path) -> AsyncIterator[Engine]:
    text = CONFIG.format(db=tmp_path / "views.db", out=tmp_path).replace(
        "views:\n", PUBLISH.format(out=tmp_path), 1
    )
    engine = Engine(parse_config(text, "views.yaml"))
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


def published(tmp_path: Path) -> list[tuple[str, str]]:
    path = tmp_path / "beds.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    bundles = [json.loads(json.loads(line)["body"]) for line in lines if line.strip()]
    rows = [bundle["entry"][0]["resource"] for bundle in bundles]
    return [(r["identifier"][0]["value"], r["operationalStatus"]["code"]) for r in rows]


def test_each_change_is_published_once_in_order_per_bed(tmp_path: Path) -> None:
    async def main() -> None:
        async with publishing(tmp_path) as engine:
            port = engine.source_port("adt-in")
            sent = [  # each message, and the bed and status it leaves last changed
                (adt("A01", "P1", "4W/401-A", T0 + 1, "m1"), "4W/401-A", "O"),
                (adt("A02", "P1", "4W/401-B", T0 + 2, "m2"), "4W/401-B", "O"),
                (adt("A03", "P1", "4W/401-B", T0 + 3, "m3"), "4W/401-B", "H"),
            ]
            views = engine.views
            assert views is not None
            # One at a time, each applied before the next is sent: each its own
            # catch-up (changes within one catch-up are published once, the latest).
            for message, bed, status in sent:
                assert len(await send_in_order(port, [message])) == 1
                await eventually(
                    lambda bed=bed, status=status: views.projection.beds[bed].status == status,
                    10,
                    "applied",
                )
            expect = [("4W/401-A", "O"), ("4W/401-A", "H"), ("4W/401-B", "O"), ("4W/401-B", "H")]
            await eventually(lambda: len(published(tmp_path)) == 4, 10, "four publications")
            got = published(tmp_path)
            assert sorted(got) == sorted(expect)
            for bed in ("4W/401-A", "4W/401-B"):
                assert [s for b, s in got if b == bed] == [s for b, s in expect if b == bed]
        async with publishing(tmp_path) as again:  # every bed's state published again: duplicates
            assert len(await again.store.events_after(0, ["beds-out"], 100)) == 4
            assert again.outboxes["bed-feed"].pending == 0
        assert len(published(tmp_path)) == 4

    asyncio.run(main())


def test_changes_not_published_before_a_stop_are_published_at_the_next_start(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with publishing(tmp_path) as engine:
            assert engine.views is not None
            engine.views.publisher = None  # as if the engine died before publishing
            port = engine.source_port("adt-in")
            sent = [
                adt("A01", "P1", "4W/401-A", T0 + 1, "m1"),
                adt("A01", "P2", "ED/01", T0 + 2, "m2"),
            ]
            assert len(await send_in_order(port, sent)) == 2
            await eventually(lambda: engine.views.projection.position >= 2, 10, "applied")  # type: ignore[union-attr]
        assert published(tmp_path) == []
        async with publishing(tmp_path):
            await eventually(lambda: len(published(tmp_path)) == 2, 10, "published at start")
        assert sorted(published(tmp_path)) == [("4W/401-A", "O"), ("ED/01", "O")]

    asyncio.run(main())


def test_the_location_bundle_is_valid_fhir_r4() -> None:
    event = publication("4W/401-A", "K", 3, T0, fmt="fhir_location", channel="b", now=T0)
    bundle = json.loads(event.body)
    assert [i for i in validate(bundle) if i.severity == "error"] == []
    (entry,) = bundle["entry"]
    assert entry["request"] == {"method": "PUT", "url": f"Location/{entry['resource']['id']}"}
    assert entry["resource"]["operationalStatus"]["code"] == "K"


def test_the_a20_form_names_the_bed_and_status() -> None:
    event = publication("4W/401-A", "H", 7, T0, fmt="hl7_a20", channel="beds-out", now=T0 + 1)
    message = Message.parse(event.body)
    assert (message.get("MSH-9.2"), message.get("NPU-1.1"), message.get("NPU-1.2")) == (
        "A20",
        "4W",
        "401",
    )
    assert (message.get("NPU-1.3"), message.get("NPU-2")) == ("A", "H")
    assert (event.idempotency_key, event.ordering_key, event.sequence) == (
        "views|4W/401-A|7",
        "Location/4W/401-A",
        7,
    )
