"""Realistic, valid FHIR R4 resources, built fresh on each call so tests may mutate them."""

from __future__ import annotations

from typing import Any

from thumpflow.fhir import deterministic_id

Resource = dict[str, Any]

MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.72.5.9.1"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PATIENT_ID = deterministic_id("Patient", MRN_SYSTEM, "MRN123456")
ENCOUNTER_ID = deterministic_id("Encounter", "urn:oid:2.16.840.1.113883.3.72.5.9.2", "V998877")
BASE64_PDF = "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURlY29kZT4+"


def patient() -> Resource:
    """A registered patient: identifiers, names, telecom, address, extensions, contact."""
    return {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "meta": {"lastUpdated": "2024-03-05T14:22:31.123+01:00", "source": "urn:oid:1.2.3"},
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">Maria Lopez</div>',
        },
        "extension": [
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": {
                            "system": "urn:oid:2.16.840.1.113883.6.238",
                            "code": "2106-3",
                            "display": "White",
                        },
                    },
                    {"url": "text", "valueString": "White"},
                ],
            },
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress": {"city": "Sevilla", "country": "ES"},
            },
        ],
        "identifier": [
            {
                "use": "usual",
                "type": {"coding": [{"system": V2_0203, "code": "MR"}], "text": "MRN"},
                "system": MRN_SYSTEM,
                "value": "MRN123456",
                "assigner": {"display": "General Hospital"},
            },
            {
                "type": {"coding": [{"system": V2_0203, "code": "SS"}]},
                "system": "http://hl7.org/fhir/sid/us-ssn",
                "value": "999-12-3456",
            },
        ],
        "active": True,
        "name": [
            {"use": "official", "family": "López García", "given": ["María", "José"]},
            {"use": "nickname", "given": ["Mari"]},
        ],
        "telecom": [
            {"system": "phone", "value": "+1 555 0100", "use": "home", "rank": 1},
            {"system": "email", "value": "maria@example.org"},
        ],
        "gender": "female",
        "birthDate": "1980-02-29",
        "_birthDate": {
            "extension": [
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                    "valueDateTime": "1980-02-29T06:15:00-05:00",
                }
            ]
        },
        "deceasedBoolean": False,
        "address": [
            {
                "use": "home",
                "line": ["12 Calle Mayor", "Apt 3"],
                "city": "Springfield",
                "state": "IL",
                "postalCode": "62701",
                "country": "US",
                "period": {"start": "2019-06"},
            }
        ],
        "maritalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                    "code": "M",
                }
            ]
        },
        "contact": [
            {
                "relationship": [
                    {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}
                        ]
                    }
                ],
                "name": {"family": "Lopez", "given": ["Juan"]},
                "telecom": [{"system": "phone", "value": "+1 555 0101"}],
                "gender": "male",
            }
        ],
        "communication": [
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]},
                "preferred": True,
            }
        ],
        "managingOrganization": {"reference": "Organization/gh", "display": "General Hospital"},
    }


def encounter() -> Resource:
    """An inpatient admission with a location, participant and hospitalization."""
    return {
        "resourceType": "Encounter",
        "id": ENCOUNTER_ID,
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.72.5.9.2", "value": "V998877"}],
        "status": "in-progress",
        "class": {"system": ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
        "type": [{"text": "Emergency admission"}],
        "priority": {"coding": [{"system": ACT_CODE, "code": "EM"}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "participant": [
            {
                "type": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "ATND",
                            }
                        ]
                    }
                ],
                "individual": {"reference": "Practitioner/dr-1234", "display": "Dr. Who"},
            }
        ],
        "period": {"start": "2024-03-05T14:00:00+01:00"},
        "hospitalization": {
            "admitSource": {"text": "Emergency room"},
        },
        "location": [
            {
                "location": {"reference": "Location/ward-4b", "display": "4B-12-1"},
                "status": "active",
            }
        ],
        "serviceProvider": {"reference": "Organization/gh"},
    }


def observation(index: int = 0) -> Resource:
    """A final numeric lab result with reference range, interpretation and a note."""
    return {
        "resourceType": "Observation",
        "id": deterministic_id("Observation", "FILL-1", str(index)),
        "status": "final",
        "category": [
            {"coding": [{"system": OBS_CATEGORY, "code": "laboratory", "display": "Laboratory"}]}
        ],
        "code": {
            "coding": [{"system": LOINC, "code": "2345-7", "display": "Glucose [Mass/volume]"}],
            "text": "Glucose",
        },
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "encounter": {"reference": f"Encounter/{ENCOUNTER_ID}"},
        "effectiveDateTime": "2024-03-05T13:40:00+01:00",
        "issued": "2024-03-05T14:10:02.5+01:00",
        "performer": [{"reference": "Organization/lab"}],
        "valueQuantity": {"value": 5.4 + index, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
        "interpretation": [{"coding": [{"system": INTERPRETATION, "code": "N"}]}],
        "note": [{"text": "Fasting sample"}],
        "referenceRange": [
            {
                "low": {"value": 3.9, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
                "high": {"value": 6.1, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
            }
        ],
    }


def blood_pressure() -> Resource:
    """A vital-signs panel with components (valueQuantity in each)."""
    return {
        "resourceType": "Observation",
        "id": "bp-1",
        "status": "preliminary",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectivePeriod": {"start": "2024-03-05T08:00:00Z", "end": "2024-03-05T08:05:00Z"},
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {"value": 120, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": {"value": 80, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
                "interpretation": [{"coding": [{"system": INTERPRETATION, "code": "N"}]}],
            },
        ],
    }


def diagnostic_report() -> Resource:
    """A final lab report pointing to its results, with a contained specimen."""
    return {
        "resourceType": "DiagnosticReport",
        "id": "dr-1",
        "contained": [
            {
                "resourceType": "Specimen",
                "id": "spec1",
                "type": {"text": "Venous blood"},
                "collection": {"collectedDateTime": "2024-03-05T13:40:00+01:00"},
            }
        ],
        "identifier": [{"system": "urn:oid:1.2.3.4", "value": "FILL-1"}],
        "basedOn": [{"reference": "ServiceRequest/sr-1"}],
        "status": "corrected",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "CH"}]}
        ],
        "code": {"coding": [{"system": LOINC, "code": "24323-8"}], "text": "Metabolic panel"},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": "2024-03-05",
        "issued": "2024-03-05T14:10:02+01:00",
        "specimen": [{"reference": "#spec1"}],
        "result": [{"reference": "Observation/obs-1"}, {"reference": "Observation/obs-2"}],
        "conclusion": "Normal",
        "presentedForm": [
            {"contentType": "application/pdf", "data": BASE64_PDF, "title": "Report"}
        ],
    }


def service_request() -> Resource:
    """An active lab order with an occurrence and requester."""
    return {
        "resourceType": "ServiceRequest",
        "id": "sr-1",
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "PLAC"}]},
                "system": "urn:oid:1.2.3.5",
                "value": "ORD-778",
            }
        ],
        "status": "active",
        "intent": "order",
        "priority": "stat",
        "code": {"coding": [{"system": LOINC, "code": "24323-8"}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "encounter": {"reference": f"Encounter/{ENCOUNTER_ID}"},
        "occurrenceDateTime": "2024-03-05T13:30:00+01:00",
        "authoredOn": "2024-03-05T13:20:00+01:00",
        "requester": {"reference": "Practitioner/dr-1234"},
        "reasonCode": [{"text": "Suspected hyperglycaemia"}],
    }


def medication_request() -> Resource:
    """An order with dosage instructions (timing, dose and rate, SimpleQuantity)."""
    return {
        "resourceType": "MedicationRequest",
        "id": "mr-1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "860975",
                    "display": "metformin 500 MG Oral Tablet",
                }
            ]
        },
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": "2024-03-05",
        "requester": {"reference": "PractitionerRole/pr-1"},
        "dosageInstruction": [
            {
                "sequence": 1,
                "text": "500 mg twice daily",
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]},
                "doseAndRate": [
                    {"doseQuantity": {"value": 500, "unit": "mg", "system": UCUM, "code": "mg"}}
                ],
            }
        ],
        "dispenseRequest": {
            "numberOfRepeatsAllowed": 3,
            "quantity": {"value": 60, "unit": "tablet"},
            "expectedSupplyDuration": {"value": 30, "unit": "days", "system": UCUM, "code": "d"},
        },
        "substitution": {"allowedBoolean": True},
    }


def immunization() -> Resource:
    """A completed vaccination with lot number, dose quantity and protocol."""
    return {
        "resourceType": "Immunization",
        "id": "imm-1",
        "status": "completed",
        "vaccineCode": {
            "coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}],
            "text": "Influenza, seasonal, injectable, preservative free",
        },
        "patient": {"reference": f"Patient/{PATIENT_ID}"},
        "occurrenceDateTime": "2023-10-12",
        "primarySource": True,
        "lotNumber": "AAJN11K",
        "expirationDate": "2024-06-30",
        "site": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActSite", "code": "LA"}]
        },
        "doseQuantity": {"value": 0.5, "unit": "mL", "system": UCUM, "code": "mL"},
        "performer": [{"actor": {"reference": "Practitioner/dr-1234"}}],
        "protocolApplied": [{"doseNumberPositiveInt": 1, "seriesDosesPositiveInt": 1}],
    }


def appointment() -> Resource:
    """A booked appointment with participants (required participant.status)."""
    return {
        "resourceType": "Appointment",
        "id": "appt-1",
        "status": "booked",
        "serviceType": [{"text": "Cardiology follow-up"}],
        "start": "2024-04-01T09:00:00Z",
        "end": "2024-04-01T09:30:00Z",
        "minutesDuration": 30,
        "participant": [
            {"actor": {"reference": f"Patient/{PATIENT_ID}"}, "status": "accepted"},
            {
                "actor": {"reference": "Practitioner/dr-1234"},
                "required": "required",
                "status": "tentative",
            },
        ],
    }


def document_reference() -> Resource:
    """A current discharge summary with a base64 attachment (line-wrapped)."""
    return {
        "resourceType": "DocumentReference",
        "id": "doc-1",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3.4.5.6"},
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": LOINC, "code": "18842-5"}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "date": "2024-03-06T10:00:00.000Z",
        "author": [{"reference": "Practitioner/dr-1234"}],
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "language": "en-US",
                    "data": (
                        "RGlzY2hhcmdlIHN1bW1hcnk6IHBhdGllbnQgZGlzY2hhcmdlZCBob21lIGluIGdvb2QgY29uZGl0\n"
                        "aW9uLCBmb2xsb3cgdXAgaW4gMiB3ZWVrcy4=\n"
                    ),
                    "size": 84,
                    "creation": "2024-03-06T09:58:00Z",
                },
                "format": {
                    "system": "urn:oid:1.3.6.1.4.1.19376.1.2.3",
                    "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient",
                },
            }
        ],
        "context": {"encounter": [{"reference": f"Encounter/{ENCOUNTER_ID}"}]},
    }


def provenance() -> Resource:
    """The record of a conversion: targets, the source message entity, the agent."""
    return {
        "resourceType": "Provenance",
        "id": "prov-1",
        "target": [{"reference": f"Patient/{PATIENT_ID}"}, {"reference": "Observation/obs-1"}],
        "recorded": "2024-03-05T14:10:03.001Z",
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE",
                }
            ]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "assembler",
                        }
                    ]
                },
                "who": {"display": "thumpflow"},
            }
        ],
        "entity": [
            {
                "role": "source",
                "what": {
                    "identifier": {"system": "urn:oid:1.2.3.6", "value": "MSG00001"},
                    "display": "ORU^R01 MSG00001",
                },
            }
        ],
    }


def _urn(resource_type: str, *parts: str) -> str:
    return f"urn:uuid:{deterministic_id(resource_type, *parts)}"


def transaction_bundle(observations: int = 15) -> Resource:
    """A transaction as a v2 converter makes it: urn:uuid fullUrls, conditional writes.

    Entries: Patient, Encounter, ServiceRequest, DiagnosticReport, the
    Observations, and a Provenance; 4 + `observations` + 1 entries in all
    (20 by default). References between entries use the urn:uuid fullUrls;
    the Practitioner is referenced conditionally by identifier.
    """
    pat_url = _urn("Patient", MRN_SYSTEM, "MRN123456")
    enc_url = _urn("Encounter", "V998877")
    sr_url = _urn("ServiceRequest", "ORD-778")
    dr_url = _urn("DiagnosticReport", "FILL-1")
    pat = patient()
    enc = encounter()
    enc["subject"] = {"reference": pat_url}
    enc["participant"][0]["individual"] = {
        "reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1234567893"
    }
    sr = service_request()
    sr["subject"] = {"reference": pat_url}
    sr["encounter"] = {"reference": enc_url}
    sr["requester"] = {
        "reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1234567893"
    }
    entries: list[Resource] = [
        _entry(pat_url, pat, f"Patient?identifier={MRN_SYSTEM}|MRN123456"),
        _entry(enc_url, enc, "Encounter?identifier=urn:oid:2.16.840.1.113883.3.72.5.9.2|V998877"),
        _entry(sr_url, sr, "ServiceRequest?identifier=urn:oid:1.2.3.5|ORD-778"),
    ]
    obs_urls = []
    for i in range(observations):
        obs = observation(i)
        obs_url = _urn("Observation", "FILL-1", str(i))
        obs_urls.append(obs_url)
        obs["subject"] = {"reference": pat_url}
        obs["encounter"] = {"reference": enc_url}
        obs["basedOn"] = [{"reference": sr_url}]
        obs["performer"] = [{"reference": "Organization?identifier=urn:oid:1.2.3|LAB"}]
        entries.append(_entry(obs_url, obs, f"Observation?identifier=urn:oid:1.2.3.4|FILL-1-{i}"))
        obs["identifier"] = [{"system": "urn:oid:1.2.3.4", "value": f"FILL-1-{i}"}]
    report = diagnostic_report()
    report["subject"] = {"reference": pat_url}
    report["basedOn"] = [{"reference": sr_url}]
    report["result"] = [{"reference": url} for url in obs_urls]
    entries.insert(3, _entry(dr_url, report, "DiagnosticReport?identifier=urn:oid:1.2.3.4|FILL-1"))
    prov = provenance()
    del prov["id"]
    prov["target"] = [{"reference": pat_url}, {"reference": dr_url}]
    entries.append(
        {
            "fullUrl": _urn("Provenance", "MSG00001"),
            "resource": prov,
            "request": {"method": "POST", "url": "Provenance"},
        }
    )
    return {
        "resourceType": "Bundle",
        "id": deterministic_id("Bundle", "MSG00001"),
        "meta": {"lastUpdated": "2024-03-05T14:10:03Z"},
        "type": "transaction",
        "timestamp": "2024-03-05T14:10:03+01:00",
        "entry": entries,
    }


def _entry(full_url: str, resource: Resource, conditional_url: str) -> Resource:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "PUT", "url": conditional_url},
    }


ALL = {
    "patient": patient,
    "encounter": encounter,
    "observation": observation,
    "blood_pressure": blood_pressure,
    "diagnostic_report": diagnostic_report,
    "service_request": service_request,
    "medication_request": medication_request,
    "immunization": immunization,
    "appointment": appointment,
    "document_reference": document_reference,
    "provenance": provenance,
    "transaction_bundle": transaction_bundle,
}
