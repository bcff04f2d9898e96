"""Primitive conversions never produce a value outside its FHIR type.

FHIR's integer is 32-bit, unsignedInt is ≥ 0, time is hh:mm:ss; a value the
sender wrote outside those is omitted (None), never written invalid.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from thumpflow.mapping._values import PRIMITIVES, date_time_timed, integer, time

_INT32 = (-(2**31), 2**31 - 1)


@given(st.integers())
def test_integers_outside_32_bits_are_omitted(value: int) -> None:
    result = integer(str(value))
    if _INT32[0] <= value <= _INT32[1]:
        assert result == value
    else:
        assert result is None


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_unsigned_and_positive_ints_keep_their_lower_bounds(value: int) -> None:
    assert PRIMITIVES["unsignedInt"](str(value), "") == (value if value >= 0 else None)
    assert PRIMITIVES["positiveInt"](str(value), "") == (value if value >= 1 else None)


def test_times_and_timed_date_times() -> None:
    assert time("0615") == "06:15:00"
    assert time("061530.25+0100") == "06:15:30.25"
    assert time("2560") is None
    assert time("6:15") is None
    assert date_time_timed("19790214") is None
    assert date_time_timed("197902140830-0500") == "1979-02-14T08:30:00-05:00"
