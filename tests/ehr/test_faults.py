"""Every fault the simulated EHR injects, seen from a real HTTP client."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.ehr.support import ClientKey, bundle, entry, patient, send, token_form, with_ehr
from thumpflow.testing.ehr import REJECT_DIAGNOSTICS, SimulatedEhr

DISCONNECTED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


def test_throttle_answers_429_with_retry_after_then_recovers() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.set_faults(throttle=2, retry_after=7)
        for _ in range(2):
            status, outcome, response = await send(session, "GET", f"{ehr.base_url}/Patient")
            assert status == 429 and response.headers["Retry-After"] == "7"
            assert outcome["resourceType"] == "OperationOutcome"
        status, _, _ = await send(session, "GET", f"{ehr.base_url}/Patient")
        assert status == 200
        assert [r.status for r in ehr.requests] == [429, 429, 200]

    with_ehr(body)


@pytest.mark.parametrize("code", [500, 502, 503])
def test_server_errors(code: int) -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.set_faults(server_errors=1, server_error_status=code, retry_after=2)
        status, outcome, response = await send(
            session, "POST", f"{ehr.base_url}/Patient", patient("1")
        )
        assert status == code and outcome["resourceType"] == "OperationOutcome"
        assert ("Retry-After" in response.headers) == (code == 503)
        assert ehr.counts() == {}
        status, _, _ = await send(session, "POST", f"{ehr.base_url}/Patient", patient("1"))
        assert status == 201

    with_ehr(body)


def test_latency_delays_every_request() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.set_faults(delay_seconds=0.2)
        started = time.monotonic()
        await asyncio.gather(*(send(session, "GET", f"{ehr.base_url}/Patient") for _ in range(3)))
        elapsed = time.monotonic() - started
        assert 0.2 <= elapsed < 1.0

    with_ehr(body)


def test_drop_before_apply_writes_nothing() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.set_faults(drop=1)
        with pytest.raises(DISCONNECTED):
            await send(session, "POST", f"{ehr.base_url}/Patient", patient("1"))
        assert ehr.counts() == {}
        status, _, _ = await send(session, "POST", f"{ehr.base_url}/Patient", patient("1"))
        assert status == 201
        assert [r.status for r in ehr.requests] == [0, 201]

    with_ehr(body)


def test_drop_after_apply_commits_but_never_answers() -> None:
    """POST, because aiohttp's client itself resends an idempotent method (PUT, DELETE)
    once after a disconnect, which would hide the fault from this test."""

    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.set_faults(drop_after_apply=1)
        status, _, _ = await send(session, "GET", f"{ehr.base_url}/Patient")
        assert status == 200
        url = f"{ehr.base_url}/Patient"
        create_once = {"If-None-Exist": "identifier=http://hospital.example/mrn|1"}
        with pytest.raises(DISCONNECTED):
            await send(session, "POST", url, patient("1"), create_once)
        (created,) = ehr.resources("Patient")
        status, again, _ = await send(session, "POST", url, patient("1"), create_once)
        assert status == 200 and again["id"] == created["id"]
        assert ehr.duplicates() == {}
        assert [r.status for r in ehr.requests] == [200, 0, 200]

    with_ehr(body)


def test_validation_errors_for_chosen_resources() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.set_faults(reject_types=["Observation"])
        status, outcome, _ = await send(
            session, "POST", f"{ehr.base_url}/Observation", {"resourceType": "Observation"}
        )
        assert status == 422
        assert outcome["issue"][0]["diagnostics"] == REJECT_DIAGNOSTICS
        status, _, _ = await send(session, "POST", f"{ehr.base_url}/Patient", patient("1"))
        assert status == 201

        ehr.set_faults(reject_types=[], reject_marker="POISON")
        status, _, _ = await send(session, "POST", f"{ehr.base_url}/Patient", patient("POISON"))
        assert status == 422
        transaction = bundle(
            "transaction",
            entry("POST", "Patient", patient("fine")),
            entry("POST", "Patient", patient("POISON")),
        )
        status, outcome, _ = await send(session, "POST", ehr.base_url, transaction)
        assert status == 422 and "Bundle.entry[1]" in outcome["issue"][0]["diagnostics"]
        status, response, _ = await send(
            session, "POST", ehr.base_url, {**transaction, "type": "batch"}
        )
        assert status == 200
        statuses = [e["response"]["status"] for e in response["entry"]]
        assert statuses == ["201 Created", "422 Unprocessable Entity"]

        ehr.set_faults(reject_types=["Encounter"], reject_marker="POISON")
        status, _, _ = await send(session, "POST", f"{ehr.base_url}/Patient", patient("POISON"))
        assert status == 201
        assert len(ehr.resources("Patient")) == 3

    with_ehr(body)


def test_slow_and_failing_token_endpoint() -> None:
    key = ClientKey.generate("ES384")

    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.register_client("engine", key.jwks())
        ehr.set_faults(token_failures=1, token_delay_seconds=0.2)
        started = time.monotonic()
        async with session.post(
            ehr.token_url, data=token_form(key.assertion("engine", ehr.token_url))
        ) as response:
            assert response.status == 503
            assert (await response.json())["error"] == "temporarily_unavailable"
        assert time.monotonic() - started >= 0.2
        async with session.post(
            ehr.token_url, data=token_form(key.assertion("engine", ehr.token_url))
        ) as response:
            assert response.status == 200
        ehr.set_faults(token_failures=1, token_failure_status=400)
        async with session.post(
            ehr.token_url, data=token_form(key.assertion("engine", ehr.token_url))
        ) as response:
            assert response.status == 400

    with_ehr(body, auth="smart")


def test_go_down_refuses_connections_then_comes_back_on_the_same_port() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        port = ehr.port
        await ehr.go_down(0.3)
        assert not ehr.is_listening
        with pytest.raises(aiohttp.ClientConnectionError):
            await send(session, "GET", f"{ehr.base_url}/metadata")
        await asyncio.sleep(0.5)
        assert ehr.is_listening and ehr.port == port
        status, _, _ = await send(session, "GET", f"{ehr.base_url}/metadata")
        assert status == 200

    with_ehr(body)


def test_admin_faults_endpoint() -> None:
    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        admin = f"{ehr.admin_url}/faults"
        status, faults, _ = await send(session, "POST", admin, {"throttle": 1, "retry_after": 3})
        assert status == 200 and faults["throttle"] == 1 and faults["retry_after"] == 3
        status, _, _ = await send(session, "GET", f"{ehr.base_url}/Patient")
        assert status == 429
        for bad in ({"nonsense": 1}, {"throttle": "lots"}, {"server_error_status": 404}, [1]):
            status, error, _ = await send(session, "POST", admin, bad)
            assert status == 400 and "error" in error
        with pytest.raises(TypeError):
            ehr.set_faults(nonsense=1)
        status, _, _ = await send(session, "POST", admin, {"down_seconds": 0.3})
        assert status == 200
        await asyncio.sleep(0.15)
        assert not ehr.is_listening
        await asyncio.sleep(0.4)
        status, state, _ = await send(session, "GET", f"{ehr.admin_url}/state")
        assert status == 200 and state["listening"] is True

    with_ehr(body)
