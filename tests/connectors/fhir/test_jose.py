"""JWT assertions: RS384 and ES384 signatures verify with the public key; keys are checked."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from thumpflow.connectors.auth._jose import b64url, load_signing_key, sign_jwt


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


CLAIMS = {"iss": "c", "sub": "c", "aud": "https://ehr/token", "exp": 2, "iat": 1, "jti": "j"}


def test_rs384_signature_verifies() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = sign_jwt(CLAIMS, load_signing_key(_pem(key), "RS384"), "RS384", "k1")
    header, claims, signature = token.split(".")
    assert json.loads(_unb64(header)) == {"alg": "RS384", "kid": "k1", "typ": "JWT"}
    assert json.loads(_unb64(claims)) == CLAIMS
    key.public_key().verify(
        _unb64(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA384()
    )


def test_es384_signature_is_raw_r_s_and_verifies() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    token = sign_jwt(CLAIMS, load_signing_key(_pem(key), "ES384"), "ES384", "k2")
    header, claims, signature = token.split(".")
    assert json.loads(_unb64(header))["alg"] == "ES384"
    raw = _unb64(signature)
    assert len(raw) == 96
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    key.public_key().verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA384()))


def test_keys_must_suit_the_algorithm() -> None:
    rsa_pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    p256_pem = _pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError, match="ES384 needs"):
        load_signing_key(rsa_pem, "ES384")
    with pytest.raises(ValueError, match="ES384 needs"):
        load_signing_key(p256_pem, "ES384")
    with pytest.raises(ValueError, match="RS384 needs"):
        load_signing_key(p256_pem, "RS384")
    with pytest.raises(ValueError, match="not an unencrypted PEM") as caught:
        load_signing_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "RS384")
    assert "AAAA" not in str(caught.value)


def test_b64url_has_no_padding() -> None:
    assert b64url(b"\xff\xfe") == "__4"
