"""Record transforms of the FHIR batch destination tests (pure)."""

from __future__ import annotations

from typing import Any

MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.999.1"


def patient(record: dict[str, Any]) -> dict[str, Any]:
    """A census row as a Patient: by identifier, except `Anon*` rows (no identifier, no id)
    and `NotFhir` rows (no resourceType: the destination must refuse them)."""
    family = record["family"]
    if family == "NotFhir":
        return {"mrn": record["mrn"], "family": family}
    resource: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family}]}
    if record["birth_date"] is not None:
        resource["birthDate"] = record["birth_date"].isoformat()
    if not family.startswith("Anon"):
        resource["identifier"] = [{"system": MRN_SYSTEM, "value": record["mrn"]}]
    return resource
