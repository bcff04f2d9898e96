"""PID-10 race and PID-22 ethnic group → the US Core race and ethnicity extensions.

Only repetitions coded in CDC Race & Ethnicity codes (CDCREC, or the
field's HL7 table with a CDC code) are mapped, all of a field into one
extension: OMB categories as `ombCategory`, other codes of the field's
kind as `detailed`, and always a `text`. See `thumpflow.mapping._uscore`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thumpflow.fhir import validate
from thumpflow.mapping import MapError, convert, to_json
from thumpflow.mapping._compile import Compiler

CDC = "urn:oid:2.16.840.1.113883.6.238"
RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
OMB_RACE = {
    "1002-5": "American Indian or Alaska Native",
    "2028-9": "Asian",
    "2054-5": "Black or African American",
    "2076-8": "Native Hawaiian or Other Pacific Islander",
    "2106-3": "White",
}
OMB_ETHNICITY = {"2135-2": "Hispanic or Latino", "2186-5": "Not Hispanic or Latino"}
DETAILED_RACE = ["1004-1", "2039-6", "2108-9", "2131-1", "2500-7"]
DETAILED_ETHNICITY = ["2148-5", "2155-0", "2182-4"]


def _patient(pid10: str = "", pid22: str = "") -> dict[str, Any]:
    fields = [""] * 23
    fields[1], fields[3], fields[5] = "1", "P1^^^H^MR", "Doe^Jo"
    fields[10], fields[22] = pid10, pid22
    message = (
        f"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1\rPID|{'|'.join(fields[1:])}\rPV1|1|I\r"
    ).encode()
    bundle = convert(message, bundle_type="collection")
    errors = [i for i in validate(json.loads(to_json(bundle))) if i.severity == "error"]
    assert errors == []
    (patient,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    return patient  # type: ignore[no-any-return]


def _extension(patient: dict[str, Any], url: str) -> dict[str, Any] | None:
    found = [e for e in patient.get("extension", []) if e["url"] == url]
    assert len(found) <= 1
    return found[0] if found else None


def _parts(extension: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (e["url"], e["valueCoding"]["code"] if "valueCoding" in e else e["valueString"])
        for e in extension["extension"]
    ]


def test_every_cdc_coded_repetition_goes_into_one_extension_per_field() -> None:
    patient = _patient(
        "2106-3^White^CDCREC~2108-9^European^CDCREC~W^White^L",
        "2135-2^Hispanic or Latino^CDCREC~2148-5^Mexican^CDCREC",
    )
    race = _extension(patient, RACE)
    ethnicity = _extension(patient, ETHNICITY)
    assert race is not None and ethnicity is not None
    assert _parts(race) == [("ombCategory", "2106-3"), ("detailed", "2108-9"), ("text", "White")]
    assert race["extension"][1]["valueCoding"] == {
        "system": CDC,
        "code": "2108-9",
        "display": "European",
    }
    assert _parts(ethnicity) == [
        ("ombCategory", "2135-2"),
        ("detailed", "2148-5"),
        ("text", "Hispanic or Latino"),
    ]


@pytest.mark.parametrize(
    ("pid10", "text"),
    [
        ("2028-9^^HL70005^^^^^^Asian (self-reported)", "Asian (self-reported)"),
        ("2028-9^^HL70005", "Asian"),
        ("2039-6^^CDCREC", "2039-6"),
        ("2054-5^Black \\T\\ African American^cdcrec", "Black & African American"),
        ("B^Black^L^2054-5^Black or African American^CDCREC", "Black or African American"),
    ],
)
def test_text_is_the_first_coded_repetitions_text_else_a_known_name_else_the_code(
    pid10: str, text: str
) -> None:
    race = _extension(_patient(pid10), RACE)
    assert race is not None
    assert race["extension"][-1] == {"url": "text", "valueString": text}


@pytest.mark.parametrize(
    ("pid10", "pid22"),
    [
        ("W^White^L~^Caucasian", "H^Hispanic^L~N^Not Hispanic^99LOC~U^Unknown^HL70189"),
        ("W^White^HL70189", "H^Hispanic^HL70005"),
        ('""', '""'),
        ("2106-3^White^L", "2135-2^Hispanic^99LOCAL"),
        ("UNK^Unknown^NULLFL", "ASKU^Asked but unknown^NULLFL"),
        ("2135-2^Hispanic or Latino^CDCREC", "2106-3^White^CDCREC"),
        ("2106-3^White^HL70189", "2135-2^Hispanic or Latino^HL70005"),
        ("2106^White^CDCREC", "21352^Hispanic^CDCREC"),
    ],
)
def test_nothing_coded_in_cdc_codes_of_the_fields_kind_gives_no_extension(
    pid10: str, pid22: str
) -> None:
    patient = _patient(pid10, pid22)
    assert "extension" not in patient


def test_table_0189s_own_values_in_pid_22_are_the_omb_ethnicity_categories() -> None:
    patient = _patient("", "N^Not Hispanic^HL70189")
    ethnicity = _extension(patient, ETHNICITY)
    assert ethnicity is not None
    assert _parts(ethnicity) == [("ombCategory", "2186-5"), ("text", "Not Hispanic")]
    patient = _patient("", "U^Unknown^HL70189~H^^hl70189")
    ethnicity = _extension(patient, ETHNICITY)
    assert ethnicity is not None
    assert ethnicity["extension"] == [
        {
            "url": "ombCategory",
            "valueCoding": {"system": CDC, "code": "2135-2", "display": "Hispanic or Latino"},
        },
        {"url": "text", "valueString": "Hispanic or Latino"},
    ]


def test_one_ethnicity_omb_category_as_us_core_allows_and_codes_once() -> None:
    patient = _patient(
        "2106-3^White^CDCREC~2106-3^White^HL70005~2028-9^Asian^CDCREC",
        "2186-5^Not Hispanic or Latino^CDCREC~2135-2^Hispanic or Latino^CDCREC",
    )
    race, ethnicity = _extension(patient, RACE), _extension(patient, ETHNICITY)
    assert race is not None and ethnicity is not None
    assert _parts(race) == [("ombCategory", "2106-3"), ("ombCategory", "2028-9"), ("text", "White")]
    assert _parts(ethnicity) == [("ombCategory", "2186-5"), ("text", "Not Hispanic or Latino")]


# One PID-10 or PID-22 repetition: (kind, code, text, the repetition).
_SYSTEMS = {10: ["CDCREC", "HL70005", "cdcrec"], 22: ["CDCREC", "HL70189"]}
_OTHER_KIND = {10: [*OMB_ETHNICITY, *DETAILED_ETHNICITY], 22: [*OMB_RACE, *DETAILED_RACE]}


@st.composite
def _repetition(draw: st.DrawFn, field: int) -> tuple[str, str, str, str]:
    omb, detailed = (
        (OMB_RACE, DETAILED_RACE) if field == 10 else (OMB_ETHNICITY, DETAILED_ETHNICITY)
    )
    kind = draw(st.sampled_from(["omb", "detailed", "other kind", "local", "text only"]))
    text = draw(st.sampled_from(["", "Some text", "Texte \\T\\ plus"]))
    if kind in ("local", "text only"):
        code = draw(st.sampled_from(["W", "H", "N", "X1", "2106-3"]))
        rep = f"^{text or 'Other'}" if kind == "text only" else f"{code}^{text}^L"
        return kind, code, text, rep
    pool = {"omb": list(omb), "detailed": detailed, "other kind": _OTHER_KIND[field]}[kind]
    code = draw(st.sampled_from(pool))
    system = draw(st.sampled_from(_SYSTEMS[field]))
    if draw(st.booleans()):
        return kind, code, text, f"{code}^{text}^{system}"
    return kind, code, text, f"L1^Local^L^{code}^{text}^{system}"


@settings(max_examples=60)
@given(
    st.sampled_from([10, 22]).flatmap(
        lambda f: st.tuples(st.just(f), st.lists(_repetition(f), max_size=5))
    )
)
def test_omb_codes_are_omb_categories_other_cdc_codes_detailed_and_text_always_present(
    drawn: tuple[int, list[tuple[str, str, str, str]]],
) -> None:
    field, reps = drawn
    value = "~".join(rep for *_, rep in reps)
    patient = _patient(value, "") if field == 10 else _patient("", value)
    extension = _extension(patient, RACE if field == 10 else ETHNICITY)
    coded = [(kind, code, text) for kind, code, text, _ in reps if kind in ("omb", "detailed")]
    if not coded:
        assert extension is None
        assert "extension" not in patient
        return
    assert extension is not None
    omb_max = 5 if field == 10 else 1
    omb = list(dict.fromkeys(code for kind, code, _ in coded if kind == "omb"))[:omb_max]
    detailed = list(dict.fromkeys(code for kind, code, _ in coded if kind == "detailed"))
    assert _parts(extension)[:-1] == [
        *(("ombCategory", c) for c in omb),
        *(("detailed", c) for c in detailed),
    ]
    names = OMB_RACE if field == 10 else OMB_ETHNICITY
    _, first_code, first_text = coded[0]
    expected_text = first_text.replace("\\T\\", "&") or names.get(first_code, first_code)
    assert extension["extension"][-1] == {"url": "text", "valueString": expected_text}
    assert all(e["valueCoding"]["system"] == CDC for e in extension["extension"][:-1])


def _compiler(entry: dict[str, Any], datatype: dict[str, Any] | None = None) -> Compiler:
    datatypes: dict[str, dict[str, Any]] = {"R[x]": {"python": "us_core_race"}}
    if datatype is not None:
        datatypes["D[x]"] = datatype
    return Compiler({}, datatypes, {"X[Patient]": {"resourceType": "Patient", "entries": [entry]}})


@pytest.mark.parametrize(
    ("entry", "datatype"),
    [
        ({"from": 10, "repeat": True, "to": "extension[]", "type": "R[x]"}, None),
        ({"from": "10.1", "to": "extension[]", "type": "R[x]"}, None),
        (
            {"from": 10, "to": "a", "type": "D[x]"},
            {"entries": [{"from": 1, "to": "b", "type": "R[x]"}]},
        ),
    ],
)
def test_a_field_hook_reads_one_whole_field_of_a_segment(
    entry: dict[str, Any], datatype: dict[str, Any] | None
) -> None:
    with pytest.raises(MapError, match="whole field"):
        _compiler(entry, datatype).segment("X[Patient]", "test")


def test_an_unknown_python_hook_is_refused() -> None:
    compiler = _compiler({"from": 3, "to": "a", "type": "L[x]"})
    compiler.datatype_specs["L[x]"] = {"python": "no_such_hook"}
    with pytest.raises(MapError, match="no hook 'no_such_hook'"):
        compiler.segment("X[Patient]", "test")
