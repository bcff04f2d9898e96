"""Message maps the IG has no message table for (BAR, DFT, OUL), by structure.

Each test converts a message holding the optional or repeating groups of its
v2 structure and follows the references, so a group whose segments are
dropped or linked to another group's resources fails with its name:

- OUL_R22: a TQ2 or a PRT (v2.7+) inside an ORDER keeps the order's results.
- OUL_R24: each report refers to its own ORDER's specimens only.
- BAR_P01: a VISIT without PV1 keeps its segments; P06 and P02 close the
  Account; a ROL PP after PID is the general practitioner (DFT too).
"""

from __future__ import annotations

import json
from typing import Any

from thumpflow.fhir import validate
from thumpflow.mapping import convert, to_json

_PID = "PID|1||P1^^^H^MR||Doe^Jane||19800101|F||||||||||ACCT9^^^H^AN\r"


def _msh(event: str, version: str = "2.5") -> str:
    return f"MSH|^~\\&|S|H|R|F|20240301120000-0500||{event}|M1|P|{version}\r"


def _bundle(text: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The valid collection Bundle of `text`: resources by fullUrl, and in order."""
    bundle: dict[str, Any] = json.loads(to_json(convert(text.encode(), bundle_type="collection")))
    assert [i for i in validate(bundle) if i.severity == "error"] == []
    entries = bundle["entry"]
    return {e["fullUrl"]: e["resource"] for e in entries}, [e["resource"] for e in entries]


def _of_type(resources: list[dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == rtype]


def _code(resource: dict[str, Any], element: str = "code") -> str:
    return str(resource[element]["coding"][0]["code"])


_GLUCOSE = "OBX|1|NM|2345-7^Glucose^LN||5.5|mmol/L|||||F\r"
_POTASSIUM = "OBX|2|NM|2823-3^Potassium^LN||4.1|mmol/L|||||F\r"
_OUL_SPM = "SPM|1|SP1&H^SPF1&LAB||BLD^Blood^HL70487\r"
_OUL_OBR = "OBR|1|ORD1^H|F1^LAB|2345-7^Glucose^LN\r"
_PRT = "PRT|1|AD||OP^Ordering provider^HL70443|D1^Smith^Ann\r"


def _oul_results(order: str, version: str = "2.5") -> list[str]:
    by_url, resources = _bundle(_msh("OUL^R22^OUL_R22", version) + _PID + _OUL_SPM + order)
    (report,) = _of_type(resources, "DiagnosticReport")
    results = [by_url[r["reference"]] for r in report.get("result", [])]
    assert len(_of_type(resources, "Observation")) == len(results)
    return [_code(r) for r in results]


def test_an_oul_r22_order_keeps_its_results_after_tq2_and_prt() -> None:
    orc = "ORC|SC|ORD1^H|||CM\r"
    timing = "TQ1|1||||||||R^Routine^HL70485\rTQ2|1|S\r"
    both = ["2345-7", "2823-3"]
    assert _oul_results(_OUL_OBR + orc + timing + _GLUCOSE + _POTASSIUM) == both
    # v2.7+: a PRT after OBR (ORDER.PRT), after ORC, and after a result (RESULT.PRT).
    order = _OUL_OBR + _PRT + orc + _PRT + _GLUCOSE + _PRT + _POTASSIUM
    assert _oul_results(order, "2.8") == both


def test_an_oul_r24_report_refers_to_its_own_orders_specimens() -> None:
    glucose = _OUL_OBR + _OUL_SPM + _GLUCOSE
    urine = (
        "OBR|2|ORD2^H|F2^LAB|2161-8^Creatinine urine^LN\r"
        "SPM|2|SP2&H^SPF2&LAB||UR^Urine^HL70487\r"
        "OBX|1|NM|2161-8^Creatinine urine^LN||9|mmol/L|||||F\r"
    )
    by_url, resources = _bundle(_msh("OUL^R24^OUL_R24") + _PID + glucose + urine)
    assert len(_of_type(resources, "Specimen")) == 2
    specimens = {
        _code(report): [_code(by_url[s["reference"]], "type") for s in report["specimen"]]
        for report in _of_type(resources, "DiagnosticReport")
    }
    assert specimens == {"2345-7": ["BLD"], "2161-8": ["UR"]}


_BAR_ROL_PP = "ROL|R1|AD|PP^Primary care^HL70443|GP1^Gp^Gina^^^^^^H\r"
_BAR_PV1 = "PV1|1|I|WARD^101^A||||||||||||||||V1^^^H^VN\r"


def test_a_bar_visit_without_pv1_keeps_its_segments() -> None:
    visit = (
        "DG1|1||I10^Hypertension^I10|||F\r"
        "PR1|1||0JH^Proc one^ICD10PCS||20240202\r"
        "AL1|1|DA|70618^Penicillin^RXNORM\r"
        "OBX|1|NM|29463-7^Weight^LN||80|kg|||||F\r"
        "IN1|1|PLAN1^Plan One|PAY1^^^H||||||||||||||SEL\r"
    )
    by_url, resources = _bundle(_msh("BAR^P05^BAR_P05") + "EVN|P05|20240301\r" + _PID + visit)
    (patient,) = _of_type(resources, "Patient")
    assert _of_type(resources, "Encounter") == []
    for rtype in ("Condition", "Procedure", "AllergyIntolerance", "Observation", "Coverage"):
        (resource,) = _of_type(resources, rtype)
        assert "encounter" not in resource, rtype
    (coverage,) = _of_type(resources, "Coverage")
    assert by_url[coverage["subscriber"]["reference"]] is patient
    assert by_url[coverage["beneficiary"]["reference"]] is patient


def _account_status(event: str) -> str:
    message = _msh(f"BAR^{event}^BAR_{event}") + f"EVN|{event}|20240301\r" + _PID + _BAR_PV1
    (account,) = _of_type(_bundle(message)[1], "Account")
    return str(account["status"])


def test_a_bar_end_or_purge_of_the_account_makes_it_inactive() -> None:
    assert _account_status("P06") == "inactive"
    assert _account_status("P02") == "inactive"
    assert _account_status("P01") == "active"
    assert _account_status("P05") == "active"


def test_a_bar_or_dft_rol_pp_after_pid_is_the_general_practitioner() -> None:
    attending = "ROL|R2|AD|AT^Attending^HL70443|DR1^One^Doc^^^^^^H\r"
    messages = [
        _msh("BAR^P01^BAR_P01") + "EVN|P01|20240301\r" + _PID + _BAR_ROL_PP + _BAR_PV1 + attending,
        _msh("DFT^P03^DFT_P03")
        + "EVN|P03|20240301\r"
        + _PID
        + _BAR_ROL_PP
        + _BAR_PV1
        + attending
        + "FT1|1|T1||20240301||CG|99213^Office visit^CPT4|||1\r",
    ]
    for message in messages:
        by_url, resources = _bundle(message)
        (patient,) = _of_type(resources, "Patient")
        (gp,) = [by_url[r["reference"]] for r in patient["generalPractitioner"]]
        assert gp["code"][0]["coding"][0]["code"] == "446050000"
        (encounter,) = _of_type(resources, "Encounter")
        (role,) = [by_url[p["individual"]["reference"]] for p in encounter["participant"]]
        assert role["code"][0]["coding"][0]["code"] == "AT"
