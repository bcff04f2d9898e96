"""Manifests: the JSON sidecar of a batch file, and the checks made against it.

A manifest is `<data file>.manifest.json`:

    {"name": "census-2024-01-02.csv", "record_count": 1200,
     "sha256": "<64 hex digits of the data file's bytes>",
     "created_at": "2024-01-02T02:00:05Z",
     "window": {"start": "2024-01-01T02:00:00Z", "end": "2024-01-02T02:00:00Z"},
     "source": "lab-system"}

`parse_manifest` validates that shape and raises `ManifestError` listing every
problem with its JSON location. `check` compares a manifest with what was
observed of its data file and returns one `Problem` per mismatch, each naming
its kind and, in its detail, the claimed and observed values (counts, digests,
times, window bounds and system ids: never record content).

Watermarks are opaque text; they are compared as instants when both are ISO
8601 timestamps (a timestamp without zone is UTC), as integers when both are
integers, and as text otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from thumpflow.core.batch import Manifest, Window
from thumpflow.core.errors import ThumpflowError

MANIFEST_SUFFIX = ".manifest.json"

ProblemKind = Literal[
    "missing",
    "partial",
    "manifest",
    "format",
    "name",
    "count",
    "checksum",
    "late",
    "window",
    "source",
]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FIELDS = ("name", "record_count", "sha256", "created_at", "window", "source")


class ManifestError(ThumpflowError):
    """A manifest that is not valid JSON of the manifest's shape; `problems` are located."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = problems
        super().__init__("\n".join(f"{where}: {p}" for p in problems))


@dataclass(slots=True, frozen=True)
class Problem:
    """Why a batch file must not be imported: a `kind` and a precise `detail`."""

    kind: ProblemKind
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


def manifest_name(data_name: str) -> str:
    """The manifest file name beside a data file."""
    return data_name + MANIFEST_SUFFIX


def format_time(seconds: float) -> str:
    """ISO 8601 UTC with a `Z`, microseconds only when there are any."""
    moment = datetime.fromtimestamp(seconds, UTC)
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 timestamp or date as an aware datetime (no zone → UTC), else None."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def compare_watermarks(a: str, b: str) -> int:
    """-1, 0 or 1 as `a` is before, at or after `b` (see the module docstring)."""
    ta, tb = parse_time(a), parse_time(b)
    left: Any
    right: Any
    if ta is not None and tb is not None:
        left, right = ta, tb
    elif _is_int(a) and _is_int(b):
        left, right = int(a), int(b)
    else:
        left, right = a, b
    return int(left > right) - int(left < right)


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def manifest_to_json(manifest: Manifest) -> bytes:
    """The manifest as indented UTF-8 JSON with a final newline."""
    document = {
        "name": manifest.name,
        "record_count": manifest.record_count,
        "sha256": manifest.sha256,
        "created_at": format_time(manifest.created_at),
        "window": {"start": manifest.window.start, "end": manifest.window.end},
        "source": manifest.source,
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def parse_manifest(data: bytes, where: str) -> Manifest:
    """A manifest from its JSON; ManifestError naming `where` and each bad field."""
    try:
        document = json.loads(data)
    except UnicodeDecodeError:
        raise ManifestError(where, ["not UTF-8"]) from None
    except json.JSONDecodeError as exc:
        raise ManifestError(
            where, [f"line {exc.lineno} column {exc.colno}: not JSON: {exc.msg}"]
        ) from None
    if not isinstance(document, dict):
        raise ManifestError(where, ["$: must be a JSON object"])
    problems: list[str] = []
    for key in document:
        if key not in _FIELDS:
            problems.append(f"$.{key}: unknown field")
    for key in _FIELDS:
        if key not in document:
            problems.append(f"$.{key}: missing")
    name = _text(document, "name", problems)
    count = document.get("record_count")
    if "record_count" in document and (
        not isinstance(count, int) or isinstance(count, bool) or count < 0
    ):
        problems.append("$.record_count: must be a non-negative integer")
    sha = _text(document, "sha256", problems)
    if sha and not _SHA256.fullmatch(sha):
        problems.append("$.sha256: must be 64 lower-case hexadecimal digits")
    created = _text(document, "created_at", problems)
    created_at = parse_time(created) if created else None
    if created and (created_at is None or datetime.fromisoformat(created).tzinfo is None):
        problems.append("$.created_at: must be an ISO 8601 timestamp with its zone (Z for UTC)")
    source = _text(document, "source", problems)
    window = _window(document.get("window"), problems) if "window" in document else Window()
    if problems:
        raise ManifestError(where, problems)
    assert isinstance(count, int) and created_at is not None
    return Manifest(
        name=name,
        record_count=count,
        sha256=sha,
        created_at=created_at.timestamp(),
        source=source,
        window=window,
    )


def _text(document: Mapping[str, Any], key: str, problems: list[str]) -> str:
    value = document.get(key)
    if key not in document:
        return ""
    if not isinstance(value, str) or not value:
        problems.append(f"$.{key}: must be a non-empty string")
        return ""
    return value


def _window(value: Any, problems: list[str]) -> Window:
    if not isinstance(value, dict):
        problems.append("$.window: must be an object with `start` and `end`")
        return Window()
    bounds: dict[str, str | None] = {"start": None, "end": None}
    for key in value:
        if key not in bounds:
            problems.append(f"$.window.{key}: unknown field")
    for key in bounds:
        bound = value.get(key)
        if bound is not None and not isinstance(bound, str):
            problems.append(f"$.window.{key}: must be a string or null")
        else:
            bounds[key] = bound
    return Window(bounds["start"], bounds["end"])


def check(
    manifest: Manifest,
    *,
    name: str,
    record_count: int,
    sha256: str,
    expected_window: Window | None = None,
    max_age: float | None = None,
    source: str | None = None,
    now: float,
) -> list[Problem]:
    """Every way the manifest disagrees with what was observed; empty when none.

    - `name`: the manifest names another file.
    - `count`, `checksum`: the data file's record count or SHA-256 differ.
    - `source`: `source` is given and the manifest names another system.
    - `window`: the manifest's window reaches outside `expected_window`
      (starts before its start or ends after its end; unbounded sides pass).
    - `late`: with `max_age` (seconds), more than that has passed since the
      window's end when it is a timestamp, else since `created_at`.
    """
    problems: list[Problem] = []
    if manifest.name != name:
        problems.append(Problem("name", f"manifest names {manifest.name!r}, the file is {name!r}"))
    if manifest.record_count != record_count:
        problems.append(
            Problem(
                "count",
                f"manifest says {manifest.record_count} records, the file has {record_count}",
            )
        )
    if manifest.sha256 != sha256:
        problems.append(
            Problem("checksum", f"manifest SHA-256 {manifest.sha256}, the file's is {sha256}")
        )
    if source is not None and manifest.source != source:
        problems.append(
            Problem("source", f"manifest source is {manifest.source!r}, expected {source!r}")
        )
    if expected_window is not None:
        problems.extend(_window_problems(manifest.window, expected_window))
    if max_age is not None:
        late = _lateness(manifest, max_age, now)
        if late is not None:
            problems.append(late)
    return problems


def _window_problems(window: Window, expected: Window) -> list[Problem]:
    problems = []
    if (
        expected.start is not None
        and window.start is not None
        and compare_watermarks(window.start, expected.start) < 0
    ):
        problems.append(
            Problem(
                "window",
                f"file window starts at {window.start}, before the run's start {expected.start}",
            )
        )
    if (
        expected.end is not None
        and window.end is not None
        and compare_watermarks(window.end, expected.end) > 0
    ):
        problems.append(
            Problem(
                "window", f"file window ends at {window.end}, after the run's end {expected.end}"
            )
        )
    return problems


def _lateness(manifest: Manifest, max_age: float, now: float) -> Problem | None:
    end = parse_time(manifest.window.end) if manifest.window.end is not None else None
    if end is not None:
        since, what = end.timestamp(), f"its window ended at {manifest.window.end}"
    else:
        since, what = manifest.created_at, f"it was created at {format_time(manifest.created_at)}"
    age = now - since
    if age <= max_age:
        return None
    return Problem("late", f"{what}, {age:.0f} s ago; max_age is {max_age:g} s")
