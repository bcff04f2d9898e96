"""The cron parser and evaluator: fields, names, steps, OR semantics, time zones and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thumpflow.thump.schedule import CronSchedule, IntervalSchedule

NY = ZoneInfo("America/New_York")


def fires(expression: str, start: datetime, count: int, zone: str = "UTC") -> list[datetime]:
    schedule = CronSchedule.parse(expression, zone)
    tz = ZoneInfo(zone)
    t = start.timestamp()
    out = []
    for _ in range(count):
        t = schedule.next_after(t)
        out.append(datetime.fromtimestamp(t, tz))
    return out


def test_daily_at_two_across_both_dst_changes_in_new_york() -> None:
    spring = fires("0 2 * * *", datetime(2024, 3, 9, 12, tzinfo=NY), 3, "America/New_York")
    # 02:00 does not exist on 2024-03-10: it fires when the gap ends, 03:00 EDT.
    assert [d.isoformat() for d in spring] == [
        "2024-03-10T03:00:00-04:00",
        "2024-03-11T02:00:00-04:00",
        "2024-03-12T02:00:00-04:00",
    ]
    autumn = fires("0 2 * * *", datetime(2024, 11, 2, 12, tzinfo=NY), 2, "America/New_York")
    assert [d.isoformat() for d in autumn] == [
        "2024-11-03T02:00:00-05:00",
        "2024-11-04T02:00:00-05:00",
    ]


def test_repeated_local_time_fires_once_but_hourly_jobs_follow_elapsed_time() -> None:
    start = datetime(2024, 11, 2, 12, tzinfo=NY)
    once = fires("30 1 * * *", start, 2, "America/New_York")
    assert [d.isoformat() for d in once] == [
        "2024-11-03T01:30:00-04:00",
        "2024-11-04T01:30:00-05:00",
    ]
    every = fires("30 * * * *", datetime(2024, 11, 3, 0, 40, tzinfo=NY), 3, "America/New_York")
    assert [d.isoformat() for d in every] == [
        "2024-11-03T01:30:00-04:00",
        "2024-11-03T01:30:00-05:00",
        "2024-11-03T02:30:00-05:00",
    ]


def test_several_times_in_a_gap_fire_once_at_its_end() -> None:
    start = datetime(2024, 3, 10, 1, 50, tzinfo=NY)
    got = fires("*/15 2 * * *", start, 2, "America/New_York")
    assert [d.isoformat() for d in got] == [
        "2024-03-10T03:00:00-04:00",
        "2024-03-11T02:00:00-04:00",
    ]


def test_every_fifteen_minutes() -> None:
    got = fires("*/15 * * * *", datetime(2024, 1, 1, 0, 7, tzinfo=UTC), 4)
    assert [d.strftime("%H:%M") for d in got] == ["00:15", "00:30", "00:45", "01:00"]


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    got = fires("0 0 1 * MON", datetime(2024, 1, 1, tzinfo=UTC), 6)
    assert [d.date().isoformat() for d in got] == [
        "2024-01-08",
        "2024-01-15",
        "2024-01-22",
        "2024-01-29",
        "2024-02-01",
        "2024-02-05",
    ]
    # A star in either field makes it AND (Vixie): every Monday of March only.
    got = fires("0 0 * MAR mon", datetime(2024, 1, 1, tzinfo=UTC), 2)
    assert [d.date().isoformat() for d in got] == ["2024-03-04", "2024-03-11"]


def test_february_29_fires_in_leap_years_only() -> None:
    got = fires("0 12 29 FEB *", datetime(2024, 3, 1, tzinfo=UTC), 3)
    assert [d.date().isoformat() for d in got] == ["2028-02-29", "2032-02-29", "2036-02-29"]


def test_names_ranges_lists_steps_and_aliases() -> None:
    schedule = CronSchedule.parse("5,35 8-18/2 * JAN-MAR MON-FRI")
    assert schedule.minutes == (5, 35)
    assert schedule.hours == (8, 10, 12, 14, 16, 18)
    assert schedule.months == frozenset({1, 2, 3})
    assert schedule.days_of_week == frozenset({1, 2, 3, 4, 5})
    assert CronSchedule.parse("0 0 * * 7").days_of_week == frozenset({0})
    assert CronSchedule.parse("10/20 * * * *").minutes == (10, 30, 50)
    for alias, expected in [("@hourly", (0,)), ("@daily", (0,)), ("@weekly", (0,))]:
        assert CronSchedule.parse(alias).minutes == expected
    monthly = fires("@monthly", datetime(2024, 1, 15, tzinfo=UTC), 2)
    assert [d.date().isoformat() for d in monthly] == ["2024-02-01", "2024-03-01"]


@pytest.mark.parametrize(
    ("expression", "zone", "message"),
    [
        ("0 2 * *", "UTC", "5 fields"),
        ("60 * * * *", "UTC", "outside"),
        ("0 2 * * FUNDAY", "UTC", "not a number"),
        ("5-1 * * * *", "UTC", "backwards"),
        ("*/0 * * * *", "UTC", "step"),
        ("0 0 31 2 *", "UTC", "never occurs"),
        ("@fortnightly", "UTC", "unknown alias"),
        ("0 2 * * *", "Mars/Olympus", "time zone"),
    ],
)
def test_bad_expressions_are_refused_with_the_reason(
    expression: str, zone: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CronSchedule.parse(expression, zone)


def test_interval_fires_on_multiples_since_the_epoch() -> None:
    schedule = IntervalSchedule(900)
    assert schedule.next_after(1_700_000_000.0) == 1_700_000_100.0
    assert schedule.next_after(1_700_000_100.0) == 1_700_001_000.0


_FIELDS = st.tuples(
    st.sampled_from(["*", "*/15", "0", "5,35", "10-20/5", "59"]),
    st.sampled_from(["*", "2", "*/6", "9-17", "0,12", "23"]),
    st.sampled_from(["*", "1", "15", "29", "31", "1-7"]),
    st.sampled_from(["*", "FEB", "1-6", "*/3", "DEC"]),
    st.sampled_from(["*", "MON", "1-5", "SUN,SAT", "0"]),
)


@settings(max_examples=150)
@given(
    fields=_FIELDS,
    zone=st.sampled_from(["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe"]),
    start=st.integers(min_value=946_684_800, max_value=2_000_000_000),
)
def test_next_after_is_strictly_increasing_and_matches_the_fields(
    fields: tuple[str, ...], zone: str, start: int
) -> None:
    expression = " ".join(fields)
    try:
        schedule = CronSchedule.parse(expression, zone)
    except ValueError:
        return
    tz = ZoneInfo(zone)
    t = float(start)
    for _ in range(4):
        due = schedule.next_after(t)
        assert due > t
        local = datetime.fromtimestamp(due, tz)
        wall = local.replace(tzinfo=None)
        exists = (
            datetime(wall.year, wall.month, wall.day, wall.hour, wall.minute, tzinfo=tz)
            .astimezone(UTC)
            .astimezone(tz)
            .replace(tzinfo=None)
            == wall
        )
        assert exists
        if local.minute in schedule.minutes and local.hour in schedule.hours:
            assert schedule.matches_day(local.date())
        else:
            # Only a DST gap moves a fire time off the fields: it fires at the gap's end,
            # and just before that instant the offset was different.
            before = datetime.fromtimestamp(due - 1, tz)
            assert before.utcoffset() != local.utcoffset()
            assert schedule.matches_day(local.date()) or schedule.matches_day(
                (local - timedelta(days=1)).date()
            )
        t = due
