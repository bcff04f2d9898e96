"""VXU: each ORDER (ORC, RXA) is an Immunization of its own (IG VXU_V04 row
12.1), identified by ORC-3, else ORC-2 (never `9999`). Two orders with one
filler number are a sender's error: the later dose is kept, without the
repeated identifier, and a `repeated_identifier` warning names RXA."""

from __future__ import annotations

import json
from typing import Any

from thumpflow.fhir import validate
from thumpflow.mapping import convert, to_json

_VXU = (
    "MSH|^~\\&|EHR|CLINIC|IIS|STATE|20240401||VXU^V04^VXU_V04|V1|P|2.5.1\r"
    "PID|1||P1^^^CLINIC^MR||Rossi^Sofia\r"
)


def _dose(orc: str, cvx: str) -> str:
    return f"ORC|RE|{orc}\rRXA|0|1|20240401||{cvx}^^CVX|0.5|mL^^UCUM||00\r"


def _immunizations(segments: str) -> tuple[list[dict[str, Any]], list[str]]:
    warnings: list[str] = []
    bundle = convert((_VXU + segments).encode(), bundle_type="transaction", warnings=warnings)
    assert [i for i in validate(bundle) if i.severity == "error"] == []
    entries = json.loads(to_json(bundle))["entry"]
    return [e for e in entries if e["resource"]["resourceType"] == "Immunization"], warnings


def _codes(entry: dict[str, Any]) -> list[str]:
    return [i["value"] for i in entry["resource"].get("identifier", [])]


def test_a_second_order_with_the_same_filler_number_is_another_dose() -> None:
    doses, warnings = _immunizations(
        _dose("|IZ-1^CLINIC", "20")
        + _dose("PL-2^EHR|IZ-1^CLINIC", "10")
        + _dose("|IZ-1^CLINIC", "03")
    )
    vaccines = [e["resource"]["vaccineCode"]["coding"][0]["code"] for e in doses]
    assert vaccines == ["20", "10", "03"]
    assert [_codes(e) for e in doses] == [["IZ-1"], ["PL-2"], []]
    urls = [e["request"]["url"] for e in doses]
    assert urls[0].endswith("|IZ-1") and urls[1].endswith("|PL-2")
    assert urls[2].startswith("Immunization/")
    assert [(w.code, "RXA" in w) for w in warnings] == [("repeated_identifier", True)]
    assert "IZ-1" not in warnings[0]


def test_distinct_filler_numbers_and_9999_give_no_warning() -> None:
    doses, warnings = _immunizations(
        _dose("|IZ-1^CLINIC", "20")
        + _dose("|IZ-2^CLINIC", "10")
        + _dose("|9999^CDC", "03")
        + _dose("|9999^CDC", "08")
    )
    assert [_codes(e) for e in doses] == [["IZ-1"], ["IZ-2"], [], []]
    assert len({e["fullUrl"] for e in doses}) == 4
    assert warnings == []
