"""An order's identifiers and the ORC/OBR fields the IG gives to one of the two.

- OBR-2 (PLAC) "IF ORC-2 NOT VALUED", OBR-3 (FILL) "IF ORC-3 NOT VALUED"
  (IG OBR[ServiceRequest] rows 5-11): a filler number sent only in OBR-3
  is kept beside ORC-2's placer number, never written twice; the placer
  number comes first and identifies the order (its conditional update)
  whenever the message has one, in ORC-2 or in OBR-2.
- ORC-14 "IF OBR-17 NOT VALUED", ORC-33 "IF OBR-53 NOT VALUED" (IG
  ORC[ServiceRequest] rows 36-37, 58-60).
- OBR-29.2, the parent's filler number, is a basedOn identifier as OBR-29.1
  (IG OBR[ServiceRequest] rows 42-45).
- Each of these reads the ORC and OBR of its own order group, not the
  message's first.
"""

from __future__ import annotations

import json
from typing import Any

from thumpflow.fhir import validate
from thumpflow.mapping import convert, to_json

_ORM = "MSH|^~\\&|OE|H|RCV|R|20240101120000+0000||ORM^O01|M1|P|2.5.1\rPID|1||P1^^^H^MR||Doe^Jane\r"
_PLAC = "http://terminology.hl7.org/CodeSystem/v2-0203"


def _entries(segments: str, bundle_type: Any = "transaction") -> list[dict[str, Any]]:
    bundle: dict[str, Any] = json.loads(
        to_json(convert(f"{_ORM}{segments}".encode(), bundle_type=bundle_type))
    )
    assert [i for i in validate(bundle) if i.severity == "error"] == []
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == "ServiceRequest"]


def _ids(order: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i["type"]["coding"][0]["code"], i["value"]) for i in order["identifier"]]


def test_obr3_filler_number_is_kept_beside_the_orc2_placer_number() -> None:
    (entry,) = _entries("ORC|NW|PL1^EHR|||||||20240101090000\rOBR|1|PL1^EHR|FL1^LAB|24331-1\r")
    assert _ids(entry["resource"]) == [("PLAC", "PL1"), ("FILL", "FL1")]
    assert entry["request"]["url"].endswith("|PL1")


def test_a_number_in_both_orc_and_obr_is_written_once() -> None:
    (entry,) = _entries("ORC|SC|PL1^EHR|FL1^LAB\rOBR|1|PL1^EHR|FL1^LAB|24331-1\r")
    assert _ids(entry["resource"]) == [("PLAC", "PL1"), ("FILL", "FL1")]
    (entry,) = _entries("OBR|1|PL1^EHR|FL1^LAB|24331-1\r")
    assert _ids(entry["resource"]) == [("PLAC", "PL1"), ("FILL", "FL1")]


def test_the_placer_number_identifies_the_order_when_only_obr_has_it() -> None:
    (entry,) = _entries("ORC|SC||FL1^LAB||CM\rOBR|1|PL1^EHR||24331-1\r")
    order = entry["resource"]
    assert _ids(order) == [("PLAC", "PL1"), ("FILL", "FL1")]
    assert entry["request"]["url"] == (
        "ServiceRequest?identifier=http://thumpflow.invalid/naming-system/EHR|PL1"
    )
    assert order["status"] == "completed"  # the ORC's fields are the order's still
    # The same order with the placer number in ORC-2 is the same resource.
    (again,) = _entries("ORC|SC|PL1^EHR|FL1^LAB||CM\rOBR|1|PL1^EHR||24331-1\r")
    assert again["fullUrl"] == entry["fullUrl"]


def test_orc14_and_orc33_only_when_the_obr_has_no_value() -> None:
    orc = "ORC|NW|PL1^EHR" + "|" * 12 + "555-1111" + "|" * 19 + "ALT1^^^EHR"
    obr = "OBR|1|PL1^EHR||24331-1" + "|" * 13 + "555-2222" + "|" * 36 + "ALT2^^^EHR"
    (entry,) = _entries(f"{orc}\r{obr}\r")
    order = entry["resource"]
    assert [e["valueContactPoint"]["value"] for e in order["extension"]] == ["555-2222"]
    assert _ids(order) == [("PLAC", "PL1"), ("PLAC", "ALT2")]
    (entry,) = _entries(f"{orc}\rOBR|1|PL1^EHR||24331-1\r")
    order = entry["resource"]
    assert [e["valueContactPoint"]["value"] for e in order["extension"]] == ["555-1111"]
    assert _ids(order) == [("PLAC", "PL1"), ("PLAC", "ALT1")]


def test_each_order_reads_its_own_groups_orc_and_obr() -> None:
    first = "ORC|NW|PL1^EHR|FL1^LAB\rOBR|1|PL1^EHR|FL1^LAB|24331-1\r"
    second = "ORC|NW|PL2^EHR\rOBR|2|PL2^EHR|FL2^LAB|2093-3" + "|" * 13 + "555-2222\r"
    one, two = (e["resource"] for e in _entries(first + second))
    assert _ids(one) == [("PLAC", "PL1"), ("FILL", "FL1")]
    assert _ids(two) == [("PLAC", "PL2"), ("FILL", "FL2")]
    assert "extension" not in one


def test_obr29_parent_filler_number_is_a_based_on_identifier() -> None:
    obr = "OBR|1|PL9^EHR||600-7|||||||G" + "|" * 18 + "PARENTPL&EHR^PARENTFL&LAB"
    (entry,) = _entries(f"ORC|NW|PL9^EHR\r{obr}\r", "collection")
    based_on = entry["resource"]["basedOn"]
    assert [(b["type"], b["identifier"]["value"]) for b in based_on] == [
        ("ServiceRequest", "PARENTPL"),
        ("ServiceRequest", "PARENTFL"),
    ]
    assert based_on[1]["identifier"]["system"] == "http://thumpflow.invalid/naming-system/LAB"


def test_two_order_groups_with_one_placer_number_are_two_service_requests() -> None:
    # A sender's error (as for pharmacy orders and VXU): the second ORDER
    # repeats the first's ORC-2/OBR-2. Before, both were one ServiceRequest,
    # the second test's code overwriting the first's without a warning.
    warnings: list[str] = []
    message = (
        _ORM
        + "ORC|NW|PL1^EHR\rOBR|1|PL1^EHR||2345-7^Glucose^LN\r"
        + "ORC|NW|PL1^EHR\rOBR|2|PL1^EHR||718-7^Hemoglobin^LN\r"
    )
    bundle = convert(message.encode(), warnings=warnings)
    first, second = [
        e for e in bundle["entry"] if e["resource"]["resourceType"] == "ServiceRequest"
    ]
    assert first["resource"]["code"]["coding"][0]["code"] == "2345-7"
    assert first["request"]["url"].endswith("|PL1")
    assert second["resource"]["code"]["coding"][0]["code"] == "718-7"
    assert "identifier" not in second["resource"]
    assert [w.code for w in warnings] == ["repeated_identifier"]  # type: ignore[attr-defined]


def test_an_order_with_no_number_is_its_messages_own() -> None:
    # No ORC-2/3 nor OBR-2/3: keyed by the patient alone, every such order of
    # the patient, in every message, was one ServiceRequest, each message
    # overwriting the last. Now each message's is its own; a resend of the
    # same message writes the same one.
    def order_id(control: str) -> str:
        message = _ORM.replace("|M1|", f"|{control}|") + "ORC|NW\rOBR|1|||24331-1^Lipid panel^LN\r"
        bundle = convert(message.encode(), bundle_type="collection")
        (order,) = [
            e["resource"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "ServiceRequest"
        ]
        return str(order["id"])

    assert order_id("M1") != order_id("M2")
    assert order_id("M1") == order_id("M1")


def test_a_filler_number_the_first_order_gained_from_its_obr_is_not_the_seconds() -> None:
    # The first order's filler number comes from its OBR (OBR-3, after the
    # order is built); the second order repeats the placer number and sends
    # that filler number in ORC-3. Kept, it would be a conditional update by
    # FL1 beside the first's by PL1: one stored order touched twice.
    entries = _entries(
        "ORC|NW|PL1^EHR\rOBR|1|PL1^EHR|FL1^LAB|24331-1^Lipid^LN\r"
        "ORC|NW|PL1^EHR|FL1^LAB\rOBR|1|||2345-7^Glucose^LN\r"
    )
    first, second = (e["resource"] for e in entries)
    assert _ids(first) == [("PLAC", "PL1"), ("FILL", "FL1")]
    assert "identifier" not in second
    assert entries[1]["request"]["url"].startswith("ServiceRequest/")
