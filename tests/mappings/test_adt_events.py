"""ADT events against the IG's ADT_A01/ADT_A05 maps and PV1[Encounter].

- A discharge time (PV1-45) means a `finished` Encounter whatever the event
  (IG PV1 row 45), except in the events that cancel or undo (A11, A13, A27,
  A38), whose own status stands.
- The person events (A28, A29, A31; IG ADT_A05) write PID-18's Account and
  PV1[Patient] (PV1-16 VIP) as A01 does; their PV1 is an Encounter only when
  it identifies a visit (PV1-19 or PV1-44).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from thumpflow.fhir import validate
from thumpflow.mapping import convert, to_json

_PID = "PID|1||P1^^^H^MR||Doe^Jo||19800101|M" + "|" * 10 + "ACC1^^^H^AN\r"


def _resources(event: str, pv1: str) -> dict[str, list[dict[str, Any]]]:
    message = f"MSH|^~\\&|A|H|R|R|20240102+0100||{event}|1|P|2.5\rEVN||20240102\r{_PID}{pv1}\r"
    bundle: dict[str, Any] = json.loads(
        to_json(convert(message.encode(), bundle_type="collection"))
    )
    assert [i for i in validate(bundle) if i.severity == "error"] == []
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        out.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return out


_OVER = "PV1|1|O|CLINIC^^^H||||||||||||||||V1^^^H^VN" + "|" * 25 + "20240102090000|20240102100000"


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ("ADT^A04", "finished"),
        ("ADT^A01", "finished"),
        ("ADT^A08", "finished"),
        ("ADT^A13", "in-progress"),
        ("ADT^A11^ADT_A09", "cancelled"),
    ],
)
def test_a_discharge_time_finishes_the_visit_unless_the_event_undoes_it(
    event: str, status: str
) -> None:
    (encounter,) = _resources(event, _OVER)["Encounter"]
    assert encounter["status"] == status


@pytest.mark.parametrize("event", ["ADT^A28^ADT_A05", "ADT^A31^ADT_A05", "ADT^A01"])
def test_person_events_write_the_account_and_vip_flag_as_a01_does(event: str) -> None:
    found = _resources(event, "PV1|1|N" + "|" * 14 + "VIP^Very important^L")
    (account,) = found["Account"]
    assert account["identifier"][0]["value"] == "ACC1"
    (patient,) = found["Patient"]
    importance = "http://hl7.org/fhir/StructureDefinition/patient-importance"
    assert [e["url"] for e in patient["extension"]] == [importance]


def test_a_person_events_pv1_is_an_encounter_only_when_it_identifies_a_visit() -> None:
    assert "Encounter" not in _resources("ADT^A31^ADT_A05", "PV1|1|O|CLINIC^^^H")
    (encounter,) = _resources("ADT^A31^ADT_A05", _OVER)["Encounter"]
    assert encounter["identifier"][0]["value"] == "V1"


def _transaction(message: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    bundle: dict[str, Any] = json.loads(to_json(convert(message.encode())))
    assert [i for i in validate(bundle) if i.severity == "error"] == []
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        out.setdefault(resource["resourceType"], []).append((entry["request"]["url"], resource))
    return out


_MSH = "MSH|^~\\&|A|H|R|R|20240102+0100||{event}|1|P|2.8\rEVN||20240102\r"
_SYSTEM = "http://thumpflow.invalid/naming-system/H"


@pytest.mark.parametrize(
    ("event", "segments", "rtype", "old", "new"),
    [
        (
            "ADT^A47^ADT_A30",
            "PID|1||NEW^^^H^MR||Doe^Jo\rMRG|OLD^^^H^MR\r",
            "Patient",
            "OLD",
            "NEW",
        ),
        (
            "ADT^A49^ADT_A30",
            "PID|1||P1^^^H^MR||Doe^Jo" + "|" * 13 + "NEWACC^^^H^AN\rMRG|P1^^^H^MR||OLDACC^^^H^AN\r",
            "Account",
            "OLDACC",
            "NEWACC",
        ),
        (
            "ADT^A50^ADT_A50",
            "PID|1||P1^^^H^MR||Doe^Jo\rMRG|P1^^^H^MR||||OLDV^^^H^VN\r"
            "PV1|1|I" + "|" * 17 + "NEWV^^^H^VN\r",
            "Encounter",
            "OLDV",
            "NEWV",
        ),
    ],
    ids=["A47", "A49", "A50"],
)
def test_an_identifier_change_updates_the_record_holding_the_prior_identifier(
    event: str, segments: str, rtype: str, old: str, new: str
) -> None:
    # HL7 v2 ch. 3: A47 MRG-1 -> PID-3, A49 MRG-3 -> PID-18, A50 MRG-5 ->
    # PV1-19; a conditional update by the new identifier would make a second
    # record on a server that holds the first.
    ((url, resource),) = _transaction(_MSH.format(event=event) + segments)[rtype]
    assert url == f"{rtype}?identifier={_SYSTEM}|{old}"
    assert [(i["value"], i.get("use")) for i in resource["identifier"]] == [
        (old, "old"),
        (new, None),
    ]


def test_other_moves_keep_identifying_by_the_current_identifier() -> None:
    found = _transaction(
        _MSH.format(event="ADT^A43^ADT_A43") + "PID|1||NEW^^^H^MR||Doe^Jo\rMRG|OLD^^^H^MR\r"
    )
    ((url, _),) = found["Patient"]
    assert url == f"Patient?identifier={_SYSTEM}|NEW"


def test_a_person_events_visit_is_the_same_encounter_and_diagnosis_as_a01s() -> None:
    # IG ADT_A05 rows 19 and 25: an A31 naming a visit must not write it
    # poorer than A01 did (a PUT replaces the Encounter).
    tail = _OVER + "\rROL|1|AD|AT^Attending^HL70443|D1^Doc^Ann\rDG1|1||R07.9^Chest pain^I10"
    a31 = _resources("ADT^A31^ADT_A05", tail)
    a01 = _resources("ADT^A01", tail)
    for found in (a31, a01):
        (encounter,) = found["Encounter"]
        assert "diagnosis" in encounter
        assert "participant" in encounter
    assert [c["id"] for c in a31["Condition"]] == [c["id"] for c in a01["Condition"]]
