"""Bundles are read strictly and every entry is made safe to apply twice."""

from __future__ import annotations

import json
from typing import Any

import pytest

from thumpflow.connectors.fhir._bundle import (
    BundleError,
    parse,
    plan,
    rewrite_references,
    write_order,
)

MRN = {"system": "urn:oid:1.2.3", "value": "MRN 7"}


def bundle(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [MRN], **extra}


def test_parse_refuses_what_is_not_a_bundle() -> None:
    for body in (b"MSH|", b"[]", b'{"resourceType":"Patient"}', b'{"resourceType":"Bundle"}'):
        with pytest.raises(BundleError):
            parse(body)
    assert parse(json.dumps(bundle()).encode())["entry"] == []


def test_plain_post_gets_if_none_exist_in_a_transaction() -> None:
    b = bundle({"resource": patient(), "request": {"method": "POST", "url": "Patient"}})
    (entry,) = plan(b, "transaction")
    assert (entry.method, entry.url) == ("POST", "Patient")
    assert entry.if_none_exist == "identifier=urn:oid:1.2.3|MRN%207"
    assert b["entry"][0]["request"]["ifNoneExist"] == entry.if_none_exist


def test_entries_become_conditional_updates_by_identifier() -> None:
    b = bundle(
        {"resource": patient(id="p1"), "request": {"method": "PUT", "url": "Patient/p1"}},
        {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"resource": patient()},
    )
    for entry in plan(b, "conditional_update"):
        assert (entry.method, entry.url) == ("PUT", "Patient?identifier=urn:oid:1.2.3|MRN%207")


def test_own_conditional_url_and_create_if_absent_are_kept() -> None:
    b = bundle(
        {"resource": patient(), "request": {"method": "PUT", "url": "Patient?identifier=a|b"}},
        {
            "resource": patient(),
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=a|b"},
        },
        {"request": {"method": "DELETE", "url": "Patient/x"}},
    )
    put, post, delete = plan(b, "conditional_update")
    assert (put.method, put.url) == ("PUT", "Patient?identifier=a|b")
    assert (post.method, post.url, post.if_none_exist) == ("POST", "Patient", "identifier=a|b")
    assert (delete.method, delete.url) == ("DELETE", "Patient/x")


def test_resource_with_only_an_id_is_put_by_id() -> None:
    b = bundle({"resource": {"resourceType": "Provenance", "id": "prov-1"}})
    (entry,) = plan(b, "batch")
    assert (entry.method, entry.url) == ("PUT", "Provenance/prov-1")


def test_writes_that_could_duplicate_are_refused() -> None:
    anonymous = bundle({"resource": {"resourceType": "Observation"}, "request": {"method": "POST"}})
    with pytest.raises(BundleError, match="could be duplicated"):
        plan(anonymous, "transaction")
    patch = bundle({"resource": patient(), "request": {"method": "PATCH", "url": "Patient/1"}})
    with pytest.raises(BundleError, match="only PUT, POST and DELETE"):
        plan(patch, "batch")


def test_pin_aims_at_the_existing_resource_with_if_match() -> None:
    put = {"method": "PUT", "url": "Patient?identifier=a|b"}
    b = bundle({"resource": patient(), "request": put})
    (entry,) = plan(b, "transaction")
    entry.pin("42", "3")
    assert b["entry"][0]["request"] == {"method": "PUT", "url": "Patient/42", "ifMatch": 'W/"3"'}
    assert b["entry"][0]["resource"]["id"] == "42"


def test_write_order_puts_referenced_entries_first_and_refuses_cycles() -> None:
    obs = {
        "fullUrl": "urn:uuid:o",
        "resource": {
            "resourceType": "Observation",
            "id": "o",
            "subject": {"reference": "urn:uuid:p"},
            "performer": [{"reference": "Organization/org"}],
        },
    }
    pat = {"fullUrl": "urn:uuid:p", "resource": patient()}
    org = {"resource": {"resourceType": "Organization", "id": "org"}}
    entries = plan(bundle(obs, pat, org), "conditional_update")
    assert [e.resource_type for e in write_order(entries)] == [
        "Patient",
        "Organization",
        "Observation",
    ]
    loop = {
        "fullUrl": "urn:uuid:p",
        "resource": patient(link=[{"other": {"reference": "urn:uuid:o"}}]),
    }
    with pytest.raises(BundleError, match="cycle"):
        write_order(plan(bundle(obs, loop), "conditional_update"))


def test_rewrite_references_in_place() -> None:
    resource = {"subject": {"reference": "urn:uuid:p"}, "x": [{"reference": "Patient/keep"}]}
    rewrite_references(resource, {"urn:uuid:p": "Patient/9"})
    assert resource == {"subject": {"reference": "Patient/9"}, "x": [{"reference": "Patient/keep"}]}
