"""The operating mode in force, applied to every outbox: operator acts and rules.

`ModeController` keeps the engine's mode (`core.modes`) and tells each
outbox the lane policy that mode gives it (`config.modes`: weights,
deferred lanes, pace, hold; `normal` is the default policy).

Guarantees:
- Durable and audited: every change is recorded in the store
  (`OperationsStore.set_operating_mode`, a `mode.changed` audit entry in
  the same commit) before it takes effect, so a restart resumes the mode
  and its origin. `load` reads it before any outbox starts sending, and
  `attach` gives an outbox the policy before it starts (also an outbox a
  reload starts).
- An operator's act holds: while the mode in force was declared by an act,
  the rules do not change it. `declare(None, ...)` (`auto`) hands the choice
  back to the rules, which decide at once.
- Rules: evaluated on the live views every `modes.interval` (the injected
  clock) and when handed back; entering, changing and leaving a
  rule-driven mode is audited under the engine's actor (`thumpflow`) with
  the measure and threshold as the reason. The rules' hysteresis resumes
  after a restart from the rule the store recorded.
- Failure: a store failure while recording a rule's decision is logged and
  tried again at the next evaluation; the mode in force stays until a
  change is recorded. An operator's act that cannot be recorded raises
  `StoreError` and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from thumpflow.config.modes import ModesSpec
from thumpflow.core.clock import Clock
from thumpflow.core.errors import StoreError
from thumpflow.core.metrics import Registry
from thumpflow.core.modes import ENGINE_ACTOR, ModeOrigin, ModeState, OperatingMode, initial_state
from thumpflow.core.ports import OperationsStore
from thumpflow.flow.outbox import Outbox
from thumpflow.flow.scheduler import LanePolicy
from thumpflow.views.live import LiveViews
from thumpflow.views.modes import Decision, RuleBook, measure

log = logging.getLogger("thumpflow.runtime.surge")


class ModeController:
    """The mode in force and its policies; see the module docstring."""

    def __init__(
        self,
        spec: ModesSpec,
        store: OperationsStore,
        clock: Clock,
        outboxes: Mapping[str, Outbox],
        views: LiveViews | None,
        *,
        registry: Registry | None = None,
    ) -> None:
        self.spec = spec
        self._store = store
        self._clock = clock
        self._outboxes = outboxes
        self._views = views
        self._rules = RuleBook(spec)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.state = initial_state(clock.now())
        self._gauge = (registry or Registry()).gauge(
            "thumpflow_operating_mode",
            "1 for the operating mode in force (normal, surge, diversion), 0 for the others.",
            ("mode",),
        )
        self._show()

    def _show(self) -> None:
        for mode in OperatingMode:
            self._gauge.labels(mode.value).set(1.0 if mode is self.state.mode else 0.0)

    async def load(self) -> None:
        """Read the recorded mode (before any outbox starts)."""
        recorded = await self._store.operating_mode()
        if recorded is not None:
            self.state = recorded
            if recorded.origin is ModeOrigin.RULE:
                self._rules.resume(recorded.rule)
            self._show()
        if self.state.mode is not OperatingMode.NORMAL:
            log.warning(
                "operating mode %s (since %s, %s)",
                self.state.mode.value,
                self.state.since,
                self.state.origin.value,
            )

    async def start(self) -> None:
        """Evaluate the rules now (the views are current), then every `interval`."""
        if not self._rules.rules or self._views is None:
            return
        await self.evaluate()
        self._task = asyncio.create_task(self._loop(), name="modes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def policy(self, destination_id: str) -> LanePolicy:
        """The lane policy the mode in force gives one destination."""
        spec = self.spec.spec(self.state.mode)
        if spec is None:
            return LanePolicy()
        paced = {pace.destination: pace for pace in spec.pace}
        pace = paced.get(destination_id)
        return LanePolicy(
            weights=spec.lane_weights.by_lane(),
            deferred=frozenset(spec.defer),
            pace=None if pace is None else (pace.per_second, float(pace.burst)),
            hold=destination_id in spec.hold,
        )

    def attach(self, outbox: Outbox) -> None:
        """Give an outbox the policy of the mode in force."""
        outbox.set_policy(self.policy(outbox.destination_id))

    async def declare(
        self, mode: OperatingMode | None, *, actor: str, reason: str
    ) -> tuple[ModeState, bool]:
        """An operator's act: `mode`, or None to hand the choice back to the rules.

        Returns the state in force and whether it changed. Raises
        `StoreError` (nothing changed) when it cannot be recorded.
        """
        async with self._lock:
            now = self._clock.now()
            if mode is None:
                decision = self._decide(now)
                state = ModeState(
                    decision.mode,
                    now,
                    ModeOrigin.RULE,
                    actor,
                    f"handed back to the rules: {reason} ({decision.reason})",
                    decision.rule,
                )
            else:
                state = ModeState(mode, now, ModeOrigin.ACT, actor, reason)
            changed = await self._record(state)
            return self.state, changed

    async def evaluate(self) -> None:
        """Let the rules decide now, unless an operator's act holds."""
        async with self._lock:
            if self.state.origin is ModeOrigin.ACT:
                return
            now = self._clock.now()
            decision = self._decide(now)
            if (decision.mode, decision.rule) == (self.state.mode, self.state.rule):
                return
            state = ModeState(
                decision.mode, now, ModeOrigin.RULE, ENGINE_ACTOR, decision.reason, decision.rule
            )
            await self._record(state)

    def status(self) -> dict[str, Any]:
        """The mode in force, since when, why, and each rule's measure now."""
        state = self.state
        now = self._clock.now()
        rules = []
        for rule in self._rules.rules:
            value = (
                None
                if self._views is None
                else measure(self._views.projection, rule.measure, rule.unit, now)
            )
            rules.append(
                {
                    "id": rule.id,
                    "mode": rule.mode.value,
                    "measure": rule.measure.value,
                    "unit": rule.unit,
                    "at_least": rule.at_least,
                    "at_most": rule.at_most,
                    "value": value,
                    "holding": rule.id in self._rules.holding,
                }
            )
        spec = self.spec.spec(state.mode)
        return {
            "mode": state.mode.value,
            "since": state.since,
            "origin": state.origin.value,
            "actor": state.actor,
            "reason": state.reason,
            "rule": state.rule,
            "deferred": [] if spec is None else [lane.label for lane in spec.defer],
            "paced": [] if spec is None else [pace.destination for pace in spec.pace],
            "held": [] if spec is None else list(spec.hold),
            "rules": rules,
        }

    def _decide(self, now: float) -> Decision:
        if self._views is None:
            return Decision(OperatingMode.NORMAL, None, "no rules")
        return self._rules.decide(self._views.projection, now)

    async def _record(self, state: ModeState) -> bool:
        changed = await self._store.set_operating_mode(state)
        if changed:
            self.state = await self._store.operating_mode() or state
            self._show()
            log.warning(
                "operating mode %s (%s by %s)",
                self.state.mode.value,
                self.state.origin.value,
                self.state.actor,
            )
            for outbox in list(self._outboxes.values()):
                self.attach(outbox)
        return changed

    async def _loop(self) -> None:
        while True:
            await self._clock.sleep(self.spec.interval)
            try:
                await self.evaluate()
            except StoreError as err:
                log.warning("modes: could not record the rules' decision (%s); will retry", err)
            except Exception as err:  # a bug must not stop the rules for good; retried
                log.error("modes: evaluating the rules failed (%s); will retry", type(err).__name__)
