"""SMART Backend Services and static bearer tokens, with real RS384 and ES384 keys."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tests.ehr.support import ClientKey, patient, send, token_form, with_ehr
from thumpflow.testing.ehr import SimulatedEhr


async def token_request(
    session: aiohttp.ClientSession, ehr: SimulatedEhr, form: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    async with session.post(ehr.token_url, data=form) as response:
        assert response.headers["Cache-Control"] == "no-store"
        return response.status, await response.json()


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_smart_token_flow_grants_access(alg: str) -> None:
    key = ClientKey.generate(alg)

    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.register_client("engine", key.jwks())
        status, outcome, response = await send(session, "GET", f"{ehr.base_url}/Patient")
        assert status == 401 and outcome["resourceType"] == "OperationOutcome"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

        status, config, _ = await send(
            session, "GET", f"{ehr.base_url}/.well-known/smart-configuration"
        )
        assert status == 200
        assert config["token_endpoint"] == ehr.token_url
        assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {
            "RS384",
            "ES384",
        }
        assert "client_credentials" in config["grant_types_supported"]
        _, cap, _ = await send(session, "GET", f"{ehr.base_url}/metadata")
        oauth = cap["rest"][0]["security"]["extension"][0]["extension"]
        assert oauth == [{"url": "token", "valueUri": ehr.token_url}]

        status, token = await token_request(
            session, ehr, token_form(key.assertion("engine", ehr.token_url))
        )
        assert status == 200, token
        assert token["token_type"] == "bearer" and token["expires_in"] == 300
        assert token["scope"] == "system/*.read system/*.write"
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        status, _, _ = await send(
            session, "POST", f"{ehr.base_url}/Patient", patient("1"), headers=bearer
        )
        assert status == 201
        status, found, _ = await send(session, "GET", f"{ehr.base_url}/Patient", headers=bearer)
        assert status == 200 and found["total"] == 1
        status, _, response = await send(
            session, "GET", f"{ehr.base_url}/Patient", headers={"Authorization": "Bearer nope"}
        )
        assert status == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]

    with_ehr(body, auth="smart")


def test_assertion_failures_are_invalid_client() -> None:
    key = ClientKey.generate("ES384")
    stranger = ClientKey.generate("ES384")
    rsa_key = ClientKey.generate("RS384")

    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.register_client("engine", key.jwks())
        url = ehr.token_url
        now = int(time.time())
        bad = {
            "wrong audience": key.assertion("engine", "https://elsewhere.example/token"),
            "expired": key.assertion("engine", url, exp=now - 60),
            "too long-lived": key.assertion("engine", url, exp=now + 3600),
            "no exp": key.assertion("engine", url, exp=None),
            "no jti": key.assertion("engine", url, jti=None),
            "wrong key": stranger.assertion("engine", url),
            "unregistered client": key.assertion("someone", url),
            "sub differs": key.assertion("engine", url, sub="other"),
            "wrong algorithm for the key": rsa_key.assertion("engine", url),
        }
        for label, assertion in bad.items():
            status, error = await token_request(session, ehr, token_form(assertion))
            assert (status, error["error"]) == (401, "invalid_client"), label

        replayed = key.assertion("engine", url)
        status, _ = await token_request(session, ehr, token_form(replayed))
        assert status == 200
        status, error = await token_request(session, ehr, token_form(replayed))
        assert (status, error["error"]) == (401, "invalid_client")
        assert "jti" in error["error_description"]

        head, _, signature = key.assertion("engine", url).split(".")
        other_claims = key.assertion("engine", url).split(".")[1]
        status, error = await token_request(
            session, ehr, token_form(f"{head}.{other_claims}.{signature}")
        )
        assert (status, error["error"]) == (401, "invalid_client")
        assert "signature" in error["error_description"]

    with_ehr(body, auth="smart")


def test_malformed_token_requests_are_400() -> None:
    key = ClientKey.generate("RS384")

    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.register_client("engine", key.jwks())
        good = token_form(key.assertion("engine", ehr.token_url))
        cases = [
            ({**good, "grant_type": "password"}, "unsupported_grant_type"),
            ({**good, "client_assertion_type": "urn:other"}, "invalid_request"),
            ({**good, "client_assertion": "not-a-jwt"}, "invalid_request"),
            ({k: v for k, v in good.items() if k != "scope"}, "invalid_request"),
            ({**good, "scope": "patient/*.read"}, "invalid_scope"),
        ]
        for form, expected in cases:
            status, error = await token_request(session, ehr, form)
            assert (status, error["error"]) == (400, expected), form

    with_ehr(body, auth="smart")


def test_scopes_limit_what_a_token_may_do() -> None:
    key = ClientKey.generate("ES384")

    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.register_client("engine", key.jwks())
        form = token_form(key.assertion("engine", ehr.token_url), scope="system/Patient.cu")
        _, token = await token_request(session, ehr, form)
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        status, _, _ = await send(
            session, "PUT", f"{ehr.base_url}/Patient/p", patient("1", id="p"), headers=bearer
        )
        assert status == 201
        status, outcome, _ = await send(session, "GET", f"{ehr.base_url}/Patient/p", headers=bearer)
        assert status == 403 and outcome["issue"][0]["code"] == "forbidden"
        status, _, _ = await send(
            session,
            "POST",
            f"{ehr.base_url}/Observation",
            {"resourceType": "Observation"},
            headers=bearer,
        )
        assert status == 403

    with_ehr(body, auth="smart")


def test_issued_tokens_expire() -> None:
    key = ClientKey.generate("ES384")

    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.register_client("engine", key.jwks())
        _, token = await token_request(
            session, ehr, token_form(key.assertion("engine", ehr.token_url))
        )
        assert token["expires_in"] == 0
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        await asyncio.sleep(0.3)
        status, _, _ = await send(session, "GET", f"{ehr.base_url}/Patient", headers=bearer)
        assert status == 401

    with_ehr(body, auth="smart", token_lifetime=0.2)


def test_static_bearer_token_mode() -> None:
    key = ClientKey.generate("ES384")

    async def body(ehr: SimulatedEhr, session: aiohttp.ClientSession) -> None:
        ehr.register_client("engine", key.jwks())
        status, _, _ = await send(
            session, "GET", f"{ehr.base_url}/Patient", headers={"Authorization": "Bearer s3cret"}
        )
        assert status == 200
        status, _, _ = await send(
            session, "GET", f"{ehr.base_url}/Patient", headers={"Authorization": "Basic s3cret"}
        )
        assert status == 401
        _, token = await token_request(
            session, ehr, token_form(key.assertion("engine", ehr.token_url))
        )
        issued = {"Authorization": f"Bearer {token['access_token']}"}
        status, _, _ = await send(session, "GET", f"{ehr.base_url}/Patient", headers=issued)
        assert status == 401

    with_ehr(body, auth="bearer", static_token="s3cret")


def test_bad_jwks_is_refused_at_registration() -> None:
    ehr = SimulatedEhr(auth="smart")
    with pytest.raises(ValueError):
        ehr.register_client("engine", {"keys": []})
    with pytest.raises(ValueError):
        ehr.register_client(
            "engine", {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}
        )
    with pytest.raises(ValueError):
        ehr.register_client("engine", {"keys": [{"kty": "oct", "k": "AAAA"}]})
