"""Signed JWTs (JWS compact form) for SMART Backend Services client assertions.

Only what RFC 7523 client authentication needs: RS384 (RSASSA-PKCS1-v1_5 with
SHA-384) and ES384 (ECDSA P-384 with SHA-384, signature in the JOSE raw
`r || s` form of RFC 7518 §3.4, not DER). Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_private_key

Algorithm = Literal["RS384", "ES384"]
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_P384_BYTES = 48


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def load_signing_key(pem: bytes, algorithm: Algorithm) -> SigningKey:
    """Parse an unencrypted PEM private key and check that it suits `algorithm`.

    Raises ValueError (without any key material in the message) when the key
    cannot be parsed or is of the wrong kind: RS384 needs an RSA key of at
    least 2048 bits, ES384 an EC key on P-384.
    """
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("the private key file is not an unencrypted PEM private key") from exc
    if algorithm == "RS384":
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
            raise ValueError("RS384 needs an RSA private key of at least 2048 bits")
        return key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP384R1):
        raise ValueError("ES384 needs an EC private key on curve P-384")
    return key


def sign_jwt(
    claims: Mapping[str, object], key: SigningKey, algorithm: Algorithm, key_id: str
) -> str:
    """The compact JWS of `claims` with header `{alg, kid, typ: JWT}`."""
    header = {"alg": algorithm, "kid": key_id, "typ": "JWT"}
    signing_input = f"{_segment(header)}.{_segment(claims)}".encode("ascii")
    if algorithm == "RS384":
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA384())
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA384())))
        signature = r.to_bytes(_P384_BYTES, "big") + s.to_bytes(_P384_BYTES, "big")
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"


def _segment(value: Mapping[str, object]) -> str:
    return b64url(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())
