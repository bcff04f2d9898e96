"""The simulated EHR's Bulk Data export, over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.ehr.support import FHIR_JSON, patient, send, with_ehr
from thumpflow.testing.ehr import SimulatedEhr

ASYNC = {"Accept": FHIR_JSON, "Prefer": "respond-async"}


async def _seed(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> dict[str, str]:
    """Two patients, an observation each, an organization, and a group holding patient a."""
    ids: dict[str, str] = {}
    for name in ("a", "b"):
        _, created, _ = await send(session, "POST", f"{ehr.base_url}/Patient", patient(name))
        ids[name] = created["id"]
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "heart rate"},
            "subject": {"reference": f"Patient/{created['id']}"},
        }
        _, obs, _ = await send(session, "POST", f"{ehr.base_url}/Observation", observation)
        ids[f"obs-{name}"] = obs["id"]
    await send(session, "POST", f"{ehr.base_url}/Organization", {"resourceType": "Organization"})
    group = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{ids['a']}"}}],
    }
    await send(session, "PUT", f"{ehr.base_url}/Group/icu", {**group, "id": "icu"})
    return ids


async def _export(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[dict[str, Any], str, list[aiohttp.ClientResponse]]:
    """Kick off, poll until 200; returns (manifest, status URL, the 202 poll responses)."""
    status, _, response = await send(session, "GET", url, headers={**ASYNC, **(headers or {})})
    assert status == 202, status
    status_url = response.headers["Content-Location"]
    polls = []
    while True:
        status, body, response = await send(session, "GET", status_url, headers=headers)
        if status == 200:
            return body, status_url, polls
        assert status == 202
        polls.append(response)


async def _lines(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    async with session.get(url, headers=headers) as response:
        assert response.status == 200
        assert response.content_type == "application/fhir+ndjson"
        text = await response.text()
    return [json.loads(line) for line in text.splitlines()]


def test_system_export_reports_progress_then_a_manifest_with_ndjson_files() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ids = await _seed(ehr, session)
        manifest, status_url, polls = await _export(session, f"{ehr.base_url}/$export")
        assert [p.headers["X-Progress"] for p in polls] == [
            "in progress (1 of 2)",
            "in progress (2 of 2)",
        ]
        assert all(p.headers["Retry-After"] == "0.01" for p in polls)
        assert manifest["requiresAccessToken"] is False
        assert manifest["error"] == []
        assert manifest["request"].endswith("/fhir/$export")
        outputs = {o["type"]: o for o in manifest["output"]}
        assert {t: o["count"] for t, o in outputs.items()} == {
            "Group": 1,
            "Observation": 2,
            "Organization": 1,
            "Patient": 2,
        }
        patients = await _lines(session, outputs["Patient"]["url"])
        assert [p["id"] for p in patients] == [ids["a"], ids["b"]]
        last = max(v["meta"]["lastUpdated"] for v in patients)
        assert manifest["transactionTime"] >= last
        assert ehr.state()["bulk_exports"] == 1

        status, _, _ = await send(session, "DELETE", status_url)
        assert status == 202
        status, outcome, _ = await send(session, "GET", status_url)
        assert status == 404 and outcome["resourceType"] == "OperationOutcome"
        async with session.get(outputs["Patient"]["url"]) as response:
            assert response.status == 404
        status, _, _ = await send(session, "DELETE", status_url)
        assert status == 404

    with_ehr(body, bulk_in_progress_polls=2, bulk_retry_after=0.01)


def test_since_and_type_select_what_changed_after_the_last_transaction_time() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ids = await _seed(ehr, session)
        first, _, _ = await _export(session, f"{ehr.base_url}/$export?_type=Patient")
        assert [o["type"] for o in first["output"]] == ["Patient"]
        since = first["transactionTime"]
        changed = {**ehr.resources("Patient")[1], "name": [{"family": "Changed"}]}
        await send(session, "PUT", f"{ehr.base_url}/Patient/{ids['b']}", changed)
        _, created, _ = await send(session, "POST", f"{ehr.base_url}/Patient", patient("c"))
        url = f"{ehr.base_url}/$export?_type=Patient,Observation&_since={since}"
        second, _, _ = await _export(session, url)
        assert [(o["type"], o["count"]) for o in second["output"]] == [("Patient", 2)]
        lines = await _lines(session, second["output"][0]["url"])
        assert [p["id"] for p in lines] == [ids["b"], created["id"]]
        assert second["transactionTime"] > since
        third, _, _ = await _export(
            session, f"{ehr.base_url}/$export?_since={second['transactionTime']}"
        )
        assert third["output"] == []

    with_ehr(body, bulk_in_progress_polls=0)


def test_patient_and_group_levels_export_compartments() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ids = await _seed(ehr, session)
        everyone, _, _ = await _export(session, f"{ehr.base_url}/Patient/$export")
        assert sorted((o["type"], o["count"]) for o in everyone["output"]) == [
            ("Observation", 2),
            ("Patient", 2),
        ]
        icu, _, _ = await _export(session, f"{ehr.base_url}/Group/icu/$export")
        by_type = {o["type"]: o for o in icu["output"]}
        assert {t: o["count"] for t, o in by_type.items()} == {"Observation": 1, "Patient": 1}
        observation = (await _lines(session, by_type["Observation"]["url"]))[0]
        assert observation["id"] == ids["obs-a"]
        status, outcome, _ = await send(
            session, "GET", f"{ehr.base_url}/Group/nope/$export", headers=ASYNC
        )
        assert status == 404 and outcome["resourceType"] == "OperationOutcome"

    with_ehr(body, bulk_in_progress_polls=0)


def test_kick_off_errors_are_operation_outcomes() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        cases = [
            (f"{ehr.base_url}/$export", {"Accept": FHIR_JSON}, "respond-async"),
            (f"{ehr.base_url}/$export?_type=Nonsense", ASYNC, "Nonsense"),
            (f"{ehr.base_url}/$export?_since=yesterday", ASYNC, "instant"),
            (f"{ehr.base_url}/$export?_since=2024-01-01T00:00:00", ASYNC, "zone"),
            (f"{ehr.base_url}/$export?_typeFilter=x", ASYNC, "not supported"),
            (f"{ehr.base_url}/$export?_outputFormat=csv", ASYNC, "NDJSON"),
        ]
        for url, headers, said in cases:
            status, outcome, _ = await send(session, "GET", url, headers=headers)
            assert status == 400, url
            assert said in outcome["issue"][0]["diagnostics"], url

    with_ehr(body)


def test_auth_is_required_for_kick_off_status_and_files() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.add_static_token("secret")
        token = {"Authorization": "Bearer secret"}
        await send(session, "POST", f"{ehr.base_url}/Patient", patient("a"), headers=token)
        status, _, _ = await send(session, "GET", f"{ehr.base_url}/$export", headers=ASYNC)
        assert status == 401
        manifest, status_url, _ = await _export(session, f"{ehr.base_url}/$export", token)
        assert manifest["requiresAccessToken"] is True
        url = manifest["output"][0]["url"]
        async with session.get(url) as response:
            assert response.status == 401
        assert len(await _lines(session, url, token)) == 1
        status, _, _ = await send(session, "GET", status_url)
        assert status == 401

    with_ehr(body, auth="bearer", bulk_in_progress_polls=0)


def test_faults_apply_and_rejected_resources_go_to_the_error_file() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        await _seed(ehr, session)
        await send(session, "POST", f"{ehr.base_url}/Patient", patient("x", family="Broken"))
        ehr.set_faults(reject_types=["Patient"], reject_marker="Broken", throttle=1)
        status, _, response = await send(
            session, "GET", f"{ehr.base_url}/$export?_type=Patient", headers=ASYNC
        )
        assert status == 429 and response.headers["Retry-After"] == "1"
        manifest, status_url, _ = await _export(session, f"{ehr.base_url}/$export?_type=Patient")
        assert [o["count"] for o in manifest["output"]] == [2]
        assert len(manifest["error"]) == 1
        errors = await _lines(session, manifest["error"][0]["url"])
        assert len(errors) == 1
        assert errors[0]["resourceType"] == "OperationOutcome"
        assert errors[0]["issue"][0]["diagnostics"].startswith("Patient/")
        ehr.set_faults(server_errors=1)
        status, _, response = await send(session, "GET", status_url)
        assert status == 503 and "Retry-After" in response.headers
        status, _, _ = await send(session, "GET", status_url)
        assert status == 200

    with_ehr(body, bulk_in_progress_polls=0)
