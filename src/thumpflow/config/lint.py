"""Lint rules for integration anti-patterns, over a validated configuration. Pure: no I/O.

`lint(config)` returns findings in configuration order (channels, then
jobs); it never raises on a valid `Config`. Each finding names a stable
`rule`, a location (`channel 'adt' > destination 'ehr'`, `job 'nightly' >
source`), what is wrong and what to do instead. The rules:

- `short-poll`: a polling source (`sql` and `fhir_bulk` job sources; any
  channel source with `poll_interval`) that polls more often than every 15
  minutes.
- `unreconciled-flow`: an enabled flow channel writing to a critical system
  (a `fhir` or `mllp` destination) that no job reconciles.
- `no-manifest`: a file source (`file_drop`, `sftp_drop`) with
  `manifest: none` (a warning) or `optional` (info), or a batch file
  destination (`batch_file`, `sftp`) whose `manifest` is turned off.
- `no-zero-record-alert`: a job with `expect_records: false`, whose empty
  runs succeed silently.
- `no-dedup`: a destination that cannot recognise a resend (`mllp`, `http`
  with `format: raw`) unless marked `receiver_deduplicates: true`.

Disabled channels and jobs are not linted. Jobs are read with
`getattr(config, "jobs", [])` and these fields of `config.jobs.Job`: `id`,
`enabled`, `schedule` (`interval` seconds or a `cron` expression),
`source` (`type`, `manifest`), `destinations` (`id`, `type`),
`expect_records` and `reconciles` (the flow channel the job backs up). A
field a job or connector lacks is taken at its safe default, so no finding
is made from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from thumpflow.config.model import Channel, Config

Severity = Literal["error", "warning", "info"]

SHORT_POLL_SECONDS = 900.0
POLLING_SOURCES = frozenset({"sql", "fhir_bulk"})
CRITICAL_DESTINATIONS = frozenset({"fhir", "mllp"})
FILE_SOURCES = frozenset({"file_drop", "sftp_drop"})
FILE_DESTINATIONS = frozenset({"batch_file", "sftp"})
_OFF = (False, None, "none")


@dataclass(slots=True, frozen=True)
class Finding:
    """One anti-pattern found: where, what, and what to do instead."""

    severity: Severity
    rule: str
    location: str
    message: str
    suggestion: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.location}: {self.message} ({self.rule}). {self.suggestion}"


def lint(config: Config) -> list[Finding]:
    """Every finding of every rule; see the module docstring."""
    jobs: list[Any] = list(getattr(config, "jobs", None) or [])
    reconciled = {target for job in jobs if (target := _reconciled_channel(job)) is not None}
    findings: list[Finding] = []
    for channel in config.channels:
        if channel.enabled:
            findings.extend(_channel(channel, reconciled))
    for job in jobs:
        if getattr(job, "enabled", True):
            findings.extend(_job(job))
    return findings


def _channel(channel: Channel, reconciled: set[str]) -> list[Finding]:
    found: list[Finding] = []
    where = f"channel '{channel.id}'"
    interval = _seconds(getattr(channel.source, "poll_interval", None))
    if interval is not None and interval < SHORT_POLL_SECONDS:
        found.append(_short_poll(f"{where} > source", interval))
    for destination in channel.destinations:
        at = f"{where} > destination '{destination.id}'"
        if destination.type in CRITICAL_DESTINATIONS and channel.id not in reconciled:
            found.append(
                Finding(
                    "warning",
                    "unreconciled-flow",
                    at,
                    f"a flow to a critical system ({destination.type}) with no reconciling job: "
                    "a message lost on the way (a receiver restored from backup, a manual fix "
                    "on either side) is never noticed",
                    f"declare a job with `reconciles: {channel.id}` that compares source and "
                    "destination by business key (nightly is typical) and resends the drift",
                )
            )
        dedup = _no_dedup(destination, at)
        if dedup is not None:
            found.append(dedup)
    return found


def _job(job: Any) -> list[Finding]:
    found: list[Finding] = []
    where = f"job '{getattr(job, 'id', '?')}'"
    source = getattr(job, "source", None)
    source_type = getattr(source, "type", None)
    interval = _job_interval(job)
    if source_type in POLLING_SOURCES and interval is not None and interval < SHORT_POLL_SECONDS:
        found.append(_short_poll(f"{where} > source", interval))
    manifest = getattr(source, "manifest", "required")
    if source_type in FILE_SOURCES and (manifest in _OFF or manifest == "optional"):
        found.append(
            Finding(
                "info" if manifest == "optional" else "warning",
                "no-manifest",
                f"{where} > source",
                "files are imported without checking a manifest"
                + (" when none is present" if manifest == "optional" else "")
                + ": a partial, late or corrupted file is loaded as if it were complete",
                "set `manifest: required` and have the sender write a manifest beside each "
                "file (record count, SHA-256, window, source)",
            )
        )
    if getattr(job, "expect_records", True) is False:
        found.append(
            Finding(
                "warning",
                "no-zero-record-alert",
                where,
                "a run that reads zero records succeeds silently (`expect_records: false`); an "
                "empty batch is often a broken upstream",
                "set `expect_records: true` so an empty run raises an alert event, unless "
                "empty windows are normal for this source",
            )
        )
    for destination in getattr(job, "destinations", None) or []:
        at = f"{where} > destination '{getattr(destination, 'id', '?')}'"
        kind = getattr(destination, "type", None)
        if kind in FILE_DESTINATIONS and getattr(destination, "manifest", True) in _OFF:
            found.append(
                Finding(
                    "warning",
                    "no-manifest",
                    at,
                    "batch files are written without a manifest: the receiver cannot tell a "
                    "complete file from a partial one",
                    "write a manifest (count and SHA-256) beside each file",
                )
            )
        dedup = _no_dedup(destination, at)
        if dedup is not None:
            found.append(dedup)
    return found


def _short_poll(location: str, interval: float) -> Finding:
    return Finding(
        "warning",
        "short-poll",
        location,
        f"polls every {interval:g} s: polling this often is neither real-time (data is up to "
        "one interval late) nor complete (changes between polls overwrite each other, deletes "
        "are missed), and it loads the source all day",
        "use a subscription or change data capture (a flow channel) for freshness, or poll "
        "every 15 minutes or less often with a reconciling job",
    )


def _no_dedup(destination: Any, location: str) -> Finding | None:
    kind = getattr(destination, "type", None)
    if getattr(destination, "receiver_deduplicates", False):
        return None
    if kind == "mllp":
        what = "an MLLP receiver cannot recognise a resend unless it deduplicates by MSH-10"
    elif kind == "http" and getattr(destination, "format", None) == "raw":
        what = (
            "raw HTTP carries no event id in the body; a receiver that ignores the "
            "`Idempotency-Key` header applies a resend twice"
        )
    else:
        return None
    return Finding(
        "warning",
        "no-dedup",
        location,
        f"{what}: after a lost acknowledgement the resend becomes a duplicate",
        "confirm the receiver deduplicates (MSH-10 / Idempotency-Key) and keep that key stable "
        "through transforms, then mark the destination `receiver_deduplicates: true`; or "
        "deliver through a destination that can deduplicate (FHIR conditional writes, HTTP "
        "`format: json`)",
    )


def _reconciled_channel(job: Any) -> str | None:
    value = getattr(job, "reconciles", None)
    if value is not None and not isinstance(value, str):
        value = getattr(value, "channel", None)
    return value if isinstance(value, str) else None


def _job_interval(job: Any) -> float | None:
    """Seconds between runs, when the schedule makes it known (an interval, or a cron)."""
    schedule = getattr(job, "schedule", job)
    if isinstance(schedule, str):
        return _cron_interval(schedule)
    interval = _seconds(getattr(schedule, "interval", None))
    if interval is not None:
        return interval
    cron = getattr(schedule, "cron", None)
    return _cron_interval(cron) if isinstance(cron, str) else None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _cron_interval(expression: str) -> float | None:
    """The shortest gap of a cron expression's minute/hour fields, when under a day."""
    fields = expression.split()
    if len(fields) < 5:
        return None
    minute, hour = fields[0], fields[1]
    per_hour = _per_unit(minute, 60)
    if per_hour is None:
        return None
    if hour == "*":
        return 3600.0 / per_hour if per_hour > 1 else 3600.0
    if hour.startswith("*/") and hour[2:].isdigit() and per_hour == 1:
        return int(hour[2:]) * 3600.0
    return None if per_hour == 1 else 3600.0 / per_hour


def _per_unit(field: str, size: int) -> int | None:
    """How many times per hour a minute field fires (evenly assumed); None if unreadable."""
    if field == "*":
        return size
    if field.startswith("*/") and field[2:].isdigit() and int(field[2:]) > 0:
        return max(1, size // int(field[2:]))
    parts = field.split(",")
    if all(part.isdigit() for part in parts):
        return len(parts)
    return None
