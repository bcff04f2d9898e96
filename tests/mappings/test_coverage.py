"""IN1's insured (IG IN1[Coverage] rows 16 and 17): the patient when IN1-17
is `SEL`, else a RelatedPerson of the patient named by IN1-16; each
Coverage's subscriber is the insured of its own IN1."""

from __future__ import annotations

import json
from typing import Any

import pytest

from thumpflow.fhir import validate
from thumpflow.mapping import convert, to_json

_SPOUSE = (
    "IN1|1|PPO|UHC^^^^NIIP|UnitedHealthcare"
    + "|" * 12
    + "Doe^Ann^B|SPO^Spouse^HL70063|19700203|1 Main St^^Salem^MA^01970"
    + "|" * 24
    + "F\r"
)
_SELF = "IN1|2|HMO|AET|Aetna" + "|" * 12 + "Doe^Jo|SEL\r"
_CHILD = "IN1|3|EPO|BCB|Blue" + "|" * 12 + "Roe^Kim|CHD^Child^HL70063\r"


def _bundle(event: str, in1: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    message = (
        f"MSH|^~\\&|A|H|R|R|20240102||{event}|1|P|2.5\rEVN||20240102\r"
        f"PID|1||P1^^^H^MR||Doe^Jo\rPV1|1|I\r{in1}"
    )
    bundle: dict[str, Any] = json.loads(
        to_json(convert(message.encode(), bundle_type="collection"))
    )
    assert [i for i in validate(bundle) if i.severity == "error"] == []
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    return by_url, [e["resource"] for e in bundle["entry"]]


@pytest.mark.parametrize("event", ["ADT^A01", "ADT^A28^ADT_A05", "BAR^P01", "ORM^O01"])
def test_each_coverage_names_the_insured_of_its_own_in1(event: str) -> None:
    tail = "ORC|NW|O1\rOBR|1|O1||X^Y^L\r" if event.startswith("ORM") else ""
    by_url, resources = _bundle(event, _SPOUSE + _SELF + _CHILD + tail)
    plans = {
        r["relationship"]["coding"][0]["code"]: r
        for r in resources
        if r["resourceType"] == "Coverage"
    }
    spouse_plan, own_plan, child_plan = plans["SPS"], plans["ONESELF"], plans["CHILD"]
    spouse = by_url[spouse_plan["subscriber"]["reference"]]
    assert spouse["resourceType"] == "RelatedPerson"
    assert spouse["name"] == [{"family": "Doe", "given": ["Ann", "B"]}]
    assert spouse["relationship"][0]["coding"][0]["code"] == "SPS"
    assert (spouse["birthDate"], spouse["gender"]) == ("1970-02-03", "female")
    assert spouse["address"][0]["city"] == "Salem"
    patient = by_url[own_plan["subscriber"]["reference"]]
    assert patient["resourceType"] == "Patient"
    assert by_url[spouse["patient"]["reference"]] is patient
    child = by_url[child_plan["subscriber"]["reference"]]
    assert child["name"] == [{"family": "Roe", "given": ["Kim"]}]


def test_an_in1_without_an_insured_names_no_subscriber() -> None:
    _, resources = _bundle("ADT^A01", "IN1|1|PPO|UHC^^^^NIIP|UnitedHealthcare\r")
    (coverage,) = [r for r in resources if r["resourceType"] == "Coverage"]
    assert "subscriber" not in coverage
    assert not [r for r in resources if r["resourceType"] == "RelatedPerson"]


def _payor(in1: str) -> dict[str, Any]:
    by_url, resources = _bundle("ADT^A01", in1)
    (coverage,) = [r for r in resources if r["resourceType"] == "Coverage"]
    (payor,) = [by_url[p["reference"]] for p in coverage["payor"]]
    return payor


def test_the_insurance_company_address_is_the_payors() -> None:
    # IG IN1-5: payer(Organization.address), the Organization of IN1-4.
    payor = _payor("IN1|1|PPO|UHC|UnitedHealthcare^^UHC01|PO Box 30555^^Salt Lake City^UT^84130\r")
    assert payor["name"] == "UnitedHealthcare"
    assert payor["identifier"][0]["value"] == "UHC01"
    assert payor["address"] == [
        {"line": ["PO Box 30555"], "city": "Salt Lake City", "state": "UT", "postalCode": "84130"}
    ]
    assert "address" not in _payor("IN1|1|PPO|UHC|UnitedHealthcare\r")
    # Without IN1-4, IN1-3 names the payor; an address alone makes no Organization.
    payor = _payor("IN1|1|PPO|UHC^^^^NIIP||PO Box 30555^^Salt Lake City^UT^84130\r")
    assert payor["identifier"][0]["value"] == "UHC"
    assert "address" not in payor


def test_two_in1s_of_one_insurer_keep_both_its_addresses() -> None:
    # Two plans of one insurance company (IN1-4 identifier UHC01), each IN1-5
    # an address of it: one payor Organization holding both (R4 address
    # 0..*), the same address sent twice once.
    east = "PO Box 30555^^Salt Lake City^UT^84130"
    west = "PO Box 740800^^Atlanta^GA^30374"
    in1 = "IN1|{n}|{plan}|UHC|UnitedHealthcare^^UHC01|{address}\r"
    by_url, resources = _bundle(
        "ADT^A01",
        in1.format(n=1, plan="PPO", address=east)
        + in1.format(n=2, plan="HMO", address=west)
        + in1.format(n=3, plan="EPO", address=east),
    )
    coverages = [r for r in resources if r["resourceType"] == "Coverage"]
    assert len(coverages) == 3
    payors = {p["reference"] for c in coverages for p in c["payor"]}
    (payor,) = [by_url[p] for p in payors]
    assert [a["city"] for a in payor["address"]] == ["Salt Lake City", "Atlanta"]
    insurers = [r for r in resources if r.get("name") == "UnitedHealthcare"]
    assert insurers == [payor]
