"""Random edits of HL7 v2 messages, for fuzzing what reads them.

`mutate(raw, rng)` applies 1-6 edits to a message's bytes, each one of: a
delimiter (or segment separator) put in place of a byte, a hostile snippet
inserted (escapes, `""`, huge and malformed numbers and dates, control bytes,
invalid UTF-8, coding systems, a space inside an OID), a run of bytes deleted,
a segment duplicated or dropped (never MSH), printable noise inserted; or, on
the message's structure: another message type in MSH-9 (so segments meet a
map not made for them), two neighbouring segments swapped, a field repeated
up to 60 times, a value far past a segment's last field. The result is
deterministic for a given `random.Random` state, so a seeded run is
a repeatable test (`tests/mappings/test_mutated_inputs.py`) and an unseeded
one a fuzzer (`bench/convert_fuzz.py`).
"""

from __future__ import annotations

import random

DELIMITERS = b"|^~&\\\r"
SNIPPETS: tuple[bytes, ...] = (
    b"\\X00\\",
    b"\\X0C01\\",
    b"\\E\\",
    b"\\.br\\",
    b"\\Zcustom\\",
    b'""',
    b"~",
    b"^^^^",
    b"&&&&&",
    b"99999999999999999999",
    b"9" * 400,
    b"1" * 400 + b".5",
    b"-1",
    b"1e400",
    b"+.5",
    b"^>^100",
    b"1^:^2",
    b"0000",
    b"0000-0500",
    b"20230229",
    b"200403011432-1445",
    b"\xff\xfe",
    b"\x00",
    b"\x0c",
    "é".encode(),
    b"CDCREC",
    b"HL70189",
    b"N",
    b"NA",
    b"ED",
    b"SN",
    b"urn:oid:",
    b"1.2 3",
    b" ",
)


# Message types put in MSH-9: structures with maps, and one without.
MESSAGE_TYPES: tuple[bytes, ...] = (
    b"ADT^A01^ADT_A01",
    b"ADT^A17^ADT_A17",
    b"ADT^A20",
    b"ORU^R01^ORU_R01",
    b"ORM^O01",
    b"OML^O21",
    b"VXU^V04",
    b"SIU^S12",
    b"MDM^T02",
    b"RDE^O11",
    b"DFT^P03",
    b"REF^I12",
    b"PPR^PC1",
    b"ZZZ^Z99",
)


def _restructure(segments: list[bytes], rng: random.Random) -> list[bytes]:
    """One edit of the message's structure (see the module docstring)."""
    op = rng.randrange(4)
    i = rng.randrange(1, len(segments))
    fields = segments[i].split(b"|")
    if op == 0:
        msh = segments[0].split(b"|")
        if len(msh) > 8:
            msh[8] = rng.choice(MESSAGE_TYPES)
            segments[0] = b"|".join(msh)
    elif op == 1 and i + 1 < len(segments):
        segments[i], segments[i + 1] = segments[i + 1], segments[i]
    elif op == 2 and len(fields) > 2:
        j = rng.randrange(1, len(fields))
        fields[j] = b"~".join([fields[j] or b"X"] * rng.randint(2, 60))
        segments[i] = b"|".join(fields)
    else:
        segments[i] += b"|" * rng.randint(1, 80) + b"X^Y"
    return segments


def mutate(raw: bytes, rng: random.Random) -> bytes:
    """`raw` with 1-6 random edits (see the module docstring)."""
    out = bytearray(raw)
    for _ in range(rng.randint(1, 6)):
        op, at = rng.randrange(7), rng.randrange(len(out) + 1)
        segments = bytes(out).split(b"\r")
        if op == 0 and out:
            out[rng.randrange(len(out))] = rng.choice(DELIMITERS)
        elif op == 1:
            out[at:at] = rng.choice(SNIPPETS)
        elif op == 2:
            del out[at : at + rng.randint(1, 20)]
        elif op == 3 and len(segments) > 2:
            segments.insert(rng.randrange(1, len(segments)), rng.choice(segments[1:]))
            out = bytearray(b"\r".join(segments))
        elif op == 4 and len(segments) > 2:
            del segments[rng.randrange(1, len(segments))]
            out = bytearray(b"\r".join(segments))
        elif op == 5 and len(segments) > 1:
            out = bytearray(b"\r".join(_restructure(segments, rng)))
        else:
            out[at:at] = bytes(rng.randrange(32, 127) for _ in range(rng.randint(1, 8)))
    return bytes(out)
