"""Store secrets (payload keys, the PostgreSQL password): read where the configuration points.

A key is 32 random bytes written as base64 (standard or URL-safe alphabet).
Every problem is a `ConfigError` naming the key id and the variable or file,
never the key's value.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from thumpflow.config.model import Encryption, EncryptionKey, StoreSpec
from thumpflow.core.errors import ConfigError
from thumpflow.store.crypt import PayloadCipher


def new_key() -> str:
    """A fresh random key, base64-encoded, for `thumpflow store keygen`."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def load_cipher(spec: Encryption | None) -> PayloadCipher | None:
    """The cipher for `store.encryption`, None without it; raises `ConfigError` per bad key."""
    if spec is None:
        return None
    problems: list[str] = []
    keys: list[tuple[str, bytes]] = []
    for key in spec.keys:
        try:
            keys.append((key.id, _read(key)))
        except ValueError as err:
            problems.append(f"store > encryption > key {key.id!r}: {err}")
    if problems:
        raise ConfigError(problems)
    return PayloadCipher(keys)


def _read(key: EncryptionKey) -> bytes:
    if key.key_env is not None:
        text = os.environ.get(key.key_env)
        if not text:
            raise ValueError(f"environment variable {key.key_env} is not set")
        where = f"environment variable {key.key_env}"
    else:
        assert key.key_file is not None
        try:
            text = Path(key.key_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or type(err).__name__
            raise ValueError(f"cannot read key file {key.key_file}: {reason}") from None
        where = f"key file {key.key_file}"
    text = text.strip()
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError(
            f"{where} does not hold a base64-encoded 32-byte key "
            "(generate one with `thumpflow store keygen`)"
        )
    return raw


def store_password(spec: StoreSpec) -> str | None:
    """The PostgreSQL store's password from `password_env` / `password_file`, None without.

    Raises `ConfigError` naming the variable or file (never a value) when it
    cannot be read.
    """
    if spec.password_env is not None:
        value = os.environ.get(spec.password_env)
        if not value:
            raise ConfigError(
                [f"store > password_env: environment variable {spec.password_env} is not set"]
            )
        return value
    if spec.password_file is not None:
        try:
            return Path(spec.password_file).read_text("utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or type(err).__name__
            raise ConfigError(
                [f"store > password_file: cannot read {spec.password_file}: {reason}"]
            ) from None
    return None
