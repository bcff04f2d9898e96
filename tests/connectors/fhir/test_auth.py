"""SMART Backend Services and bearer tokens against the simulated EHR."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.connectors.fhir.conftest import PrivateKey, ShiftedClock, delivery, jwks, write_key
from thumpflow.connectors.fhir import FhirDestination, FhirDestinationSpec
from thumpflow.core.outcome import Sent, Transient
from thumpflow.testing.ehr import SimulatedEhr

PATIENT = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "resource": {"resourceType": "Patient", "id": "p1"},
            "request": {"method": "PUT", "url": "Patient/p1"},
        }
    ],
}

Body = Callable[[SimulatedEhr, FhirDestination, ShiftedClock], Awaitable[None]]


def token_requests(ehr: SimulatedEhr) -> int:
    return sum(r.path == "/auth/token" for r in ehr.requests)


def smart(
    tmp_path: Path,
    body: Body,
    algorithm: str = "RS384",
    discover: bool = False,
    ehr_options: dict[str, Any] | None = None,
    **spec: Any,
) -> None:
    key: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS384"
        else ec.generate_private_key(ec.SECP384R1())
    )
    key_file = write_key(tmp_path / "engine.pem", key)

    async def main() -> None:
        async with SimulatedEhr(auth="smart", **(ehr_options or {})) as ehr:
            ehr.register_client("thumpflow", jwks(key, "engine-1"))
            auth = {
                "type": "smart_backend",
                "client_id": "thumpflow",
                "private_key_file": str(key_file),
                "key_id": "engine-1",
                "algorithm": algorithm,
            }
            if not discover:
                auth["token_url"] = ehr.token_url
            clock = ShiftedClock()
            dest = FhirDestination(
                "ehr",
                FhirDestinationSpec.model_validate(
                    {"type": "fhir", "base_url": ehr.base_url, "auth": auth, **spec}
                ),
                clock=clock,
            )
            await dest.start()
            try:
                await asyncio.wait_for(body(ehr, dest, clock), 20)
            finally:
                await dest.close()

    asyncio.run(main())


@pytest.mark.parametrize(("algorithm", "discover"), [("RS384", False), ("ES384", True)])
def test_token_is_fetched_once_cached_and_refreshed_after_expiry(
    tmp_path: Path, algorithm: str, discover: bool
) -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination, clock: ShiftedClock) -> None:
        for _ in range(3):
            assert await dest.send([delivery(PATIENT)]) == [
                Sent("HTTP 200 transaction: 1 entries applied")
            ]
        assert token_requests(ehr) == 1
        clock.offset += 300
        assert isinstance((await dest.send([delivery(PATIENT)]))[0], Sent)
        assert token_requests(ehr) == 2
        assert [r.status for r in ehr.requests if r.path == "/fhir"] == [200] * 4

    smart(tmp_path, body, algorithm=algorithm, discover=discover)


def test_a_401_renews_the_token_once_within_the_send(tmp_path: Path) -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination, clock: ShiftedClock) -> None:
        assert isinstance((await dest.send([delivery(PATIENT)]))[0], Sent)
        clock.offset -= 1000
        await asyncio.sleep(1.05)
        assert isinstance((await dest.send([delivery(PATIENT)]))[0], Sent)
        assert [(r.path, r.status) for r in ehr.requests] == [
            ("/auth/token", 200),
            ("/fhir", 200),
            ("/fhir", 401),
            ("/auth/token", 200),
            ("/fhir", 200),
        ]

    smart(tmp_path, body, ehr_options={"token_lifetime": 1.0})


def test_concurrent_sends_share_one_token_request(tmp_path: Path) -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination, clock: ShiftedClock) -> None:
        ehr.set_faults(token_delay_seconds=0.3)
        results = await dest.send([delivery(PATIENT, n=n) for n in range(4)])
        assert all(isinstance(r, Sent) for r in results), results
        assert token_requests(ehr) == 1

    smart(tmp_path, body, max_batch=4)


def test_slow_or_failing_token_endpoint_is_transient(tmp_path: Path) -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination, clock: ShiftedClock) -> None:
        ehr.set_faults(token_delay_seconds=0.5)
        (slow,) = await dest.send([delivery(PATIENT)])
        assert slow == Transient("no credential: token endpoint timed out after 0.2 s")
        ehr.set_faults(token_delay_seconds=0.0, token_failures=1)
        (failing,) = await dest.send([delivery(PATIENT)])
        assert failing == Transient(
            "no credential: token endpoint answered HTTP 503: temporarily_unavailable "
            "injected token failure"
        )
        assert isinstance((await dest.send([delivery(PATIENT)]))[0], Sent)
        assert [r.status for r in ehr.requests if r.path == "/fhir"] == [200]

    smart(tmp_path, body, timeout_seconds=0.2)


def test_an_unregistered_key_is_transient_with_the_oauth_error(tmp_path: Path) -> None:
    async def body(ehr: SimulatedEhr, dest: FhirDestination, clock: ShiftedClock) -> None:
        ehr.register_client("thumpflow", jwks(ec.generate_private_key(ec.SECP384R1()), "other"))
        (refused,) = await dest.send([delivery(PATIENT)])
        assert isinstance(refused, Transient)
        assert refused.reason.startswith("no credential: token endpoint answered HTTP 401")
        assert "invalid_client" in refused.reason

    smart(tmp_path, body, algorithm="ES384")


def test_a_key_of_the_wrong_kind_fails_start(tmp_path: Path) -> None:
    key_file = write_key(tmp_path / "p256.pem", ec.generate_private_key(ec.SECP256R1()))
    spec = FhirDestinationSpec.model_validate(
        {
            "type": "fhir",
            "base_url": "http://127.0.0.1:9/fhir",
            "auth": {
                "type": "smart_backend",
                "client_id": "c",
                "token_url": "http://127.0.0.1:9/token",
                "private_key_file": str(key_file),
                "key_id": "k",
                "algorithm": "ES384",
            },
        }
    )
    with pytest.raises(ValueError, match="P-384"):
        asyncio.run(FhirDestination("ehr", spec).start())


def bearer(body: Callable[[SimulatedEhr, FhirDestination], Awaitable[None]], auth: Any) -> None:
    async def main() -> None:
        async with SimulatedEhr(auth="bearer", static_token="tok-current") as ehr:
            spec = {"type": "fhir", "base_url": ehr.base_url, "auth": auth}
            dest = FhirDestination("ehr", FhirDestinationSpec.model_validate(spec))
            await dest.start()
            try:
                await asyncio.wait_for(body(ehr, dest), 20)
            finally:
                await dest.close()

    asyncio.run(main())


def test_bearer_token_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    async def good(ehr: SimulatedEhr, dest: FhirDestination) -> None:
        assert isinstance((await dest.send([delivery(PATIENT)]))[0], Sent)

    async def wrong(ehr: SimulatedEhr, dest: FhirDestination) -> None:
        (refused,) = await dest.send([delivery(PATIENT)])
        assert isinstance(refused, Transient) and refused.reason.startswith("HTTP 401")
        assert "tok-" not in refused.reason
        assert [r.status for r in ehr.requests] == [401]

    auth = {"type": "bearer", "token_env": "EHR_TOKEN"}
    monkeypatch.setenv("EHR_TOKEN", "tok-current")
    bearer(good, auth)
    monkeypatch.setenv("EHR_TOKEN", "tok-revoked")
    bearer(wrong, auth)
    monkeypatch.delenv("EHR_TOKEN")
    with pytest.raises(ValueError, match="EHR_TOKEN is not set"):
        bearer(good, auth)


def test_bearer_token_file_is_read_again_after_a_401(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok-old\n")

    async def body(ehr: SimulatedEhr, dest: FhirDestination) -> None:
        token_file.write_text("tok-current\n")
        assert isinstance((await dest.send([delivery(PATIENT)]))[0], Sent)
        assert [r.status for r in ehr.requests] == [401, 200]

    bearer(body, {"type": "bearer", "token_file": str(token_file)})
