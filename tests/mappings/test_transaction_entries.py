"""A transaction Bundle a FHIR server can apply whatever the message repeats.

FHIR R4 fails a transaction that touches one resource twice, and a
conditional update whose search matches several resources. So: no two
entries share a request url (a create's: its `ifNoneExist`), and a
conditional url always names the identifier's system (a bare value matches
that value in every system and could update another patient's record); the
same business identifier twice in one message is one resource.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.mappings.single import resource_of
from thumpflow.cli.mapping_test import find_cases
from thumpflow.mapping import ConversionError, convert

CASES = find_cases(Path(__file__).parent)
INPUTS = [
    [s for s in (c / "input.hl7").read_bytes().decode("utf-8").replace("\n", "\r").split("\r") if s]
    for c in CASES
]


def _check(raw: bytes) -> None:
    try:
        bundle = convert(raw, bundle_type="transaction", received=0.0)
    except ConversionError:
        return
    # A create-if-absent (POST with ifNoneExist) is keyed by its search.
    urls = [
        f"{e['request']['url']}?{e['request']['ifNoneExist']}"
        if e["request"]["method"] == "POST"
        else e["request"]["url"]
        for e in bundle["entry"]
    ]
    assert len(urls) == len(set(urls)), sorted(u for u in urls if urls.count(u) > 1)
    for url in urls:
        if "?identifier=" in url:
            assert "|" in url.split("?identifier=", 1)[1], url


@pytest.mark.parametrize("case", range(len(INPUTS)), ids=[c.name for c in CASES])
def test_every_segment_sent_twice_still_makes_an_applicable_transaction(case: int) -> None:
    segments = INPUTS[case]
    doubled = [segments[0]] + [s for seg in segments[1:] for s in (seg, seg)]
    _check("\r".join(segments).encode())
    _check("\r".join(doubled).encode())


@given(
    case=st.integers(0, len(INPUTS) - 1),
    repeats=st.lists(st.integers(1, 60), max_size=6),
)
def test_repeated_segments_never_touch_one_resource_twice(case: int, repeats: list[int]) -> None:
    segments = list(INPUTS[case])
    for n in repeats:
        i = 1 + n % max(1, len(segments) - 1)
        if i < len(segments):
            segments.insert(i, segments[i])
    _check("\r".join(segments).encode())


def test_a_bare_identifier_is_an_update_by_id_and_one_identifier_one_resource() -> None:
    kin = "|" * 30 + "77^^^H^MR"  # NK1-33, the associated party's identifier
    message = (
        "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\r"
        f"PID|1||12345||Doe^Jo\rNK1|1|Roe^Al|SPO{kin}\rNK1|2|Roe^Albert|SPO{kin}\rPV1|1|I\r"
    ).encode()
    bundle = convert(message, bundle_type="transaction")
    (patient,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert patient["request"]["url"] == "Patient/" + patient["resource"]["id"]
    people = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "RelatedPerson"]
    assert len(people) == 1
    assert people[0]["request"]["url"].startswith("RelatedPerson?identifier=")
    assert resource_of(message, "Patient")["identifier"][0] == {"value": "12345"}
