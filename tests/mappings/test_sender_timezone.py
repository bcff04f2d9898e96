"""Times without an offset are read in the sender's zone (`mapping._zone`).

Order: the time's own offset, MSH-7's offset, the channel's IANA zone (each
time its own date's offset), else UTC. The conversion memo keeps results of
different zones apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from thumpflow.mapping import checked_zone, convert, using_timezone

ZONES = ("America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata", "UTC")


def encounter_start(msh7: str, pv1_44: str) -> str:
    message = (
        f"MSH|^~\\&|A|B|C|D|{msh7}||ADT^A01|1|P|2.5\r"
        "PID|1||P1^^^H^MR||Doe^Jo\r"
        f"PV1|1|I|||||||||||||||||V1^^^H^VN|||||||||||||||||||||||||{pv1_44}\r"
    ).encode()
    (encounter,) = [
        e["resource"]
        for e in convert(message, bundle_type="collection")["entry"]
        if e["resource"]["resourceType"] == "Encounter"
    ]
    return str(encounter["period"]["start"])


def instant_of(fhir: str) -> datetime:
    return datetime.fromisoformat(fhir.replace("Z", "+00:00"))


@example(zone="America/New_York", wall=datetime(2010, 11, 7, 1, 0))
@example(zone="Australia/Lord_Howe", wall=datetime(2006, 4, 2, 1, 30, fold=1))
@example(zone="America/New_York", wall=datetime(2010, 3, 14, 2, 30))
@given(
    zone=st.sampled_from(ZONES),
    wall=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2037, 12, 31)),
)
def test_a_time_without_offset_is_read_in_the_channel_zone(zone: str, wall: datetime) -> None:
    """Each time gets its own date's offset (daylight saving included); a wall
    time a change skips or repeats reads as `zoneinfo` does with fold=0."""
    # Hypothesis also draws fold=1 (the second of a repeated hour), which an
    # HL7 time cannot say: the message's time is the wall time alone.
    wall = wall.replace(second=0, microsecond=0, fold=0)
    with using_timezone(zone):
        start = encounter_start("20240101", wall.strftime("%Y%m%d%H%M"))
    expected = wall.replace(tzinfo=ZoneInfo(zone))
    # Wall time and offset compared apart: Python never calls a time in a
    # repeated hour (fold) equal to one in another zone (PEP 495).
    assert instant_of(start).replace(tzinfo=None) == wall
    assert instant_of(start).utcoffset() == expected.utcoffset()


@given(zone=st.sampled_from(ZONES))
def test_a_stated_offset_comes_first(zone: str) -> None:
    with using_timezone(zone):
        assert encounter_start("20240101", "202407011200+0530") == "2024-07-01T12:00:00+05:30"
        # MSH-7's offset is the sender's, for every time that states none.
        assert encounter_start("202401010800-0700", "202407011200") == "2024-07-01T12:00:00-07:00"


def test_without_a_zone_times_are_utc_and_zones_do_not_leak_between_conversions() -> None:
    assert encounter_start("20240101", "202407011200") == "2024-07-01T12:00:00Z"
    with using_timezone("America/New_York"):
        assert encounter_start("20240101", "202407011200") == "2024-07-01T12:00:00-04:00"
        assert encounter_start("20240101", "202401151200") == "2024-01-15T12:00:00-05:00"
        with using_timezone(None):
            assert encounter_start("20240101", "202407011200") == "2024-07-01T12:00:00Z"
    assert encounter_start("20240101", "202407011200") == "2024-07-01T12:00:00Z"


def test_the_bundle_timestamp_takes_the_zone_too() -> None:
    message = b"MSH|^~\\&|A|B|C|D|202407010800||ADT^A01|1|P|2.5\rPID|1||P1^^^H^MR||Doe^Jo\r"
    with using_timezone("Europe/Berlin"):
        bundle = convert(message)
    assert bundle["timestamp"] == "2024-07-01T08:00:00+02:00"
    assert instant_of(bundle["timestamp"]) == datetime(2024, 7, 1, 6, tzinfo=UTC)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "+05:00"])
def test_an_unknown_zone_is_refused(zone: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        checked_zone(zone)
    with pytest.raises(ValueError, match="unknown time zone"), using_timezone(zone):
        pass


def test_a_time_received_stands_in_as_utc_whatever_the_zone() -> None:
    """The time received is an instant (epoch seconds), written in UTC."""
    with using_timezone("America/Chicago"):
        bundle = convert(
            b"MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5\rPID|1||P1^^^H^MR||Doe^Jo\r",
            received=1_751_371_200.0,
        )
    assert bundle["timestamp"] == "2025-07-01T12:00:00Z"
