"""Record transforms for the thump tests (pure, except `slow`, which waits a little)."""

from __future__ import annotations

import time
from typing import Any


def upper_family(record: dict[str, Any]) -> dict[str, Any] | None:
    if record["ward"] == "SURG":
        return None
    if record["family"] == "Boom":
        raise RuntimeError("a transform bug")
    return {**record, "family": str(record["family"]).upper()}


def slow(record: dict[str, Any]) -> dict[str, Any]:
    time.sleep(0.001)
    return record
