"""Many orders of one message repeating one number stay linear work.

A `distinct` rule's resource that repeats an earlier one's identifier loses
the identifiers others hold (`_scope.drop_claimed`); looking them up by
index, not by reading every resource built so far, keeps a hostile message
of thousands of such orders from costing the square of its size. Measured
by the Python lines the conversion runs (`sys.settrace`), not by time.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import pytest

from thumpflow.mapping import convert

_HEAD = "MSH|^~\\&|A|B|C|D|20240301||{}|M1|P|2.6\rPID|1||P1^^^H^MR||Doe^Jo\rPV1|1|I\r"
_GROUPS = {
    "RDE^O11^RDE_O11": "ORC|NW|X^H|F{i}^P\rRXE|^Q24H^HL70335|C{i}^Drug^L|1||BAG\rRXR|IV\r",
    "VXU^V04^VXU_V04": "ORC|RE||F1^H\rRXA|0|1|2024010{d}|2024010{d}|08^HepB^CVX|1|mL\r",
    "ORM^O01": "ORC|NW|PL1^EHR|FL{i}^LAB\rOBR|1|||2345-7^Glucose^LN\r",
}


def _lines_run(event: str, orders: int) -> int:
    message = _HEAD.format(event) + "".join(
        _GROUPS[event].format(i=i, d=i % 9 + 1) for i in range(orders)
    )
    count = 0

    def trace(frame: FrameType, what: str, arg: Any) -> Any:
        nonlocal count
        if what == "line":
            count += 1
        return trace

    warnings: list[str] = []
    sys.settrace(trace)
    try:
        convert(message.encode(), warnings=warnings)
    finally:
        sys.settrace(None)
    assert any("repeats the identifier" in w for w in warnings)
    return count


@pytest.mark.parametrize("event", sorted(_GROUPS))
def test_repeated_order_numbers_cost_linear_work(event: str) -> None:
    small, large = _lines_run(event, 100), _lines_run(event, 400)
    # Four times the orders: about four times the lines (the square would be 16).
    assert large < 5 * small
