"""Referrals (REF_I12, RRI_I12) → ServiceRequest: status, providers, notes, clinical data.

RF1-1 (table 0283) gives the status, but a cancel (I14) revokes the
referral and an expired one (E) is revoked, never `completed` (R4: "fully
performed"). A response (RRI) is a Task answering the referral, never the
referral, and a status request (I15) does not write it: neither replaces
the stored referral with its sparse RF1. PRD-1 (table 0286) says whose provider a PRD is: RP the
referral's requester, RT its performer (CP, the consultant, too), PP the
patient's general practitioner, each a PractitionerRole (location PRD-4,
period PRD-8/9) of its Practitioner; any other role is left out with a
warning. The message's closing NTEs are the referral's notes and the
OBSERVATION group's OBR (a DiagnosticReport) and OBX (its results) its
supportingInfo. Every resource stays valid R4.
"""

from __future__ import annotations

from typing import Any

from tests.mappings.single import clean_resources
from thumpflow.mapping import convert

_MSH = "MSH|^~\\&|A|B|C|D|20240301120000-0500||{event}|M1|P|2.5\r"
_RF1 = "RF1|{status}^S^HL70283|R^Routine^HL70280||||REF100^HOSP|20240301\r"
_PRD = (
    "PRD|RP^Referring^HL70286|Smith^John^^^Dr|1 Main St^^Town^ST^11111||^WPN^PH^^1^555^1234567|"
    "|NPI111^NPI\r"
    "PRD|RT^Referred to^HL70286|Heart^Helen^^^Dr|||||NPI222^NPI\r"
    "PRD|PP^Primary care^HL70286|Green^Gina|||||NPI333^NPI\r"
)
_PID = "PID|1||MRN1^^^H^MR||Doe^Jane||19800101|F\r"
_CLINICAL = (
    "DG1|1||I20.9^Angina^I10|||W\r"
    "OBR|1|ORD9^H||93000^ECG^C4\r"
    "OBX|1|ST|8601-7^ECG impression^LN||ST depression||||||F\rNTE|1||Read by cardiology\r"
)
_VISIT = "PV1|1|O|||||||||||||||||V1^^^H^VN\r"
_NOTE = "NTE|1||Please see within 2 weeks\r"


def _convert(segments: str, event: str = "REF^I12^REF_I12") -> dict[str, dict[str, Any]]:
    message = (_MSH.format(event=event) + segments).encode()
    return clean_resources(message)


def _referral(by_url: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (found,) = [r for r in by_url.values() if r["resourceType"] == "ServiceRequest"]
    return found


def _status(status: str, event: str = "REF^I12^REF_I12") -> str:
    text: str = _referral(_convert(_RF1.format(status=status) + _PID, event))["status"]
    return text


def test_a_cancel_revokes_the_referral_whatever_rf1_1_says() -> None:
    assert _status("P", "REF^I14^REF_I12") == "revoked"
    assert _status("A", "REF^I14^REF_I12") == "revoked"


def _response(status: str, event: str, msa: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Task of an RRI (asserting it writes no ServiceRequest) and the bundle."""
    segments = msa + _RF1.format(status=status) + _PRD + _PID + _NOTE
    by_url = _convert(segments, event)
    assert [r for r in by_url.values() if r["resourceType"] == "ServiceRequest"] == []
    (task,) = [r for r in by_url.values() if r["resourceType"] == "Task"]
    return task, by_url


def test_a_response_is_a_task_answering_the_referral_which_it_leaves_as_it_is() -> None:
    task, by_url = _response("A", "RRI^I12^RRI_I12", "MSA|AA|C1\r")
    assert task["status"] == "accepted"
    assert task["intent"] == "order"
    assert task["businessStatus"]["coding"][0]["code"] == "A"
    (based_on,) = task["basedOn"]
    assert based_on["type"] == "ServiceRequest"
    assert based_on["identifier"]["value"] == "REF100"
    assert by_url[task["for"]["reference"]]["resourceType"] == "Patient"
    assert _person(by_url, task["owner"])["name"][0]["family"] == "Heart"
    assert _person(by_url, task["requester"])["name"][0]["family"] == "Smith"
    assert task["note"] == [{"text": "Please see within 2 weeks"}]
    assert _response("P", "RRI^I12^RRI_I12", "MSA|AA|C1\r")[0]["status"] == "received"
    # MSA-1 acknowledges the request message (table 0008); RF1-1 is the
    # referral's status and wins; MSA-1 AE/AR rejects only without one.
    assert _response("A", "RRI^I12^RRI_I12", "MSA|AR|C1\r")[0]["status"] == "accepted"
    assert _response("A", "RRI^I13^RRI_I12", "MSA|AE|C1\r")[0]["status"] == "accepted"
    assert _response("R", "RRI^I12^RRI_I12", "MSA|AA|C1\r")[0]["status"] == "rejected"
    assert _response("", "RRI^I12^RRI_I12", "MSA|AR|C1\r")[0]["status"] == "rejected"
    assert _response("", "RRI^I12^RRI_I12", "MSA|AA|C1\r")[0]["status"] == "received"
    # A cancel accepted ends the task; one refused leaves it to RF1-1.
    assert _response("A", "RRI^I14^RRI_I12", "MSA|AA|C1\r")[0]["status"] == "cancelled"
    assert _response("A", "RRI^I14^RRI_I12", "MSA|AR|C1\r")[0]["status"] == "accepted"


def test_a_response_naming_no_referral_is_its_messages_own_task() -> None:
    # An RRI without RF1-6/RF1-11 names no referral: before, every such
    # response of the patient was one Task (patient alone), each message
    # overwriting the last. Now its message identifies it; the same message
    # sent again writes the same Task.
    rf1 = "RF1|{status}^S^HL70283|R^Routine^HL70280||||||20240301\r"

    def task_url(status: str, control: str) -> str:
        message = _MSH.format(event="RRI^I12^RRI_I12").replace("|M1|", f"|{control}|")
        bundle = convert((message + "MSA|AA|C1\r" + rf1.format(status=status) + _PID).encode())
        (url,) = [
            e["request"]["url"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task"
        ]
        return url

    first = task_url("A", "M1")
    assert task_url("A", "M1") == first
    assert task_url("R", "M2") != first


def test_a_status_request_does_not_write_the_referral() -> None:
    message = _MSH.format(event="REF^I15^REF_I12") + _RF1.format(status="P") + _PRD + _PID
    warnings: list[str] = []
    bundle = convert(message.encode(), bundle_type="collection", warnings=warnings)
    types = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert "ServiceRequest" not in types and "Patient" in types
    assert warnings == [
        "REF^I15 (REF_I12): RF1 not converted: REF^I15 requests the referral's status:"
        " its RF1 would replace the referral"
    ]


def test_an_expired_referral_is_revoked_not_completed() -> None:
    assert _status("E") == "revoked"
    assert [_status(code) for code in "APR"] == ["active", "draft", "revoked"]


def test_prd_providers_are_the_requester_performer_and_general_practitioner() -> None:
    segments = _RF1.format(status="P") + _PRD + _PID
    by_url = _convert(segments)
    referral = _referral(by_url)
    role = by_url[referral["requester"]["reference"]]
    assert role["resourceType"] == "PractitionerRole"
    assert role["code"][0]["coding"][0]["code"] == "RP"
    requester = by_url[role["practitioner"]["reference"]]
    assert requester["name"] == [{"family": "Smith", "given": ["John"], "prefix": ["Dr"]}]
    assert requester["identifier"][0]["value"] == "NPI111"
    assert requester["identifier"][0]["type"]["coding"][0]["code"] == "NPI"
    assert requester["address"][0]["city"] == "Town"
    assert requester["telecom"][0]["value"] == "+1 555 1234567"
    (performer,) = [_person(by_url, p) for p in referral["performer"]]
    assert performer["name"][0]["family"] == "Heart"
    (patient,) = [r for r in by_url.values() if r["resourceType"] == "Patient"]
    (gp,) = [_person(by_url, g) for g in patient["generalPractitioner"]]
    assert gp["name"][0]["family"] == "Green"


def _person(by_url: dict[str, dict[str, Any]], ref: dict[str, str]) -> dict[str, Any]:
    """The Practitioner of the PractitionerRole `ref` refers to."""
    return by_url[by_url[ref["reference"]]["practitioner"]["reference"]]


def test_a_prd_role_has_its_location_and_period_and_a_consultant_performs() -> None:
    consultant = (
        "PRD|CP^Consulting^HL70286|Lung^Lee||CARDIO^101^A^HOSP|||NPI444^NPI|20240101|20241231\r"
    )
    by_url = _convert(_RF1.format(status="P") + consultant + _PID)
    (role,) = [by_url[p["reference"]] for p in _referral(by_url)["performer"]]
    assert role["code"][0]["coding"][0]["code"] == "CP"
    assert role["period"]["start"].startswith("2024-01-01")
    assert role["period"]["end"].startswith("2024-12-31")
    (location,) = [by_url[x["reference"]] for x in role["location"]]
    assert location["resourceType"] == "Location"
    assert by_url[role["practitioner"]["reference"]]["name"][0]["family"] == "Lung"


def test_a_provider_with_an_identifier_is_one_practitioner_whatever_else_changes() -> None:
    # PRD-7 identifies the provider: a new telephone in a later message, or
    # the same provider in two roles, is the same Practitioner. Before, its
    # id was its content's, a new Practitioner at every change.
    def practitioners(segments: str, control: str) -> list[str]:
        message = _MSH.format(event="REF^I12^REF_I12").replace("|M1|", f"|{control}|")
        bundle = convert((message + _RF1.format(status="P") + segments + _PID).encode())
        return [
            e["request"]["url"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Practitioner"
        ]

    rp = "PRD|RP^Referring^HL70286|Smith^John|||^WPN^PH^^1^555^{phone}||NPI111^NPI\r"
    first = practitioners(rp.format(phone="1234567"), "M1")
    assert len(first) == 1
    assert practitioners(rp.format(phone="7654321"), "M2") == first
    rt = "PRD|RT^Referred to^HL70286|Smith^John|||||NPI111^NPI\r"
    assert practitioners(rp.format(phone="1234567") + rt, "M3") == first


def test_a_prd_role_without_a_target_is_left_out_with_a_warning() -> None:
    message = _MSH.format(event="REF^I12^REF_I12") + _RF1.format(status="P") + _PID
    local = "PRD|ZZ^Local^L|Odd^Oscar\r"
    warnings: list[str] = []
    convert((message + local).encode(), warnings=warnings)
    assert warnings == [
        "REF^I12 (REF_I12): PRD not converted: PRD-1 names a provider role without a"
        " target (not RP, RT, CP or PP)"
    ]


def test_the_closing_notes_are_the_referrals_and_its_observations_support_it() -> None:
    by_url = _convert(_RF1.format(status="P") + _PRD + _PID + _CLINICAL + _VISIT + _NOTE)
    referral = _referral(by_url)
    assert referral["note"] == [{"text": "Please see within 2 weeks"}]
    report, observation = [by_url[s["reference"]] for s in referral["supportingInfo"]]
    assert observation["valueString"] == "ST depression"
    assert observation["note"] == [{"text": "Read by cardiology"}]
    # The OBSERVATION group's OBR: a report whose results are its own OBX.
    assert report["resourceType"] == "DiagnosticReport"
    assert report["code"]["coding"][0]["code"] == "93000"
    assert [by_url[r["reference"]] for r in report["result"]] == [observation]


def test_an_obx_before_the_first_obr_is_still_an_observation_of_the_referral() -> None:
    # REF_I12 puts OBX inside OBSERVATION (after its OBR); one sent before
    # the first OBR is an Observation alone, as in a message without OBR.
    # Before, with an OBR later in the message, it was dropped silently.
    early = "OBX|1|NM|2345-7^Glucose^LN||95|mg/dL|||||F\rNTE|1||Fasting\r"
    by_url = _convert(_RF1.format(status="P") + _PID + early + _CLINICAL)
    referral = _referral(by_url)
    report, glucose, ecg = [by_url[s["reference"]] for s in referral["supportingInfo"]]
    assert glucose["code"]["coding"][0]["code"] == "2345-7"
    assert glucose["note"] == [{"text": "Fasting"}]
    assert report["resourceType"] == "DiagnosticReport"
    assert [by_url[r["reference"]] for r in report["result"]] == [ecg]


def test_closing_notes_without_a_visit_are_the_referrals_but_not_an_observations() -> None:
    without_visit = _RF1.format(status="P") + _PID + "DG1|1||I20.9^Angina^I10|||W\r" + _NOTE
    assert _referral(_convert(without_visit))["note"] == [{"text": "Please see within 2 weeks"}]
    after_obx = _RF1.format(status="P") + _PID + _CLINICAL
    assert "note" not in _referral(_convert(after_obx))
