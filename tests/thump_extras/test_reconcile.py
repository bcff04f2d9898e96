"""Reconciliation finds every seeded difference, in both strategies, and partitions the keys."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thumpflow.core.batch import SourceRecord, Window
from thumpflow.thump.reconcile import (
    Difference,
    DifferenceKind,
    KeyState,
    ReconciliationReport,
    UnorderedInputError,
    key_states,
    reconcile,
)

K = DifferenceKind


async def items(states: Iterable[KeyState]) -> AsyncIterator[KeyState]:
    for state in states:
        yield state


def run(source: list[KeyState], destination: list[KeyState], **kw: object) -> ReconciliationReport:
    return asyncio.run(reconcile(items(source), items(destination), **kw))  # type: ignore[arg-type]


def seeded() -> tuple[list[KeyState], list[KeyState]]:
    """100 keys in sync plus one of each kind of difference, and records on the source side."""

    def record(key: str) -> SourceRecord:
        return SourceRecord({"mrn": key}, f"census.csv line {key}")

    source = [KeyState(f"k{i:03d}", f"h{i}", 3, record(f"k{i:03d}")) for i in range(100)]
    destination = [KeyState(f"k{i:03d}", f"h{i}", 3) for i in range(100)]
    source.append(KeyState("m-missing", "hm", 1, record("m-missing")))
    source.append(KeyState("s-stale", "new", 5, record("s-stale")))
    destination.append(KeyState("s-stale", "old", 4))
    source.append(KeyState("c-mismatch", "ours", 2, record("c-mismatch")))
    destination.append(KeyState("c-mismatch", "theirs", 2))
    source.append(KeyState("a-ahead", "older", 2, record("a-ahead")))
    destination.append(KeyState("a-ahead", "newer", 3))
    destination.append(KeyState("x-extra", "hx", 1))
    source.append(KeyState("u-unversioned", "one", None, record("u-unversioned")))
    destination.append(KeyState("u-unversioned", "two", 7))
    destination.append(KeyState("v-same-content", "same", 1))
    source.append(KeyState("v-same-content", "same", 9, record("v-same-content")))
    return source, destination


EXPECTED = {
    "m-missing": K.MISSING_IN_DESTINATION,
    "s-stale": K.STALE_VERSION,
    "c-mismatch": K.CONTENT_MISMATCH,
    "u-unversioned": K.CONTENT_MISMATCH,
    "a-ahead": K.DESTINATION_AHEAD,
    "x-extra": K.UNEXPECTED_EXTRA,
}


@pytest.mark.parametrize("ordered", [True, False])
def test_every_seeded_difference_is_found_and_classified(ordered: bool) -> None:
    source, destination = seeded()
    if ordered:
        source.sort(key=lambda s: s.business_key)
        destination.sort(key=lambda s: s.business_key)
    else:
        random.Random(4).shuffle(source)
        random.Random(5).shuffle(destination)
    report = run(source, destination, ordered=ordered, window=Window("2024-01-01", "2024-01-02"))
    assert {d.business_key: d.kind for d in report.differences} == EXPECTED
    assert report.matched == 101
    assert report.counts[K.CONTENT_MISMATCH] == 2
    assert report.source_keys == 106 and report.destination_keys == 106
    assert report.total_keys == 107
    assert not report.truncated and not report.in_sync
    stale = next(d for d in report.differences if d.kind is K.STALE_VERSION)
    assert (stale.source_version, stale.destination_version) == (5, 4)
    repairs = {r.business_key: r for r in report.repairs()}
    assert {k for k, r in repairs.items() if r.action == "resend"} == {
        "m-missing",
        "s-stale",
        "c-mismatch",
        "u-unversioned",
    }
    assert repairs["a-ahead"].action == "review" and repairs["x-extra"].action == "review"
    assert repairs["m-missing"].record == SourceRecord(
        {"mrn": "m-missing"}, "census.csv line m-missing"
    )
    assert repairs["x-extra"].record is None


def test_report_json_and_table() -> None:
    source, destination = seeded()
    source.sort(key=lambda s: s.business_key)
    destination.sort(key=lambda s: s.business_key)
    report = run(source, destination, window=Window("2024-01-01T00:00:00Z", None))
    data = json.loads(report.to_json())
    assert data["counts"] == {
        "missing_in_destination": 1,
        "stale_version": 1,
        "content_mismatch": 2,
        "destination_ahead": 1,
        "unexpected_extra": 1,
    }
    assert data["matched"] == 101 and data["total_keys"] == 107
    assert data["window"] == {"start": "2024-01-01T00:00:00Z", "end": None}
    assert {d["business_key"] for d in data["differences"]} == set(EXPECTED)
    table = report.render_table(limit=3)
    assert "reconciliation over 2024-01-01T00:00:00Z .. -" in table
    assert "  stale_version                   1" in table
    assert "... 3 more difference(s) not shown" in table
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("kind"))
    assert set(lines[header + 1].replace(" ", "")) == {"-"}
    assert "a-ahead" in lines[header + 2] and "v2 older" in lines[header + 2]
    empty = run([KeyState("a", "h", 1)], [KeyState("a", "h", 1)])
    assert empty.in_sync and "no differences" in empty.render_table()


def test_keep_bounds_the_kept_differences_and_on_difference_sees_all() -> None:
    seen: list[Difference] = []

    async def collect(difference: Difference) -> None:
        seen.append(difference)

    source = [KeyState(f"k{i:04d}", "h", 1) for i in range(50)]
    report = run(source, [], keep=10, on_difference=collect)
    assert len(report.differences) == 10 and report.truncated
    assert report.counts[K.MISSING_IN_DESTINATION] == 50
    assert [d.business_key for d in seen] == [s.business_key for s in source]


def test_unsorted_input_is_refused_in_ordered_mode() -> None:
    with pytest.raises(UnorderedInputError, match="destination side"):
        run([], [KeyState("b", "h"), KeyState("a", "h")])


def test_duplicate_keys_count_once_first_occurrence_wins() -> None:
    for ordered in (True, False):
        report = run(
            [KeyState("a", "h1", 1), KeyState("a", "h2", 2), KeyState("b", "x")],
            [KeyState("a", "h1", 1), KeyState("b", "y"), KeyState("b", "x")],
            ordered=ordered,
        )
        assert report.matched == 1, ordered
        assert report.counts[K.CONTENT_MISMATCH] == 1
        assert (report.source_duplicates, report.destination_duplicates) == (1, 1)


def test_key_states_adapts_any_record() -> None:
    async def rows() -> AsyncIterator[dict[str, str]]:
        yield {"mrn": "1", "name": "x", "v": "2"}

    async def collect() -> list[KeyState]:
        return [
            s
            async for s in key_states(
                rows(),
                key=lambda r: r["mrn"],
                content_hash=lambda r: r["name"],
                version=lambda r: int(r["v"]),
                record=lambda r: SourceRecord(r, "rows line 1"),
            )
        ]

    (state,) = asyncio.run(collect())
    assert (state.business_key, state.content_hash, state.version) == ("1", "x", 2)
    assert state.record is not None and state.record.origin == "rows line 1"


sides = st.dictionaries(
    st.text(alphabet="abcdef", min_size=1, max_size=3),
    st.tuples(st.sampled_from(["h1", "h2", "h3"]), st.none() | st.integers(0, 3)),
    max_size=30,
)


@settings(max_examples=150)
@given(source=sides, destination=sides, ordered=st.booleans())
def test_counts_partition_the_keys_exactly(
    source: dict[str, tuple[str, int | None]],
    destination: dict[str, tuple[str, int | None]],
    ordered: bool,
) -> None:
    def states(side: dict[str, tuple[str, int | None]]) -> list[KeyState]:
        return [KeyState(k, h, v) for k, (h, v) in sorted(side.items())]

    report = run(states(source), states(destination), ordered=ordered)
    keys = set(source) | set(destination)
    assert report.total_keys == len(keys)
    assert report.matched + sum(report.counts.values()) == len(keys)
    assert report.source_keys == len(source) and report.destination_keys == len(destination)
    classified = {d.business_key: d.kind for d in report.differences}
    assert len(classified) == len(report.differences)
    matched = keys - set(classified)
    assert len(matched) == report.matched
    for key in keys:
        kind = classified.get(key)
        if key not in destination:
            assert kind is K.MISSING_IN_DESTINATION
        elif key not in source:
            assert kind is K.UNEXPECTED_EXTRA
        elif source[key][0] == destination[key][0]:
            assert kind is None
        else:
            assert kind is not None and kind.value in {
                "stale_version",
                "content_mismatch",
                "destination_ahead",
            }
