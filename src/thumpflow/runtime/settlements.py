"""A person settles the views: an open conflict (apply the write, or dismiss it), or the
drift a census snapshot shows (repair it).

The settlement is an event (system `operator`, channel `views-settlements`,
content `SETTLEMENT_JSON`) committed to the store like any other, so the
views apply it in commit order and a rebuild applies it again; its
idempotency key is the conflict's, so settling the same conflict twice is one
settlement. The act is audited (`views.conflict_settled`: who, why, applied
or dismissed, the conflicting event's id; never the subject or a value)
before the settlement is committed. A conflict that is no longer open when
the settlement is applied (another write overtook it) is left as it is, and
the views record that.

A drift repair is one event of the same kind (content `REPAIR_JSON`, source
time the snapshot's `as_of`): per drifted bed, the snapshot's occupant is
placed and a board occupant the snapshot does not have leaves the bed, under
the usual rules, so a patient the board saw move after the snapshot is left
where the board has them. Its key is its content and `as_of`, so the same
repair admitted twice is one; it is audited `views.drift_repaired` (who,
why, how many beds, the snapshot's time; never a bed's patient).

A `census_reconcile` job compares and repairs through `census_board`: the
views catch up with the log first (so a run at start, before the views
follow it, compares the whole log's board, never an empty one), then the
same comparison and the same repair as a person's, under the actor `thump`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from thumpflow.config.views import OPERATOR, SETTLEMENTS_CHANNEL
from thumpflow.core.errors import ThumpflowError
from thumpflow.core.event import Admission, AuditEntry, Duplicate, Event
from thumpflow.core.ids import new_ulid
from thumpflow.thump.census_job import BoardCheck, CensusCheck
from thumpflow.views.facts import REPAIR_JSON, SETTLEMENT_JSON, repair, settlement
from thumpflow.views.read import open_conflict
from thumpflow.views.reconcile import Reconciliation, reconcile

if TYPE_CHECKING:
    from thumpflow.runtime.engine import Engine


class ConflictNotOpenError(ThumpflowError):
    """No open conflict of the views has this id (settled, overtaken, or never)."""


async def settle_conflict(
    engine: Engine, conflict_id: str, *, accept: bool, actor: str, reason: str
) -> tuple[str, bool]:
    """Settle the open conflict `conflict_id`; (the settlement's event id, whether it was
    settled before). Raises `ConflictNotOpenError`, or `ThumpflowError` without views."""
    views = engine.views
    if views is None:
        raise ThumpflowError("no views are configured")
    outcome = open_conflict(views.projection, conflict_id)
    if outcome is None:
        raise ConflictNotOpenError(f"no open conflict {conflict_id!r}")
    now = engine.clock.now()
    domain = outcome.field.partition(".")[0]
    event = Event(
        event_id=new_ulid(int(now * 1000)),
        idempotency_key=f"settle|{conflict_id}",
        source_system=OPERATOR,
        channel_id=SETTLEMENTS_CHANNEL,
        event_type="views.settlement",
        entity_type="Location" if domain == "bed" else "Patient",
        entity_id=outcome.subject,
        occurred_at=now,
        received_at=now,
        body=settlement(outcome.field, outcome.subject, outcome.event_id, accept),
        content_type=SETTLEMENT_JSON,
    )
    decision = "applied" if accept else "dismissed"
    detail = f"{decision} the {outcome.field} write of event {outcome.event_id}: {reason}"
    await engine.store.append_audit(
        AuditEntry(now, actor, "views.conflict_settled", f"conflict:{conflict_id}", detail)
    )
    admitted = await engine.store.admit(Admission(received=event))
    views.notify()
    if isinstance(admitted, Duplicate):
        return admitted.original_event_id, True
    return event.event_id, False


async def repair_drift(
    engine: Engine, found: Reconciliation, as_of: float, *, actor: str, reason: str
) -> tuple[str, bool] | None:
    """Admit the repair of `found`'s drift (see the module docstring); (its event id, whether
    it was admitted before), or None when there is no drift."""
    views = engine.views
    if views is None:
        raise ThumpflowError("no views are configured")
    if not found.drift:
        return None
    now = engine.clock.now()
    body = repair([(d.bed, d.snapshot, d.board) for d in found.drift])
    digest = hashlib.sha256(body + f"|{as_of!r}".encode()).hexdigest()[:24]
    event = Event(
        event_id=new_ulid(int(now * 1000)),
        idempotency_key=f"repair|{digest}",
        source_system=OPERATOR,
        channel_id=SETTLEMENTS_CHANNEL,
        event_type="views.repair",
        entity_type="Location",
        entity_id="census",
        occurred_at=as_of,
        received_at=now,
        body=body,
        content_type=REPAIR_JSON,
    )
    taken = datetime.fromtimestamp(as_of, UTC).isoformat(timespec="seconds")
    detail = f"{len(found.drift)} beds corrected from the census snapshot of {taken}: {reason}"
    await engine.store.append_audit(
        AuditEntry(now, actor, "views.drift_repaired", f"repair:{digest}", detail)
    )
    admitted = await engine.store.admit(Admission(received=event))
    views.notify()
    if isinstance(admitted, Duplicate):
        return admitted.original_event_id, True
    return event.event_id, False


def census_board(engine: Engine) -> BoardCheck:
    """The `BoardCheck` of `census_reconcile` jobs over `engine`'s views (module docstring)."""

    async def check(
        snapshot: Mapping[str, str | None], as_of: float, repair: bool, reason: str
    ) -> CensusCheck:
        views = engine.views
        if views is None:
            raise ThumpflowError("no views are configured")
        await views.catch_up()
        found = reconcile(views.projection, dict(snapshot), as_of)
        repaired = 0
        if repair:
            admitted = await repair_drift(engine, found, as_of, actor="thump", reason=reason)
            if admitted is not None and not admitted[1]:
                repaired = len(found.drift)
        return CensusCheck(found.compared, found.newer, tuple(d.bed for d in found.drift), repaired)

    return check
