"""The FHIR destination against the simulated EHR: modes, exactly once, versions, faults."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.connectors.fhir.conftest import delivery
from thumpflow.connectors.fhir import FhirDestination, FhirDestinationSpec
from thumpflow.core.outcome import Permanent, Sent, Transient
from thumpflow.testing.ehr import REJECT_DIAGNOSTICS, SimulatedEhr

MRN = "urn:oid:2.16.840.1.113883.19.5"
VISIT = "urn:oid:2.16.840.1.113883.19.6"
OBS = "urn:oid:2.16.840.1.113883.19.7"


def adt_bundle(mrn: str = "7001", family: str = "Doe") -> dict[str, Any]:
    """What a mapping produces for an admission with one vital sign."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{int(mrn):012d}",
                "resource": {
                    "resourceType": "Patient",
                    "id": f"pat-{mrn}",
                    "identifier": [{"system": MRN, "value": mrn}],
                    "name": [{"family": family}],
                },
                "request": {"method": "PUT", "url": f"Patient?identifier={MRN}|{mrn}"},
            },
            {
                "resource": {
                    "resourceType": "Encounter",
                    "id": f"enc-{mrn}",
                    "identifier": [{"system": VISIT, "value": f"V{mrn}"}],
                    "status": "in-progress",
                    "class": {"code": "IMP"},
                    "subject": {"reference": f"urn:uuid:00000000-0000-4000-8000-{int(mrn):012d}"},
                },
                "request": {"method": "PUT", "url": f"Encounter?identifier={VISIT}|V{mrn}"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "identifier": [{"system": OBS, "value": f"HR-{mrn}"}],
                    "status": "final",
                    "code": {"text": "heart rate"},
                    "subject": {"reference": f"Patient?identifier={MRN}|{mrn}"},
                    "valueQuantity": {"value": 72, "unit": "/min"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }


Body = Callable[[SimulatedEhr, FhirDestination], Awaitable[None]]


def with_ehr(body: Body, **spec: Any) -> None:
    async def main() -> None:
        async with SimulatedEhr() as ehr:
            dest = FhirDestination(
                "ehr",
                FhirDestinationSpec.model_validate(
                    {"type": "fhir", "base_url": ehr.base_url, **spec}
                ),
            )
            await dest.start()
            try:
                await asyncio.wait_for(body(ehr, dest), 20)
            finally:
                await dest.close()

    asyncio.run(main())


def assert_once(ehr: SimulatedEhr) -> None:
    assert ehr.counts() == {"Encounter": 1, "Observation": 1, "Patient": 1}
    assert ehr.duplicates() == {}


def test_transaction_resent_after_a_lost_response_creates_nothing_twice() -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination) -> None:
        ehr.set_faults(drop_after_apply=1)
        (lost,) = await dest.send([delivery(adt_bundle())])
        assert isinstance(lost, Transient)
        assert_once(ehr)
        assert await dest.send([delivery(adt_bundle())]) == [
            Sent("HTTP 200 transaction: 3 entries applied")
        ]
        (again,) = await dest.send([delivery(adt_bundle())])
        assert isinstance(again, Sent)
        assert_once(ehr)
        (encounter,) = ehr.resources("Encounter")
        assert encounter["subject"] == {"reference": "Patient/pat-7001"}
        posts = [r for r in ehr.requests if r.method == "POST"]
        assert [r.status for r in posts] == [0, 200, 200]

    with_ehr(body)


def test_batch_mode_and_its_per_entry_results() -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination) -> None:
        first = adt_bundle()
        del first["entry"][1]["resource"]["subject"]
        for _ in range(2):
            (sent,) = await dest.send([delivery(first)])
            assert sent == Sent("HTTP 200 batch: 3 entries applied")
        assert_once(ehr)
        ehr.set_faults(reject_types=["Observation"])
        second = adt_bundle("7002")
        del second["entry"][1]["resource"]["subject"]
        (refused,) = await dest.send([delivery(second, n=2)])
        assert isinstance(refused, Permanent)
        assert refused.reason.startswith("HTTP 200 batch: 1 of 3 entries refused (2 applied)")
        assert "entry 2 (Observation POST): HTTP 422: error " in refused.reason
        assert REJECT_DIAGNOSTICS[:40] in refused.reason

    with_ehr(body, mode="batch")


def test_conditional_update_mode_writes_each_entry_once_and_links_them() -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination) -> None:
        ehr.set_faults(drop_after_apply=2)
        (lost,) = await dest.send([delivery(adt_bundle())])
        assert isinstance(lost, Transient)
        assert "(0 of 3 entries written before it)" in lost.reason
        (lost,) = await dest.send([delivery(adt_bundle())])
        assert isinstance(lost, Transient)
        (sent,) = await dest.send([delivery(adt_bundle())])
        assert sent == Sent("3 entries written individually")
        assert_once(ehr)
        (encounter,) = ehr.resources("Encounter")
        assert encounter["subject"] == {"reference": "Patient/pat-7001"}
        (patient,) = ehr.resources("Patient")
        assert patient["meta"]["versionId"] == "3"
        writes = [(r.method, r.path) for r in ehr.requests if r.status]
        assert writes[-3:] == [
            ("PUT", "/fhir/Patient"),
            ("PUT", "/fhir/Encounter"),
            ("PUT", "/fhir/Observation"),
        ]

    with_ehr(body, mode="conditional_update")


def test_create_if_absent_never_overwrites_nor_duplicates() -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination) -> None:
        allergy: dict[str, Any] = {
            "resourceType": "AllergyIntolerance",
            "identifier": [{"system": OBS, "value": "AL-1"}],
            "patient": {"reference": "Patient/x"},
            "note": [{"text": "first"}],
        }
        for note in ("first", "second"):
            changed = copy.deepcopy(allergy)
            changed["note"][0]["text"] = note
            entry = {
                "resource": changed,
                "request": {
                    "method": "POST",
                    "url": "AllergyIntolerance",
                    "ifNoneExist": f"identifier={OBS}|AL-1",
                },
            }
            bundle = {"resourceType": "Bundle", "type": "batch", "entry": [entry]}
            (sent,) = await dest.send([delivery(bundle)])
            assert isinstance(sent, Sent)
        (kept,) = ehr.resources("AllergyIntolerance")
        assert kept["note"] == [{"text": "first"}]
        assert kept["meta"]["versionId"] == "1"
        assert [r.method for r in ehr.requests] == ["POST", "POST"]

    with_ehr(body, mode="conditional_update")


def stale_update(version: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": "pat-1",
                    "identifier": [{"system": MRN, "value": "1"}],
                },
                "request": {"method": "PUT", "url": "Patient/pat-1", "ifMatch": f'W/"{version}"'},
            }
        ],
    }


@pytest.mark.parametrize("mode", ["transaction", "conditional_update"])
@pytest.mark.parametrize(("rule", "expected"), [("retry", Transient), ("dead_letter", Permanent)])
def test_if_match_conflict_follows_the_channel_rule(mode: str, rule: str, expected: type) -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination) -> None:
        seed = stale_update("0")
        del seed["entry"][0]["request"]["ifMatch"]
        for _ in range(2):
            assert isinstance((await dest.send([delivery(seed)]))[0], Sent)
        (conflict,) = await dest.send([delivery(stale_update("1"))])
        assert isinstance(conflict, expected) and not isinstance(conflict, Sent), conflict
        assert "version conflict, HTTP 412" in conflict.reason
        assert isinstance((await dest.send([delivery(stale_update("2"))]))[0], Sent)
        assert len(ehr.history("Patient", "pat-1")) == 3

    with_ehr(body, mode=mode, on_version_conflict=rule)


def test_version_aware_reads_then_updates_with_if_match() -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination) -> None:
        for family in ("Doe", "Roe"):
            (sent,) = await dest.send([delivery(adt_bundle(family=family))])
            assert isinstance(sent, Sent)
        assert_once(ehr)
        (patient,) = ehr.resources("Patient")
        assert patient["name"] == [{"family": "Roe"}]
        assert [r.method for r in ehr.requests] == ["GET", "GET", "POST", "GET", "GET", "POST"]

    with_ehr(body, version_aware=True)


@pytest.mark.parametrize(
    ("mode", "rule", "expected"),
    [("conditional_update", "retry", Transient), ("transaction", "dead_letter", Permanent)],
)
def test_version_aware_detects_a_concurrent_change_between_read_and_write(
    mode: str, rule: str, expected: type
) -> None:
    """A proxy lets the EHR's resource change right after the destination read its version."""

    async def main() -> None:
        async with SimulatedEhr() as ehr, aiohttp.ClientSession() as client:
            interfere = [True]

            async def proxy(request: web.Request) -> web.Response:
                url = f"{ehr.url}{request.path_qs}"
                headers = {
                    k: v
                    for k, v in request.headers.items()
                    if k.lower() not in ("host", "content-length")
                }
                async with client.request(
                    request.method, url, data=await request.read(), headers=headers
                ) as answer:
                    body = await answer.read()
                    status, content_type = answer.status, answer.content_type
                if request.method == "GET" and "Patient" in request.path and interfere[0]:
                    interfere[0] = False
                    change = {**stale_update("0")["entry"][0]["resource"], "gender": "other"}
                    async with client.put(f"{ehr.base_url}/Patient/pat-1", json=change) as r:
                        assert r.status == 200
                return web.Response(status=status, body=body, content_type=content_type)

            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", proxy)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            spec = {
                "type": "fhir",
                "base_url": f"http://127.0.0.1:{port}/fhir",
                "mode": mode,
                "version_aware": True,
                "on_version_conflict": rule,
            }
            dest = FhirDestination("ehr", FhirDestinationSpec.model_validate(spec))
            await dest.start()
            seed = stale_update("0")
            del seed["entry"][0]["request"]["ifMatch"]
            async with client.put(
                f"{ehr.base_url}/Patient/pat-1", json=seed["entry"][0]["resource"]
            ) as r:
                assert r.status == 201
            update = adt_bundle("1", family="Late")
            update["entry"][0]["resource"]["id"] = "pat-1"
            del update["entry"][1:]
            (conflict,) = await dest.send([delivery(update)])
            assert isinstance(conflict, expected) and not isinstance(conflict, Sent), conflict
            assert "version conflict, HTTP 412" in conflict.reason
            (patient,) = ehr.resources("Patient")
            assert patient["gender"] == "other"
            assert isinstance((await dest.send([delivery(update)]))[0], Sent)
            (patient,) = ehr.resources("Patient")
            assert patient["name"] == [{"family": "Late"}] and "gender" not in patient
            assert len(ehr.history("Patient", "pat-1")) == 3
            await dest.close()
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_faults_are_classified() -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination) -> None:
        bundle = adt_bundle()
        ehr.set_faults(throttle=1, retry_after=7)
        (throttled,) = await dest.send([delivery(bundle)])
        assert isinstance(throttled, Transient) and throttled.retry_after == 7.0
        assert throttled.reason.startswith("HTTP 429: error throttled: too many requests")
        for status in (503, 500, 502):
            ehr.set_faults(server_errors=1, server_error_status=status, retry_after=3)
            (failed,) = await dest.send([delivery(bundle)])
            assert isinstance(failed, Transient) and failed.reason.startswith(f"HTTP {status}")
            assert failed.retry_after == (3.0 if status == 503 else None)
        ehr.set_faults(drop=1)
        (dropped,) = await dest.send([delivery(bundle)])
        assert dropped == Transient("server closed the connection without a response")
        assert ehr.counts() == {}
        ehr.set_faults(delay_seconds=0.6)
        (slow,) = await dest.send([delivery(bundle)])
        assert slow == Transient("timed out after 0.3 s")
        await asyncio.sleep(0.4)
        ehr.set_faults(delay_seconds=0.0, reject_marker="heart rate")
        (refused,) = await dest.send([delivery(bundle)])
        assert isinstance(refused, Permanent)
        assert refused.reason.startswith("HTTP 422: error ")
        assert REJECT_DIAGNOSTICS[:40] in refused.reason
        ehr.set_faults(reject_marker=None)
        assert isinstance((await dest.send([delivery(bundle)]))[0], Sent)
        assert_once(ehr)
        await ehr.go_down(0.3)
        (down,) = await dest.send([delivery(bundle)])
        assert isinstance(down, Transient)

    with_ehr(body, timeout_seconds=0.3)


def test_a_write_that_could_duplicate_is_refused_before_sending() -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination) -> None:
        anonymous = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": {"resourceType": "Basic"}, "request": {"method": "POST"}}],
        }
        (refused,) = await dest.send([delivery(anonymous)])
        assert isinstance(refused, Permanent) and "could be duplicated" in refused.reason
        (not_fhir,) = await dest.send([delivery({"resourceType": "Patient"})])
        assert isinstance(not_fhir, Permanent) and "not a FHIR Bundle" in not_fhir.reason
        assert ehr.requests == []

    with_ehr(body)


def test_concurrent_deliveries_keep_their_order_of_results() -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination) -> None:
        ehr.set_faults(delay_seconds=0.2)
        bundles = [adt_bundle(str(7000 + n)) for n in range(4)]
        bundles[2]["entry"][0]["resource"]["name"] = [{"family": "Bad"}]
        ehr.set_faults(reject_marker='"Bad"')
        started = asyncio.get_running_loop().time()
        results = await dest.send([delivery(b, n=n) for n, b in enumerate(bundles)])
        assert asyncio.get_running_loop().time() - started < 0.7
        assert [type(r) for r in results] == [Sent, Sent, Permanent, Sent]
        assert ehr.counts()["Patient"] == 3 and ehr.duplicates() == {}

    with_ehr(body, max_batch=4)
