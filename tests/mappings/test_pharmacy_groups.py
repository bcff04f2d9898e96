"""Pharmacy orders (RDE_O11, OMP_O09, RDS_O13): the segments around the order.

No NTE can follow ORC in these structures: an order's notes are the NTEs
after its RXO (the placer's), RXE (the pharmacy's) and, in RDS, RXD (the
dispense's). The PATIENT group's IN1 (RDE, OMP) is a Coverage the
MedicationRequest's insurance refers to, its AL1 (RDS too) an
AllergyIntolerance; the ORDER group's OBX (the data the dose was based on)
an Observation the MedicationRequest's supportingInformation refers to.
Every resource stays valid FHIR R4.
"""

from __future__ import annotations

from typing import Any

from tests.mappings.single import clean_resources

_HEAD = (
    "MSH|^~\\&|A|B|C|D|20240301120000-0500||{event}|M1|P|2.5\r"
    "PID|1||MRN1^^^H^MR||Doe^Jane||19800101|F\r"
)
_VISIT = "PV1|1|O|||||||||||||||||V1^^^H^VN\r"
_IN1 = "IN1|1|PLAN1^Plan One|PAY1^^^H||||||||||||||SEL\r"
_AL1 = "AL1|1|DA|PCN^Penicillin^L\r"
_ORC = "ORC|NW|PL1^H|||IP\r"
_RXO = "RXO|860975^Metformin^RXNORM|500||mg^mg^UCUM\rNTE|1||Prescriber note\rRXR|PO^Oral^HL70162\r"
_RXE = (
    "RXE|^^^20240301|860975^Metformin^RXNORM|500||mg^mg^UCUM|||||30|TAB^Tablet^L||||RX1\r"
    "NTE|1||Pharmacist note\rRXR|PO^Oral^HL70162\r"
)
_RXD = "RXD|1|860975^Metformin^RXNORM|20240301|30|TAB^Tablet^L||RX1\rNTE|1||Dispense note\r"
_OBX = "OBX|1|NM|2160-0^Creatinine^LN||1.0|mg/dL|||||F|||20240301\rNTE|1||Fasting\r"


def _convert(event: str, segments: str) -> dict[str, dict[str, Any]]:
    message = (_HEAD.format(event=event) + segments).encode()
    return clean_resources(message)


def _one(by_url: dict[str, dict[str, Any]], rtype: str) -> dict[str, Any]:
    (found,) = [r for r in by_url.values() if r["resourceType"] == rtype]
    return found


def test_rde_notes_after_rxo_and_rxe_are_the_orders() -> None:
    by_url = _convert("RDE^O11^RDE_O11", _VISIT + _ORC + _RXO + _RXE)
    request = _one(by_url, "MedicationRequest")
    assert request["note"] == [{"text": "Prescriber note"}, {"text": "Pharmacist note"}]


def test_omp_notes_after_rxo_are_the_orders() -> None:
    by_url = _convert("OMP^O09^OMP_O09", _VISIT + _ORC + _RXO)
    assert _one(by_url, "MedicationRequest")["note"] == [{"text": "Prescriber note"}]


def test_rds_notes_after_rxe_are_the_orders_and_after_rxd_the_dispenses() -> None:
    by_url = _convert("RDS^O13^RDS_O13", _ORC + _RXO + _RXE + _RXD)
    request = _one(by_url, "MedicationRequest")
    assert request["note"] == [{"text": "Prescriber note"}, {"text": "Pharmacist note"}]
    assert _one(by_url, "MedicationDispense")["note"] == [{"text": "Dispense note"}]


def test_a_note_keeps_its_author_and_time() -> None:
    rxe = "RXE|^^^20240301|860975^Metformin^RXNORM|500||mg\rNTE|1||Checked||1^Pharm^Al|20240301\r"
    request = _one(_convert("RDE^O11^RDE_O11", _ORC + rxe), "MedicationRequest")
    (note,) = request["note"]
    assert note["text"] == "Checked"
    assert note["time"] == "2024-03-01"


def test_rde_and_omp_insurance_is_the_orders_coverage() -> None:
    for event, order in (("RDE^O11^RDE_O11", _ORC + _RXE), ("OMP^O09^OMP_O09", _ORC + _RXO)):
        by_url = _convert(event, _VISIT + _IN1 + _AL1 + order)
        coverage = _one(by_url, "Coverage")
        patient = _one(by_url, "Patient")
        assert by_url[coverage["beneficiary"]["reference"]] is patient
        assert by_url[coverage["subscriber"]["reference"]] is patient
        request = _one(by_url, "MedicationRequest")
        assert [by_url[r["reference"]] for r in request["insurance"]] == [coverage]
        assert _one(by_url, "AllergyIntolerance")["code"]["coding"][0]["code"] == "PCN"


def test_rds_keeps_the_patients_allergies() -> None:
    by_url = _convert("RDS^O13^RDS_O13", _AL1 + _VISIT + _ORC + _RXE + _RXD)
    allergy = _one(by_url, "AllergyIntolerance")
    assert by_url[allergy["patient"]["reference"]] is _one(by_url, "Patient")


def test_an_order_observation_supports_the_medication_request() -> None:
    cases = (
        ("RDE^O11^RDE_O11", _ORC + _RXE + _OBX),
        ("OMP^O09^OMP_O09", _ORC + _RXO + _OBX),
        ("RDS^O13^RDS_O13", _ORC + _RXE + _RXD + _OBX),
    )
    for event, order in cases:
        by_url = _convert(event, _VISIT + order)
        observation = _one(by_url, "Observation")
        assert observation["code"]["coding"][0]["code"] == "2160-0"
        assert observation["note"] == [{"text": "Fasting"}]
        request = _one(by_url, "MedicationRequest")
        assert [by_url[r["reference"]] for r in request["supportingInformation"]] == [observation]


def test_each_order_refers_to_its_own_observations() -> None:
    second = _OBX.replace("2160-0^Creatinine", "29463-7^Weight")
    by_url = _convert(
        "RDE^O11^RDE_O11",
        _ORC + _RXE + _OBX + _ORC.replace("PL1", "PL2") + _RXE.replace("RX1", "RX2") + second,
    )
    requests = [r for r in by_url.values() if r["resourceType"] == "MedicationRequest"]
    codes = [
        [by_url[s["reference"]]["code"]["coding"][0]["code"] for s in r["supportingInformation"]]
        for r in requests
    ]
    assert codes == [["2160-0"], ["29463-7"]]
