"""A person settles a conflict: applied with an owner's authority or dismissed, and a rebuild
settles it again; a settlement of a conflict no longer open changes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.api_support import api_client, issue
from tests.browser import chromium
from tests.dashboard.test_browser import sign_in
from tests.dashboard.test_browser_acts import act
from tests.e2e.harness import eventually
from tests.views.support import SPEC, T0, event, spec
from thumpflow.api.app import build_app
from thumpflow.api.auth import Authenticator
from thumpflow.api.server import serve
from thumpflow.config import parse_config
from thumpflow.config.views import SETTLEMENTS_CHANNEL, ViewsSpec
from thumpflow.core.access import Role
from thumpflow.core.errors import ConfigError
from thumpflow.core.event import Event
from thumpflow.runtime.engine import Engine
from thumpflow.testing.hospital import a20, adt, bed_status
from thumpflow.views.facts import BED_STATUS_JSON, SETTLEMENT_JSON, settlement
from thumpflow.views.read import board, conflict_id, open_conflict, outcomes
from thumpflow.views.state import Projection

VIEWS = spec(
    patient={"location": {"owners": ["ehr"], "precedence": "conflict"}},
    bed={"block": {"owners": ["beds"], "precedence": "conflict"}},
)


def blocked(n: int, at: float) -> Event:
    body = bed_status("4W/402-A", at, block=True)
    return event(body, n, channel="evs-in", content_type=BED_STATUS_JSON)


def settle(n: int, p: Projection, accept: bool, *, channel: str = SETTLEMENTS_CHANNEL) -> Event:
    (conflict,) = p.conflicts.values()
    body = settlement(conflict.field, conflict.subject, conflict.event_id, accept)
    return event(body, n, channel=channel, content_type=SETTLEMENT_JSON, at=T0 + 100 + n)


def apply_all(events: list[Event]) -> Projection:
    p = Projection(VIEWS)
    for position, one in enumerate(events, start=1):
        p.apply(one, position)
    return p


def block_of(p: Projection) -> object:
    return p.beds["4W/402-A"].block.value


def test_accepting_applies_the_write_as_an_owner_and_a_rebuild_agrees() -> None:
    log = [blocked(1, T0 + 1)]
    p = apply_all(log)
    assert block_of(p) is False
    (row,) = outcomes(p)["conflicts"]
    assert open_conflict(p, row["id"]) is not None
    assert "4W/402-A" not in row["id"]
    log.append(settle(2, p, accept=True))
    p.apply(log[-1], 2)
    assert block_of(p) is True
    assert p.beds["4W/402-A"].block.stamp is not None
    assert p.beds["4W/402-A"].block.stamp.system == "operator"
    assert outcomes(p)["conflicts"] == []
    assert outcomes(p)["counts"] == {"conflict": 1, "settled": 1}
    assert apply_all(log).state() == p.state()


def test_dismissing_keeps_the_field_and_closes_the_conflict() -> None:
    log = [blocked(1, T0 + 1)]
    p = apply_all(log)
    log.append(settle(2, p, accept=False))
    p.apply(log[-1], 2)
    assert block_of(p) is False
    assert outcomes(p)["conflicts"] == []
    assert outcomes(p)["counts"] == {"conflict": 1, "dismissed": 1}
    assert apply_all(log).state() == p.state()


def test_a_settlement_of_a_conflict_overtaken_changes_nothing() -> None:
    log = [blocked(1, T0 + 1)]
    p = apply_all(log)
    stale = settle(3, p, accept=True)
    log += [event(a20("4W/402-A", "U", T0 + 2, "b2"), 2, channel="beds-in"), stale]
    p = apply_all(log)
    assert block_of(p) is False
    assert outcomes(p)["recent"][0]["rule"] == "the conflict is no longer open"
    assert outcomes(p)["conflicts"] == []


def test_a_placement_accepted_by_a_person_moves_the_patient() -> None:
    log = [event(adt("A01", "P1", "4W/401-A", T0 + 1, "c1"), 1, channel="beds-in")]
    p = apply_all(log)
    assert board(p)[0]["patient"] is None
    log.append(settle(2, p, accept=True))
    p = apply_all(log)
    assert p.patients["P1"].location.value == "4W/401-A"
    assert p.beds["4W/401-A"].occupant == "P1"


def test_only_the_operator_system_settles() -> None:
    log = [blocked(1, T0 + 1)]
    p = apply_all(log)
    forged = settle(2, p, accept=True, channel="evs-in")
    p.apply(forged, 2)
    assert block_of(p) is False
    assert len(p.conflicts) == 1
    assert outcomes(p)["recent"][0]["rule"] == "only a person settles a conflict"


def test_the_conflict_id_names_no_subject() -> None:
    p = apply_all([blocked(1, T0 + 1)])
    (conflict,) = p.conflicts.values()
    assert len(conflict_id(conflict)) == 20 and conflict.subject not in conflict_id(conflict)


CONFIG = """\
version: 1
store: {{path: {db}}}
api: {{enabled: false}}
channels:
  - id: evs-in
    http_ingest: {{enabled: true}}
    destinations:
      - {{id: evs-archive, type: file, path: {out}/evs.ndjson}}
  - id: beds-in
    http_ingest: {{enabled: true}}
    destinations:
      - {{id: beds-archive, type: file, path: {out}/beds.ndjson}}
views:
  systems:
    - {{id: beds, channels: [beds-in]}}
    - {{id: evs, channels: [evs-in]}}
  units:
    - {{id: 4W, beds: [401-A, 401-B, 402-A]}}
  ownership:
    bed:
      block: {{owners: [beds], precedence: conflict}}
"""


def test_a_person_settles_over_the_api_audited_and_once(tmp_path: Path) -> None:
    text = CONFIG.format(db=tmp_path / "views.db", out=tmp_path)

    async def scenario() -> None:
        engine = Engine(parse_config(text, "views.yaml"))
        await engine.start()
        try:
            assert engine.views is not None
            async with (
                api_client(engine, Role.SENDER) as sender,
                api_client(engine, Role.VIEWER) as viewer,
                api_client(engine, Role.OPERATOR) as operator,
            ):
                body = bed_status("4W/402-A", T0 + 1, block=True)
                headers = {"Content-Type": BED_STATUS_JSON}
                async with sender.post(
                    "/api/channels/evs-in/messages", data=body, headers=headers
                ) as r:
                    assert r.status == 202
                await eventually(lambda: bool(engine.views and engine.views.projection.conflicts))
                async with viewer.get("/api/views/outcomes") as r:
                    (conflict,) = (await r.json())["conflicts"]
                path = f"/api/views/conflicts/{conflict['id']}/settle"
                request = {"accept": True, "reason": "the unit manager confirmed the block"}
                async with viewer.post(path, json=request) as r:
                    assert r.status == 403
                async with operator.post(path, json=request) as r:
                    assert r.status == 200, await r.text()
                    answer = await r.json()
                await eventually(lambda: block_of(engine.views.projection) is True)  # type: ignore[union-attr]
                async with operator.post(path, json=request) as r:
                    assert r.status == 404
                (entry,) = await engine.store.audit(action="views.conflict_settled")
                assert entry.detail.startswith("applied the bed.block write of event ")
                # No value of the message (the bed 4W/402-A); the detail names
                # the event by its id, whose random part may hold any digits.
                assert "402-A" not in entry.detail and entry.actor != ""
                fresh = Projection(engine.views.spec)
                for position, one in await engine.store.events_after(0, engine.views.channels, 100):
                    fresh.apply(one, position)
                assert fresh.state() == engine.views.projection.state()
                assert answer["duplicate"] is False
        finally:
            await engine.stop()

    asyncio.run(scenario())


def test_the_operator_system_and_the_settlements_channel_are_reserved() -> None:
    with pytest.raises(ValueError, match="'operator' is reserved"):
        ViewsSpec.model_validate({**SPEC, "systems": [{"id": "operator", "channels": ["a"]}]})
    text = CONFIG.format(db="v.db", out=".").replace("id: beds-in", "id: views-settlements")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "views.yaml")
    assert any("'views-settlements' is reserved" in p for p in caught.value.problems)


def test_an_operator_applies_a_conflicting_write_from_the_beds_page(tmp_path: Path) -> None:
    text = CONFIG.format(db=tmp_path / "views.db", out=tmp_path)

    async def scenario() -> None:
        engine = Engine(parse_config(text, "views.yaml"))
        await engine.start()
        server = await serve(build_app(engine, Authenticator(engine.store)), "127.0.0.1", 0)
        try:
            async with api_client(engine, Role.SENDER) as sender:
                body = bed_status("4W/402-A", T0 + 1, block=True)
                headers = {"Content-Type": BED_STATUS_JSON}
                async with sender.post(
                    "/api/channels/evs-in/messages", data=body, headers=headers
                ) as r:
                    assert r.status == 202
            url = f"http://127.0.0.1:{server.port}"
            async with chromium() as page:
                await sign_in(page, url, await issue(engine, Role.OPERATOR, "bed-manager"))
                await page.goto(url + "/#/beds")
                await page.wait_for(
                    "document.querySelector('button[data-settle=\"apply\"]') !== null",
                    what="the open conflict with its acts",
                )
                flashed = await act(page, 'button[data-settle="apply"]', "block confirmed")
                assert flashed == "The write is applied."
                status = await page.wait_for(
                    "document.querySelector('button[data-settle]') === null"
                    " && document.querySelector('li[data-bed=\"4W/402-A\"]').dataset.status",
                    what="the conflict settled and the bed redrawn",
                )
                assert status != "U"
                assert page.errors == []
            (entry,) = await engine.store.audit(action="views.conflict_settled")
            assert entry.actor == "bed-manager"
            assert entry.detail.endswith(": block confirmed")
        finally:
            await server.close()
            await engine.stop()

    asyncio.run(scenario())


def test_a_repair_of_census_drift_places_the_snapshot_occupants_over_the_api(
    tmp_path: Path,
) -> None:
    text = CONFIG.format(db=tmp_path / "views.db", out=tmp_path).replace(
        "    bed:\n",
        "    patient:\n      location: {owners: [beds], precedence: newest}\n    bed:\n",
    )
    snapshot = "unit,bed,patient\n4W,401-A,P2\n4W,401-B,\n4W,402-A,P1\n"

    async def scenario() -> None:
        engine = Engine(parse_config(text, "views.yaml"))
        await engine.start()
        try:
            assert engine.views is not None
            views = engine.views
            async with (
                api_client(engine, Role.SENDER) as sender,
                api_client(engine, Role.OPERATOR) as operator,
            ):
                for n, (patient, bed) in enumerate([("P1", "4W/401-A"), ("P3", "4W/401-B")]):
                    body = adt("A01", patient, bed, T0 + n, f"c{n}")
                    headers = {"Content-Type": "x-application/hl7-v2+er7"}
                    async with sender.post(
                        "/api/channels/beds-in/messages", data=body, headers=headers
                    ) as r:
                        assert r.status == 202
                await eventually(lambda: views.projection.beds["4W/401-B"].occupant == "P3")
                request = {"snapshot": snapshot, "as_of": "2026-12-05T23:00:00Z"}
                async with operator.post("/api/views/reconcile", json=request) as r:
                    report = await r.json()
                assert [d["bed"] for d in report["drift"]] == ["4W/401-A", "4W/401-B", "4W/402-A"]
                assert report["repair_event_id"] is None
                async with operator.post(
                    "/api/views/reconcile", json={**request, "repair": True}
                ) as r:
                    assert r.status == 422
                request = {**request, "repair": True, "reason": "night census"}
                async with operator.post("/api/views/reconcile", json=request) as r:
                    assert r.status == 200, await r.text()
                    assert (await r.json())["duplicate"] is False
                beds = views.projection.beds
                await eventually(lambda: beds["4W/402-A"].occupant == "P1")
                assert (beds["4W/401-A"].occupant, beds["4W/401-B"].occupant) == ("P2", None)
                async with operator.post("/api/views/reconcile", json=request) as r:
                    again = await r.json()
                assert again["drift"] == [] and again["repair_event_id"] is None
            (entry,) = await engine.store.audit(action="views.drift_repaired")
            assert entry.detail.startswith("3 beds corrected from the census snapshot of ")
            assert "P1" not in entry.detail
            fresh = Projection(views.spec)
            for position, one in await engine.store.events_after(0, views.channels, 100):
                fresh.apply(one, position)
            assert fresh.state() == views.projection.state()
        finally:
            await engine.stop()

    asyncio.run(scenario())
