"""Conversion throughput: ADT^A01 and ORU^R01 (10 OBX) messages per second on one core.

Run: `.venv/bin/python bench/convert_bench.py [SECONDS]`. Messages come from
`thumpflow.testing.generators` (300 distinct ones per type, pre-generated);
the timed loop is `thumpflow.mapping.convert(bytes)` (parse + map to a Bundle
dict), plus a second figure including `to_json` serialisation. Time is the
process's CPU time, so a figure means one core's worth of work even when the
machine is shared.
"""

from __future__ import annotations

import platform
import sys
import time

from thumpflow.mapping import convert, to_json
from thumpflow.testing.generators import adt_a01, oru_r01


def rate(messages: list[bytes], seconds: float, serialise: bool) -> float:
    done = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        for raw in messages:
            bundle = convert(raw)
            if serialise:
                to_json(bundle)
        done += len(messages)
    return done / (time.process_time() - start)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    adt = [adt_a01(f"MRN{i}", f"A{i}", seed=i) for i in range(300)]
    oru = [oru_r01(f"MRN{i}", f"O{i}", seed=i, n_obx=10) for i in range(300)]
    print(f"python {platform.python_version()} ({sys.executable})")
    for name, msgs in (("ADT^A01", adt), ("ORU^R01 10 OBX", oru)):
        print(
            f"{name:16} convert: {rate(msgs, seconds, False):8.0f}/s   "
            f"convert+json: {rate(msgs, seconds, True):8.0f}/s"
        )


if __name__ == "__main__":
    main()
