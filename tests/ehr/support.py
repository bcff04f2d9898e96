"""Helpers for the simulated EHR tests: a running EHR with a client session, keys and JWTs."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from thumpflow.testing.ehr import SimulatedEhr

MRN = "http://hospital.example/mrn"
FHIR_JSON = "application/fhir+json"


def with_ehr(
    body: Callable[[SimulatedEhr, aiohttp.ClientSession], Awaitable[None]],
    timeout: float = 20.0,
    **kw: Any,
) -> None:
    """Run `body` against a started EHR (closed afterwards), within `timeout` seconds."""

    async def main() -> None:
        async with SimulatedEhr(**kw) as ehr, aiohttp.ClientSession() as session:
            await asyncio.wait_for(body(ehr, session), timeout)

    asyncio.run(main())


def patient(mrn: str, family: str = "Test", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": mrn}],
        "name": [{"family": family}],
        **extra,
    }


def entry(
    method: str, url: str, resource: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    """A Bundle entry; `full_url`, `if_none_exist`, `if_match` keywords go where FHIR wants them."""
    request: dict[str, Any] = {"method": method, "url": url}
    if "if_none_exist" in kw:
        request["ifNoneExist"] = kw["if_none_exist"]
    if "if_match" in kw:
        request["ifMatch"] = kw["if_match"]
    result: dict[str, Any] = {}
    if "full_url" in kw:
        result["fullUrl"] = kw["full_url"]
    if resource is not None:
        result["resource"] = resource
    result["request"] = request
    return result


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """One request; returns (status, JSON body or None, response)."""
    data = None if body is None else json.dumps(body)
    all_headers = {"Content-Type": FHIR_JSON} if body is not None else {}
    all_headers.update(headers or {})
    async with session.request(method, url, data=data, headers=all_headers) as response:
        raw = await response.read()
        return response.status, json.loads(raw) if raw else None, response


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int, size: int | None = None) -> bytes:
    return value.to_bytes(size or (value.bit_length() + 7) // 8, "big")


@dataclass
class ClientKey:
    """A SMART client's key pair: its public JWKS and a signer of assertions."""

    alg: str
    kid: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, alg: str) -> ClientKey:
        if alg == "RS384":
            return cls(alg, f"rsa-{uuid.uuid4().hex[:8]}", rsa.generate_private_key(65537, 2048))
        return cls(alg, f"ec-{uuid.uuid4().hex[:8]}", ec.generate_private_key(ec.SECP384R1()))

    def jwks(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            key = {
                "kty": "RSA",
                "n": b64url(_int_bytes(numbers.n)),
                "e": b64url(_int_bytes(numbers.e)),
            }
        else:
            point = public.public_numbers()
            key = {
                "kty": "EC",
                "crv": "P-384",
                "x": b64url(_int_bytes(point.x, 48)),
                "y": b64url(_int_bytes(point.y, 48)),
            }
        return {"keys": [{**key, "kid": self.kid, "alg": self.alg, "use": "sig"}]}

    def assertion(self, client_id: str, audience: str, **claims: Any) -> str:
        """A signed client assertion; keyword claims override the defaults (None removes one)."""
        now = time.time()
        payload: dict[str, Any] = {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "exp": int(now) + 240,
            "jti": uuid.uuid4().hex,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        header = {"alg": self.alg, "kid": self.kid, "typ": "JWT"}
        signing_input = (
            f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
        )
        data = signing_input.encode("ascii")
        if isinstance(self.private, rsa.RSAPrivateKey):
            signature = self.private.sign(data, padding.PKCS1v15(), hashes.SHA384())
        else:
            r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA384())))
            signature = _int_bytes(r, 48) + _int_bytes(s, 48)
        return f"{signing_input}.{b64url(signature)}"


def token_form(assertion: str, scope: str = "system/*.write system/*.read") -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
        "scope": scope,
    }
