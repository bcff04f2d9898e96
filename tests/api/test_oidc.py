"""OpenID Connect bearer tokens against a real local IdP (discovery + JWKS over HTTP)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from thumpflow.api.server import start_api
from thumpflow.config import parse_config
from thumpflow.runtime.engine import Engine

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def integer(value: int) -> str:
    return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def jwk(kid: str, key: Key) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "kid": kid,
            "use": "sig",
            "alg": "RS256",
            "n": integer(numbers.n),
            "e": integer(numbers.e),
        }
    point = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "kid": kid,
        "crv": "P-256",
        "use": "sig",
        "x": b64(point.x.to_bytes(32, "big")),
        "y": b64(point.y.to_bytes(32, "big")),
    }


def sign(claims: dict[str, Any], key: Key, kid: str | None, alg: str | None = None) -> str:
    algorithm = alg or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
    header: dict[str, Any] = {"alg": algorithm, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if algorithm == "none":
        return signing_input + "."
    data = signing_input.encode()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{b64(signature)}"


class Idp:
    """A tiny OpenID provider: discovery document and a JWKS the test can rotate."""

    def __init__(self) -> None:
        self.keys: dict[str, Key] = {}
        self.jwks_fetches = 0
        self._runner: web.AppRunner | None = None
        self.issuer = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.issuer = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _discovery(self, _: web.Request) -> web.Response:
        return web.json_response({"issuer": self.issuer, "jwks_uri": self.issuer + "/jwks"})

    async def _jwks(self, _: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response({"keys": [jwk(kid, key) for kid, key in self.keys.items()]})


CONFIG = """\
version: 1
store: {{path: {db}}}
api:
  port: 0
  oidc:
    issuer: {issuer}
    audience: thumpflow
    role_claim: realm_access.roles
    role_map: {{readers: viewer, oncall: operator, integration-admins: admin}}
    leeway: 5
    jwks_refresh_interval: 0.5
channels:
  - id: idp
    source: {{type: mllp, port: 0}}
    destinations:
      - {{id: out, type: file, path: {out}}}
"""


def test_oidc_tokens(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    async def main() -> None:
        idp = Idp()
        idp.keys = {"k1": rsa_key, "e1": ec_key}
        await idp.start()
        text = CONFIG.format(db=tmp_path / "o.db", issuer=idp.issuer, out=tmp_path / "o.hl7")
        engine = Engine(parse_config(text, "o.yaml"))
        await engine.start()
        server = await start_api(engine)
        base = f"http://127.0.0.1:{server.port}"

        def claims(**changes: Any) -> dict[str, Any]:
            now = time.time()
            value: dict[str, Any] = {
                "iss": idp.issuer,
                "aud": ["account", "thumpflow"],
                "sub": "f3a1",
                "preferred_username": "nurse.on.call",
                "exp": now + 300,
                "nbf": now - 5,
                "realm_access": {"roles": ["readers", "oncall"]},
            }
            value.update(changes)
            return value

        async def status(session: aiohttp.ClientSession, token: str, path: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(base + path, headers=headers) as response:
                return response.status

        try:
            async with aiohttp.ClientSession() as session:
                good = sign(claims(), rsa_key, "k1")
                assert await status(session, good, "/api/status") == 200
                async with session.post(
                    base + "/api/session", headers={"Authorization": f"Bearer {good}"}
                ) as response:
                    assert await response.json() == {
                        "name": "nurse.on.call",
                        "role": "operator",
                        "via": "oidc",
                    }
                assert await status(session, good, "/api/tokens") == 403
                admin = sign(
                    claims(realm_access={"roles": ["integration-admins"]}, aud="thumpflow"),
                    ec_key,
                    "e1",
                )
                assert await status(session, admin, "/api/tokens") == 200

                now = time.time()
                refused = {
                    "expired": sign(claims(exp=now - 60), rsa_key, "k1"),
                    "not yet valid": sign(claims(nbf=now + 60), rsa_key, "k1"),
                    "no exp": sign(
                        {k: v for k, v in claims().items() if k != "exp"}, rsa_key, "k1"
                    ),
                    "wrong audience": sign(claims(aud="someone-else"), rsa_key, "k1"),
                    "wrong issuer": sign(claims(iss="http://127.0.0.1:1"), rsa_key, "k1"),
                    "bad signature": sign(claims(), stranger, "k1"),
                    "unknown kid": sign(claims(), stranger, "nope"),
                    "alg none": sign(claims(), rsa_key, "k1", alg="none"),
                    "alg HS256": sign(claims(), rsa_key, "k1", alg="RS256").replace(
                        b64(b'{"alg": "RS256"'), b64(b'{"alg": "HS256"'), 1
                    ),
                    "RS256 kid with ES256 alg": sign(claims(), ec_key, "k1"),
                    "no mapped role": sign(
                        claims(realm_access={"roles": ["visitors"]}), rsa_key, "k1"
                    ),
                    "not a JWT": "tf_not-a-token",
                }
                for what, token in refused.items():
                    assert await status(session, token, "/api/status") == 401, what

                # Key rotation: the IdP publishes a new key; a token signed with it is
                # accepted once the engine refetches (at most every 0.5 s).
                idp.keys = {"k2": rotated}
                fresh = sign(claims(), rotated, "k2")
                deadline = time.monotonic() + 30
                while await status(session, fresh, "/api/status") != 200:
                    assert time.monotonic() < deadline, "rotated key never accepted"
                    await asyncio.sleep(0.1)
                fetches = idp.jwks_fetches
                for _ in range(20):
                    assert (
                        await status(session, sign(claims(), stranger, "x"), "/api/status") == 401
                    )
                assert idp.jwks_fetches <= fetches + 2, "unknown kids must not hammer the IdP"
        finally:
            await server.close()
            await engine.stop()
            await idp.close()

    asyncio.run(main())
