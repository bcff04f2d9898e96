"""Record transforms for the thump tests (pure, except `slow`, which waits a little)."""

from __future__ import annotations

import time
from typing import Any

from thumpflow.core.records import content_hash


def upper_family(record: dict[str, Any]) -> dict[str, Any] | None:
    if record["ward"] == "SURG":
        return None
    if record["family"] == "Boom":
        raise RuntimeError("a transform bug")
    return {**record, "family": str(record["family"]).upper()}


def slow(record: dict[str, Any]) -> dict[str, Any]:
    time.sleep(0.001)
    return record


def census_adt(record: dict[str, Any]) -> bytes:
    """The ADT^A08 repairing a census row; MSH-10 from its content: a resend is a duplicate."""
    control = "R" + content_hash(record)[:19]
    born = record["birth_date"].strftime("%Y%m%d") if record["birth_date"] else ""
    pv1 = {1: "1", 2: "I", 3: f"{record['unit']}^1^A", 19: record["visit"]}
    return (
        f"MSH|^~\\&|RECON|GENHOSP|ENGINE|GENHOSP|20261121090000||ADT^A08^ADT_A01|{control}|P|2.5\r"
        f"PID|1||{record['mrn']}^^^GENHOSP^MR||{record['family']}^Pat||{born}\r"
        + "|".join(["PV1", *(pv1.get(n, "") for n in range(1, 20))])
        + "\r"
    ).encode()
