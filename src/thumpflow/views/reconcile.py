"""The bed board compared with a census snapshot from the EHR: drift, reported. Pure.

A snapshot is what the EHR believed at its `as_of` time: one row per bed
(`unit`, `bed`, `patient`, empty for a free bed). It is never taken for live
data: a bed whose occupant the board learnt of after `as_of` is not compared
(counted as `newer`), since the snapshot cannot know of it. Every other bed
of the units the snapshot covers is compared by occupant; a bed the board
knows in those units but the snapshot leaves out counts as free in the
snapshot. Repairing the drift is a person's act (`runtime.settlements`):
an event that states, per drifted bed, the snapshot's occupant.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from thumpflow.views.state import Projection


@dataclass(frozen=True, slots=True)
class Drift:
    """One bed whose occupant differs between the board and the snapshot."""

    bed: str
    board: str | None
    snapshot: str | None


@dataclass(frozen=True, slots=True)
class Reconciliation:
    compared: int
    newer: int
    drift: tuple[Drift, ...]


def read_snapshot(text: str, where: str) -> dict[str, str | None]:
    """Bed (`<unit>/<bed>`) -> patient (None: free) from CSV with `unit,bed,patient`.

    Raises ValueError naming the file and line of a bad row (never its values).
    """
    rows = csv.DictReader(io.StringIO(text))
    if rows.fieldnames is None or not {"unit", "bed", "patient"} <= set(rows.fieldnames):
        raise ValueError(f"{where}: the header must name unit, bed and patient")
    out: dict[str, str | None] = {}
    for row in rows:
        unit, bed = (row.get("unit") or "").strip(), (row.get("bed") or "").strip()
        if not unit or not bed:
            raise ValueError(f"{where}:{rows.line_num}: unit and bed are required")
        name = f"{unit}/{bed}"
        if name in out:
            raise ValueError(f"{where}:{rows.line_num}: this bed is listed twice")
        out[name] = (row.get("patient") or "").strip() or None
    return out


def reconcile(
    projection: Projection, snapshot: dict[str, str | None], as_of: float
) -> Reconciliation:
    """Compare occupants of the snapshot's units' beds; see the module docstring."""
    units = {name.partition("/")[0] for name in snapshot}
    beds = set(snapshot) | {n for n, bed in projection.beds.items() if bed.unit in units}
    compared = newer = 0
    drift = []
    for name in sorted(beds):
        bed = projection.beds.get(name)
        occupant = bed.occupant if bed else None
        stamp = bed.occupancy.stamp if bed else None
        if stamp is not None and stamp.as_of > as_of:
            newer += 1
            continue
        compared += 1
        expected = snapshot.get(name)
        if occupant != expected:
            drift.append(Drift(name, occupant, expected))
    return Reconciliation(compared, newer, tuple(drift))
