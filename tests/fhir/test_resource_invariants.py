"""The resource status invariants `validate` checks: ait-1/ait-2 (AllergyIntolerance)
and con-3/con-4/con-5 (Condition)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from thumpflow.fhir import validate

_AIT_VER = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
_AIT_CLIN = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_CON_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CON_CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_CON_CAT = "http://terminology.hl7.org/CodeSystem/condition-category"


def _codes(resource: dict[str, Any]) -> list[str]:
    return [issue.code for issue in validate(resource)]


def _cc(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


@given(
    clinical=st.sampled_from([None, "active", "inactive", "resolved"]),
    verification=st.sampled_from([None, "unconfirmed", "confirmed", "refuted", "entered-in-error"]),
)
def test_allergy_clinical_status_is_present_exactly_unless_entered_in_error(
    clinical: str | None, verification: str | None
) -> None:
    resource: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": "Patient/p1"},
    }
    if clinical:
        resource["clinicalStatus"] = _cc(_AIT_CLIN, clinical)
    if verification:
        resource["verificationStatus"] = _cc(_AIT_VER, verification)
    codes = _codes(resource)
    error = verification == "entered-in-error"
    assert ("ait-1" in codes) == (not error and clinical is None)
    assert ("ait-2" in codes) == (error and clinical is not None)


def test_condition_entered_in_error_has_no_clinical_status() -> None:
    resource = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "clinicalStatus": _cc(_CON_CLIN, "active"),
        "verificationStatus": _cc(_CON_VER, "entered-in-error"),
    }
    assert _codes(resource) == ["con-5"]


def test_an_abated_condition_is_inactive_resolved_or_in_remission() -> None:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "abatementDateTime": "2024-01-02",
        "clinicalStatus": _cc(_CON_CLIN, "active"),
    }
    assert _codes(resource) == ["con-4"]
    resource["clinicalStatus"] = _cc(_CON_CLIN, "resolved")
    assert _codes(resource) == []
    del resource["clinicalStatus"]
    assert _codes(resource) == ["con-4"]


def test_a_problem_list_item_without_clinical_status_is_a_warning() -> None:
    resource = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "category": [_cc(_CON_CAT, "problem-list-item")],
    }
    issues = validate(resource)
    assert [(i.code, i.severity) for i in issues] == [("con-3", "warning")]
