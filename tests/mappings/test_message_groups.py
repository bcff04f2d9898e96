"""Segment groups of the order and document structures that the IG maps
apart from their neighbours: an OML specimen's OBX is no order observation
(IG OML_O21 row 6.4.8.2.1), an OML prior result is not converted (rows
6.4.10–6.4.10.5), an MDM document OBX's NTE is the document's content (IG
MDM_T02 row 10.2, NTE[DocumentReference])."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from thumpflow import mapping
from thumpflow.fhir import validate
from thumpflow.mapping import MapError, to_json
from thumpflow.mapping._rules import compile_skips
from thumpflow.mapping._scope import skipped

_OML = "MSH|^~\\&|EHR|HOSP|LAB|HOSP|20240301120000-0500||OML^O21^OML_O21|M1|P|2.8.2\r"
_PATIENT = "PID|1||MRN100^^^HOSP^MR||Alpha^Ann^^^^^L||19800101|F\r"


def _convert(text: str, warnings: list[str] | None = None) -> dict[str, Any]:
    bundle = mapping.convert(text.encode("utf-8"), bundle_type="collection", warnings=warnings)
    out: dict[str, Any] = json.loads(to_json(bundle))
    assert not [i for i in validate(out) if i.severity == "error"]
    return out


def _resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _codes(resources: list[dict[str, Any]]) -> list[str]:
    return [r["code"]["coding"][0]["code"] for r in resources]


def test_an_oml_specimen_observation_is_no_order_observation() -> None:
    bundle = _convert(
        _OML
        + _PATIENT
        + "ORC|NW|PLAC1^EHR\r"
        + "OBR|1|PLAC1^EHR||CBC^Complete blood count^L\r"
        + "OBX|1|NM|FAST^Fasting hours^L||12|h|||||F\r"
        + "SPM|1|SPEC1&EHR||BLD^Blood^HL70487\r"
        + "OBX|2|NM|SPVOL^Specimen volume^L||5|mL|||||F\r"
        + "ORC|NW|PLAC2^EHR\r"
        + "OBR|1|PLAC2^EHR||GLU^Glucose^L\r"
        + "SPM|1|SPEC2&EHR||SER^Serum^HL70487\r"
        + "OBX|1|NM|SPVOL^Specimen volume^L||2|mL|||||F\r"
        + "SAC|||CONT1\r"
        + "OBX|1|NM|CTEMP^Container temperature^L||4|Cel|||||F\r"
    )
    # The question answered for the order stays its supportingInfo; the
    # specimens' and the container's OBX (no IG target) make nothing.
    (observation,) = _resources(bundle, "Observation")
    assert _codes([observation]) == ["FAST"]
    first, second = _resources(bundle, "ServiceRequest")
    assert first["supportingInfo"] == [{"reference": f"urn:uuid:{observation['id']}"}]
    assert "supportingInfo" not in second
    assert len(first["specimen"]) == len(second["specimen"]) == 1


def test_an_mdm_document_obx_note_is_a_content_attachment_of_the_document() -> None:
    bundle = _convert(
        "MSH|^~\\&|DOC|HOSP|EHR|HOSP|20240301120000-0500||MDM^T02^MDM_T02|D1|P|2.8.2\r"
        "EVN|T02|20240301120000\r" + _PATIENT + "PV1|1|I|WARD^201^1^HOSP||||||||||||||||VN100\r"
        "ORC|NW|PLAC1^EHR\r"
        "OBR|1|PLAC1^EHR||RAD^Radiology^L\r"
        "NTE|1||Order note\r"
        "TXA|1|RAD^Radiology report|TX|20240301100000|||20240301110000|||||DOC123^DOC||||||AU\r"
        "OBX|1|TX|RPT^Report^L||Line one||||||F\r"
        "NTE|1||Addendum \\T\\ more~second line\r"
        "NTE|2||\r"
        "OBX|2|TX|RPT^Report^L||Line two||||||F\r"
        "NTE|3||Later note\r"
    )
    (document,) = _resources(bundle, "DocumentReference")
    content = [
        (c["attachment"]["contentType"], base64.b64decode(c["attachment"]["data"]).decode())
        for c in document["content"]
    ]
    plain = "text/plain; charset=utf-8"
    assert content == [
        (plain, "Line one\nLine two"),
        (plain, "Addendum & more\nsecond line"),
        (plain, "Later note"),
    ]
    # The NTE after OBR stays the order's note (IG MDM_T02 row 7.4), no content.
    (order,) = _resources(bundle, "ServiceRequest")
    assert order["note"] == [{"text": "Order note"}]


def test_an_oml_prior_result_is_not_converted_and_says_so() -> None:
    warnings: list[str] = []
    bundle = _convert(
        _OML
        + _PATIENT
        + "ORC|NW|PLAC1^EHR\r"
        + "OBR|1|PLAC1^EHR||GLU^Glucose^L\r"
        + "OBX|1|NM|FAST^Fasting hours^L||12|h|||||F\r"
        # PRIOR_RESULT: its patient, visit, allergy, two prior orders.
        + "PID|1||MRN999^^^HOSP^MR||Prior^Pat||19700101|M\r"
        + "PRT||AD||PP^Primary care provider^HL70443|GP9^Doc^Prior\r"
        + "PV1|1|I|WARD^9^1^HOSP||||||||||||||||VN999\r"
        + "AL1|1|DA|PEN^Penicillin^L\r"
        + "ORC|RE|PRIOR1^EHR|PFILL1^LAB||CM\r"
        + "OBR|1|PRIOR1^EHR|PFILL1^LAB|GLU^Glucose^L|||20230101080000\r"
        + "NTE|1||Prior note\r"
        + "OBX|1|NM|2345-7^Glucose^LN||150|mg/dL|||||F\r"
        + "ORC|RE|PRIOR2^EHR|PFILL2^LAB||CM\r"
        + "OBR|1|PRIOR2^EHR|PFILL2^LAB|HBA1C^HbA1c^L\r"
        + "OBX|1|NM|4548-4^HbA1c^LN||7|%|||||F\r"
        # FT1 follows PRIOR_RESULT in the ORDER: the next ORC is a new order.
        + "FT1|1\r"
        + "ORC|NW|PLAC2^EHR\r"
        + "OBR|1|PLAC2^EHR||CBC^Complete blood count^L\r",
        warnings,
    )
    (patient,) = _resources(bundle, "Patient")
    assert "generalPractitioner" not in patient
    orders = _resources(bundle, "ServiceRequest")
    assert [o["identifier"][0]["value"] for o in orders] == ["PLAC1", "PLAC2"]
    assert all(o["status"] == "active" and "note" not in o for o in orders)
    assert _codes(_resources(bundle, "Observation")) == ["FAST"]
    for rtype in ("Encounter", "AllergyIntolerance", "PractitionerRole", "RelatedPerson"):
        assert not _resources(bundle, rtype), rtype
    assert [(w, getattr(w, "code", None)) for w in warnings] == [
        (
            "OML^O21 (ORM_O01): segment group PRIOR_RESULT not converted"
            " (the IG maps it to nothing)",
            "group_not_converted",
        )
    ]


def test_an_order_message_without_a_prior_result_has_no_such_warning() -> None:
    warnings: list[str] = []
    _convert(
        _OML + _PATIENT + "PV1|1|I|WARD^201^1^HOSP\rORC|NW|PLAC1^EHR\rOBR|1|PLAC1^EHR||G^G^L\r",
        warnings,
    )
    assert warnings == []


def test_a_skipped_group_opens_after_its_after_segment_and_ends_before_an_end() -> None:
    ids = ["MSH", "PID", "ORC", "OBR", "OBX"]
    ids += ["PID", "PV1", "ORC", "OBR", "OBX", "FT1", "ORC", "OBR", "AL1", "OBR"]
    found = skipped(ids, ("PID", "PV1", "AL1"), ("ORC", "OBR"), ("FT1",))
    assert found == [5, 6, 7, 8, 9, 13, 14]
    assert skipped(ids[:5], ("PID",), ("ORC",), ("FT1",)) == []


@pytest.mark.parametrize(
    "spec",
    [
        {"group": "G", "starts": ["PID"], "after": ["ORC"]},
        {"group": "", "starts": ["PID"], "after": ["ORC"], "ends": ["FT1"]},
        {"group": "G", "starts": [], "after": ["ORC"], "ends": ["FT1"]},
        {"group": "G", "starts": "PID", "after": ["ORC"], "ends": ["FT1"]},
        "PRIOR_RESULT",
    ],
)
def test_a_malformed_skip_is_refused(spec: Any) -> None:
    with pytest.raises(MapError, match="a `skip` is a `group` name and lists starts, after, ends"):
        compile_skips([spec], "message X")


def _specimen_of_each_order(bundle: dict[str, Any]) -> dict[str, list[str]]:
    """Each ServiceRequest's placer number → the SPM-2 placer ids of the
    Specimens it refers to."""
    specimens = {
        f"urn:uuid:{s['id']}": s["identifier"][0]["value"] for s in _resources(bundle, "Specimen")
    }
    return {
        order["identifier"][0]["value"]: [specimens[r["reference"]] for r in order["specimen"]]
        for order in _resources(bundle, "ServiceRequest")
    }


@pytest.mark.parametrize("event", ["O33", "O35"])
def test_an_oml_o33_order_refers_to_its_own_specimen_group_only(event: str) -> None:
    # OML_O33: SPECIMEN {SPM, [{OBX}], [{SAC}], {ORDER}}; OML_O35: SPECIMEN
    # {SPM, [{OBX}], {SPECIMEN_CONTAINER {SAC, {ORDER}}}}: an ORDER belongs
    # to the SPM before it, never to the next group's (the next SPM, which
    # the ORC/OBR's group instance held) nor to every specimen.
    container = "SAC|||CONT1\r"
    bundle = _convert(
        _OML.replace("OML^O21^OML_O21", f"OML^{event}^OML_{event}")
        + _PATIENT
        + "SPM|1|SPEC1&EHR||BLD^Blood^HL70487\r"
        + "OBX|1|NM|SPVOL^Specimen volume^L||5|mL|||||F\r"
        + container
        + "ORC|NW|PLAC1^EHR\r"
        + "OBR|1|PLAC1^EHR||CMP^Metabolic panel^L\r"
        + "ORC|NW|PLAC2^EHR\r"
        + "OBR|1|PLAC2^EHR||GLU^Glucose^L\r"
        + "OBX|1|NM|FAST^Fasting hours^L||12|h|||||F\r"
        + "SPM|2|SPEC2&EHR||UR^Urine^HL70487\r"
        + container
        + "ORC|NW|PLAC3^EHR\r"
        + "OBR|1|PLAC3^EHR||UA^Urinalysis^L\r"
    )
    assert _specimen_of_each_order(bundle) == {
        "PLAC1": ["SPEC1"],
        "PLAC2": ["SPEC1"],
        "PLAC3": ["SPEC2"],
    }
    # The order's own OBX stays its supportingInfo; the specimen's makes nothing.
    (observation,) = _resources(bundle, "Observation")
    assert _codes([observation]) == ["FAST"]


def test_an_oml_o33_order_without_a_specimen_group_is_still_an_order() -> None:
    # v2 requires SPECIMEN {SPM ...} around O33's orders; a sender that
    # leaves it out (or puts an order before the first SPM) still orders.
    # Before, such orders were dropped, the only warning naming SPM.
    head = _OML.replace("OML^O21^OML_O21", "OML^O33^OML_O33") + _PATIENT
    order = "ORC|NW|PLAC{n}^EHR\rOBR|1|PLAC{n}^EHR||GLU^Glucose^L\r"
    warnings: list[str] = []
    bundle = _convert(head + order.format(n=1), warnings)
    (alone,) = _resources(bundle, "ServiceRequest")
    assert alone["identifier"][0]["value"] == "PLAC1"
    assert "specimen" not in alone
    assert warnings == ["OML^O33 (OML_O33): required segment SPM is missing"]
    warnings = []
    bundle = _convert(
        head + order.format(n=1) + "SPM|1|SPEC1&EHR||BLD^Blood^HL70487\r" + order.format(n=2),
        warnings,
    )
    first, second = _resources(bundle, "ServiceRequest")
    assert first["identifier"][0]["value"] == "PLAC1"
    assert "specimen" not in first
    (specimen,) = _resources(bundle, "Specimen")
    assert second["specimen"] == [{"reference": f"urn:uuid:{specimen['id']}"}]
    assert warnings == []


@pytest.mark.parametrize("event", ["O33", "O35"])
def test_an_oml_o33_prt_sc_collects_its_specimen_groups_specimen(event: str) -> None:
    # IG OML_O21 row 6.4.4: a PRT SC after OBR is the collector of the
    # order's specimen; in O33/O35 that is its SPECIMEN group's SPM. Before,
    # the PRT was dropped without a warning.
    container = "SAC|||CONT1\r" if event == "O35" else ""
    warnings: list[str] = []
    bundle = _convert(
        _OML.replace("OML^O21^OML_O21", f"OML^{event}^OML_{event}")
        + _PATIENT
        + "SPM|1|SPEC1&EHR||BLD^Blood^HL70487\r"
        + container
        + "ORC|NW|PLAC1^EHR\rOBR|1|PLAC1^EHR||CMP^Metabolic panel^L\r"
        + "PRT||AD||SC^Specimen Collector^HL70912|1234^Smith^John\r"
        + "SPM|2|SPEC2&EHR||UR^Urine^HL70487\r"
        + container
        + "ORC|NW|PLAC2^EHR\rOBR|1|PLAC2^EHR||UA^Urinalysis^L\r",
        warnings,
    )
    assert warnings == []
    roles = {f"urn:uuid:{r['id']}": r for r in _resources(bundle, "PractitionerRole")}
    blood, urine = _resources(bundle, "Specimen")
    collector = roles[blood["collection"]["collector"]["reference"]]
    assert collector["code"][0]["coding"][0]["code"] == "SC"
    assert "collection" not in urine
