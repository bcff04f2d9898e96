"""The projection: ADT, A20, FHIR and bed-status JSON onto beds and patients, under ownership."""

from __future__ import annotations

import dataclasses
import json

from tests.views.support import T0, event, spec
from thumpflow.core.event import Event
from thumpflow.testing.hospital import a17, a20, adt, bed_status
from thumpflow.views.facts import BED_STATUS_JSON
from thumpflow.views.read import board, boarding, census, dirty_beds, outcomes, transfers
from thumpflow.views.state import Projection


def run(projection: Projection, *events: Event) -> Projection:
    for e in events:
        projection.apply(e, projection.position + 1)
    return projection


def beds(projection: Projection) -> dict[str, tuple[str, str | None]]:
    return {row["bed"]: (row["status"], row["patient"]) for row in board(projection)}


def test_admit_transfer_discharge_and_cleaning() -> None:
    p = run(
        Projection(spec()),
        event(adt("A04", "P1", "ED/01", T0 + 1, "c1", patient_class="E"), 1),
        event(adt("A06", "P1", "ED/01", T0 + 2, "c2"), 2),
    )
    assert beds(p)["ED/01"] == ("O", "P1")
    (row,) = boarding(p, now=T0 + 602)
    assert row["patient"] == "P1" and row["waiting"] == 600.0 and row["source"] == "ehr"
    run(p, event(adt("A02", "P1", "4W/401-A", T0 + 3, "c3"), 3))
    assert beds(p)["4W/401-A"] == ("O", "P1")
    assert beds(p)["ED/01"] == ("H", None)
    assert boarding(p, now=T0 + 700) == []
    assert [row["bed"] for row in dirty_beds(p, now=T0 + 10)] == ["ED/01"]
    run(
        p,
        event(
            bed_status("ED/01", T0 + 4, cleaning="clean"),
            4,
            channel="evs-in",
            content_type=BED_STATUS_JSON,
        ),
    )
    assert beds(p)["ED/01"] == ("U", None)
    run(p, event(adt("A03", "P1", "4W/401-A", T0 + 5, "c5"), 5))
    assert beds(p)["4W/401-A"] == ("H", None)
    unit = {row["unit"]: row for row in census(p)}["4W"]
    assert (unit["occupied"], unit["open"], unit["unavailable"], unit["total"]) == (0, 2, 1, 3)


def test_every_value_carries_source_as_of_and_lag() -> None:
    p = run(Projection(spec()), event(adt("A01", "P1", "4W/401-B", T0 + 7, "c1"), 1))
    row = next(r for r in board(p) if r["bed"] == "4W/401-B")
    assert (row["source"], row["as_of"], row["lag"], row["since"]) == ("ehr", T0 + 7, 0.5, T0 + 7)


def test_a_stale_transfer_never_rolls_the_location_back() -> None:
    p = run(
        Projection(spec()),
        event(adt("A01", "P1", "4W/401-A", T0 + 10, "c1"), 1),
        event(adt("A02", "P1", "4W/402-A", T0 + 30, "c2"), 2),
        event(adt("A02", "P1", "4W/401-B", T0 + 20, "c3"), 3),  # late: sent before c2
    )
    assert beds(p)["4W/402-A"] == ("O", "P1")
    assert beds(p)["4W/401-B"][1] is None
    (late,) = outcomes(p)["recent"]
    assert late["kind"] == "superseded" and late["field"] == "patient.location"
    assert late["rule"] == "newest: not newer by source_time" and late["event_id"] == "E000003"


def test_a17_swaps_both_patients_at_once() -> None:
    p = run(
        Projection(spec()),
        event(adt("A01", "P1", "4W/401-A", T0 + 1, "c1"), 1),
        event(adt("A01", "P2", "4W/401-B", T0 + 2, "c2"), 2),
        event(a17("P1", "4W/401-B", "P2", "4W/401-A", at=T0 + 3, control_id="c3"), 3),
    )
    assert beds(p)["4W/401-A"] == ("O", "P2")
    assert beds(p)["4W/401-B"] == ("O", "P1")


def test_a_stale_swap_is_superseded_whole() -> None:
    p = run(
        Projection(spec()),
        event(adt("A01", "P1", "4W/401-A", T0 + 1, "c1"), 1),
        event(adt("A01", "P2", "4W/401-B", T0 + 5, "c2"), 2),
        event(a17("P1", "4W/401-B", "P2", "4W/401-A", at=T0 + 3, control_id="c3"), 3),
    )
    assert beds(p)["4W/401-A"] == ("O", "P1")
    assert beds(p)["4W/401-B"] == ("O", "P2")


def test_cancellations_restore_and_clear() -> None:
    p = run(
        Projection(spec()),
        event(adt("A01", "P1", "4W/401-A", T0 + 1, "c1"), 1),
        event(adt("A02", "P1", "4W/402-A", T0 + 2, "c2"), 2),
        event(adt("A12", "P1", "4W/401-A", T0 + 3, "c3"), 3),  # cancel transfer
        event(adt("A01", "P2", "4W/401-B", T0 + 4, "c4"), 4),
        event(adt("A11", "P2", "4W/401-B", T0 + 5, "c5"), 5),  # cancel admit
        event(adt("A03", "P1", "4W/401-A", T0 + 6, "c6"), 6),
        event(adt("A13", "P1", "4W/401-A", T0 + 7, "c7"), 7),  # cancel discharge
    )
    assert beds(p)["4W/401-A"] == ("O", "P1")
    assert beds(p)["4W/401-B"][1] is None
    assert beds(p)["4W/402-A"] == ("U", None)  # a cancelled transfer leaves no dirty bed


def test_pending_transfer_and_discharge_feed_the_queue_and_census() -> None:
    p = run(
        Projection(spec()),
        event(adt("A04", "P1", "ED/02", T0 + 1, "c1", patient_class="E"), 1),
        event(adt("A15", "P1", "ED/02", T0 + 2, "c2", pending="4W/401-B"), 2),
        event(adt("A01", "P2", "4W/401-A", T0 + 3, "c3"), 3),
        event(adt("A16", "P2", "4W/401-A", T0 + 4, "c4"), 4),
    )
    queue = {row["patient"]: row for row in transfers(p)}
    assert queue["P1"]["to"] == "4W/401-B" and queue["P1"]["from"] == "ED/02"
    assert queue["P2"]["to"] == "discharge"
    units = {row["unit"]: row for row in census(p)}
    assert (units["4W"]["pending_in"], units["4W"]["pending_out"]) == (1, 1)
    assert units["ED"]["pending_out"] == 1
    run(p, event(adt("A02", "P1", "4W/401-B", T0 + 5, "c5"), 5))
    assert [row["patient"] for row in transfers(p)] == ["P2"]
    run(p, event(adt("A25", "P2", "4W/401-A", T0 + 6, "c6"), 6))
    assert transfers(p) == []


def test_a20_statuses_and_leave_of_absence() -> None:
    p = run(
        Projection(spec()),
        event(a20("4W/401-A", "C", T0 + 1, "b1"), 1, channel="beds-in"),
        event(a20("4W/401-B", "K", T0 + 2, "b2"), 2, channel="beds-in"),
        event(a20("4W/402-A", "I", T0 + 3, "b3"), 3, channel="beds-in"),
        event(adt("A01", "P1", "ED/01", T0 + 4, "c4"), 4),
        event(adt("A21", "P1", "ED/01", T0 + 5, "c5"), 5),
    )
    assert {bed: status for bed, (status, _) in beds(p).items()} == {
        "ED/01": "O",
        "ED/02": "U",
        "ED/03": "U",
        "4W/401-A": "C",
        "4W/401-B": "K",
        "4W/402-A": "I",
    }
    assert next(r for r in board(p) if r["bed"] == "ED/01")["on_leave"] is True
    run(p, event(a20("4W/401-A", "U", T0 + 6, "b6"), 6, channel="beds-in"))
    assert beds(p)["4W/401-A"] == ("U", None)


def test_fhir_location_and_encounter() -> None:
    location = {
        "resourceType": "Location",
        "identifier": [{"value": "4W/401-A"}],
        "operationalStatus": {"code": "H"},
    }
    encounter = {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {"code": "IMP"},
        "subject": {"reference": "Patient/P9"},
        "location": [
            {"status": "active", "location": {"identifier": {"value": "ED/03"}}},
            {"status": "planned", "location": {"identifier": {"value": "4W/402-A"}}},
        ],
    }
    fhir = "application/fhir+json"
    p = run(
        Projection(spec()),
        event(json.dumps(location).encode(), 1, content_type=fhir),
        event(json.dumps(encounter).encode(), 2, content_type=fhir),
    )
    assert beds(p)["4W/401-A"] == ("H", None)
    assert beds(p)["ED/03"] == ("O", "P9")
    assert [row["patient"] for row in boarding(p, now=T0 + 100)] == ["P9"]
    assert {row["unit"]: row["pending_in"] for row in census(p)}["4W"] == 1
    run(p, event(json.dumps({**encounter, "status": "finished"}).encode(), 3, content_type=fhir))
    assert beds(p)["ED/03"] == ("H", None)


def test_a_bundle_is_read_entry_by_entry_and_derived_events_are_not_applied() -> None:
    location = {
        "resourceType": "Location",
        "identifier": [{"value": "4W/401-B"}],
        "operationalStatus": {"code": "C"},
    }
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": location}]}
    fhir = "application/fhir+json"
    p = run(Projection(spec()), event(json.dumps(bundle).encode(), 1, content_type=fhir))
    assert beds(p)["4W/401-B"] == ("C", None)
    derived = dataclasses.replace(
        event(adt("A01", "P1", "4W/401-A", T0 + 5, "c2"), 2), causation_id="E000001"
    )
    assert not p.apply(derived, 2)
    assert beds(p)["4W/401-A"] == ("U", None)


def test_owner_only_rejects_and_conflict_is_kept_for_a_person() -> None:
    views = spec(
        patient={"location": {"owners": ["ehr"], "precedence": "owner_only"}},
        bed={"block": {"owners": ["beds"], "precedence": "conflict"}},
    )
    p = run(
        Projection(views),
        event(adt("A01", "P1", "4W/401-A", T0 + 1, "c1"), 1, channel="beds-in"),
        event(
            bed_status("4W/402-A", T0 + 2, block=True),
            2,
            channel="evs-in",
            content_type=BED_STATUS_JSON,
        ),
    )
    assert beds(p)["4W/401-A"] == ("U", None)
    assert beds(p)["4W/402-A"] == ("U", None)
    seen = outcomes(p)
    assert seen["counts"] == {"conflict": 1, "rejected": 1}
    assert seen["recent"][1]["rule"] == "owner_only: beds does not own patient.location"
    (conflict,) = seen["conflicts"]
    settled = event(a20("4W/402-A", "U", T0 + 3, "b3"), 3, channel="beds-in")
    assert (conflict["field"], conflict["subject"], conflict["system"]) == (
        "bed.block",
        "4W/402-A",
        "evs",
    )
    run(p, settled)  # the owner's newer write closes the conflict
    assert outcomes(p)["conflicts"] == []
    assert outcomes(p)["counts"]["conflict"] == 1


def test_owner_wins_over_a_newer_non_owner() -> None:
    views = spec(bed={"cleaning": {"owners": ["evs"], "precedence": "owner_wins"}})
    json_event = {"channel": "evs-in", "content_type": BED_STATUS_JSON}
    p = run(
        Projection(views),
        event(bed_status("4W/401-A", T0 + 5, cleaning="clean"), 1, **json_event),  # type: ignore[arg-type]
        event(a20("4W/401-A", "H", T0 + 9, "b2"), 2, channel="beds-in"),
    )
    assert beds(p)["4W/401-A"] == ("U", None)
    assert outcomes(p)["recent"][0]["rule"] == "owner_wins: bed.cleaning was set by an owner"


def test_source_version_orders_by_entity_version_first() -> None:
    views = spec(patient={"location": {"key": "source_version"}})
    p = run(
        Projection(views),
        event(adt("A01", "P1", "4W/401-A", T0 + 9, "c1"), 1, sequence=2),
        event(adt("A02", "P1", "4W/401-B", T0 + 20, "c2"), 2, sequence=1),
    )
    assert beds(p)["4W/401-A"] == ("O", "P1")


def test_events_of_other_channels_and_replays_change_nothing() -> None:
    p = Projection(spec())
    assert not p.apply(event(adt("A01", "P1", "4W/401-A", T0, "c1"), 1, channel="lab"), 1)
    assert p.apply(event(adt("A01", "P1", "4W/401-A", T0, "c1"), 2), 2)
    assert not p.apply(event(adt("A03", "P1", "4W/401-A", T0 + 1, "c2"), 3), 2)
    assert beds(p)["4W/401-A"] == ("O", "P1")


def test_unreadable_content_is_counted_without_quoting_it() -> None:
    p = run(
        Projection(spec()),
        event(
            b'{"bed": "SECRET-NAME", "cleaning": "clean"}',
            1,
            channel="evs-in",
            content_type=BED_STATUS_JSON,
        ),
        event(b"not json", 2, channel="evs-in", content_type=BED_STATUS_JSON),
    )
    recent = outcomes(p)["recent"]
    assert [row["kind"] for row in recent] == ["unreadable", "unreadable"]
    assert "SECRET" not in json.dumps(recent)
