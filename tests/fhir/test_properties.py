"""Property tests: generated valid data types pass; broken primitives are reported."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fhir import examples
from thumpflow.fhir import validate

_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x0b\x0c"),
    min_size=1,
    max_size=30,
)
_code = st.from_regex(re.compile(r"[a-z0-9\-]{1,12}( [a-z0-9]{1,5})?"), fullmatch=True)
_uri = st.from_regex(
    re.compile(r"(https?://[a-z]{1,10}\.org/[a-z0-9/]{0,12}|urn:oid:1\.2(\.[1-9][0-9]{0,3}){1,4})"),
    fullmatch=True,
)
_dates = st.dates(min_value=date(1, 1, 1)).map(lambda d: d.isoformat())
_period = st.builds(
    lambda start, days: {
        "start": start.isoformat(),
        "end": (start + timedelta(days=days)).isoformat(),
    },
    st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)),
    st.integers(0, 400),
)


def _optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields).filter(bool)


human_names = _optional(
    use=st.sampled_from(["usual", "official", "temp", "nickname", "anonymous", "old", "maiden"]),
    text=_text,
    family=_text,
    given=st.lists(_text, min_size=1, max_size=3),
    prefix=st.lists(_text, min_size=1, max_size=2),
    period=_period,
)
identifiers = _optional(
    use=st.sampled_from(["usual", "official", "temp", "secondary", "old"]),
    system=_uri,
    value=_text,
    type=st.fixed_dictionaries({"text": _text}),
    period=_period,
)
quantities = _optional(
    value=st.one_of(st.integers(-(10**9), 10**9), st.floats(allow_nan=False, allow_infinity=False)),
    comparator=st.sampled_from(["<", "<=", ">=", ">"]),
    unit=_text,
    system=_uri,
    code=_code,
).filter(lambda q: "code" not in q or "system" in q)  # qty-3: a unit code needs its system


@settings(max_examples=150)
@given(
    names=st.lists(human_names, min_size=1, max_size=3),
    ids=st.lists(identifiers, min_size=1, max_size=3),
)
def test_generated_names_and_identifiers_pass(
    names: list[dict[str, Any]], ids: list[dict[str, Any]]
) -> None:
    patient = {"resourceType": "Patient", "name": names, "identifier": ids}
    assert validate(patient) == []


@settings(max_examples=150)
@given(quantity=quantities, birth=_dates)
def test_generated_quantities_and_dates_pass(quantity: dict[str, Any], birth: str) -> None:
    observation = examples.observation()
    observation["valueQuantity"] = quantity
    patient = examples.patient()
    patient["birthDate"] = birth
    assert validate(observation) == []
    assert validate(patient) == []


_BREAKERS = st.sampled_from(
    [
        lambda v: v + " ",  # trailing space: not a code, id, uri, date
        lambda v: " " + v,
        lambda v: v[:1] + "  " + v[1:],  # no type among these allows two spaces
        lambda v: "",
        lambda v: [v],
        lambda v: {"value": v},
        lambda v: v[:-1] + "\x0b",
    ]
)
# (path into the transaction Bundle's Observation entry, the primitive's type)
_PRIMITIVES = [
    (("status",), "code"),
    (("id",), "id"),
    (("effectiveDateTime",), "dateTime"),
    (("issued",), "instant"),
    (("code", "coding", 0, "system"), "uri"),
    (("code", "coding", 0, "code"), "code"),
    (("valueQuantity", "system"), "uri"),
]


@settings(max_examples=200)
@given(which=st.sampled_from(_PRIMITIVES), breaker=_BREAKERS, entry=st.integers(4, 18))
def test_a_broken_primitive_is_reported_at_its_path(
    which: tuple[tuple[str | int, ...], str], breaker: Any, entry: int
) -> None:
    path, _type = which
    bundle = examples.transaction_bundle()
    target: Any = bundle["entry"][entry]["resource"]
    for step in path[:-1]:
        target = target[step]
    before = target[path[-1]]
    after = breaker(before)
    if after == before:
        return
    target[path[-1]] = after
    where = f"Bundle.entry[{entry}].resource" + "".join(
        f"[{p}]" if isinstance(p, int) else f".{p}" for p in path
    )
    found = {(i.path, i.severity) for i in validate(bundle)}
    assert found == {(where, "error")}
