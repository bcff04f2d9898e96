"""Pharmacy orders (RDE, RDS, OMP, ORM) → MedicationRequest: whose dosage it is.

In RDE_O11 and RDS_O13 (v2.5+) an order holds the placer's timing and route
(ORC's TQ1, RXO's RXR) and, after RXE, the pharmacy's (TIMING_ENCODED, the
RXE's RXR). The MedicationRequest is built from RXE, so its dosage is the
RXE's, the placer's only when the RXE has none. RXR-4/RXR-5 follow the IG's
RXR[MedicationRequest] rows; RXE-7 keeps every repetition. In RDS the
placer's RXO fills an order only when no RXE encodes it.
"""

from __future__ import annotations

from typing import Any

from tests.mappings.single import resource_of
from thumpflow.mapping import convert

_HEAD = (
    "MSH|^~\\&|A|B|C|D|20191104060000+0200||{event}|M1|P|{version}\r"
    "PID|1||P1^^^H^MR||Doe^Jo\r"
    "ORC|NW|RX100^EPC|||||||20191104060000+0200\r"
)
_PLACER = "TQ1|1||TID||||||R||Placer text\rRXO|00047^Ampicillin^NDC|2||caps^capsule\rRXR|PO^Oral\r"
_RXE = "RXE||01439^Nicardipine^NDC|5||mg/h^mg/h\r"
_ENCODED = (
    "TQ1|1||Q4H||||20191104103000+0200|20191105103000+0200|S||Encoded text|||6\r"
    "RXR|IV^Intravenous^HL70162|LA^Left arm^HL70163\r"
)


def _dosage(segments: str, event: str = "RDE^O11^RDE_O11", version: str = "2.6") -> Any:
    message = (_HEAD.format(event=event, version=version) + segments).encode()
    request = resource_of(message, "MedicationRequest")
    return request, request["dosageInstruction"][0]


def test_rde_takes_the_rxe_timing_and_route_not_the_placers() -> None:
    request, dosage = _dosage(_PLACER + _RXE + _ENCODED)
    assert dosage["route"]["coding"][0]["code"] == "IVINJ"
    assert dosage["site"]["coding"][0]["code"] == "LA"
    assert dosage["timing"]["code"]["coding"][0]["code"] == "Q4H"
    assert dosage["timing"]["repeat"]["count"] == 6
    assert dosage["timing"]["repeat"]["boundsPeriod"]["start"] == "2019-11-04T10:30:00+02:00"
    assert dosage["patientInstruction"] == "Encoded text"
    assert request["priority"] == "stat"


def test_rde_v28_steps_over_the_rxe_participants_and_notes() -> None:
    segments = _PLACER + _RXE + "PRT||AD||PH^^HL70443|1^Pharm^Al\rNTE|1||Checked\r" + _ENCODED
    request, dosage = _dosage(segments, version="2.8")
    assert dosage["route"]["coding"][0]["code"] == "IVINJ"
    assert dosage["timing"]["code"]["coding"][0]["code"] == "Q4H"
    assert request["priority"] == "stat"


def test_rde_falls_back_to_the_placers_timing_and_route_when_the_rxe_has_none() -> None:
    request, dosage = _dosage(_PLACER + _RXE)
    assert dosage["route"]["coding"][0]["code"] == "PO"
    assert dosage["timing"]["code"]["coding"][0]["code"] == "TID"
    assert dosage["patientInstruction"] == "Placer text"
    assert request["priority"] == "routine"


def test_rde_without_rxo_takes_the_orc_timing_and_the_rxe_route() -> None:
    segments = "TQ1|1||BID\r" + _RXE + "RXR|IV^Intravenous^HL70162\r"
    _, dosage = _dosage(segments, version="2.5")
    assert dosage["timing"]["code"]["coding"][0]["code"] == "BID"
    assert dosage["route"]["coding"][0]["code"] == "IVINJ"


def test_rds_takes_the_rxe_dosage_not_the_placers_nor_the_dispenses() -> None:
    segments = (
        _PLACER + _RXE + _ENCODED + "RXD|1|01439^Nicardipine^NDC|20191104120000+0200|1|BG\r"
        "RXR|IM^Intramuscular^HL70162\r"
    )
    _, dosage = _dosage(segments, event="RDS^O13^RDS_O13")
    assert dosage["route"]["coding"][0]["code"] == "IVINJ"
    assert dosage["timing"]["code"]["coding"][0]["code"] == "Q4H"


def test_rxr_4_is_the_method_and_rxr_5_an_additional_instruction() -> None:
    _, dosage = _dosage(_RXE + "RXR|PO^Oral^HL70162|||CH^Chew^HL70165|WF^With food^HL70766\r")
    assert dosage["method"]["coding"] == [
        {"code": "419747000", "display": "Chew", "system": "http://snomed.info/sct"}
    ]
    assert dosage["additionalInstruction"] == [{"coding": [{"code": "WF", "display": "With food"}]}]


def test_an_rxr_4_method_the_ig_does_not_map_keeps_the_senders_code() -> None:
    _, dosage = _dosage(_RXE + "RXR|IV^Intravenous^HL70162|||IVP^IV push^L\r")
    assert dosage["method"]["coding"] == [{"code": "IVP", "display": "IV push"}]


def test_every_rxe_7_repetition_is_a_line_of_the_dosage_text() -> None:
    rxe = "RXE||01439^Nicardipine^NDC|5||mg/h^mg/h||^Titrate to BP below 180~^Max 15 mg/h\r"
    _, dosage = _dosage(rxe)
    assert dosage["text"] == "Titrate to BP below 180\nMax 15 mg/h"


def test_rxe_7_codes_are_the_text_when_no_repetition_has_one() -> None:
    _, dosage = _dosage("RXE||01439^Nicardipine^NDC|5||mg/h^mg/h||TITRATE~MAX15\r")
    assert dosage["text"] == "TITRATE\nMAX15"


def test_an_rds_order_encoded_by_the_pharmacy_is_the_rxes_not_the_placers_rxo() -> None:
    message = (
        "MSH|^~\\&|RX|H|R|R|20240102||RDS^O13^RDS_O13|1|P|2.5\rPID|1||P1^^^H^MR||Doe^Jo\r"
        "ORC|RE|P1|F1\rRXO|AMOX500^Amoxicillin 500 mg^L|1||CAP^Capsule^L\r"
        "RXE||DOXY100^Doxycycline 100 mg^L|2||TAB^Tablet^L|||||||3\r"
        "RXD|1|DOXY100^Doxycycline 100 mg^L|20240102|2|TAB^Tablet^L\r"
    )
    request = resource_of(message.encode(), "MedicationRequest")
    assert request["medicationCodeableConcept"]["coding"][0]["code"] == "DOXY100"
    assert request["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 2
    assert request["dispenseRequest"]["numberOfRepeatsAllowed"] == 3


def test_an_omp_orders_timing_is_its_tq1() -> None:
    segments = "TQ1|1||Q4H||||20191104103000+0200||S\rRXO|00047^Ampicillin^NDC|2||caps^capsule\r"
    _, dosage = _dosage(segments, event="OMP^O09^OMP_O09")
    assert dosage["timing"]["code"]["coding"][0]["code"] == "Q4H"
    assert dosage["timing"]["repeat"]["boundsPeriod"]["start"] == "2019-11-04T10:30:00+02:00"


_ORM = (
    "MSH|^~\\&|EHR|H|RX|H|20240101120000||ORM^O01^ORM_O01|M1|P|2.4\r"
    "PID|1||P1^^^H^MR||Doe^Jo\rPV1|1|I|W1^1^1||||||||||||||||V1^^^H^VN\r"
)
_ORM_RX = (
    "ORC|NW|RX1^EHR||||||||||DOC1^Order^Olga\r"
    "RXO|197361^Amlodipine 5 MG Oral Tablet^RXNORM|5||mg^^UCUM\r"
    "NTE|1||Take in the morning\rRXR|PO^Oral^HL70162\rDG1|1||I10^Hypertension^I10\r"
)


def _orm(orders: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    warnings: list[str] = []
    bundle = convert((_ORM + orders).encode(), bundle_type="collection", warnings=warnings)
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}, warnings


def _all(by_url: dict[str, dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [r for r in by_url.values() if r["resourceType"] == rtype]


def test_an_orm_pharmacy_order_is_a_medication_request() -> None:
    """IG ORM_O01 row 4.2.1.7: an ORDER_DETAIL that is RXO is a
    MedicationRequest (RXO[MedicationRequest]); before, ORC + RXO became a
    ServiceRequest without a code, the drug, dose and route dropped."""
    by_url, warnings = _orm(_ORM_RX)
    assert warnings == []
    assert _all(by_url, "ServiceRequest") == []
    (request,) = _all(by_url, "MedicationRequest")
    assert request["medicationCodeableConcept"]["coding"][0]["code"] == "197361"
    dosage = request["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 5
    assert dosage["route"]["coding"][0]["code"] == "PO"
    assert request["identifier"][0]["value"] == "RX1"
    assert request["note"] == [{"text": "Take in the morning"}]
    (patient,) = _all(by_url, "Patient")
    assert by_url[request["subject"]["reference"]] is patient
    assert by_url[request["encounter"]["reference"]]["resourceType"] == "Encounter"
    (reason,) = [by_url[r["reference"]] for r in request["reasonReference"]]
    assert reason["code"]["coding"][0]["code"] == "I10"


def test_an_orm_with_pharmacy_and_lab_orders_makes_one_resource_of_each_kind() -> None:
    lab = "ORC|NW|PL1^EHR\rOBR|1|PL1^EHR||24323-8^CMP^LN\rNTE|1||Fasting\r"
    # A compound's drug is in its RXC, not RXO-1: its contained Medication.
    compound = "ORC|NW|RX2^EHR\rRXO|\rRXC|B|12345^Base^NDC|100|mL\r"
    by_url, warnings = _orm(_ORM_RX + lab + compound)
    assert warnings == []
    (service,) = _all(by_url, "ServiceRequest")
    assert service["code"]["coding"][0]["code"] == "24323-8"
    assert service["note"] == [{"text": "Fasting"}]
    requests = _all(by_url, "MedicationRequest")
    assert [r["identifier"][0]["value"] for r in requests] == ["RX1", "RX2"]
    assert requests[1]["medicationReference"] == {"reference": "#compound"}
    (ingredient,) = requests[1]["contained"][0]["ingredient"]
    assert ingredient["itemCodeableConcept"]["coding"][0]["code"] == "12345"
