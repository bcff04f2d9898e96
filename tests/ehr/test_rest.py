"""The simulated EHR's FHIR REST interactions, over real HTTP."""

from __future__ import annotations

import aiohttp

from tests.ehr.support import MRN, patient, send, with_ehr
from thumpflow.testing.ehr import SimulatedEhr


def test_metadata_is_an_r4_capability_statement() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        status, cap, response = await send(session, "GET", f"{ehr.base_url}/metadata")
        assert status == 200
        assert response.content_type == "application/fhir+json"
        assert cap["resourceType"] == "CapabilityStatement"
        assert cap["fhirVersion"] == "4.0.1"
        rest = cap["rest"][0]
        assert {"code": "transaction"} in rest["interaction"]
        types = {r["type"]: r for r in rest["resource"]}
        assert types["Patient"]["conditionalUpdate"] is True
        assert "security" not in rest

    with_ehr(body)


def test_create_read_vread_update_with_versions_and_headers() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        status, created, response = await send(
            session, "POST", f"{ehr.base_url}/Patient", patient("1", id="ignored")
        )
        assert status == 201
        pid = created["id"]
        assert pid != "ignored"
        assert response.headers["ETag"] == 'W/"1"'
        assert response.headers["Location"] == f"{ehr.base_url}/Patient/{pid}/_history/1"
        assert response.headers["Last-Modified"].endswith("GMT")
        assert created["meta"]["versionId"] == "1"
        first_updated = created["meta"]["lastUpdated"]

        status, read, response = await send(session, "GET", f"{ehr.base_url}/Patient/{pid}")
        assert status == 200 and read == created
        assert response.headers["ETag"] == 'W/"1"'

        changed = {**read, "name": [{"family": "Changed"}]}
        status, updated, response = await send(
            session, "PUT", f"{ehr.base_url}/Patient/{pid}", changed
        )
        assert status == 200
        assert response.headers["ETag"] == 'W/"2"'
        assert updated["meta"]["versionId"] == "2"
        assert updated["meta"]["lastUpdated"] > first_updated

        status, old, _ = await send(session, "GET", f"{ehr.base_url}/Patient/{pid}/_history/1")
        assert status == 200 and old["name"] == [{"family": "Test"}]
        status, _, _ = await send(session, "GET", f"{ehr.base_url}/Patient/{pid}/_history/9")
        assert status == 404
        assert [v.version for v in ehr.history("Patient", pid)] == [1, 2]

    with_ehr(body)


def test_update_creates_with_the_client_id_and_checks_it() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        url = f"{ehr.base_url}/Patient/pat-7"
        status, created, response = await send(session, "PUT", url, patient("7", id="pat-7"))
        assert status == 201 and created["id"] == "pat-7"
        assert response.headers["Location"].endswith("/Patient/pat-7/_history/1")
        status, outcome, _ = await send(session, "PUT", url, patient("7", id="other"))
        assert status == 400 and outcome["resourceType"] == "OperationOutcome"
        status, _, _ = await send(session, "PUT", url, patient("7"))
        assert status == 400

    with_ehr(body)


def test_if_match_conflicts_are_412_and_write_nothing() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        url = f"{ehr.base_url}/Patient/p1"
        await send(session, "PUT", url, patient("1", id="p1"))
        await send(session, "PUT", url, patient("1", id="p1", gender="female"))
        status, outcome, _ = await send(
            session, "PUT", url, patient("1", id="p1"), headers={"If-Match": 'W/"1"'}
        )
        assert status == 412
        assert outcome["issue"][0]["code"] == "conflict"
        assert len(ehr.history("Patient", "p1")) == 2
        status, _, response = await send(
            session, "PUT", url, patient("1", id="p1"), headers={"If-Match": 'W/"2"'}
        )
        assert status == 200 and response.headers["ETag"] == 'W/"3"'
        status, _, _ = await send(
            session,
            "PUT",
            f"{ehr.base_url}/Patient/nope",
            patient("2", id="nope"),
            headers={"If-Match": 'W/"1"'},
        )
        assert status == 412
        status, _, _ = await send(session, "DELETE", url, headers={"If-Match": 'W/"1"'})
        assert status == 412
        assert ehr.resources("Patient")[0]["meta"]["versionId"] == "3"

    with_ehr(body)


def test_conditional_create() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        url = f"{ehr.base_url}/Patient"
        header = {"If-None-Exist": f"identifier={MRN}|100"}
        status, first, _ = await send(session, "POST", url, patient("100"), header)
        assert status == 201
        status, again, response = await send(session, "POST", url, patient("100"), header)
        assert status == 200
        assert again["id"] == first["id"] and again["meta"]["versionId"] == "1"
        assert response.headers["ETag"] == 'W/"1"'
        assert len(ehr.resources("Patient")) == 1
        await send(session, "POST", url, patient("100"))
        status, outcome, _ = await send(session, "POST", url, patient("100"), header)
        assert status == 412
        assert outcome["issue"][0]["code"] == "multiple-matches"
        status, _, _ = await send(session, "POST", url, patient("1"), {"If-None-Exist": "_count=1"})
        assert status == 400

    with_ehr(body)


def test_conditional_update_none_one_several() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        url = f"{ehr.base_url}/Patient?identifier={MRN}|200"
        status, created, _ = await send(session, "PUT", url, patient("200"))
        assert status == 201
        status, updated, _ = await send(session, "PUT", url, patient("200", gender="male"))
        assert status == 200
        assert updated["id"] == created["id"] and updated["meta"]["versionId"] == "2"
        status, _, _ = await send(session, "PUT", url, patient("200", id="different"))
        assert status == 400
        status, by_id, _ = await send(
            session,
            "PUT",
            f"{ehr.base_url}/Patient?identifier={MRN}|201",
            patient("201", id="p201"),
        )
        assert status == 201 and by_id["id"] == "p201"
        status, _, _ = await send(
            session,
            "PUT",
            f"{ehr.base_url}/Patient?identifier={MRN}|202",
            patient("202", id="p201"),
        )
        assert status == 409
        await send(session, "POST", f"{ehr.base_url}/Patient", patient("200"))
        status, outcome, _ = await send(session, "PUT", url, patient("200"))
        assert status == 412 and outcome["resourceType"] == "OperationOutcome"
        status, _, _ = await send(session, "PUT", f"{ehr.base_url}/Patient?_count=3", patient("1"))
        assert status == 400

    with_ehr(body)


def test_delete_history_and_gone() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        url = f"{ehr.base_url}/Patient/d1"
        await send(session, "PUT", url, patient("1", id="d1"))
        await send(session, "PUT", url, patient("1", id="d1", gender="other"))
        status, _, response = await send(session, "DELETE", url)
        assert status == 204 and response.headers["ETag"] == 'W/"3"'
        status, outcome, _ = await send(session, "GET", url)
        assert status == 410 and outcome["resourceType"] == "OperationOutcome"
        status, _, _ = await send(session, "DELETE", url)
        assert status == 204
        status, _, _ = await send(session, "DELETE", f"{ehr.base_url}/Patient/never")
        assert status == 204
        status, history, _ = await send(session, "GET", f"{url}/_history")
        assert status == 200 and history["type"] == "history"
        assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT", "POST"]
        assert [e["response"]["etag"] for e in history["entry"]] == ['W/"3"', 'W/"2"', 'W/"1"']
        assert "resource" not in history["entry"][0]
        status, _, _ = await send(session, "GET", f"{url}/_history/3")
        assert status == 410
        status, recreated, _ = await send(session, "PUT", url, patient("1", id="d1"))
        assert status == 201 and recreated["meta"]["versionId"] == "4"
        assert ehr.counts() == {"Patient": 1}

    with_ehr(body)


def test_conditional_delete() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        await send(session, "POST", f"{ehr.base_url}/Patient", patient("1"))
        status, _, _ = await send(session, "DELETE", f"{ehr.base_url}/Patient?identifier={MRN}|1")
        assert status == 204
        assert ehr.resources("Patient") == []
        status, _, _ = await send(session, "DELETE", f"{ehr.base_url}/Patient?identifier={MRN}|1")
        assert status == 204

    with_ehr(body)


def test_search_by_identifier_forms() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        base = f"{ehr.base_url}/Patient"
        await send(session, "POST", base, patient("A1"))
        await send(session, "POST", base, patient("B2"))
        other = {"resourceType": "Patient", "identifier": [{"system": "urn:other", "value": "A1"}]}
        await send(session, "POST", base, other)
        bare = {"resourceType": "Patient", "identifier": [{"value": "A1"}]}
        await send(session, "POST", base, bare)

        async def total(query: str) -> int:
            status, found, _ = await send(session, "GET", f"{base}?{query}")
            assert status == 200 and found["type"] == "searchset"
            assert len(found["entry"]) == found["total"]
            return int(found["total"])

        assert await total(f"identifier={MRN}|A1") == 1
        assert await total("identifier=A1") == 3
        assert await total(f"identifier={MRN}|") == 2
        assert await total("identifier=|A1") == 1
        assert await total(f"identifier={MRN}|A1,{MRN}|B2") == 2
        assert await total(f"identifier={MRN}|&identifier=A1") == 1
        assert await total("identifier=nothing") == 0
        async with session.post(
            f"{base}/_search",
            data=f"identifier={MRN}|B2",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as response:
            assert response.status == 200
            assert (await response.json())["total"] == 1
        status, outcome, _ = await send(session, "GET", f"{base}?name=Test")
        assert status == 400 and "name" in outcome["issue"][0]["diagnostics"]
        status, _, _ = await send(session, "GET", f"{base}?identifier:of-type=x")
        assert status == 400

    with_ehr(body)


def test_search_by_last_updated_and_paging() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        base = f"{ehr.base_url}/Patient"
        stamps = []
        for n in range(5):
            _, created, _ = await send(session, "POST", base, patient(str(n)))
            stamps.append(created["meta"]["lastUpdated"])
        assert stamps == sorted(stamps) and len(set(stamps)) == 5

        async def ids(query: str) -> list[str]:
            status, found, _ = await send(session, "GET", f"{base}?{query}")
            assert status == 200, found
            return [e["resource"]["identifier"][0]["value"] for e in found.get("entry", [])]

        assert await ids(f"_lastUpdated=ge{stamps[2]}") == ["2", "3", "4"]
        assert await ids(f"_lastUpdated=gt{stamps[2]}") == ["3", "4"]
        assert await ids(f"_lastUpdated=lt{stamps[2]}") == ["0", "1"]
        assert await ids(f"_lastUpdated=le{stamps[2]}") == ["0", "1", "2"]
        assert await ids(f"_lastUpdated=ge{stamps[1]}&_lastUpdated=lt{stamps[3]}") == ["1", "2"]
        assert await ids(f"_lastUpdated={stamps[0][:10]}") == ["0", "1", "2", "3", "4"]
        assert await ids("_lastUpdated=lt2000-01-01") == []
        assert await ids("_sort=-_lastUpdated") == ["4", "3", "2", "1", "0"]

        status, page, _ = await send(session, "GET", f"{base}?_count=2")
        assert page["total"] == 5 and len(page["entry"]) == 2
        seen = [e["resource"]["id"] for e in page["entry"]]
        while next_links := [link for link in page["link"] if link["relation"] == "next"]:
            status, page, _ = await send(session, "GET", next_links[0]["url"])
            assert status == 200
            seen += [e["resource"]["id"] for e in page["entry"]]
        assert len(seen) == len(set(seen)) == 5
        status, _, _ = await send(session, "GET", f"{base}?_lastUpdated=sa2020-01-01")
        assert status == 400
        status, _, _ = await send(session, "GET", f"{base}?_lastUpdated=yesterday")
        assert status == 400

    with_ehr(body)


def test_errors_are_operation_outcomes_with_proper_status() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        base = ehr.base_url
        async with session.post(
            f"{base}/Patient", data=b"{not json", headers={"Content-Type": "application/fhir+json"}
        ) as response:
            assert response.status == 400
            assert (await response.json(content_type=None))["resourceType"] == "OperationOutcome"
        cases = [
            ("POST", f"{base}/Patient", {"resourceType": "Observation"}, 400),
            ("POST", f"{base}/Patient", ["not", "an", "object"], 400),
            ("GET", f"{base}/Patient/missing", None, 404),
            ("GET", f"{base}/Unicorn/1", None, 404),
            ("GET", f"{base}/Patient/bad%20id", None, 400),
            ("POST", f"{base}/Patient/1", patient("1"), 405),
            ("PATCH", f"{base}/Patient/1", [{"op": "remove", "path": "/name"}], 405),
            ("GET", f"{base}", None, 405),
            ("POST", f"{base}/metadata", {"resourceType": "Basic"}, 405),
            ("POST", f"{base}", patient("1"), 400),
            ("POST", f"{base}", {"resourceType": "Bundle", "type": "collection"}, 400),
        ]
        for method, url, payload, expected in cases:
            status, outcome, _ = await send(session, method, url, payload)
            assert status == expected, (method, url, status)
            assert outcome["resourceType"] == "OperationOutcome"
        async with session.post(
            f"{base}/Patient", data=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"}
        ) as response:
            assert response.status == 415
        assert ehr.counts() == {}

    with_ehr(body)


def test_prefer_return_minimal() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        status, created, response = await send(
            session,
            "POST",
            f"{ehr.base_url}/Patient",
            patient("1"),
            {"Prefer": "return=minimal"},
        )
        assert status == 201 and created is None
        assert response.headers["Location"].endswith("/_history/1")

    with_ehr(body)


def test_identical_update_makes_a_new_version_unless_asked_not_to() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        url = f"{ehr.base_url}/Patient/same"
        await send(session, "PUT", url, patient("1", id="same"))
        _, second, _ = await send(session, "PUT", url, patient("1", id="same"))
        assert second["meta"]["versionId"] == "2"
        ehr.skip_identical_updates = True
        status, third, response = await send(session, "PUT", url, patient("1", id="same"))
        assert status == 200 and third["meta"]["versionId"] == "2"
        assert response.headers["ETag"] == 'W/"2"'
        _, fourth, _ = await send(session, "PUT", url, patient("1", id="same", gender="male"))
        assert fourth["meta"]["versionId"] == "3"

    with_ehr(body)


def test_duplicates_and_state_are_visible() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        base = f"{ehr.base_url}/Patient"
        _, first, _ = await send(session, "POST", base, patient("D1"))
        status, report, _ = await send(session, "GET", f"{ehr.admin_url}/duplicates")
        assert status == 200 and report == {"count": 0, "duplicates": {}}
        _, second, _ = await send(session, "POST", base, patient("D1"))
        await send(session, "POST", base, patient("D2"))
        await send(
            session,
            "POST",
            f"{ehr.base_url}/Encounter",
            {"resourceType": "Encounter", "identifier": [{"system": MRN, "value": "D1"}]},
        )
        expected = {"Patient": {f"{MRN}|D1": sorted([first["id"], second["id"]])}}
        assert ehr.duplicates() == expected
        _, report, _ = await send(session, "GET", f"{ehr.admin_url}/duplicates")
        assert report == {"count": 1, "duplicates": expected}
        _, state, _ = await send(session, "GET", f"{ehr.admin_url}/state")
        assert state["resources"] == {"Encounter": 1, "Patient": 3}
        assert state["versions"] == 4
        await send(session, "DELETE", f"{base}/{second['id']}")
        assert ehr.duplicates() == {}
        _, log, _ = await send(session, "GET", f"{ehr.admin_url}/requests")
        assert [r["status"] for r in log] == [201, 201, 201, 201, 204]
        assert all("?" not in r["path"] for r in log)
        _, state, _ = await send(session, "POST", f"{ehr.admin_url}/reset")
        assert state["resources"] == {} and ehr.requests == []

    with_ehr(body)
