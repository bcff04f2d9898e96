"""Speed of `thumpflow.fhir.validate` on a 20-entry transaction Bundle.

Run from the repository: `PYTHONPATH=src:. python bench/fhir_validate_bench.py`
(needs only the standard library, so `/usr/bin/python3` works too). Reports
the best of 7 rounds of 2,000 validations of `tests/fhir/examples.transaction_bundle()`.
"""

from __future__ import annotations

import platform
import sys
import time

from tests.fhir.examples import transaction_bundle
from thumpflow.fhir import validate


def main() -> None:
    bundle = transaction_bundle()
    assert validate(bundle) == [], "the example must be valid"
    rounds = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(2000):
            validate(bundle)
        rounds.append((time.perf_counter() - started) / 2000)
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"{len(bundle['entry'])}-entry Bundle: {min(rounds) * 1e6:.0f} µs per validate")


if __name__ == "__main__":
    main()
