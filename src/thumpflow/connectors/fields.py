"""Field types every configuration model shares: durations and local paths. Pure data, no I/O.

A shared helper, not a connector: connector specs and `config` use these so
that every duration accepts the same forms and every local path resolves
the same way.

- `Duration`: seconds as a number, or a string `500ms`, `30s`, `5m`, `2h`, `1d`.
- `LocalPath`: a path on this machine. A relative path is resolved against
  the folder of the configuration file when the file is validated with the
  context `{"base_dir": folder}` (as `load_config` does), so an engine
  started by systemd from `/` reads the same files as one started from the
  configuration's folder. Without that context it is left as written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationInfo, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a string like `500ms`, `30s`, `5m`, `2h`, `1d`."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 2h, 1d)")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


class DurationMark:
    """Marks a field as a duration, so the reference names its type `duration`."""


class PathMark:
    """Marks a field as a local path, so the reference names its type `path`."""


def _resolve(value: str, info: ValidationInfo) -> str:
    context = info.context
    base = context.get("base_dir") if isinstance(context, dict) else None
    if base is None or not value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else Path(base) / path)


Duration = Annotated[
    float,
    DurationMark(),
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {"anyOf": [{"type": "number"}, {"type": "string", "pattern": DURATION_PATTERN}]}
    ),
]
LocalPath = Annotated[str, PathMark(), AfterValidator(_resolve)]
