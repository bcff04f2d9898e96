"""Primitive conversions never produce a value outside its FHIR type.

FHIR's integer is 32-bit, unsignedInt is ≥ 0, time is hh:mm:ss; a value the
sender wrote outside those is omitted (None), never written invalid.
"""

from __future__ import annotations

import datetime
import re

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


# Found by mutating the golden inputs: year 0000 (which FHIR's date types do
# not have) was written as a dateTime, and February 29 of a common year passed.
@given(st.text(alphabet="0123456789+-. ", max_size=24))
def test_every_date_and_date_time_written_is_a_real_calendar_date(text: str) -> None:
    for name in ("date", "dateTime", "instant"):
        value = PRIMITIVES[name](text, "-05:00")
        if value is None:
            continue
        assert re.fullmatch(r"\d{4}(-\d{2}(-\d{2}(T.*)?)?)?", value), value
        year, month, day = [*value[:10].split("-"), "01", "01"][:3]
        assert datetime.date(int(year), int(month), int(day)), value  # raises if not a date


def test_year_zero_february_29_of_a_common_year_and_offsets_past_14_hours_are_omitted() -> None:
    for name in ("date", "dateTime", "instant"):
        for text in ("0000", "00000101", "0000-0500", "20230229", "190002290800"):
            assert PRIMITIVES[name](text, "") is None, (name, text)
    for offset in ("-1445", "+1401", "+1500", "-0060"):
        assert PRIMITIVES["dateTime"]("200403011432" + offset, "") is None, offset
    assert PRIMITIVES["dateTime"]("200403011432+1400", "") == "2004-03-01T14:32:00+14:00"
    assert PRIMITIVES["date"]("20240229", "") == "2024-02-29"
    assert PRIMITIVES["date"]("20000229", "") == "2000-02-29"
