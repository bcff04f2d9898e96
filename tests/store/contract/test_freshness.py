"""`FreshnessStore.delivery_sample`: exact window counts, newest lags, bounded reads."""

from __future__ import annotations

from tests.store.support import run
from thumpflow.core.health import DeliverySample
from thumpflow.core.outcome import Died
from thumpflow.core.ports import StateStore

from .conftest import StoreFactory
from .test_store import admit_one, delivered

T0 = 1_700_000_000.0


async def _fill(store: StateStore) -> list[DeliverySample]:
    # Six events received one second apart, each to "ehr" and "lab".
    deliveries = []
    for n in range(6):
        result = await admit_one(store, "ehr", "lab", at=T0 + n)
        deliveries.append(result.deliveries)
    # ehr: five delivered, 10 + n seconds after receipt; the last one dies.
    await store.record(
        [delivered(pair[0], at=T0 + n + 10 + n) for n, pair in enumerate(deliveries[:5])]
    )
    await store.record([Died(deliveries[5][0].delivery_id, T0 + 30, 1, "HTTP 422")])
    # lab: only the first is delivered; the rest stay pending.
    await store.record([delivered(deliveries[0][1], at=T0 + 50)])
    return [
        await store.delivery_sample("ehr", T0, 100),
        await store.delivery_sample("ehr", T0, 2),
        await store.delivery_sample("ehr", T0 + 15, 100),
        await store.delivery_sample("lab", T0, 100),
        await store.delivery_sample("nowhere", T0, 100),
    ]


def test_delivery_sample_counts_the_window_and_keeps_the_newest_lags(
    store_factory: StoreFactory,
) -> None:
    every, capped, late, lab, nowhere = run(store_factory.make, _fill)
    # delivered_at = T0 + 10 + 2n, lag = 10 + n.
    assert (every.delivered, every.dead, every.complete) == (5, 1, True)
    assert every.recent == tuple((T0 + 10 + 2 * n, 10.0 + n) for n in (4, 3, 2, 1, 0))
    assert every.died == (T0 + 30,)
    assert (capped.delivered, capped.dead, capped.complete) == (5, 1, False)
    assert capped.recent == every.recent[:2]
    assert (late.delivered, late.dead) == (2, 1)
    assert [lag for _, lag in late.recent] == [14.0, 13.0]
    assert (lab.delivered, lab.dead, lab.recent) == (1, 0, ((T0 + 50, 50.0),))
    assert (nowhere.delivered, nowhere.dead, nowhere.recent, nowhere.died) == (0, 0, (), ())
