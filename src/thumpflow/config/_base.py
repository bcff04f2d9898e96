"""What every configuration model shares: frozen models that refuse unknown keys, the id
pattern, and the checks of HL7 v2 paths and regular expressions (each a ValueError whose
text says what is wrong, located by the loader)."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict

from thumpflow.hl7v2 import compile_path

ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def check_path(path: str) -> str:
    try:
        compile_path(path)
    except ValueError as err:
        raise ValueError(f"not an HL7 v2 path: {err}") from None
    return path


def check_zone(value: str) -> str:
    """`value` unchanged if it names an IANA time zone (`UTC`, `America/New_York`);
    else ValueError."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone name (e.g. UTC, America/New_York)") from None
    return value


def check_regex(value: str | None) -> str | None:
    """`value` unchanged if it is None or a valid regular expression; else ValueError."""
    if value is not None:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"not a regular expression: {err}") from None
    return value
