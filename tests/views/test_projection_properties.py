"""Properties of the projection over random interleavings (hypothesis).

ADT (admit, transfer, discharge, cancellations, pending, leave, A17 swaps),
A20 bed statuses and bed-status JSON from three systems, with source times
drawn from a narrow range so that late, out-of-order and tied events are
common, and earlier messages resent (duplicate delivery). Ownership rules
are drawn too. At every step: no patient in two beds, no bed with two
patients, no field's stamp ever goes back under its rule. At the end:
rebuilding from the log in commit order gives exactly the live state, also
when the live projection was resumed from an earlier position.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.views.support import T0, event, spec
from thumpflow.config.views import MonotonicKey, Precedence
from thumpflow.core.event import Event
from thumpflow.testing.hospital import a17, a20, adt, bed_status
from thumpflow.views import state
from thumpflow.views.facts import BED_STATUS_JSON
from thumpflow.views.read import board
from thumpflow.views.state import Projection, Value

PATIENTS = ["P1", "P2", "P3", "P4"]
BEDS = ["ED/01", "ED/02", "4W/401-A", "4W/401-B", "4W/402-A"]
CHANNELS = ["adt-in", "evs-in", "beds-in"]
TRIGGERS = [
    "A01",
    "A02",
    "A03",
    "A04",
    "A06",
    "A07",
    "A08",
    "A11",
    "A12",
    "A13",
    "A14",
    "A15",
    "A16",
    "A21",
    "A22",
    "A25",
    "A26",
    "A27",
    "A52",
    "A53",
]

times = st.integers(min_value=0, max_value=12).map(lambda t: T0 + t)


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, str, bytes]:
    kind = draw(st.sampled_from(["adt", "adt", "adt", "swap", "a20", "json"]))
    at = draw(times)
    cid = f"c{draw(st.integers(0, 10**6))}"
    channel = draw(st.sampled_from(CHANNELS))
    if kind == "adt":
        body = adt(
            draw(st.sampled_from(TRIGGERS)),
            draw(st.sampled_from(PATIENTS)),
            draw(st.sampled_from(BEDS)),
            at,
            cid,
            pending=draw(st.none() | st.sampled_from(BEDS)),
            patient_class=draw(st.sampled_from("IE")),
        )
        return channel, "hl7", body
    if kind == "swap":
        first, second = draw(st.permutations(PATIENTS))[:2]
        one, two = draw(st.permutations(BEDS))[:2]
        return channel, "hl7", a17(first, one, second, two, at=at, control_id=cid)
    if kind == "a20":
        return (
            channel,
            "hl7",
            a20(draw(st.sampled_from(BEDS)), draw(st.sampled_from("OUHKCI")), at, cid),
        )
    fields = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "cleaning": st.sampled_from(["dirty", "cleaning", "clean", "contaminated"]),
                "isolation": st.booleans(),
                "block": st.booleans(),
                "occupancy": st.sampled_from("OU"),
            },
        )
    )
    return channel, "json", bed_status(draw(st.sampled_from(BEDS)), at, **fields)


rules = st.fixed_dictionaries(
    {
        "owners": st.lists(
            st.sampled_from(["ehr", "evs", "beds"]), min_size=1, max_size=2, unique=True
        ),
        "precedence": st.sampled_from([p.value for p in Precedence]),
        "key": st.sampled_from([k.value for k in MonotonicKey]),
    }
)
ownership = st.fixed_dictionaries(
    {},
    optional={
        "patient": st.fixed_dictionaries({}, optional={"location": rules, "assigned_bed": rules}),
        "bed": st.fixed_dictionaries({}, optional={"cleaning": rules, "block": rules}),
    },
)


@st.composite
def logs(draw: st.DrawFn) -> list[Event]:
    drawn = draw(st.lists(messages(), min_size=1, max_size=40))
    resends = draw(st.lists(st.integers(0, len(drawn) - 1), max_size=8))
    order = drawn + [drawn[i] for i in resends]
    order = draw(st.permutations(order))
    out = []
    for n, (channel, kind, body) in enumerate(order, start=1):
        content = BED_STATUS_JSON if kind == "json" else "x-application/hl7-v2+er7"
        out.append(
            event(
                body,
                n,
                channel=channel,
                content_type=content,
                sequence=draw(st.none() | st.integers(0, 3)),
            )
        )
    return out


def check_one_bed_per_patient(p: Projection) -> None:
    for name, bed in p.beds.items():
        if bed.occupant is not None:
            assert p.patients[bed.occupant].location.value == name
    for patient in p.patients.values():
        if patient.location.value is not None:
            assert p.beds[patient.location.value].occupant == patient.id
    placed = [row["patient"] for row in board(p) if row["patient"] is not None]
    assert len(placed) == len(set(placed))


def ruled_values(p: Projection) -> dict[tuple[str, str], tuple[Value, str]]:
    out = {}
    for patient in p.patients.values():
        for name in ("location", "assigned_bed", "transfer_request"):
            out[(patient.id, name)] = (getattr(patient, name), f"patient.{name}")
    for bed_name, bed in p.beds.items():
        for name in ("cleaning", "isolation", "block"):
            out[(bed_name, name)] = (getattr(bed, name), f"bed.{name}")
    return out


def rank(p: Projection, value: Value, rule_name: str) -> tuple[Any, ...]:
    rule = p.rules[rule_name]
    assert value.stamp is not None
    owner_first = rule.precedence is Precedence.OWNER_WINS
    return (value.owner if owner_first else False, value.stamp.key(rule.key))


def check_monotonic(p: Projection, before: dict[tuple[str, str], tuple[Any, ...]]) -> None:
    for where, (value, rule_name) in ruled_values(p).items():
        if value.stamp is None:
            continue
        now = rank(p, value, rule_name)
        if where in before:
            assert now >= before[where], where
        before[where] = now


@settings(max_examples=300)
@given(log=logs(), owned=ownership, resume_at=st.integers(0, 60))
def test_live_equals_rebuild_and_invariants_hold_at_every_step(
    log: list[Event], owned: dict[str, Any], resume_at: int
) -> None:
    views = spec(**owned)
    live = Projection(views)
    ranks: dict[tuple[str, str], tuple[Any, ...]] = {}
    for position, e in enumerate(log, start=1):
        live.apply(e, position)
        check_one_bed_per_patient(live)
        assert all(bed.status == state.bed_status(bed)[0] for bed in live.beds.values())
        check_monotonic(live, ranks)
        if position == resume_at:  # a restart replays from an earlier position
            for again, old in enumerate(log[:position], start=1):
                assert not live.apply(old, again)
    rebuilt = Projection(views)
    for position, e in enumerate(log, start=1):
        rebuilt.apply(e, position)
    assert rebuilt.state() == live.state()
