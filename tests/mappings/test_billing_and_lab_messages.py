"""Message maps the IG has no message table for (BAR, DFT, OUL), by structure.

Each test converts a message holding the optional or repeating groups of its
v2 structure and follows the references, so a group whose segments are
dropped or linked to another group's resources fails with its name:

- OUL_R22: a TQ2 or a PRT (v2.7+) inside an ORDER keeps the order's results.
- OUL_R24: each report refers to its own ORDER's specimens only.
- BAR_P01: a VISIT without PV1 keeps its segments, before a visit with PV1
  too; P06 and P02 close the Account; a ROL PP after PID is the general
  practitioner (DFT too).
- DFT: FT1-6 (table 0017) tells a charge and a credit (a negative quantity)
  from a payment, adjustment or co-payment (no ChargeItem, a warning); DFT_P11's
  FINANCIAL PR1 and DG1 are their own charge's service and reason.
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


def test_bar_segments_before_the_first_pv1_are_a_visit_of_their_own() -> None:
    # BAR_P01: PID [PD1] [{ROL}] {VISIT: [PV1] ... [{DG1}] ... [{INSURANCE}]}:
    # a DG1 and IN1 before the first PV1 are a VISIT whose PV1 is absent.
    message = (
        _msh("BAR^P01^BAR_P01")
        + "EVN|P01|20240301\r"
        + _PID
        + _BAR_ROL_PP
        + "DG1|1||I10^Hypertension^I10|||F\r"
        + "IN1|1|PLAN1^Plan One|PAY1^^^H||||||||||||||SEL\r"
        + _BAR_PV1
        + "DG1|1||J45^Asthma^I10|||F\r"
    )
    by_url, resources = _bundle(message)
    (patient,) = _of_type(resources, "Patient")
    assert len(patient["generalPractitioner"]) == 1
    (encounter,) = _of_type(resources, "Encounter")
    conditions = {_code(c): c for c in _of_type(resources, "Condition")}
    assert sorted(conditions) == ["I10", "J45"]
    assert "encounter" not in conditions["I10"]
    assert by_url[conditions["J45"]["encounter"]["reference"]] is encounter
    assert [by_url[d["condition"]["reference"]] for d in encounter["diagnosis"]] == [
        conditions["J45"]
    ]
    (coverage,) = _of_type(resources, "Coverage")
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


_DFT_PV1 = "PV1|1|O|CLINIC^1||||||||||||||||V2^^^H^VN\r"


def _charges(message: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    by_url, resources = _bundle(message)
    return by_url, _of_type(resources, "ChargeItem")


def test_a_dft_credit_takes_its_quantity_back_and_a_payment_is_no_charge() -> None:
    ft1 = "FT1|{n}|T{n}||20240215||{kind}|{code}|||{qty}\r"
    visit = "99213^Office visit^CPT"
    lines = [
        ft1.format(n=1, kind="CG", code=visit, qty="1"),
        ft1.format(n=2, kind="CD", code=visit, qty="1"),
        ft1.format(n=3, kind="CD", code=visit, qty="-2.5"),
        ft1.format(n=4, kind="CD", code=visit, qty=""),
        ft1.format(n=5, kind="PY", code="PAY^Patient payment^L", qty="1"),
        ft1.format(n=6, kind="AJ", code="ADJ^Adjustment^L", qty="1"),
        ft1.format(n=7, kind="CO", code="COP^Co-payment^L", qty="1"),
        ft1.format(n=8, kind="", code=visit, qty="3"),
    ]
    message = _msh("DFT^P03^DFT_P03") + _PID + _DFT_PV1 + "".join(lines)
    _, charges = _charges(message)
    assert [(c["identifier"][0]["value"], c["quantity"]["value"]) for c in charges] == [
        ("T1", 1),
        ("T2", -1),
        ("T3", -2.5),
        ("T4", -1),
        ("T8", 3),
    ]
    assert {c["status"] for c in charges} == {"billable"}


def test_a_dft_p11_charge_has_its_own_procedures_and_diagnoses() -> None:
    message = (
        _msh("DFT^P11^DFT_P11")
        + _PID
        + _DFT_PV1
        + "DG1|1||Z00^General exam^I10|||F\r"
        + "FT1|1|T1||20240215||CG|99213^Office visit^CPT|||1|||||||||J45.909^Asthma^I10\r"
        + "PR1|1||99213^Office visit^C4||20240215\r"
        + "DG1|1||J45.909^Asthma^I10|||F\r"
        + "FT1|2|T2||20240215||CG|94010^Spirometry^CPT|||1||||||||||||||94010^^C4\r"
        + "PR1|1||94010^Spirometry^C4||20240215\r"
        + "DG1|1||R06.2^Wheezing^I10|||F\r"
        + "DG1|2||R05^Cough^I10|||F\r"
    )
    by_url, charges = _charges(message)
    (encounter,) = _of_type(list(by_url.values()), "Encounter")
    (visit_diagnosis,) = [by_url[d["condition"]["reference"]] for d in encounter["diagnosis"]]
    assert _code(visit_diagnosis) == "Z00"
    found = {
        _code(charge): (
            [_code(by_url[s["reference"]]) for s in charge["service"]],
            [r["coding"][0]["code"] for r in charge["reason"]],
            [_code(by_url[s["reference"]]) for s in charge["supportingInformation"]],
        )
        for charge in charges
    }
    assert found == {
        "99213": (["99213"], ["J45.909"], ["J45.909"]),
        "94010": (["94010"], ["R06.2", "R05"], ["R06.2", "R05"]),
    }


def test_a_dft_charge_takes_ft1_25_as_another_coding_of_its_code() -> None:
    ft1 = "FT1|1|T1||20240215||CG|{code}|||1" + "|" * 15 + "{procedure}\r"
    base = _msh("DFT^P03^DFT_P03") + _PID + _DFT_PV1
    _, (charge,) = _charges(base + ft1.format(code="VIS1^Visit^L", procedure="99213^Office^C4"))
    assert [c["code"] for c in charge["code"]["coding"]] == ["VIS1", "99213"]
    _, (charge,) = _charges(base + ft1.format(code="", procedure="99213^Office^C4"))
    assert [c["code"] for c in charge["code"]["coding"]] == ["99213"]


def test_a_dft_payment_adjustment_or_co_payment_is_left_out_with_a_warning() -> None:
    ft1 = "FT1|{n}|T{n}||20240215||{kind}|PAY^Patient payment^L|||1\r"
    base = _msh("DFT^P03^DFT_P03") + _PID + _DFT_PV1
    charge = ft1.format(n=1, kind="CG")
    for kind in ("PY", "AJ", "CO"):
        warnings: list[str] = []
        convert((base + charge + ft1.format(n=2, kind=kind)).encode(), warnings=warnings)
        assert [(w, getattr(w, "code", None)) for w in warnings] == [
            (
                "DFT^P03 (DFT_P03): FT1 not converted: FT1-6 is a payment, adjustment"
                " or co-payment (no ChargeItem)",
                "segment_not_converted",
            )
        ], kind
    warnings = []
    convert((base + charge).encode(), warnings=warnings)
    assert warnings == []
