"""Record transforms for the thump tests (pure, except `pause_midway`, which may block)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from thumpflow.core.records import content_hash


def upper_family(record: dict[str, Any]) -> dict[str, Any] | None:
    if record["ward"] == "SURG":
        return None
    if record["family"] == "Boom":
        raise RuntimeError("a transform bug")
    return {**record, "family": str(record["family"]).upper()}


MIDWAY_MRN = "MRN000750"
SENTINEL_VARIABLE = "THUMPFLOW_TEST_MIDWAY_SENTINEL"


def pause_midway(record: dict[str, Any]) -> dict[str, Any]:
    """Identity, except at record `MIDWAY_MRN` of a run that has no sentinel file yet.

    There it creates the file named by `$THUMPFLOW_TEST_MIDWAY_SENTINEL` (after
    every earlier record has been handed to the destination in its batches) and
    blocks, so a test can kill the process at a known point instead of racing a
    timer. Once the file exists (the re-run) it passes every record.
    """
    if record["mrn"] == MIDWAY_MRN:
        sentinel = Path(os.environ[SENTINEL_VARIABLE])
        if not sentinel.exists():
            sentinel.touch()
            time.sleep(120)
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


def census_adt_versioned(record: dict[str, Any]) -> bytes:
    """As `census_adt`, with the record's `updated_at` (its version) as MSH-7."""
    message = census_adt({k: v for k, v in record.items() if k != "updated_at"})
    sent = record["updated_at"].strftime("%Y%m%d%H%M%S")
    control = "R" + content_hash(record)[:19]
    head, _, rest = message.partition(b"\r")
    fields = head.split(b"|")
    fields[6], fields[9] = sent.encode(), control.encode()
    return b"|".join(fields) + b"\r" + rest
