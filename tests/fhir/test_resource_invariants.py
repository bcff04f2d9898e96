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


def _observation(**fields: Any) -> dict[str, Any]:
    loinc = {"system": "http://loinc.org", "code": "8480-6"}
    return {"resourceType": "Observation", "status": "final", "code": {"coding": [loinc]}, **fields}


_ABSENT = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown"}
    ]
}


def test_obs_6_no_data_absent_reason_beside_a_value() -> None:
    assert _codes(_observation(dataAbsentReason=_ABSENT)) == []
    assert _codes(_observation(valueString="x")) == []
    assert _codes(_observation(valueString="x", dataAbsentReason=_ABSENT)) == ["obs-6"]


def test_obs_7_no_value_when_a_component_repeats_the_code() -> None:
    same = {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}
    other = {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}
    assert _codes(_observation(valueString="x", component=[{"code": other}])) == []
    assert _codes(_observation(component=[{"code": same}])) == []
    assert _codes(_observation(valueString="x", component=[{"code": same}])) == ["obs-7"]


def test_obs_3_a_reference_range_has_low_high_or_text() -> None:
    assert _codes(_observation(referenceRange=[{"text": "normal"}])) == []
    assert _codes(_observation(referenceRange=[{"age": {"low": {"value": 1}}}])) == ["obs-3"]


def _appointment(**fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}],
        **fields,
    }


@given(
    status=st.sampled_from(
        ["proposed", "booked", "cancelled", "noshow", "waitlist", "entered-in-error"]
    ),
    start=st.booleans(),
    end=st.booleans(),
    reason=st.booleans(),
)
def test_appointment_start_end_status_and_cancelation_reason(
    status: str, start: bool, end: bool, reason: bool
) -> None:
    resource = _appointment(status=status)
    if start:
        resource["start"] = "2024-03-20T09:30:00Z"
    if end:
        resource["end"] = "2024-03-20T10:00:00Z"
    if reason:
        resource["cancelationReason"] = {"text": "patient request"}
    codes = _codes(resource)
    assert ("app-2" in codes) == (start != end)
    assert ("app-3" in codes) == (
        not (start and end) and status not in ("proposed", "cancelled", "waitlist")
    )
    assert ("app-4" in codes) == (reason and status not in ("noshow", "cancelled"))


def test_app_1_a_participant_has_a_type_or_an_actor() -> None:
    resource = _appointment(status="proposed")
    resource["participant"].append({"status": "accepted"})
    assert _codes(resource) == ["app-1"]


def test_prr_1_order_detail_needs_a_code() -> None:
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "orderDetail": [{"text": "portable"}],
    }
    assert _codes(request) == ["prr-1"]
    request["code"] = {"text": "chest x-ray"}
    assert _codes(request) == []


def test_pat_1_a_contact_has_details_or_an_organization() -> None:
    patient: dict[str, Any] = {"resourceType": "Patient", "contact": [{"gender": "female"}]}
    assert _codes(patient) == ["pat-1"]
    patient["contact"][0]["organization"] = {"reference": "Organization/o1"}
    assert _codes(patient) == []


def test_organization_name_or_identifier_and_no_home_use() -> None:
    organization: dict[str, Any] = {"resourceType": "Organization", "active": True}
    assert _codes(organization) == ["org-1"]
    organization["name"] = "General Hospital"
    assert _codes(organization) == []
    organization["address"] = [{"use": "home", "city": "X"}]
    organization["telecom"] = [{"system": "phone", "value": "1", "use": "home"}]
    assert sorted(_codes(organization)) == ["org-2", "org-3"]


def test_mdd_1_handed_over_not_before_prepared() -> None:
    dispense: dict[str, Any] = {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "medicationCodeableConcept": {"text": "x"},
        "whenPrepared": "2024-03-02T10:00:00Z",
        "whenHandedOver": "2024-03-02T11:00:00Z",
    }
    assert _codes(dispense) == []
    dispense["whenHandedOver"] = "2024-03-02T09:00:00Z"
    assert _codes(dispense) == ["mdd-1"]


def test_contained_resources_are_referred_to_and_carry_no_version_or_security() -> None:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "contained": [{"resourceType": "Organization", "id": "o1", "name": "GH"}],
        "managingOrganization": {"reference": "#o1"},
    }
    assert _codes(patient) == []
    del patient["managingOrganization"]
    assert _codes(patient) == ["dom-3"]
    patient["managingOrganization"] = {"reference": "#o1"}
    patient["contained"][0]["meta"] = {
        "versionId": "1",
        "security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
        ],
    }
    assert sorted(_codes(patient)) == ["dom-4", "dom-5"]
