"""One resource of a converted message, for tests of how a value is written."""

from __future__ import annotations

import json
from typing import Any

from thumpflow.fhir import validate
from thumpflow.mapping import convert, to_json


def resource_of(message: bytes, resource_type: str) -> dict[str, Any]:
    """The one resource of `resource_type` (as JSON) in `message`'s collection Bundle."""
    bundle = json.loads(to_json(convert(message, bundle_type="collection")))
    (found,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    ]
    result: dict[str, Any] = found
    return result


def observation_of(obx: str) -> dict[str, Any]:
    """The Observation of an ORU^R01 holding one OBX, `obx` its fields after
    OBX-1 (`NM|V^Volume^L||0.5|ML^^ISO+|||||F`)."""
    message = (
        "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\rPID|1||P1^^^H^MR||Doe^Jo\r"
        f"OBR|1||F1|C^Chem^L\rOBX|1|{obx}\r"
    ).encode()
    return resource_of(message, "Observation")


def clean_resources(message: bytes) -> dict[str, dict[str, Any]]:
    """`message`'s collection Bundle, resources by fullUrl, asserting it
    converts without warnings and every resource validates without errors."""
    warnings: list[str] = []
    bundle = convert(message, bundle_type="collection", warnings=warnings)
    assert warnings == []
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    for resource in by_url.values():
        assert [i for i in validate(resource) if i.severity == "error"] == []
    return by_url
