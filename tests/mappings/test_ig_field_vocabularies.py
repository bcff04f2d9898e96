"""Coded and dated fields against the IG rows that name their vocabulary or condition.

- IAM-5 is CWE[CodeableConcept] (IG IAM row 15), not AL1-5's ST.
- RXR[Immunization]: route RouteOfAdministration, site BodyParts (rows 3, 4),
  as RXR[MedicationRequest].
- SPM-4/6/7/24 and OBR-15 (SPS.1/2/4/6): SpecimenType, Additive/Preservative,
  SpecimenCollectionMethod, BodySite, SpecimenCondition.
- OBX-10: NatureOfAbnormalTesting (OBX row 41); OBX-21 typed FILL (rows 61-62);
  OBX-29 a v2-0936 category, one OBX-33 the specimen (rows 29, 33).
- ROL-3 of the general practitioner: PractitionerRole.code through
  ProviderRole (ROL[Patient-GeneralPractitioner] row 5); a visit role keeps
  its code, its participant type is recoded (ROL[Encounter-PractitionerRole] row 6).
- TQ1-3 and ORC-7.2 go through RepeatPattern (RPT[Timing], RI[Timing] row
  1): a code of v2-0335 keeps that system, a concrete Q6H the IG's GTS code.
- TXA-6 is the date only when it has a time (TXA row 9).
- PR1-5 with PR1-7: a period only when PR1-5 has minutes (PR1 rows 8-12).
"""

from __future__ import annotations

from typing import Any

from tests.mappings.single import observation_of, resource_of
from thumpflow.mapping import convert

_MSH = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000+0000||{}|MSG1|P|2.5.1\r"
_PID = "PID|1||12345^^^HOSP^MR||Doe^John||19800101|M"
_V2 = "http://terminology.hl7.org/CodeSystem/v2-"


def _message(kind: str, *segments: str) -> bytes:
    """MSH, an EVN when the first of `segments` is one, PID, then the rest."""
    evn = [s for s in segments[:1] if s.startswith("EVN")]
    rest = segments[len(evn) :]
    return (_MSH.format(kind) + "".join(s + "\r" for s in [*evn, _PID, *rest])).encode()


def _obx(**fields: str) -> str:
    """OBX-2 onwards of a final NM result, `fields` by number (`f10="A"`)."""
    values = {2: "NM", 3: "2093-3^Cholesterol^LN", 5: "180", 11: "F"}
    values.update({int(k[1:]): v for k, v in fields.items()})
    return "|".join(values.get(n, "") for n in range(2, max(values) + 1))


def _coding(concept: dict[str, Any]) -> dict[str, Any]:
    (coding,) = concept["coding"]
    result: dict[str, Any] = coding
    return result


def test_iam5_reaction_is_a_coded_concept() -> None:
    allergy = resource_of(
        _message(
            "ADT^A60^ADT_A60",
            "EVN||20240101120000",
            "IAM|1|DA^Drug allergy^HL70127|70618^Penicillin^RXNORM"
            "||39579001^Anaphylaxis^SCT|A|ALG1^EHR",
        ),
        "AllergyIntolerance",
    )
    assert allergy["reaction"][0]["manifestation"] == [
        {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "39579001", "display": "Anaphylaxis"}
            ]
        }
    ]


def _immunization(rxr: str) -> dict[str, Any]:
    return resource_of(
        _message(
            "VXU^V04^VXU_V04",
            "ORC|RE|PL1^EHR|FL1^IIS",
            "RXA|0|1|20240101||08^HepB^CVX|0.5|mL^mL^UCUM|||||||||||||CP",
            rxr,
        ),
        "Immunization",
    )


def test_immunization_route_and_site_go_through_the_igs_vocabularies() -> None:
    immunization = _immunization("RXR|SC^Subcutaneous^HL70162|DELT^Deltoid^HL70550")
    assert _coding(immunization["route"]) == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration",
        "code": "SQ",
        "display": "Injection, subcutaneous",
    }
    assert _coding(immunization["site"]) == {
        "system": f"{_V2}0550",
        "code": "DELT",
        "display": "Deltoid",
    }
    # A table 0163 site, which BodyParts does not list, stays as sent.
    left_arm = _immunization("RXR|IM^Intramuscular^HL70162|LA^Left Arm^HL70163")["site"]
    assert _coding(left_arm) == {"system": f"{_V2}0163", "code": "LA", "display": "Left Arm"}


def test_medication_request_site_goes_through_body_parts() -> None:
    order = resource_of(
        _message(
            "RDE^O11^RDE_O11",
            "ORC|NW|PL1^EHR",
            "RXE|1^^^20240101|311671^Metformin^RXNORM|500||mg^mg^UCUM",
            "RXR|PO^Oral^HL70162|ADB^Abdomen",
        ),
        "MedicationRequest",
    )
    site = order["dosageInstruction"][0]["site"]
    assert _coding(site) == {"system": f"{_V2}0550", "code": "ADB", "display": "Abdomen"}


def test_spm_coded_fields_go_through_the_specimen_vocabularies() -> None:
    spm = (
        "SPM|1|SPL1&EHR^SPF1&LAB||BLD^Whole blood||HEPL^Lithium heparin|BIO^Biopsy"
        "||||||||||20240101090000|||||||HEM^Hemolyzed"
    )
    specimen = resource_of(
        _message(
            "ORU^R01^ORU_R01",
            "OBR|1|PL1^EHR|FL1^LAB|600-7^Blood culture^LN|||20240101100000",
            "OBX|1|ST|600-7^Blood culture^LN||No growth||||||F",
            spm,
        ),
        "Specimen",
    )
    assert _coding(specimen["type"]) == {
        "system": f"{_V2}0487",
        "code": "BLD",
        "display": "Whole blood",
    }
    assert _coding(specimen["container"][0]["additiveCodeableConcept"]) == {
        "system": f"{_V2}0371",
        "code": "HEPL",
        "display": "Lithium/Li  Heparin",
    }
    assert _coding(specimen["collection"]["method"]) == {
        "system": "http://snomed.info/sct",
        "code": "129314006",
        "display": "Biopsy - action",
    }
    (condition,) = specimen["condition"]
    assert _coding(condition) == {"system": f"{_V2}0493", "code": "HEM", "display": "Hemolyzed"}


def test_obr15_specimen_source_goes_through_the_specimen_vocabularies() -> None:
    obr = (
        "OBR|1|PL2^EHR|FL2^LAB|600-7^Blood culture^LN|||20240101100000"
        "||||||||BLD&Whole blood^HEPA^^BE^^CLOT||||||||||F"
    )
    specimen = resource_of(
        _message("ORU^R01^ORU_R01", obr, "OBX|1|ST|600-7^Blood culture^LN||No growth||||||F"),
        "Specimen",
    )
    assert _coding(specimen["type"])["system"] == f"{_V2}0487"
    assert _coding(specimen["container"][0]["additiveCodeableConcept"]) == {
        "system": f"{_V2}0371",
        "code": "HEPA",
        "display": "Ammonium heparin",
    }
    assert _coding(specimen["collection"]["bodySite"]) == {
        "system": f"{_V2}0163",
        "code": "BE",
        "display": "Bilateral Ears",
    }
    (condition,) = specimen["condition"]
    assert _coding(condition) == {"system": f"{_V2}0493", "code": "CLOT", "display": "Clotted"}


def test_obx10_goes_through_nature_of_abnormal_testing() -> None:
    observation = observation_of(_obx(f10="A"))
    (extension,) = observation["extension"]
    assert extension["url"] == (
        "http://hl7.org/fhir/StructureDefinition/observation-nature-of-abnormal-test"
    )
    assert _coding(extension["valueCodeableConcept"]) == {
        "system": f"{_V2}0080",
        "code": "A",
        "display": "An age-based population",
    }


def test_obx21_is_a_filler_identifier() -> None:
    observation = observation_of(_obx(f21="OBS1^LAB"))
    (identifier,) = observation["identifier"]
    assert identifier["value"] == "OBS1"
    assert _coding(identifier["type"]) == {
        "system": f"{_V2}0203",
        "code": "FILL",
        "display": "Filler Identifier",
    }


def test_obx29_is_a_category_and_one_obx33_the_specimen() -> None:
    # IG OBX rows 29 (category, table 0936) and 33 "IF OBX-33 COUNT=1"
    # (specimen, by its placer identifier, else its filler's). OBX-30 (the
    # IG's extension "not yet" created) and several OBX-33 are not mapped.
    observation = observation_of(_obx(f29="RSLT", f30="SCI", f33="SP1&EHR^SF1&LAB"))
    assert observation["category"] == [
        {"coding": [{"system": f"{_V2}0936", "code": "RSLT", "display": "Result"}]}
    ]
    specimen = observation["specimen"]
    assert (specimen["type"], specimen["identifier"]["value"]) == ("Specimen", "SP1")
    filler = observation_of(_obx(f33="^SF1&LAB"))["specimen"]
    assert filler["identifier"]["value"] == "SF1"
    # A namespace alone (no EI-1) identifies no specimen: the filler's does.
    namespace = observation_of(_obx(f33="&EHR^SF1&LAB"))["specimen"]
    assert namespace["identifier"]["value"] == "SF1"
    assert "specimen" not in observation_of(_obx(f33="&EHR"))
    several = observation_of(_obx(f33="SP1&EHR~SP2&EHR"))
    assert "specimen" not in several and "extension" not in several
    plain = observation_of(_obx())
    assert "category" not in plain and "specimen" not in plain


def test_an_obx29_code_outside_table_0936_is_not_written_under_its_system() -> None:
    # v2-0936 has QST, RSLT and SCI only (THO, content complete): a site's
    # own observation type is kept as text, never as a v2-0936 code. Before,
    # any OBX-29 value was written as a v2-0936 code.
    local = observation_of(_obx(f29="LABRES"))
    assert local["category"] == [{"text": "LABRES"}]
    question = observation_of(_obx(f29="QST"))
    assert question["category"][0]["coding"][0]["code"] == "QST"


def _adt_with_roles() -> bytes:
    return _message(
        "ADT^A01^ADT_A01",
        "EVN||20240101120000",
        "ROL|R1^EHR|AD|PP^Primary Care Provider^HL70443|999^Jones^Tom",
        "PV1|1|I|||||||||||||||||V1^^^HOSP^VN",
        "ROL|R2^EHR|AD|CP^Consulting Provider^HL70443|888^Stone^Ray",
    )


def test_general_practitioner_rol3_goes_through_provider_role() -> None:
    entries = convert(_adt_with_roles(), bundle_type="collection")["entry"]
    by_url = {e["fullUrl"]: e["resource"] for e in entries}
    (patient,) = [r for r in by_url.values() if r["resourceType"] == "Patient"]
    (gp,) = [by_url[r["reference"]] for r in patient["generalPractitioner"]]
    assert gp["code"] == [
        {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "446050000",
                    "display": "PCP - Primary care physician",
                }
            ]
        }
    ]
    # A visit role: the IG recodes ROL-3 as the participant's type only.
    (encounter,) = [r for r in by_url.values() if r["resourceType"] == "Encounter"]
    (participant,) = encounter["participant"]
    assert _coding(participant["type"][0])["code"] == "CON"
    consultant = by_url[participant["individual"]["reference"]]
    assert _coding(consultant["code"][0]) == {
        "system": f"{_V2}0443",
        "code": "CP",
        "display": "Consulting Provider",
    }


def test_tq1_repeat_pattern_of_table_0335_is_recoded_as_the_ig_says() -> None:
    # IG RepeatPattern: "every 6 hours" is Q6H in v3-GTSAbbreviation (its row
    # without a v2 code); v2-0335 lists only the literal Q<integer>H.
    order = resource_of(
        _message(
            "ORM^O01^ORM_O01",
            "ORC|NW|PL1^EHR",
            "OBR|1|PL1^EHR||2345-7^Glucose^LN",
            "TQ1|1||Q6H&every 6 hours&HL70335|||||||||||4",
        ),
        "ServiceRequest",
    )
    assert _coding(order["occurrenceTiming"]["code"]) == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation",
        "code": "Q6H",
        "display": "Q6H",
    }


def _timing_code(tq1_3: str = "", orc_7: str = "") -> dict[str, Any]:
    """The ServiceRequest's occurrenceTiming.code of an order with TQ1-3
    `tq1_3` (else no TQ1) and ORC-7 `orc_7`."""
    tq1 = [f"TQ1|1||{tq1_3}"] if tq1_3 else []
    order = resource_of(
        _message(
            "ORM^O01^ORM_O01",
            f"ORC|NW|PL1^EHR|||||{orc_7}",
            "OBR|1|PL1^EHR||2345-7^Glucose^LN",
            *tq1,
        ),
        "ServiceRequest",
    )
    code: dict[str, Any] = order["occurrenceTiming"]["code"]
    return code


def test_a_repeat_pattern_goes_through_the_igs_repeat_pattern_vocabulary() -> None:
    # IG RPT[Timing] row 1 (TQ1-3) and RI[Timing] row 1 (ORC-7.2): vocabulary
    # RepeatPattern: the concrete codes its rows without a v2 code give (Q1H
    # .. Q8H, QD for Q1D, WK, MO) and BID to the GTS abbreviation, with or
    # without CWE-3; a concrete code the IG gives none for (Q12H) is in
    # neither system (v2-0335 has the literal Q<integer>H only): kept as
    # sent without a system, as an unlisted code.
    gts = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
    assert _coding(_timing_code("Q6H")) == {"system": gts, "code": "Q6H", "display": "Q6H"}
    assert _coding(_timing_code("q2h")) == {
        "system": gts,
        "code": "Q2H",
        "display": "every 2 hours",
    }
    assert _coding(_timing_code("Q1D")) == {"system": gts, "code": "QD", "display": "QD"}
    assert _coding(_timing_code("Q1W")) == {"system": gts, "code": "WK", "display": "weekly"}
    assert _coding(_timing_code("Q1L")) == {"system": gts, "code": "MO", "display": "monthly"}
    assert _coding(_timing_code("q12h")) == {"code": "q12h"}
    assert _coding(_timing_code("Q12H&every 12 hours&HL70335")) == {
        "code": "Q12H",
        "display": "every 12 hours",
    }
    assert _coding(_timing_code("BID&twice a day&HL70335")) == {
        "system": gts,
        "code": "BID",
        "display": "BID",
    }
    assert _coding(_timing_code("PRN")) == {
        "system": f"{_V2}0335",
        "code": "PRN",
        "display": "given as needed",
    }
    assert _coding(_timing_code("EVERYDAWN")) == {"code": "EVERYDAWN"}
    assert _coding(_timing_code(orc_7="^Q4H")) == {"system": gts, "code": "Q4H", "display": "Q4H"}
    assert _coding(_timing_code(orc_7="^Q3D")) == {"code": "Q3D"}
    assert _coding(_timing_code(orc_7="^QID")) == {"system": gts, "code": "QID", "display": "QID"}


def _document(txa6: str, txa4: str = "") -> dict[str, Any]:
    return resource_of(
        _message(
            "MDM^T02^MDM_T02",
            "EVN|T02|20240101120000",
            "PV1|1|O|||||||||||||||||V1^^^HOSP^VN",
            f"TXA|1|DS^Discharge summary|TX|{txa4}||{txa6}||||||DOC1^EHR|||||AU",
            "OBX|1|TX|DS^Discharge^L||line1||||||F",
        ),
        "DocumentReference",
    )


def test_txa6_is_the_date_only_with_a_time() -> None:
    assert _document("202401011030")["date"] == "2024-01-01T10:30:00Z"
    assert "date" not in _document("20240101")
    # TXA-4 stands in for an absent TXA-6 only, and also needs a time.
    assert "date" not in _document("20240101", txa4="202401020800")
    assert _document("", txa4="202401020800")["date"] == "2024-01-02T08:00:00Z"
    assert "date" not in _document("", txa4="20240102")


def _procedure(pr1_5: str, pr1_7: str) -> dict[str, Any]:
    return resource_of(
        _message(
            "ADT^A01^ADT_A01",
            "EVN||20240101120000",
            "PV1|1|I|||||||||||||||||V1^^^HOSP^VN",
            f"PR1|1||0JH^Insert^I10P||{pr1_5}||{pr1_7}",
        ),
        "Procedure",
    )


def test_pr1_minutes_make_a_period_only_from_a_time_to_the_minute() -> None:
    dated = _procedure("20240101", "30")
    assert dated["performedDateTime"] == "2024-01-01"
    assert "performedPeriod" not in dated
    hourly = _procedure("2024010110", "30")
    assert hourly["performedDateTime"] == "2024-01-01T10:00:00Z"
    assert _procedure("202401011000", "30")["performedPeriod"] == {
        "start": "2024-01-01T10:00:00Z",
        "end": "2024-01-01T10:30:00Z",
    }
    assert _procedure("202401011000", "")["performedDateTime"] == "2024-01-01T10:00:00Z"
