"""Order fields against the IG's segment and data type maps.

- ORC-7 (v2.3-2.6 quantity/timing) is TQ[ServiceRequest]: quantity, repeat
  pattern, bounds, priority, text note, count; OBR-27 only where ORC-7 gave
  nothing (IG OBR row 27 "IF ORC-7 NOT VALUED"); an OBR-6 occurrenceDateTime
  wins over the timing (occurrence[x] is one choice).
- TQ1-11 is one more note of the order, whatever NTEs gave.
- ORC-29 goes through the IG's OrderType map.
- PID-21 gives the mother RelatedPerson in every message map (PID[Patient]).
- SCH-7 (a reason, or a type when CWE-3 names table 0277) and SCH-8 go
  through the IG's AppointmentReasonCodes and AppointmentTypeCodes maps.
- An OUL ED result is the report's presentedForm, as in ORU.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from thumpflow.fhir import validate
from thumpflow.mapping import convert, to_json

_ORM = "MSH|^~\\&|OE|H|RCV|R|20211020112600+0200||ORM^O01|M1|P|2.4\rPID|1||P1^^^H^MR||Doe^Jane\r"
_BPH = "BID^^20211101^20211201^R^^Fasting before exam^^^^21"


def _bundle(text: str) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(to_json(convert(text.encode(), bundle_type="collection")))
    assert [i for i in validate(bundle) if i.severity == "error"] == []
    return bundle


def _all(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _order(orc7: str = "", obr27: str = "", obr6: str = "", orc29: str = "") -> dict[str, Any]:
    orc = f"ORC|NW|P100|F100||SC||{orc7}" + "|" * 22 + orc29
    obr = f"OBR|1|P100|F100|24725-4^CT Head^LN||{obr6}" + "|" * 21 + obr27
    (order,) = _all(_bundle(f"{_ORM}{orc}\r{obr}\r"), "ServiceRequest")
    return order


def test_orc7_is_the_orders_quantity_timing() -> None:
    order = _order(orc7=f"12&KG^{_BPH}")
    assert order["quantityQuantity"] == {
        "value": 12,
        "unit": "KG",
        "code": "kg",
        "system": "http://unitsofmeasure.org",
    }
    assert order["occurrenceTiming"] == {
        # RI-1 through the IG's RepeatPattern (RI[Timing] row 1).
        "code": {
            "coding": [
                {
                    "code": "BID",
                    "display": "BID",
                    "system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation",
                }
            ]
        },
        "repeat": {"boundsPeriod": {"start": "2021-11-01", "end": "2021-12-01"}, "count": 21},
    }
    assert order["priority"] == "routine"
    assert order["note"] == [{"text": "Fasting before exam"}]


def test_obr27_fills_only_what_orc7_left_empty() -> None:
    order = _order(orc7="^^^^^S", obr27=f"1^{_BPH}")
    assert order["priority"] == "stat"  # ORC-7's, not OBR-27's R
    assert order["quantityQuantity"] == {"value": 1}
    assert order["occurrenceTiming"]["repeat"]["count"] == 21
    assert order["note"] == [{"text": "Fasting before exam"}]
    # OBR-27 repeating ORC-7 adds no second note.
    assert _order(orc7=f"1^{_BPH}", obr27=f"1^{_BPH}")["note"] == [{"text": "Fasting before exam"}]


def test_an_obr6_requested_time_wins_over_the_timing() -> None:
    order = _order(orc7=f"1^{_BPH}", obr6="20211105083000+0200")
    assert order["occurrenceDateTime"] == "2021-11-05T08:30:00+02:00"
    assert "occurrenceTiming" not in order
    assert order["quantityQuantity"] == {"value": 1}


def test_tq1_11_is_one_more_note_after_the_ntes() -> None:
    message = (
        "MSH|^~\\&|LAB|H|RCV|R|20211020112600+0200||OML^O21^OML_O21|M1|P|2.6\r"
        "PID|1||P1^^^H^MR||Doe^Jane\rORC|NW|P100|F100||SC\r"
        "TQ1|1||||||20211101|20211201|R||Take fasting\r"
        "OBR|1|P100|F100|57698-3^Lipid panel^LN\rNTE|1||Urgent\r"
    )
    (order,) = _all(_bundle(message), "ServiceRequest")
    assert order["note"] == [{"text": "Urgent"}, {"text": "Take fasting"}]


@pytest.mark.parametrize(
    ("end", "expected"),
    [("20211201", {"start": "2021-11-01", "end": "2021-12-01"}), ("0500", {"start": "2021-11-01"})],
)
def test_a_tq1_end_before_its_start_is_left_out(end: str, expected: dict[str, str]) -> None:
    # TQ1-8 before TQ1-7 (here a garbled end, the year 500): the order's
    # bounds keep the start alone (FHIR per-1), as every other period does.
    message = (
        "MSH|^~\\&|LAB|H|RCV|R|20211020112600+0200||OML^O21^OML_O21|M1|P|2.6\r"
        "PID|1||P1^^^H^MR||Doe^Jane\rORC|NW|P100|F100||SC\r"
        f"TQ1|1||||||20211101|{end}|R\r"
        "OBR|1|P100|F100|57698-3^Lipid panel^LN\r"
    )
    bundle = _bundle(message)
    (order,) = _all(bundle, "ServiceRequest")
    assert order["occurrenceTiming"]["repeat"]["boundsPeriod"] == expected
    assert [i for i in validate(json.loads(to_json(bundle))) if i.severity == "error"] == []


@pytest.mark.parametrize(
    ("orc29", "expected"),
    [
        ("I", {"code": "HOSP", "display": "Hospital"}),
        ("O", {"code": "OF", "display": "Outpatient facility"}),
    ],
)
def test_orc29_goes_through_the_igs_order_type_map(orc29: str, expected: dict[str, str]) -> None:
    order = _order(orc29=orc29)
    role_code = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
    assert order["locationCode"] == [{"coding": [{**expected, "system": role_code}]}]


def test_an_unlisted_order_type_keeps_the_senders_code_without_a_system() -> None:
    order = _order(orc29="X^Elsewhere^L")
    assert order["locationCode"] == [{"coding": [{"code": "X", "display": "Elsewhere"}]}]


_PID21 = "PID|1||P1^^^H^MR||Doe^Baby||20240101|F" + "|" * 13 + "MOM7^^^H^MR\r"


@pytest.mark.parametrize(
    "message",
    [
        f"MSH|^~\\&|A|B|C|D|20240102||ORM^O01|1|P|2.5\r{_PID21}ORC|NW|P1\rOBR|1|P1||X^Y^L\r",
        f"MSH|^~\\&|A|B|C|D|20240102||ORU^R01|1|P|2.5\r{_PID21}OBR|1||F1|X^Y^L\rOBX|1|ST|X^Y^L||ok||||||F\r",
        f"MSH|^~\\&|A|B|C|D|20240102||OML^O21^OML_O21|1|P|2.6\r{_PID21}ORC|NW|P1\rOBR|1|P1||X^Y^L\r",
        f"MSH|^~\\&|A|B|C|D|20240102||MDM^T02|1|P|2.6\r{_PID21}"
        "TXA|1|DS|TX|20240102||||||||D1||||||AU\rOBX|1|TX|X^Y^L||text||||||F\r",
        "MSH|^~\\&|A|B|C|D|20240102||SIU^S12|1|P|2.5\rSCH|A1|A1" + "|" * 14 + f"\r{_PID21}",
        f"MSH|^~\\&|A|B|C|D|20240102||ADT^A11^ADT_A09|1|P|2.5\rEVN|A11|20240102\r{_PID21}PV1|1|I\r",
    ],
    ids=["ORM", "ORU", "OML", "MDM", "SIU", "ADT_A11"],
)
def test_the_mothers_identifier_gives_her_relatedperson_in_every_map(message: str) -> None:
    (mother,) = _all(_bundle(message), "RelatedPerson")
    assert mother["identifier"][0]["value"] == "MOM7"
    assert mother["relationship"][0]["coding"][0]["code"] == "MTH"


def _appointment(sch7: str, sch8: str) -> dict[str, Any]:
    message = (
        "MSH|^~\\&|S|H|R|R|20240102||SIU^S12|1|P|2.5\r"
        f"SCH|A1|A1|||||{sch7}|{sch8}\rPID|1||P1^^^H^MR||Doe^Jo\r"
    )
    (appointment,) = _all(_bundle(message), "Appointment")
    return appointment


def test_sch7_and_sch8_go_through_the_igs_appointment_maps() -> None:
    appointment = _appointment("EMERGENCY^Emergency^HL70276", "Tentative^^HL70277")
    assert appointment["reasonCode"] == [
        {
            "coding": [
                {
                    "code": "373110003",
                    "display": "Emergency procedure (procedure)",
                    "system": "http://snomed.info/sct",
                }
            ]
        }
    ]
    (coding,) = appointment["appointmentType"]["coding"]
    assert (coding["code"], coding["system"]) == (
        "Tentative",
        "http://terminology.hl7.org/CodeSystem/v2-0277",
    )


def test_an_sch7_of_table_0277_is_the_appointment_type() -> None:
    appointment = _appointment("Complete^^HL70277", "")
    assert "reasonCode" not in appointment
    assert appointment["appointmentType"]["coding"][0]["code"] == "Complete"


_ED = (
    "OBX|1|ED|THUMB^Thumbnail^L|1|^IM^JPEG^Base64^QUJD||||||F\rOBX|2|NM|8867-4^Rate^LN||60||||||F\r"
)


@pytest.mark.parametrize(
    "head",
    [
        "OUL^R22^OUL_R22|1|P|2.8\rPID|1||P1^^^H^MR||Doe^Jo\rSPM|1|S1\rOBR|1|O1|F1|X^Y^L\r",
        "OUL^R24^OUL_R24|1|P|2.8\rPID|1||P1^^^H^MR||Doe^Jo\rOBR|1|O1|F1|X^Y^L\r",
        "OUL^R21|1|P|2.5\rPID|1||P1^^^H^MR||Doe^Jo\rORC|RE|O1|F1\rOBR|1|O1|F1|X^Y^L\r",
    ],
    ids=["R22", "R24", "R21"],
)
def test_an_oul_ed_result_is_the_reports_presented_form_as_in_oru(head: str) -> None:
    bundle = _bundle(f"MSH|^~\\&|L|H|R|R|20240102||{head}{_ED}")
    (report,) = _all(bundle, "DiagnosticReport")
    assert report["presentedForm"] == [{"contentType": "image/jpeg", "data": "QUJD"}]
    assert len(report["result"]) == 1


def test_obr7_is_the_occurrence_only_of_an_order_without_timing_of_its_own() -> None:
    # OBR-7 has no IG row on ServiceRequest (thumpflow's fallback); the TQ1,
    # ORC-7 or OBR-27 timing the IG maps wins over it.
    tq1 = _ORM.replace("2.4", "2.6") + "ORC|NW|P100|F100||SC\rTQ1|1||Q1H^Every hour^HL70335\r"
    obr = "OBR|1|P100|F100|24725-4^CT Head^LN|||20211105083000+0200\r"
    (order,) = _all(_bundle(tq1 + obr), "ServiceRequest")
    assert "occurrenceDateTime" not in order
    assert order["occurrenceTiming"]["code"]["coding"][0]["code"] == "Q1H"
    (plain,) = _all(_bundle(_ORM + "ORC|NW|P100|F100||SC\r" + obr), "ServiceRequest")
    assert plain["occurrenceDateTime"] == "2021-11-05T08:30:00+02:00"


def test_an_oml_order_refers_to_its_own_specimens_only() -> None:
    # IG OML_O21 row 6.4.8.1: the specimens of an order are the SPMs inside it.
    message = (
        "MSH|^~\\&|S|F|R|R|20240101120000-0500||OML^O21^OML_O21|G1|P|2.5\r"
        "PID|1||MRN1^^^HOSP^MR||One^John\rORC|NW|PL1^EHR\rOBR|1|PL1^EHR||24323-8^CMP^LN\r"
        "ORC|NW|PL2^EHR\rOBR|2|PL2^EHR||5767-9^UA^LN\rSPM|1|SP2&EHR||UR^Urine^HL70487\r"
    )
    bundle = json.loads(to_json(convert(message.encode(), bundle_type="collection")))
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    panel, urine = _all(bundle, "ServiceRequest")
    assert "specimen" not in panel
    (specimen,) = [by_url[r["reference"]] for r in urine["specimen"]]
    assert specimen["type"]["coding"][0]["code"] == "UR"
    assert by_url[specimen["subject"]["reference"]]["resourceType"] == "Patient"


@pytest.mark.parametrize(("obr5", "priority"), [("S", "stat"), ("A", "asap"), ("P", None)])
def test_order_priority_follows_the_igs_extended_priority_codes(
    obr5: str, priority: str | None
) -> None:
    # IG ExtendedPriorityCodes: S, A, R; P (preop), C, T have no target.
    obr = f"OBR|1|P100|F100|24725-4^CT Head^LN|{obr5}\r"
    (order,) = _all(_bundle(f"{_ORM}ORC|NW|P100|F100||SC\r{obr}"), "ServiceRequest")
    assert order.get("priority") == priority


_PD1 = "PID|1||P1^^^H^MR||Doe^Jo\rPD1|||Clinic^^C1|1111^Carer^Pat^^^^MD\r"


@pytest.mark.parametrize(
    "head",
    [
        "RDE^O11^RDE_O11|1|P|2.6\r{pd1}ORC|NW|RX1\rRXE||D1^Drug^L|1||mg\r",
        "OMP^O09^OMP_O09|1|P|2.6\r{pd1}ORC|NW|RX1\rRXO|D1^Drug^L|1||mg\r",
        "ADT^A40^ADT_A39|1|P|2.6\rEVN||20240102\r{pd1}MRG|OLD^^^H^MR\r",
        "SIU^S12^SIU_S12|1|P|2.6\rSCH|A1|A1\r{pd1}",
        "OUL^R22^OUL_R22|1|P|2.6\r{pd1}SPM|1|S1\rOBR|1|O1|F1|X^Y^L\r",
    ],
    ids=["RDE", "OMP", "ADT_A40", "SIU", "OUL"],
)
def test_pd1_names_the_general_practitioner_wherever_the_structure_has_it(head: str) -> None:
    # IG PD1[Patient] row 4: the patient's primary care provider.
    message = "MSH|^~\\&|A|H|R|R|20240102||" + head.format(pd1=_PD1)
    (patient, *_) = _all(_bundle(message), "Patient")
    assert len(patient["generalPractitioner"]) == 2


def test_an_order_without_a_code_has_no_order_detail() -> None:
    # FHIR prr-1: orderDetail only beside a code; OBR-4 empty, OBR-46 sent.
    obr = "OBR|1|P100|F100|" + "|" * 42 + "FAST^Fasting^L\r"
    (order,) = _all(_bundle(f"{_ORM}ORC|NW|P100|F100||SC\r{obr}"), "ServiceRequest")
    assert "orderDetail" not in order


def test_an_ed_without_its_type_is_unknown_bytes() -> None:
    # FHIR att-1: an Attachment with data has a contentType.
    message = (
        "MSH|^~\\&|L|H|R|R|20240102||ORU^R01|1|P|2.5\rPID|1||P1^^^H^MR||Doe^Jo\r"
        "OBR|1||F1|X^Panel^L\rOBX|1|ED|PDF^Report^L||LIS^^^Base64^QUJD||||||F\r"
    )
    (report,) = _all(_bundle(message), "DiagnosticReport")
    assert report["presentedForm"] == [{"contentType": "application/octet-stream", "data": "QUJD"}]
