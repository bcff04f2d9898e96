"""The bed board against an EHR census snapshot: drift named, newer beds not compared."""

from __future__ import annotations

import pytest

from tests.views.support import T0, event, spec
from thumpflow.testing.hospital import adt
from thumpflow.views.reconcile import Drift, read_snapshot, reconcile
from thumpflow.views.state import Projection


def test_drift_is_found_and_beds_changed_after_the_snapshot_are_not_compared() -> None:
    p = Projection(spec())
    for n, body in enumerate(
        [
            adt("A01", "P1", "4W/401-A", T0 + 1, "c1"),
            adt("A01", "P2", "4W/401-B", T0 + 2, "c2"),
            adt("A01", "P3", "4W/402-A", T0 + 50, "c3"),  # after the snapshot
        ],
        start=1,
    ):
        p.apply(event(body, n), n)
    snapshot = read_snapshot("unit,bed,patient\n4W,401-A,P1\n4W,401-B,P7\n", "census.csv")
    found = reconcile(p, snapshot, as_of=T0 + 10)
    assert (found.compared, found.newer) == (2, 1)
    assert found.drift == (Drift("4W/401-B", "P2", "P7"),)


def test_a_bad_snapshot_is_located_without_its_values() -> None:
    with pytest.raises(ValueError, match=r"^census.csv: the header must name"):
        read_snapshot("ward,bed\n", "census.csv")
    with pytest.raises(ValueError, match=r"^census.csv:3: this bed is listed twice$"):
        read_snapshot("unit,bed,patient\n4W,1,SECRET\n4W,1,SECRET\n", "census.csv")
    with pytest.raises(ValueError, match=r"^census.csv:2: unit and bed are required$"):
        read_snapshot("unit,bed,patient\n,1,SECRET\n", "census.csv")
