"""Transaction and batch Bundles: atomicity, ordering, reference resolution, idempotency."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import aiohttp

from tests.ehr.support import MRN, bundle, entry, patient, send, with_ehr
from thumpflow.testing.ehr import SimulatedEhr

VISIT = "http://hospital.example/visit"


def adt_bundle(mrn: str, visit: str, family: str = "Test") -> dict[str, Any]:
    """What a converted ADT^A01 looks like: conditional updates, urn:uuid and conditional refs."""
    return bundle(
        "transaction",
        entry(
            "PUT",
            f"Patient?identifier={MRN}|{mrn}",
            patient(mrn, family),
            full_url="urn:uuid:0c0a4b8e-0000-4000-8000-000000000001",
        ),
        entry(
            "PUT",
            f"Encounter?identifier={VISIT}|{visit}",
            {
                "resourceType": "Encounter",
                "identifier": [{"system": VISIT, "value": visit}],
                "status": "in-progress",
                "class": {"code": "IMP"},
                "subject": {"reference": "urn:uuid:0c0a4b8e-0000-4000-8000-000000000001"},
            },
            full_url="urn:uuid:0c0a4b8e-0000-4000-8000-000000000002",
        ),
        entry(
            "POST",
            "Provenance",
            {
                "resourceType": "Provenance",
                "target": [
                    {"reference": "urn:uuid:0c0a4b8e-0000-4000-8000-000000000002"},
                    {"reference": f"Patient?identifier={MRN}|{mrn}"},
                ],
                "recorded": "2024-01-01T12:00:00Z",
                "agent": [{"who": {"display": "ADT feed"}}],
            },
        ),
    )


def test_transaction_resolves_urn_uuid_and_conditional_references() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        status, response, _ = await send(session, "POST", ehr.base_url, adt_bundle("1", "V1"))
        assert status == 200, response
        assert response["type"] == "transaction-response"
        statuses = [e["response"]["status"] for e in response["entry"]]
        assert statuses == ["201 Created"] * 3
        for e in response["entry"]:
            assert e["response"]["etag"] == 'W/"1"'
            assert e["response"]["location"].startswith(e["resource"]["resourceType"] + "/")
            assert e["response"]["lastModified"] == e["resource"]["meta"]["lastUpdated"]
        (pat,) = ehr.resources("Patient")
        (enc,) = ehr.resources("Encounter")
        (prov,) = ehr.resources("Provenance")
        assert enc["subject"] == {"reference": f"Patient/{pat['id']}"}
        assert prov["target"] == [
            {"reference": f"Encounter/{enc['id']}"},
            {"reference": f"Patient/{pat['id']}"},
        ]
        assert pat["meta"]["lastUpdated"] == enc["meta"]["lastUpdated"]

    with_ehr(body)


def test_the_same_transaction_twice_creates_no_duplicates_and_bumps_versions() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        sent = adt_bundle("2", "V2")
        first_status, _, _ = await send(session, "POST", ehr.base_url, copy.deepcopy(sent))
        status, response, _ = await send(session, "POST", ehr.base_url, copy.deepcopy(sent))
        assert first_status == status == 200
        assert [e["response"]["status"] for e in response["entry"]] == [
            "200 OK",
            "200 OK",
            "201 Created",
        ]
        assert ehr.counts() == {"Encounter": 1, "Patient": 1, "Provenance": 2}
        assert ehr.duplicates() == {}
        (pat,) = ehr.resources("Patient")
        assert pat["meta"]["versionId"] == "2"
        assert [v.version for v in ehr.history("Patient", pat["id"])] == [1, 2]

    with_ehr(body)


def test_a_failing_entry_rolls_back_the_whole_transaction() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        await send(session, "PUT", f"{ehr.base_url}/Patient/keep", patient("9", id="keep"))
        failing = bundle(
            "transaction",
            entry("POST", "Patient", patient("10")),
            entry("PUT", "Patient/keep", patient("9", id="keep", gender="male")),
            entry("DELETE", "Patient/keep2"),
            entry("PUT", "Patient/keep", patient("9", id="keep"), if_match='W/"7"'),
        )
        status, outcome, _ = await send(session, "POST", ehr.base_url, failing)
        assert status == 400
        assert "Bundle.entry[3]" in outcome["issue"][0]["diagnostics"]
        version_conflict = bundle(
            "transaction",
            entry("POST", "Patient", patient("10")),
            entry("PUT", "Patient/keep", patient("9", id="keep"), if_match='W/"7"'),
        )
        status, outcome, _ = await send(session, "POST", ehr.base_url, version_conflict)
        assert status == 412
        assert outcome["resourceType"] == "OperationOutcome"
        assert "Bundle.entry[1]" in outcome["issue"][0]["diagnostics"]
        missing_target = bundle(
            "transaction",
            entry("DELETE", "Patient/keep"),
            entry("POST", "Encounter", {"resourceType": "Encounter", "status": "planned"}),
            entry("GET", "Patient/does-not-exist"),
        )
        status, _, _ = await send(session, "POST", ehr.base_url, missing_target)
        assert status == 404
        assert ehr.counts() == {"Patient": 1}
        assert [v.version for v in ehr.history("Patient", "keep")] == [1]

    with_ehr(body)


def test_transaction_processing_order_and_get_entries() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        await send(session, "PUT", f"{ehr.base_url}/Patient/old", patient("OLD", id="old"))
        ordered = bundle(
            "transaction",
            entry("GET", "Patient?identifier=NEW"),
            entry("PUT", "Patient/new", patient("NEW", id="new")),
            entry("POST", "Patient", patient("OLD"), if_none_exist=f"identifier={MRN}|OLD"),
            entry("DELETE", "Patient/old"),
        )
        status, response, _ = await send(session, "POST", ehr.base_url, ordered)
        assert status == 200, response
        search, put, post, delete = response["entry"]
        assert search["response"]["status"] == "200 OK"
        assert search["resource"]["total"] == 1
        assert put["response"]["status"] == "201 Created"
        assert post["response"]["status"] == "201 Created"
        assert delete["response"]["status"] == "204 No Content"
        assert sorted(p["identifier"][0]["value"] for p in ehr.resources("Patient")) == [
            "NEW",
            "OLD",
        ]

    with_ehr(body)


def test_conditional_create_inside_a_transaction_maps_its_full_url_to_the_match() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        _, existing, _ = await send(session, "POST", f"{ehr.base_url}/Patient", patient("C1"))
        sent = bundle(
            "transaction",
            entry(
                "POST",
                "Patient",
                patient("C1"),
                full_url="urn:uuid:11111111-1111-4111-8111-111111111111",
                if_none_exist=f"identifier={MRN}|C1",
            ),
            entry(
                "POST",
                "Observation",
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
                },
            ),
        )
        status, response, _ = await send(session, "POST", ehr.base_url, sent)
        assert status == 200
        assert response["entry"][0]["response"]["status"] == "200 OK"
        assert (
            response["entry"][0]["response"]["location"] == f"Patient/{existing['id']}/_history/1"
        )
        (obs,) = ehr.resources("Observation")
        assert obs["subject"]["reference"] == f"Patient/{existing['id']}"
        assert len(ehr.resources("Patient")) == 1

    with_ehr(body)


def test_unresolvable_references_fail_the_transaction() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        def observation(reference: str) -> dict[str, Any]:
            return {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": reference},
            }

        dangling = bundle("transaction", entry("POST", "Observation", observation("urn:uuid:nope")))
        status, _, _ = await send(session, "POST", ehr.base_url, dangling)
        assert status == 400
        unmatched = bundle(
            "transaction",
            entry("POST", "Observation", observation(f"Patient?identifier={MRN}|ghost")),
        )
        status, outcome, _ = await send(session, "POST", ehr.base_url, unmatched)
        assert status == 412 and "matches 0" in outcome["issue"][0]["diagnostics"]
        await send(session, "POST", f"{ehr.base_url}/Patient", patient("twin"))
        await send(session, "POST", f"{ehr.base_url}/Patient", patient("twin"))
        ambiguous = bundle(
            "transaction",
            entry("POST", "Observation", observation(f"Patient?identifier={MRN}|twin")),
        )
        status, _, _ = await send(session, "POST", ehr.base_url, ambiguous)
        assert status == 412
        status, _, _ = await send(
            session, "POST", f"{ehr.base_url}/Observation", observation("urn:uuid:loose")
        )
        assert status == 400
        assert ehr.resources("Observation") == []

    with_ehr(body)


def test_one_resource_targeted_twice_is_rejected() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        twice = bundle(
            "transaction",
            entry("PUT", f"Patient?identifier={MRN}|T", patient("T", id="t")),
            entry("PUT", "Patient/t", patient("T", id="t")),
        )
        status, _, _ = await send(session, "POST", ehr.base_url, twice)
        assert status == 400
        assert ehr.counts() == {}

    with_ehr(body)


def test_batch_entries_are_independent() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        sent = bundle(
            "batch",
            entry("POST", "Patient", patient("B1")),
            entry("PUT", "Patient/b2", patient("B2", id="wrong")),
            entry("GET", "Patient/missing"),
            entry("PUT", f"Patient?identifier={MRN}|B3", patient("B3")),
            {"request": {"method": "POST"}},
        )
        status, response, _ = await send(
            session, "POST", ehr.base_url, sent, {"Prefer": "return=minimal"}
        )
        assert status == 200 and response["type"] == "batch-response"
        statuses = [e["response"]["status"] for e in response["entry"]]
        assert statuses == [
            "201 Created",
            "400 Bad Request",
            "404 Not Found",
            "201 Created",
            "400 Bad Request",
        ]
        assert "resource" not in response["entry"][0]
        assert response["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
        assert sorted(p["identifier"][0]["value"] for p in ehr.resources("Patient")) == ["B1", "B3"]

    with_ehr(body)


def test_concurrent_conditional_transactions_never_duplicate() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        sends = [
            send(session, "POST", ehr.base_url, adt_bundle(str(n % 5), f"V{n % 5}"))
            for n in range(60)
        ]
        results = await asyncio.gather(*sends)
        assert all(status == 200 for status, _, _ in results)
        assert ehr.counts() == {"Encounter": 5, "Patient": 5, "Provenance": 60}
        assert ehr.duplicates() == {}
        versions = sorted(int(p["meta"]["versionId"]) for p in ehr.resources("Patient"))
        assert versions == [12] * 5

    with_ehr(body)
