"""The map language's forms added for the IG audit: component lists and list elements.

`from: [2, 3, 4]` hands components of a data type to a nested data type map;
`element: contact[]` makes a segment map write one new list element per
segment. Both are checked when the maps compile, with the map named.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thumpflow.hl7v2 import unescape
from thumpflow.hl7v2.delimiters import DEFAULT_DELIMITERS
from thumpflow.mapping import MapError, convert
from thumpflow.mapping._compile import Compiler
from thumpflow.mapping._rules import compile_rules
from thumpflow.mapping._support import Ctx
from thumpflow.mapping._vocab import VocabTable


def _compiler(segment: dict[str, Any]) -> Compiler:
    return Compiler({}, {}, {"X[Patient]": {"resourceType": "Patient", **segment}})


def test_a_component_list_outside_a_data_type_map_is_refused() -> None:
    compiler = _compiler({"entries": [{"from": [2, 3], "to": "a"}]})
    with pytest.raises(MapError, match=r"X\[Patient\].*component numbers"):
        compiler.segment("X[Patient]", "test")


@pytest.mark.parametrize("element", ["contact", "contact[0]", "contact[].name[]"])
def test_an_element_that_is_not_one_list_is_refused(element: str) -> None:
    compiler = _compiler({"element": element, "entries": [{"from": 2, "to": "a"}]})
    with pytest.raises(MapError, match=r"X\[Patient\].*one list"):
        compiler.segment("X[Patient]", "test")


def test_each_segment_writes_its_own_element_and_an_empty_one_none() -> None:
    """NK1[Patient] (`element: contact[]`): one Patient.contact per NK1 that
    names someone; an NK1 with a relationship only adds none (FHIR pat-1)."""
    message = (
        b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\r"
        b"PID|1||P1^^^H^MR||Doe^Jo\rNK1|1|Doe^Al|SPO\rNK1|2||CHD\rNK1|3|Roe^Bo\rPV1|1|O\r"
    )
    entries = convert(message, bundle_type="collection")["entry"]
    (patient,) = [e["resource"] for e in entries if e["resource"]["resourceType"] == "Patient"]
    contacts = patient["contact"]
    assert [c["name"]["family"] for c in contacts] == ["Doe", "Roe"]
    assert "relationship" in contacts[0]
    assert "relationship" not in contacts[1]


def test_a_ref_map_fills_the_referring_element_from_the_target_segment() -> None:
    """DG1[Encounter] on the Encounter.diagnosis ref: each diagnosis element
    gets its own DG1's use and rank; the Bundle is identified by MSH-10."""
    message = (
        b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|CTRL-7|P|2.5\r"
        b"PID|1||P1^^^H^MR||Doe^Jo\rPV1|1|I|||||||||||||||||V1^^^H^VN\r"
        b"DG1|1||I10^Hypertension^I10|||A|||||||||2\r"
        b"DG1|2||E11.9^Diabetes^I10|||W|||||||||1\r"
    )
    bundle = convert(message, bundle_type="collection")
    assert bundle["identifier"] == {"value": "CTRL-7"}
    (encounter,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"
    ]
    uses = [(d.get("use"), d.get("rank")) for d in encounter["diagnosis"]]
    admission = {"system": "http://terminology.hl7.org/CodeSystem/diagnosis-role", "code": "AD"}
    assert uses[0][1] == 2 and uses[0][0]["coding"][0] | admission == uses[0][0]["coding"][0]
    # W (working) is in no IG map: the sender's coding, without table 0052's system.
    assert uses[1] == ({"coding": [{"code": "W"}]}, 1)


def test_a_per_repetition_segment_entry_outside_a_segment_map_is_refused() -> None:
    compiler = Compiler(
        {},
        {"D[X]": {"entries": [{"from": 1, "segment": "X[Patient]", "to": "a[]"}]}},
        {
            "X[Patient]": {
                "resourceType": "Patient",
                "entries": [{"from": 2, "to": "b", "type": "D[X]"}],
            }
        },
    )
    with pytest.raises(MapError, match="reads one field"):
        compiler.segment("X[Patient]", "test")


def test_a_resource_map_entry_outside_a_segment_map_is_refused() -> None:
    compiler = Compiler(
        {},
        {"D[X]": {"entries": [{"resource_map": "Y[Organization]", "to": "a"}]}},
        {
            "X[Patient]": {
                "resourceType": "Patient",
                "entries": [{"from": 2, "to": "b", "type": "D[X]"}],
            },
            "Y[Organization]": {"resourceType": "Organization", "entries": []},
        },
    )
    with pytest.raises(MapError, match="`resource_map` belongs to segment maps"):
        compiler.segment("X[Patient]", "test")


@pytest.mark.parametrize(
    "identity", [{"gather": ["address"]}, {"conditional": "identifier", "gather": "address"}]
)
def test_a_resource_map_gathers_named_elements_beside_conditional_only(
    identity: dict[str, Any],
) -> None:
    compiler = Compiler(
        {},
        {},
        {
            "X[Patient]": {
                "resourceType": "Patient",
                "entries": [{"resource_map": "Y[Organization]", "to": "managingOrganization"}],
            },
            "Y[Organization]": {
                "resourceType": "Organization",
                "identity": identity,
                "entries": [{"from": 2, "to": "name"}],
            },
        },
    )
    with pytest.raises(MapError, match="`gather` lists elements"):
        compiler.segment("X[Patient]", "test")


def test_repeated_coded_values_are_components_and_text_lines_one_string() -> None:
    """IG OBX[Observation-Component]: one component per OBX-5 repetition, with
    OBX-3 as its code, and no value of the Observation itself."""
    message = (
        b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01^ORU_R01|1|P|2.5\rPID|1||P1^^^H^MR\r"
        b"OBR|1|P1|F1|600-7^Bacteria^LN|||20240101\r"
        b"OBX|1|CWE|600-7^Bacteria^LN|1|A^Alpha^L~B^Beta^L||||||F\r"
        b"OBX|2|TX|18842-5^Note^LN|1|one~two||||||F\r"
    )
    entries = convert(message, bundle_type="collection")["entry"]
    coded, text = [e["resource"] for e in entries if e["resource"]["resourceType"] == "Observation"]
    assert "valueCodeableConcept" not in coded
    assert [c["valueCodeableConcept"]["coding"][0]["code"] for c in coded["component"]] == [
        "A",
        "B",
    ]
    assert all(c["code"] == coded["code"] for c in coded["component"])
    assert text["valueString"] == "one\ntwo"
    assert "component" not in text


def test_name_and_address_validity_ranges_are_periods() -> None:
    """IG XPN-10 and XAD-12 (DR): the name's and address's period when
    XPN-12/13 and XAD-13/14 give none."""
    message = (
        b"MSH|^~\\&|A|B|C|D|20240101||ADT^A08^ADT_A01|1|P|2.5\r"
        b"PID|1||P1^^^H^MR||Doe^Jo^^^^^L^^^20200101&20231231||||||1 Main St^^Town^^^^H"
        b"^^^^^20190101&20221231\rPV1|1|O\r"
    )
    entries = convert(message, bundle_type="collection")["entry"]
    (patient,) = [e["resource"] for e in entries if e["resource"]["resourceType"] == "Patient"]
    assert patient["name"][0]["period"] == {"start": "2020-01-01", "end": "2023-12-31"}
    assert patient["address"][0]["period"] == {"start": "2019-01-01", "end": "2022-12-31"}


def test_set_and_unset_take_an_element_of_a_list_but_not_a_new_one() -> None:
    entries = [
        {"from": 2, "to": "identifier[1].value"},
        {"const": "x", "to": "identifier[1].system", "when": {"set": "identifier[1].value"}},
    ]
    _compiler({"entries": entries}).segment("X[Patient]", "test")
    entries[1]["when"] = {"unset": "identifier[].value"}
    compiler = _compiler({"entries": entries})
    with pytest.raises(MapError, match=r"unset takes an element, not `\[\]`"):
        compiler.segment("X[Patient]", "test")


def test_repeats_takes_a_field_number() -> None:
    entry = {"from": 2, "to": "a", "when": {"repeats": "2"}}
    _compiler({"entries": [entry]}).segment("X[Patient]", "test")
    entry["when"] = {"repeats": "2.1"}
    compiler = _compiler({"entries": [entry]})
    with pytest.raises(MapError, match="repeats takes a segment's field number"):
        compiler.segment("X[Patient]", "test")


@pytest.mark.parametrize(
    "entry",
    [{"const": None, "to": "a"}, {"from": 2, "to": "a[]", "with": {"b": None}}],
)
def test_an_entry_writing_nothing_is_refused(entry: dict[str, Any]) -> None:
    """Generated code never writes None, so `set`/`unset` test whether a key is there."""
    compiler = _compiler({"entries": [entry]})
    with pytest.raises(MapError, match="needs a value"):
        compiler.segment("X[Patient]", "test")


_texts = st.text(alphabet=st.sampled_from([*'aZ0 &^~\\"#', "\u00e9"]), max_size=12)


@given(element=_texts, level=st.sampled_from([0, 1]))
def test_a_one_text_data_type_map_inlined_gives_what_calling_it_gives(
    element: str, level: int
) -> None:
    """`{from: 1, to: valueString}` (ST[valueString]) is written inline by its
    callers: for any element text, at field level (its first repetition) and
    at component level, the caller writes what calling the map's own
    function returns."""
    compiler = Compiler(
        {},
        {
            "ST[valueString]": {"entries": [{"from": 1, "to": "valueString"}]},
            "X[ext]": {"entries": [{"from": 2, "to": "extension[]", "type": "ST[valueString]"}]},
        },
        {
            "X[Patient]": {
                "resourceType": "Patient",
                "entries": [{"from": 2, "to": "extension[]", "type": "ST[valueString]"}],
            }
        },
    )
    _, segment = compiler.segment("X[Patient]", "test")
    caller = compiler.names[compiler._datatype("X[ext]", 1, "test")]
    called = compiler.names[compiler._datatype("ST[valueString]", 1 + level, "test")]
    d = DEFAULT_DELIMITERS
    ctx = Ctx(
        d.repetition,
        d.component,
        d.subcomponent,
        d.escape,
        lambda raw: unescape(raw, d, "utf-8"),
        "",
        str,
        dict,
    )
    assert compiler.one_text
    if level == 0:
        out: dict[str, Any] = {}
        segment(["X", "", element], ctx, out)
        first = element.split(d.repetition, maxsplit=1)[0]
        expected = called(first.split(d.component), ctx) if first else None
    else:
        out = caller(["", element], ctx) or {}
        expected = called(element.split(d.subcomponent), ctx) if element else None
    assert out.get("extension") == (None if expected is None else [expected])


@pytest.mark.parametrize("flag", ["distinct", "create"])
@pytest.mark.parametrize("value", [True, "yes"])
def test_distinct_and_create_are_booleans_beside_a_conditional_identity(
    flag: str, value: Any
) -> None:
    compiler = _compiler({"entries": [{"from": 3, "to": "id"}]})
    identity = {flag: value, **({} if value is True else {"conditional": "id"})}
    rule = {"segment": "PID", "map": "X[Patient]", "name": "p", "identity": identity}
    with pytest.raises(MapError, match=f"`{flag}` is true or false, beside `conditional`"):
        compile_rules([rule], compiler, "test")


def test_a_list_among_the_rules_is_a_run_spliced_in_where_it_stands() -> None:
    # The form a YAML alias of a shared run of rules takes (ORU's and OUL's order).
    compiler = _compiler({"entries": [{"from": 3, "to": "id"}]})
    shared = [
        {"segment": "PID", "map": "X[Patient]", "name": "b"},
        {"segment": "PID", "map": "X[Patient]", "name": "c"},
    ]
    first = {"segment": "PID", "map": "X[Patient]", "name": "a"}
    last = {"segment": "PID", "map": "X[Patient]", "name": "d"}
    rules = compile_rules([first, shared, last], compiler, "test")
    assert [r.name for r in rules] == ["a", "b", "c", "d"]
    with pytest.raises(MapError, match="test rule 3: a rule is a mapping"):
        compile_rules([first, [shared[0], "not a rule"]], compiler, "test")


@pytest.mark.parametrize("name", ["pid x", "p;import os", "1pid", ""])
def test_a_rule_name_that_is_not_an_identifier_is_refused(name: str) -> None:
    # The name becomes a local of the generated program: only identifiers reach it.
    compiler = _compiler({"entries": [{"from": 3, "to": "id"}]})
    rule = {"segment": "PID", "map": "X[Patient]", "name": name}
    with pytest.raises(MapError, match="a rule's `name` is an identifier"):
        compile_rules([rule], compiler, "test")


@pytest.mark.parametrize(
    ("export", "outer_rule", "reason"),
    [
        ({"nosuch": "all"}, None, "`export` maps a name"),
        ({"pid": "not an identifier"}, None, "`export` maps a name"),
        ({"pid": "patients"}, "patients", "exported name 'patients' is a rule's name too"),
    ],
)
def test_a_group_export_that_is_not_a_new_name_for_a_group_name_is_refused(
    export: dict[str, str], outer_rule: str | None, reason: str
) -> None:
    compiler = _compiler({"entries": [{"from": 3, "to": "id"}]})
    rules: list[dict[str, Any]] = [
        {
            "group": ["PID"],
            "export": export,
            "rules": [{"segment": "PID", "map": "X[Patient]", "name": "pid"}],
        }
    ]
    if outer_rule:
        rules.append({"segment": "PV1", "map": "X[Patient]", "name": outer_rule})
    with pytest.raises(MapError, match=re.escape(reason)):
        compile_rules(rules, compiler, "test")


@pytest.mark.parametrize(
    ("also", "reason"),
    [
        ("ORC", "`also` is a mapping with `segment` and `map`"),
        ({"map": "X[Patient]"}, "`also` is a mapping with `segment` and `map`"),
        (
            {"segment": "ORC", "map": "Y[Immunization]"},
            "`also` maps to Immunization, the rule to Patient",
        ),
    ],
)
def test_an_also_that_is_not_a_segment_map_of_the_rules_resource_is_refused(
    also: Any, reason: str
) -> None:
    compiler = _compiler({"entries": [{"from": 3, "to": "id"}]})
    compiler.segment_specs["Y[Immunization]"] = {
        "resourceType": "Immunization",
        "entries": [{"from": 3, "to": "id"}],
    }
    rule = {"segment": "PID", "map": "X[Patient]", "also": also}
    with pytest.raises(MapError, match=re.escape(reason)):
        compile_rules([rule], compiler, "test")


@pytest.mark.parametrize(
    "template",
    ["{2:NoSuch Vocab}/{3}", "{2}/{3", "{two}", "a } b {5}", "{5.1}{"],
)
def test_a_brace_that_is_not_a_placeholder_is_refused(template: str) -> None:
    """A mistyped placeholder fails when the maps compile; before, it was
    written into every resource as literal text."""
    compiler = _compiler({"entries": [{"template": template, "to": "a"}]})
    with pytest.raises(MapError, match=r"X\[Patient\].*not a placeholder"):
        compiler.segment("X[Patient]", "test")


def test_a_template_placeholder_maps_through_a_namespaced_vocabulary() -> None:
    """ED[Attachment]: ED-2 through `thumpflow:MimeType[TypeOfData]` and ED-3
    form the MIME type (the vocabulary's name has a colon)."""
    message = (
        b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\r"
        b"PID|1||P1^^^H^MR||Doe^Jo\rOBR|1||F1|11502-2^Report^LN\r"
        b"OBX|1|ED|11502-2^Report^LN||^AP^PDF^Base64^SGVsbG8=||||||F\r"
        b"OBX|2|ED|11502-2^Report^LN||^IMAGE^jpeg^Base64^SGVsbG8=||||||F\r"
        b"OBX|3|ED|11502-2^Report^LN||^XX^y^Base64^SGVsbG8=||||||F\r"
    )
    entries = convert(message, bundle_type="collection")["entry"]
    (report,) = [
        e["resource"] for e in entries if e["resource"]["resourceType"] == "DiagnosticReport"
    ]
    types = [form["contentType"] for form in report["presentedForm"]]
    assert types == ["application/pdf", "image/jpeg", "xx/y"]


def test_a_vocabulary_on_a_data_type_map_without_recode_is_refused() -> None:
    """`{vocab: V, type: T}` needs T to declare `recode` (which coding the
    vocabulary replaces); any other data type map is refused at compile."""
    compiler = Compiler(
        {"V": VocabTable({"A": "a"}, {"A": {"code": "a"}}, None, None)},
        {"D[X]": {"entries": [{"from": 1, "to": "text"}]}},
        {
            "X[Patient]": {
                "resourceType": "Patient",
                "entries": [{"from": 2, "to": "b", "type": "D[X]", "vocab": "V"}],
            }
        },
    )
    with pytest.raises(MapError, match=r"D\[X\] takes no `vocab`"):
        compiler.segment("X[Patient]", "test")


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"comments": "comment.text"}, "`comments` names a top-level string element"),
        ({"comments": 3}, "`comments` names a top-level string element"),
        ({"comments": "comment", "notes": "note[]"}, "`notes` or `comments`, not both"),
        ({"absent": "RXE"}, "`absent` is a list of segment ids"),
        ({"absent": [""]}, "`absent` is a list of segment ids"),
        ({"present": "SPM"}, "`present` is a list of segment ids"),
    ],
)
def test_malformed_comments_absent_and_present_are_refused(
    extra: dict[str, Any], reason: str
) -> None:
    compiler = _compiler({"entries": [{"from": 3, "to": "id"}]})
    rule = {"segment": "PID", "map": "X[Patient]", **extra}
    with pytest.raises(MapError, match=re.escape(reason)):
        compile_rules([rule], compiler, "test")


@pytest.mark.parametrize(
    "rule",
    [
        {"segment": "FT1", "not_converted": ""},
        {"segment": "FT1", "not_converted": 3},
        {"segment": "FT1", "not_converted": "a payment", "map": "X[Patient]"},
        {"segment": "FT1", "not_converted": "a payment", "name": "charge"},
    ],
)
def test_a_not_converted_rule_without_a_reason_or_with_a_map_is_refused(
    rule: dict[str, Any],
) -> None:
    # It builds nothing: a map, a name or refs would read as if it did.
    compiler = _compiler({"entries": [{"from": 3, "to": "id"}]})
    with pytest.raises(MapError, match="a `not_converted` rule has a reason and no map"):
        compile_rules([rule], compiler, "test")
