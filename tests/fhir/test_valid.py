"""Valid R4 resources pass: realistic examples, and the valid corners of FHIR JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.fhir import examples
from thumpflow.fhir import assert_valid, is_valid, validate


@pytest.mark.parametrize("make", examples.ALL.values(), ids=list(examples.ALL))
def test_realistic_examples_are_valid(make: Callable[[], dict[str, Any]]) -> None:
    resource = make()
    assert validate(resource) == []
    assert is_valid(resource)
    assert_valid(resource)


def test_validation_does_not_modify_the_resource() -> None:
    bundle = examples.transaction_bundle()
    before = repr(bundle)
    bad = examples.transaction_bundle()
    bad["entry"][0]["resource"]["gender"] = "female-ish"
    validate(bundle)
    validate(bad)
    assert repr(bundle) == before


def test_primitive_extensions_with_null_placeholders_are_valid() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [
            {
                "given": ["Ann", None],
                "_given": [
                    None,
                    {
                        "extension": [
                            {
                                "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                "valueCode": "unknown",
                            }
                        ]
                    },
                ],
            }
        ],
        "_gender": {"id": "g1"},
    }
    assert validate(patient) == []


def test_a_required_primitive_present_only_as_extension_counts_as_present() -> None:
    observation = examples.observation()
    del observation["status"]
    observation["_status"] = {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                "valueCode": "unknown",
            }
        ]
    }
    assert validate(observation) == []


def test_content_reference_recursion_is_followed() -> None:
    questionnaire: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "status": "active",
        "item": [
            {
                "linkId": "1",
                "type": "group",
                "item": [
                    {"linkId": "1.1", "type": "string", "text": "Name"},
                    {"linkId": "1.2", "type": "boolean", "required": True},
                ],
            }
        ],
    }
    assert validate(questionnaire) == []
    questionnaire["item"][0]["item"][1]["type"] = "yes-no"
    assert [i.path for i in validate(questionnaire)] == ["Questionnaire.item[0].item[1].type"]


def test_parameters_resource_is_validated_as_a_resource() -> None:
    parameters: dict[str, Any] = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "return", "resource": examples.patient()},
            {"name": "count", "valueInteger": 3},
        ],
    }
    assert validate(parameters) == []
    parameters["parameter"][0]["resource"]["birthDate"] = "1980-13-01"
    assert [i.path for i in validate(parameters)] == ["Parameters.parameter[0].resource.birthDate"]


def test_a_document_bundle_with_composition_first_is_valid() -> None:
    patient = examples.patient()
    bundle = {
        "resourceType": "Bundle",
        "identifier": {
            "system": "urn:ietf:rfc:3986",
            "value": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0",
        },
        "type": "document",
        "timestamp": "2024-03-06T10:00:00Z",
        "entry": [
            {
                "fullUrl": "urn:uuid:9a8ae5f4-1fa8-4e5b-9e5d-6a7c1f3e0c11",
                "resource": {
                    "resourceType": "Composition",
                    "status": "final",
                    "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5"}]},
                    "subject": {"reference": f"http://example.org/fhir/Patient/{patient['id']}"},
                    "date": "2024-03-06",
                    "author": [{"display": "Dr. Who"}],
                    "title": "Discharge summary",
                },
            },
            {"fullUrl": f"http://example.org/fhir/Patient/{patient['id']}", "resource": patient},
        ],
    }
    assert validate(bundle) == []


def test_searchset_with_total_and_search_mode_is_valid() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "link": [{"relation": "self", "url": "http://example.org/fhir/Patient?name=lopez"}],
        "entry": [
            {
                "fullUrl": f"http://example.org/fhir/Patient/{examples.PATIENT_ID}",
                "resource": examples.patient(),
                "search": {"mode": "match", "score": 1},
            }
        ],
    }
    assert validate(bundle) == []


def test_batch_with_get_and_delete_entries_needs_no_resource() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Patient?identifier=urn:oid:1.2|9"}},
            {"request": {"method": "DELETE", "url": "Observation/obs-1"}},
        ],
    }
    assert validate(bundle) == []


def test_transaction_response_with_outcome_resource_is_valid() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {
                "response": {
                    "status": "201 Created",
                    "location": "Patient/123/_history/1",
                    "outcome": {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "information", "code": "informational"}],
                    },
                }
            }
        ],
    }
    assert validate(bundle) == []


def test_contained_references_and_absolute_references_are_valid() -> None:
    report = examples.diagnostic_report()
    report["performer"] = [{"reference": "https://ehr.example.org/fhir/Organization/lab-1"}]
    report["resultsInterpreter"] = [{"reference": "https://ehr.example.org/fhir/r4/Practitioner/9"}]
    assert validate(report) == []


def test_other_valid_codes_and_links_pass() -> None:
    patient = examples.patient()
    patient["link"] = [{"other": {"reference": "Patient/other"}, "type": "seealso"}]
    encounter = examples.encounter()
    encounter["status"] = "finished"
    encounter["period"]["end"] = "2024-03-09T11:00:00+01:00"
    assert validate(patient) == []
    assert validate(encounter) == []
