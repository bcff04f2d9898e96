"""The start-up heap is set aside from the cyclic collector, and later objects are not."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
from thumpflow.runtime.heap import freeze_startup_heap
from thumpflow.runtime.engine import Engine
freeze_startup_heap()
frozen = gc.get_freeze_count()
class Cycle:
    pass
made = Cycle()
made.me = made
del made
print(frozen, gc.collect() > 0)
"""


def test_freezing_moves_the_live_heap_aside_and_later_cycles_are_still_collected() -> None:
    # A process of its own: freezing this test process would keep its garbage for good.
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    frozen, collected = int(out[0]), out[1]
    assert frozen > 10_000, "the engine's modules and their objects are frozen"
    assert collected == "True", "a cycle made after the freeze is still collected"
