"""Data type fidelity against the IG's data type maps.

- A CWE field with a vocabulary map (`{from: 16, vocab: MaritalStatus,
  type: "CWE[CodeableConcept]"}`), when CWE-3 names the vocabulary's table
  or nothing (another system's code is left as sent), keeps everything CWE[CodeableConcept]
  keeps: the vocabulary's coding for CWE-1 when it lists the code (else the
  sender's coding, without the vocabulary's v2 table system), CWE-2 display,
  CWE-4..6 alternate coding, CWE-7 version and CWE-9 text; per repetition
  for OBX-8. PV2-38 is CWE[Coding] (IG), with the same rule. PID-15 and
  NK1-20 (language) follow it too: CWE-1 becomes BCP 47 when listed, the
  alternate coding and CWE-9 text stay; a name alone in CWE-2 is looked up.
- XTN-8 is part of the assembled ContactPoint.value (IG XTN rows for XTN-7).
- XAD-1 is an SAD: SAD-1, SAD-2 and SAD-3 are address lines 1-3, XAD-2 line 4.
- IN1-2 is CWE[Identifier]: CWE-1, CWE-4 and CWE-10 are plan identifiers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.mappings.single import observation_of, resource_of
from thumpflow.fhir import validate
from thumpflow.mapping import _memo, convert, to_json

V3_MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

_MSH = b"MSH|^~\\&|APP|FAC|RCV|RFAC|20240301101500||ADT^A01|C1|P|2.6\rEVN|A01|20240301101500\r"


def _bundle(segments: bytes, msh: bytes = _MSH) -> dict[str, Any]:
    bundle = convert(msh + segments, bundle_type="collection")
    data: dict[str, Any] = json.loads(to_json(bundle))
    assert [i for i in validate(data) if i.severity == "error"] == []
    return data


def _one(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    (found,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]
    return found


def _pid16(cwe: str) -> dict[str, Any]:
    pid = f"PID|1||P7^^^H^MR||Roe^Kim|||||||||||{cwe}\r".encode()
    return _one(_bundle(pid), "Patient").get("maritalStatus", {})


def test_an_unlisted_marital_status_keeps_the_senders_coding_and_text() -> None:
    assert _pid16("Z^Cohabiting^L^^^^12^^Lives with partner") == {
        "coding": [{"code": "Z", "display": "Cohabiting", "version": "12"}],
        "text": "Lives with partner",
    }


def test_a_listed_marital_status_is_the_vocabularys_coding_plus_the_rest() -> None:
    assert _pid16("M^Wed^HL70002^MAR^Married (local)^LN^2.6^^married in 2001") == {
        "coding": [
            {"code": "M", "display": "Married", "system": V3_MARITAL},
            {"code": "MAR", "display": "Married (local)", "system": "http://loinc.org"},
        ],
        "text": "married in 2001",
    }


def test_an_unlisted_code_never_gets_the_vocabularys_table_system() -> None:
    # Q is no code of table 0002, whatever CWE-3 says.
    assert _pid16("Q^Other^HL70002^^^^2.6") == {"coding": [{"code": "Q", "display": "Other"}]}


@pytest.mark.parametrize("table", ["", "HL70002", "0002", "hl7-0002"])
def test_a_code_of_the_vocabularys_table_is_recoded(table: str) -> None:
    assert _pid16(f"S^Single^{table}")["coding"][0]["system"] == V3_MARITAL


@pytest.mark.parametrize("table", ["99LOCAL", "L", "HL70003"])
def test_a_code_of_another_system_is_not_recoded_whatever_its_spelling(table: str) -> None:
    # IG concept maps are keyed by code and table: a local S ("Separated")
    # is not table 0002's S ("Never Married").
    assert _pid16(f"S^Separated^{table}") == {"coding": [{"code": "S", "display": "Separated"}]}


def test_text_only_marital_status_is_as_cwe_codeableconcept_makes_it() -> None:
    assert _pid16("^Separated for now") == {
        "coding": [{"display": "Separated for now"}],
        "text": "Separated for now",
    }


BCP47 = "urn:ietf:bcp:47"


def _languages(pid15: str, nk1_20: str) -> list[dict[str, Any]]:
    segments = f"PID|1||P7^^^H^MR||Roe^Kim||||||||||{pid15}\rNK1|1|Roe^Al|SPO" + "|" * 17
    bundle = _bundle((segments + f"{nk1_20}\r").encode())
    return [
        _one(bundle, rtype)["communication"][0]["language"]
        for rtype in ("Patient", "RelatedPerson")
    ]


def test_language_keeps_its_alternate_coding_and_original_text() -> None:
    cwe = "ara^Arabic^HL70296^eng^English^HL70296^^^Arabic (Egyptian)"
    expected = {
        "coding": [
            {"code": "ar", "display": "Arabic", "system": BCP47},
            # User-defined table 0296 has no published code system.
            {"code": "eng", "display": "English"},
        ],
        "text": "Arabic (Egyptian)",
    }
    assert _languages(cwe, cwe) == [expected, expected]


def test_a_language_name_alone_is_looked_up_and_an_unlisted_code_stays_the_senders() -> None:
    assert _languages("^Spanish", "xx^Klingon^L") == [
        {"coding": [{"code": "es", "display": "Spanish", "system": BCP47}]},
        {"coding": [{"code": "xx", "display": "Klingon"}]},
    ]


def test_obx8_maps_each_repetitions_code_through_the_vocabulary() -> None:
    msh = b"MSH|^~\\&|LAB|FAC|EHR|FAC|20240301101500||ORU^R01^ORU_R01|C2|P|2.8\r"
    segments = (
        b"PID|1||P7^^^H^MR||Roe^Kim\rOBR|1||F1|1234-5^Panel^LN|||20240301101500\r"
        b"OBX|1|NM|8867-4^Heart rate^LN||50|/min^^UCUM||L^Low^HL70078~XYZ^Odd^L^^^^^^seen odd|||F\r"
    )
    observation = _one(_bundle(segments, msh), "Observation")
    assert observation["interpretation"] == [
        {"coding": [{"code": "L", "display": "Low", "system": V3_INTERPRETATION}]},
        {"coding": [{"code": "XYZ", "display": "Odd"}], "text": "seen odd"},
    ]


def test_pv2_38_is_a_coding_with_the_senders_display() -> None:
    segments = (
        b"PID|1||P7^^^H^MR||Roe^Kim\rPV1|1|E|||||||||||||||||V9\r"
        + b"PV2"
        + b"|" * 38
        + b"WHL^Wheelchair^L~A^Ambulance^HL70430\r"
    )
    (arrival,) = _one(_bundle(segments), "Encounter")["extension"]
    assert arrival["valueCoding"] == {"code": "WHL", "display": "Wheelchair"}
    segments = segments.replace(b"WHL^Wheelchair^L~", b"")
    (arrival,) = _one(_bundle(segments), "Encounter")["extension"]
    assert arrival["valueCoding"] == {
        "code": "A",
        "display": "Ambulance",
        "system": "http://terminology.hl7.org/CodeSystem/v2-0430",
    }


def test_the_memo_tells_vocabularies_apart() -> None:
    # The same CWE text in fields of two vocabularies, one after the other
    # and across messages: each field gets its own vocabulary's result.
    nk1 = b"PID|1||P7^^^H^MR||Roe^Kim\rNK1|1|Roe^Lee|C^Contact||||C^Contact\r"
    with _memo.memoising(True):
        first = _one(_bundle(nk1), "RelatedPerson")["relationship"]
        again = _one(_bundle(nk1), "RelatedPerson")["relationship"]
    with _memo.memoising(False):
        plain = _one(_bundle(nk1), "RelatedPerson")["relationship"]
    assert first == again == plain
    assert first[0] == {"coding": [{"code": "C", "display": "Contact"}]}
    assert first[1]["coding"][0]["display"] == "Emergency Contact"


def test_xtn8_is_part_of_the_value_and_its_own_extension() -> None:
    pid = b"PID|1||P7^^^H^MR||Roe^Kim||||||||^WPN^PH^^44^20^7946000^215\r"
    (telecom,) = _one(_bundle(pid), "Patient")["telecom"]
    assert telecom["value"] == "+44 20 7946000 X215"
    assert {"url": "http://hl7.org/fhir/StructureDefinition/contactpoint-extension",
            "valueString": "215"} in telecom["extension"]  # fmt: skip
    pid = b"PID|1||P7^^^H^MR||Roe^Kim||||||||^WPN^PH^^^20^7946000^215\r"
    (telecom,) = _one(_bundle(pid), "Patient")["telecom"]
    assert telecom["value"] == "20 7946000 X215"


def test_xad1_street_name_and_dwelling_number_are_lines() -> None:
    pid = b"PID|1||P7^^^H^MR||Roe^Kim||||||12 Elm Row&Elm Row&Flat 3^Rear^Leeds^^LS1\r"
    (address,) = _one(_bundle(pid), "Patient")["address"]
    assert address["line"] == ["12 Elm Row", "Elm Row", "Flat 3", "Rear"]
    pid = b"PID|1||P7^^^H^MR||Roe^Kim||||||&Elm Row&4^^Leeds\r"
    (address,) = _one(_bundle(pid), "Patient")["address"]
    assert address["line"] == ["Elm Row", "4"]


def test_in1_2_alternate_plan_identifiers() -> None:
    segments = (
        b"PID|1||P7^^^H^MR||Roe^Kim\rPV1|1|I|||||||||||||||||V9\r"
        b"IN1|1|PLAN-A^Gold^L^PLAN-B^^L^^^^PLAN-C|PAY1^^^PAYERS|Acme Health"
        + b"|" * 32
        + b"POL-9\r"
    )
    coverage = _one(_bundle(segments), "Coverage")
    assert [i["value"] for i in coverage["identifier"]] == ["POL-9", "PLAN-A", "PLAN-B", "PLAN-C"]


_SIMPLE = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij0123456789 -.", max_size=8)


@given(
    code=st.one_of(st.sampled_from(["M", "S", "D", "W", "A", "m", "Q", "U"]), _SIMPLE),
    display=_SIMPLE,
    system=st.sampled_from(["", "HL70002", "L", "LN", "99LOC"]),
    alternate=_SIMPLE,
    original=_SIMPLE,
    memo=st.booleans(),
)
def test_every_vocabulary_cwe_field_keeps_alternate_coding_and_original_text(
    code: str, display: str, system: str, alternate: str, *, original: str, memo: bool
) -> None:
    """For PID-16 and PV1-36 (general: any vocab + CWE[CodeableConcept]
    entry): CWE-9 is the text, CWE-4 an alternate coding, and the first
    coding is the vocabulary's for a listed code, else the sender's code."""
    cwe = f"{code}^{display}^{system}^{alternate}^^^^^{original}"
    segments = (
        f"PID|1||P7^^^H^MR||Roe^Kim|||||||||||{cwe}\r"
        f"PV1|1|I|||||||||||||||||V9|||||||||||||||||{cwe}\r"
    ).encode()
    with _memo.memoising(memo):
        bundle = _bundle(segments)
    patient, encounter = _one(bundle, "Patient"), _one(bundle, "Encounter")
    for concept, table in (
        (patient.get("maritalStatus", {}), "0002"),
        (encounter.get("hospitalization", {}).get("dischargeDisposition", {}), "0112"),
    ):
        codings = concept.get("coding", [])
        if original.strip():
            assert concept["text"] == original.strip()
        if alternate.strip():
            assert codings[-1]["code"] == " ".join(alternate.split())
        if code.strip():
            first = codings[0]
            assert first["code"] == " ".join(code.split()) or first.get("system", "").startswith(
                "http://terminology.hl7.org/CodeSystem/"
            )
            # Never the field's own table's system for a code it does not list.
            assert first.get("system") != f"http://terminology.hl7.org/CodeSystem/v2-{table}"


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("ML^^ISO+", {"unit": "ML", "code": "mL", "system": "http://unitsofmeasure.org"}),
        ("MG^^ANSI+", {"unit": "MG", "code": "mg", "system": "http://unitsofmeasure.org"}),
        ("DROPS^^ISO+", {"unit": "DROPS"}),
        ("mL^^UCUM", {"unit": "mL", "code": "mL", "system": "http://unitsofmeasure.org"}),
        ("Mm^^UCUM", {"unit": "Mm", "code": "Mm", "system": "http://unitsofmeasure.org"}),
    ],
)
def test_iso_and_ansi_units_are_never_taken_as_ucum_codes(
    unit: str, expected: dict[str, str]
) -> None:
    """ISO+/ANSI+ units are capitals (`ML` a millilitre, `MG` a milligram);
    as UCUM codes they would be a megalitre and a megagram. Known ones are
    translated, others stay unit text; a unit coded UCUM is taken as written."""
    quantity = observation_of(f"NM|V^Volume^L||0.5|{unit}|||||F")["valueQuantity"]
    assert {k: v for k, v in quantity.items() if k != "value"} == expected


def test_xpn_15_called_by_is_a_nickname_of_its_own() -> None:
    """IG XPN-15: a second HumanName with the name the patient is called by as
    `given` and use `nickname`, for each PID-5 repetition that has one."""
    message = (
        b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\r"
        b"PID|1||P1^^^H^MR||Doe^Jonathan^Q^^^^L^^^^^^^^Jon~Roe^Jo^^^^^M\rPV1|1|I\r"
    )
    assert resource_of(message, "Patient")["name"] == [
        {"family": "Doe", "given": ["Jonathan", "Q"], "use": "official"},
        {"family": "Roe", "given": ["Jo"], "use": "maiden"},
        {"given": ["Jon"], "use": "nickname"},
    ]


@pytest.mark.parametrize(
    "authority",
    ["NPI", "&2.16.840.1.113883.4.6&ISO", "NPI&2.16.840.1.113883.4.6&ISO", "2.16.840.1.113883.4.6"],
)
def test_an_npi_has_one_system_however_its_authority_is_written(authority: str) -> None:
    """FHIR names an identifier system that has a URI by the URI, not its
    OID: the NPI sent as namespace, as OID or both is one system, so one
    practitioner is one resource."""
    message = (
        "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||P1^^^H^MR||Doe^Jo\r"
        f"PV1|1|I|||||1234567890^Smith^Ann^^^^^^{authority}\r"
    ).encode()
    (identifier,) = resource_of(message, "Practitioner")["identifier"]
    assert identifier["system"] == "http://hl7.org/fhir/sid/us-npi"
    assert identifier["value"] == "1234567890"


@pytest.mark.parametrize(
    ("name", "system"),
    [
        ("I10", "http://hl7.org/fhir/sid/icd-10"),
        ("ICD-10", "http://hl7.org/fhir/sid/icd-10"),
        ("icd-10-cm", "http://hl7.org/fhir/sid/icd-10-cm"),
        ("SNOMED CT", "http://snomed.info/sct"),
        ("CPT-4", "http://www.ama-assn.org/go/cpt"),
        ("99LOCAL", None),
    ],
)
def test_a_coding_system_spelled_by_its_own_name_is_that_system(
    name: str, system: str | None
) -> None:
    """CWE-3 names the system by table 0396's code or, as many senders do, by
    the system's own name; each of those names one system. A local name
    leaves the system out (a guessed URI would be worse than none)."""
    message = _MSH + f"PID|1||P1^^^H^MR||Doe^Jo\rDG1|1||R00.0^Tachycardia^{name}\r".encode()
    (coding,) = resource_of(message, "Condition")["code"]["coding"]
    assert coding.get("system") == system
    assert coding["code"] == "R00.0"


def _locations(pl: str) -> dict[str, dict[str, Any]]:
    pv1 = f"PID|1||P7^^^H^MR||Roe^Kim\rPV1|1|I|{pl}" + "|" * 16 + "V1\r"
    return {r["name"]: r for r in _all(_bundle(pv1.encode()), "Location")}


def _all(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def test_a_locations_universal_id_is_its_identifier() -> None:
    found = _locations("4W&ward-9&L^101&1.2.3.4&ISO^A^GH&2.16.840.1.113883.19&ISO")
    iso = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0301", "code": "ISO"}]}
    assert found["GH"]["identifier"] == [
        {"system": "urn:ietf:rfc:3986", "value": "urn:oid:2.16.840.1.113883.19", "type": iso}
    ]
    assert found["101"]["identifier"][0]["value"] == "urn:oid:1.2.3.4"
    # A local id (HD-3 L) is no URI: the value as sent.
    assert found["4W"]["identifier"] == [
        {
            "value": "ward-9",
            "type": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0301", "code": "L"}]
            },
        }
    ]
    assert "identifier" not in found["A"]


def test_pl10_is_the_most_specific_levels_identifier() -> None:
    found = _locations("4W^101^A^^^^^^^LOC77&&2.16.840.1.113883.19.5&ISO")
    assert found["A"]["identifier"] == [
        {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "LOC77"}
    ]
    assert "identifier" not in found["101"]


_UUID = "8d1c2f0e-3a4b-4c5d-9e6f-708192a3b4c5"


@pytest.mark.parametrize(
    ("authority", "system"),
    [
        ("&2.16.840.1.113883.4.7&ISO", "urn:oid:2.16.840.1.113883.4.7"),
        ("CLIA&2.16.840.1.113883.4.7&ISO", "urn:oid:2.16.840.1.113883.4.7"),
        (f"&{_UUID}&UUID", f"urn:uuid:{_UUID}"),
        ("CLIA", "http://thumpflow.invalid/naming-system/CLIA"),
    ],
)
def test_an_xon_identifiers_system_is_its_authoritys_universal_id(
    authority: str, system: str
) -> None:
    """IG XON[Organization] XON.6 "if system" through HD[uri], as CX-4:
    `urn:oid:` for an ISO OID, `urn:uuid:` for a UUID, else the namespace."""
    obx = "NM|2093-3^Chol^LN||180||||||F" + "|" * 12 + f"Main Lab^^^^^{authority}^XX^^^05D1234567"
    (performer,) = observation_of(obx)["performer"]
    message = (f"PID|1||P1^^^H^MR||Doe^Jo\rOBR|1||F1|C^Chem^L\rOBX|1|{obx}\r").encode()
    msh = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\r"
    labs = [o for o in _all(_bundle(message, msh), "Organization") if o.get("name") == "Main Lab"]
    assert [o["identifier"][0]["system"] for o in labs] == [system]
    assert labs[0]["identifier"][0]["value"] == "05D1234567"
    assert performer["reference"] == f"urn:uuid:{labs[0]['id']}"
