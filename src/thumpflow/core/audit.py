"""The tamper-evident audit trail: the hash chain and how a chain is checked. Pure, no I/O.

Each audit entry stores the hash of the entry before it (`prev_hash`) and its
own `hash = SHA-256(prev_hash || canonical(entry_id, at, actor, action,
subject, detail))`, hex encoded; the first entry's `prev_hash` is
`GENESIS` (64 zeros). `canonical` is the UTF-8 JSON array of the six
values with no spaces, `at` as a float (its shortest round-trip form).

What the chain proves: an entry edited in place (its content no longer
matches its hash), an entry deleted from the middle (the next entry's link
points at a hash that is not there), entries swapped (an entry links to
the hash of an entry stored after it) and an entry linked to anything else
(a bad link). What it cannot prove on its own: that the newest entries
were not deleted (tail truncation), or that the whole chain was not
recomputed by someone who rewrote it; both are caught by comparing with an
anchor (an entry id and its hash) recorded outside the database, which
`check_chain` does when given `expect`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

GENESIS = "0" * 64


# The hashed values of one entry: entry_id, at, actor, action, subject, detail.
EntryFields = tuple[int, float, str, str, str, str]


# One encoder for every entry (what `json.dumps` with these options builds per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def canonical(entry: EntryFields) -> bytes:
    """The bytes an entry's hash covers (besides the previous hash)."""
    entry_id, at, actor, action, subject, detail = entry
    return _ENCODER.encode([entry_id, float(at), actor, action, subject, detail]).encode("utf-8")


def entry_hash(prev_hash: str, entry: EntryFields) -> str:
    """The chain hash of one entry, hex encoded (see the module docstring)."""
    digest = hashlib.sha256(bytes.fromhex(prev_hash))
    digest.update(canonical(entry))
    return digest.hexdigest()


class Breach(StrEnum):
    """What is wrong at the first broken entry."""

    EDITED = "edited"
    DELETED = "deleted"
    REORDERED = "reordered"
    BAD_LINK = "bad link"
    UNCHAINED = "unchained"
    TRUNCATED = "truncated"
    ANCHOR_MISMATCH = "anchor mismatch"


@dataclass(slots=True, frozen=True)
class Anchor:
    """An entry id and its hash, kept outside the database to detect truncation or rewriting."""

    entry_id: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """`ID:HASH` (as logged in `audit.anchor` lines); raises `ValueError` naming the fault."""
        entry, sep, digest = text.partition(":")
        if not sep or not entry.strip().isdigit():
            raise ValueError(f"not an anchor {text!r}: expected ID:HASH, e.g. 1042:9f86d0…")
        digest = digest.strip().lower()
        if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
            raise ValueError(f"not an anchor {text!r}: the hash must be 64 hex digits")
        return cls(int(entry), digest)

    def __str__(self) -> str:
        return f"{self.entry_id}:{self.hash}"


@dataclass(slots=True, frozen=True)
class AuditVerdict:
    """The result of checking the chain.

    `intact` when no entry is broken (and `expect`, if given, matched).
    `count` entries were checked; `head` is the newest entry's anchor (None
    for an empty trail). When broken, `entry_id` is the first broken entry
    (for truncation: the anchor's entry) and `problem` says what is wrong.
    """

    intact: bool
    count: int
    head: Anchor | None
    entry_id: int | None = None
    breach: Breach | None = None
    problem: str = ""


# One stored entry: entry_id, at, actor, action, subject, detail, prev_hash, hash.
ChainRow = tuple[int, float, str, str, str, str, str | None, str | None]


def check_chain(
    rows: Iterable[ChainRow],
    holder_of: Callable[[str], int | None],
    expect: Anchor | None = None,
) -> AuditVerdict:
    """Walk `rows` (in entry id order) and report the first broken entry.

    `holder_of(hash)` answers the id of the entry whose stored hash that is,
    or None; it is asked only when a link is broken, to tell a reordering
    from a bad link. A gap in entry ids whose link still holds is not a fault
    (entries chained on migration keep the ids they had).
    """
    expected_prev = GENESIS
    previous_id = 0
    count = 0
    head: Anchor | None = None
    anchor_seen = expect is None
    for entry_id, at, actor, action, subject, detail, prev_hash, stored in rows:
        if prev_hash is None or stored is None:
            return _broken(
                count, head, entry_id, Breach.UNCHAINED, "has no hash: inserted outside the chain"
            )
        if prev_hash != expected_prev:
            if entry_id != previous_id + 1:
                through = "" if entry_id == previous_id + 2 else f" through entry {entry_id - 1}"
                return _broken(
                    count,
                    head,
                    previous_id + 1,
                    Breach.DELETED,
                    f"deleted{through} (entry {entry_id} links to a hash no longer present)",
                )
            holder = holder_of(prev_hash)
            if holder is not None and holder != previous_id:
                return _broken(
                    count,
                    head,
                    entry_id,
                    Breach.REORDERED,
                    f"out of order: it links to entry {holder}, which is stored after it",
                )
            return _broken(
                count,
                head,
                entry_id,
                Breach.BAD_LINK,
                f"bad link: its previous hash is not entry {previous_id}'s hash",
            )
        if entry_hash(prev_hash, (entry_id, at, actor, action, subject, detail)) != stored:
            return _broken(
                count, head, entry_id, Breach.EDITED, "edited: its content does not match its hash"
            )
        count += 1
        head = Anchor(entry_id, stored)
        expected_prev = stored
        previous_id = entry_id
        if expect is not None and entry_id == expect.entry_id:
            if stored != expect.hash:
                return _broken(
                    count,
                    head,
                    entry_id,
                    Breach.ANCHOR_MISMATCH,
                    "does not match the expected anchor: the trail was rewritten from here back",
                )
            anchor_seen = True
    if not anchor_seen:
        assert expect is not None
        if head is not None and expect.entry_id < head.entry_id:
            return _broken(
                count, head, expect.entry_id, Breach.DELETED, "(the expected anchor) is missing"
            )
        last = "is empty" if head is None else f"ends at entry {head.entry_id}"
        return _broken(
            count,
            head,
            expect.entry_id,
            Breach.TRUNCATED,
            f"is missing: the trail {last}, so its newest entries were deleted",
        )
    return AuditVerdict(True, count, head)


def _broken(
    count: int, head: Anchor | None, entry_id: int, breach: Breach, problem: str
) -> AuditVerdict:
    return AuditVerdict(False, count, head, entry_id, breach, f"entry {entry_id} {problem}")
