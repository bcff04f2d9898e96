"""Fuzz the converter: mutated golden inputs must be refused or give valid FHIR R4.

Run: `.venv/bin/python bench/convert_fuzz.py [SEED] [SECONDS]`. Each round
takes a golden input (`tests/mappings/*/input.hl7`), applies
`thumpflow.testing.mutations.mutate`, converts it as a transaction, batch or
collection Bundle, and validates the JSON with `thumpflow.fhir.validate`. A
`MessageError` (a refusal naming what is wrong) is a correct answer; any other
exception, or a Bundle with an error from the validator, is printed (at most
ten) and counted. Prints the count of mutations and of defects.
"""

from __future__ import annotations

import json
import random
import sys
import time
import traceback
from pathlib import Path

from thumpflow.core.errors import MessageError
from thumpflow.fhir import validate
from thumpflow.mapping import convert, to_json
from thumpflow.testing.mutations import mutate

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "mappings"


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    inputs = [path.read_bytes() for path in sorted(GOLDEN.glob("*/input.hl7"))]
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    done = defects = 0
    while time.monotonic() < deadline:
        raw = mutate(rng.choice(inputs), rng)
        bundle_type = ("transaction", "batch", "collection")[done % 3]
        done += 1
        try:
            bundle = convert(raw, bundle_type=bundle_type)
            issues = [i for i in validate(json.loads(to_json(bundle))) if i.severity == "error"]
        except MessageError:
            continue
        except Exception:
            defects += 1
            if defects <= 10:
                print("exception on", repr(raw[:300]))
                traceback.print_exc()
            continue
        if issues:
            defects += 1
            if defects <= 10:
                print("invalid:", [f"{i.path}: {i.message}" for i in issues[:3]], repr(raw[:300]))
    print(f"{done} mutations, {defects} defects (seed {seed})")


if __name__ == "__main__":
    main()
