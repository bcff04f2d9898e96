"""A person settles an open conflict of the views: apply the conflicting write, or dismiss it.

The settlement is an event (system `operator`, channel `views-settlements`,
content `SETTLEMENT_JSON`) committed to the store like any other, so the
views apply it in commit order and a rebuild applies it again; its
idempotency key is the conflict's, so settling the same conflict twice is one
settlement. The act is audited (`views.conflict_settled`: who, why, applied
or dismissed, the conflicting event's id; never the subject or a value)
before the settlement is committed. A conflict that is no longer open when
the settlement is applied (another write overtook it) is left as it is, and
the views record that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thumpflow.config.views import OPERATOR, SETTLEMENTS_CHANNEL
from thumpflow.core.errors import ThumpflowError
from thumpflow.core.event import Admission, AuditEntry, Duplicate, Event
from thumpflow.core.ids import new_ulid
from thumpflow.views.facts import SETTLEMENT_JSON, settlement
from thumpflow.views.read import open_conflict

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
