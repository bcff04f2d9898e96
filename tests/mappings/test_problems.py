"""Problems (PPR_PC1) → Condition: which OBX are the problem's, and its goals.

PPR_PC1 PROBLEM: PRB [{NTE}] [{VAR}] [{ROL}] [{PTH}] [{PROBLEM_OBSERVATION:
OBX [{NTE}]}] [{GOAL: GOL [{NTE}] ... [{GOAL_OBSERVATION: OBX}]}] [{ORDER:
ORC [OBR|RXO ... [{ORDER_OBSERVATION: OBX}]]}]. The PROBLEM_OBSERVATION OBX
are the evidence of their own problem's Condition; a goal's OBX is one of
its Goal's targets, never a measured value; an order (ServiceRequest or
MedicationRequest, for the problem) refers to its own OBX, which are not
the problem's. A GOL is a Goal addressing its problem's Condition, the
problem's ROLs its CareTeam. Every resource stays valid R4.
"""

from __future__ import annotations

import json
from typing import Any

from tests.mappings.single import clean_resources
from thumpflow.fhir import validate
from thumpflow.mapping import convert, to_json
from thumpflow.mapping._report import REPEATED_IDENTIFIER

_HEAD = (
    "MSH|^~\\&|A|B|C|D|20240301120000-0500||PPR^{event}^PPR_PC1|M1|P|2.5\r"
    "PID|1||MRN1^^^H^MR||Doe^Jane||19800101|F\r"
)
_DIABETES = (
    "PRB|AD|20240301|44054006^Diabetes type 2^SCT|PRB1^H|||20240301\r"
    "NTE|1||Poorly controlled\r"
    "ROL|R1|AD|RP^Responsible^HL70443|DR1^One^Doc\r"
    "OBX|1|NM|4548-4^HbA1c^LN||9.1|%|||||F|||20240301\rNTE|1||Lab note\r"
    "GOL|{action}|20240301|GOAL1^HbA1c below 7^L|G1^H|||20240301|20240601\r"
    "NTE|1||By June\r"
    "OBX|1|NM|4548-4^HbA1c target^LN||7|%|||||F|||20240301\r"
    "ORC|NW|ORD1^H\rOBR|1|ORD1^H||4548-4^HbA1c^LN\rNTE|1||Quarterly\r"
    "OBX|1|NM|2345-7^Glucose^LN||6.1|mmol/L|||||F|||20240301\r"
)
_HYPERTENSION = (
    "PRB|AD|20240301|38341003^Hypertension^SCT|PRB2^H|||20240301\r"
    "OBX|1|NM|8480-6^Systolic BP^LN||150|mm[Hg]|||||F|||20240301\r"
)


def _convert(action: str = "AD", event: str = "PC1") -> dict[str, dict[str, Any]]:
    message = (_HEAD.format(event=event) + _DIABETES.format(action=action) + _HYPERTENSION).encode()
    return clean_resources(message)


def _all(by_url: dict[str, dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [r for r in by_url.values() if r["resourceType"] == rtype]


def _code(resource: dict[str, Any], element: str = "code") -> str:
    return str(resource[element]["coding"][0]["code"])


def test_only_the_problems_own_obx_are_observations_and_its_evidence() -> None:
    by_url = _convert()
    # Not the goal's target (HbA1c 7 %); the order's glucose is the order's.
    hba1c, glucose, systolic = _all(by_url, "Observation")
    assert [_code(o) for o in (hba1c, glucose, systolic)] == ["4548-4", "2345-7", "8480-6"]
    assert hba1c["valueQuantity"]["unit"] == "%"
    assert hba1c["note"] == [{"text": "Lab note"}]
    diabetes, hypertension = _all(by_url, "Condition")
    evidence = [
        [by_url[d["reference"]] for e in c["evidence"] for d in e["detail"]]
        for c in (diabetes, hypertension)
    ]
    assert evidence == [[hba1c], [systolic]]


def test_an_order_of_a_problem_is_for_it_and_refers_to_its_own_observations() -> None:
    by_url = _convert()
    (order,) = _all(by_url, "ServiceRequest")
    diabetes = _all(by_url, "Condition")[0]
    assert [by_url[r["reference"]] for r in order["reasonReference"]] == [diabetes]
    assert [_code(by_url[r["reference"]]) for r in order["supportingInfo"]] == ["2345-7"]
    assert _code(order) == "4548-4"
    assert order["note"] == [{"text": "Quarterly"}]
    pharmacy = (
        _HEAD.format(event="PC1")
        + "PRB|AD|20240301|38341003^Hypertension^SCT|PRB2^H|||20240301\r"
        + "ORC|NW|RX1^H\rRXO|197361^Amlodipine 5 MG^RXNORM|5||MG\r"
        + "OBX|1|NM|8480-6^Systolic BP^LN||150|mm[Hg]|||||F|||20240301\r"
    )
    by_url = clean_resources(pharmacy.encode())
    (request,) = _all(by_url, "MedicationRequest")
    (hypertension,) = _all(by_url, "Condition")
    assert [by_url[r["reference"]] for r in request["reasonReference"]] == [hypertension]
    assert _code(request, "medicationCodeableConcept") == "197361"
    assert [_code(by_url[r["reference"]]) for r in request["supportingInformation"]] == ["8480-6"]
    assert "evidence" not in hypertension


def test_the_problems_roles_are_its_care_team() -> None:
    by_url = _convert()
    (team,) = _all(by_url, "CareTeam")
    diabetes = _all(by_url, "Condition")[0]
    assert [by_url[r["reference"]] for r in team["reasonReference"]] == [diabetes]
    assert team["status"] == "active"
    (member,) = team["participant"]
    assert member["role"][0]["coding"][0]["code"] == "RP"
    role = by_url[member["member"]["reference"]]
    assert by_url[role["practitioner"]["reference"]]["name"][0]["family"] == "One"


def test_a_goal_addresses_its_problem() -> None:
    by_url = _convert()
    (goal,) = _all(by_url, "Goal")
    diabetes = _all(by_url, "Condition")[0]
    assert [by_url[a["reference"]] for a in goal["addresses"]] == [diabetes]
    assert by_url[goal["subject"]["reference"]]["resourceType"] == "Patient"
    assert goal["lifecycleStatus"] == "active"
    assert goal["description"]["coding"][0]["display"] == "HbA1c below 7"
    assert goal["identifier"][0]["value"] == "G1"
    assert goal["startDate"] == "2024-03-01"
    assert goal["note"] == [{"text": "By June"}]


def test_a_goals_obx_is_its_target_due_at_its_date() -> None:
    (goal,) = _all(_convert(), "Goal")
    (target,) = goal["target"]
    assert target["measure"]["coding"][0]["code"] == "4548-4"
    assert target["detailQuantity"]["value"] == 7
    assert target["detailQuantity"]["code"] == "%"
    assert target["dueDate"] == "2024-06-01"
    coded = (
        _HEAD.format(event="PC1")
        + "PRB|AD|20240301|38341003^Hypertension^SCT|PRB2^H|||20240301\r"
        + "GOL|AD|20240301|GOAL2^Stop smoking^L|G2^H|||20240301|20240901\r"
        + "OBX|1|CWE|72166-2^Tobacco status^LN||8517006^Ex-smoker^SCT||||||F\r"
        + "GOL|AD|20240301|GOAL3^Walk daily^L|G3^H|||20240301|20241001\r"
    )
    first, second = _all(clean_resources(coded.encode()), "Goal")
    assert [(_code(t, "measure"), _code(t, "detailCodeableConcept")) for t in first["target"]] == [
        ("72166-2", "8517006")
    ]
    assert first["target"][0]["dueDate"] == "2024-09-01"
    assert second["target"] == [{"dueDate": "2024-10-01"}]


def test_a_deleted_goal_is_entered_in_error() -> None:
    (goal,) = _all(_convert("DE"), "Goal")
    assert goal["lifecycleStatus"] == "entered-in-error"


_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def _problem(event: str = "PC1", **fields: str) -> dict[str, Any]:
    """The Condition of one PRB whose fields `f<n>` are given."""
    values = ["PRB", "AD", "20170110", "K80.00^Cholelithiasis^I10", "PRB9^H"] + [""] * 15
    for name, value in fields.items():
        values[int(name[1:])] = value
    message = _HEAD.format(event=event) + "|".join(values).rstrip("|") + "\r"
    (condition,) = _all(clean_resources(message.encode()), "Condition")
    return condition


def _status(concept: dict[str, Any] | None) -> tuple[str, str] | None:
    return (
        None if concept is None else (concept["coding"][0]["system"], concept["coding"][0]["code"])
    )


def test_confirmation_and_life_cycle_statuses_in_fhirs_codes_are_kept() -> None:
    condition = _problem(
        f9="20180310",
        f13=f"confirmed^Confirmed^{_VER}",
        f14=f"remission^Remission^{_CLIN}",
        f16="20170102",
        f17="As a child",
    )
    assert _status(condition["verificationStatus"]) == (_VER, "confirmed")
    assert _status(condition["clinicalStatus"]) == (_CLIN, "remission")
    # Remission allows an abatement (R4 con-4); the onset text stays out
    # beside an onset date (onset[x] is one value).
    assert condition["abatementDateTime"] == "2018-03-10"
    assert condition["onsetDateTime"] == "2017-01-02"
    assert "onsetString" not in condition


def test_the_onset_text_is_the_onset_when_no_date_is_sent() -> None:
    condition = _problem(f14="relapse", f17="Since childhood")
    assert _status(condition["clinicalStatus"]) == (_CLIN, "relapse")
    assert condition["onsetString"] == "Since childhood"
    assert "verificationStatus" not in condition


def test_local_status_codes_are_not_read_as_fhirs() -> None:
    # PRB-13/14 use user-defined tables: a local `C`/`A` is not FHIR's code,
    # so the Condition keeps today's statuses (resolved by PRB-9).
    condition = _problem(f9="20180310", f13="C^Confirmed^L", f14="active^Active^99LOCAL")
    assert "verificationStatus" not in condition
    assert _status(condition["clinicalStatus"]) == (_CLIN, "resolved")
    assert condition["abatementDateTime"] == "2018-03-10"


def test_an_active_problem_has_no_abatement_and_an_error_no_clinical_status() -> None:
    active = _problem(f9="20180310", f14="active")
    assert _status(active["clinicalStatus"]) == (_CLIN, "active")
    assert "abatementDateTime" not in active  # con-4
    for condition in (
        _problem(f9="20180310", f13="entered-in-error", f14="resolved"),
        _problem("PC3", f13="confirmed", f14="active"),
    ):
        assert _status(condition["verificationStatus"]) == (_VER, "entered-in-error")
        assert "clinicalStatus" not in condition  # con-5
        assert "abatementDateTime" not in condition


def _orders(body: str, control: str = "M1") -> tuple[list[dict[str, Any]], list[str]]:
    """The Bundle entries (resource, fullUrl, request) of a PPR^PC1 holding
    `body` after PID, as a transaction, and its warnings."""
    head = _HEAD.format(event="PC1").replace("|M1|", f"|{control}|")
    warnings: list[str] = []
    bundle = convert((head + body).encode(), warnings=warnings)
    for entry in bundle["entry"]:
        resource = json.loads(to_json(entry["resource"]))
        assert [i for i in validate(resource) if i.severity == "error"] == []
    return bundle["entry"], warnings


def test_two_orders_with_one_number_are_two_requests_never_one_merged() -> None:
    # Before: one MedicationRequest (by RX1) held the second drug with the
    # first dose's unit code (10 "mg" of insulin), the first drug lost.
    body = (
        "PRB|AD|20240301|44054006^Diabetes type 2^SCT|PRB1^H|||20240301\r"
        "ORC|NW|RX1^H\rRXO|860975^Metformin 500 MG^RXNORM|500||MG\r"
        "ORC|NW|RX1^H\rRXO|1234^Insulin^RXNORM|10||U\r"
    )
    entries, warnings = _orders(body)
    first, second = [
        e["resource"] for e in entries if e["resource"]["resourceType"] == "MedicationRequest"
    ]
    assert _code(first, "medicationCodeableConcept") == "860975"
    assert first["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] == "mg"
    assert first["identifier"][0]["value"] == "RX1"
    assert _code(second, "medicationCodeableConcept") == "1234"
    assert second["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] == {
        "value": 10,
        "unit": "U",
    }
    assert "identifier" not in second
    assert [w.code for w in warnings] == [REPEATED_IDENTIFIER]  # type: ignore[attr-defined]


def test_a_numberless_order_is_its_problems_not_the_patients() -> None:
    # Before: every numberless order of the patient, of every problem and
    # message, was one resource (patient alone), each overwriting the last.
    def ids(problem: str, drug: str, control: str) -> list[str]:
        body = (
            f"PRB|AD|20240301|1^P^SCT|{problem}^H|||20240301\rORC|NW\rRXO|{drug}^D^RXNORM|1||MG\r"
        )
        body += f"ORC|NW\rOBR|1|||{drug}^S^LN\r"
        entries, warnings = _orders(body, control)
        assert warnings == []
        return [
            e["request"]["url"]
            for e in entries
            if e["resource"]["resourceType"] in ("MedicationRequest", "ServiceRequest")
        ]

    amlodipine = ids("PRB1", "197361", "M1")
    assert len(set(amlodipine)) == 2
    assert ids("PRB1", "197361", "M2") == amlodipine  # the same problem sent again
    assert set(ids("PRB2", "860975", "M3")).isdisjoint(amlodipine)
