"""When a job runs: five-field cron expressions in a time zone, or fixed intervals.

Cron syntax (Vixie cron): `minute hour day-of-month month day-of-week`, each
field `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from `a`
to the field's end), or a comma list of those. Months accept `JAN`..`DEC`,
days of week `SUN`..`SAT` (0 and 7 are both Sunday), case-insensitive, also
inside ranges (`MON-FRI`). Aliases: `@hourly`, `@daily` (`@midnight`),
`@weekly`, `@monthly`, `@yearly` (`@annually`).

Day-of-month and day-of-week combine as in Vixie cron: when both fields are
restricted (neither starts with `*`) a day matches when *either* matches
(`0 0 1 * MON` runs on the 1st and on every Monday); when either starts with
`*`, both must match.

Times are evaluated in the schedule's IANA time zone. Daylight saving time
rule: every matching local wall-clock time fires exactly once —

- a local time that does not exist (skipped by a spring-forward gap) fires at
  the first instant after the gap (`30 2 * * *` in America/New_York fires at
  03:00 EDT on the day clocks go forward; several times in one gap fire once);
- a local time that occurs twice (a fall-back overlap) fires at its first
  occurrence only (`30 1 * * *` fires once, at 01:30 EDT) — except when the
  hour field starts with `*` (the job runs every hour): such jobs follow
  elapsed time and fire in both passes of the repeated hour.

Intervals (`15m`) fire on multiples of the interval since the Unix epoch, so
a restart never shifts them. `next_after(t)` is strictly greater than `t`.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
        start=1,
    )
}
_DAYS = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}
_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_PART = re.compile(r"^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(\d+))?$")
_MAX_DAYS_OF_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# A matching day always recurs within 8 years (Feb 29 across a skipped leap year).
_SEARCH_DAYS = 366 * 9
_OVERLAP_REACH = timedelta(hours=3)


class Schedule(Protocol):
    """Something that says when a job is next due."""

    def next_after(self, t: float) -> float:
        """The first due instant strictly after `t` (seconds since the epoch, UTC)."""
        ...

    def describe(self) -> str:
        """The schedule as configured, for people."""
        ...


def _number(text: str, index: int) -> int:
    names = _MONTHS if index == 3 else _DAYS if index == 4 else {}
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        raise ValueError(f"{_FIELD_NAMES[index]}: {text!r} is not a number or a known name")
    return int(text)


def _field(text: str, index: int) -> frozenset[int]:
    low, high = _BOUNDS[index]
    values: set[int] = set()
    for part in text.split(","):
        match = _PART.match(part)
        if match is None:
            raise ValueError(f"{_FIELD_NAMES[index]}: cannot read {part!r}")
        base, step_text = match.group(1), match.group(2)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = _number(first, index), _number(last, index)
        else:
            start = _number(base, index)
            end = high if step_text is not None else start
        step = int(step_text) if step_text is not None else 1
        if step < 1:
            raise ValueError(f"{_FIELD_NAMES[index]}: a step must be at least 1")
        if not (low <= start <= high and low <= end <= high):
            raise ValueError(f"{_FIELD_NAMES[index]}: {part!r} is outside {low}-{high}")
        if start > end:
            raise ValueError(f"{_FIELD_NAMES[index]}: range {part!r} runs backwards")
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed five-field cron expression evaluated in one IANA time zone."""

    expression: str
    timezone: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    dom_star: bool
    dow_star: bool
    hour_star: bool
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> CronSchedule:
        """Parse `expression` for `timezone`; raise ValueError naming the bad field."""
        text = _ALIASES.get(expression.strip().lower(), expression)
        if text.strip().startswith("@"):
            raise ValueError(
                f"unknown alias {expression.strip()!r} (use one of {sorted(_ALIASES)})"
            )
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(
                f"a cron expression has 5 fields (minute hour day-of-month month day-of-week); "
                f"got {len(fields)}"
            )
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r} (use an IANA name)") from None
        parsed = [_field(field, index) for index, field in enumerate(fields)]
        schedule = cls(
            expression=expression.strip(),
            timezone=timezone,
            minutes=tuple(sorted(parsed[0])),
            hours=tuple(sorted(parsed[1])),
            days_of_month=parsed[2],
            months=parsed[3],
            days_of_week=parsed[4],
            dom_star=fields[2].startswith("*"),
            dow_star=fields[4].startswith("*"),
            hour_star=fields[1].startswith("*"),
            zone=zone,
        )
        if schedule.dow_star and not any(
            day <= _MAX_DAYS_OF_MONTH[month - 1]
            for month in schedule.months
            for day in schedule.days_of_month
        ):
            raise ValueError("the day of month never occurs in the chosen months")
        return schedule

    def describe(self) -> str:
        return f"cron {self.expression!r} ({self.timezone})"

    def matches_day(self, day: date) -> bool:
        """Whether the local calendar day is a day this schedule runs on."""
        if day.month not in self.months:
            return False
        dom = day.day in self.days_of_month
        dow = (day.isoweekday() % 7) in self.days_of_week
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def next_after(self, t: float) -> float:
        moment = datetime.fromtimestamp(t, UTC).astimezone(self.zone)
        start = moment.replace(tzinfo=None, second=0, microsecond=0)
        later = (moment + _OVERLAP_REACH).astimezone(self.zone)
        near_change = later.utcoffset() != moment.utcoffset()
        if near_change:
            # After a fall-back the wall clock repeats earlier times.
            start -= _OVERLAP_REACH
        day = start.date()
        for _ in range(_SEARCH_DAYS):
            if self.matches_day(day):
                best = self._earliest_on(day, start, t, near_change)
                if best is not None:
                    return best
            day += timedelta(days=1)
        raise ValueError(f"{self.describe()} does not fire within {_SEARCH_DAYS} days")

    def _earliest_on(self, day: date, start: datetime, t: float, near_change: bool) -> float | None:
        """The earliest instant after `t` of the walls of `day` from `start` on, if any.

        Walls are visited in order. Near an offset change instants are not
        monotonic in walls (a fall-back repeats them), so there the search goes
        on past the first hit by the overlap reach before answering.
        """
        best: float | None = None
        stop: datetime | None = None
        same_day = day == start.date()
        hours = self.hours[bisect_left(self.hours, start.hour) :] if same_day else self.hours
        for hour in hours:
            minutes = self.minutes
            if same_day and hour == start.hour:
                minutes = minutes[bisect_left(minutes, start.minute) :]
            for minute in minutes:
                wall = datetime(day.year, day.month, day.day, hour, minute)
                if stop is not None and wall > stop:
                    return best
                for instant in self._instants(wall):
                    if instant > t and (best is None or instant < best):
                        if not near_change:
                            return instant
                        best = instant
                        stop = wall + _OVERLAP_REACH
        return best

    def _instants(self, wall: datetime) -> list[float]:
        """The instants at which local wall time `wall` fires (see the DST rule)."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        second = wall.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return [first.timestamp()]
        if not _exists(first):
            probe = wall
            while not _exists(probe.replace(tzinfo=self.zone)):
                probe += timedelta(minutes=1)
            return [probe.replace(tzinfo=self.zone).timestamp()]
        a, b = first.timestamp(), second.timestamp()
        if a == b or not self.hour_star:
            return [a]
        return [a, b]


def _exists(aware: datetime) -> bool:
    back = aware.astimezone(UTC).astimezone(aware.tzinfo).replace(tzinfo=None)
    return back == aware.replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """Every `seconds`, on multiples of `seconds` since the Unix epoch."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError("an interval must be positive")

    def describe(self) -> str:
        return f"every {self.seconds:g}s"

    def next_after(self, t: float) -> float:
        due = (t // self.seconds + 1) * self.seconds
        return due if due > t else due + self.seconds
