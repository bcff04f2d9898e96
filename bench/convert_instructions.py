"""The conversions to count instructions of, under valgrind (a figure machine load does not move).

Run twice and take the difference, which leaves out start-up and compiling the maps:

    valgrind --tool=cachegrind --cache-sim=no .venv-sys/bin/python \\
        bench/convert_instructions.py adt 600        # then with 0; (I refs 600 - I refs 0) / 600

It builds the 300 messages of `convert_bench.py` (`adt`: ADT^A01, `oru`: ORU^R01
with 10 OBX), converts 50 to warm up, then N, cycling through the 300.
`--no-repeat` empties the memo of data type results (`thumpflow.mapping._memo`)
before every message, as if no element had been met in an earlier message.
It runs on a tree from before the memo too (to compare with).
"""

from __future__ import annotations

import sys

from thumpflow.mapping import convert
from thumpflow.testing.generators import adt_a01, oru_r01

try:
    from thumpflow.mapping._memo import forget
except ImportError:  # a tree from before the memo (to compare with)
    forget = None


def main() -> None:
    kind, count = sys.argv[1], int(sys.argv[2])
    fresh = "--no-repeat" in sys.argv[3:]
    if kind == "adt":
        messages = [adt_a01(f"MRN{i}", f"A{i}", seed=i) for i in range(300)]
    else:
        messages = [oru_r01(f"MRN{i}", f"O{i}", seed=i, n_obx=10) for i in range(300)]
    for raw in [*messages[:50], *(messages[k % 300] for k in range(count))]:
        if fresh and forget is not None:
            forget()
        convert(raw)


if __name__ == "__main__":
    main()
