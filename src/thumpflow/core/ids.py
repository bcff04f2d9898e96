"""Identifiers: ULIDs for events, stable keys for deliveries.

ULIDs sort by creation time (millisecond precision) and are unique without
coordination; within one process, ids minted in the same millisecond are
strictly increasing (monotonic ULID), so sorting ids reproduces mint order.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0
_RAND_MAX = (1 << 80) - 1


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_ulid(now_ms: int | None = None) -> str:
    """Return a new 26-character ULID, monotonic within this process."""
    global _last_ms, _last_rand
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
            if rand > _RAND_MAX:
                ms += 1
                rand = int.from_bytes(os.urandom(10), "big") >> 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1
        _last_ms, _last_rand = ms, rand
    return _encode(ms, 10) + _encode(rand, 16)


def delivery_key(event_id: str, destination_id: str) -> str:
    """The egress idempotency key of one delivery.

    Stable across retries, restarts and replays of the same delivery, so a
    receiver that records it (HTTP `Idempotency-Key`, the file destination's
    journal) can drop a resend.
    """
    return f"{event_id}.{destination_id}"


def derived_ulid(source_event_id: str, purpose: str) -> str:
    """The id of the event derived from `source_event_id` for `purpose`, the same every time.

    The first 10 characters (the millisecond timestamp) are the source's, so
    the derived event sorts with its cause; the other 16 are 80 bits of the
    SHA-256 of the source id and the purpose. Running a transform again (a
    replay, a restart before commit) gives the same id; two purposes give two.
    """
    digest = hashlib.sha256(f"{source_event_id}\x1f{purpose}".encode()).digest()
    return source_event_id[:10] + _encode(int.from_bytes(digest[:10], "big"), 16)
