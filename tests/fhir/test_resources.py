"""deterministic_id and reference: stable, valid, and strict about their input."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from thumpflow.fhir import deterministic_id, reference, validate

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://thumpflow.org/ns/fhir-resource-id")


def straightforward_deterministic_id(resource_type: str, *parts: str) -> str:
    """The definition the fast implementation must match for every input."""
    name = json.dumps([resource_type, *parts], ensure_ascii=False, separators=(",", ":"))
    return str(uuid.uuid5(_NAMESPACE, name))


def outcome(function: Callable[..., str], *args: str) -> str | type[Exception]:
    """The id `function` gives for `args`, or the type of the exception it raises."""
    try:
        return function(*args)
    except Exception as exc:
        return type(exc)


def test_deterministic_id_is_stable_across_releases() -> None:
    # Pinned: a change here changes every resource id thumpflow ever wrote.
    assert deterministic_id("Patient", "urn:oid:1.2.3", "MRN123") == (
        "4c468cc2-ec11-565f-a239-5d906f077c31"
    )


@given(parts=st.lists(st.text(max_size=20), min_size=1, max_size=4).filter(any))
def test_deterministic_id_is_a_valid_fhir_id_and_repeatable(parts: list[str]) -> None:
    first = deterministic_id("Observation", *parts)
    assert _ID.fullmatch(first)
    assert deterministic_id("Observation", *parts) == first
    assert (
        validate(
            {"resourceType": "Observation", "id": first, "status": "final", "code": {"text": "x"}}
        )
        == []
    )


@given(
    resource_type=st.sampled_from(["Patient", "Observation", "Encounter", "Bundle"]),
    parts=st.lists(
        st.text(st.characters(exclude_categories=()), max_size=30), min_size=1, max_size=6
    ).filter(any),
)
@example(resource_type="Patient", parts=["urn:oid:1.2.3", "MRN123"])
@example(resource_type="Patient", parts=['"', "\\", "/", "\x00\x1f\x7f", "\u2028\u2029"])
@example(resource_type="Patient", parts=["é", "日本", "\U0001f600", "\ufeff"])
@example(resource_type="Patient", parts=["\ud800"])
def test_deterministic_id_equals_the_straightforward_definition(
    resource_type: str, parts: list[str]
) -> None:
    assert outcome(deterministic_id, resource_type, *parts) == outcome(
        straightforward_deterministic_id, resource_type, *parts
    )


def test_deterministic_id_separates_types_parts_and_order() -> None:
    ids = {
        deterministic_id("Patient", "a|b"),
        deterministic_id("Patient", "a", "b"),
        deterministic_id("Patient", "b", "a"),
        deterministic_id("Encounter", "a", "b"),
        deterministic_id("Patient", "ab"),
    }
    assert len(ids) == 5


def test_deterministic_id_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="resource type"):
        deterministic_id("Patients", "1")
    with pytest.raises(ValueError, match="business identifier"):
        deterministic_id("Patient")
    with pytest.raises(ValueError, match="business identifier"):
        deterministic_id("Patient", "", "")
    with pytest.raises(TypeError):
        deterministic_id("Patient", 123)  # type: ignore[arg-type]


def test_reference_builds_a_valid_literal_reference() -> None:
    pid = deterministic_id("Patient", "MRN1")
    assert reference("Patient", pid) == {"reference": f"Patient/{pid}"}
    assert reference("Practitioner", "dr-1", display="Dr. Who") == {
        "reference": "Practitioner/dr-1",
        "display": "Dr. Who",
    }
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    observation["subject"] = reference("Patient", pid)
    assert validate(observation) == []


def test_reference_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="resource type"):
        reference("Pt", "1")
    with pytest.raises(ValueError, match="FHIR id"):
        reference("Patient", "has space")
    with pytest.raises(ValueError, match="FHIR id"):
        reference("Patient", "x" * 65)
