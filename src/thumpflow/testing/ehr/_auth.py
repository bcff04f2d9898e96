"""SMART Backend Services for the simulated EHR: JWT client assertions and bearer tokens.

The token endpoint takes `grant_type=client_credentials` with a
`client_assertion` JWT (`client_assertion_type`
`urn:ietf:params:oauth:client-assertion-type:jwt-bearer`) signed RS384 or
ES384 by a key in the client's registered JWKS. The assertion must have
`iss` = `sub` = a registered client id, `aud` = the token URL, an `exp` in
the future but at most five minutes away, and a `jti` not used before by
that client (remembered until its `exp`). Errors follow RFC 6749 §5.2:
400 `invalid_request` (a parameter missing or malformed, an assertion that
is not a JWT), 400 `unsupported_grant_type`, 400 `invalid_scope`, and 401
`invalid_client` for every authentication failure (unknown client, wrong
algorithm or key, bad signature, wrong audience, expired, too long-lived,
replayed).

Issued tokens are opaque, kept in memory only (a restarted simulator
forgets them, so a client must fetch a new one on 401) and grant exactly
the scopes requested, which must all be `system/` scopes (SMART v1
`.read`/`.write`/`.*` or v2 `.cruds` letters). Static bearer tokens grant
`system/*.*`.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SIGNING_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = 300.0
CLOCK_SKEW = 5.0
_KEY_TYPES = {"RS384": "RSA", "ES384": "EC"}
_ES384_SIGNATURE_BYTES = 96
_STATIC_SCOPES = frozenset({"system/*.*"})

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class TokenError(Exception):
    """A token request refused: answered `status` with `{"error", "error_description"}`."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid bearer token allows."""

    scopes: frozenset[str]
    expires_at: float

    def allows(self, type_: str, permission: str) -> bool:
        """Whether a `system/` scope covers `permission` (a letter of "cruds") on `type_`."""
        for scope in self.scopes:
            if not scope.startswith("system/"):
                continue
            resource, _, access = scope.removeprefix("system/").partition(".")
            access = access.split("?", 1)[0]
            if resource not in ("*", type_):
                continue
            if access == "*":
                return True
            if access == "read" and permission in "rs":
                return True
            if access == "write" and permission in "cud":
                return True
            if set(access) <= set("cruds") and permission in access:
                return True
        return False


def b64url_decode(text: str) -> bytes:
    """Base64url without padding, as JOSE uses it; raises ValueError."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"not base64url: {err}") from None


def public_key(jwk: Mapping[str, Any]) -> PublicKey:
    """The public key of an RSA or P-384 EC JWK; raises ValueError on anything else."""
    kty = jwk.get("kty")
    try:
        if kty == "RSA":
            n = int.from_bytes(b64url_decode(str(jwk["n"])), "big")
            e = int.from_bytes(b64url_decode(str(jwk["e"])), "big")
            return rsa.RSAPublicNumbers(e, n).public_key()
        if kty == "EC":
            if jwk.get("crv") != "P-384":
                raise ValueError(f"EC keys must be on P-384, not {jwk.get('crv')!r}")
            x = int.from_bytes(b64url_decode(str(jwk["x"])), "big")
            y = int.from_bytes(b64url_decode(str(jwk["y"])), "big")
            return ec.EllipticCurvePublicNumbers(x, y, ec.SECP384R1()).public_key()
    except KeyError as err:
        raise ValueError(f"JWK lacks {err.args[0]!r}") from None
    raise ValueError(f"unsupported JWK kty {kty!r}")


def _verify(alg: str, key: PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        if alg == "RS384" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA384())
            return True
        if alg == "ES384" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != _ES384_SIGNATURE_BYTES:
                return False
            half = _ES384_SIGNATURE_BYTES // 2
            r = int.from_bytes(signature[:half], "big")
            s = int.from_bytes(signature[half:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA384()))
            return True
    except InvalidSignature:
        return False
    return False


def _invalid_client(description: str) -> TokenError:
    return TokenError(401, "invalid_client", description)


def _invalid_request(description: str) -> TokenError:
    return TokenError(400, "invalid_request", description)


class SmartAuthority:
    """Registered clients, used assertion ids and issued tokens.

    Tokens live `token_lifetime` seconds (reported as `expires_in`).
    """

    def __init__(self, token_lifetime: float = 300.0) -> None:
        self.token_lifetime = token_lifetime
        self._clients: dict[str, list[tuple[dict[str, Any], PublicKey]]] = {}
        self._used_jti: dict[tuple[str, str], float] = {}
        self._tokens: dict[str, Grant] = {}
        self._static: set[str] = set()

    def register_client(self, client_id: str, jwks: Mapping[str, Any]) -> None:
        """Register (or replace) a client's public keys; raises ValueError on a bad JWKS."""
        keys = jwks.get("keys")
        if not isinstance(keys, list) or not keys:
            raise ValueError("a JWKS needs a non-empty 'keys' array")
        loaded = []
        for jwk in keys:
            if not isinstance(jwk, dict):
                raise ValueError("each JWKS key must be an object")
            loaded.append((dict(jwk), public_key(jwk)))
        self._clients[client_id] = loaded

    def add_static_token(self, token: str) -> None:
        """Accept `token` as a bearer token that never expires, granting `system/*.*`."""
        if not token:
            raise ValueError("a static token must not be empty")
        self._static.add(token)

    def issue(self, form: Mapping[str, str], token_url: str) -> dict[str, Any]:
        """Verify a token request and issue a token; raises TokenError."""
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _invalid_request("grant_type is required")
        if grant_type != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", "only client_credentials is supported")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise _invalid_request(f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion")
        if not assertion:
            raise _invalid_request("client_assertion is required")
        scope = form.get("scope", "")
        scopes = frozenset(scope.split())
        if not scopes:
            raise _invalid_request("scope is required")
        if any(not s.startswith("system/") or "." not in s for s in scopes):
            raise TokenError(400, "invalid_scope", "only system/ scopes are granted")
        claims = self._verify_assertion(assertion, token_url)
        now = time.time()
        token = secrets.token_urlsafe(32)
        self._tokens = {t: g for t, g in self._tokens.items() if g.expires_at > now}
        self._tokens[token] = Grant(scopes, now + self.token_lifetime)
        self._used_jti = {k: exp for k, exp in self._used_jti.items() if exp > now}
        self._used_jti[(claims["iss"], claims["jti"])] = float(claims["exp"])
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": int(self.token_lifetime),
            "scope": " ".join(sorted(scopes)),
        }

    def grant(self, token: str) -> Grant | None:
        """The grant of a valid, unexpired token, else None."""
        if token in self._static:
            return Grant(_STATIC_SCOPES, float("inf"))
        grant = self._tokens.get(token)
        if grant is None or grant.expires_at <= time.time():
            return None
        return grant

    def _verify_assertion(self, assertion: str, token_url: str) -> dict[str, Any]:
        parts = assertion.split(".")
        if len(parts) != 3:
            raise _invalid_request("client_assertion is not a compact JWS")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            signature = b64url_decode(parts[2])
        except ValueError as err:
            raise _invalid_request(f"client_assertion is not a JWT: {err}") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise _invalid_request("client_assertion is not a JWT")
        alg = header.get("alg")
        if alg not in SIGNING_ALGORITHMS:
            raise _invalid_client(f"alg {alg!r} is not accepted (RS384 or ES384)")
        client_id = claims.get("iss")
        if not isinstance(client_id, str) or claims.get("sub") != client_id:
            raise _invalid_client("iss and sub must both be the client id")
        keys = self._clients.get(client_id)
        if keys is None:
            raise _invalid_client("unknown client")
        kid = header.get("kid")
        candidates = [
            key
            for jwk, key in keys
            if jwk.get("kty") == _KEY_TYPES[alg]
            and jwk.get("alg", alg) == alg
            and (kid is None or jwk.get("kid") == kid)
        ]
        if not candidates:
            raise _invalid_client("no registered key of the client matches the JWT header")
        data = f"{parts[0]}.{parts[1]}".encode("ascii")
        if not any(_verify(alg, key, signature, data) for key in candidates):
            raise _invalid_client("the signature does not verify")
        audience = claims.get("aud")
        if audience != token_url and not (isinstance(audience, list) and token_url in audience):
            raise _invalid_client("aud must be the token URL")
        now = time.time()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise _invalid_client("exp is required")
        if exp <= now - CLOCK_SKEW:
            raise _invalid_client("the assertion has expired")
        if exp > now + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
            raise _invalid_client("exp must be at most five minutes in the future")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf > now + CLOCK_SKEW:
            raise _invalid_client("the assertion is not valid yet (nbf)")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _invalid_client("jti is required")
        if (client_id, jti) in self._used_jti:
            raise _invalid_client("jti was already used")
        return claims
