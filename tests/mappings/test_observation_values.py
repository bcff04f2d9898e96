"""OBX-5 SN values and the OBX performer against the IG's OBX[Observation].

- SN (OBX-5 rows 19-24, OBX-6 rows 32-36): ":" or "/" a Ratio whose
  numerator and denominator both carry the OBX-6 units, "-" a Range, no
  separator a Quantity; comparator "<>", suffix "+" and a ratio or range
  that cannot be valid (rat-1, rng-2) the text "5.1 5.2 5.3 5.4 OBX-6".
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.mappings.single import observation_of
from thumpflow.fhir import validate
from thumpflow.mapping import convert, to_json

_UCUM = "http://unitsofmeasure.org"


def _valid(obx: str) -> None:
    message = (
        "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\rPID|1||P1^^^H^MR||Doe^Jo\r"
        f"OBR|1||F1|C^Chem^L\rOBX|1|{obx}\r"
    ).encode()
    bundle = json.loads(to_json(convert(message, bundle_type="collection")))
    assert [i for i in validate(bundle) if i.severity == "error"] == []


@pytest.mark.parametrize(
    ("sn", "units", "text"),
    [
        ("^1^+^2", "mg/dL^^UCUM", "1 + 2 mg/dL"),
        ("^1^+", "", "1 +"),
        ("<>^10^-^20", "mg/dL^^UCUM", "<> 10 - 20 mg/dL"),
        ("<>^10", "", "<> 10"),
        ("^20^-^10", "mg/dL^^UCUM", "20 - 10 mg/dL"),
        ("^1^:^x", "", "1 : x"),
    ],
)
def test_an_sn_that_is_no_quantity_ratio_or_range_is_its_text(
    sn: str, units: str, text: str
) -> None:
    obx = f"SN|2887-8^Urine protein^LN||{sn}|{units}|||||F"
    observation = observation_of(obx)
    assert observation["valueString"] == text
    assert not {"valueRange", "valueRatio", "valueQuantity"} & observation.keys()
    _valid(obx)


def test_an_sn_ratio_has_the_units_on_both_numbers() -> None:
    obx = "SN|5048-4^ANA titer^LN||^1^:^40|{titer}^^UCUM|||||F"
    titer = {"unit": "{titer}", "code": "{titer}", "system": _UCUM}
    assert observation_of(obx)["valueRatio"] == {
        "numerator": {"value": 1, **titer},
        "denominator": {"value": 40, **titer},
    }
    _valid(obx)


def test_an_sn_range_and_quantity_are_unchanged() -> None:
    mg = {"unit": "mg/dL", "code": "mg/dL", "system": _UCUM}
    assert observation_of("SN|2093-3^Chol^LN||^100^-^200|mg/dL^^UCUM|||||F")["valueRange"] == {
        "low": {"value": 100, **mg},
        "high": {"value": 200, **mg},
    }
    assert observation_of("SN|2093-3^Chol^LN||>^60|mg/dL^^UCUM|||||F")["valueQuantity"] == {
        "value": 60,
        "comparator": ">",
        **mg,
    }


@pytest.mark.parametrize(
    ("obx11", "status"),
    [("S", "preliminary"), ("B", "amended"), ("I", "registered"), ("R", "preliminary")],
)
def test_result_statuses_the_ig_leaves_open_map_to_the_nearest_fhir_status(
    obx11: str, status: str
) -> None:
    # Table 0085: S partial results, B appended report (final, information
    # added); FHIR registered means no result yet.
    assert observation_of(f"NM|1-1^A^LN||5||||||{obx11}")["status"] == status


def test_an_sn_with_another_separator_and_one_number_is_a_quantity() -> None:
    # IG OBX-5 row 24: OBX-5.3 not ":", "/", "-" or "+" -> SN[Quantity].
    found = observation_of("SN|1-1^A^LN||=^440^.|mg^mg^UCUM|||||F")
    assert found["valueQuantity"]["value"] == 440


def _obx(**fields: str) -> str:
    values = [""] * 25
    for name, value in fields.items():
        values[int(name[1:]) - 1] = value
    return "OBX|" + "|".join(values[:25])


def _performers(obx: str) -> list[dict[str, Any]]:
    message = (
        "MSH|^~\\&|L|H|R|R|20240102||ORU^R01|1|P|2.5.1\rPID|1||P1^^^H^MR||Doe^Jo\r"
        f"OBR|1||F1|X^Panel^L\r{obx}\r"
    )
    bundle = json.loads(to_json(convert(message.encode(), bundle_type="collection")))
    assert [i for i in validate(bundle) if i.severity == "error"] == []
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    (observation,) = [r for r in by_url.values() if r["resourceType"] == "Observation"]
    return [by_url[p["reference"]] for p in observation.get("performer", [])]


_LAB = "Acme Labs^L^^^^CLIA&2.16.840.1.113883.4.7&ISO^XX^^^45D0001234"
_BASE = {"f1": "1", "f2": "NM", "f3": "718-7^Hgb^LN", "f5": "14", "f11": "F"}


def test_the_performing_lab_is_one_organization_with_its_address_and_producer_id() -> None:
    # IG OBX rows 15, 23, 24: OBX-23's Organization, address OBX-24, OBX-15 an identifier.
    (lab,) = _performers(_obx(**_BASE, f15="PROD7^^CLIA", f23=_LAB, f24="1 Lab Way^^Town^ST^12345"))
    assert lab["name"] == "Acme Labs"
    assert lab["identifier"][0] == {
        "system": "urn:oid:2.16.840.1.113883.4.7",
        "type": {
            "coding": [
                {
                    "code": "XX",
                    "display": "Organization identifier",
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                }
            ]
        },
        "value": "45D0001234",
    }
    assert lab["identifier"][1]["value"] == "PROD7"
    assert lab["address"][0]["city"] == "Town"


def test_with_a_medical_director_the_performer_is_the_directors_role_at_the_lab() -> None:
    # IG OBX row 25: PractitionerRole MDIR, its organization OBX-23's.
    (role,) = _performers(_obx(**_BASE, f23=_LAB, f25="1234^Director^Dana"))
    assert role["resourceType"] == "PractitionerRole"
    assert role["code"][0]["coding"][0]["code"] == "MDIR"
    assert "organization" in role and "practitioner" in role


def test_a_performing_lab_with_an_address_alone_is_no_organization() -> None:
    # FHIR org-1: an Organization has a name or an identifier.
    assert _performers(_obx(**_BASE, f23="^L", f24="1 Lab Way^^Town")) == []
