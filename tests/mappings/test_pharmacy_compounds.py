"""Pharmacy orders: a compound's components (RXC) and the identity of an
order without placer or filler number.

RXC (the IG names RXC[MedicationRequest] and RXC[Medication], without rows):
each component an ingredient of a Medication contained in the order's
MedicationRequest, whose medicationReference names it and whose code is the
order's give code; in RDE (and RDS) the pharmacy's components, after the
RXE, not the placer's. An order without ORC-2/ORC-3 is identified by its
message, so two messages' numberless orders are two resources.
"""

from __future__ import annotations

import json
from typing import Any

from tests.mappings.single import clean_resources
from thumpflow.fhir import deterministic_id
from thumpflow.mapping import convert, to_json

_HEAD = "MSH|^~\\&|A|B|C|D|20240301||{event}|{control}|P|2.6\rPID|1||P1^^^H^MR||Doe^Jo\r"
_ORC = "ORC|NW|PL1^EHR\r"
_RXO = "RXO|^Placer compound^L|1||BAG\rRXR|IV\rRXC|B|PB^Placer base^L|500|mL^^UCUM\r"
_RXE = "RXE|^Q24H^HL70335|CMP^KCl in D5W^L|1||BAG\rRXR|IV\r"
_RXC = (
    "RXC|B|D5W^Dextrose 5% in water^L|1000|mL^^UCUM\rRXC|A|KCL^Potassium chloride^L|20|meq^^UCUM\r"
)


def _requests(event: str, body: str, control: str = "M1") -> list[dict[str, Any]]:
    message = (_HEAD.format(event=event, control=control) + body).encode()
    by_url = clean_resources(message)
    return [r for r in by_url.values() if r["resourceType"] == "MedicationRequest"]


def _warned(event: str, body: str, rtype: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The resources of type `rtype` of a message expected to warn, and its warnings."""
    message = _HEAD.format(event=event, control="M1") + body
    warnings: list[str] = []
    bundle = convert(message.encode(), bundle_type="collection", warnings=warnings)
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype
    ], warnings


def _ingredients(request: dict[str, Any]) -> list[str]:
    assert request["medicationReference"] == {"reference": "#compound"}
    assert "medicationCodeableConcept" not in request
    (medication,) = request["contained"]
    assert (medication["resourceType"], medication["id"]) == ("Medication", "compound")
    return [i["itemCodeableConcept"]["coding"][0]["code"] for i in medication["ingredient"]]


def test_rde_compound_is_a_contained_medication_of_the_pharmacys_components() -> None:
    (request,) = _requests("RDE^O11^RDE_O11", _ORC + _RXO + _RXE + _RXC)
    assert _ingredients(request) == ["D5W", "KCL"]
    medication = request["contained"][0]
    assert medication["code"]["coding"][0]["code"] == "CMP"
    strength = medication["ingredient"][1]["strength"]
    assert strength["numerator"] == {
        "value": 20,
        "unit": "meq",
        "code": "meq",
        "system": "http://unitsofmeasure.org",
    }
    assert strength["denominator"] == {"value": 1}


def test_a_component_without_amount_takes_its_strength_per_volume() -> None:
    rxc = "RXC|A|HEP^Heparin^L|||1000|[iU]^^UCUM||1|mL^^UCUM\rRXC|A|^Unnamed^L\rRXC|A\r"
    (request,) = _requests("RDE^O11^RDE_O11", _ORC + _RXE + rxc)
    (heparin, unnamed) = request["contained"][0]["ingredient"]
    assert heparin["strength"]["numerator"]["value"] == 1000
    assert heparin["strength"]["denominator"]["code"] == "mL"
    assert unnamed == {
        "itemCodeableConcept": {"coding": [{"display": "Unnamed"}], "text": "Unnamed"}
    }


def test_omp_and_orm_compounds_are_the_rxos() -> None:
    for event in ("OMP^O09^OMP_O09", "ORM^O01^ORM_O01"):
        (request,) = _requests(event, _ORC + _RXO + _RXC)
        assert _ingredients(request) == ["PB", "D5W", "KCL"]
        assert request["contained"][0]["code"]["text"] == "Placer compound"


def test_rds_compound_is_the_rxes_else_the_rxos_never_the_dispenses() -> None:
    rxd = "RXD|1|CMP^KCl in D5W^L|20240301|1|BAG\rRXR|IV\rRXC|B|DISP^Dispensed base^L|1|BAG\r"
    (request,) = _requests("RDS^O13^RDS_O13", _ORC + _RXO + _RXE + _RXC + rxd)
    assert _ingredients(request) == ["D5W", "KCL"]
    (request,) = _requests("RDS^O13^RDS_O13", _ORC + _RXO + rxd)
    assert _ingredients(request) == ["PB"]


def test_an_order_without_components_names_its_medication_by_code() -> None:
    (request,) = _requests("RDE^O11^RDE_O11", _ORC + _RXO + _RXE)
    assert request["medicationCodeableConcept"]["coding"][0]["code"] == "CMP"
    assert "contained" not in request


def _ids(event: str, body: str, control: str) -> list[str]:
    message = (_HEAD.format(event=event, control=control) + body).encode()
    bundle = json.loads(to_json(convert(message, bundle_type="transaction")))
    return [
        e["request"]["url"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest"
    ]


def test_orders_without_numbers_are_each_messages_own() -> None:
    cases = (
        ("RDE^O11^RDE_O11", "ORC|NW\r" + _RXE),
        ("OMP^O09^OMP_O09", "ORC|NW\r" + _RXO),
        ("RDS^O13^RDS_O13", "ORC|NW\r" + _RXE + "RXD|1|CMP^KCl^L|20240301|1|BAG\r"),
        ("ORM^O01^ORM_O01", "ORC|NW\r" + _RXO),
    )
    for event, order in cases:
        first = _ids(event, order + order, "M1")
        assert len(set(first)) == 2, event
        assert _ids(event, order + order, "M1") == first, event
        assert set(_ids(event, order + order, "M2")).isdisjoint(first), event


def test_an_order_with_a_number_keeps_the_id_its_number_gives() -> None:
    for control in ("M1", "M2"):
        (url,) = _ids("RDE^O11^RDE_O11", "ORC|NW|PL1\r" + _RXE, control)
        assert url == "MedicationRequest/" + deterministic_id("MedicationRequest", "", "PL1")


def test_a_strength_whose_numbers_do_not_both_convert_is_left_out() -> None:
    # RXC-3 not a number (its unit then says nothing); RXC-5 a number whose
    # per-amount RXC-8 is not: no half Ratio (FHIR rat-1), the code kept.
    components = (
        "RXC|A|KCL^Potassium chloride^L|2O|meq^^UCUM\r"
        "RXC|A|HEP^Heparin^L|||1000|[iU]^^UCUM|x|mL^^UCUM\r"
    )
    (request,) = _requests("RDE^O11^RDE_O11", _ORC + _RXE + components)
    medication = request["contained"][0]
    assert [i.get("strength") for i in medication["ingredient"]] == [None, None]
    assert _ingredients(request) == ["KCL", "HEP"]


def test_two_orders_with_one_placer_number_are_two_medication_requests() -> None:
    # A sender's error: the second ORDER repeats the first's ORC-2. Merged,
    # the first's "unknown" drug and the second's compound were one resource
    # with two medication[x]; each is now its own order, the second without
    # the repeated identifier, with a warning naming the segment.
    requests, warnings = _warned("RDE^O11^RDE_O11", _ORC + _ORC + _RXE + _RXC, "MedicationRequest")
    assert len(requests) == 2
    assert requests[0]["medicationCodeableConcept"] == {"text": "unknown"}
    assert _ingredients(requests[1]) == ["D5W", "KCL"]
    assert "identifier" not in requests[1]
    assert any("repeats the identifier" in w and "ORC" in w for w in warnings)


def test_a_repeated_order_keeps_no_identifier_the_earlier_one_holds() -> None:
    # Both numbers repeated (ORC-2 and ORC-3): the second order loses both.
    # Before, it lost ORC-2 only and was a conditional update by ORC-3, which
    # the first order holds too: on a server that stored the order, both
    # updates of the transaction match that one resource (touched twice).
    orc = "ORC|NW|PL1^EHR|FL1^PHARM\r"
    rxe = "RXE|^^^20240301|{code}^Drug^L|1||TAB\r"
    message = (
        _HEAD.format(event="RDE^O11^RDE_O11", control="M1")
        + orc
        + rxe.format(code="IBU")
        + orc
        + rxe.format(code="PARA")
    )
    warnings: list[str] = []
    bundle = convert(message.encode(), warnings=warnings)
    first, second = [
        e for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest"
    ]
    held = {i["value"] for i in first["resource"]["identifier"]}
    assert held == {"PL1", "FL1"}
    assert "identifier" not in second["resource"]
    assert second["request"]["url"].startswith("MedicationRequest/")
    assert second["resource"]["medicationCodeableConcept"]["coding"][0]["code"] == "PARA"
    assert len(warnings) == 1


def test_a_filler_number_of_an_earlier_order_is_dropped_though_the_placers_differ() -> None:
    # Two ORCs, two placer numbers, one filler number: the second keeps its
    # own ORC-2 and loses ORC-3 (a warning). Before, both held FL1: an
    # update by the filler number then matched two orders.
    rxe = "RXE|^^^20240301|{code}^Drug^L|1||TAB\r"
    message = (
        _HEAD.format(event="RDE^O11^RDE_O11", control="M1")
        + "ORC|NW|PL1^EHR|FL1^PHARM\r"
        + rxe.format(code="IBU")
        + "ORC|NW|PL2^EHR|FL1^PHARM\r"
        + rxe.format(code="PARA")
    )
    warnings: list[str] = []
    bundle = convert(message.encode(), warnings=warnings)
    first, second = [
        e for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest"
    ]
    assert [i["value"] for i in first["resource"]["identifier"]] == ["PL1", "FL1"]
    assert [i["value"] for i in second["resource"]["identifier"]] == ["PL2"]
    assert second["request"]["url"].endswith("|PL2")
    assert len(warnings) == 1


def test_a_component_whose_code_is_separators_alone_is_no_ingredient() -> None:
    # RXC-2's first repetition `^` holds no code: the component (with its
    # strength) is left out rather than written without its item (1..1).
    components = _RXC + "RXC|A|^~HEP^Heparin^L|||1000|[iU]^^UCUM||1|mL^^UCUM\r"
    (request,) = _requests("RDE^O11^RDE_O11", _ORC + _RXE + components)
    assert _ingredients(request) == ["D5W", "KCL"]


def test_two_dispenses_with_one_prescription_number_are_two() -> None:
    # RXD-7 identifies a dispense; a second RXD repeating it (a sender's
    # error) was dropped. It is another MedicationDispense, without the
    # repeated number, with a warning naming RXD.
    rxd = "RXD|1|CMP^KCl^L|20240301|1|BAG||RX77\rRXD|2|CMP^KCl^L|20240302|1|BAG||RX77\r"
    dispenses, warnings = _warned("RDS^O13^RDS_O13", _ORC + _RXE + rxd, "MedicationDispense")
    assert [d["whenHandedOver"][:10] for d in dispenses] == ["2024-03-01", "2024-03-02"]
    assert "identifier" in dispenses[0] and "identifier" not in dispenses[1]
    assert any("repeats the identifier" in w and "RXD" in w for w in warnings)
