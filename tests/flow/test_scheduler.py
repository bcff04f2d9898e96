"""The lane scheduler: order per key, weighted lanes, starvation guard, per-key retry waits."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from thumpflow.core.event import Delivery
from thumpflow.core.lanes import Lane
from thumpflow.flow.scheduler import LaneScheduler

_ids = iter(range(1, 10_000_000))


def delivery(key: str, lane: Lane = Lane.ROUTINE, delivery_id: int | None = None) -> Delivery:
    return Delivery(
        delivery_id=next(_ids) if delivery_id is None else delivery_id,
        event_id="E",
        destination_id="d",
        channel_id="c",
        ordering_key=key,
        lane=lane,
        sequence=None,
        created_at=0.0,
        body=b"",
        content_type="x",
        event_type="t",
    )


def test_one_in_flight_per_key_and_ingest_order() -> None:
    schedule = LaneScheduler()
    a1, a2, b1 = delivery("A"), delivery("A"), delivery("B")
    schedule.add([a1, a2, b1], now=0)
    first = schedule.take(10, now=0)
    assert [d.delivery_id for d in first] == [a1.delivery_id, b1.delivery_id]
    assert schedule.take(10, now=0) == []
    schedule.finished(a1, now=0)
    assert schedule.take(10, now=0) == [a2]


def test_retrying_key_blocks_only_itself() -> None:
    schedule = LaneScheduler()
    a1, a2, b1, b2 = delivery("A"), delivery("A"), delivery("B"), delivery("B")
    schedule.add([a1, a2, b1, b2], now=0)
    schedule.take(2, now=0)
    schedule.retry_at(a1, when=10.0, now=0)
    schedule.finished(b1, now=0)
    assert schedule.take(10, now=1) == [b2]
    assert schedule.next_due() == 10.0
    schedule.finished(b2, now=1)
    assert schedule.take(10, now=9.9) == []
    assert schedule.take(10, now=10.0) == [a1]
    schedule.finished(a1, now=10)
    assert schedule.take(10, now=10) == [a2]


def test_weighted_lanes_serve_stat_most_but_bulk_still_moves() -> None:
    schedule = LaneScheduler(starvation_seconds=1e9)
    items = [delivery(f"{lane.label}{n}", lane) for lane in Lane for n in range(200)]
    schedule.add(items, now=0)
    served: Counter[Lane] = Counter()
    for _ in range(150):
        (picked,) = schedule.take(1, now=0)
        served[picked.lane] += 1
        schedule.finished(picked, now=0)
    assert served[Lane.STAT] == 80
    assert served[Lane.URGENT] == 40
    assert served[Lane.ROUTINE] == 20
    assert served[Lane.BULK] == 10


def test_starvation_guard_serves_old_bulk_first() -> None:
    schedule = LaneScheduler(starvation_seconds=5)
    old_bulk = delivery("bulk", Lane.BULK)
    schedule.add([old_bulk], now=0)
    schedule.add([delivery(f"s{n}", Lane.STAT) for n in range(50)], now=6)
    assert schedule.take(1, now=6) == [old_bulk]


def test_urgent_delivery_promotes_its_waiting_key() -> None:
    schedule = LaneScheduler(starvation_seconds=1e9)
    blocker = delivery("busy")
    schedule.add([blocker], now=0)
    assert schedule.take(1, now=0) == [blocker]
    routine = delivery("P", Lane.ROUTINE)
    others = [delivery(f"r{n}", Lane.ROUTINE) for n in range(20)]
    schedule.add([routine, *others], now=0)
    stat = delivery("P", Lane.STAT)
    schedule.add([stat], now=0)
    assert schedule.take(1, now=0) == [routine]


def test_replayed_delivery_is_ordered_by_id_behind_in_flight_head() -> None:
    schedule = LaneScheduler()
    head, later = delivery("A", delivery_id=10), delivery("A", delivery_id=30)
    schedule.add([head, later], now=0)
    assert schedule.take(1, now=0) == [head]
    replayed = delivery("A", delivery_id=20)
    schedule.add([replayed], now=0)
    schedule.finished(head, now=0)
    assert schedule.take(1, now=0) == [replayed]
    schedule.finished(replayed, now=0)
    assert schedule.take(1, now=0) == [later]


def test_delivery_loaded_with_future_attempt_waits() -> None:
    schedule = LaneScheduler()
    waiting = delivery("A")
    waiting.next_attempt_at = 50.0
    schedule.add([waiting], now=0)
    assert schedule.take(5, now=49) == []
    assert schedule.take(5, now=50) == [waiting]


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("ABCDE"), st.sampled_from(list(Lane)), st.sampled_from(["ok", "retry"])
        ),
        min_size=1,
        max_size=60,
    )
)
def test_any_interleaving_keeps_per_key_order_and_loses_nothing(
    plan: list[tuple[str, Lane, str]],
) -> None:
    schedule = LaneScheduler(starvation_seconds=3)
    items = [delivery(key, lane) for key, lane, _ in plan]
    fate = {item.delivery_id: action for item, (_, _, action) in zip(items, plan, strict=True)}
    schedule.add(items, now=0)
    delivered: list[Delivery] = []
    now = 0.0
    for _ in range(10_000):
        batch = schedule.take(3, now)
        if not batch:
            if len(schedule) == 0:
                break
            due = schedule.next_due()
            assert due is not None
            now = max(now, due)
            continue
        assert len({d.ordering_key for d in batch}) == len(batch)
        for item in batch:
            if fate[item.delivery_id] == "retry":
                fate[item.delivery_id] = "ok"
                schedule.retry_at(item, now + 1, now)
            else:
                delivered.append(item)
                schedule.finished(item, now)
        now += 0.5
    assert sorted(d.delivery_id for d in delivered) == sorted(d.delivery_id for d in items)
    for key in "ABCDE":
        ids = [d.delivery_id for d in delivered if d.ordering_key == key]
        assert ids == sorted(ids)


def test_a_deferred_lane_waits_until_deferral_ends_and_keeps_its_order() -> None:
    schedule = LaneScheduler(starvation_seconds=1.0)
    bulk = [delivery("B", Lane.BULK) for _ in range(3)]
    urgent = delivery("U", Lane.URGENT)
    schedule.set_lanes({Lane.URGENT: 8}, frozenset({Lane.BULK}))
    schedule.add([*bulk, urgent], now=0)
    assert schedule.has_ready(100.0)
    assert schedule.take(10, now=100.0) == [urgent]  # long past the starvation guard
    schedule.finished(urgent, now=100.0)
    assert not schedule.has_ready(100.0)
    assert schedule.take(10, now=100.0) == []
    assert schedule.has_ready(100.0, deferred=True)
    schedule.set_lanes({}, frozenset())
    sent = []
    for _ in range(3):
        (head,) = schedule.take(10, now=101.0)
        sent.append(head)
        schedule.finished(head, now=101.0)
    assert sent == bulk


def test_deferred_keys_are_served_only_when_asked_and_nothing_else_is_ready() -> None:
    schedule = LaneScheduler()
    schedule.set_lanes({}, frozenset({Lane.BULK, Lane.ROUTINE}))
    routine, bulk, stat = delivery("R"), delivery("B", Lane.BULK), delivery("S", Lane.STAT)
    schedule.add([routine, bulk, stat], now=0)
    assert schedule.take(10, now=0) == [stat]
    assert schedule.take(1, now=0, deferred=True) == [routine]
    assert schedule.take(10, now=0, deferred=True) == [bulk]


def test_a_deferred_head_is_promoted_by_an_urgent_delivery_of_its_key() -> None:
    schedule = LaneScheduler()
    schedule.set_lanes({}, frozenset({Lane.BULK}))
    first = delivery("P", Lane.BULK)
    schedule.add([first], now=0)
    assert schedule.take(10, now=0) == []
    schedule.add([delivery("P", Lane.STAT)], now=0)
    assert schedule.take(10, now=0) == [first]


@given(st.integers(min_value=1, max_value=20), st.integers(min_value=1, max_value=20))
@settings(max_examples=50)
def test_weights_set_at_run_time_share_the_picks(urgent: int, routine: int) -> None:
    schedule = LaneScheduler(starvation_seconds=1e9)
    schedule.set_lanes({Lane.URGENT: urgent, Lane.ROUTINE: routine}, frozenset())
    total = urgent + routine
    schedule.add(
        [delivery(f"U{n}", Lane.URGENT) for n in range(total)]
        + [delivery(f"R{n}", Lane.ROUTINE) for n in range(total)],
        now=0,
    )
    picked = Counter(d.lane for d in schedule.take(total, now=0))
    assert picked == Counter({Lane.URGENT: urgent, Lane.ROUTINE: routine})
