"""Values FHIR constrains together are written so the constraint holds.

A Period never ends certainly before it starts (per-1): every period map
writes its end through `dateTime_end`, which leaves out an end certainly
before the start and keeps the start; dates compare at their common
precision, a date against a time of day only when no zone could reconcile
them (14 hours either way). A Ratio has both numbers or neither (rat-1), a
Range is never the wrong way round (rng-2), an Appointment has start and end
or neither (app-2) and, without them, a status app-3 allows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from tests.mappings.single import observation_of, resource_of
from thumpflow.mapping._values import date_time, date_time_end

_MOMENTS = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1))
_PRECISION = st.sampled_from(["%Y", "%Y%m", "%Y%m%d", "%Y%m%d%H%M", "%Y%m%d%H%M%S"])
_ZONE = st.sampled_from(["", "+0000", "-0500", "+0930"])


def _dtm(moment: datetime, precision: str, zone: str) -> str:
    return moment.strftime(precision) + (zone if "%H" in precision else "")


def _span(fhir: str) -> tuple[datetime, datetime]:
    """The instants a FHIR dateTime can mean, as FHIRPath reads it."""
    if "T" in fhir:
        moment = datetime.fromisoformat(fhir.replace("Z", "+00:00")).astimezone(UTC)
        return moment, moment
    parts = [int(p) for p in fhir.split("-")]
    first = datetime(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
    if len(parts) == 3:
        last = first + timedelta(days=1)
    elif len(parts) == 2:
        last = datetime(first.year + first.month // 12, first.month % 12 + 1, 1)
    else:
        last = datetime(first.year + 1, 1, 1)
    slack = timedelta(hours=14)
    return (first - slack).replace(tzinfo=UTC), (last + slack).replace(tzinfo=UTC)


_STAMP = st.tuples(_MOMENTS, _PRECISION, _ZONE)


@given(first=_STAMP, second=_STAMP)
def test_an_end_is_dropped_exactly_when_it_is_certainly_before_the_start(
    first: tuple[datetime, str, str], second: tuple[datetime, str, str]
) -> None:
    start_text, end_text = _dtm(*first), _dtm(*second)
    start, end = date_time(start_text), date_time(end_text)
    assert start is not None and end is not None
    kept = date_time_end(f"{start_text}|{end_text}")
    if "T" not in start and "T" not in end:
        common = min(len(start), len(end))
        before = end[:common] < start[:common]
    else:
        before = _span(end)[1] < _span(start)[0]
    assert kept == (None if before else end)


@given(a=_MOMENTS, b=_MOMENTS, za=_ZONE.filter(bool), zb=_ZONE.filter(bool))
def test_two_instants_keep_the_end_unless_it_is_earlier(
    a: datetime, b: datetime, za: str, zb: str
) -> None:
    """Checked against the instants themselves, not the converter's reading."""
    a, b = a.replace(microsecond=0), b.replace(microsecond=0)

    def instant(moment: datetime, zone: str) -> datetime:
        sign = -1 if zone[0] == "-" else 1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * sign
        return moment.replace(tzinfo=timezone(offset))

    text = f"{a:%Y%m%d%H%M%S}{za}|{b:%Y%m%d%H%M%S}{zb}"
    assert (date_time_end(text) is None) == (instant(b, zb) < instant(a, za))


def test_an_encounter_discharged_before_admission_keeps_its_admission_only() -> None:
    message = (
        b"MSH|^~\\&|A|B|C|D|20140912||ADT^A03|1|P|2.5\rPID|1||P1^^^H^MR||Doe^Jo\r"
        b"PV1|1|I|W^1^1||||||||||||||||V1^^^H^VN|||||||||||||||||||||||||201409122200|20000206031726\r"
    )
    assert resource_of(message, "Encounter")["period"] == {"start": "2014-09-12T22:00:00Z"}
    in_order = message.replace(b"|20000206031726", b"|20140915031726")
    period = resource_of(in_order, "Encounter")["period"]
    assert period == {"start": "2014-09-12T22:00:00Z", "end": "2014-09-15T03:17:26Z"}


_NUMBER = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.sampled_from(["", "x", "1.", "-0", "&&1"]),
)


@given(first=_NUMBER, second=_NUMBER)
def test_a_ratio_has_both_numbers_or_neither_and_a_range_is_never_inverted(
    first: str, second: str
) -> None:
    """FHIR rat-1 and rng-2 for every SN and NR value (OBX-5)."""
    for kind, value in (
        ("SN", f"^{first}^:^{second}"),
        ("SN", f"^{first}^-^{second}"),
        ("NR", f"{first}^{second}"),
    ):
        observation = observation_of(f"{kind}|V^Value^L||{value}|||||F")
        ratio = observation.get("valueRatio")
        if ratio is not None:
            assert ("numerator" in ratio) == ("denominator" in ratio)
        span = observation.get("valueRange", {})
        if "low" in span and "high" in span:
            assert span["low"]["value"] <= span["high"]["value"]


_TIME = st.sampled_from(["", "20240320093000-0500", "20240320", "2024032009", "2024-03", "x"])


@given(
    event=st.sampled_from(["S12", "S14", "S15", "S17", "S26"]),
    sch_start=_TIME,
    sch_end=_TIME,
    ais_start=_TIME,
    ais_duration=st.sampled_from(["", "30", "30^", "x", "-5"]),
)
def test_an_appointment_has_start_and_end_or_neither_and_an_untimed_one_a_status_fhir_allows(
    event: str, sch_start: str, sch_end: str, ais_start: str, ais_duration: str
) -> None:
    """FHIR app-2 and app-3 for SIU, whatever SCH-11 and AIS-4/AIS-7 hold."""
    message = (
        f"MSH|^~\\&|A|B|C|D|20240101||SIU^{event}|1|P|2.5\rSCH|A1|F1||||||||||^^^{sch_start}^{sch_end}\r"
        f"PID|1||P1^^^H^MR||Doe^Jo\rAIS|1||C^Consult^L|{ais_start}|||{ais_duration}|MIN\r"
    ).encode()
    appointment = resource_of(message, "Appointment")
    assert ("start" in appointment) == ("end" in appointment)
    if "start" not in appointment:
        assert appointment["status"] in ("proposed", "cancelled", "waitlist")


def test_an_orders_bounds_come_from_one_source_its_tq1_else_orc7_else_obr27() -> None:
    # TQ1 (v2.5+) and ORC-7/OBR-27 (older) each give a start and an end;
    # one Period of two sources could end before it starts (per-1). Before,
    # a TQ1-7 start beside an ORC-7 end (or an ORC-7 start beside an OBR-27
    # end) made such a Period, an invalid ServiceRequest.
    head = "MSH|^~\\&|A|B|C|D|20240101||ORM^O01|1|P|2.5.1\rPID|1||P1^^^H^MR||Doe^Jo\r"
    obr = "OBR|1|PL1^EHR||G^Glucose^L" + "|" * 23 + "{obr27}\r"

    def bounds(orc7: str, tq1: str = "", obr27: str = "") -> dict[str, str]:
        message = head + f"ORC|NW|PL1^EHR|||||{orc7}\r" + tq1 + obr.format(obr27=obr27)
        order = resource_of(message.encode(), "ServiceRequest")
        found: dict[str, str] = order["occurrenceTiming"]["repeat"]["boundsPeriod"]
        return found

    assert bounds("^^^^20240409", tq1="TQ1|1||||||20240410\r") == {"start": "2024-04-10"}
    assert bounds("^^^20240412", tq1="TQ1|1|||||||20240411\r") == {"end": "2024-04-11"}
    assert bounds("^^^20240410", obr27="^^^20240401^20240405") == {"start": "2024-04-10"}
    assert bounds("^^^20240401^20240405") == {"start": "2024-04-01", "end": "2024-04-05"}
    assert bounds("", obr27="^^^20240401^20240405") == {"start": "2024-04-01", "end": "2024-04-05"}
