"""Assigning authorities become one Organization per namespace (IG HD[Organization]).

CX-4 (CX[Identifier]), XCN-9 (XCN[Practitioner]) and EI-2..4 (EI[Identifier],
the IG's EI[Identifier-Organization]) all name an assigning authority; each
identifier refers to it as `assigner`, and a namespace met in several places
of one message is one resource with one deterministic id.
"""

from __future__ import annotations

from typing import Any

import pytest

from thumpflow.mapping import convert

_MESSAGE = (
    b"MSH|^~\\&|LIS|LAB|EPIC|STMARYS|20240316101500-0500||ORU^R01^ORU_R01|AS1|P|2.5.1\r"
    b"PID|1||E1^^^GHH&2.16.840.1.113883.19.5&ISO^MR||Doe^Jo\r"
    b"PV1|1|O|||||77^Ng^Mei^^^^^^GHH||||||||||||V1^^^GHH^VN\r"
    b"OBR|1|P1^EPIC^1.2.3^ISO|F1^GHH|2345-7^Glucose^LN|||20240316090000-0500|||||||||||||"
    b"||20240316101000-0500|||F\r"
    b"OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L|||||F|||20240316090000-0500|||||||O1^GHH\r"
)


def _resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle["entry"]]


def _assigners(node: Any) -> list[str]:
    """Every `identifier...assigner.reference` under `node`."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "assigner" and isinstance(value, dict):
                found.append(value["reference"])
            else:
                found.extend(_assigners(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_assigners(value))
    return found


@pytest.mark.parametrize("bundle_type", ["transaction", "batch", "collection"])
def test_one_organization_per_namespace_from_cx_xcn_and_ei(bundle_type: str) -> None:
    bundle = convert(_MESSAGE, bundle_type=bundle_type)  # type: ignore[arg-type]
    by_ref = {
        (
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            if bundle_type == "batch"
            else e["fullUrl"]
        ): e["resource"]
        for e in bundle["entry"]
    }
    ghh = [
        ref
        for ref, r in by_ref.items()
        if r["resourceType"] == "Organization" and r["identifier"][0]["value"] == "GHH"
    ]
    assert len(ghh) == 1
    by_type = {r["resourceType"]: r for r in by_ref.values()}
    # CX-4 (patient), XCN-9 (attending), EI-2 (filler number, observation id).
    assert _assigners(by_type["Patient"]["identifier"]) == ghh
    assert _assigners(by_type["Practitioner"]["identifier"]) == ghh
    assert _assigners(by_type["Observation"]["identifier"]) == ghh
    report = by_type["DiagnosticReport"]
    filler, placer = report["identifier"]
    assert _assigners(filler) == ghh
    # EI-2..4 read as HD-1..3: the placer's namespace with its OID.
    (epic_ref,) = _assigners(report["basedOn"])
    assert _assigners(placer) == [epic_ref]
    assert by_ref[epic_ref]["identifier"] == [
        {"value": "EPIC"},
        {
            "system": "urn:ietf:rfc:3986",
            "type": {
                "coding": [
                    {
                        "code": "ISO",
                        "display": "ISO Object Identifier",
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0301",
                    }
                ]
            },
            "value": "urn:oid:1.2.3",
        },
    ]


def test_an_identifier_without_a_value_or_namespace_gets_no_assigner() -> None:
    message = _MESSAGE.replace(b"F1^GHH", b"F1").replace(b"77^Ng^Mei^^^^^^GHH", b"^Ng^Mei^^^^^^GHH")
    resources = _resources(convert(message, bundle_type="collection"))
    by_type = {r["resourceType"]: r for r in resources}
    assert _assigners(by_type["DiagnosticReport"]["identifier"][0]) == []
    assert _assigners(by_type.get("Practitioner", {})) == []
