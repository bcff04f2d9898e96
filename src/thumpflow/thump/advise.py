"""`thumpflow advise`: recommend flow, thump or a hybrid for one interface, and say why.

Pure and deterministic: the same `Answers` always give the same `Advice`.
The rules, in order:

1. Latency decides first. When the receiver needs data within 30 minutes,
   only flow (event-driven delivery) meets it honestly: a batch would have to
   run every few minutes, which is polling in disguise. Otherwise a batch can
   meet it, running every `interval` = the largest of 15 min, 30 min, 1 h,
   2 h, 4 h, 6 h, 12 h, 24 h that is at most half the tolerance (a record
   changed just after a run still arrives in time, with room for the run).
2. With a tolerant receiver, thump is chosen when any of these holds: the
   receiver is not available whenever the source is, the source offers only
   polling or files, errors are recovered by reloading a window, or the peak
   passes 200 records per second. Otherwise (an event or CDC source, a
   receiver online with it, record-by-record recovery, modest peaks) flow is
   chosen: fresher at no extra cost.
3. A flow becomes a hybrid (flow plus a reconciling thump, daily) when
   completeness must be proven (audit `completeness`), when errors are
   recovered by reloading, or when the receiver is not always available.
4. Warnings: a tight latency with a source that offers only polling (or
   files) is the classic compromise; it is named and advised against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from thumpflow.connectors.fields import parse_duration

Recovery = Literal["per_record", "reload"]
Audit = Literal["basic", "per_record", "completeness"]
SourceFeed = Literal["events", "cdc", "polling", "files"]
Rhythm = Literal["flow", "thump", "hybrid"]

FLOW_LATENCY = 1800.0
HIGH_PEAK_PER_SECOND = 200.0
RECONCILE_INTERVAL = 86_400.0
INTERVALS = (900.0, 1800.0, 3600.0, 7200.0, 14_400.0, 21_600.0, 43_200.0, 86_400.0)


@dataclass(slots=True, frozen=True)
class Question:
    """One question: its answer's name (YAML key, `--flag`), prompt, and allowed choices."""

    name: str
    prompt: str
    choices: tuple[str, ...] = ()


QUESTIONS = (
    Question(
        "latency",
        "How stale may the receiver's data be at most (e.g. 30s, 15m, 4h, 1d)?",
    ),
    Question("peak_per_second", "Peak volume, records per second?"),
    Question("average_per_day", "Average volume, records per day?"),
    Question(
        "receiver_coupled",
        "Is the receiver available whenever the source is (can they be coupled in time)?",
        ("yes", "no"),
    ),
    Question(
        "recovery",
        "After an error, is data recovered record by record, or by reloading a window?",
        ("per_record", "reload"),
    ),
    Question(
        "audit",
        "Audit needs: basic logs, a trace of every record, or proof of completeness?",
        ("basic", "per_record", "completeness"),
    ),
    Question(
        "source_feed",
        "What does the source offer: events (HL7 v2 feed, FHIR subscription), CDC, only "
        "polling, or files?",
        ("events", "cdc", "polling", "files"),
    ),
)


@dataclass(slots=True, frozen=True)
class Answers:
    """An architect's answers about one interface (`latency` in seconds)."""

    latency: float
    peak_per_second: float
    average_per_day: float
    receiver_coupled: bool
    recovery: Recovery
    audit: Audit
    source_feed: SourceFeed


@dataclass(slots=True, frozen=True)
class Advice:
    """The recommendation: a rhythm, the batch interval (thump: runs; hybrid: reconciliation)."""

    rhythm: Rhythm
    interval: float | None
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "recommendation": self.rhythm,
            "interval_seconds": self.interval,
            "interval": None if self.interval is None else duration_text(self.interval),
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
        }

    def render(self) -> str:
        """The advice in plain words, for a terminal."""
        title = {
            "flow": "flow (event-driven, real-time delivery)",
            "thump": f"thump (a scheduled batch every {duration_text(self.interval or 0)})",
            "hybrid": "hybrid: flow for freshness, plus a reconciling thump every "
            f"{duration_text(self.interval or 0)}",
        }[self.rhythm]
        lines = [f"Recommendation: {title}", "", "Why:"]
        lines.extend(f"  - {reason}" for reason in self.reasons)
        if self.warnings:
            lines.extend(["", "Warnings:"])
            lines.extend(f"  ! {warning}" for warning in self.warnings)
        return "\n".join(lines)


def duration_text(seconds: float) -> str:
    """`30s`, `15m`, `4h`, `1d`, `90m`: the largest unit that divides exactly."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def missing_answers(data: Mapping[str, Any]) -> list[str]:
    """Names of the questions `data` does not answer, in question order."""
    return [q.name for q in QUESTIONS if data.get(q.name) is None]


def answers_from_mapping(data: Mapping[str, Any]) -> Answers:
    """Answers from flags or YAML; ValueError naming the first bad or missing answer."""
    unknown = sorted(set(data) - {q.name for q in QUESTIONS})
    if unknown:
        raise ValueError(f"unknown answer(s): {', '.join(unknown)}")
    missing = missing_answers(data)
    if missing:
        raise ValueError(f"missing answer(s): {', '.join(missing)}")
    try:
        latency = float(parse_duration(data["latency"]))
    except (TypeError, ValueError):
        raise ValueError("latency: not a duration (use e.g. 30s, 15m, 4h, 1d)") from None
    numbers = {}
    for name in ("peak_per_second", "average_per_day"):
        try:
            numbers[name] = float(data[name])
        except (TypeError, ValueError):
            raise ValueError(f"{name}: not a number") from None
        if numbers[name] < 0:
            raise ValueError(f"{name}: must not be negative")
    if latency <= 0:
        raise ValueError("latency: must be positive")
    return Answers(
        latency=latency,
        peak_per_second=numbers["peak_per_second"],
        average_per_day=numbers["average_per_day"],
        receiver_coupled=_yes_no(data["receiver_coupled"]),
        recovery=cast(Recovery, _choice(data, "recovery")),
        audit=cast(Audit, _choice(data, "audit")),
        source_feed=cast(SourceFeed, _choice(data, "source_feed")),
    )


def _yes_no(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "y", "true"):
        return True
    if text in ("no", "n", "false"):
        return False
    raise ValueError("receiver_coupled: answer yes or no")


def _choice(data: Mapping[str, Any], name: str) -> str:
    choices = next(q.choices for q in QUESTIONS if q.name == name)
    value = str(data[name]).strip().lower().replace("-", "_")
    if value not in choices:
        raise ValueError(f"{name}: one of {', '.join(choices)}")
    return value


def batch_interval(latency: float) -> float:
    """The largest standard interval at most half the latency tolerance (at least 15 min)."""
    fitting = [i for i in INTERVALS if i <= latency / 2]
    return fitting[-1] if fitting else INTERVALS[0]


def advise(answers: Answers) -> Advice:
    """Recommend a rhythm for one interface; see the module docstring for the rules."""
    a = answers
    reasons: list[str] = []
    warnings: list[str] = []
    latency = duration_text(a.latency)
    if a.latency < FLOW_LATENCY:
        rhythm: Rhythm = "flow"
        reasons.append(
            f"The receiver needs data within {latency}. Only event-driven flow delivers that: "
            "a batch would have to run every few minutes."
        )
        if a.source_feed in ("polling", "files"):
            warnings.append(_polling_warning(a.source_feed, latency))
    else:
        interval = batch_interval(a.latency)
        batch_because = _batch_reasons(a)
        if batch_because:
            reasons.append(
                f"The receiver tolerates data up to {latency} old, so a batch every "
                f"{duration_text(interval)} meets it (at most half the tolerance, leaving room "
                "for the run itself)."
            )
            reasons.extend(batch_because)
            if a.audit != "basic":
                reasons.append(
                    "Each run records its window, counts, checksummed manifests and row "
                    "rejects: the audit trail is built in."
                )
            return Advice("thump", interval, tuple(reasons), tuple(warnings))
        rhythm = "flow"
        reasons.append(
            f"A batch could meet the {latency} tolerance, but the source already emits "
            f"{'events' if a.source_feed == 'events' else 'change data (CDC)'} and the receiver "
            "is online with it: flow gives fresher data at no extra cost."
        )
    if a.receiver_coupled:
        reasons.append("The receiver is available when the source is, so they can be coupled.")
    else:
        reasons.append(
            "The receiver is not always available: the outbox holds deliveries durably and "
            "sends them in order when it is back; size `high_water` for the peak times the "
            "longest outage."
        )
    if a.recovery == "per_record":
        reasons.append(
            "Errors are recovered record by record, which is what flow's retries and "
            "dead-letter list (with audited replay) do."
        )
    if a.peak_per_second > HIGH_PEAK_PER_SECOND:
        warnings.append(
            f"A peak of {a.peak_per_second:g} records/s must be absorbed by the receiver: set a "
            "`rate_limit` it can sustain and route routine traffic to the `bulk` lane."
        )
    hybrid_because = _hybrid_reasons(a)
    if hybrid_because:
        reasons.extend(hybrid_because)
        reasons.append(
            "So: a hybrid. Flow keeps the receiver fresh; a nightly reconciling thump compares "
            "both sides by business key and resends what is missing or stale."
        )
        return Advice("hybrid", RECONCILE_INTERVAL, tuple(reasons), tuple(warnings))
    return Advice(rhythm, None, tuple(reasons), tuple(warnings))


def _batch_reasons(a: Answers) -> list[str]:
    found = []
    if not a.receiver_coupled:
        found.append(
            "The receiver is not available whenever the source is: a scheduled run in its "
            "window decouples them in time."
        )
    if a.source_feed == "polling":
        found.append(
            "The source offers only polling: a scheduled run with a watermark reads what "
            "changed since the last run, at an interval the source can bear."
        )
    if a.source_feed == "files":
        found.append("The source delivers files, which are batches already.")
    if a.recovery == "reload":
        found.append(
            "Errors are recovered by reloading a window: runs are re-runnable by window and "
            "load idempotently by business key."
        )
    if a.peak_per_second > HIGH_PEAK_PER_SECOND:
        found.append(
            f"A peak of {a.peak_per_second:g} records/s is cheaper to move as one bulk load "
            "than as single messages."
        )
    return found


def _hybrid_reasons(a: Answers) -> list[str]:
    found = []
    if a.audit == "completeness":
        found.append(
            "Completeness must be proven: real-time feeds lose messages silently (a dropped "
            "connection, a receiver restored from backup), and only a reconciliation proves "
            "nothing is missing."
        )
    if a.recovery == "reload":
        found.append("Errors are recovered by reloading a window, which a scheduled job does.")
    if not a.receiver_coupled:
        found.append(
            "A receiver that goes away may come back with older data; a reconciliation finds "
            "and repairs what it lost."
        )
    return found


def _polling_warning(feed: SourceFeed, latency: str) -> str:
    offer = "only polling" if feed == "polling" else "only files"
    return (
        f"The source offers {offer}, yet the receiver needs data within {latency}. Polling "
        "every few minutes is a compromise that fails both ways: data is still up to one "
        "interval late, changes between two polls overwrite each other (intermediate states "
        "and deletes are lost), and the source is loaded all day. Ask the source for "
        "notifications (an HL7 v2 feed, FHIR Subscriptions) or change data capture; if it "
        "cannot, agree a longer tolerance and use a thump with reconciliation instead."
    )
