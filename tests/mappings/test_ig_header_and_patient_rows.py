"""Rows of the IG's MSH, EVN, PID, PD1, PV2 and data type maps that an audit
found thumpflow departing from (audit a1, P2-P13): each test converts one
ADT^A01 and checks the element the IG's row writes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from thumpflow.fhir import validate
from thumpflow.mapping import convert, to_json

DAR = {
    "extension": [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
            "valueCode": "unknown",
        }
    ]
}


def _msh(*, app: str = "APP", fac: str = "FAC", rcv: str = "RCV", more: str = "") -> str:
    """MSH of an ADT^A01 v2.5.1; `more` is MSH-13 onwards (after MSH-12's `|`)."""
    return f"MSH|^~\\&|{app}|{fac}|{rcv}|RFAC|20240301101500||ADT^A01^ADT_A01|C1|P|2.5.1|{more}\r"


def _bundle(segments: str, msh: str = "", evn: str = "EVN|A01|20240301101500\r") -> dict[str, Any]:
    text = (
        (msh or _msh()) + evn + "PID|1||P7^^^H^MR||Roe^Kim\r" * (segments[:4] != "PID|") + segments
    )
    data: dict[str, Any] = json.loads(to_json(convert(text.encode(), bundle_type="collection")))
    assert [i for i in validate(data) if i.severity == "error"] == []
    return data


def _all(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _one(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    (found,) = _all(bundle, rtype)
    return found


def _pid(fields: dict[int, str]) -> str:
    return "|".join(["PID"] + [fields.get(n, "") for n in range(1, max(fields) + 1)]) + "\r"


# -- PID-12 (IG PID[Patient] rows 12: LST.COUNT of PID-11, PID-11.9) --


@pytest.mark.parametrize(
    ("pid11", "expected"),
    [
        # One address without a county: the county is its district.
        (
            "1 Main St^^Irvine^CA",
            [{"line": ["1 Main St"], "city": "Irvine", "state": "CA", "district": "Clark"}],
        ),
        # No address: an address holding the district.
        ("", [{"district": "Clark"}]),
        # PID-11 repeats: the county may be either's, so an address of its own.
        (
            "1 Main St^^Irvine^CA~9 Work Rd^^Las Vegas^NV",
            [
                {"line": ["1 Main St"], "city": "Irvine", "state": "CA"},
                {"line": ["9 Work Rd"], "city": "Las Vegas", "state": "NV"},
                {"district": "Clark"},
            ],
        ),
        # One address with another county: both kept.
        (
            "1 Main St^^Irvine^CA^^^^^Orange",
            [
                {"line": ["1 Main St"], "city": "Irvine", "state": "CA", "district": "Orange"},
                {"district": "Clark"},
            ],
        ),
        # One address with the same county: nothing more.
        (
            "1 Main St^^Irvine^CA^^^^^Clark",
            [{"line": ["1 Main St"], "city": "Irvine", "state": "CA", "district": "Clark"}],
        ),
    ],
)
def test_pid_12_county_is_the_one_address_district_else_an_address_of_its_own(
    pid11: str, expected: list[dict[str, Any]]
) -> None:
    patient = _one(
        _bundle(_pid({1: "1", 3: "P7^^^H^MR", 5: "Roe^Kim", 11: pid11, 12: "Clark"})), "Patient"
    )
    assert patient["address"] == expected


def test_xad_9_county_is_the_original_text_else_the_text_else_the_code() -> None:
    counties = "~".join(
        f"{n} Main St^^LA^CA^^^^^{county}"
        for n, county in enumerate(
            ["06037&LA&FIPS6_4&&&&&&Los Angeles County", "06037&LA", "06037"], 1
        )
    )
    patient = _one(_bundle(_pid({1: "1", 3: "P7^^^H^MR", 5: "Roe^Kim", 11: counties})), "Patient")
    assert [a["district"] for a in patient["address"]] == ["Los Angeles County", "LA", "06037"]


# -- PD1-14, PV2-11 --


def test_pd1_14_congregation_is_xon_1_else_xon_10() -> None:
    def congregation(xon: str) -> list[str]:
        patient = _one(_bundle("PD1" + "|" * 14 + xon + "\r"), "Patient")
        return [
            e["valueString"]
            for e in patient.get("extension", [])
            if e["url"].endswith("congregation")
        ]

    assert congregation("^^^^^^^^^PW1") == ["PW1"]
    assert congregation("St Mary^^^^^^^^^PW1") == ["St Mary"]


@pytest.mark.parametrize(("days", "length"), [("3", 3), ("0.5", 0.5), ("0", None), ("-3", None)])
def test_pv2_11_length_of_stay_only_when_positive(days: str, length: float | None) -> None:
    segments = "PV1|1|I|||||||||||||||||V1\rPV2" + "|" * 11 + days + "\r"
    encounter = _one(_bundle(segments), "Encounter")
    assert encounter.get("length", {}).get("value") == length


# -- MSH[MessageHeader], MSH[Provenance-Source] --


def test_msh_24_is_the_source_endpoint_over_msh_3() -> None:
    msh24 = "|" * 11 + "^2.16.840.1.113883.19.5^ISO"
    header = _one(_bundle("", _msh(app="SEND^1.2.3^ISO", more=msh24)), "MessageHeader")
    assert header["source"] == {
        "name": "SEND",
        "software": "1.2.3",
        "endpoint": "urn:oid:2.16.840.1.113883.19.5",
    }
    header = _one(_bundle("", _msh(app="SEND^1.2.3^ISO")), "MessageHeader")
    assert header["source"]["endpoint"] == "urn:oid:1.2.3"


@pytest.mark.parametrize(
    ("msh5", "endpoint"),
    [
        ("RECV^https://recv.example.org/hl7^URI", "https://recv.example.org/hl7"),
        ("RECV^mllp://recv.example.org:2575^DNS", "mllp://recv.example.org:2575"),
        ("RECV^1.2.840.1^ISO", "urn:oid:1.2.840.1"),
    ],
)
def test_msh_5_universal_id_of_any_type_is_the_destination_endpoint(
    msh5: str, endpoint: str
) -> None:
    header = _one(_bundle("", _msh(rcv=msh5)), "MessageHeader")
    assert header["destination"][0]["endpoint"] == endpoint
    # MSH-25, when it gives one, wins.
    header = _one(
        _bundle("", _msh(rcv=msh5, more="|" * 12 + "^https://net.example.org^URI")), "MessageHeader"
    )
    assert header["destination"][0]["endpoint"] == "https://net.example.org"


def test_msh_5_without_universal_id_type_has_an_absent_endpoint() -> None:
    header = _one(_bundle("", _msh(rcv="RECV^recv.example.org")), "MessageHeader")
    assert "endpoint" not in header["destination"][0]
    assert header["destination"][0]["_endpoint"] == DAR


@pytest.mark.parametrize(
    "msh5", ["RECV^recv.example.org^DNS", "RECV^05D0123456^CLIA", "RECV^hl7/in^URI"]
)
def test_a_destination_endpoint_that_is_no_url_is_absent(msh5: str) -> None:
    """R4's `destination.endpoint` is a `url` (the IG: "a reachable address"):
    a host name, a CLIA number or a relative path is not one."""
    header = _one(_bundle("", _msh(rcv=msh5)), "MessageHeader")
    assert header["destination"][0]["name"] == "RECV"
    assert "endpoint" not in header["destination"][0]
    assert header["destination"][0]["_endpoint"] == DAR
    header = _one(_bundle("", _msh(rcv=msh5, more="|" * 12 + msh5)), "MessageHeader")
    assert "endpoint" not in header["destination"][0], "nor from MSH-25"


def test_event_coding_display_is_msh_9_as_sent() -> None:
    assert _one(_bundle(""), "MessageHeader")["eventCoding"] == {
        "code": "A01",
        "display": "ADT^A01^ADT_A01",
        "system": "http://terminology.hl7.org/CodeSystem/v2-0003",
    }
    msh = _msh().replace("ADT^A01^ADT_A01", "ADT^A01")
    assert _one(_bundle("", msh), "MessageHeader")["eventCoding"]["display"] == "ADT^A01"


def _author(bundle: dict[str, Any]) -> dict[str, Any]:
    (agent,) = _one(bundle, "Provenance")["agent"]
    assert agent["type"]["coding"][0]["code"] == "author"
    ref = agent["who"]["reference"]
    (org,) = [e["resource"] for e in bundle["entry"] if e["fullUrl"] == ref]
    return org


def test_provenance_author_is_msh_22_else_msh_4() -> None:
    bundle = _bundle("", _msh(more="|" * 9 + "Resp Org^^^^^^^^^RO1"))
    author = _author(bundle)
    assert author["name"] == "Resp Org"
    assert _one(bundle, "MessageHeader")["responsible"]["reference"] == f"urn:uuid:{author['id']}"
    assert _author(_bundle("", _msh()))["name"] == "FAC"


# -- HD[Organization] --


def test_a_uuid_universal_id_is_a_urn_uuid_under_rfc_3986() -> None:
    uuid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    bundle = _bundle("", _msh(fac=f"FAC^{uuid}^UUID"))
    (sender,) = [o for o in _all(bundle, "Organization") if o["name"] == "FAC"]
    assert sender["identifier"][1]["system"] == "urn:ietf:rfc:3986"
    assert sender["identifier"][1]["value"] == f"urn:uuid:{uuid}"
    # Not a UUID after all: the value as sent, without the URI system.
    bundle = _bundle("", _msh(fac="FAC^not-a-uuid^UUID"))
    (sender,) = [o for o in _all(bundle, "Organization") if o["name"] == "FAC"]
    assert sender["identifier"][1]["value"] == "not-a-uuid"
    assert "system" not in sender["identifier"][1]


# -- EVN-4 (IG EVN[Provenance], EventReason) --


@pytest.mark.parametrize(
    ("evn4", "reason"),
    [
        (
            "01^Patient request^HL70062",
            {
                "coding": [
                    {
                        "code": "PATRQT",
                        "display": "patient requested",
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                    }
                ]
            },
        ),
        (
            "O^Other^HL70062",
            {
                "coding": [
                    {
                        "code": "O",
                        "display": "Other",
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0062",
                    }
                ]
            },
        ),
        ("U^Unknown^HL70062", DAR),
        ("LOC1^Local reason^L", {"coding": [{"code": "LOC1", "display": "Local reason"}]}),
    ],
)
def test_evn_4_goes_through_the_event_reason_map(evn4: str, reason: dict[str, Any]) -> None:
    bundle = _bundle("", evn=f"EVN|A01|20240301101500||{evn4}\r")
    assert _one(bundle, "Provenance")["reason"] == [reason]


# -- Encounter.class (IG PatientClass[EncounterClass] displays) --


@pytest.mark.parametrize(
    ("pv1_2", "display"),
    [("E", "emergency"), ("I", "inpatient encounter"), ("O", "ambulatory"), ("P", "pre-admission")],
)
def test_encounter_class_has_the_igs_display(pv1_2: str, display: str) -> None:
    encounter = _one(_bundle(f"PV1|1|{pv1_2}|||||||||||||||||V1\r"), "Encounter")
    assert encounter["class"]["display"] == display


# -- XTN[ContactPoint] --


def _telecom(segments: str, rtype: str = "Patient") -> list[dict[str, Any]]:
    return [
        {k: v for k, v in t.items() if k in ("system", "_system", "use", "value")}
        for t in _one(_bundle(segments), rtype)["telecom"]
    ]


def test_a_telecom_without_equipment_type_or_address_has_an_unknown_system() -> None:
    pid = _pid(
        {1: "1", 3: "P7^^^H^MR", 5: "Roe^Kim", 40: "5557654321~^^FX^^^555^1234567~^^^a@example.org"}
    )
    assert _telecom(pid) == [
        {"_system": DAR, "value": "5557654321"},
        {"system": "fax", "value": "555 1234567"},
        {"system": "email", "value": "a@example.org"},
    ]


def test_a_cell_phone_is_a_mobile_phone_except_where_pid_13_14_say_home_or_work() -> None:
    nk1 = "NK1|1|Roe^Al|SPO||^^CP^^^555^2222222~^WPN^CP^^^555^3333333\r"
    assert _telecom(nk1, "RelatedPerson") == [
        {"system": "phone", "use": "mobile", "value": "555 2222222"},
        {"system": "phone", "use": "work", "value": "555 3333333"},
    ]
    pid = _pid(
        {1: "1", 3: "P7^^^H^MR", 5: "Roe^Kim", 13: "^^CP^^^555^4444444", 14: "^^CP^^^555^5555555"}
    )
    assert _telecom(pid) == [
        {"system": "phone", "use": "home", "value": "555 4444444"},
        {"system": "phone", "use": "work", "value": "555 5555555"},
    ]
