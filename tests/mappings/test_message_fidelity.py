"""Message-level rules that hold whatever the message holds: an MDM document's
text is exactly its TX/ST/FT OBX lines, whatever other OBX come between; every
NTE with a text after a noted segment is one note, NTE-5 its author; an
SIU's NTEs after SCH and AIS are the Appointment's one comment; an AIG is a
participant."""

from __future__ import annotations

import base64
import json
from typing import Any
from xml.etree import ElementTree

from hypothesis import example, given
from hypothesis import strategies as st

from thumpflow import mapping
from thumpflow.fhir import validate
from thumpflow.mapping import to_json

_HEAD = (
    "MSH|^~\\&|DOCS|WESTGEN|THUMPFLOW|HUB|20240701140000+0100||MDM^T02^MDM_T02|D1|P|2.6\r"
    "PID|1||WG-1^^^WESTGEN^MR||Moreau^Elise||19790930|F\r"
    "TXA|1|DS^Discharge summary^LN|TX|20240701133000+0100||||||||DOC-1^WESTGEN||||||AU\r"
)
_WORDS = st.text(alphabet="abcdefghij klmnop", min_size=1, max_size=12).map(str.strip).filter(bool)
_OBX = st.one_of(
    st.tuples(st.sampled_from(["TX", "ST", "FT"]), st.lists(_WORDS, min_size=1, max_size=3)),
    st.tuples(st.sampled_from(["NM", "CWE", "SN"]), st.just(["42"])),
)


def _convert(text: str) -> dict[str, Any]:
    bundle = mapping.convert(text.encode("utf-8"), bundle_type="collection")
    out: dict[str, Any] = json.loads(to_json(bundle))
    assert not [i for i in validate(out) if i.severity == "error"]
    return out


def _resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


@given(st.lists(_OBX, min_size=1, max_size=6))
def test_the_document_text_is_every_text_obx_line_and_nothing_else(
    obx: list[tuple[str, list[str]]],
) -> None:
    segments = "".join(
        f"OBX|{n}|{vtype}|11490-0^Note^LN||{'~'.join(lines)}||||||F\r"
        for n, (vtype, lines) in enumerate(obx, 1)
    )
    (document,) = _resources(_convert(_HEAD + segments), "DocumentReference")
    expected = [line for vtype, lines in obx if vtype in ("TX", "ST", "FT") for line in lines]
    attachment = document["content"][0]["attachment"]
    if expected:
        assert base64.b64decode(attachment["data"]).decode("utf-8") == "\n".join(expected)
    else:
        assert "data" not in attachment


@given(st.lists(st.tuples(_WORDS, st.booleans()), min_size=1, max_size=4))
def test_each_nte_after_an_obx_is_a_note_with_its_author(notes: list[tuple[str, bool]]) -> None:
    ntes = "".join(
        f"NTE|{n}|L|{text}||{'77^Varga^Ilona' if authored else ''}\r"
        for n, (text, authored) in enumerate(notes, 1)
    )
    message = (
        "MSH|^~\\&|LAB|EAST|THUMPFLOW|HUB|20240612083000-0400||ORU^R01^ORU_R01|N1|P|2.6\r"
        "PID|1||ES-1^^^EAST^MR||Okoro^Chidi||19681102|M\r"
        "OBR|1|PL-1^EHR|FL-1^LAB|2951-2^Sodium^LN|||20240612073000-0400\r"
        "OBX|1|NM|2951-2^Sodium^LN||139|mmol/L|||||F\r" + ntes
    )
    bundle = _convert(message)
    (observation,) = _resources(bundle, "Observation")
    (author,) = _resources(bundle, "Practitioner") or [None]
    assert [n["text"] for n in observation["note"]] == [text for text, _ in notes]
    for note, (_, authored) in zip(observation["note"], notes, strict=True):
        if authored:
            assert author is not None
            assert note["authorReference"] == {"reference": f"urn:uuid:{author['id']}"}
        else:
            assert "authorReference" not in note


@given(description=_WORDS, coded=st.booleans())
def test_dg1_description_is_the_condition_text_with_or_without_a_code(
    description: str, coded: bool
) -> None:
    """IG DG1[Condition] row DG1-4: `code.text`, with no condition on DG1-3
    (before, a coded DG1-3 dropped the description)."""
    code = "I21.4^NSTEMI^I10" if coded else ""
    bundle = _convert(
        "MSH|^~\\&|ADT|WESTGEN|THUMPFLOW|HUB|20240701140000+0100||ADT^A08^ADT_A01|D1|P|2.5.1\r"
        "PID|1||WG-1^^^WESTGEN^MR||Moreau^Elise||19790930|F\r"
        f"PV1|1|I|W1^1^1|||||||||||||||V1^^^WESTGEN^VN\rDG1|1||{code}|{description}|||A\r"
    )
    (condition,) = _resources(bundle, "Condition")
    assert condition["code"]["text"] == description
    assert bool(condition["code"].get("coding")) is coded


_PRINTABLE = st.characters(blacklist_categories=("Cc", "Cs"))


def _xml_text(text: str) -> str:
    return text.replace("\ufffe", "").replace("\uffff", "").strip()


@example(description="a\ufffeb <i>&amp;\uffff")
@given(description=st.text(_PRINTABLE, min_size=1, max_size=40).filter(_xml_text))
def test_pv2_12_is_the_encounter_narrative_as_text_never_markup(description: str) -> None:
    """IG PV2-12 → Encounter.text.div: the description, escaped, in one XHTML
    div (status `additional`); whatever it holds, it parses back as that text."""
    field = description.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
    field = field.replace("&", "\\T\\").replace("~", "\\R\\")
    bundle = _convert(
        "MSH|^~\\&|ADT|WESTGEN|THUMPFLOW|HUB|20240701140000+0100||ADT^A01^ADT_A01|D1|P|2.5.1\r"
        "PID|1||WG-1^^^WESTGEN^MR||Moreau^Elise||19790930|F\r"
        f"PV1|1|I|W1^1^1|||||||||||||||V1^^^WESTGEN^VN\rPV2||||||||||||{field}\r"
    )
    (encounter,) = _resources(bundle, "Encounter")
    assert encounter["text"]["status"] == "additional"
    div = ElementTree.fromstring(encounter["text"]["div"])
    assert div.tag == "{http://www.w3.org/1999/xhtml}div"
    assert not list(div)
    assert div.text == _xml_text(description)


def test_each_patient_of_an_oru_has_its_own_results_and_one_without_pid_converts() -> None:
    """IG ORU_R01: PATIENT_RESULT repeats. A second PID's report and results
    name the second Patient (before, the first patient's); a message without
    PID is one result group without a subject."""
    head = "MSH|^~\\&|LIS|LAB|THUMPFLOW|HUB|20250303101500+0100||ORU^R01^ORU_R01|L1|P|2.5.1\r"
    results = "".join(
        f"PID|{n}||P{n}^^^LAB^MR||Name{n}^Given\rOBR|1||F{n}^LAB|C^Chem^L\r"
        f"OBX|1|NM|V^Value^L||{n}|||||F\r"
        for n in (1, 2, 3)
    )
    bundle = _convert(head + results)
    ids = {p["id"]: p["identifier"][0]["value"] for p in _resources(bundle, "Patient")}
    assert sorted(ids.values()) == ["P1", "P2", "P3"]
    for kind in ("DiagnosticReport", "Observation"):
        refs = [r["subject"]["reference"] for r in _resources(bundle, kind)]
        named = [ids[ref.rsplit(":", 1)[-1].rsplit("/", 1)[-1]] for ref in refs]
        assert named == ["P1", "P2", "P3"]
    without = _convert(head + "OBR|1||F9^LAB|C^Chem^L\rOBX|1|NM|V^Value^L||7|||||F\r")
    (report,) = _resources(without, "DiagnosticReport")
    assert "subject" not in report and not _resources(without, "Patient")
    assert len(_resources(without, "Observation")) == 1


def test_an_order_question_answer_is_an_observation_but_not_a_report_result() -> None:
    """IG ORU_R01 row 4.2.4.3.1: OBX-29 QST or SCI is not DiagnosticReport.result."""
    bundle = _convert(
        "MSH|^~\\&|LIS|LAB|THUMPFLOW|HUB|20250303101500+0100||ORU^R01^ORU_R01|L1|P|2.8\r"
        "PID|1||P1^^^LAB^MR||Name^Given\rOBR|1||F1^LAB|C^Chem^L\r"
        "OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|||||F\r"
        "OBX|2|CWE|FAST^Fasting^L||Y^Yes^HL70136||||||F" + "|" * 18 + "QST\r"
    )
    (report,) = _resources(bundle, "DiagnosticReport")
    observations = {
        o["id"]: o["code"]["coding"][0]["code"] for o in _resources(bundle, "Observation")
    }
    results = [observations[r["reference"].rsplit(":", 1)[-1]] for r in report["result"]]
    assert results == ["2345-7"]
    assert sorted(observations.values()) == ["2345-7", "FAST"]


def test_each_patient_of_an_siu_keeps_its_own_diagnoses_and_joins_the_appointment() -> None:
    """IG SIU_S12: the PATIENT group repeats. Before, the second PID made no
    Patient and its diagnosis and observation named the first patient."""
    bundle = _convert(
        "MSH|^~\\&|SCHED|HOSP|EHR|HOSP|20240301120000-0500||SIU^S12^SIU_S12|S10|P|2.5.1\r"
        "SCH|A1^SCHED|F1^SCHED|||||C^Consult||30|min|^^30^20240310090000^20240310093000\r"
        "PID|1||M1^^^HOSP^MR||Alpha^Ann||19800101|F\rDG1|1||R51^Headache^I10\r"
        "PID|2||M2^^^HOSP^MR||Beta^Ben||19700202|M\rDG1|1||R10.9^Abdominal pain^I10\r"
        "OBX|1|NM|8302-2^Height^LN||182|cm|||||F\r"
    )
    names = {f"urn:uuid:{p['id']}": p["name"][0]["family"] for p in _resources(bundle, "Patient")}
    assert sorted(names.values()) == ["Alpha", "Beta"]
    diagnoses = {
        c["code"]["coding"][0]["code"]: names[c["subject"]["reference"]]
        for c in _resources(bundle, "Condition")
    }
    assert diagnoses == {"R51": "Alpha", "R10.9": "Beta"}
    (height,) = _resources(bundle, "Observation")
    assert names[height["subject"]["reference"]] == "Beta"
    (appointment,) = _resources(bundle, "Appointment")
    actors = [names.get(p["actor"]["reference"]) for p in appointment["participant"]]
    assert actors == ["Alpha", "Beta"]
    assert len(appointment["reasonReference"]) == 2


def test_an_order_whose_orc_names_no_number_is_identified_by_its_obr() -> None:
    """IG ORM_O01/OML_O21/MDM: one ServiceRequest per order, by its placer
    or filler number. With ORC-2/ORC-3 empty the OBR's number identifies it;
    before, every such order of a patient got the same id, and a later
    cancel of one overwrote another."""
    head = "MSH|^~\\&|EHR|HOSP|LIS|LAB|20240301120000||ORM^O01^ORM_O01|M1|P|2.5.1\r"
    patient = "PID|1||M1^^^HOSP^MR||Alpha^Ann\r"
    both = _convert(
        head + patient + "ORC|NW||||IP\rOBR|1|PLAC1^EHR||C1^Chem^L\r"
        "ORC|NW||||IP\rOBR|2|PLAC2^EHR||C2^Hem^L\r"
    )
    orders = {r["identifier"][0]["value"]: r for r in _resources(both, "ServiceRequest")}
    assert sorted(orders) == ["PLAC1", "PLAC2"]
    assert orders["PLAC1"]["id"] != orders["PLAC2"]["id"]
    cancel = _convert(head + patient + "ORC|CA||||CA\rOBR|1|PLAC2^EHR||C2^Hem^L\r")
    (cancelled,) = _resources(cancel, "ServiceRequest")
    assert cancelled["id"] == orders["PLAC2"]["id"]
    assert cancelled["status"] == "revoked"


def test_a_rol_after_a_procedure_or_insurance_is_not_a_visit_participant() -> None:
    """IG ADT_A01: ROL after PV1 is an Encounter participant (row 19); ROL in
    the PROCEDURE or INSURANCE group has no target (rows 27.2, 29.4)."""
    bundle = _convert(
        "MSH|^~\\&|ADT|HOSP|THUMPFLOW|HUB|20240701140000+0100||ADT^A01^ADT_A01|D1|P|2.5.1\r"
        "PID|1||WG-1^^^HOSP^MR||Moreau^Elise||19790930|F\r"
        "PV1|1|I|W1^1^1|||||||||||||||V1^^^HOSP^VN\r"
        "ROL|1|AD|AT^Attending^HL70443|111^Visit^Vera\r"
        "PR1|1||47.0^Appendectomy^I9||20240701\rROL|2|AD|SURG^Surgeon^HL70443|222^Cut^Carl\r"
        "IN1|1|PLAN^Plan|INS1^^^HOSP\rROL|3|AD|IC^Contact^HL70443|333^Ins^Ida\r"
    )
    (encounter,) = _resources(bundle, "Encounter")
    roles = {f"urn:uuid:{r['id']}": r for r in _resources(bundle, "PractitionerRole")}
    participants = [
        roles[p["individual"]["reference"]]
        for p in encounter["participant"]
        if p["individual"]["reference"] in roles
    ]
    assert [r["code"][0]["coding"][0]["code"] for r in participants] == ["AT"]


def test_a_note_after_an_observations_participants_is_the_observations() -> None:
    """IG ORU_R01 OBSERVATION: OBX, {PRT}, {NTE}. The note after the PRT was
    dropped; it is the Observation's, and the PRT still its performer."""
    bundle = _convert(
        "MSH|^~\\&|LIS|LAB|THUMPFLOW|HUB|20250303101500+0100||ORU^R01^ORU_R01|L1|P|2.8\r"
        "PID|1||P1^^^LAB^MR||Name^Given\rOBR|1||F1^LAB|C^Chem^L\r"
        "OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^^UCUM|||||F\r"
        "PRT|1|AD||RO^Responsible Observer^HL70443|4455^Reed^Rita\r"
        "NTE|1||Hemolysed sample, interpret with care\r"
    )
    (observation,) = _resources(bundle, "Observation")
    assert [n["text"] for n in observation["note"]] == ["Hemolysed sample, interpret with care"]
    assert observation["performer"]


def test_an_oml_o21_order_refers_to_its_own_specimens_only() -> None:
    """IG OML_O21 row 6.4.8.1: an order's specimens are the SPMs inside it.
    Before, every order referred to every specimen of the message. In OML
    O33, where specimens come before their orders, an order refers to its
    SPECIMEN group's (see test_message_groups); each specimen is one
    resource either way."""
    head = "MSH|^~\\&|EHR|HOSP|LAB|HOSP|20240301120000-0500||OML^{}|S4|P|2.5.1\r"
    patient = "PID|1||M1^^^HOSP^MR||Alpha^Ann\r"
    o21 = _convert(
        head.format("O21^OML_O21")
        + patient
        + "ORC|NW|PLAC1^EHR\rOBR|1|PLAC1^EHR||CBC^Blood count^L\r"
        "SPM|1|SPEC1&EHR||BLD^Blood^HL70487\rORC|NW|PLAC2^EHR\rOBR|1|PLAC2^EHR||UA^Urinalysis^L\r"
        "SPM|1|SPEC2&EHR||UR^Urine^HL70487\r"
    )
    kinds = {
        f"urn:uuid:{s['id']}": s["type"]["coding"][0]["code"] for s in _resources(o21, "Specimen")
    }
    assert sorted(kinds.values()) == ["BLD", "UR"]
    refs = {
        r["identifier"][0]["value"]: [kinds[x["reference"]] for x in r["specimen"]]
        for r in _resources(o21, "ServiceRequest")
    }
    assert refs == {"PLAC1": ["BLD"], "PLAC2": ["UR"]}
    o33 = _convert(
        head.format("O33^OML_O33") + patient + "SPM|1|SPEC1&EHR||BLD^Blood^HL70487\r"
        "ORC|NW|PLAC1^EHR\rOBR|1|PLAC1^EHR||CBC^Blood count^L\r"
    )
    (order,) = _resources(o33, "ServiceRequest")
    assert len(order["specimen"]) == 1 and len(_resources(o33, "Specimen")) == 1


_VXU = (
    "MSH|^~\\&|EHR|CLINIC|IIS|STATE|20240301120000-0500||VXU^V04^VXU_V04|{id}|P|2.8.2\r"
    "PID|1||MRN300^^^CLINIC^MR||Gamma^Gus||20200101|M\r"
)


def _dose(orc: str, when: str = "20240301100000", lot: str = "LOT1") -> str:
    return f"ORC|RE|{orc}||CM\rRXA|0|1|{when}||08^HepB^CVX|0.5|mL^mL^UCUM||||||||{lot}\r"


def _immunizations(text: str, bundle_type: str = "collection") -> list[dict[str, Any]]:
    bundle = mapping.convert(text.encode("utf-8"), bundle_type=bundle_type)  # type: ignore[arg-type]
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Immunization"]


def test_an_immunization_is_identified_by_its_orders_filler_else_placer_number() -> None:
    """IG VXU_V04 row 12.1, ORC[Immunization]: ORC-3 (filler), else ORC-2
    (placer) identifies the Immunization; the vaccine and date only when
    neither is sent. Before, two doses of one vaccine at one time were #1
    and #2, so a later message about the second overwrote the first, and a
    corrected RXA-3 made a new Immunization."""
    both = _immunizations(
        _VXU.format(id="V1")
        + _dose("PLACV1^EHR|FILLV1^CLINIC")
        + _dose("PLACV2^EHR|FILLV2^CLINIC", lot="LOT2")
    )
    ids = {e["resource"]["lotNumber"]: e["resource"]["id"] for e in both}
    assert len(set(ids.values())) == 2
    # The second dose alone, then with its date corrected: the same resource.
    for when in ("20240301100000", "20240302100000"):
        (later,) = _immunizations(
            _VXU.format(id="V2") + _dose("PLACV2^EHR|FILLV2^CLINIC", when, "LOT2")
        )
        assert later["resource"]["id"] == ids["LOT2"]
    # A transaction updates it by the filler number, else the placer number.
    (by_filler,) = _immunizations(
        _VXU.format(id="V3") + _dose("PLACV2^EHR|FILLV2^CLINIC"), "transaction"
    )
    assert by_filler["request"]["url"].endswith("/naming-system/CLINIC|FILLV2")
    (by_placer,) = _immunizations(_VXU.format(id="V4") + _dose("PLACV2^EHR|"), "transaction")
    assert by_placer["request"]["url"].endswith("/naming-system/EHR|PLACV2")
    # Without a system, the number gives the id (a PUT by id, never a search).
    (bare,) = _immunizations(_VXU.format(id="V5") + _dose("|FILLV2"), "transaction")
    assert bare["request"]["url"] == f"Immunization/{bare['resource']['id']}"
    # Neither number: the patient, vaccine and date identify the dose.
    unnumbered = [
        _immunizations(_VXU.format(id=f"V{n}") + _dose("|", when))[0]["resource"]["id"]
        for n, when in ((6, "20240301100000"), (7, "20240301100000"), (8, "20240302100000"))
    ]
    assert unnumbered[0] == unnumbered[1] != unnumbered[2]
    assert not set(unnumbered) & set(ids.values())


def test_a_prt_ordering_provider_replaces_orc_12_as_the_immunizations_orderer() -> None:
    """IG VXU_V04 row 12.2: the PRT with role OP is the performer with
    function OP; ORC-12 names the same provider, so it is the orderer only
    when no such PRT is sent (as in ORM/OML). Before, both were performers."""
    orc = "ORC|RE|PLACV1^EHR|FILLV1^CLINIC||CM||||20240301|||ORDV^Orderer^Ora\r"
    prt = "PRT|1|UC||OP^Ordering Provider^HL70443|ORDV^Orderer^Ora\r"
    rxa = "RXA|0|1|20240301100000||08^HepB^CVX|0.5|mL^mL^UCUM|||ADM^Giver^Gil\r"
    for segments, orderer in ((orc + prt + rxa, "PractitionerRole"), (orc + rxa, "Practitioner")):
        bundle = _convert(_VXU.format(id="V9") + segments)
        by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
        (immunization,) = _resources(bundle, "Immunization")
        functions = [
            (p["function"]["coding"][0]["code"], by_url[p["actor"]["reference"]]["resourceType"])
            for p in immunization["performer"]
        ]
        assert functions == [("AP", "Practitioner"), ("OP", orderer)]


def test_siu_notes_after_sch_and_ais_are_the_appointments_one_comment() -> None:
    message = (
        "MSH|^~\\&|S|H|R|R|20240102||SIU^S12|1|P|2.5\rSCH|A1|A1\r"
        "NTE|1||First line~second\rNTE|2||Third\rPID|1||P1^^^H^MR||Doe^Jo\rRGS|1\r"
        "AIS|1||X^Exam^L\rNTE|1||Bring films\rAIP|1||D1^Doc\rNTE|1||Personnel note\r"
    )
    (appointment,) = _resources(_convert(message), "Appointment")
    # IG SIU_S12 rows 3 and 5.2.2; an AIP's NTE (row 5.5.2) has no target.
    assert appointment["comment"] == "First line\nsecond\nThird\nBring films"


def test_an_siu_general_resource_is_a_participant_at_the_igs_location() -> None:
    message = (
        "MSH|^~\\&|S|H|R|R|20240102+0100||SIU^S12|1|P|2.5\rSCH|A1|A1\r"
        "PID|1||P1^^^H^MR||Doe^Jo\rRGS|1\r"
        "AIG|1||MRI-2^MRI scanner 2^L|EQ^Equipment^L||||20240105090000|||30|min\r"
    )
    bundle = _convert(message)
    (appointment,) = _resources(bundle, "Appointment")
    (location,) = _resources(bundle, "Location")
    (general,) = [p for p in appointment["participant"] if "type" in p]
    # IG AIG[Appointment]: actor AIG-3 (a Location by identifier), type AIG-4,
    # period AIG-8 plus AIG-11 in AIG-12 units.
    assert location["identifier"] == [{"value": "MRI-2"}]
    assert location["name"] == "MRI scanner 2"
    assert general["type"] == [{"coding": [{"code": "EQ", "display": "Equipment"}]}]
    assert general["period"] == {
        "start": "2024-01-05T09:00:00+01:00",
        "end": "2024-01-05T09:30:00+01:00",
    }
    assert general["status"] == "accepted"


def test_the_cdc_filler_number_9999_identifies_no_immunization() -> None:
    """CDC immunization guide: `9999` is the filler number of a record that
    has none (historical doses, refusals). Two such doses are two
    Immunizations, each updated by patient, vaccine and date, never a
    search by 9999, which would match every such dose of every patient."""
    historical = (
        "ORC|RE||9999^CDC\rRXA|0|1|20190101||08^HepB^CVX|999\r"
        "ORC|RE||9999^CDC\rRXA|0|1|20200101||03^MMR^CVX|999\r"
    )
    doses = _immunizations(_VXU.format(id="V6") + historical, "transaction")
    assert len(doses) == 2
    for dose in doses:
        assert "identifier" not in dose["resource"]
        assert dose["request"]["url"] == f"Immunization/{dose['resource']['id']}"
