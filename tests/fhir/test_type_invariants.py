"""The R4 data-type invariants `validate` checks wherever a value of the type occurs:
per-1, qty-3, drt-1, age-1, cnt-3, dis-1, mqty-1, rng-2, rat-1, cpt-2, att-1, txt-2,
tim-1/2/4..10 and ele-1 (an element with only an id). Each has a valid and an invalid
example; the orderings have a property against Python's own datetime order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fhir import examples
from thumpflow.fhir import validate

UCUM = "http://unitsofmeasure.org"


def _found(resource: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(i.path, i.code, i.severity) for i in validate(resource)}


def _encounter(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Encounter", "status": "finished", "class": {"code": "IMP"}, **fields}


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2024-01-02", "2024-01-02", None),
        ("2024-01-02", "2024-01-03", None),
        ("2024-01-03", "2024-01-02", "error"),
        ("2024-01-02T10:00:00+01:00", "2024-01-02T09:30:00Z", None),  # 09:00Z <= 09:30Z
        ("2024-01-02T10:00:00Z", "2024-01-02T10:30:00+01:00", "error"),  # 10:00Z > 09:30Z
        ("2024-01-02T10:00:00.5Z", "2024-01-02T10:00:00.25Z", "error"),
        ("2024", "2023-12-31", "error"),
        ("2024-02", "2024-01-31T23:00:00Z", "error"),
        ("2024-01-02", "2024-01-02T08:00:00Z", "warning"),  # FHIRPath: empty
        ("2024", "2024-06", "warning"),
    ],
)
def test_per_1_start_is_not_after_end(start: str, end: str, expected: str | None) -> None:
    found = _found(_encounter(period={"start": start, "end": end}))
    assert found == (set() if expected is None else {("Encounter.period", "per-1", expected)})


_instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)
_offsets = st.integers(-12 * 4, 14 * 4).map(lambda q: timedelta(minutes=15 * q))


def _written(instant: datetime, offset: timedelta) -> str:
    local = (instant + offset).replace(tzinfo=None)
    sign = "+" if offset >= timedelta(0) else "-"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{local:%Y-%m-%dT%H:%M:%S}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@given(a=_instants, b=_instants, za=_offsets, zb=_offsets)
def test_per_1_orders_instants_across_time_zones(
    a: datetime, b: datetime, za: timedelta, zb: timedelta
) -> None:
    a, b = a.replace(microsecond=0), b.replace(microsecond=0)
    period = {"start": _written(a, za), "end": _written(b, zb)}
    codes = [i.code for i in validate(_encounter(period=period))]
    assert ("per-1" in codes) == (a > b)


@pytest.mark.parametrize(
    ("quantity", "code"),
    [
        ({"value": 1, "unit": "mg", "system": UCUM, "code": "mg"}, None),
        ({"value": 1, "unit": "mg"}, None),
        ({"value": 1, "code": "mg"}, "qty-3"),
        (
            {"value": 1, "_code": {"extension": [{"url": "http://x.org/e", "valueString": "s"}]}},
            "qty-3",
        ),
    ],
)
def test_qty_3_a_unit_code_needs_its_system(quantity: dict[str, Any], code: str | None) -> None:
    observation = examples.observation()
    observation["valueQuantity"] = quantity
    assert {c for _, c, _ in _found(observation)} == ({code} if code else set())


def test_qty_3_applies_to_simple_quantities_and_extension_values() -> None:
    observation = examples.observation()
    del observation["valueQuantity"]
    observation["valueRange"] = {"low": {"value": 1, "code": "mg"}}
    observation["extension"] = [{"url": "http://x.org/e", "valueQuantity": {"code": "mg"}}]
    assert _found(observation) == {
        ("Observation.valueRange.low", "qty-3", "error"),
        ("Observation.extension[0].valueQuantity", "qty-3", "error"),
    }


@pytest.mark.parametrize(
    ("length", "codes"),
    [
        ({"value": 2, "unit": "d", "system": UCUM, "code": "d"}, set()),
        ({"value": 2, "unit": "days"}, set()),
        ({"value": 2, "system": "http://x.org/units", "code": "d"}, {"drt-1"}),
        ({"system": UCUM, "code": "d"}, {"drt-1"}),
        ({"value": 2, "code": "d"}, {"drt-1", "qty-3"}),
    ],
)
def test_drt_1_a_coded_duration_is_ucum_with_a_value(
    length: dict[str, Any], codes: set[str]
) -> None:
    assert {c for _, c, _ in _found(_encounter(length=length))} == codes


def test_age_count_and_distance_rules() -> None:
    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "onsetAge": {"value": 40, "system": UCUM, "code": "a"},
    }
    assert _found(condition) == set()
    condition["onsetAge"] = {"value": -1, "system": UCUM, "code": "a"}
    assert _found(condition) == {("Condition.onsetAge", "age-1", "error")}
    condition["onsetAge"] = {"value": 4}
    assert _found(condition) == {("Condition.onsetAge", "age-1", "error")}
    timing = {
        "resourceType": "Basic",
        "code": {"text": "x"},
        "extension": [
            {"url": "http://x.org/c", "valueCount": {"value": 2, "system": UCUM, "code": "1"}}
        ],
    }
    assert _found(timing) == set()
    timing["extension"][0]["valueCount"] = {"value": 2.5, "system": UCUM, "code": "1"}
    assert {c for _, c, _ in _found(timing)} == {"cnt-3"}
    timing["extension"][0] = {"url": "http://x.org/d", "valueDistance": {"value": 2, "unit": "m"}}
    assert {c for _, c, _ in _found(timing)} == {"dis-1"}


@pytest.mark.parametrize(
    ("low", "high", "codes"),
    [
        ({"value": 1, "unit": "mg"}, {"value": 2, "unit": "mg"}, set()),
        ({"value": 2, "unit": "mg"}, {"value": 2, "unit": "mg"}, set()),
        ({"value": 3, "unit": "mg"}, {"value": 2, "unit": "mg"}, {"rng-2"}),
        ({"value": 3, "unit": "g"}, {"value": 2, "unit": "mg"}, set()),  # not comparable here
        (
            {"value": 3, "system": UCUM, "code": "mg"},
            {"value": 2.5, "system": UCUM, "code": "mg"},
            {"rng-2"},
        ),
    ],
)
def test_rng_2_low_is_not_above_high(
    low: dict[str, Any], high: dict[str, Any], codes: set[str]
) -> None:
    observation = examples.observation()
    del observation["valueQuantity"]
    observation["valueRange"] = {"low": low, "high": high}
    assert {c for _, c, _ in _found(observation)} == codes


@pytest.mark.parametrize(
    ("ratio", "bad"),
    [
        ({"numerator": {"value": 1}, "denominator": {"value": 2}}, False),
        ({"extension": [{"url": "http://x.org/e", "valueString": "s"}]}, False),
        ({"numerator": {"value": 1}}, True),
        ({"denominator": {"value": 1}}, True),
    ],
)
def test_rat_1_numerator_and_denominator_together(ratio: dict[str, Any], bad: bool) -> None:
    observation = examples.observation()
    del observation["valueQuantity"]
    observation["valueRatio"] = ratio
    assert ("rat-1" in {c for _, c, _ in _found(observation)}) == bad


def test_cpt_2_a_contact_value_needs_a_system() -> None:
    patient = examples.patient()
    patient["telecom"] = [{"value": "555-0100", "use": "home"}, {"system": "phone"}]
    assert _found(patient) == {("Patient.telecom[0]", "cpt-2", "error")}
    patient["telecom"][0]["system"] = "phone"
    assert _found(patient) == set()


def test_att_1_attachment_data_needs_a_content_type() -> None:
    report = examples.diagnostic_report()
    report["presentedForm"] = [{"data": examples.BASE64_PDF}]
    assert _found(report) == {("DiagnosticReport.presentedForm[0]", "att-1", "error")}
    report["presentedForm"][0]["contentType"] = "application/pdf"
    assert _found(report) == set()


@pytest.mark.parametrize(
    ("div", "bad"),
    [
        ('<div xmlns="http://www.w3.org/1999/xhtml">Visit</div>', False),
        ('<div xmlns="http://www.w3.org/1999/xhtml"><img src="#a"/></div>', False),
        ('<div xmlns="http://www.w3.org/1999/xhtml">  <p> </p></div>', True),
        ('<div xmlns="http://www.w3.org/1999/xhtml">&#160;</div>', True),
    ],
)
def test_txt_2_narrative_has_non_whitespace_content(div: str, bad: bool) -> None:
    encounter = _encounter(text={"status": "additional", "div": div})
    assert (("Encounter.text.div", "txt-2", "error") in _found(encounter)) == bad


@pytest.mark.parametrize(
    ("repeat", "codes"),
    [
        ({"count": 3, "period": 1, "periodUnit": "d"}, set()),
        ({"duration": 1}, {"tim-1"}),
        ({"period": 1}, {"tim-2"}),
        ({"duration": -1, "durationUnit": "h"}, {"tim-4"}),
        ({"period": -1, "periodUnit": "h"}, {"tim-5"}),
        ({"periodMax": 2}, {"tim-6"}),
        ({"durationMax": 2}, {"tim-7"}),
        ({"countMax": 2}, {"tim-8"}),
        ({"offset": 30}, {"tim-9"}),
        ({"offset": 30, "when": ["CM"]}, {"tim-9"}),
        ({"offset": 30, "when": ["ACM"]}, set()),
        ({"timeOfDay": ["08:00:00"], "when": ["MORN"]}, {"tim-10"}),
        ({"boundsPeriod": {"start": "2024-02-01", "end": "2024-01-01"}}, {"per-1"}),
    ],
)
def test_timing_repeat_rules(repeat: dict[str, Any], codes: set[str]) -> None:
    request = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "occurrenceTiming": {"repeat": repeat},
    }
    assert {c for _, c, _ in _found(request)} == codes


def test_ele_1_an_element_with_only_an_id_is_empty() -> None:
    patient = examples.patient()
    patient["maritalStatus"] = {"id": "m1"}
    assert _found(patient) == {("Patient.maritalStatus", "ele-1", "error")}
    patient["maritalStatus"]["text"] = "Married"
    assert _found(patient) == set()


def test_messages_never_repeat_values() -> None:
    secret = "SECRET-VALUE-4711"
    patient = examples.patient()
    patient["telecom"] = [{"value": secret}]
    patient["contact"] = [{"gender": "female"}]
    issues = validate(patient)
    assert issues and all(secret not in str(issue) for issue in issues)
