"""Each class of error is found, with the right path, code and severity."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fhir import examples
from thumpflow.core.errors import ThumpflowError
from thumpflow.fhir import (
    FhirDecimal,
    FhirIssue,
    ValidationError,
    assert_valid,
    is_valid,
    validate,
)

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def errors(resource: dict[str, Any]) -> set[tuple[str, str]]:
    """(path, code) of every error."""
    return {(i.path, i.code) for i in validate(resource) if i.severity == "error"}


def condition() -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "code": {"text": "Type 2 diabetes"},
        "subject": {"reference": "Patient/p1"},
    }


def test_unknown_resource_type_and_missing_resource_type() -> None:
    assert errors({"resourceType": "Patients"}) == {("Resource.resourceType", "resource-type")}
    assert errors({"id": "x"}) == {("Resource", "resource-type")}
    assert errors({"resourceType": "DomainResource"}) == {
        ("Resource.resourceType", "resource-type")
    }
    assert errors([]) == {("Resource", "structure")}  # type: ignore[arg-type]


def test_unknown_elements_including_misplaced_underscore_elements() -> None:
    patient = examples.patient()
    patient["nickname"] = "Mari"
    patient["name"][0]["_family"] = {"id": "f"}
    patient["_name"] = [{"id": "n"}]
    patient["address"][0]["_period"] = {"id": "p"}
    patient["identifier"][0]["_id"] = {"id": "attribute"}
    patient["meta"]["project"] = "medplum-only"

    def at(obj: dict[str, object], key: str) -> str:
        return f"<property {list(obj).index(key) + 1}>"

    assert errors(patient) == {
        (f"Patient.meta.{at(patient['meta'], 'project')}", "unknown-element"),
        (f"Patient.identifier[0].{at(patient['identifier'][0], '_id')}", "unknown-element"),
        (f"Patient.address[0].{at(patient['address'][0], '_period')}", "unknown-element"),
        (f"Patient.{at(patient, 'nickname')}", "unknown-element"),
        (f"Patient.{at(patient, '_name')}", "unknown-element"),
    }


def test_resource_type_inside_a_data_type_is_unknown() -> None:
    patient = examples.patient()
    patient["name"][0]["resourceType"] = "HumanName"
    position = list(patient["name"][0]).index("resourceType") + 1
    assert errors(patient) == {(f"Patient.name[0].<property {position}>", "unknown-element")}


def test_an_unknown_property_name_is_never_repeated() -> None:
    """A name or MRN used as a key must not reach a reason, a log line or the audit trail."""
    patient = examples.patient()
    patient["DOE^JOHN^MRN0042"] = True
    issues = [issue for issue in validate(patient) if issue.code == "unknown-element"]
    assert len(issues) == 1
    assert "DOE" not in str(issues[0]) and "MRN0042" not in str(issues[0])
    assert issues[0].path == f"Patient.<property {len(patient)}>"


def test_array_versus_single_value() -> None:
    patient = examples.patient()
    patient["name"] = {"family": "Lopez"}
    patient["gender"] = ["female"]
    patient["maritalStatus"] = [patient["maritalStatus"]]
    patient["name"] = patient["name"]
    assert errors(patient) == {
        ("Patient.name", "array-expected"),
        ("Patient.gender", "array-not-allowed"),
        ("Patient.maritalStatus", "array-not-allowed"),
    }


def test_missing_required_elements() -> None:
    observation = examples.observation()
    del observation["code"]
    del observation["status"]
    appointment = examples.appointment()
    del appointment["participant"][1]["status"]
    assert errors(observation) == {
        ("Observation.status", "required"),
        ("Observation.code", "required"),
    }
    assert errors(appointment) == {("Appointment.participant[1].status", "required")}


def test_cardinality_max_zero_and_empty_values() -> None:
    request = examples.medication_request()
    request["dispenseRequest"]["quantity"]["comparator"] = "<"
    request["note"] = []
    request["subject"] = {}
    request["identifier"] = [{}]
    assert errors(request) == {
        ("MedicationRequest.subject", "ele-1"),
        ("MedicationRequest.dispenseRequest.quantity.comparator", "cardinality"),
        ("MedicationRequest.note", "ele-1"),
        ("MedicationRequest.identifier[0]", "ele-1"),
    }


def test_null_outside_a_value_array_and_unmatched_null_in_one() -> None:
    patient = examples.patient()
    patient["birthDate"] = None
    patient["name"][0]["given"] = ["Ann", None]
    assert errors(patient) == {
        ("Patient.name[0].given[1]", "structure"),
        ("Patient.birthDate", "structure"),
    }


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("birthDate", "1980-02-30"),
        ("birthDate", "1981-02-29"),
        ("birthDate", "1980-2-1"),
        ("birthDate", "0000"),
        ("birthDate", "1980-02-01T10:00:00Z"),
        ("birthDate", 19800201),
        ("birthDate", ""),
    ],
)
def test_bad_dates(element: str, value: Any) -> None:
    patient = examples.patient()
    patient[element] = value
    assert errors(patient) == {(f"Patient.{element}", "value")}


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-05T13:40:00",  # a time needs a zone
        "2024-03-05T25:00:00Z",
        "2024-03-05 13:40:00Z",
        "2024-03-05T13:40Z",
        "2024-04-31T10:00:00Z",
        "2024-03-05T13:40:00+15:00",
    ],
)
def test_bad_date_times(value: str) -> None:
    observation = examples.observation()
    observation["effectiveDateTime"] = value
    assert errors(observation) == {("Observation.effectiveDateTime", "value")}


@pytest.mark.parametrize(
    "value", ["2024-03-05", "2024-03-05T14:10:02", "2024-03-05T14:10Z", "2024-02-30T00:00:00Z"]
)
def test_bad_instants(value: str) -> None:
    observation = examples.observation()
    observation["issued"] = value
    assert errors(observation) == {("Observation.issued", "value")}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("id",), "has space"),
        (("id",), "x" * 65),
        (("active",), "true"),
        (("multipleBirthInteger",), 2**31),
        (("multipleBirthInteger",), 1.5),
        (("telecom", 0, "rank"), 0),
        (("identifier", 0, "system"), "http://with space"),
        (("meta", "source"), ""),
        (("name", 0, "family"), "tab\x0bbed"),
        (("photo",), [{"contentType": "image/png", "data": "not=base64"}]),
        (("text", "div"), "<p>not a div</p>"),
        (("identifier", 0, "type", "coding", 0, "code"), " MR"),
        (("managingOrganization", "display"), {"text": "x"}),
    ],
)
def test_bad_primitive_values(path: tuple[str | int, ...], value: Any) -> None:
    patient = examples.patient()
    target: Any = patient
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    where = "Patient" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    if path == ("photo",):
        where = "Patient.photo[0].data"
    found = errors(patient)
    assert {p for p, _ in found} == {where}
    assert {c for _, c in found} <= {"value", "type"}


def test_wrong_json_kinds_for_complex_values() -> None:
    patient = examples.patient()
    patient["maritalStatus"] = "M"
    patient["telecom"] = ["+1 555 0100"]
    assert errors(patient) == {("Patient.telecom[0]", "type"), ("Patient.maritalStatus", "type")}


def test_codes_outside_required_bindings() -> None:
    patient = examples.patient()
    patient["gender"] = "female-ish"
    patient["telecom"][1]["system"] = "e-mail"
    observation = examples.observation()
    observation["status"] = "done"
    issues = validate(patient)
    assert [(i.path, i.code) for i in issues] == [
        ("Patient.telecom[1].system", "code-invalid"),
        ("Patient.gender", "code-invalid"),
    ]
    assert "female, male, other, unknown" in issues[1].message
    assert "female-ish" not in issues[1].message
    assert errors(observation) == {("Observation.status", "code-invalid")}


def test_bound_codeable_concept_needs_a_coding_from_the_value_set() -> None:
    assert validate(condition()) == []
    wrong_code = condition()
    wrong_code["clinicalStatus"]["coding"][0]["code"] = "ongoing"
    wrong_system = condition()
    wrong_system["clinicalStatus"]["coding"][0]["system"] = "http://snomed.info/sct"
    text_only = condition()
    text_only["clinicalStatus"] = {"text": "active"}
    also_other = condition()
    also_other["clinicalStatus"]["coding"].insert(0, {"system": "http://x.org", "code": "a"})
    for bad in (wrong_code, wrong_system, text_only):
        assert errors(bad) == {("Condition.clinicalStatus", "code-invalid")}
    assert validate(also_other) == []


def test_a_bound_code_without_system_is_a_warning() -> None:
    resource = condition()
    del resource["clinicalStatus"]["coding"][0]["system"]
    assert validate(resource) == [
        FhirIssue(
            "Condition.clinicalStatus.coding",
            "warning",
            "code-system",
            "a coding has a code of the required value set "
            "http://hl7.org/fhir/ValueSet/condition-clinical but no system",
        )
    ]
    assert is_valid(resource)


def test_two_variants_of_a_choice() -> None:
    observation = examples.observation()
    observation["valueString"] = "5.4"
    observation["_effectiveInstant"] = {"id": "x"}
    assert errors(observation) == {
        ("Observation.valueString", "choice"),
        ("Observation._effectiveInstant", "choice"),
    }


def test_required_choice_missing() -> None:
    extension = {"url": "http://example.org/ext"}
    patient = examples.patient()
    patient["extension"].append(extension)
    assert errors(patient) == {("Patient.extension[2]", "ext-1")}
    group = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "characteristic": [{"code": {"text": "age"}, "exclude": False}],
    }
    assert errors(group) == {("Group.characteristic[0].value", "required")}


def test_extension_with_value_and_extensions() -> None:
    patient = examples.patient()
    patient["extension"][0]["valueString"] = "White"
    assert errors(patient) == {("Patient.extension[0]", "ext-1")}


@pytest.mark.parametrize(
    "reference",
    [
        "Patient",
        "Patient/",
        "patient/123",
        "Patient/has space",
        "Patient/123/_history",
        "urn:uuid:NOT-A-UUID",
        "ftp://example.org/Patient/1",
        "#bad id",
    ],
)
def test_bad_reference_formats(reference: str) -> None:
    observation = examples.observation()
    observation["subject"] = {"reference": reference}
    assert errors(observation) == {("Observation.subject.reference", "reference")}


def test_reference_types_against_targets() -> None:
    observation = examples.observation()
    observation["subject"] = {"reference": "Practitioner/dr-1"}
    observation["performer"] = [{"reference": "Spaceship/1"}]
    observation["encounter"] = {"reference": "Encounter/e1", "type": "EpisodeOfCare"}
    assert errors(observation) == {
        ("Observation.subject.reference", "reference-type"),
        ("Observation.encounter.type", "reference-type"),
        ("Observation.performer[0].reference", "reference"),
    }


def test_local_references_must_name_a_contained_resource() -> None:
    report = examples.diagnostic_report()
    report["specimen"] = [{"reference": "#spec2"}]
    report["contained"][0]["contained"] = [{"resourceType": "Basic", "code": {"text": "x"}}]
    assert errors(report) == {
        ("DiagnosticReport.contained[0].contained", "dom-2"),
        ("DiagnosticReport.specimen[0].reference", "reference"),
        # the contained Specimen is no longer referred to
        ("DiagnosticReport.contained[0]", "dom-3"),
    }


def test_conditional_references_only_inside_transactions_and_batches() -> None:
    observation = examples.observation()
    observation["subject"] = {"reference": "Patient?identifier=urn:oid:1.2|MRN1"}
    assert errors(observation) == {("Observation.subject.reference", "reference")}
    bundle = examples.transaction_bundle()
    bundle["type"] = "batch"
    assert validate(bundle) == []
    bundle["type"] = "collection"
    for entry in bundle["entry"]:
        del entry["request"]
    found = errors(bundle)
    assert ("Bundle.entry[1].resource.participant[0].individual.reference", "reference") in found
    assert {code for _, code in found} == {"reference"}


def test_transaction_entry_without_request() -> None:
    bundle = examples.transaction_bundle()
    del bundle["entry"][3]["request"]
    del bundle["entry"][5]["request"]["method"]
    assert errors(bundle) == {
        ("Bundle.entry[5].request.method", "required"),
        ("Bundle.entry[3].request", "bdl-3"),
    }


def test_transaction_urn_references_must_resolve_to_an_entry() -> None:
    bundle = examples.transaction_bundle()
    bundle["entry"][4]["resource"]["subject"] = {
        "reference": "urn:uuid:00000000-0000-4000-8000-000000000000"
    }
    bundle["entry"][5]["resource"]["encounter"] = {"reference": bundle["entry"][0]["fullUrl"]}
    assert errors(bundle) == {
        ("Bundle.entry[4].resource.subject.reference", "reference"),
        ("Bundle.entry[5].resource.encounter.reference", "reference-type"),
    }


def test_bundle_full_urls_and_invariants() -> None:
    bundle = examples.transaction_bundle()
    bundle["entry"][0]["fullUrl"] = "Patient/123"
    bundle["entry"][1]["fullUrl"] = "http://example.org/fhir/Encounter/e1/_history/2"
    bundle["entry"][2]["fullUrl"] = "http://example.org/fhir/Patient/sr-1"
    bundle["entry"][4]["fullUrl"] = bundle["entry"][5]["fullUrl"]
    bundle["entry"][6]["request"]["method"] = "POST"
    del bundle["entry"][6]["resource"]
    bundle["entry"][7]["search"] = {"mode": "match"}
    bundle["total"] = 20
    found = errors(bundle)
    assert ("Bundle.entry[0].fullUrl", "bundle-fullurl") in found
    assert ("Bundle.entry[1].fullUrl", "bdl-8") in found
    assert ("Bundle.entry[2].fullUrl", "bundle-fullurl") in found
    assert ("Bundle.entry[5].fullUrl", "bdl-7") in found
    assert ("Bundle.entry[6].resource", "bundle-request") in found
    assert ("Bundle.entry[7].search", "bdl-2") in found
    assert ("Bundle.total", "bdl-1") in found


def test_document_and_message_bundle_invariants() -> None:
    document = {
        "resourceType": "Bundle",
        "type": "document",
        "entry": [{"resource": examples.patient()}],
    }
    assert errors(document) == {
        ("Bundle.identifier", "bdl-9"),
        ("Bundle.timestamp", "bdl-10"),
        ("Bundle.entry", "bdl-11"),
    }
    message = {
        "resourceType": "Bundle",
        "type": "message",
        "entry": [{"resource": examples.patient()}],
    }
    assert errors(message) == {("Bundle.entry", "bdl-12")}
    response = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [{"resource": examples.patient()}],
    }
    assert errors(response) == {("Bundle.entry[0].response", "bdl-4")}
    collection = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"}],
    }
    assert errors(collection) == {("Bundle.entry[0]", "bdl-5")}


def test_primitive_extension_arrays_must_line_up() -> None:
    patient = examples.patient()
    patient["name"][0]["_given"] = [{"id": "a"}]
    patient["address"][0]["_line"] = {"id": "x"}
    patient["name"][1]["given"] = [None]
    patient["name"][1]["_given"] = [None]
    assert errors(patient) == {
        ("Patient.name[0]._given", "structure"),
        ("Patient.name[1].given[0]", "structure"),
        ("Patient.name[1]._given[0]", "structure"),
        ("Patient.address[0]._line", "structure"),
    }


def test_paths_inside_a_bundle_use_entry_indexes() -> None:
    bundle = examples.transaction_bundle()
    bundle["entry"][3]["resource"]["identifier"][0]["system"] = "not a uri"
    assert errors(bundle) == {("Bundle.entry[3].resource.identifier[0].system", "value")}


def test_assert_valid_raises_validation_error_with_all_issues() -> None:
    observation = examples.observation()
    observation["status"] = "done"
    del observation["code"]
    with pytest.raises(ValidationError) as raised:
        assert_valid(observation)
    assert isinstance(raised.value, ThumpflowError)
    assert {i.path for i in raised.value.issues} == {"Observation.status", "Observation.code"}
    assert "Observation.status" in str(raised.value)
    assert not is_valid(observation)


def test_messages_never_repeat_the_offending_value() -> None:
    patient = examples.patient()
    patient["birthDate"] = "secret-1980"
    patient["name"][0]["family"] = ["Secretname"]
    patient["identifier"][0]["value"] = {"secret": 1}
    for issue in validate(patient):
        assert "secret" not in issue.message.lower()


@pytest.mark.parametrize("text", ["1.", ".5", "01.5", "1.5x", "NaN", "", "--1"])
def test_a_fhir_decimal_is_checked_by_its_text(text: str) -> None:
    """`FhirDecimal` (the decimal a converter writes with its digits) is a
    decimal when its text has R4's decimal form; `1.50` and `-0.5e3` pass."""
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "valueQuantity": {"value": FhirDecimal(text)},
    }
    assert errors(observation) == {("Observation.valueQuantity.value", "value")}
    for good in ("1.50", "-0.5e3", "7"):
        observation["valueQuantity"] = {"value": FhirDecimal(good)}
        assert errors(observation) == set()
