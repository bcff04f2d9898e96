"""Payload encryption at rest: AES-256-GCM over every column that holds message content.

A sealed value is `MAGIC || len(key_id) || key_id || nonce (12 random bytes)
|| ciphertext || tag`, stored as a BLOB; the associated data is the column's
name (`events.body`, ...), so a sealed value moved to another column does
not open. The first key seals, every configured key opens (rotation). A
value that is not sealed (written before encryption was configured, or a
text column's plain `str`) is read as it is; `store rekey` seals it.

Keys never leave this module's objects: they are not logged, stored or
printed; errors name the key id only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from thumpflow.core.errors import StoreError

MAGIC = b"\x00TFE"
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_NONCE = 12
_CHECK = b"thumpflow payload key check"
_CHECK_COLUMN = b"cipher_keys.check_value"

EVENT_BODY = b"events.body"
REJECT_RAW = b"rejects.raw"
ROW_REJECT_RECORD = b"row_rejects.record"
DELIVERY_ERROR = b"deliveries.last_error"
DELIVERY_REASON = b"deliveries.reason"
ATTEMPT_DETAIL = b"attempts.detail"


def key_of(value: object) -> str | None:
    """The key id a stored value is sealed under, None when it is not sealed."""
    if not isinstance(value, bytes) or not value.startswith(MAGIC) or len(value) < 5:
        return None
    length = value[4]
    return value[5 : 5 + length].decode("ascii", "replace")


class Codec:
    """No encryption: values are stored as they are; a sealed value is refused when read."""

    encrypts = False
    current_id: str | None = None

    def seal(self, data: bytes, column: bytes) -> bytes:
        return data

    def seal_text(self, text: str | None, column: bytes) -> str | bytes | None:
        return text

    def open(self, value: bytes, column: bytes) -> bytes:
        """The plaintext; raises `StoreError` naming the key of a sealed value."""
        key_id = key_of(value)
        if key_id is not None:
            raise StoreError(
                f"the store holds values encrypted with key {key_id!r} and no "
                "store.encryption is configured"
            )
        return value

    def open_text(self, value: str | bytes | None, column: bytes) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return self.open(value, column).decode("utf-8")


class PayloadCipher(Codec):
    """AES-256-GCM with a key ring: `keys[0]` seals, every key opens."""

    encrypts = True

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._keys: dict[str, AESGCM] = {}
        self._prefixes: dict[str, bytes] = {}
        for key_id, key in keys:
            if not KEY_ID.fullmatch(key_id):
                raise ValueError(f"key id {key_id!r} is not 1-64 of A-Z a-z 0-9 . _ -")
            if len(key) != 32:
                raise ValueError(f"key {key_id!r} is {len(key)} bytes; AES-256 needs 32")
            if key_id in self._keys:
                raise ValueError(f"key id {key_id!r} is given twice")
            self._keys[key_id] = AESGCM(key)
            self._prefixes[key_id] = MAGIC + bytes([len(key_id)]) + key_id.encode("ascii")
        self.current_id = keys[0][0]
        self._current = self._keys[self.current_id]
        self._prefix = self._prefixes[self.current_id]

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def prefix(self, key_id: str) -> bytes:
        """The bytes every value sealed under `key_id` starts with."""
        return self._prefixes[key_id]

    def seal(self, data: bytes, column: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return self._prefix + nonce + self._current.encrypt(nonce, data, column)

    def seal_text(self, text: str | None, column: bytes) -> str | bytes | None:
        return None if text is None else self.seal(text.encode("utf-8"), column)

    def open(self, value: bytes, column: bytes) -> bytes:
        key_id = key_of(value)
        if key_id is None:
            return value
        aead = self._keys.get(key_id)
        if aead is None:
            raise StoreError(
                f"a stored value is encrypted with key {key_id!r}, which store.encryption "
                "does not list; add it back to `keys` (after the current key)"
            )
        start = 5 + len(key_id)
        nonce = value[start : start + _NONCE]
        try:
            return aead.decrypt(nonce, value[start + _NONCE :], column)
        except InvalidTag:
            raise StoreError(
                f"a stored value does not decrypt with key {key_id!r}: the key is wrong or "
                "the value was altered"
            ) from None

    def check_value(self, key_id: str) -> bytes:
        """A known value sealed under `key_id`, kept in `cipher_keys` to detect a wrong key."""
        nonce = os.urandom(_NONCE)
        return (
            self._prefixes[key_id]
            + nonce
            + self._keys[key_id].encrypt(nonce, _CHECK, _CHECK_COLUMN)
        )

    def matches(self, key_id: str, check_value: bytes) -> bool:
        """Whether the configured key `key_id` opens the store's check value for that id."""
        try:
            return self.open(check_value, _CHECK_COLUMN) == _CHECK
        except StoreError:
            return False


def check_keys(stored: dict[str, bytes], codec: Codec) -> list[str]:
    """Refuse keys that do not fit the store; return the configured key ids it does not know.

    `stored` maps the key ids in `cipher_keys` to their check values. Raises
    `StoreError` naming the key id when the store has encrypted values but no
    encryption is configured, when a key the store still uses is not
    configured, or when a configured key is not the one the store knows
    under that id.
    """
    if not isinstance(codec, PayloadCipher):
        if stored:
            names = ", ".join(repr(key_id) for key_id in sorted(stored))
            raise StoreError(
                f"the store holds values encrypted with key(s) {names}; configure "
                "store.encryption with those keys"
            )
        return []
    configured = set(codec.key_ids)
    for key_id in sorted(stored):
        if key_id not in configured:
            raise StoreError(
                f"the store holds values encrypted with key {key_id!r}, which "
                "store.encryption does not list; add it back to `keys` (after the current key), "
                "then run `thumpflow store rekey` before removing it"
            )
        if not codec.matches(key_id, stored[key_id]):
            raise StoreError(
                f"store.encryption key {key_id!r} is not the key this store was encrypted "
                "with under that id (wrong key)"
            )
    return [key_id for key_id in codec.key_ids if key_id not in stored]
