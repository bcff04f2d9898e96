"""Log output of `thumpflow run`: human text or one JSON object per line.

JSON lines carry `time` (UTC, ISO 8601 with milliseconds), `level`,
`logger` and `message` (the rendered message), plus `channel`,
`destination`, `peer`, `job`, `run` and `audit_anchor` when the log call passed them as
`extra`. An exception adds `exc_type` and `exc_where` (the frames as
`file:line function`), never the exception's own text, which may quote
input. Messages name ids, counts and reasons only, never message contents;
`tests/e2e/test_metrics_and_logs.py` scans a whole run's log for the
identifiers and names it sent.

Text lines render an exception the same way (type and frames only).
`auto` (the default) writes text to a terminal and JSON otherwise (a
service manager, a container, a file), which is where logs get collected.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("auto", "json", "text")

FIELDS = ("channel", "destination", "peer", "job", "run", "audit_anchor")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _where(exc_info: Any) -> list[str]:
    return [
        f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}"
        for frame in traceback.extract_tb(exc_info[2])
    ]


class TextFormatter(logging.Formatter):
    """Human lines; an exception shows its type and frames, never its text."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return f"{ei[0].__name__} at " + " < ".join(reversed(_where(ei)))


class JsonFormatter(logging.Formatter):
    """Formats each record as one line of JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc_where"] = _where(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str, log_format: str, stream: TextIO) -> None:
    """Send the root logger's records to `stream` at `level` in the chosen format."""
    if log_format == "auto":
        log_format = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
