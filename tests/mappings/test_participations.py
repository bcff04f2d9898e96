"""PRT and ROL where the IG's message maps place them (issue 13).

Each test converts a golden case's input and follows the references the IG's
message map names (ORU_R01, OML_O21, VXU_V04, ADT_A05), so a PRT or ROL that
lands on the wrong resource, or on none, fails here with its role named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from thumpflow.mapping import convert

HERE = Path(__file__).parent


def _bundle(case: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The collection Bundle of golden case `case`: resources by fullUrl, and in order."""
    bundle = convert((HERE / case / "input.hl7").read_bytes(), bundle_type="collection")
    entries = bundle["entry"]
    return {e["fullUrl"]: e["resource"] for e in entries}, [e["resource"] for e in entries]


def _by_url(message: str) -> dict[str, dict[str, Any]]:
    """`message`'s collection Bundle, resources by fullUrl."""
    bundle = convert(message.encode(), bundle_type="collection")
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def _of_type(resources: list[dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == rtype]


def _role_code(role: dict[str, Any]) -> str:
    return str(role["code"][0]["coding"][0]["code"])


def test_oru_patient_prts_observation_device_and_specimen_collector() -> None:
    by_url, resources = _bundle("oru_r01_prt_patient_specimen_collector")
    (patient,) = _of_type(resources, "Patient")
    (gp,) = [by_url[r["reference"]] for r in patient["generalPractitioner"]]
    assert _role_code(gp) == "PP"
    # IG PRT[RelatedPerson]: a PRT after PID that is not the GP; NK1 another.
    people = _of_type(resources, "RelatedPerson")
    relationships = sorted(p["relationship"][0]["coding"][0]["code"] for p in people)
    assert relationships == ["RCT", "SPS"]
    assert all(by_url[p["patient"]["reference"]] is patient for p in people)
    # PATIENT_OBSERVATION: the OBX before the order, with its PRT's Device.
    weight, glucose = _of_type(resources, "Observation")
    assert weight["code"]["coding"][0]["code"] == "29463-7"
    assert "encounter" not in weight
    device = by_url[weight["device"]["reference"]]
    assert device["identifier"][0]["value"] == "SCALE-7"
    assert "device" not in glucose
    # SPM in the order group: the report's specimen, collected by the SC PRT.
    (report,) = _of_type(resources, "DiagnosticReport")
    (specimen,) = [by_url[r["reference"]] for r in report["specimen"]]
    collector = by_url[specimen["collection"]["collector"]["reference"]]
    assert _role_code(collector) == "SC"


def test_oml_visit_prt_observation_prts_supporting_info_and_reason() -> None:
    by_url, resources = _bundle("oml_o21_prt_visit_observation_allergy")
    (encounter,) = _of_type(resources, "Encounter")
    (attending,) = [by_url[p["individual"]["reference"]] for p in encounter["participant"]]
    assert _role_code(attending) == "AT"
    (order,) = _of_type(resources, "ServiceRequest")
    (observation,) = [by_url[r["reference"]] for r in order["supportingInfo"]]
    assert by_url[observation["device"]["reference"]]["identifier"][0]["value"] == "SCALE-2"
    (observer,) = [by_url[r["reference"]] for r in observation["performer"]]
    assert _role_code(observer) == "RO"
    (reason,) = [by_url[r["reference"]] for r in order["reasonReference"]]
    assert reason["resourceType"] == "Condition"
    assert len(_of_type(resources, "AllergyIntolerance")) == 1
    assert len(_of_type(resources, "RelatedPerson")) == 2


def test_vxu_order_prts_are_immunization_performers_and_observations_part_of_it() -> None:
    by_url, resources = _bundle("vxu_v04_prt_performers_observations")
    (immunization,) = _of_type(resources, "Immunization")
    functions = {
        p["function"]["coding"][0]["code"]: _role_code(by_url[p["actor"]["reference"]])
        for p in immunization["performer"]
    }
    assert functions == {"OP": "OP", "AP": "AP"}
    assert by_url[immunization["encounter"]["reference"]]["resourceType"] == "Encounter"
    person, eligibility, vaccine = _of_type(resources, "Observation")
    assert "partOf" not in person
    for observation in (eligibility, vaccine):
        assert by_url[observation["partOf"][0]["reference"]] is immunization
    (observer,) = [by_url[r["reference"]] for r in vaccine["performer"]]
    assert _role_code(observer) == "RO"
    assert "performer" not in eligibility


def test_person_events_take_rol_and_prt_general_practitioners() -> None:
    by_url, resources = _bundle("adt_a28_rol_prt_general_practitioner")
    (patient,) = _of_type(resources, "Patient")
    kinds = sorted(by_url[r["reference"]]["resourceType"] for r in patient["generalPractitioner"])
    # PD1-3; PRT and ROL each a PractitionerRole (IG ADT_A05 rows 13, 14).
    assert kinds == ["Organization", "PractitionerRole", "PractitionerRole"]
    assert _of_type(resources, "Encounter") == []


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ("A01^ADT_A01", "Practitioner"),
        ("A02^ADT_A02", "Practitioner"),
        ("A06^ADT_A06", "Practitioner"),
        ("A08^ADT_A01", "Practitioner"),
        ("A05^ADT_A05", "PractitionerRole"),
        ("A14^ADT_A05", "PractitionerRole"),
        ("A28^ADT_A05", "PractitionerRole"),
        ("A31^ADT_A05", "PractitionerRole"),
    ],
)
def test_a_prt_after_pid_is_the_general_practitioner_as_each_adt_structure_says(
    event: str, kind: str
) -> None:
    """IG row 14 `follow:PID.PRT` with role PP: ADT_A01/A02/A06 map it by
    PRT[Patient-GeneralPractitioner-Practitioner], ADT_A05 (A05, A14, A28,
    A31) by PRT[Patient-GeneralPractitioner-PractitionerRole]."""
    message = (
        f"MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240301120000-0500||ADT^{event}|1|P|2.8.2\r"
        "EVN||20240301120000\rPID|1||MRN100^^^HOSP^MR||Alpha^Ann||19800101|F\r"
        "PRT|1|AD||PP^Primary Care Provider^HL70443|GP2^Goodwin^Gus||||||||||^WPN^PH^^^^5550100\r"
        "PV1|1|I|W1^1^1\r"
    ).encode()
    entries = convert(message, bundle_type="collection")["entry"]
    by_url = {e["fullUrl"]: e["resource"] for e in entries}
    (patient,) = [r for r in by_url.values() if r["resourceType"] == "Patient"]
    (gp,) = [by_url[r["reference"]] for r in patient["generalPractitioner"]]
    assert gp["resourceType"] == kind
    if kind == "PractitionerRole":
        assert _role_code(gp) == "PP"
        assert by_url[gp["practitioner"]["reference"]]["name"][0]["family"] == "Goodwin"
        assert gp["telecom"][0]["value"] == "5550100"
    else:
        assert gp["name"][0]["family"] == "Goodwin"
    assert len([r for r in by_url.values() if r["resourceType"] == "Practitioner"]) == 1


def test_bar_rol_after_the_visit_is_an_encounter_participant() -> None:
    by_url, resources = _bundle("bar_p01_rol_visit_roles")
    (encounter,) = _of_type(resources, "Encounter")
    (role,) = [by_url[p["individual"]["reference"]] for p in encounter["participant"]]
    assert _role_code(role) == "AT"


def test_obr_specimen_only_when_its_group_has_no_spm() -> None:
    """IG OBR[Specimen] for v2.3-style results; an SPM in the group is the specimen instead."""
    source = (HERE / "oru_r01_v23_obr_specimen" / "input.hl7").read_bytes()
    by_url, resources = _bundle("oru_r01_v23_obr_specimen")
    (specimen,) = _of_type(resources, "Specimen")
    assert specimen["type"]["coding"][0]["code"] == "UR"
    (report,) = _of_type(resources, "DiagnosticReport")
    assert [by_url[r["reference"]] for r in report["specimen"]] == [specimen]
    with_spm = source + b"SPM|1|SP1&LAB||BLD^Blood^HL70487\r"
    entries = convert(with_spm, bundle_type="collection")["entry"]
    specimens = [e["resource"] for e in entries if e["resource"]["resourceType"] == "Specimen"]
    assert [s["type"]["coding"][0]["code"] for s in specimens] == ["BLD"]


_ORU = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240301120000-0500||ORU^R01^ORU_R01|S2|P|2.8.2\r"


def _report(n: int, prt: str) -> str:
    return (
        f"OBR|{n}|PLAC{n}^EHR|FILL{n}^LAB|C{n}^Test {n}^L|||20240301080000||||||||||||||||||F\r"
        f"{prt}OBX|1|NM|4544-3^Hematocrit^LN||4{n}|%|||||F\r"
        "PRT|1|UC||RO^Responsible Observer^HL70443|TECH1^Tech^Tia\r"
    )


def _interpreter(period: str = "", person: str = "PATH1^Smith^John^^^^^^NPI") -> str:
    return f"PRT|1|UC||PRI^Principal Result Interpreter^HL70443|{person}||||||{period}\r"


def _roles(text: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    entries = convert(text.encode(), bundle_type="collection")["entry"]
    by_url = {e["fullUrl"]: e["resource"] for e in entries}
    return by_url, [r for r in by_url.values() if r["resourceType"] == "PractitionerRole"]


def test_one_person_in_one_role_in_several_groups_is_one_practitioner_role() -> None:
    """IG ORU_R01 rows 4.2.4 and 4.2.4.3.2: PRT[PractitionerRole] per person
    and role. The same PRT (PRT-4, PRT-5, PRT-8, all else alike) after three
    OBRs, and after their OBXs, gave PractitionerRoles #1, #2, #3 with one
    content; each is one resource, every group referring to it."""
    by_url, roles = _roles(
        _ORU
        + "PID|1||MRN100^^^HOSP^MR||Alpha^Ann\r"
        + _report(1, _interpreter())
        + _report(2, _interpreter())
        + "PID|1||MRN200^^^HOSP^MR||Beta^Ben\r"
        + _report(3, _interpreter())
    )
    assert sorted(_role_code(r) for r in roles) == ["PRI", "RO"]
    interpreter, observer = sorted(roles, key=_role_code)
    reports = [r for r in by_url.values() if r["resourceType"] == "DiagnosticReport"]
    observations = [r for r in by_url.values() if r["resourceType"] == "Observation"]
    assert len(reports) == len(observations) == 3
    for report in reports:
        assert [by_url[r["reference"]] for r in report["resultsInterpreter"]] == [interpreter]
    for observation in observations:
        assert [by_url[r["reference"]] for r in observation["performer"]] == [observer]


@pytest.mark.parametrize(
    "second",
    [
        _interpreter(period="20240101"),  # PRT-11: another period of the role
        # PRT-15: another telephone of the role.
        "PRT|1|UC||PRI^Principal Result Interpreter^HL70443|PATH1^Smith^John^^^^^^NPI"
        "||||||||||^WPN^PH^^^^5550100\r",
        "PRT|1|UC||PRI^Principal Result Interpreter^HL70443|PATH2^Smith^John^^^^^^NPI\r",
        "PRT|1|UC||ARI^Assistant Result Interpreter^HL70443|PATH1^Smith^John^^^^^^NPI\r",
    ],
)
def test_participations_that_differ_in_anything_stay_separate_resources(second: str) -> None:
    by_url, roles = _roles(
        _ORU
        + "PID|1||MRN100^^^HOSP^MR||Alpha^Ann\r"
        + _report(1, _interpreter())
        + _report(2, second)
        + _report(3, _interpreter() + _interpreter())
    )
    first, other = (
        [
            by_url[r["reference"]]
            for r in report.get("resultsInterpreter", report.get("performer", []))
        ]
        for report in [r for r in by_url.values() if r["resourceType"] == "DiagnosticReport"][:2]
    )
    assert len(first) == len(other) == 1
    assert first[0] is not other[0]
    assert first[0] != other[0]
    # The third report's two identical PRTs: the first report's role, once.
    third = [r for r in by_url.values() if r["resourceType"] == "DiagnosticReport"][2]
    assert [by_url[r["reference"]] for r in third["resultsInterpreter"]] == first
    assert len([r for r in roles if _role_code(r) in ("PRI", "ARI")]) == 2


def test_a_resource_written_to_after_it_is_built_is_never_merged() -> None:
    """Two Patients alike when built (no identifier, same name and birth date)
    each get their PD1, PV1 and visit afterwards: they stay #1 and #2."""
    message = (
        "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240301120000||ADT^A17^ADT_A17|1|P|2.5.1\r"
        "EVN|A17|20240301120000\rPID|1||||Alpha^Ann||19800101|F\rPV1|1|I|W1^1^1\r"
        "PID|1||||Alpha^Ann||19800101|F\rPV1|1|I|W2^2^2\r"
    )
    entries = convert(message.encode(), bundle_type="collection")["entry"]
    patients = [e["resource"] for e in entries if e["resource"]["resourceType"] == "Patient"]
    assert len(patients) == 2
    assert patients[0]["id"] != patients[1]["id"]


def test_one_device_after_two_observations_is_each_ones_device() -> None:
    prt = "PRT|1|AD||EQUIP||||||ANALYZER-9^^^LAB\r"
    message = (
        "MSH|^~\\&|L|H|R|R|20240102||ORU^R01|1|P|2.8\rPID|1||P1^^^H^MR||Doe^Jo\r"
        "OBR|1||F1|X^Panel^L\r"
        f"OBX|1|NM|1-1^A^LN||1||||||F\r{prt}OBX|2|NM|2-2^B^LN||2||||||F\r{prt}"
    )
    bundle = convert(message.encode(), bundle_type="collection")
    resources = [e["resource"] for e in bundle["entry"]]
    (device,) = _of_type(resources, "Device")
    urls = {e["resource"]["id"]: e["fullUrl"] for e in bundle["entry"] if "id" in e["resource"]}
    first, second = _of_type(resources, "Observation")
    # The same identifier twice is one Device (IG PRT[Device]); both OBX name it.
    assert first["device"] == second["device"] == {"reference": urls[device["id"]]}


def test_obr10_is_the_collector_of_the_specimen_an_spm_describes() -> None:
    # IG OBR[Specimen] row 10: SPM has no collector field; OBR-10 names it.
    message = (
        "MSH|^~\\&|L|H|R|R|20240102||ORU^R01|1|P|2.5\rPID|1||P1^^^H^MR||Doe^Jo\r"
        "OBR|1||F1|X^Panel^L||||||^Collect^John\rOBX|1|NM|1-1^A^LN||1||||||F\r"
        "SPM|1|SP1||BLD^Blood^HL70487\r"
    )
    by_url = _by_url(message)
    resources = list(by_url.values())
    (specimen,) = _of_type(resources, "Specimen")
    collector = by_url[specimen["collection"]["collector"]["reference"]]
    assert collector["name"] == [{"family": "Collect", "given": ["John"]}]


@pytest.mark.parametrize(
    ("segment", "general_practitioner"),
    [
        ("ROL|1|AD|PP^Primary care^HL70443|D1^Doc^Ann", True),
        ("ROL|1|AD|PP^Primary care|D1^Doc^Ann", True),
        ("ROL|1|AD|PP^Pulmonology^99LOCAL|D1^Doc^Ann", False),
        ("PRT|1|AD||PP^Primary care^HL70443|D1^Doc^Ann", True),
        ("PRT|1|AD||PP^Pulmonology^99LOCAL|D1^Doc^Ann", False),
    ],
)
def test_only_table_0443s_pp_names_the_general_practitioner(
    segment: str, general_practitioner: bool
) -> None:
    # IG ADT_A01 rows 13-14: ROL-3 / PRT-4 of table 0443 (or 0912); a local
    # code spelled PP is another role.
    message = (
        "MSH|^~\\&|A|H|R|R|20240102||ADT^A01|1|P|2.8\rEVN||20240102\r"
        f"PID|1||P1^^^H^MR||Doe^Jo\r{segment}\rPV1|1|I\r"
    )
    bundle = convert(message.encode(), bundle_type="collection")
    (patient,) = _of_type([e["resource"] for e in bundle["entry"]], "Patient")
    assert ("generalPractitioner" in patient) is general_practitioner


_OML = (
    "MSH|^~\\&|EHR|H|LAB|H|20240101120000||{event}|M1|P|2.7\r"
    "PID|1||P1^^^H^MR||Doe^Jo\r"
    "ORC|NW|PL1^EHR\rOBR|1|PL1^EHR||24323-8^CMP^LN\r"
    "PRT|P4|AD||SC^Specimen Collector^HL70443|PHL1^Phleb^One\r"
    "SPM|1|SP1&EHR||BLD^Blood^HL70487\r"
    "ORC|NW|PL2^EHR\rOBR|1|PL2^EHR||57021-8^CBC^LN\r"
    "PRT|P5|AD||SC^Specimen Collector^HL70443|PHL2^Phleb^Two\r"
)


def test_oml_specimen_collector_prt_is_the_collector_of_the_orders_specimen() -> None:
    """IG OML_O21 row 6.4.4: a PRT SC after OBR is the collection.collector of
    that order's Specimen (before, not mapped); an order holding no SPM makes
    no collector nothing would refer to."""
    entries = convert(_OML.format(event="OML^O21^OML_O21").encode(), bundle_type="collection")
    by_url = {e["fullUrl"]: e["resource"] for e in entries["entry"]}
    resources = list(by_url.values())
    (specimen,) = _of_type(resources, "Specimen")
    collector = by_url[specimen["collection"]["collector"]["reference"]]
    assert _role_code(collector) == "SC"
    assert by_url[collector["practitioner"]["reference"]]["identifier"][0]["value"] == "PHL1"
    assert [_role_code(r) for r in _of_type(resources, "PractitionerRole")] == ["SC"]


def test_oml_o33_specimen_collector_prt_is_not_linked_to_the_next_orders_specimen() -> None:
    """In OML_O33 an SPM opens the specimen group of the orders after it, so
    the SPM after an order's PRT SC is not that order's specimen: SP1's
    collector is PL2's PRT SC (PL2 is in SP1's group), never PL1's."""
    message = _OML.format(event="OML^O33^OML_O33").encode()
    entries = convert(message, bundle_type="collection")["entry"]
    by_url = {e["fullUrl"]: e["resource"] for e in entries}
    resources = list(by_url.values())
    (specimen,) = _of_type(resources, "Specimen")
    (role,) = _of_type(resources, "PractitionerRole")
    assert by_url[specimen["collection"]["collector"]["reference"]] is role
    assert by_url[role["practitioner"]["reference"]]["identifier"][0]["value"] == "PHL2"


def test_an_oru_specimen_observation_has_its_specimen_as_focus_and_is_no_result() -> None:
    # IG ORU_R01 row 4.2.7.2.1: SPECIMEN_OBSERVATION's OBX, focus the Specimen.
    message = (
        "MSH|^~\\&|L|H|R|R|20240102||ORU^R01^ORU_R01|1|P|2.7\rPID|1||P1^^^H^MR||Doe^Jo\r"
        "OBR|1||F1|X^Panel^L\rOBX|1|NM|1-1^A^LN||1||||||F\rNTE|1||a note\r"
        "OBX|2|NM|2-2^B^LN||2||||||F\rSPM|1|S1||BLD^Blood^HL70487\r"
        "OBX|1|NM|3-3^Volume^LN||5|mL^mL^UCUM|||||F\r"
    )
    by_url = _by_url(message)
    resources = list(by_url.values())
    (report,) = _of_type(resources, "DiagnosticReport")
    results = [by_url[r["reference"]]["code"]["coding"][0]["code"] for r in report["result"]]
    assert results == ["1-1", "2-2"]
    (volume,) = [o for o in _of_type(resources, "Observation") if "focus" in o]
    assert volume["code"]["coding"][0]["code"] == "3-3"
    assert [by_url[f["reference"]]["resourceType"] for f in volume["focus"]] == ["Specimen"]


def test_a_site_z_segment_between_obr_and_obx_keeps_the_obx_a_result() -> None:
    message = (
        "MSH|^~\\&|L|H|R|R|20240102||ORU^R01^ORU_R01|1|P|2.5\rPID|1||P1^^^H^MR||Doe^Jo\r"
        "OBR|1||F1|X^Panel^L\rZBR|1|site data\rOBX|1|NM|1-1^A^LN||1||||||F\r"
    )
    bundle = convert(message.encode(), bundle_type="collection")
    (report,) = _of_type([e["resource"] for e in bundle["entry"]], "DiagnosticReport")
    assert len(report["result"]) == 1


def test_an_order_sent_without_obr_keeps_its_observations() -> None:
    message = (
        "MSH|^~\\&|L|H|R|R|20240102||ORU^R01^ORU_R01|1|P|2.5\rPID|1||P1^^^H^MR||Doe^Jo\r"
        "ORC|RE|P1\rOBX|1|NM|1-1^A^LN||1||||||F\r"
    )
    bundle = convert(message.encode(), bundle_type="collection")
    assert len(_of_type([e["resource"] for e in bundle["entry"]], "Observation")) == 1


def test_an_oru_specimen_collector_prt_without_specimen_fields_collects_the_obr_specimen() -> None:
    """IG ORU_R01 row 4.2.4: a PRT SC is the collector of the report's
    Specimen[1], the OBR's (row 4.2.2). An order with neither SPM nor OBR
    specimen fields made the collector's PractitionerRole and nothing
    referred to it; now the PRT makes the OBR's Specimen, whose collector
    it is, and the report refers to that Specimen."""
    by_url = _by_url(
        "MSH|^~\\&|L|H|R|R|20240102||ORU^R01^ORU_R01|1|P|2.7\rPID|1||P1^^^H^MR||Doe^Jo\r"
        "OBR|1|PL1^EHR|FI1^LAB|58410-2^CBC^LN|||20240101080000\r"
        "PRT|P5|AD||SC^Specimen Collector^HL70443|PHL3^Phleb^Three\r"
        "OBX|1|NM|718-7^Hgb^LN||14|g/dL|||||F\r"
    )
    resources = list(by_url.values())
    (role,) = _of_type(resources, "PractitionerRole")
    (report,) = _of_type(resources, "DiagnosticReport")
    (specimen,) = [by_url[s["reference"]] for s in report["specimen"]]
    assert by_url[specimen["collection"]["collector"]["reference"]] is role
    assert specimen["collection"]["collectedDateTime"].startswith("2024-01-01T08:00:00")
    # Without a PRT SC (nor specimen fields), still no Specimen.
    plain = _by_url(
        "MSH|^~\\&|L|H|R|R|20240102||ORU^R01^ORU_R01|1|P|2.7\rPID|1||P1^^^H^MR||Doe^Jo\r"
        "OBR|1|PL1^EHR|FI1^LAB|58410-2^CBC^LN|||20240101080000\r"
        "OBX|1|NM|718-7^Hgb^LN||14|g/dL|||||F\r"
    )
    assert _of_type(list(plain.values()), "Specimen") == []
