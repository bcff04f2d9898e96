"""A digest of conversion output, to show a speed change leaves it byte for byte the same.

Run it on two checkouts and compare the last line:

    PYTHONPATH=<before>/src python bench/convert_digest.py
    PYTHONPATH=src python bench/convert_digest.py

The messages are every golden input under `tests/mappings` and VARIANTS
(default 20) variations of each (segments dropped or repeated, fields given
an extra repetition, components replaced by text full of delimiters and
escapes; seeded, so both runs see the same messages), plus generated
ADT^A01/A03/A08 and ORU^R01 (10 OBX). Each is converted to every Bundle type;
the digest covers the compact and pretty JSON, the warnings (text and code)
and, for a refused message, the ConversionError's reason, segment, field and
code. It prints the message count, the refusals and the SHA-256.
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

from thumpflow.hl7v2 import escape
from thumpflow.hl7v2.delimiters import DEFAULT_DELIMITERS
from thumpflow.mapping import BundleType, ConversionError, convert, to_json
from thumpflow.testing.generators import adt_a01, adt_a03, adt_a08, oru_r01

CASES = Path(__file__).resolve().parent.parent / "tests" / "mappings"
BUNDLE_TYPES: tuple[BundleType, ...] = ("transaction", "batch", "collection")
ALPHABET = [*"aZ09 .-/&|^~\\#'\"", "\u00e9", "\u00fc", "\u4e2d"]


def _varied(segments: list[str], rng: random.Random) -> bytes:
    out = []
    for i, segment in enumerate(segments):
        if i > 0 and rng.random() < 0.1:
            continue
        out.append(segment)
        if i > 0 and rng.random() < 0.1:
            out.append(segment)
    for _ in range(rng.randint(0, 6)):
        i = 1 + rng.randrange(max(1, len(out) - 1))
        if i >= len(out) or out[i].startswith("MSH"):
            continue
        fields = out[i].split("|")
        number = rng.randint(1, 30)
        while len(fields) <= number:
            fields.append("")
        if rng.random() < 0.3:
            if fields[number]:
                fields[number] += "~" + fields[number]
        else:
            components = fields[number].split("^")
            component = rng.randint(1, 6)
            while len(components) < component:
                components.append("")
            text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 14)))
            components[component - 1] = escape(text, DEFAULT_DELIMITERS)
            fields[number] = "^".join(components)
        out[i] = "|".join(fields)
    return "\r".join(out).encode("utf-8")


# The time received of a message that states none (`convert`'s `received`):
# fixed, so the digest does not move with the clock.
RECEIVED = 1_700_000_000.0


def messages(variants: int) -> list[bytes]:
    rng = random.Random(13)
    found: list[bytes] = []
    for case in sorted(p for p in CASES.iterdir() if (p / "input.hl7").exists()):
        raw = (case / "input.hl7").read_bytes()
        found.append(raw)
        segments = [s for s in raw.decode("utf-8").replace("\n", "\r").split("\r") if s]
        found.extend(_varied(segments, rng) for _ in range(variants))
    for i in range(60):
        found.append(adt_a01(f"MRN{i}", f"A{i}", seed=i))
        found.append(adt_a03(f"MRN{i}", f"B{i}", seed=i))
        found.append(adt_a08(f"MRN{i}", f"C{i}", seed=i))
        found.append(oru_r01(f"MRN{i}", f"O{i}", seed=i, n_obx=10))
    return found


def main() -> None:
    variants = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    digest = hashlib.sha256()
    found = messages(variants)
    refused = 0
    for raw in found:
        for bundle_type in BUNDLE_TYPES:
            warnings: list[str] = []
            try:
                bundle = convert(raw, bundle_type=bundle_type, warnings=warnings, received=RECEIVED)
            except ConversionError as exc:
                refused += 1
                digest.update(repr((exc.reason, exc.segment, exc.field, exc.code)).encode())
            else:
                digest.update(to_json(bundle))
                digest.update(to_json(bundle, pretty=True))
            digest.update(repr([(str(w), getattr(w, "code", "")) for w in warnings]).encode())
    print(f"{len(found)} messages, {refused} conversions refused, sha256 {digest.hexdigest()}")


if __name__ == "__main__":
    main()
