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
