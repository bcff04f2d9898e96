"""Which deliveries of one destination go next: order per key, urgent first.

Guarantees:
- Order per ordering key: a key has at most one delivery in flight, and its
  deliveries are offered in `delivery_id` order (ingest order). A key that is
  retrying (waiting for its next attempt) blocks only itself.
- Urgent first: ready keys are served by smooth weighted round robin over the
  lanes (weights default 8/4/2/1 for stat/urgent/routine/bulk), so under
  overload bulk slows first and stat keeps moving. A key's lane is the most
  urgent lane among its queued deliveries (a stat result stuck behind a
  routine update of the same patient promotes that patient).
- Starvation guard: a ready key that has waited longer than
  `starvation_seconds` is served before any weighting.
- Deferred lanes (`set_lanes`, an operating mode's choice): a key whose lane
  is deferred is not served, however long it waits, unless `take` is told
  to serve deferred keys too; it is served again, in order, once its lane is
  no longer deferred. Weights and deferral change between two `take`s and
  never reorder a key's deliveries.

The scheduler is a pure in-memory structure driven by times passed in; it
holds no I/O and loses nothing on its own: everything in it is also pending
in the durable outbox.
"""

from __future__ import annotations

import heapq
from bisect import insort
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from thumpflow.core.event import Delivery
from thumpflow.core.lanes import DEFAULT_LANE_WEIGHTS, Lane

_LANES = tuple(Lane)


@dataclass(slots=True, frozen=True)
class LanePolicy:
    """How an outbox serves its lanes under an operating mode (`normal`: the defaults).

    `weights` per lane; `deferred` lanes are not served (see `LaneScheduler`);
    `pace` is (sends per second, burst) on top of the destination's own rate
    limit; `hold` starts no send at all.
    """

    weights: dict[Lane, int] = field(default_factory=lambda: dict(DEFAULT_LANE_WEIGHTS))
    deferred: frozenset[Lane] = frozenset()
    pace: tuple[float, float] | None = None
    hold: bool = False


def _by_id(delivery: Delivery) -> int:
    return delivery.delivery_id


@dataclass(slots=True)
class _Key:
    queue: list[Delivery] = field(default_factory=list)
    in_flight: bool = False
    ready_at: float = 0.0
    token: int = 0
    ready: bool = False
    lane_when_ready: Lane = Lane.BULK

    def lane(self) -> Lane:
        return min(delivery.lane for delivery in self.queue)


class LaneScheduler:
    """In-memory ready queue of one destination's outbox."""

    def __init__(
        self,
        weights: dict[Lane, int] | None = None,
        starvation_seconds: float = 30.0,
    ) -> None:
        self._weights = dict(weights or DEFAULT_LANE_WEIGHTS)
        self._current = dict.fromkeys(_LANES, 0)
        self._starvation = starvation_seconds
        self._keys: dict[str, _Key] = {}
        self._ready: dict[Lane, deque[tuple[float, int, str]]] = {lane: deque() for lane in _LANES}
        self._delayed: list[tuple[float, int, str]] = []
        self._ids: set[int] = set()
        self._deferred: frozenset[Lane] = frozenset()

    def set_lanes(self, weights: dict[Lane, int], deferred: frozenset[Lane]) -> None:
        """Serve by these weights from now on, and none of the `deferred` lanes."""
        self._weights = {lane: max(1, weights.get(lane, 1)) for lane in _LANES}
        self._current = dict.fromkeys(_LANES, 0)
        self._deferred = deferred

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, delivery_id: int) -> bool:
        return delivery_id in self._ids

    def add(self, deliveries: Iterable[Delivery], now: float) -> None:
        """Queue deliveries (already durable). A known delivery id is ignored."""
        for delivery in deliveries:
            if delivery.delivery_id in self._ids:
                continue
            self._ids.add(delivery.delivery_id)
            state = self._keys.get(delivery.ordering_key)
            if state is None:
                state = self._keys[delivery.ordering_key] = _Key()
            queue = state.queue
            if not queue or queue[-1].delivery_id < delivery.delivery_id:
                queue.append(delivery)
            else:
                start = 1 if state.in_flight else 0
                insort(queue, delivery, lo=start, key=_by_id)
            if state.in_flight:
                continue
            if len(queue) == 1:
                state.ready_at = delivery.next_attempt_at
                self._settle(delivery.ordering_key, state, now)
            elif state.ready and delivery.lane < state.lane_when_ready:
                self._make_ready(delivery.ordering_key, state, now)

    def take(self, limit: int, now: float, *, deferred: bool = False) -> list[Delivery]:
        """Up to `limit` deliveries to send now, each the head of a different key.

        Keys of deferred lanes are served only when `deferred` is true, and
        then only when no other lane has a ready key.
        """
        self._release_due(now)
        picked: list[Delivery] = []
        while len(picked) < limit:
            lane = self._pick_lane(now, deferred=deferred)
            if lane is None:
                break
            _, token, key = self._ready[lane].popleft()
            state = self._keys.get(key)
            if state is None or not state.ready or state.token != token or state.in_flight:
                continue
            state.ready = False
            state.in_flight = True
            picked.append(state.queue[0])
        return picked

    def finished(self, delivery: Delivery, now: float) -> None:
        """The head of its key is done for good (delivered, dead or superseded)."""
        state = self._keys[delivery.ordering_key]
        state.in_flight = False
        state.queue.pop(0)
        self._ids.discard(delivery.delivery_id)
        state.ready_at = 0.0
        self._settle(delivery.ordering_key, state, now)

    def retry_at(self, delivery: Delivery, when: float, now: float) -> None:
        """The head of its key failed and waits until `when`; the key waits with it."""
        state = self._keys[delivery.ordering_key]
        state.in_flight = False
        state.ready_at = when
        self._settle(delivery.ordering_key, state, now)

    def release(self, delivery: Delivery, now: float) -> None:
        """The head of its key was taken but not attempted; offer it again."""
        state = self._keys[delivery.ordering_key]
        state.in_flight = False
        self._settle(delivery.ordering_key, state, now)

    def next_due(self) -> float | None:
        """When the earliest waiting key becomes ready, if any key waits."""
        while self._delayed:
            when, token, key = self._delayed[0]
            state = self._keys.get(key)
            if state is not None and state.token == token and not state.in_flight:
                return when
            heapq.heappop(self._delayed)
        return None

    def has_ready(self, now: float, *, deferred: bool = False) -> bool:
        """Whether a key is ready now (counting deferred lanes only when `deferred`)."""
        self._release_due(now)
        return any(self._ready[lane] for lane in _LANES if deferred or lane not in self._deferred)

    def ready_estimate(self) -> int:
        """An upper bound of how many keys are ready now (may count stale entries)."""
        return sum(len(queue) for queue in self._ready.values())

    def lane_depths(self) -> dict[Lane, int]:
        depths = dict.fromkeys(_LANES, 0)
        for state in self._keys.values():
            for delivery in state.queue:
                depths[delivery.lane] += 1
        return depths

    def _settle(self, key: str, state: _Key, now: float) -> None:
        if not state.queue:
            del self._keys[key]
            return
        if state.ready_at > now:
            self._delay(key, state)
        else:
            self._make_ready(key, state, now)

    def _delay(self, key: str, state: _Key) -> None:
        state.token += 1
        state.ready = False
        heapq.heappush(self._delayed, (state.ready_at, state.token, key))

    def _make_ready(self, key: str, state: _Key, now: float) -> None:
        state.token += 1
        state.ready = True
        lane = state.lane()
        state.lane_when_ready = lane
        self._ready[lane].append((now, state.token, key))

    def _release_due(self, now: float) -> None:
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, token, key = heapq.heappop(delayed)
            state = self._keys.get(key)
            if state is None or state.token != token or state.in_flight:
                continue
            self._make_ready(key, state, now)

    def _pick_lane(self, now: float, *, deferred: bool) -> Lane | None:
        served = [lane for lane in _LANES if lane not in self._deferred]
        candidates = self._candidates(served)
        if not candidates and deferred:
            candidates = self._candidates(sorted(self._deferred))
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        starved = [lane for lane in candidates if now - self._ready[lane][0][0] >= self._starvation]
        if starved:
            return min(starved, key=lambda lane: self._ready[lane][0][0])
        total = 0
        best = candidates[0]
        for lane in candidates:
            self._current[lane] += self._weights[lane]
            total += self._weights[lane]
            if self._current[lane] > self._current[best]:
                best = lane
        self._current[best] -= total
        return best

    def _candidates(self, lanes: list[Lane]) -> list[Lane]:
        """The lanes among `lanes` whose ready queue has a live entry (stale ones dropped)."""
        candidates = []
        for lane in lanes:
            queue = self._ready[lane]
            while queue:
                _, token, key = queue[0]
                state = self._keys.get(key)
                if state is not None and state.ready and state.token == token:
                    break
                queue.popleft()
            if queue:
                candidates.append(lane)
        return candidates
