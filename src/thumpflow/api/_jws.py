"""Verifying signed JWTs (JWS compact form): RS256 and ES256 with keys from a JWKS.

Pure functions, no I/O. Only RS256 (RSASSA-PKCS1-v1_5, SHA-256, RSA keys of
2048 bits or more) and ES256 (ECDSA P-256, SHA-256, signature as raw
`r || s`, RFC 7518 §3.4) are accepted; `none`, HMAC and every other
algorithm are refused, so a token cannot choose a weaker check.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
ALGORITHMS = frozenset({"RS256", "ES256"})
_P256_BYTES = 32
_MIN_RSA_BITS = 2048


class JwsError(ValueError):
    """A token that is not a well-formed, verifiable JWS; the message names why."""


@dataclass(slots=True, frozen=True)
class Jws:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def algorithm(self) -> str:
        return str(self.header.get("alg", ""))

    @property
    def key_id(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def _b64decode(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise JwsError("a segment is not base64url") from None


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise JwsError(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise JwsError(f"the {what} is not a JSON object")
    return value


def parse(token: str) -> Jws:
    """Split and decode a compact JWS; raises `JwsError` when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwsError("not a JWS (three dot-separated segments)")
    header = _json_object(parts[0], "header")
    if header.get("alg") not in ALGORITHMS:
        raise JwsError(f"algorithm {str(header.get('alg'))[:20]!r} is not accepted")
    return Jws(
        header=header,
        claims=_json_object(parts[1], "payload"),
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=_b64decode(parts[2]),
    )


def public_key(jwk: Mapping[str, Any]) -> tuple[str, PublicKey]:
    """(algorithm, key) of an RSA or P-256 JWK; raises `JwsError` for any other key."""
    kty = jwk.get("kty")
    try:
        if kty == "RSA":
            n = int.from_bytes(_b64decode(str(jwk["n"])), "big")
            e = int.from_bytes(_b64decode(str(jwk["e"])), "big")
            key = rsa.RSAPublicNumbers(e, n).public_key()
            if key.key_size < _MIN_RSA_BITS:
                raise JwsError("RSA key shorter than 2048 bits")
            return "RS256", key
        if kty == "EC" and jwk.get("crv") == "P-256":
            x = int.from_bytes(_b64decode(str(jwk["x"])), "big")
            y = int.from_bytes(_b64decode(str(jwk["y"])), "big")
            return "ES256", ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except (KeyError, ValueError) as err:
        raise JwsError(f"unusable JWK: {type(err).__name__}") from None
    raise JwsError(f"unsupported JWK type {str(kty)[:10]!r}")


def verify(jws: Jws, algorithm: str, key: PublicKey) -> bool:
    """True when `jws` carries `algorithm` and its signature verifies with `key`."""
    if jws.algorithm != algorithm:
        return False
    try:
        if algorithm == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(jws.signature, jws.signing_input, padding.PKCS1v15(), hashes.SHA256())
            return True
        if algorithm == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(jws.signature) != 2 * _P256_BYTES:
                return False
            r = int.from_bytes(jws.signature[:_P256_BYTES], "big")
            s = int.from_bytes(jws.signature[_P256_BYTES:], "big")
            key.verify(encode_dss_signature(r, s), jws.signing_input, ec.ECDSA(hashes.SHA256()))
            return True
    except InvalidSignature:
        return False
    return False
