"""Mode rules (`views.modes`): hysteresis and severity as properties; measures on the views."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.views.support import T0, event, spec
from thumpflow.config.modes import Measure, ModesSpec
from thumpflow.core.modes import OperatingMode
from thumpflow.testing.hospital import adt
from thumpflow.views.modes import RuleBook, measure
from thumpflow.views.state import Projection

RULES = ModesSpec.model_validate(
    {
        "rules": [
            {
                "id": "busy",
                "mode": "surge",
                "measure": "ed_boarding",
                "at_least": 5,
                "leave_below": 3,
            },
            {
                "id": "full",
                "mode": "diversion",
                "measure": "open_beds",
                "at_most": 1,
                "leave_above": 2,
            },
        ]
    }
)


@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 4)), max_size=40))
@settings(max_examples=200)
def test_rules_hold_with_hysteresis_and_the_most_severe_mode_wins(
    readings: list[tuple[int, int]],
) -> None:
    book = RuleBook(RULES)
    busy = full = False
    for boarding, open_beds in readings:
        decision = book.settle({"busy": boarding, "full": open_beds})
        busy = boarding >= 5 or (busy and boarding >= 3)
        full = open_beds <= 1 or (full and open_beds <= 2)
        expected = (
            OperatingMode.DIVERSION
            if full
            else OperatingMode.SURGE
            if busy
            else OperatingMode.NORMAL
        )
        assert decision.mode is expected
        assert decision.rule == {"diversion": "full", "surge": "busy"}.get(expected.value)
        assert book.holding == {r for r, on in (("busy", busy), ("full", full)) if on}


def test_a_rule_resumed_after_a_restart_keeps_holding_above_its_leave_level() -> None:
    book = RuleBook(RULES)
    book.resume("busy")
    assert book.settle({"busy": 4, "full": 4}).mode is OperatingMode.SURGE
    fresh = RuleBook(RULES)
    assert fresh.settle({"busy": 4, "full": 4}).mode is OperatingMode.NORMAL


def test_measures_read_the_views() -> None:
    projection = Projection(spec())
    messages = [
        adt("A01", "P1", "ED/01", T0 + 1, "m1"),
        adt("A01", "P2", "4W/401-A", T0 + 2, "m2"),
        adt("A04", "P3", "ED/02", T0 + 3, "m3", patient_class="E"),
    ]
    for n, body in enumerate(messages, 1):
        projection.apply(event(body, n), n)
    now = T0 + 100
    assert measure(projection, Measure.ED_BOARDING, None, now) == 1
    assert measure(projection, Measure.OPEN_BEDS, "4W", now) == 2
    assert measure(projection, Measure.OCCUPIED_PERCENT, "4W", now) == 100 / 3
    assert measure(projection, Measure.OCCUPIED_PERCENT, None, now) == 300 / 6
    assert measure(projection, Measure.DIRTY_BEDS, None, now) == 0
    assert measure(projection, Measure.PENDING_TRANSFERS, None, now) == 0
    reason = RuleBook(
        ModesSpec.model_validate(
            {
                "rules": [
                    {"id": "r", "mode": "surge", "measure": "open_beds", "unit": "4W", "at_most": 2}
                ]
            }
        )
    ).decide(projection, now)
    assert (reason.mode, reason.reason) == (OperatingMode.SURGE, "open_beds in 4W is 2 (at most 2)")
